/* SPDX-License-Identifier: MIT */
/* The rebuild phase: the configured rebuild command (nixos-rebuild) with the written settings in
 * force, its progress reported as it goes; when it fails, the previous Nix files are put back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fileio.h"
#include "render.h"
#include "util.h"

/* The first build's copy of the ssh_config under a root (struct root_view), in the state
 * directory; removed after the build. */
#define ROOT_VIEW_SSH_CONFIG "first-build-ssh_config"
/* What the pre-flight reads of the dry run's output at most. */
#define PREFLIGHT_OUTPUT_MAX (4 * 1024 * 1024)

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

/* Under a root other than "/" (an installer's --root /mnt), the written machines file and
 * ssh_config name the device's own paths (/etc/nix/nixprov-builder-0.key), which the first
 * build must not use: it gets the builders inline in NIX_CONFIG instead of
 * "@/etc/nix/nixprov-machines", and a copy of the ssh_config in the state directory, both with
 * every identity file under the root. */
struct root_view {
        char *machines;        /* "LINE;LINE": the builders setting's value; NULL: no view */
        char *ssh_config_path; /* the copy, absolute; NULL: none */
};

static void root_view_done(struct root_view *v)
{
        if (v->ssh_config_path)
                (void)unlink(v->ssh_config_path);
        free(v->ssh_config_path);
        free(v->machines);
        *v = (struct root_view){};
}

/* Renders the machines file and the ssh_config with every identity file under root. */
static int render_under_root(struct plan *plan, const char *root, uint64_t serial,
                             char **ret_machines, char **ret_ssh_config)
{
        _cleanup_free_ char **own = calloc(plan->n_builders + 1, sizeof(char *));
        int k = 0;

        if (!own)
                return -ENOMEM;
        for (size_t i = 0; k >= 0 && i < plan->n_builders; i++) {
                own[i] = plan->builders[i].identity_path;
                if (own[i] && !(plan->builders[i].identity_path = path_join_root(root, own[i])))
                        k = -ENOMEM;
        }
        if (k >= 0)
                k = render_machines(plan, ret_machines);
        if (k >= 0 && ret_ssh_config)
                k = render_ssh_config(plan, serial, ret_ssh_config);
        for (size_t i = 0; i < plan->n_builders; i++)
                if (own[i]) {
                        free(plan->builders[i].identity_path);
                        plan->builders[i].identity_path = own[i];
                }
        return k;
}

static int root_view_make(struct run_state *r, struct root_view *v)
{
        _cleanup_free_ char *root = realpath(r->ctx->root, NULL), *state = NULL, *ssh = NULL;
        bool aliases = render_plan_has_ssh_aliases(r->plan);
        char *c;
        int k;

        if (!root)
                return -errno;
        if (streq(root, "/") || r->plan->n_builders == 0)
                return 0;
        if (!string_is_safe(root, 4096, "/._+@-")) /* in a machines line and NIX_SSHOPTS */
                return -EINVAL;
        k = render_under_root(r->plan, root, r->trust.profile->serial, &v->machines,
                              aliases ? &ssh : NULL);
        if (k < 0)
                return k;
        for (c = v->machines; *c; c++) /* one line of NIX_CONFIG: machines separated by ';' */
                if (*c == '\n')
                        *c = c[1] ? ';' : '\0';
        if (!aliases)
                return 0;
        state = realpath(r->state_dir, NULL);
        if (!state)
                return -errno;
        if (asprintf(&v->ssh_config_path, "%s/" ROOT_VIEW_SSH_CONFIG, state) < 0) {
                v->ssh_config_path = NULL;
                return -ENOMEM;
        }
        if (!string_is_safe(v->ssh_config_path, 4096, "/._+@-"))
                return -EINVAL;
        return write_file_atomic(v->ssh_config_path, ssh, strlen(ssh), 0644, 0);
}

/* NIX_CONFIG for the first build: the plan's settings and, with a netrc, the path of the 0600
 * file (never the token), so that private caches answer the first build too; under a root,
 * the builders inline (struct root_view). */
static int nix_config_env(const struct run_state *r, const struct root_view *v, char **ret)
{
        _cleanup_free_ char *nix_config = NULL;
        char *with, *line;
        int k;

        k = render_nix_config_env(r->plan, &nix_config);
        if (k < 0)
                return k;
        if (v->machines) {
                /* The plan's "builders = @/etc/nix/nixprov-machines" line goes. */
                line = strncmp(nix_config, "builders = ", 11) == 0
                           ? nix_config
                           : strstr(nix_config, "\nbuilders = ");
                if (line) {
                        line += *line == '\n';
                        memmove(line, strchrnul(line, '\n') + 1,
                                strlen(strchrnul(line, '\n') + 1) + 1);
                }
                if (asprintf(&with, "%sbuilders = %s\n", nix_config, v->machines) < 0)
                        return -ENOMEM;
                free(nix_config);
                nix_config = with;
        }
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

/* The pre-flight's command line: the rebuild command with the action dry-build, in plain text
 * (no --log-format: the summary is what Nix prints for people). */
static int dry_run_argv(const struct run_state *r, char ***ret)
{
        const char *flake = r->trust.profile->rebuild.flake;
        char **argv = calloc(5, sizeof(char *));
        size_t n = 0;

        if (!argv)
                return -ENOMEM;
        if (!(argv[n++] = strdup(r->config->dry_run_command ?: r->config->rebuild_command)) ||
            !(argv[n++] = strdup("dry-build")) || (flake && !(argv[n++] = strdup("--flake"))) ||
            (flake && !(argv[n++] = strdup(flake)))) {
                rebuild_argv_free(argv);
                return -ENOMEM;
        }
        *ret = argv;
        return 0;
}

bool phase_preflight_wanted(const struct run_state *r)
{
        return r->trust.profile->rebuild.max_local_builds != PROFILE_NO_LIMIT;
}

/* Runs the dry run into log_path and parses what it printed into r->preflight. */
static int dry_run(struct run_state *r, const char *log_path, struct phase_result *res)
{
        _cleanup_free_ char *nix_config = NULL, *output = NULL;
        struct rebuild_result result = {};
        struct root_view view = {};
        char **argv = NULL;
        size_t size;
        int k;

        k = root_view_make(r, &view);
        if (k >= 0)
                k = nix_config_env(r, &view, &nix_config);
        if (k >= 0)
                k = dry_run_argv(r, &argv);
        if (k < 0) {
                root_view_done(&view);
                return phase_fail(res, "failed to prepare the dry run: %s", strerror(-k));
        }
        struct rebuild_options o = {
            .argv = argv,
            .nix_config = nix_config,
            .ssh_config = view.ssh_config_path ?: r->ssh_config_path,
            .path = r->config->rebuild_path,
            .timeout_sec = r->trust.profile->rebuild.timeout,
            .log_path = log_path,
        };
        engine_note(r, "%s dry-build (log: %s)", argv[0], log_path);
        k = rebuild_run(&o, &result);
        argv = rebuild_argv_free(argv);
        root_view_done(&view);
        if (k < 0 && result.exec_failed)
                return phase_fail(res, "cannot run %s dry-build: %s",
                                  r->config->dry_run_command ?: r->config->rebuild_command,
                                  strerror(result.exec_errno));
        if (k < 0)
                return phase_fail(res, "the dry run failed (%s %d)%s%s; see %s",
                                  result.exited ? "exit status" : "signal",
                                  result.exited ? result.exit_status : result.signal,
                                  result.last_error[0] ? ": " : "", result.last_error, log_path);
        k = read_file_bounded(log_path, PREFLIGHT_OUTPUT_MAX, &output, &size);
        if (k >= 0)
                k = dryrun_parse(output, size, &r->preflight);
        if (k < 0)
                return phase_fail(res, "cannot read what the dry run will do from %s: %s", log_path,
                                  k == -EBADMSG ? "a summary line does not parse" : strerror(-k));
        r->have_preflight = true;
        return 0;
}

int phase_preflight(struct run_state *r, struct phase_result *res)
{
        const struct profile *p = r->trust.profile;
        _cleanup_free_ char *log_path = NULL;
        const struct dryrun_summary *s = &r->preflight;
        uint64_t local;
        int k;

        if (asprintf(&log_path, "%s/dry-build-%" PRIu64 "-%" PRId64 ".log", r->log_dir, p->serial,
                     (int64_t)time(NULL)) < 0) {
                log_path = NULL;
                k = phase_fail(res, "Out of memory.");
        } else {
                (void)unlink(log_path); /* an earlier attempt in the same second */
                k = dry_run(r, log_path, res);
        }
        if (k < 0) {
                (void)write_restore(&r->written);
                return k;
        }
        /* While a builder answers and the device builds nothing itself, none is local. */
        local = r->plan->local_builds == PLAN_LOCAL_BUILDS_NONE ? 0 : s->to_build;
        if (local > p->rebuild.max_local_builds) {
                int restored = write_restore(&r->written);
                return phase_fail(res,
                                  "the build would compile %" PRIu64 " derivations on this "
                                  "device, more than rebuild.max-local-builds (%" PRIu64
                                  "); nothing was built, previous Nix files %s",
                                  local, p->rebuild.max_local_builds,
                                  restored < 0 ? "could NOT be restored" : "restored");
        }
        return phase_ok(res,
                        "%" PRIu64 " derivations to build (%" PRIu64 " locally), %" PRIu64
                        " paths to fetch (%" PRIu64 " bytes download, %" PRIu64 " unpacked)",
                        s->to_build, local, s->to_fetch, s->download_bytes, s->unpacked_bytes);
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
        struct root_view view = {};
        char **argv = NULL;
        int k;

        k = root_view_make(r, &view);
        if (k >= 0)
                k = nix_config_env(r, &view, &nix_config);
        if (k >= 0)
                k = rebuild_argv(r, &argv);
        if (k >= 0)
                k = rebuild_log_path(r->log_dir, p->serial, (int64_t)time(NULL), &log_path);
        if (k < 0) {
                argv = rebuild_argv_free(argv);
                root_view_done(&view);
                (void)write_restore(&r->written);
                return phase_fail(res, "failed to prepare the rebuild: %s", strerror(-k));
        }
        struct rebuild_options o = {
            .argv = argv,
            .nix_config = nix_config,
            .ssh_config = view.ssh_config_path ?: r->ssh_config_path,
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
        root_view_done(&view);
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
