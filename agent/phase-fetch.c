/* SPDX-License-Identifier: MIT */
/* The fetch phase: the profile and its signature, from the first mirror that has them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "minisign.h"
#include "util.h"

int phase_fetch(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL;
        struct buf groups = BUF_INIT(4096);
        struct fetch_error error = {};
        char source[FETCH_URL_MAX];
        int k;

        /* The server picks the machine's own profile, else its first group's, else a default. */
        for (size_t i = 0; i < r->config->n_groups; i++)
                (void)buf_printf(&groups, "%s%s", i ? "%2C" : "?groups=", r->config->groups[i]);
        if (asprintf(&path, "/v1/machines/%s/profile%s", r->id->machine_id, groups.data ?: "") <
                0 ||
            asprintf(&sig_path, "/v1/machines/%s/profile.minisig%s", r->id->machine_id,
                     groups.data ?: "") < 0) {
                buf_free(&groups);
                return phase_fail(res, "out of memory");
        }
        buf_free(&groups);

        k = fetch_get(r->fetch, path, &r->profile, &r->profile_size, &error);
        if (k >= 0) {
                snprintf(source, sizeof(source), "%s", error.url);
                r->fetch->max_size = MINISIGN_FILE_MAX;
                k = fetch_get(r->fetch, sig_path, &r->signature, &r->signature_size, &error);
        }
        if (k < 0)
                return phase_fail(res, "%s: %s (%u attempt%s)", error.url,
                                  error.message[0] ? error.message : strerror(-k), error.attempts,
                                  error.attempts == 1 ? "" : "s");
        return phase_ok(res, "%s (%zu bytes) and its signature (%zu bytes)", source,
                        r->profile_size, r->signature_size);
}
