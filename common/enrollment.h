/* SPDX-License-Identifier: MIT */
#pragma once

/* Enrollment: what a device sends to POST /v1/enroll, the token proof it may carry, and the
 * server's enrollment policy. No printing.
 *
 * The request is a signed JSON object (signedjson.h, context SIGNEDJSON_CONTEXT_ENROLL), signed
 * by the sign_key it carries:
 *
 *   {"machine_id": 32 lowercase hex, "hostname": 1..253 bytes, "macs": ["aa:bb:cc:dd:ee:ff", ...]
 *    (0..64), "system": 1..64 bytes, "cpus": >= 1, "memory": bytes >= 0, "sign_key": base64 of
 *    32 bytes (Ed25519), "box_key": base64 of 32 bytes (X25519), "time": seconds >= 0,
 *    "token_proof": base64 of 32 bytes (optional)}
 *
 * Members the server does not know are ignored (a newer agent may send more facts).
 *
 * The token proof shows that the device holds an enrollment token without sending it:
 *   k     = BLAKE2b-256(token)                (crypto_generichash, no key)
 *   proof = BLAKE2b-256_k(machine_id || sign_key || box_key)
 * where token is a token file's content without one trailing newline, machine_id the 32 ASCII
 * characters, and the keys their 32 raw bytes.
 *
 * The policy (nixprov serve --enroll-policy FILE), strict YAML (yaml_schema.h):
 *
 *   approve:
 *     machine-ids: [ID, ...]        # 32 hex digits, or a dashed DMI UUID
 *     macs: ["52:54:00:12:34:56"]   # either case
 *     token-files: [/etc/nixprov/enroll-token]   # absolute; regular files of mode 0600 or less
 *   refuse-unmatched: false         # true: an enrollment no rule approves is refused (403),
 *                                   # not recorded as pending
 *
 * Token files are read while parsing; only k is kept, in sodium_malloc() memory. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sodium.h>

#include "json_schema.h"
#include "macro.h"
#include "profile.h" /* struct profile_error */

#define ENROLLMENT_HOSTNAME_MAX 253
#define ENROLLMENT_SYSTEM_MAX 64
#define ENROLLMENT_MACS_MAX 64
#define ENROLLMENT_KEY_BYTES 32
#define ENROLLMENT_PROOF_BYTES 32
#define ENROLLMENT_WINDOW_DEFAULT                                                                  \
        300 /* seconds an enrollment's time may be off the server's clock */
#define ENROLLMENT_POLICY_MAX_BYTES (256 * 1024)
#define ENROLLMENT_POLICY_MACHINE_IDS_MAX 10000
#define ENROLLMENT_POLICY_MACS_MAX 10000
#define ENROLLMENT_POLICY_TOKENS_MAX 16
#define ENROLLMENT_TOKEN_MAX 4096 /* bytes of a token file */
#define ENROLLMENT_PROBLEM_MAX JSON_SCHEMA_PROBLEM_MAX

/* A validated enrollment request. The strings are borrowed from the JSON object it was parsed
 * from; facts is a new reference ({"macs", "system", "cpus", "memory"}) the caller releases with
 * enrollment_request_done(). */
struct enrollment_request {
        const char *machine_id;
        const char *hostname;
        const char *system;
        json_t *macs; /* borrowed array of validated strings */
        int64_t cpus;
        int64_t memory;
        int64_t time;
        const char *sign_key_base64;
        const char *box_key_base64;
        uint8_t sign_key[ENROLLMENT_KEY_BYTES];
        uint8_t box_key[ENROLLMENT_KEY_BYTES];
        bool has_token_proof;
        uint8_t token_proof[ENROLLMENT_PROOF_BYTES];
        json_t *facts;
};

/* Validates the members of json (an object parsed with JSON_REJECT_DUPLICATES) into ret, with
 * the table of json_schema.h ("missing field 'cpus'", "field 'macs' must be ..."). Returns 0, or
 * -EBADMSG with problem[] a message for the client naming the member, or -ENOMEM, or -EINVAL
 * for bad arguments. ret is set only on success. */
int enrollment_request_parse(json_t *json, struct enrollment_request *ret,
                             char problem[static ENROLLMENT_PROBLEM_MAX]);

/* Releases what enrollment_request_parse() made. */
void enrollment_request_done(struct enrollment_request *request);

/* True for "aa:bb:cc:dd:ee:ff" in lowercase. */
bool enrollment_mac_is_valid(const char *s);

/* The token key k of a token (size bytes, the trailing newline already removed). */
void enrollment_token_key(const uint8_t *token, size_t size, uint8_t ret_key[static 32]);

/* Reads an enrollment token file (a regular file, not a link, of mode 0600 or less: a token
 * anyone can read lets anyone enroll; at most ENROLLMENT_TOKEN_MAX bytes, one trailing newline
 * not part of the token) into locked memory, makes its key k into ret_key and wipes it. Used by
 * the server's policy and by the agent. Returns 0, -EPERM (readable or writable by group or
 * others), -EINVAL (not a regular file, or empty), -E2BIG, -ELOOP (a symbolic link), or another
 * negative errno. */
int enrollment_token_file_key(const char *path, uint8_t ret_key[static 32]);

/* The proof for a machine from the token key k. */
void enrollment_token_proof(const uint8_t key[static 32], const char *machine_id,
                            const uint8_t sign_key[static ENROLLMENT_KEY_BYTES],
                            const uint8_t box_key[static ENROLLMENT_KEY_BYTES],
                            uint8_t ret_proof[static ENROLLMENT_PROOF_BYTES]);

struct enrollment_policy {
        char **machine_ids; /* normalized: 32 lowercase hex */
        size_t n_machine_ids;
        char **macs; /* lowercase */
        size_t n_macs;
        char **token_files; /* the paths, for messages */
        size_t n_token_files;
        uint8_t *token_keys; /* sodium_malloc(): 32 bytes per token file */
        size_t n_token_keys;
        bool refuse_unmatched; /* no pending machines: what no rule approves is refused */
};

/* Parses a policy file's content (filename names it in errors; token files are read here).
 * Returns 0, or -EBADMSG/-E2BIG/-ENOMEM with *ret_error filled (file:line:column, key,
 * message); a token file that cannot be read or is readable by its group or others is an error
 * at its line. Never puts a token in a message. */
int enrollment_policy_parse(const char *data, size_t size, const char *filename,
                            struct enrollment_policy **ret, struct profile_error *ret_error);

/* Frees p, wiping the token keys. Accepts NULL; returns NULL. */
struct enrollment_policy *enrollment_policy_free(struct enrollment_policy *p);
DEFINE_POINTER_CLEANUP(enrollment_policy, enrollment_policy_free)

/* Which rule of policy (may be NULL: no policy) approves request: "policy:machine-id",
 * "policy:mac", "policy:token" (static strings), or NULL when none does. */
const char *enrollment_policy_match(const struct enrollment_policy *policy,
                                    const struct enrollment_request *request);
