/* SPDX-License-Identifier: MIT */
/* The fetch phase: the profile and its signature, from the first mirror that has them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "minisign.h"
#include "proof.h"
#include "util.h"

/* GETs path (query percent-encoded) with the device's proof over target (the same, decoded) as
 * an X-Nixprov-Proof header: nixprov serve checks it against the enrolled key, a static mirror
 * ignores it. */
static int fetch_with_proof(struct run_state *r, const char *path, const char *target,
                            char **ret_data, size_t *ret_size, struct fetch_error *error)
{
        char value[PROOF_VALUE_MAX], header[sizeof(PROOF_HEADER) + 2 + PROOF_VALUE_MAX];
        const char *headers[] = {header, NULL};
        int k;

        k = proof_build(r->key->sign_secret, "GET", target, r->id->machine_id, (int64_t)time(NULL),
                        value);
        if (k < 0)
                return k;
        (void)snprintf(header, sizeof(header), "%s: %s", PROOF_HEADER, value);
        r->fetch->headers = headers;
        k = fetch_get(r->fetch, path, ret_data, ret_size, error);
        r->fetch->headers = NULL;
        return k;
}

int phase_fetch(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL, *target = NULL, *sig_target = NULL;
        struct buf groups = BUF_INIT(4096), names = BUF_INIT(4096);
        struct fetch_error error = {};
        char source[FETCH_URL_MAX];
        int k;

        /* The server picks the machine's own profile, else its first group's, else a default. */
        for (size_t i = 0; i < r->config->n_groups; i++) {
                (void)buf_printf(&groups, "%s%s", i ? "%2C" : "?groups=", r->config->groups[i]);
                (void)buf_printf(&names, "%s%s", i ? "," : "?groups=", r->config->groups[i]);
        }
        if (asprintf(&path, "/v1/machines/%s/profile%s", r->id->machine_id, groups.data ?: "") <
                0 ||
            asprintf(&sig_path, "/v1/machines/%s/profile.minisig%s", r->id->machine_id,
                     groups.data ?: "") < 0 ||
            asprintf(&target, "/v1/machines/%s/profile%s", r->id->machine_id, names.data ?: "") <
                0 ||
            asprintf(&sig_target, "/v1/machines/%s/profile.minisig%s", r->id->machine_id,
                     names.data ?: "") < 0) {
                buf_free(&groups);
                buf_free(&names);
                return phase_fail(res, "out of memory");
        }
        buf_free(&groups);
        buf_free(&names);

        k = fetch_with_proof(r, path, target, &r->profile, &r->profile_size, &error);
        if (k >= 0) {
                snprintf(source, sizeof(source), "%s", error.url);
                r->fetch->max_size = MINISIGN_FILE_MAX;
                k = fetch_with_proof(r, sig_path, sig_target, &r->signature, &r->signature_size,
                                     &error);
        }
        if (k < 0)
                return phase_fail(res, "%s: %s (%u attempt%s)", error.url,
                                  error.message[0] ? error.message : strerror(-k), error.attempts,
                                  error.attempts == 1 ? "" : "s");
        return phase_ok(res, "%s (%zu bytes) and its signature (%zu bytes)", source,
                        r->profile_size, r->signature_size);
}
