/* SPDX-License-Identifier: MIT */
/* The verify phase: the signature and the trust rules decide whether the profile is applied. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "state.h"

int phase_verify(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *why = NULL;
        char key_id[MINISIGN_KEY_ID_STRING_MAX];
        struct agent_state state;
        int k;

        k = state_load(r->state_dir, &state);
        if (k < 0)
                return phase_fail(res, "the agent state in %s cannot be read: %s", r->state_dir,
                                  k == -EBADMSG ? "damaged" : strerror(-k));
        r->have_applied = state.have_applied;
        r->trust_ctx = (struct trust_context){
            .keys = r->config->keys,
            .n_keys = r->config->n_keys,
            .machine_id = r->id->machine_id,
            .groups = r->config->groups,
            .n_groups = r->config->n_groups,
            .have_applied = state.have_applied,
            .applied_serial = state.applied_serial,
            .applied_time = state.applied_time,
            .build_time = trust_build_time(),
            .now = (int64_t)time(NULL),
        };
        k = trust_decide(&r->trust_ctx, (const uint8_t *)r->profile, r->profile_size, "profile",
                         r->signature, r->signature_size, &r->trust);
        if (k < 0) {
                why = trust_format_refusal(&r->trust_ctx, &r->trust, k);
                return phase_fail(res, "%s", why ?: trust_strerror(k));
        }
        r->up_to_date = r->trust.decision == TRUST_UP_TO_DATE;
        return phase_ok(res, "serial %" PRIu64 " signed by key %s: %s", r->trust.profile->serial,
                        minisign_key_id_to_string(r->trust.key->key_id, key_id),
                        r->up_to_date        ? "already applied, nothing to do"
                        : state.have_applied ? "an update"
                                             : "first provisioning");
}

/* A 304 needs no verification: nothing was downloaded, the applied profile stays. */
bool phase_verify_wanted(const struct run_state *r)
{
        return !r->not_modified;
}

/* The serial is applied already: the run ends, reported as done. The profile's ETag is kept,
 * so that the next run asks If-None-Match (a failure to keep it costs a download, no more). */
int phase_up_to_date(struct run_state *r, struct phase_result *res)
{
        int k;

        if (r->not_modified) {
                snprintf(res->log, sizeof(res->log),
                         "Nothing new: the server answered 304 Not Modified for serial %" PRIu64
                         ", which is applied.",
                         r->applied_serial);
                return phase_ok(res,
                                "up-to-date: 304 Not Modified, serial %" PRIu64
                                " is applied; nothing downloaded or verified",
                                r->applied_serial);
        }
        if (r->etag[0]) {
                k = state_save_etag(r->state_dir, r->trust.profile->serial, r->etag);
                if (k < 0)
                        snprintf(res->warning, sizeof(res->warning),
                                 "Failed to keep the profile's ETag in %s: %s", r->state_dir,
                                 strerror(-k));
        }
        snprintf(res->log, sizeof(res->log),
                 "Nothing to do: serial %" PRIu64 " is already applied.", r->trust.profile->serial);
        return phase_ok(res, "nothing to do: this serial is already applied");
}
