/* SPDX-License-Identifier: MIT */
/* The end of a run that changed something: the done stamp (the applied profile and serial
 * recorded), or, with --no-rebuild, the rebuild reported as skipped and nothing recorded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builders.h"
#include "engine.h"
#include "fileio.h"
#include "state.h"

/* Without a rebuild, the previous versions of the secret files go once the new ones are written.
 * A failure is only a warning: they are 0600, and nothing is recorded as applied. */
static void forget_secrets(struct run_state *r, struct phase_result *res)
{
        int k = write_forget_secrets(&r->written);

        if (k < 0)
                snprintf(res->warning, sizeof(res->warning),
                         "Failed to remove the previous versions of the secret files: %s",
                         strerror(-k));
}

/* Keeps the applied profile and its signature, as downloaded, for `nixprov-agent builders`
 * (which verifies them again before use). */
static int save_applied_profile(const struct run_state *r)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL;
        int k;

        if (asprintf(&path, "%s/%s", r->state_dir, BUILDERS_APPLIED_PROFILE) < 0 ||
            asprintf(&sig_path, "%s/%s", r->state_dir, BUILDERS_APPLIED_SIGNATURE) < 0)
                return -ENOMEM;
        k = write_file_atomic(sig_path, r->signature, r->signature_size, 0600, 0);
        if (k < 0)
                return k;
        return write_file_atomic(path, r->profile, r->profile_size, 0600, 0);
}

int phase_done(struct run_state *r, struct phase_result *res)
{
        struct agent_state state = {
            .have_applied = true,
            .applied_serial = r->trust.profile->serial,
            .applied_time = r->trust.trusted_now,
        };
        int k;

        /* Before the serial is recorded: once it is, no later run looks at this write set again,
         * so a secret left in a FILE~ now would stay for good. Killed before the record, the
         * next run applies the serial again and removes them then. */
        k = write_forget_secrets(&r->written);
        if (k < 0)
                return phase_fail(res,
                                  "failed to remove the previous versions of the secret files: "
                                  "%s; the serial is not recorded as applied",
                                  strerror(-k));
        k = save_applied_profile(r);
        if (k >= 0)
                k = state_save(r->state_dir, &state);
        if (k < 0)
                return phase_fail(res, "failed to record the applied profile and serial in %s: %s",
                                  r->state_dir, strerror(-k));
        /* After the serial: an ETag is only ever used with the serial it was saved with. */
        if (r->etag[0] &&
            (k = state_save_etag(r->state_dir, r->trust.profile->serial, r->etag)) < 0)
                snprintf(res->warning, sizeof(res->warning),
                         "Failed to keep the profile's ETag in %s: %s", r->state_dir, strerror(-k));
        return phase_ok(res, "provisioned at serial %" PRIu64, r->trust.profile->serial);
}

int phase_no_rebuild(struct run_state *r, struct phase_result *res)
{
        forget_secrets(r, res);
        snprintf(res->log, sizeof(res->log),
                 "Files written for serial %" PRIu64 "; no rebuild (--no-rebuild), so the serial "
                 "is not recorded as applied.",
                 r->trust.profile->serial);
        return phase_ok(res, "skipped (--no-rebuild): the files are written, nothing was built");
}
