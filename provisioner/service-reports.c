/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "report_body.h"
#include "service.h"
#include "signedjson.h"
#include "util.h"

struct service_rate {
        pthread_mutex_t lock;
        int64_t per_minute;
        uint8_t hash_key[crypto_shorthash_KEYBYTES];
        struct {
                char machine_id[STORE_MACHINE_ID_MAX];
                int64_t minute;
                int64_t count;
        } slots[SERVICE_RATE_SLOTS];
};

int service_rate_new(int64_t per_minute, struct service_rate **ret)
{
        struct service_rate *rate;

        if (per_minute < 1 || !ret)
                return -EINVAL;
        rate = calloc(1, sizeof(*rate));
        if (!rate)
                return -ENOMEM;
        if (pthread_mutex_init(&rate->lock, NULL) != 0) {
                free(rate);
                return -ENOMEM;
        }
        rate->per_minute = per_minute;
        randombytes_buf(rate->hash_key, sizeof(rate->hash_key));
        *ret = rate;
        return 0;
}

struct service_rate *service_rate_free(struct service_rate *rate)
{
        if (rate) {
                (void)pthread_mutex_destroy(&rate->lock);
                free(rate);
        }
        return NULL;
}

bool service_rate_take(struct service_rate *rate, const char *machine_id, int64_t now)
{
        uint8_t hash[crypto_shorthash_BYTES];
        int64_t minute = now / 60;
        bool taken;
        size_t i;

        (void)crypto_shorthash(hash, (const uint8_t *)machine_id, strlen(machine_id),
                               rate->hash_key);
        i = (((size_t)hash[0] << 8) | hash[1]) % SERVICE_RATE_SLOTS;
        (void)pthread_mutex_lock(&rate->lock);
        if (!streq(rate->slots[i].machine_id, machine_id) || rate->slots[i].minute != minute) {
                (void)snprintf(rate->slots[i].machine_id, sizeof(rate->slots[i].machine_id), "%s",
                               machine_id);
                rate->slots[i].minute = minute;
                rate->slots[i].count = 0;
        }
        taken = rate->slots[i].count < rate->per_minute;
        if (taken)
                rate->slots[i].count++;
        (void)pthread_mutex_unlock(&rate->lock);
        return taken;
}

/* The key a report must be signed with: the one its machine enrolled, while it is pending or
 * approved. */
static int service_report_key(struct store *store, const char *machine_id,
                              struct store_trust *ret_trust,
                              uint8_t ret_key[static crypto_sign_PUBLICKEYBYTES],
                              char reason[static SERVICE_REASON_MAX])
{
        struct store_trust trust;
        size_t n;
        int r;

        r = store_get_trust(store, machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && !trust.has_keys))
                return service_fail(reason, -EPERM, "machine %s is not enrolled", machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", machine_id);
                return service_fail(reason, service_store_errno(r), "failed to store the report");
        }
        if (trust.state == STORE_STATE_REVOKED)
                return service_fail(reason, -EPERM, "machine %s is revoked", machine_id);
        if (base64_decode_strict(trust.sign_key, strlen(trust.sign_key), ret_key,
                                 crypto_sign_PUBLICKEYBYTES, &n) < 0 ||
            n != crypto_sign_PUBLICKEYBYTES) {
                log_error("The enrolled sign_key of machine %s is not a key.", machine_id);
                return service_fail(reason, -EIO, "failed to store the report");
        }
        *ret_trust = trust;
        return 0;
}

static int service_store_report(struct store *store, const struct report_body *parsed,
                                const char *sign_key, const char *body, size_t body_size,
                                int64_t now, bool *ret_duplicate,
                                char reason[static SERVICE_REASON_MAX])
{
        /* Stored as received, signature and all: anyone can check it again later. */
        struct store_report report = {
            .machine_id = parsed->machine_id,
            .sign_key = sign_key,
            .seq = (uint64_t)parsed->seq,
            .time = parsed->time,
            .phase = parsed->phase,
            .status = parsed->status,
            .has_serial = parsed->has_serial,
            .serial = (uint64_t)parsed->serial,
            .body = body,
            .body_size = body_size,
        };
        int r;

        r = store_add_report(store, &report, now, ret_duplicate);
        if (r == -EEXIST)
                return service_fail(reason, -EEXIST,
                                    "report %llu of machine %s was already stored with other "
                                    "content",
                                    (unsigned long long)report.seq, report.machine_id);
        if (r == -EPERM) /* revoked or reset between the look and the store */
                return service_fail(reason, -EPERM, "machine %s is not enrolled",
                                    report.machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to store report %s/%llu: %m", report.machine_id,
                                (unsigned long long)report.seq);
                return service_fail(reason, service_store_errno(r), "failed to store the report");
        }
        return 0;
}

int service_add_report(struct store *store, struct service_rate *pending_rate, const char *body,
                       size_t body_size, int64_t now, bool *ret_duplicate,
                       char reason[static SERVICE_REASON_MAX])
{
        uint8_t sign_key[crypto_sign_PUBLICKEYBYTES];
        struct report_body report;
        struct store_trust trust;
        char problem[REPORT_BODY_PROBLEM_MAX];
        json_t *json = NULL;
        int r;

        r = service_parse_signed(body, body_size, "reports", &json, reason);
        if (r < 0)
                return r;
        r = report_body_parse(json, &report, problem);
        if (r < 0) {
                r = service_fail(reason, r, "%s", r == -EBADMSG ? problem : "out of memory");
                goto out;
        }
        r = service_report_key(store, report.machine_id, &trust, sign_key, reason);
        if (r < 0)
                goto out;
        r = signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, body_size, sign_key);
        if (r == -EKEYREJECTED)
                r = service_fail(reason, -EKEYREJECTED,
                                 "report signature does not verify with the key machine %s "
                                 "enrolled",
                                 report.machine_id);
        else if (r < 0)
                r = service_fail(reason, -EBADMSG, "malformed signature member");
        /* Signed by the machine: nobody else can spend its rate. */
        if (r >= 0 && pending_rate && trust.state == STORE_STATE_PENDING &&
            !service_rate_take(pending_rate, report.machine_id, now))
                r = service_fail(reason, -EAGAIN,
                                 "machine %s is pending: at most %lld reports a minute are taken "
                                 "until an operator approves it",
                                 report.machine_id, (long long)pending_rate->per_minute);
        if (r >= 0)
                r = service_store_report(store, &report, trust.sign_key, body, body_size, now,
                                         ret_duplicate, reason);
out:
        json_decref(json);
        return r;
}
