/* SPDX-License-Identifier: MIT */
#pragma once

/* The sealed values of a verified profile, opened with the device's box key, and the 0600 files
 * that carry them (docs/design.md, "Files on the device"):
 *
 *   /etc/nix/nixprov-netrc          "machine HOST password TOKEN\n" per cache with a token, HOST
 *                                   the cache's host (default NAME.cachix.org)
 *   /etc/nix/nixprov-secrets.conf   "netrc-file = /etc/nix/nixprov-netrc\n" (nixprov.conf
 *                                   !includes it)
 *   /root/.config/cachix/cachix.dhall   the cachix tool's configuration, with the token of the
 *                                   first cache that has one
 *   each sealed builder identity    at its plan_builder.identity_path (the builders phase
 *                                   logs in with it from memory before: secrets_identity())
 *
 * Every plaintext, and every file text that holds one, lives in sodium_malloc() memory and is
 * wiped by secrets_done(), which the caller calls right after writing. Nothing here prints. */

#include <stddef.h>
#include <stdint.h>

#include "devicekey.h"
#include "plan.h"
#include "profile.h"
#include "write.h"

#define SECRETS_NETRC_FILE "/etc/nix/nixprov-netrc"
#define SECRETS_CONF_FILE "/etc/nix/nixprov-secrets.conf"
#define SECRETS_CACHIX_DHALL_FILE "/root/.config/cachix/cachix.dhall"
#define SECRETS_TOKEN_MAX 4096
#define SECRETS_ERROR_MAX 256

struct secret_buf {
        char *data; /* sodium_malloc(), NUL-terminated */
        size_t size;
};

struct secrets {
        struct secret_buf tokens[PROFILE_MAX_CACHES];       /* by cache index; empty: none */
        struct secret_buf identities[PROFILE_MAX_BUILDERS]; /* by builder index */
        struct secret_buf netrc, dhall;                     /* rendered by secrets_items() */
};

/* Opens every sealed value of p with k into *s (zeroed by the caller). On failure fills error
 * with the value's key and why, e.g. "cachix[0].auth-token: cannot be opened with this device's
 * box key: sealed to another device, or changed", wipes what was opened, and returns -EBADMSG
 * (not this device's, changed, or a token a netrc cannot carry) or -ENOMEM. */
int secrets_open(const struct profile *p, const struct devicekey *k, struct secrets *s,
                 char error[static SECRETS_ERROR_MAX]);

/* Appends to items (which has room for max, *n used) the files that carry the opened secrets,
 * mode 0600, their texts built in s's locked memory. Nothing when p has no secrets. Returns 0,
 * -E2BIG (no room) or -ENOMEM. */
int secrets_items(const struct plan *plan, struct secrets *s, struct write_item *items, size_t max,
                  size_t *n);

/* The opened private key text (OpenSSH or PEM, NUL-terminated, in locked memory owned by s) of
 * the profile's builders[index].identity when it is sealed; NULL otherwise, or after
 * secrets_done(). */
const char *secrets_identity(const struct secrets *s, size_t index);

/* True when some cache carries a token: the netrc is written. */
bool secrets_have_netrc(const struct secrets *s);

/* Wipes and frees every secret in s. */
void secrets_done(struct secrets *s);
