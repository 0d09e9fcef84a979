/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "enroll.h"
#include "enrollment.h"
#include "fileio.h"
#include "macro.h"
#include "signedjson.h"
#include "util.h"

static const char *const enroll_states[_ENROLL_STATE_MAX] = {
    [ENROLL_APPROVED] = "approved", [ENROLL_PENDING] = "pending", [ENROLL_REVOKED] = "revoked",
    [ENROLL_CONFLICT] = "conflict", [ENROLL_REFUSED] = "refused", [ENROLL_NO_SERVER] = "no-server",
};

const char *enroll_state_to_string(enum enroll_state state)
{
        return (unsigned)state < _ENROLL_STATE_MAX ? enroll_states[state] : NULL;
}

int enroll_request(const struct identity *id, const struct devicekey *key, const uint8_t *token_key,
                   int64_t now, char **ret_body, size_t *ret_size)
{
        char sign_key[DEVICEKEY_PUBLIC_BASE64_MAX], box_key[DEVICEKEY_PUBLIC_BASE64_MAX];
        _cleanup_free_ char *json = NULL;
        json_t *o, *macs;
        int r = 0;

        if (!id || !key || strlen(id->machine_id) != 32)
                return -EINVAL;
        macs = json_array();
        for (size_t i = 0; macs && i < id->n_macs; i++)
                if (json_array_append_new(macs, json_string(id->macs[i])) < 0)
                        r = -ENOMEM;
        o = json_pack(
            "{s:s, s:s, s:o, s:s, s:I, s:I, s:s, s:s, s:I}", "machine_id", id->machine_id,
            "hostname", id->hostname[0] ? id->hostname : "(none)", "macs", macs, "system",
            id->system[0] ? id->system : "unknown", "cpus", (json_int_t)id->cpus, "memory",
            (json_int_t)(id->memory_bytes > INT64_MAX ? INT64_MAX : id->memory_bytes), "sign_key",
            devicekey_public_to_base64(key->sign_public, sign_key), "box_key",
            devicekey_public_to_base64(key->box_public, box_key), "time", (json_int_t)now);
        if (!o || r < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        if (token_key) {
                uint8_t proof[ENROLLMENT_PROOF_BYTES];
                char proof_base64[sodium_base64_ENCODED_LEN(ENROLLMENT_PROOF_BYTES,
                                                            sodium_base64_VARIANT_ORIGINAL)];

                enrollment_token_proof(token_key, id->machine_id, key->sign_public, key->box_public,
                                       proof);
                (void)sodium_bin2base64(proof_base64, sizeof(proof_base64), proof, sizeof(proof),
                                        sodium_base64_VARIANT_ORIGINAL);
                if (json_object_set_new(o, "token_proof", json_string(proof_base64)) < 0)
                        r = -ENOMEM;
        }
        json = r < 0 ? NULL : json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!json)
                return -ENOMEM;
        if (strlen(json) > ENROLL_REQUEST_MAX)
                return -E2BIG;
        return signedjson_sign(SIGNEDJSON_CONTEXT_ENROLL, json, strlen(json), key->sign_secret,
                               ret_body, ret_size);
}

int enroll_send(const struct fetch_options *o, const char *body, size_t size,
                enum enroll_state *ret_state, struct fetch_error *ret_error)
{
        static const enum enroll_state answers[] = {ENROLL_APPROVED, ENROLL_PENDING,
                                                    ENROLL_REVOKED};
        struct fetch_options options = *o;
        struct fetch_error e = {};
        _cleanup_free_ char *response = NULL;
        size_t response_size = 0;
        const char *state;
        json_t *answer;
        int r;

        options.endpoint_optional = true;
        options.max_size = MAX(ENROLL_RESPONSE_MAX, size);
        r = fetch_post_json(&options, ENROLL_PATH, body, size, &response, &response_size, &e);
        if (ret_error)
                *ret_error = e;
        if (r == -EPROTONOSUPPORT || (r < 0 && !e.deadline_reached &&
                                      (e.http_status == 404 || e.http_status == 405 ||
                                       e.http_status == 410 || e.http_status == 501))) {
                *ret_state = ENROLL_NO_SERVER;
                return 0;
        }
        if (r == -EACCES && (e.http_status == 409 || e.http_status == 403)) {
                *ret_state = e.http_status == 409 ? ENROLL_CONFLICT : ENROLL_REFUSED;
                return 0;
        }
        if (r < 0)
                return r;

        answer = json_loadb(response, response_size, JSON_REJECT_DUPLICATES, NULL);
        state = json_string_value(json_object_get(answer, "state"));
        r = -EBADMSG;
        for (size_t i = 0; state && i < ELEMENTSOF(answers); i++)
                if (streq(state, enroll_states[answers[i]])) {
                        *ret_state = answers[i];
                        r = 0;
                }
        json_decref(answer);
        if (r < 0 && ret_error)
                (void)snprintf(ret_error->message, sizeof(ret_error->message),
                               "the server's answer to the enrollment has no known state");
        return r;
}

int enroll_wait(const struct fetch_options *o, const char *body, size_t size, uint64_t wait_ms,
                void (*on_pending)(uint64_t waited_ms, void *userdata), void *userdata,
                enum enroll_state *ret_state, struct fetch_error *ret_error)
{
        struct fetch_options backoff = *o;
        uint64_t start = monotonic_ms(), end = start + wait_ms;
        enum enroll_state state;
        int r;

        backoff.backoff_initial_ms = ENROLL_BACKOFF_INITIAL_MS;
        backoff.backoff_max_ms = ENROLL_BACKOFF_MAX_MS;
        for (unsigned round = 0;; round++) {
                uint64_t now, pause;

                r = enroll_send(o, body, size, &state, ret_error);
                if (r < 0)
                        return r;
                if (state != ENROLL_PENDING)
                        break;
                now = monotonic_ms();
                if (on_pending)
                        on_pending(now - start, userdata);
                if (now >= end)
                        break;
                /* At least half the backoff, so an approval is noticed soon but the server is
                 * not asked in a tight loop when the jitter draws a small number. */
                pause = fetch_backoff_ms(&backoff, round, randombytes_random());
                pause =
                    MAX(pause,
                        MIN(ENROLL_BACKOFF_INITIAL_MS << MIN(round, 6), ENROLL_BACKOFF_MAX_MS) / 2);
                sleep_until_monotonic_ms(MIN(now + pause, end));
        }
        *ret_state = state;
        return 0;
}

int enroll_request_for(const char *token_file, const char *root, const struct identity *id,
                       const struct devicekey *key, char **ret_body, size_t *ret_size, char *error,
                       size_t error_size)
{
        _cleanup_free_ char *token_path = NULL;
        uint8_t token_key[32];
        int k;

        if (token_file) {
                token_path = path_join_root(root, token_file);
                if (!token_path) {
                        snprintf(error, error_size, "out of memory");
                        return -ENOMEM;
                }
                k = enrollment_token_file_key(token_path, token_key);
                if (k < 0) {
                        snprintf(error, error_size, "the enrollment token %s cannot be used: %s",
                                 token_path,
                                 k == -EPERM    ? "it is readable by others than its owner (it "
                                                  "must be mode 0600)"
                                 : k == -EINVAL ? "not a regular file, or empty"
                                 : k == -E2BIG
                                     ? "larger than " STRINGIFY(ENROLLMENT_TOKEN_MAX) " bytes"
                                     : strerror(-k));
                        return k;
                }
        }
        k = enroll_request(id, key, token_path ? token_key : NULL, (int64_t)time(NULL), ret_body,
                           ret_size);
        sodium_memzero(token_key, sizeof(token_key));
        if (k < 0) {
                snprintf(error, error_size, "the enrollment request cannot be made: %s",
                         strerror(-k));
                return k;
        }
        return 0;
}

int enroll_device(const char *token_file, const char *root, const struct identity *id,
                  const struct devicekey *key, const struct fetch_options *o, uint64_t wait_ms,
                  enum enroll_state *ret_state, bool *unreachable, char *error, size_t error_size)
{
        _cleanup_free_ char *body = NULL;
        struct fetch_error fe = {};
        size_t size;
        int k;

        *unreachable = false;
        k = enroll_request_for(token_file, root, id, key, &body, &size, error, error_size);
        if (k < 0)
                return k;
        k = enroll_wait(o, body, size, wait_ms, NULL, NULL, ret_state, &fe);
        if (k < 0) {
                *unreachable = true;
                snprintf(error, error_size, "Failed to enroll: %s: %s%s",
                         fe.url[0] ? fe.url : "(no URL)", fe.message[0] ? fe.message : strerror(-k),
                         fe.deadline_reached ? " (deadline reached)" : "");
        }
        return k;
}
