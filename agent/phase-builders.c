/* SPDX-License-Identifier: MIT */
/* The builders phase: probe every builder, re-plan with the number that answered (which decides
 * where builds run, plan.h step 6, and says so first in the report), and leave out of the plan
 * the required builders that did not answer (one not required is kept: Nix skips a builder it
 * cannot reach). */
#include <stdio.h>
#include <string.h>

#include "engine.h"

struct probed {
        struct builder_probe results[PROFILE_MAX_BUILDERS];
        unsigned answering;
        const char *mismatch; /* the first required builder with another host key */
        char count[64];       /* "2 of 3 builders answer" */
        char details[REPORT_MESSAGE_MAX - 512];
};

bool phase_builders_wanted(const struct run_state *r)
{
        return r->plan && r->plan->n_builders > 0;
}

/* Appends text to dst (a NUL-terminated string in size bytes), cutting it off with "..." when
 * there is no room: the phase's report message stays bounded whatever the builders said. */
static void append_bounded(char *dst, size_t size, const char *text)
{
        size_t used = strlen(dst), len = strlen(text);

        if (used + len < size) {
                memcpy(dst + used, text, len + 1);
                return;
        }
        if (used + 4 > size)
                return;
        memcpy(dst + used, text, size - used - 4);
        memcpy(dst + size - 4, "...", 4);
}

/* Counts the builders that answered and describes each one's probe. */
static void summarize(const struct plan *plan, struct probed *p)
{
        size_t n = plan->n_builders;
        char line[512];

        for (size_t i = 0; i < n; i++) {
                if (p->results[i].state == BUILDER_STATE_OK)
                        p->answering++;
                else if (p->results[i].state == BUILDER_STATE_HOST_KEY_MISMATCH &&
                         plan->builders[i].required && !p->mismatch)
                        p->mismatch = plan->builders[i].uri;
        }
        snprintf(p->count, sizeof(p->count), "%u of %zu builder%s answer%s", p->answering, n,
                 n == 1 ? "" : "s", n == 1 ? "s" : "");
        p->details[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                append_bounded(p->details, sizeof(p->details), "; ");
                builders_format(plan->builders[i].uri, &p->results[i], line, sizeof(line));
                append_bounded(p->details, sizeof(p->details), line);
                if (p->results[i].state != BUILDER_STATE_OK)
                        append_bounded(p->details, sizeof(p->details),
                                       plan->builders[i].required ? " (left out)"
                                                                  : " (kept: not required)");
        }
}

/* Where builds run now, for the start of the report. */
static void describe_decision(const struct plan *plan, char *line, size_t size)
{
        const char *max_jobs = plan_get(plan, "max-jobs") ?: "-";

        switch (plan->local_builds) {
        case PLAN_LOCAL_BUILDS_NONE:
                snprintf(line, size, "building remotely only (max-jobs = %s)", max_jobs);
                break;
        case PLAN_LOCAL_BUILDS_ALSO:
                snprintf(line, size,
                         "building remotely and locally (nix.local-builds: true, max-jobs = %s)",
                         max_jobs);
                break;
        case PLAN_LOCAL_BUILDS_FALLBACK:
                snprintf(line, size,
                         "none answers: building locally (nix.fallback-local: true, max-jobs = %s)",
                         max_jobs);
                break;
        default:
                snprintf(line, size, "max-jobs = %s", max_jobs);
                break;
        }
}

/* Plans again with the builders that answered; the required ones that did not are left out. */
static int replan(struct run_state *r, const struct probed *p, struct phase_result *res)
{
        struct plan_hardware hw = {
            .cpus = r->id->cpus,
            .memory_bytes = r->id->memory_bytes,
            .builders_answering = p->answering, /* max-jobs follows them (plan.h, step 6) */
        };
        struct plan *replanned = NULL;
        int k;

        k = plan_build(r->trust.profile, &hw, &replanned);
        if (k < 0)
                return phase_fail(res, "the profile cannot be planned again: %s", strerror(-k));
        if (replanned->local_builds == PLAN_LOCAL_BUILDS_UNUSABLE) {
                plan_free(replanned);
                return phase_fail(res,
                                  "no builder answers and the profile does not allow building "
                                  "locally (nix.fallback-local: false); nothing is written. %s%s",
                                  p->count, p->details);
        }
        for (size_t i = r->plan->n_builders; i-- > 0;)
                if (p->results[i].state != BUILDER_STATE_OK && replanned->builders[i].required)
                        (void)plan_remove_builder(replanned, i);
        plan_free(r->plan);
        r->plan = replanned;
        return 0;
}

int phase_builders(struct run_state *r, struct phase_result *res)
{
        struct probed p = {};
        const char *identities[PROFILE_MAX_BUILDERS];
        char message[REPORT_MESSAGE_MAX - 256], line[512];
        int k;

        /* Sealed identities log in from the memory they were opened into: their files are
         * written only in the next phase. */
        for (size_t i = 0; i < PROFILE_MAX_BUILDERS; i++)
                identities[i] = secrets_identity(&r->secrets, i);
        k = builders_probe(r->plan, r->ctx->root, identities, BUILDERS_DEADLINE_DEFAULT_MS,
                           p.results);
        if (k < 0)
                return phase_fail(res, "the probes could not be started: %s", strerror(-k));
        summarize(r->plan, &p);
        if (p.mismatch)
                return phase_fail(res,
                                  "the required builder %s shows another host key than the "
                                  "pinned one: possible attack, nothing is written. %s%s",
                                  p.mismatch, p.count, p.details);
        k = replan(r, &p, res);
        if (k < 0)
                return k;
        /* What was decided comes first: the builders' lines may be cut off. */
        describe_decision(r->plan, line, sizeof(line));
        snprintf(message, sizeof(message), "%s: %s", p.count, line);
        append_bounded(message, sizeof(message), p.details);
        return phase_ok(res, "%s", message);
}
