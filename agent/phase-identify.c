/* SPDX-License-Identifier: MIT */
/* The identify phase: who this device is, its state and log directories, its report spool and
 * its keys (made on the very first run). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "engine.h"
#include "fileio.h"
#include "profile.h"

static int open_dirs_and_spool(struct run_state *r, struct phase_result *res)
{
        struct agent_context *c = r->ctx;
        struct report_spool *spool;
        int k;

        k = context_state_dir(c, &r->state_dir);
        if (k < 0)
                return phase_fail(res, "%s", c->error);
        /* Before anything is written: the spool, the keys and the files of the write phase. */
        k = phase_write_remove_leftovers(r, res);
        if (k < 0)
                return k;
        r->log_dir = path_join_root(c->root, r->config->log_dir);
        if (!r->log_dir)
                return phase_fail(res, "Out of memory.");
        k = mkdir_parents(r->log_dir, 0750);
        if (k < 0)
                return phase_fail(res, "Failed to create %s: %s", r->log_dir, strerror(-k));
        k = context_fetch_options(c, &r->fetch);
        if (k < 0)
                return phase_fail(res, "%s", c->error);
        r->fetch->max_size = PROFILE_MAX_BYTES;
        k = context_spool(c, NULL, r->fetch, false, &spool);
        if (k < 0)
                return phase_fail(res, "%s", c->error);
        return 0;
}

int phase_identify(struct run_state *r, struct phase_result *res)
{
        struct agent_context *c = r->ctx;
        int k;

        k = context_identity(c, &r->id);
        if (k < 0)
                return phase_fail(res, "%s", c->error);
        k = open_dirs_and_spool(r, res);
        if (k < 0)
                return k;
        k = context_keys(c, &r->key);
        if (k < 0)
                return phase_fail_code(res, AGENT_EXIT_WRITE,
                                       "the device keys in %s cannot be loaded or made: %s",
                                       r->state_dir, context_keys_strerror(k));
        /* Every report from here on carries the device's signature. */
        context_sign_reports(c);
        return phase_ok(res, "machine %s (%s), %s, %u CPUs, %" PRIu64 " MiB%s", r->id->machine_id,
                        r->id->hostname, r->id->system, r->id->cpus, r->id->memory_bytes >> 20,
                        c->key_created ? "; device keys made" : "");
}
