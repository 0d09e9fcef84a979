/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service.h"
#include "signedjson.h"

static atomic_uint_fast64_t service_refused_pending;

uint64_t service_enrollment_refused_pending(void)
{
        return (uint64_t)atomic_load(&service_refused_pending);
}

/* Said once, when the machine or its state is new: a pending device asks again and again
 * while it waits. */
static void service_log_enrollment(const struct enrollment_request *e, const char *decided_by,
                                   bool known, enum store_state before, enum store_state state)
{
        if ((!known || before != state) && state == STORE_STATE_PENDING)
                log_info("Machine %s (%s) enrolled: pending; 'nixprov fleet approve %s' on this "
                         "host admits it.",
                         e->machine_id, e->hostname, e->machine_id);
        else if (!known || before != state)
                log_info("Machine %s (%s) enrolled: %s%s%s.", e->machine_id, e->hostname,
                         store_state_to_string(state), decided_by ? " by " : "", decided_by ?: "");
        else
                log_debug("Machine %s enrolled again: %s.", e->machine_id,
                          store_state_to_string(state));
}

/* Records a parsed enrollment whose signature verified. */
static int service_record(struct store *store, const struct enrollment_policy *policy,
                          const struct enrollment_request *e, const char *facts, int64_t now,
                          enum store_state *ret_state, char reason[static SERVICE_REASON_MAX])
{
        struct store_enrollment record = {
            .machine_id = e->machine_id,
            .hostname = e->hostname,
            .facts = facts,
            .sign_key = e->sign_key_base64,
            .box_key = e->box_key_base64,
            .decided_by = enrollment_policy_match(policy, e),
            .time = e->time,
        };
        struct store_trust before = {};
        enum store_state state;
        bool known;
        int r;

        r = store_get_trust(store, e->machine_id, &before);
        if (r < 0 && r != -ENOENT) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", e->machine_id);
                return service_fail(reason, service_store_errno(r),
                                    "failed to read the machine's state");
        }
        known = r >= 0 && before.has_keys;
        /* With refuse-unmatched, only devices a rule approves reach the database; one already
         * enrolled (approved by an operator before, or revoked) is still answered its state. */
        if (!record.decided_by && !known && policy && policy->refuse_unmatched) {
                log_info("Machine %s (%s) refused: no rule of the enrollment policy approves it.",
                         e->machine_id, e->hostname);
                return service_fail(reason, -EPERM,
                                    "machine %s is not approved by the enrollment policy, which "
                                    "refuses the others (refuse-unmatched)",
                                    e->machine_id);
        }
        r = store_enroll(store, &record, now, &state);
        if (r == -ESTALE) {
                log_warning("Machine %s: an enrollment of time %" PRId64 " refused, not newer "
                            "than the last accepted one (%" PRId64 "): a replay?",
                            e->machine_id, e->time, before.enroll_time);
                return service_fail(reason, -EEXIST,
                                    "enrollment time %" PRId64 " is not newer than the last "
                                    "accepted enrollment of machine %s (%" PRId64
                                    "): a replay; nothing changed",
                                    e->time, e->machine_id, before.enroll_time);
        }
        if (r == -EKEYREJECTED) {
                log_warning("Machine %s tried to enroll with another device key than the one it "
                            "enrolled with; refused.",
                            e->machine_id);
                return service_fail(reason, -EEXIST,
                                    "machine %s is enrolled with another device key (a cloned or "
                                    "reinstalled disk?): an operator can allow the new key with "
                                    "'nixprov fleet reset %s'",
                                    e->machine_id, e->machine_id);
        }
        if (r == -EUSERS) {
                atomic_fetch_add(&service_refused_pending, 1);
                log_warning("Machine %s (%s) refused: %lld machines are pending already "
                            "(--pending-max).",
                            e->machine_id, e->hostname, (long long)store->limits.pending_machines);
                return service_fail(reason, -EUSERS,
                                    "too many machines are waiting for an operator's approval "
                                    "(%lld): try again later",
                                    (long long)store->limits.pending_machines);
        }
        if (r < 0) {
                log_error_errno(r, "Failed to store the enrollment of %s: %m", e->machine_id);
                return service_fail(reason, service_store_errno(r),
                                    "failed to store the enrollment");
        }
        service_log_enrollment(e, record.decided_by, known, before.state, state);
        *ret_state = state;
        return 0;
}

int service_enroll(struct store *store, const struct enrollment_policy *policy, const char *body,
                   size_t body_size, int64_t now, int64_t window,
                   char ret_machine_id[static STORE_MACHINE_ID_MAX], enum store_state *ret_state,
                   char reason[static SERVICE_REASON_MAX])
{
        struct enrollment_request enrollment = {};
        _cleanup_free_ char *facts = NULL;
        char problem[ENROLLMENT_PROBLEM_MAX] = "";
        enum store_state state = STORE_STATE_UNENROLLED;
        json_t *json = NULL;
        int r;

        /* The size cap is http.c's (413); then the signature's place, before any parsing. */
        r = service_parse_signed(body, body_size, "enrollment", &json, reason);
        if (r < 0)
                return r;
        r = enrollment_request_parse(json, &enrollment, problem);
        if (r == -EBADMSG)
                r = service_fail(reason, -EBADMSG, "%s", problem);
        else if (r < 0)
                r = service_fail(reason, -ENOMEM, "out of memory");
        if (r < 0)
                goto out;

        /* Proof of possession: signed by the key it asks the server to trust. */
        r = signedjson_verify(SIGNEDJSON_CONTEXT_ENROLL, body, body_size, enrollment.sign_key);
        if (r == -EKEYREJECTED)
                r = service_fail(reason, -EKEYREJECTED,
                                 "signature does not verify with the enclosed sign_key");
        else if (r < 0)
                r = service_fail(reason, -EBADMSG, "malformed signature member");
        if (r < 0)
                goto out;

        /* A captured enrollment is only good for window seconds (and never twice: the store). */
        if (enrollment.time > now + window || enrollment.time < now - window) {
                r = service_fail(reason, -EINVAL,
                                 "enrollment time %" PRId64 " is more than %" PRId64
                                 " s from the server's clock (%" PRId64
                                 "): a replay, or the device's clock is wrong",
                                 enrollment.time, window, now);
                goto out;
        }

        facts = json_dumps(enrollment.facts, JSON_COMPACT | JSON_SORT_KEYS);
        if (!facts) {
                r = service_fail(reason, -ENOMEM, "out of memory");
                goto out;
        }
        r = service_record(store, policy, &enrollment, facts, now, &state, reason);
        if (r >= 0) {
                /* Validated as canonical: 32 characters. */
                strcpy(ret_machine_id, enrollment.machine_id);
                *ret_state = state;
        }
out:
        enrollment_request_done(&enrollment);
        json_decref(json);
        return r;
}
