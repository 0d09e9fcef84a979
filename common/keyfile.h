/* SPDX-License-Identifier: MIT */
#pragma once

/* Loading trusted public keys the way operators name them. */

#include "minisign.h"

/* Loads a minisign public key from a file, or, when spec is not an existing file, parses spec
 * itself as the base64 key line (as on the kernel command line: nixprov.key=RWQ...). Returns 0,
 * -ENOENT (no such file and not a key either), -EBADMSG (a file that is not a public key), or
 * another negative errno from reading the file. */
int keyfile_load_public(const char *spec, struct minisign_public_key *ret);
