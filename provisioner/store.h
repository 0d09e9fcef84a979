/* SPDX-License-Identifier: MIT */
#pragma once

/* The server's store: an SQLite database (WAL, synchronous=FULL) of machines and the reports
 * they sent. A report is committed to disk before store_add_report() returns, and each is kept
 * once per (machine_id, seq), the key the device assigns. Safe to call from several threads.
 * Nothing here prints; SQLite's errors are mapped to negative errnos. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "macro.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_FLEET_MAX 100000 /* machines listed by store_list_machines() */
#define STORE_HISTORY_MAX 1000 /* reports of one machine returned (the latest ones) */
#define STORE_BUSY_TIMEOUT_MS 5000

/* A validated report. The strings are borrowed for the duration of the call. */
struct store_report {
        const char *machine_id; /* 32 lowercase hex digits */
        uint64_t seq;           /* at most INT64_MAX */
        int64_t time;           /* the device's clock, seconds since the epoch */
        const char *phase;
        const char *status;
        bool has_serial;
        uint64_t serial;  /* at most INT64_MAX */
        const char *body; /* the whole report, JSON text as received */
        size_t body_size;
};

struct store;

/* Opens (creating when missing, mode 0600) the database at path and brings its schema to
 * STORE_SCHEMA_VERSION. Returns 0, -EPROTO for a database of a newer schema, -EBADMSG for a file
 * that is not a database, or another negative errno. */
int store_open(const char *path, struct store **ret_store);

/* Closes the database. Accepts NULL; returns NULL. */
struct store *store_close(struct store *store);
DEFINE_POINTER_CLEANUP(store, store_close)

/* Stores a report received at the server's time received, creating the machine (state
 * "unenrolled") when unknown, and updating its last_seen. The transaction is committed (and
 * fsynced) before this returns 0. A report whose (machine_id, seq) is already stored is not
 * stored again: *ret_duplicate says so. Returns 0 or a negative errno (nothing stored). */
int store_add_report(struct store *store, const struct store_report *report, int64_t received,
                     bool *ret_duplicate);

/* Returns a new JSON array of every machine (at most STORE_FLEET_MAX, by machine_id):
 * {"machine_id", "state", "first_seen", "last_seen", "phase", "status", "serial", "reports"}, with
 * phase and status of the report of highest seq, serial the latest one reported (or null), and
 * reports the number stored. */
int store_list_machines(struct store *store, json_t **ret_machines);

/* Returns a new JSON object for one machine: the fields of store_list_machines() and "reports",
 * the stored report objects in seq order (the latest STORE_HISTORY_MAX of them; "truncated" says
 * whether older ones were left out). Returns 0, -ENOENT for an unknown machine, or a negative
 * errno. */
int store_get_machine(struct store *store, const char *machine_id, json_t **ret_machine);

/* Returns a new JSON object {"machines": N, "reports": N, "by_status": {STATUS: N, ...}}, where
 * by_status counts machines by the status of their latest report ("none" for no report). */
int store_stats(struct store *store, json_t **ret_stats);
