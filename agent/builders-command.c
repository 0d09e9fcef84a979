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

int cmd_builders(int argc, char **argv)
{
        static const struct option options[] = {
            {"config", required_argument, NULL, 'c'},
            {"root", required_argument, NULL, 'r'},
            {"deadline", required_argument, NULL, 'd'},
            {"cmdline", required_argument, NULL, 'C'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(agent_config_freep) struct agent_config *config = NULL;
        _cleanup_free_ char *state_dir = NULL, *path = NULL, *sig_path = NULL, *failed = NULL;
        _cleanup_free_ char *profile = NULL, *signature = NULL;
        _cleanup_(plan_freep) struct plan *plan = NULL;
        _cleanup_free_ struct builder_probe *results = NULL;
        struct trust_result trust = {};
        const char *config_path = NULL, *root = "/", *cmdline_path = "/proc/cmdline";
        size_t profile_size = 0, signature_size = 0;
        uint64_t deadline_s = BUILDERS_DEADLINE_DEFAULT_MS / 1000;
        bool json = false, all_ok;
        int c, k;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:r:d:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'r':
                        root = optarg;
                        break;
                case 'd':
                        if (parse_u64(optarg, &deadline_s) < 0 || deadline_s == 0 ||
                            deadline_s > BUILDERS_DEADLINE_MAX_S) {
                                log_error("--deadline takes 1 to %d seconds, not '%s'.",
                                          BUILDERS_DEADLINE_MAX_S, optarg);
                                return AGENT_EXIT_USAGE;
                        }
                        break;
                case 'C':
                        cmdline_path = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        builders_help();
                        return AGENT_EXIT_OK;
                default:
                        return AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent builders --help'.",
                          argv[optind]);
                return AGENT_EXIT_USAGE;
        }
        /* The keys the run trusts: the configuration's, or the kernel command line's. */
        if (config_load(config_path, cmdline_path, &config) < 0)
                return AGENT_EXIT_USAGE;
        if (config->n_keys == 0) {
                log_error("No trusted key in the configuration: the applied profile cannot be "
                          "verified.");
                return AGENT_EXIT_USAGE;
        }
        state_dir = path_join_root(root, config->state_dir);
        if (!state_dir || asprintf(&path, "%s/%s", state_dir, BUILDERS_APPLIED_PROFILE) < 0 ||
            asprintf(&sig_path, "%s/%s", state_dir, BUILDERS_APPLIED_SIGNATURE) < 0) {
                log_oom();
                return AGENT_EXIT_USAGE;
        }
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
        k = plan_build(trust.profile, NULL, &plan);
        trust_result_done(&trust);
        if (k < 0) {
                log_error_errno(k, "The applied profile cannot be planned: %m");
                return AGENT_EXIT_REFUSED;
        }
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
        k = builders_probe(plan, root, NULL, deadline_s * 1000, results);
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
