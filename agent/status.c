/* SPDX-License-Identifier: MIT */
/* nixprov-agent status: where this device stands. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "config.h"
#include "context.h"
#include "fileio.h"
#include "log.h"
#include "state.h"
#include "util.h"

#define STATUS_LAST_RUN_MAX (64 * 1024)

static void status_help(void)
{
        printf("Usage: nixprov-agent status [--json] [OPTIONS...]\n\n"
               "Shows where this device stands: the profile serial applied and when, how the last\n"
               "run ended (phase, exit code, what the rebuild substituted and built, the phase\n"
               "timings), and how many reports wait in the spool for the server.\n\n"
               "Options:\n"
               "  -c, --config FILE   the agent configuration, for the state directory (default\n"
               "                      " AGENT_CONFIG_PATH_DEFAULT ")\n"
               "  -r, --root DIR      the device's root directory (default /)\n"
               "      --cmdline FILE  kernel command line over the configuration (default\n"
               "                      /proc/cmdline; - for none)\n"
               "      --json          one JSON object instead of text\n"
               "  -h, --help          show this help\n\n"
               "Exit codes: 0 shown, 2 usage or configuration error.\n");
}

static unsigned count_spooled(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len > 5 && streq(de->d_name + len - 5, ".json"))
                        n++;
        }
        closedir(d);
        return n;
}

/* The status for people: the applied serial, how the last run ended, the spool. */
/* The last update the agent tried (state.h's DIR/update), as JSON; NULL when there is none. */
static json_t *update_json(const char *state_dir)
{
        struct update_state u;
        json_t *o;

        if (state_update_load(state_dir, &u) < 0 || !u.have)
                return NULL;
        o = json_pack("{s:I, s:s, s:I}", "serial", (json_int_t)u.serial, "outcome", u.outcome,
                      "time", (json_int_t)u.time);
        if (o && u.system[0])
                json_object_set_new(o, "system", json_string(u.system));
        if (o && u.previous[0])
                json_object_set_new(o, "previous_system", json_string(u.previous));
        if (o && u.cause[0])
                json_object_set_new(o, "cause", json_string(u.cause));
        return o;
}

static void print_update(json_t *update)
{
        const char *outcome = json_string_value(json_object_get(update, "outcome")) ?: "?";
        const char *system = json_string_value(json_object_get(update, "system")) ?: "?";
        const char *previous = json_string_value(json_object_get(update, "previous_system"));
        const char *cause = json_string_value(json_object_get(update, "cause"));
        json_int_t serial = json_integer_value(json_object_get(update, "serial"));

        if (!update)
                return;
        printf("last update: serial %" JSON_INTEGER_FORMAT " ", serial);
        if (streq(outcome, "rolled-back"))
                printf("rolled back to %s", previous ?: "the previous system");
        else if (streq(outcome, "failed"))
                printf("failed%s", previous ? "" : ", nothing to roll back to");
        else if (streq(outcome, "pending-reboot"))
                printf("waiting for a reboot into %s", system);
        else if (streq(outcome, "confirmed"))
                printf("confirmed after the reboot: %s", system);
        else if (streq(outcome, "applied"))
                printf("applied: %s", system);
        else
                printf("%s (interrupted?)", outcome);
        printf(cause ? " (%s)\n" : "\n", cause);
}

static void print_text(const struct agent_state *state, json_t *last, unsigned pending,
                       const char *spool)
{
        char when[RFC3339_MAX];

        if (state->have_applied)
                printf("provisioned: serial %" PRIu64 ", applied %s\n", state->applied_serial,
                       format_rfc3339_utc(state->applied_time, when));
        else
                printf("provisioned: no (no profile applied yet)\n");
        if (last) {
                json_t *counts = json_object_get(last, "counts");
                json_t *timings = json_object_get(last, "timings_us");
                const char *phase;
                json_t *v;

                printf("last run:    %s at %s, exit code %" JSON_INTEGER_FORMAT ", in phase %s\n",
                       json_string_value(json_object_get(last, "outcome")) ?: "?",
                       format_rfc3339_utc(json_integer_value(json_object_get(last, "time")), when),
                       json_integer_value(json_object_get(last, "exit_code")),
                       json_string_value(json_object_get(last, "phase")) ?: "?");
                if (json_string_value(json_object_get(last, "error")))
                        printf("error:       %s\n",
                               json_string_value(json_object_get(last, "error")));
                if (counts)
                        printf("rebuild:     %" JSON_INTEGER_FORMAT
                               " substituted, %" JSON_INTEGER_FORMAT
                               " built locally, %" JSON_INTEGER_FORMAT
                               " built remotely, %" JSON_INTEGER_FORMAT " bytes downloaded\n",
                               json_integer_value(json_object_get(counts, "substituted")),
                               json_integer_value(json_object_get(counts, "built")),
                               json_integer_value(json_object_get(counts, "built_remote")),
                               json_integer_value(json_object_get(counts, "downloaded_bytes")));
                if (json_object_size(timings) > 0) {
                        printf("timings:    ");
                        json_object_foreach(timings, phase, v)
                                printf(" %s %.1f ms", phase, json_integer_value(v) / 1000.0);
                        printf("\n");
                }
        } else
                printf("last run:    none recorded\n");
        printf("reports:     %u waiting in %s\n", pending, spool);
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct agent_context *ctx, bool *json)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS "h", options, NULL)) >= 0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                if (c == 'j')
                        *json = true;
                else if (c == 'h') {
                        status_help();
                        return -AGENT_EXIT_OK;
                } else
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent status --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

int cmd_status(int argc, char **argv)
{
        _cleanup_(context_done) struct agent_context ctx;
        const struct agent_config *config;
        _cleanup_free_ char *state_dir = NULL, *last_path = NULL, *last_text = NULL;
        _cleanup_free_ char *spool = NULL;
        struct agent_state state;
        json_t *last = NULL, *out;
        bool json = false;
        unsigned pending;
        int k;

        context_init(&ctx);
        k = parse_args(argc, argv, &ctx, &json);
        if (k <= 0)
                return -k;
        k = context_config(&ctx, &config);
        if (k < 0) {
                log_error_errno(k, "%s", ctx.error);
                return AGENT_EXIT_USAGE;
        }
        state_dir = path_join_root(ctx.root, config->state_dir);
        last_path = config_state_path(config, ctx.root, CONFIG_STATE_LAST_RUN);
        spool = config_state_path(config, ctx.root, CONFIG_STATE_REPORTS);
        if (!state_dir || !last_path || !spool) {
                log_oom();
                return AGENT_EXIT_USAGE;
        }
        k = state_load(state_dir, &state);
        if (k < 0) {
                log_error_errno(k, "Failed to read the agent state in %s: %s", state_dir,
                                k == -EBADMSG ? "damaged" : strerror(-k));
                return AGENT_EXIT_USAGE;
        }
        if (read_file_bounded(last_path, STATUS_LAST_RUN_MAX, &last_text, NULL) >= 0)
                last = json_loads(last_text, 0, NULL);
        pending = count_spooled(spool);

        out = json_object();
        json_object_set_new(out, "provisioned", json_boolean(state.have_applied));
        if (state.have_applied) {
                json_object_set_new(out, "serial", json_integer((json_int_t)state.applied_serial));
                json_object_set_new(out, "applied_at", json_integer(state.applied_time));
        }
        json_object_set_new(out, "reports_pending", json_integer(pending));
        if (last)
                json_object_set(out, "last_run", last);
        json_object_set_new(out, "update", update_json(state_dir));

        if (json) {
                char *text = json_dumps(out, JSON_COMPACT);
                if (text)
                        puts(text);
                free(text);
        } else {
                print_text(&state, last, pending, spool);
                print_update(json_object_get(out, "update"));
        }
        json_decref(out);
        json_decref(last);
        return AGENT_EXIT_OK;
}
