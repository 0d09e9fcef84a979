/* SPDX-License-Identifier: MIT */
/* nixprov-agent builders: probes the builders of the applied profile, for operators. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "builders.h"
#include "config.h"
#include "context.h"
#include "fileio.h"
#include "log.h"
#include "plan.h"
#include "trust.h"
#include "util.h"

#define BUILDERS_DEADLINE_MAX_S 600

static void builders_help(void)
{
        printf(
            "Usage: nixprov-agent builders [--json] [--config FILE] [--root DIR] [--deadline S]\n"
            "                              [--cmdline FILE]\n\n"
            "Probes the remote builders of the applied profile over SSH, all at once: the host\n"
            "key must be the pinned one, the identity must log in, and Nix must answer. Shows\n"
            "each builder's state (ok, unreachable, host-key-mismatch, auth-failed,\n"
            "nix-missing, timeout), round-trip time, Nix version and error. The applied profile\n"
            "(kept in the state directory by 'nixprov-agent run') is verified again with the\n"
            "configuration's trusted keys before it is used.\n\n"
            "Options:\n"
            "  -c, --config FILE   the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT
            ")\n"
            "  -r, --root DIR      the device's root directory (default /); identity files are\n"
            "                      under it\n"
            "  -d, --deadline S    seconds each builder has to answer (default %d)\n"
            "      --cmdline FILE  the kernel command line, for nixprov.key= (default\n"
            "                      /proc/cmdline; - for none)\n"
            "      --json          one JSON object instead of text\n"
            "  -h, --help          show this help\n\n"
            "Exit codes: 0 every required builder answers, 2 usage or configuration error,\n"
            "4 the applied profile is missing or does not verify, 6 a required builder does\n"
            "not answer.\n",
            BUILDERS_DEADLINE_DEFAULT_MS / 1000);
}

static void print_json(const struct plan *plan, const struct builder_probe *results, bool all_ok)
{
        json_t *list = json_array(), *out;
        char *text;

        for (size_t i = 0; i < plan->n_builders; i++) {
                const struct builder_probe *p = &results[i];
                json_t *o = json_pack("{s:s, s:s, s:b}", "uri", plan->builders[i].uri, "state",
                                      builder_state_to_string(p->state), "required",
                                      plan->builders[i].required);

                if (!o)
                        continue;
                if (p->state == BUILDER_STATE_OK) {
                        json_object_set_new(o, "latency_ms",
                                            json_integer((json_int_t)p->latency_ms));
                        json_object_set_new(o, "nix_version", json_string(p->nix_version));
                } else
                        json_object_set_new(o, "error", json_string(p->error));
                json_array_append_new(list, o);
        }
        out = json_pack("{s:o, s:b}", "builders", list, "required_ok", all_ok);
        text = out ? json_dumps(out, JSON_COMPACT) : NULL;
        if (text)
                puts(text);
        free(text);
        json_decref(out);
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct agent_context *ctx, uint64_t *deadline_s,
                      bool *json)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            {"deadline", required_argument, NULL, 'd'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS "d:h", options, NULL)) >= 0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                switch (c) {
                case 'd':
                        if (parse_u64(optarg, deadline_s) < 0 || *deadline_s == 0 ||
                            *deadline_s > BUILDERS_DEADLINE_MAX_S) {
                                log_error("--deadline takes 1 to %d seconds, not '%s'.",
                                          BUILDERS_DEADLINE_MAX_S, optarg);
                                return -AGENT_EXIT_USAGE;
                        }
                        break;
                case 'j':
                        *json = true;
                        break;
                case 'h':
                        builders_help();
                        return -AGENT_EXIT_OK;
                default:
                        return -AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent builders --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

/* The plan of the applied profile, verified again with the trusted keys. Returns an exit code. */
static int applied_plan(struct agent_context *ctx, struct plan **ret)
{
        const struct agent_config *config;
        _cleanup_free_ char *state_dir = NULL, *path = NULL, *sig_path = NULL, *failed = NULL;
        _cleanup_free_ char *profile = NULL, *signature = NULL;
        struct trust_result trust = {};
        size_t profile_size = 0, signature_size = 0;
        int k;

        /* The keys the run trusts: the configuration's, or the kernel command line's. */
        k = context_config(ctx, &config);
        if (k < 0)
                return log_error_errno(k, "%s", ctx->error), AGENT_EXIT_USAGE;
        if (config->n_keys == 0) {
                log_error("No trusted key in the configuration: the applied profile cannot be "
                          "verified.");
                return AGENT_EXIT_USAGE;
        }
        state_dir = path_join_root(ctx->root, config->state_dir);
        if (!state_dir || asprintf(&path, "%s/%s", state_dir, BUILDERS_APPLIED_PROFILE) < 0 ||
            asprintf(&sig_path, "%s/%s", state_dir, BUILDERS_APPLIED_SIGNATURE) < 0)
                return log_oom(), AGENT_EXIT_USAGE;
        k = trust_read_files(path, sig_path, &profile, &profile_size, &signature, &signature_size,
                             &failed);
        if (k < 0) {
                log_error("Cannot read the applied profile (%s): %s. Is this device provisioned?",
                          failed ?: path, k == -ENOENT ? "no such file" : trust_strerror(k));
                return AGENT_EXIT_REFUSED;
        }
        k = trust_check_signed(config->keys, config->n_keys, (const uint8_t *)profile, profile_size,
                               path, signature, signature_size, &trust);
        if (k < 0) {
                log_error("The applied profile %s does not verify: %s", path, trust_strerror(k));
                trust_result_done(&trust);
                return AGENT_EXIT_REFUSED;
        }
        k = plan_build(trust.profile, NULL, ret);
        trust_result_done(&trust);
        if (k < 0) {
                log_error_errno(k, "The applied profile cannot be planned: %m");
                return AGENT_EXIT_REFUSED;
        }
        return AGENT_EXIT_OK;
}

int cmd_builders(int argc, char **argv)
{
        _cleanup_(context_done) struct agent_context ctx;
        _cleanup_(plan_freep) struct plan *plan = NULL;
        _cleanup_free_ struct builder_probe *results = NULL;
        uint64_t deadline_s = BUILDERS_DEADLINE_DEFAULT_MS / 1000;
        bool json = false, all_ok;
        int k;

        context_init(&ctx);
        k = parse_args(argc, argv, &ctx, &deadline_s, &json);
        if (k <= 0)
                return -k;
        k = applied_plan(&ctx, &plan);
        if (k != AGENT_EXIT_OK)
                return k;
        if (plan->n_builders == 0) {
                if (json)
                        puts("{\"builders\":[],\"required_ok\":true}");
                else
                        printf("The applied profile lists no builders.\n");
                return AGENT_EXIT_OK;
        }
        results = calloc(plan->n_builders, sizeof(*results));
        if (!results) {
                log_oom();
                return AGENT_EXIT_USAGE;
        }
        /* A sealed identity: the key file the run wrote, which is what Nix uses. */
        k = builders_probe(plan, ctx.root, NULL, deadline_s * 1000, results);
        if (k < 0) {
                log_error_errno(k, "Failed to start the probes: %m");
                return AGENT_EXIT_BUILDERS;
        }
        all_ok = builders_required_ok(plan, results);
        if (json)
                print_json(plan, results, all_ok);
        else
                for (size_t i = 0; i < plan->n_builders; i++) {
                        char line[1024];

                        printf(
                            "%s%s\n",
                            builders_format(plan->builders[i].uri, &results[i], line, sizeof(line)),
                            plan->builders[i].required ? "" : " (not required)");
                }
        return all_ok ? AGENT_EXIT_OK : AGENT_EXIT_BUILDERS;
}
