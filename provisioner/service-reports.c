/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "report_body.h"
#include "service.h"
#include "signedjson.h"
#include "util.h"

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

int service_add_report(struct store *store, const char *body, size_t body_size, int64_t now,
                       bool *ret_duplicate, char reason[static SERVICE_REASON_MAX])
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
        if (r >= 0)
                r = service_store_report(store, &report, trust.sign_key, body, body_size, now,
                                         ret_duplicate, reason);
out:
        json_decref(json);
        return r;
}
