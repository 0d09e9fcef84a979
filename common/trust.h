/* SPDX-License-Identifier: MIT */
#pragma once

/* The trust rules: the one function that decides whether this device applies a profile.
 *
 * Order matters and is fixed: size cap, signature over the raw bytes (no YAML is parsed before
 * a trusted key has signed it), parse and validate, then rollback, expiry against the clock
 * floor, and machine/group binding. Every refusal has its own error code. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "minisign.h"
#include "profile.h"

enum trust_decision {
        TRUST_APPLY,      /* a new profile (or a higher serial: an update) */
        TRUST_UP_TO_DATE, /* the serial already applied: nothing to do */
};

/* The refusals, each with its own negative errno returned by trust_decide(). */
#define TRUST_REFUSED_TOO_LARGE (-E2BIG)             /* profile over PROFILE_MAX_BYTES */
#define TRUST_REFUSED_SIGNATURE_MALFORMED (-EBADMSG) /* not a minisign signature */
#define TRUST_REFUSED_UNKNOWN_KEY (-ENOKEY)          /* signed by no trusted key */
#define TRUST_REFUSED_BAD_SIGNATURE (-EKEYREJECTED)  /* forged, or profile or comment changed */
#define TRUST_REFUSED_INVALID (-EINVAL)              /* signed, but not a valid schema 1 profile */
#define TRUST_REFUSED_ROLLBACK (-ESTALE)             /* serial lower than the last applied */
#define TRUST_REFUSED_EXPIRED (-ETIME)               /* expires at or before the trusted now */
#define TRUST_REFUSED_WRONG_MACHINE (-EPERM)         /* names neither this machine nor its groups */

struct trust_context {
        const struct minisign_public_key *keys; /* trusted keys, any of which may sign */
        size_t n_keys;

        const char *machine_id; /* this device, 32 lowercase hex digits */
        char *const *groups;    /* groups from the agent's own config */
        size_t n_groups;

        bool have_applied; /* a profile was applied before: */
        uint64_t applied_serial;
        int64_t applied_time; /* when it was applied (trusted time then) */

        int64_t build_time; /* the agent's build time: part of the clock floor */
        int64_t now;        /* the system clock, which is not trusted below the floor */
};

struct trust_result {
        enum trust_decision decision;
        struct profile *profile;                         /* owned; set when the profile parsed */
        const struct minisign_public_key *key;           /* the trusted key that signed it */
        bool have_signature_key_id;                      /* the signature parsed: */
        uint8_t signature_key_id[MINISIGN_KEY_ID_BYTES]; /* the key id it names */
        int64_t trusted_now;                             /* max(now, build_time, applied_time) */
        struct profile_error error;                      /* TRUST_REFUSED_INVALID: where and why */
};

/* Decides about profile (size bytes, exactly as downloaded) and its .minisig text.
 * filename names the profile in error messages. Returns 0 with ret->decision set, or one of the
 * TRUST_REFUSED_* codes, or -ENOMEM. ret->profile is set whenever the profile parsed (also on a
 * rollback, expiry or binding refusal, so the caller can say which serial was refused); free it
 * with trust_result_done(). */
int trust_decide(const struct trust_context *ctx, const uint8_t *profile, size_t size,
                 const char *filename, const char *signature, size_t signature_size,
                 struct trust_result *ret);

/* The first half of trust_decide(), for tools that check a profile away from any device
 * (nixprov verify): size, signature by one of keys over the raw bytes, then the schema. Returns
 * 0 with ret->profile and ret->key set, or TRUST_REFUSED_TOO_LARGE, _SIGNATURE_MALFORMED,
 * _UNKNOWN_KEY, _BAD_SIGNATURE, _INVALID, or -ENOMEM. ret must be zeroed by the caller. */
int trust_check_signed(const struct minisign_public_key *keys, size_t n_keys,
                       const uint8_t *profile, size_t size, const char *filename,
                       const char *signature, size_t signature_size, struct trust_result *ret);

/* Reads a profile and its signature (signature_path NULL: PROFILE.minisig) within their caps.
 * Returns 0 with both buffers (the caller frees them); TRUST_REFUSED_TOO_LARGE when the profile
 * is over PROFILE_MAX_BYTES; TRUST_REFUSED_SIGNATURE_MALFORMED when the signature file is larger
 * than any minisign signature; or the negative errno of reading. On failure *ret_failed_path
 * (when not NULL) is a copy of the path that failed, for the caller to name and free. */
int trust_read_files(const char *profile_path, const char *signature_path, char **ret_profile,
                     size_t *ret_profile_size, char **ret_signature, size_t *ret_signature_size,
                     char **ret_failed_path);

void trust_result_done(struct trust_result *result);

/* A short description of a trust_decide() error, for messages ("rolled back", "expired"...). */
const char *trust_strerror(int error);

/* Describes a refusal with the facts behind it ("serial 5 is lower than the applied serial 7
 * (rollback)", the key ids, the times, the machine and groups), for the caller to print. ctx
 * holds the trusted keys (and, for trust_decide(), the device). Returns a string the caller
 * frees, or NULL when out of memory. */
char *trust_format_refusal(const struct trust_context *ctx, const struct trust_result *result,
                           int error);

/* The agent's build time (seconds since the epoch), the floor under every clock reading. */
int64_t trust_build_time(void);
