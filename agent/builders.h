/* SPDX-License-Identifier: MIT */
#pragma once

/* The builders phase: probes every remote builder of a plan over SSH (libssh), in parallel, one
 * thread per builder, each within its own deadline:
 *
 *  1. connect to host:port of the URI (user "root" when the URI names none: Nix would use the
 *     user running it, which for the agent and for nix-daemon is root);
 *  2. compare the server's host key with the pinned one, exactly (type and base64 blob); the
 *     server is asked for a key of the pinned type only. A mismatch ends the probe before any
 *     authentication: the identity is never offered to a server that may be an impostor;
 *  3. authenticate: with a sealed identity, with the key opened in the plan phase, straight
 *     from its locked memory (libssh's ssh_pki_import_privkey_base64(); the run probes before
 *     it writes the key file); with a path, or a sealed identity not given in memory (as for
 *     `nixprov-agent builders`, after a run wrote it), with the key file, its path taken under
 *     the root directory; without one in the profile, with root's first default key
 *     (/root/.ssh/id_ed25519, id_ecdsa, id_rsa), as ssh would for Nix;
 *  4. run "nix-store --version" (or "P --version" when the URI's query says remote-program=P)
 *     and keep the first line it prints and the round trip of that exec, in milliseconds.
 *
 * libssh's errors are mapped here and never travel upward; nothing secret is logged or kept in
 * a result (a result holds the state, the latency, the version line and an error text). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "builder_uri.h" /* struct builder_uri, builders_parse_uri() */
#include "plan.h"

#define BUILDERS_DEADLINE_DEFAULT_MS (10 * 1000) /* per builder, for a run */
#define BUILDERS_VERSION_MAX 128
#define BUILDERS_ERROR_MAX 256

enum builder_state {
        BUILDER_STATE_OK,
        BUILDER_STATE_UNREACHABLE,
        BUILDER_STATE_HOST_KEY_MISMATCH,
        BUILDER_STATE_AUTH_FAILED,
        BUILDER_STATE_NIX_MISSING,
        BUILDER_STATE_TIMEOUT,
        _BUILDER_STATE_MAX,
};

struct builder_probe {
        enum builder_state state;
        uint64_t latency_ms;                    /* the round trip of the version exec (state ok) */
        char nix_version[BUILDERS_VERSION_MAX]; /* "nix-store (Nix) 2.8.0"; empty unless ok */
        char error[BUILDERS_ERROR_MAX];         /* empty when ok */
};

/* Probes every builder of plan in parallel, each within deadline_ms milliseconds from the
 * call; identity paths are taken under root ("/" when NULL). identities is NULL or has
 * PROFILE_MAX_BUILDERS entries, by the builder's place in the profile (plan_builder.index):
 * the opened private key text of a sealed identity (OpenSSH or PEM, without a passphrase;
 * see secrets_identity()), or NULL. The texts stay the caller's and are only read; libssh's
 * parsed copy is freed when the probe ends. Fills ret_results[i] for
 * plan->builders[i] (the caller gives plan->n_builders of them). Returns 0 (whatever the
 * builders answered), or -ENOMEM / the errno of pthread_create when the probes could not be
 * started. Never blocks much past the deadline, except for a host name whose resolution
 * hangs. */
int builders_probe(const struct plan *plan, const char *root, const char *const *identities,
                   uint64_t deadline_ms, struct builder_probe *ret_results);

/* "ok", "unreachable", "host-key-mismatch", "auth-failed", "nix-missing", "timeout"; NULL for a
 * value out of range. */
const char *builder_state_to_string(enum builder_state state);

/* One line for people: "URI: ok, 12 ms, nix-store (Nix) 2.8.0" or "URI: unreachable: ERROR".
 * Truncated to size bytes; returns buf. */
char *builders_format(const char *uri, const struct builder_probe *probe, char *buf, size_t size);

/* The applied profile, kept by `nixprov-agent run` in the state directory when a run is done,
 * for `nixprov-agent builders`, which verifies it again before using it. */
#define BUILDERS_APPLIED_PROFILE "profile.yaml"
#define BUILDERS_APPLIED_SIGNATURE "profile.yaml.minisig"

/* True when every required builder answered (an optional one may fail). */
bool builders_required_ok(const struct plan *plan, const struct builder_probe *results);
