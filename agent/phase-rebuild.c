/* SPDX-License-Identifier: MIT */
/* The rebuild phase: the configured rebuild command (nixos-rebuild) with the written settings in
 * force, its progress reported as it goes; when it fails, the previous Nix files are put back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "render.h"

static void on_progress(const struct nixlog_counts *counts, uint64_t elapsed_ms, void *userdata)
{
        struct run_state *r = userdata;
        char message[256];

        r->rebuild.counts = *counts;
        snprintf(message, sizeof(message),
                 "%" PRIu64 " s: %" PRIu64 " substituted, %" PRIu64 " built locally, %" PRIu64
                 " built remotely",
                 elapsed_ms / 1000, counts->substituted, counts->built_local, counts->built_remote);
        engine_progress(r, message);
}

/* NIX_CONFIG for the first build: the plan's settings and, with a netrc, the path of the 0600
 * file (never the token), so that private caches answer the first build too. */
static int nix_config_env(const struct run_state *r, char **ret)
{
        _cleanup_free_ char *nix_config = NULL;
        char *with;
        int k;

        k = render_nix_config_env(r->plan, &nix_config);
        if (k < 0)
                return k;
        if (r->netrc_path) {
                if (asprintf(&with, "%snetrc-file = %s\n", nix_config, r->netrc_path) < 0)
                        return -ENOMEM;
                free(nix_config);
                nix_config = with;
        }
        *ret = TAKE_PTR(nix_config);
        return 0;
}

/* The command line: the configuration's command (never the profile's: nixos-rebuild, or a
 * test's stand-in), given nixos-rebuild's arguments. */
static int rebuild_argv(const struct run_state *r, char ***ret)
{
        const struct profile *p = r->trust.profile;
        char **argv = NULL, *command;
        int k;

        k = rebuild_default_argv(profile_rebuild_action_to_string(p->rebuild.action),
                                 p->rebuild.flake, &argv);
        if (k < 0)
                return k;
        command = strdup(r->config->rebuild_command);
        if (!command) {
                rebuild_argv_free(argv);
                return -ENOMEM;
        }
        free(argv[0]);
        argv[0] = command;
        *ret = argv;
        return 0;
}

static int failed(struct run_state *r, int k, struct phase_result *res)
{
        const struct rebuild_result *b = &r->rebuild;
        int restored = write_restore(&r->written);
        const char *restored_text = restored < 0 ? "could NOT be restored" : "restored";

        res->log_tail = b->tail;
        if (b->timed_out)
                return phase_fail(res,
                                  "timed out after %" PRIu64 " s and was killed; previous Nix "
                                  "files %s",
                                  r->trust.profile->rebuild.timeout, restored_text);
        if (b->exec_failed)
                return phase_fail(res, "cannot run %s: %s; previous Nix files %s",
                                  r->config->rebuild_command, strerror(b->exec_errno),
                                  restored_text);
        if (!b->exited && b->signal == 0)
                return phase_fail(res, "cannot run %s: %s; previous Nix files %s",
                                  r->config->rebuild_command, strerror(-k), restored_text);
        return phase_fail(res, "%s %d%s%s; previous Nix files %s",
                          b->exited ? "exited with status" : "killed by signal",
                          b->exited ? b->exit_status : b->signal, b->last_error[0] ? ": " : "",
                          b->last_error, restored_text);
}

int phase_rebuild(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *nix_config = NULL, *log_path = NULL;
        const struct profile *p = r->trust.profile;
        char **argv = NULL;
        int k;

        k = nix_config_env(r, &nix_config);
        if (k >= 0)
                k = rebuild_argv(r, &argv);
        if (k >= 0)
                k = rebuild_log_path(r->log_dir, p->serial, (int64_t)time(NULL), &log_path);
        if (k < 0) {
                argv = rebuild_argv_free(argv);
                (void)write_restore(&r->written);
                return phase_fail(res, "failed to prepare the rebuild: %s", strerror(-k));
        }
        struct rebuild_options o = {
            .argv = argv,
            .nix_config = nix_config,
            .ssh_config = r->ssh_config_path,
            .path = r->config->rebuild_path,
            .timeout_sec = p->rebuild.timeout,
            .log_path = log_path,
            .on_progress = on_progress,
            .progress_interval_sec = p->report.interval,
            .userdata = r,
        };
        k = update_begin(r, res);
        if (k < 0) {
                argv = rebuild_argv_free(argv);
                (void)write_restore(&r->written);
                return k;
        }
        engine_note(r, "%s %s%s%s (log: %s)", argv[0], argv[1], p->rebuild.flake ? " --flake " : "",
                    p->rebuild.flake ?: "", log_path);
        k = rebuild_run(&o, &r->rebuild);
        argv = rebuild_argv_free(argv);
        if (k < 0) {
                (void)failed(r, k, res);
                update_rebuild_failed(r, res);
                return -1;
        }
        return phase_ok(
            res,
            "done in %" PRIu64 " ms: %" PRIu64 " paths substituted, %" PRIu64
            " derivations built locally, %" PRIu64 " remotely, %" PRIu64 " bytes downloaded",
            r->rebuild.duration_ms, r->rebuild.counts.substituted, r->rebuild.counts.built_local,
            r->rebuild.counts.built_remote, r->rebuild.counts.downloaded_bytes);
}
