/* SPDX-License-Identifier: MIT */
/* The plan phase: the profile becomes Nix settings for this hardware; its sealed values are
 * opened, now that the signature and the trust rules have passed. */
#include <string.h>

#include "engine.h"

int phase_plan(struct run_state *r, struct phase_result *res)
{
        struct plan_hardware hw = {
            .cpus = r->id->cpus,
            .memory_bytes = r->id->memory_bytes,
            /* Until builders are probed, every builder of the profile counts as answering. */
            .builders_answering = (unsigned)r->trust.profile->n_builders,
        };
        char error[SECRETS_ERROR_MAX];
        int k;

        k = plan_build(r->trust.profile, &hw, &r->plan);
        if (k < 0)
                return phase_fail(res, "the profile cannot be turned into Nix settings: %s",
                                  strerror(-k));
        k = secrets_open(r->trust.profile, r->key, &r->secrets, error);
        if (k < 0)
                return phase_fail(res, "%s", error);
        return phase_ok(
            res, "strategy %s, %zu settings, %zu builders, %zu caches; max-jobs %s, cores %s",
            profile_strategy_to_string(r->plan->strategy), r->plan->n_settings, r->plan->n_builders,
            r->plan->n_caches, plan_get(r->plan, "max-jobs") ?: "-",
            plan_get(r->plan, "cores") ?: "-");
}
