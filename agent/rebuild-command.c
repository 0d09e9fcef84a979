/* SPDX-License-Identifier: MIT */
/* nixprov-agent rebuild: runs a command exactly as the rebuild phase runs nixos-rebuild (clean
 * environment with NIX_CONFIG, own process group, timeout, internal-json log parsed), for
 * integration tests and for an operator debugging a device. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "log.h"
#include "rebuild.h"
#include "util.h"

static void show_help(FILE *f)
{
        fprintf(f,
                "Usage: nixprov-agent rebuild [OPTIONS...] -- COMMAND [ARGS...]\n\n"
                "Runs COMMAND the way the rebuild phase runs nixos-rebuild: stdin from\n"
                "/dev/null, its own process group, a clean environment (PATH, HOME, LANG and\n"
                "NIX_CONFIG only), its output parsed as Nix's internal-json log, and killed as a\n"
                "group at the timeout. Prints what was substituted and built, and the outcome.\n"
                "Exits 0 when COMMAND succeeded, 7 when it failed, timed out or could not run.\n\n"
                "  --nix-config FILE   pass the contents of FILE as NIX_CONFIG (max %d bytes)\n"
                "  --timeout SECONDS   kill the command's group after this long (default: none)\n"
                "  --kill-grace S      seconds from SIGTERM to SIGKILL (default %d)\n"
                "  --log FILE          write all output to FILE, created new with mode 0640\n"
                "  --path PATH         the command's PATH (default %s)\n"
                "  --progress SECONDS  print the counts to stderr this often\n"
                "  --json              print the result as one JSON object\n"
                "  -h, --help          show this help\n",
                REBUILD_NIX_CONFIG_MAX, REBUILD_KILL_GRACE_SEC_DEFAULT, REBUILD_PATH_DEFAULT);
}

static int parse_seconds(const char *option, const char *s, uint64_t *ret)
{
        uint64_t v;
        int r = parse_u64(s, &v);

        /* A bound that keeps milliseconds far from overflowing. */
        if (r < 0 || v == 0 || v > UINT64_C(1) << 40)
                return log_error_errno(r < 0 ? r : -ERANGE,
                                       "Invalid %s '%s': expected a positive number of seconds.",
                                       option, s);
        *ret = v;
        return 0;
}

static void print_progress(const struct nixlog_counts *c, uint64_t elapsed_ms, void *userdata)
{
        (void)userdata;
        log_info("Progress after %llu s: %llu substituted, %llu built locally, %llu built "
                 "remotely, %llu bytes downloaded.",
                 (unsigned long long)(elapsed_ms / 1000), (unsigned long long)c->substituted,
                 (unsigned long long)c->built_local, (unsigned long long)c->built_remote,
                 (unsigned long long)c->downloaded_bytes);
}

static const char *outcome(const struct rebuild_result *res, int r, char *buf, size_t size)
{
        if (r == 0)
                return "success";
        if (res->exec_failed)
                (void)snprintf(buf, size, "could not run the command: %s",
                               strerror(res->exec_errno));
        else if (res->timed_out)
                (void)snprintf(buf, size, "timed out, process group killed%s",
                               res->killed ? " with SIGKILL" : "");
        else if (res->exited)
                (void)snprintf(buf, size, "failed with exit status %d", res->exit_status);
        else if (res->signal)
                (void)snprintf(buf, size, "killed by signal %s",
                               sigabbrev_np(res->signal) ?: "(unknown)");
        else
                (void)snprintf(buf, size, "failed: %s", strerror(-r));
        return buf;
}

static int print_json(const struct rebuild_result *res, int r, const char *what)
{
        const struct nixlog_counts *c = &res->counts;
        json_t *machines = json_array(), *o;
        char *text;

        for (size_t i = 0; machines && i < res->n_machines; i++)
                (void)json_array_append_new(machines, json_string(res->machines[i]));
        o = json_pack("{s:b, s:s, s:b, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o*,"
                      " s:I, s:I, s:I, s:s?, s:s, s:i}",
                      "success", r == 0, "outcome", what, "timed_out", res->timed_out,
                      "exit_status", res->exited ? res->exit_status : -1, "signal", res->signal,
                      "started", res->started, "duration_ms", (json_int_t)res->duration_ms,
                      "substituted", (json_int_t)c->substituted, "copied", (json_int_t)c->copied,
                      "built_local", (json_int_t)c->built_local, "built_remote",
                      (json_int_t)c->built_remote, "downloaded_bytes",
                      (json_int_t)c->downloaded_bytes, "copied_bytes", (json_int_t)c->copied_bytes,
                      "machines", machines, "lines", (json_int_t)c->lines, "bad_lines",
                      (json_int_t)c->bad_lines, "overlong_lines", (json_int_t)c->overlong_lines,
                      "error", res->last_error[0] ? res->last_error : NULL, "tail", res->tail,
                      "log_errno", res->log_errno);
        if (!o)
                return log_oom();
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return log_oom();
        puts(text);
        free(text);
        return 0;
}

static void print_text(const struct rebuild_result *res, int r, const char *what)
{
        const struct nixlog_counts *c = &res->counts;

        printf("substituted: %llu\n", (unsigned long long)c->substituted);
        printf("built locally: %llu\n", (unsigned long long)c->built_local);
        printf("built remotely: %llu", (unsigned long long)c->built_remote);
        for (size_t i = 0; i < res->n_machines; i++)
                printf("%s%s", i == 0 ? " (" : ", ", res->machines[i]);
        printf("%s\n", res->n_machines ? ")" : "");
        printf("downloaded bytes: %llu\n", (unsigned long long)c->downloaded_bytes);
        printf("duration: %llu.%03llu s\n", (unsigned long long)(res->duration_ms / 1000),
               (unsigned long long)(res->duration_ms % 1000));
        printf("outcome: %s\n", what);
        if (r < 0 && res->last_error[0])
                printf("last error: %s\n", res->last_error);
        if (r < 0 && res->tail[0])
                printf("log tail:\n%s", res->tail);
}

enum {
        ARG_NIX_CONFIG = 0x100,
        ARG_TIMEOUT,
        ARG_KILL_GRACE,
        ARG_LOG,
        ARG_PATH,
        ARG_PROGRESS,
        ARG_JSON,
};

/* One option other than --help. Returns 0, or -1 after logging why it is refused. */
static int parse_option(struct rebuild_options *o, const char **nix_config_file, bool *json, int c,
                        const char *arg)
{
        switch (c) {
        case ARG_NIX_CONFIG:
                *nix_config_file = arg;
                return 0;
        case ARG_TIMEOUT:
                return parse_seconds("--timeout", arg, &o->timeout_sec) < 0 ? -1 : 0;
        case ARG_KILL_GRACE:
                return parse_seconds("--kill-grace", arg, &o->kill_grace_sec) < 0 ? -1 : 0;
        case ARG_LOG:
                o->log_path = arg;
                return 0;
        case ARG_PATH:
                o->path = arg;
                return 0;
        case ARG_PROGRESS:
                if (parse_seconds("--progress", arg, &o->progress_interval_sec) < 0)
                        return -1;
                o->on_progress = print_progress;
                return 0;
        case ARG_JSON:
                *json = true;
                return 0;
        default:
                show_help(stderr);
                return -1;
        }
}

/* Returns 1 to go on (o->argv set), or an exit code's negation. */
static int parse_args(int argc, char **argv, struct rebuild_options *o,
                      const char **nix_config_file, bool *json)
{
        static const struct option options[] = {
            {"nix-config", required_argument, NULL, ARG_NIX_CONFIG},
            {"timeout", required_argument, NULL, ARG_TIMEOUT},
            {"kill-grace", required_argument, NULL, ARG_KILL_GRACE},
            {"log", required_argument, NULL, ARG_LOG},
            {"path", required_argument, NULL, ARG_PATH},
            {"progress", required_argument, NULL, ARG_PROGRESS},
            {"json", no_argument, NULL, ARG_JSON},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        /* "+": stop at the first non-option, so COMMAND's own options stay its own. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                if (c == 'h') {
                        show_help(stdout);
                        return -AGENT_EXIT_OK;
                }
                if (parse_option(o, nix_config_file, json, c, optarg) < 0)
                        return -AGENT_EXIT_USAGE;
        }
        if (optind >= argc) {
                log_error("No command given: 'nixprov-agent rebuild [OPTIONS...] -- COMMAND "
                          "[ARGS...]'.");
                return -AGENT_EXIT_USAGE;
        }
        if (o->path && !*o->path) {
                log_error("Invalid --path: empty.");
                return -AGENT_EXIT_USAGE;
        }
        o->argv = argv + optind;
        return 1;
}

/* The --nix-config file, a nix.conf text. Returns 0, or -1 after logging. */
static int read_nix_config(const char *path, char **ret)
{
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_bounded(path, REBUILD_NIX_CONFIG_MAX, &text, &size);
        if (r < 0) {
                log_error_errno(r, "Failed to read %s: %m", path);
                return -1;
        }
        if (strlen(text) != size) {
                log_error("%s contains a NUL byte: not a nix.conf text.", path);
                return -1;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

/* Logs why a rebuild that ran failed. */
static void log_failure(const struct rebuild_options *o, const struct rebuild_result *res,
                        const char *what)
{
        if (res->exec_failed)
                log_error("Could not run the rebuild command %s: %s.", o->argv[0],
                          strerror(res->exec_errno));
        else if (res->timed_out)
                log_error("Rebuild timed out after %llu s; its process group was "
                          "killed%s.",
                          (unsigned long long)o->timeout_sec,
                          res->killed ? " (SIGKILL after the grace period)" : "");
        else
                log_error("Rebuild %s%s%s", what, res->last_error[0] ? ": " : ".", res->last_error);
}

int cmd_rebuild(int argc, char **argv)
{
        struct rebuild_options o = {0};
        struct rebuild_result res;
        _cleanup_free_ char *nix_config = NULL;
        const char *nix_config_file = NULL;
        char buf[256];
        const char *what;
        bool json = false;
        int r;

        r = parse_args(argc, argv, &o, &nix_config_file, &json);
        if (r <= 0)
                return -r;
        if (nix_config_file) {
                if (read_nix_config(nix_config_file, &nix_config) < 0)
                        return AGENT_EXIT_USAGE;
                o.nix_config = nix_config;
        }

        r = rebuild_run(&o, &res);
        if (r < 0 && !res.started && !res.exec_failed) {
                if (r == -EEXIST)
                        log_error("Log file %s exists already: one log per attempt.", o.log_path);
                else
                        log_error_errno(r, "Failed to run %s: %m", o.argv[0]);
                return AGENT_EXIT_REBUILD;
        }
        if (res.log_errno)
                log_warning_errno(-res.log_errno, "Failed to write the log file %s: %m",
                                  o.log_path);

        what = outcome(&res, r, buf, sizeof(buf));
        if (json) {
                if (print_json(&res, r, what) < 0)
                        return AGENT_EXIT_REBUILD;
        } else
                print_text(&res, r, what);
        if (r < 0) {
                log_failure(&o, &res, what);
                return AGENT_EXIT_REBUILD;
        }
        return AGENT_EXIT_OK;
}
