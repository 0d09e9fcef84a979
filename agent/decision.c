/* SPDX-License-Identifier: MIT */
/* What the agent says about a trust decision: one line, with the facts behind a refusal. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"
#include "util.h"

int decision_log(const char *name, const struct trust_context *ctx,
                 const struct trust_result *result, int error, bool quiet)
{
        const struct profile *p = result->profile;
        char key_id[MINISIGN_KEY_ID_STRING_MAX], expires[RFC3339_MAX];
        _cleanup_free_ char *why = NULL;

        if (error < 0) {
                why = trust_format_refusal(ctx, result, error);
                log_error("%s: refused: %s", name, why ?: trust_strerror(error));
                return AGENT_EXIT_REFUSED;
        }
        if (quiet)
                return AGENT_EXIT_OK;
        if (result->decision == TRUST_UP_TO_DATE)
                printf("%s: up to date: serial %" PRIu64 " is already applied; nothing to do\n",
                       name, p->serial);
        else
                printf("%s: would apply serial %" PRIu64 " (%s; strategy %s, expires %s, signed by "
                       "key %s)\n",
                       name, p->serial, ctx->have_applied ? "an update" : "first provisioning",
                       profile_strategy_to_string(p->strategy),
                       format_rfc3339_utc(p->expires, expires),
                       minisign_key_id_to_string(result->key->key_id, key_id));
        return AGENT_EXIT_OK;
}
