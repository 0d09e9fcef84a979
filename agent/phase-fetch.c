/* SPDX-License-Identifier: MIT */
/* The fetch phase: the profile and its signature, from the first mirror that has them; nothing
 * when the server says the applied profile is still current (304 Not Modified). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <time.h>

#include "engine.h"
#include "minisign.h"
#include "proof.h"
#include "state.h"
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

/* The ETag of the applied profile, when the state has one for the applied serial: the profile
 * request asks If-None-Match with it. Returns whether there is one (in etag). */
static bool applied_etag(struct run_state *r, char etag[static STATE_ETAG_MAX])
{
        struct agent_state state;
        uint64_t serial;

        if (state_load(r->state_dir, &state) < 0 || !state.have_applied ||
            state_load_etag(r->state_dir, &serial, etag) < 0 || serial != state.applied_serial ||
            !fetch_etag_valid(etag))
                return false;
        r->applied_serial = state.applied_serial;
        return true;
}

/* /v1/machines/ID/NAME?groups=a%2Cb[&wait=N]: the server picks the machine's own profile, else
 * its first group's, else a default. decoded: with "," (what the proof signs, as the server
 * decodes it) instead of "%2C" (what is sent). */
static char *fetch_path(const struct run_state *r, const char *name, unsigned wait, bool decoded)
{
        struct buf query = BUF_INIT(4096);
        const char *comma = decoded ? "," : "%2C";
        char *path;

        for (size_t i = 0; i < r->config->n_groups; i++)
                (void)buf_printf(&query, "%s%s", i ? comma : "?groups=", r->config->groups[i]);
        if (wait > 0)
                (void)buf_printf(&query, "%swait=%u", query.data ? "&" : "?", wait);
        if (asprintf(&path, "/v1/machines/%s/%s%s", r->id->machine_id, name, query.data ?: "") < 0)
                path = NULL;
        buf_free(&query);
        return path;
}

/* The profile, asked If-None-Match etag when not NULL. 0, FETCH_NOT_MODIFIED, or -errno. */
static int fetch_profile(struct run_state *r, const char *etag, struct fetch_error *error)
{
        _cleanup_free_ char *path = NULL, *target = NULL;
        uint64_t stall_ms = r->fetch->stall_timeout_ms, deadline_ms = r->fetch->deadline_ms;
        unsigned wait = etag ? r->wait_seconds : 0;
        int k;

        path = fetch_path(r, "profile", wait, false);
        target = fetch_path(r, "profile", 0, true); /* the server's proof covers the groups only */
        if (!path || !target)
                return -ENOMEM;
        /* A held request sends nothing until a profile is published or the wait ends. */
        if (wait > 0) {
                r->fetch->stall_timeout_ms = MAX(stall_ms, (uint64_t)wait * 1000 + 30000);
                r->fetch->deadline_ms = MAX(deadline_ms, (uint64_t)wait * 1000 + 60000);
        }
        r->fetch->if_none_match = etag;
        k = fetch_with_proof(r, path, target, &r->profile, &r->profile_size, error);
        r->fetch->if_none_match = NULL;
        r->fetch->stall_timeout_ms = stall_ms;
        r->fetch->deadline_ms = deadline_ms;
        return k;
}

int phase_fetch(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *sig_path = NULL, *sig_target = NULL;
        char source[FETCH_URL_MAX], etag[STATE_ETAG_MAX];
        struct fetch_error error = {};
        bool have_etag;
        int k;

        have_etag = applied_etag(r, etag);
        sig_path = fetch_path(r, "profile.minisig", 0, false);
        sig_target = fetch_path(r, "profile.minisig", 0, true);
        if (!sig_path || !sig_target)
                return phase_fail(res, "out of memory");

        k = fetch_profile(r, have_etag ? etag : NULL, &error);
        if (k == FETCH_NOT_MODIFIED) {
                r->not_modified = r->up_to_date = true;
                return phase_ok(res,
                                "%s: 304 Not Modified, the applied profile (serial %" PRIu64
                                ") is current; nothing downloaded",
                                error.url, r->applied_serial);
        }
        if (k >= 0) {
                size_t max_size = r->fetch->max_size;

                snprintf(source, sizeof(source), "%s", error.url);
                snprintf(r->etag, sizeof(r->etag), "%s", error.etag);
                r->fetch->max_size = MINISIGN_FILE_MAX;
                k = fetch_with_proof(r, sig_path, sig_target, &r->signature, &r->signature_size,
                                     &error);
                r->fetch->max_size = max_size;
        }
        if (k < 0)
                return phase_fail(res, "%s: %s (%u attempt%s)", error.url,
                                  error.message[0] ? error.message : strerror(-k), error.attempts,
                                  error.attempts == 1 ? "" : "s");
        return phase_ok(res, "%s (%zu bytes) and its signature (%zu bytes)", source,
                        r->profile_size, r->signature_size);
}
