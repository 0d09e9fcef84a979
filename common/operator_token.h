/* SPDX-License-Identifier: MIT */
#pragma once

/* The operator's bearer token: what `nixprov serve` requires on every operator endpoint
 * (`Authorization: Bearer TOKEN`) and what `nixprov fleet` sends. It lives in a file of mode
 * 0600 or stricter, printable ASCII without spaces, one optional trailing newline. The server
 * keeps only its BLAKE2b-256 digest and compares digests in constant time. No printing. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPERATOR_TOKEN_FILE "operator.token" /* the default, beside the server's database */
#define OPERATOR_TOKEN_MIN 16                /* bytes */
#define OPERATOR_TOKEN_MAX 512
#define OPERATOR_TOKEN_DIGEST_BYTES 32
#define OPERATOR_TOKEN_RANDOM_BYTES 32 /* a made token: their hex, 64 characters */

/* Reads the token in path into *ret_token (NUL-terminated, in sodium_malloc() memory: free it
 * with sodium_free(), which wipes it). Returns 0, -EINVAL (not a regular file), -EPERM (group
 * or others may access it), -EBADMSG (shorter than OPERATOR_TOKEN_MIN, longer than
 * OPERATOR_TOKEN_MAX, or a byte that is not printable ASCII), or a negative errno of open(). */
int operator_token_read(const char *path, char **ret_token);

/* For _cleanup_(operator_token_freep) on a char * from operator_token_read() or any other
 * sodium_malloc()'d string: wipes and frees it. */
void operator_token_freep(char **p);

/* Creates path with mode 0600 (O_EXCL) holding the hex of OPERATOR_TOKEN_RANDOM_BYTES random
 * bytes and a newline, fsynced. Returns 0, -EEXIST when path exists, or a negative errno (no
 * file is left behind). */
int operator_token_create(const char *path);

/* The digest the server keeps of a token. */
void operator_token_digest(const char *token, size_t size,
                           uint8_t ret_digest[static OPERATOR_TOKEN_DIGEST_BYTES]);

/* Checks an Authorization header's value (NULL: absent) against the digest of the token.
 * Returns 0, -ENOMSG when absent or not "Bearer TOKEN", or -EKEYREJECTED when the token is not
 * the operator's. */
int operator_token_check(const uint8_t digest[static OPERATOR_TOKEN_DIGEST_BYTES],
                         const char *authorization);
