/* SPDX-License-Identifier: MIT */
#pragma once

/* The SQLite implementation of the store (store.h): one database file in WAL mode with
 * synchronous=FULL, one connection shared by the server's threads under a mutex, a busy
 * timeout of STORE_BUSY_TIMEOUT_MS, and its schema migrated to STORE_SCHEMA_VERSION step by
 * step in one transaction. */

#include "store.h"

/* Opens (creating when missing, mode 0600) the database at path. Returns 0, -EPROTO for a
 * database of a newer schema, -EBADMSG for a file that is not a database, or another negative
 * errno. */
int store_sqlite_open(const char *path, struct store **ret_store);
