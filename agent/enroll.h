/* SPDX-License-Identifier: MIT */
#pragma once

/* The enroll phase: the device tells the server who it is (machine id, hostname, MACs, system,
 * CPUs, memory and its two public keys), signed with its own key, and learns whether it is
 * admitted: approved (by an operator or the server's enrollment policy), pending, or revoked.
 *
 * The request is POST /v1/enroll with a signedjson body (context SIGNEDJSON_CONTEXT_ENROLL):
 *   {"machine_id", "hostname", "macs": [...], "system", "cpus", "memory", "sign_key",
 *    "box_key", "time", ["token_proof"]}
 * The answer is {"machine_id", "state": "pending"|"approved"|"revoked"}; HTTP 409 means the
 * server knows this machine id with other keys (a cloned or reinstalled disk) and admits it only
 * after an operator resets it.
 *
 * An enrollment token, baked into an image for the policy to approve every device that has it,
 * never travels: the request carries the proof of common/enrollment.h, bound to this device's
 * keys. */

#include <stdbool.h>
#include <stdint.h>

#include "devicekey.h"
#include "fetch.h"
#include "identify.h"

#define ENROLL_PATH "/v1/enroll"
#define ENROLL_REQUEST_MAX (16 * 1024)
#define ENROLL_RESPONSE_MAX (16 * 1024)
/* While pending the device asks again after a pause that doubles from the first to the last
 * (with jitter), until its configured wait is over. */
#define ENROLL_BACKOFF_INITIAL_MS UINT64_C(1000)
#define ENROLL_BACKOFF_MAX_MS UINT64_C(60000)

enum enroll_state {
        ENROLL_APPROVED,
        ENROLL_PENDING,
        ENROLL_REVOKED,
        ENROLL_CONFLICT,  /* the machine id is enrolled with other keys */
        ENROLL_REFUSED,   /* HTTP 403: the server's policy admits only devices it knows */
        ENROLL_NO_SERVER, /* no http(s) URL takes enrollments: file:// or static mirrors */
        _ENROLL_STATE_MAX,
};

/* "approved", "pending", "revoked", "conflict", "refused", "no-server"; NULL out of range. */
const char *enroll_state_to_string(enum enroll_state state);

/* Builds the signed enrollment request for id and key at time now; token_key (the key k of the
 * image's token, enrollment_token_file_key()) may be NULL.
 * Returns 0 with a malloc'd NUL-terminated body, or -ENOMEM / -E2BIG / -EINVAL. Pure, for
 * tests. */
int enroll_request(const struct identity *id, const struct devicekey *key, const uint8_t *token_key,
                   int64_t now, char **ret_body, size_t *ret_size);

/* enroll_request() at the current time, with the proof of the enrollment token in
 * ROOT/token_file when token_file is not NULL. Returns 0 with the body, or a negative errno with
 * what went wrong (which file, why) in error: -EPERM (the token file is readable by others),
 * -EINVAL, -E2BIG, -ENOMEM. */
int enroll_request_for(const char *token_file, const char *root, const struct identity *id,
                       const struct devicekey *key, char **ret_body, size_t *ret_size, char *error,
                       size_t error_size);

/* Sends the request once (with o's mirrors, retries and deadline; a mirror that answers 404,
 * 405, 410 or 501 is a web server, not a nixprov server, and is skipped) and returns 0 with the
 * state the server answered, 409 (ENROLL_CONFLICT) and 403 (ENROLL_REFUSED) included, or
 * ENROLL_NO_SERVER when no mirror takes enrollments. Returns a negative errno when the server
 * cannot be reached or answers nonsense (-EBADMSG); *ret_error, when not NULL, describes the last
 * attempt. */
int enroll_send(const struct fetch_options *o, const char *body, size_t size,
                enum enroll_state *ret_state, struct fetch_error *ret_error);

/* Sends the request and, while the answer is "pending", asks again with backoff until wait_ms
 * has passed (0: ask once). on_pending, when not NULL, is called after each pending answer with
 * the time waited so far. Returns like enroll_send(): the last state (ENROLL_PENDING when the
 * wait ran out). */
int enroll_wait(const struct fetch_options *o, const char *body, size_t size, uint64_t wait_ms,
                void (*on_pending)(uint64_t waited_ms, void *userdata), void *userdata,
                enum enroll_state *ret_state, struct fetch_error *ret_error);

/* What 'nixprov-agent enroll' and 'flush' do: enroll_request_for() and enroll_wait(). Returns
 * 0 with the server's answer in *ret_state, or a negative errno with what went wrong in error
 * and *unreachable true when the request was made but the server could not be reached. */
int enroll_device(const char *token_file, const char *root, const struct identity *id,
                  const struct devicekey *key, const struct fetch_options *o, uint64_t wait_ms,
                  enum enroll_state *ret_state, bool *unreachable, char *error, size_t error_size);
