/* SPDX-License-Identifier: MIT */
/* The enroll phase: the device enrolls with the server and waits while it is pending. A device
 * that cannot reach the server goes on: its profile may come from a mirror (an offline install),
 * and its reports wait in the spool until a later run or flush enrolls it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "engine.h"
#include "enroll.h"

static void on_pending(uint64_t waited_ms, void *userdata)
{
        struct run_state *r = userdata;

        if (r->pending_logged)
                return;
        r->pending_logged = true;
        engine_note(r,
                    "pending: waiting up to %" PRIu64 " s for an operator to approve machine %s "
                    "('nixprov fleet approve %s' on the server)",
                    r->config->enroll_wait - MIN(r->config->enroll_wait, waited_ms / 1000),
                    r->id->machine_id, r->id->machine_id);
}

/* The outcome of an answer other than approved: why the run stops here. */
static int refused(struct run_state *r, enum enroll_state state, struct phase_result *res)
{
        const char *m = r->id->machine_id;

        switch (state) {
        case ENROLL_PENDING:
                return phase_fail(res,
                                  "not approved within %" PRIu64 " s: machine %s is still "
                                  "pending. Approve it on the server with 'nixprov fleet approve "
                                  "%s' (or an enrollment policy); the next run asks again",
                                  r->config->enroll_wait, m, m);
        case ENROLL_REVOKED:
                return phase_fail(res,
                                  "machine %s is revoked by the operator: stopping, nothing is "
                                  "provisioned",
                                  m);
        case ENROLL_REFUSED:
                return phase_fail(res,
                                  "the server refuses to enroll machine %s: its enrollment policy "
                                  "admits only the devices it lists or that carry its enrollment "
                                  "token (enroll.token-file)",
                                  m);
        case ENROLL_CONFLICT:
        default:
                return phase_fail(res,
                                  "the server knows machine %s with other device keys (a cloned "
                                  "or reinstalled disk?) and refuses these until an operator runs "
                                  "'nixprov fleet reset %s'",
                                  m, m);
        }
}

int phase_enroll(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *body = NULL;
        struct fetch_error error = {};
        char why[ENGINE_MESSAGE_MAX];
        struct fetch_options o;
        enum enroll_state state;
        size_t size;
        int k;

        k = enroll_request_for(r->config->enroll_token_file, r->ctx->root, r->id, r->key, &body,
                               &size, why, sizeof(why));
        if (k < 0)
                return phase_fail_code(res, AGENT_EXIT_USAGE, "%s", why);

        /* With offline media among the mirrors, an unreachable server is not waited for: the
         * profile is at hand, and the reports wait in the spool anyway. */
        o = *r->fetch;
        for (size_t i = 0; i < r->config->n_urls; i++)
                if (strncmp(r->config->urls[i], "file://", 7) == 0)
                        o.deadline_ms = MIN(o.deadline_ms, o.connect_timeout_ms);
        k = enroll_wait(&o, body, size, r->config->enroll_wait * 1000, on_pending, r, &state,
                        &error);
        if (k < 0) {
                phase_ok(res,
                         "not enrolled: the server cannot be reached (%s: %s); going on with the "
                         "mirrors, the reports wait in the spool",
                         error.url[0] ? error.url : "(no URL)",
                         error.message[0] ? error.message : strerror(-k));
                snprintf(res->warning, sizeof(res->warning), "  %s", res->message);
                return 0;
        }
        if (state == ENROLL_APPROVED)
                return phase_ok(res, "approved");
        if (state == ENROLL_NO_SERVER)
                return phase_ok(res, "skipped: no mirror takes enrollments (file:// or static "
                                     "mirrors)");
        return refused(r, state, res);
}
