/* SPDX-License-Identifier: MIT */
/* nixprov-agent enroll: enroll with the server now and say whether it admits this device. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent.h"
#include "context.h"
#include "enroll.h"
#include "enrollment.h"
#include "fileio.h"
#include "identify.h"
#include "log.h"
#include "util.h"

static void enroll_help(void)
{
        printf(
            "Usage: nixprov-agent enroll [OPTIONS...]\n\n"
            "Sends this device's enrollment to the server (its machine id, hostname, MACs,\n"
            "system, CPUs, memory and public keys, signed with its device key; with\n"
            "enroll.token-file, a proof that it holds the image's enrollment token) and\n"
            "prints the answer: approved, pending or revoked. 'run' does this before it\n"
            "fetches; this command is for installers and for operators checking a device.\n\n"
            "Options:\n"
            "  -c, --config FILE      the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT
            ")\n"
            "  -r, --root DIR         the device's root directory (default /)\n"
            "      --cmdline FILE     kernel command line over the configuration (default\n"
            "                         /proc/cmdline; - for none)\n"
            "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
            "      --wait SECONDS     while pending, ask again with backoff for this long\n"
            "                         (default 0: ask once)\n"
            "  -h, --help             show this help\n\n"
            "Exit codes: 0 approved (or no server takes enrollments), 2 usage or\n"
            "configuration error, 3 the server cannot be reached, 5 the device keys cannot\n"
            "be read or made, 9 pending, revoked, refused by the policy, or enrolled with\n"
            "another key.\n");
}

/* Prints the server's answer; returns the exit code it means. */
static int show(enum enroll_state state)
{
        switch (state) {
        case ENROLL_APPROVED:
                printf("approved: the server admits this device.\n");
                return AGENT_EXIT_OK;
        case ENROLL_NO_SERVER:
                printf("no-server: no mirror takes enrollments (file:// or static mirrors).\n");
                return AGENT_EXIT_OK;
        case ENROLL_PENDING:
                printf("pending: waiting for an operator ('nixprov fleet approve ID' on the "
                       "server).\n");
                return AGENT_EXIT_ENROLL;
        case ENROLL_REVOKED:
                printf("revoked: the operator revoked this device; it is not provisioned.\n");
                return AGENT_EXIT_ENROLL;
        case ENROLL_REFUSED:
                printf("refused: the server's enrollment policy admits only the devices it lists "
                       "or that carry its enrollment token.\n");
                return AGENT_EXIT_ENROLL;
        case ENROLL_CONFLICT:
        default:
                printf("conflict: the server knows this machine id with other device keys (a "
                       "cloned or reinstalled disk?); an operator must run 'nixprov fleet reset "
                       "ID' to admit these keys.\n");
                return AGENT_EXIT_ENROLL;
        }
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct agent_context *ctx, uint64_t *wait_s)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            CONTEXT_LONG_OPTION_MACHINE_ID,
            {"wait", required_argument, NULL, 'w'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS_MACHINE_ID "h", options, NULL)) >=
               0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                if (c == 'w') {
                        if (parse_u64(optarg, wait_s) < 0 ||
                            *wait_s > AGENT_CONFIG_ENROLL_WAIT_MAX) {
                                log_error("Invalid --wait '%s': expected seconds, at most %d.",
                                          optarg, AGENT_CONFIG_ENROLL_WAIT_MAX);
                                return -AGENT_EXIT_USAGE;
                        }
                } else if (c == 'h') {
                        enroll_help();
                        return -AGENT_EXIT_OK;
                } else
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent enroll --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

/* Identifies the device, loads its keys and enrolls. Returns an exit code. */
static int enroll(struct agent_context *ctx, const struct agent_config *config, uint64_t wait_s,
                  enum enroll_state *ret_state)
{
        const struct identity *id;
        struct fetch_options *o;
        struct devicekey *key;
        char error[CONTEXT_ERROR_MAX];
        bool unreachable;
        int k;

        k = context_identity(ctx, &id);
        if (k < 0)
                return log_error_errno(k, "%s", ctx->error), AGENT_EXIT_USAGE;
        k = context_keys(ctx, &key);
        if (k < 0)
                return log_error_errno(k, "%s", ctx->error), AGENT_EXIT_WRITE;
        k = context_fetch_options(ctx, &o);
        if (k < 0)
                return log_error_errno(k, "%s", ctx->error), AGENT_EXIT_USAGE;
        k = enroll_device(config->enroll_token_file, ctx->root, id, key, o, wait_s * 1000,
                          ret_state, &unreachable, error, sizeof(error));
        if (k < 0) {
                log_error("%s", error);
                return unreachable ? AGENT_EXIT_FETCH : AGENT_EXIT_USAGE;
        }
        return AGENT_EXIT_OK;
}

int cmd_enroll(int argc, char **argv)
{
        _cleanup_(context_done) struct agent_context ctx;
        const struct agent_config *config;
        enum enroll_state state;
        uint64_t wait_s = 0;
        int k;

        context_init(&ctx);
        k = parse_args(argc, argv, &ctx, &wait_s);
        if (k <= 0)
                return -k;
        k = context_config(&ctx, &config);
        if (k < 0) {
                log_error_errno(k, "%s", ctx.error);
                return AGENT_EXIT_USAGE;
        }
        if (config->n_urls == 0) {
                log_error("No server: set server.urls in the agent configuration or nixprov.url= "
                          "on the kernel command line.");
                return AGENT_EXIT_USAGE;
        }
        k = fetch_global_init();
        if (k < 0) {
                log_error_errno(k, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_USAGE;
        }
        k = enroll(&ctx, config, wait_s, &state);
        fetch_global_cleanup();
        return k != AGENT_EXIT_OK ? k : show(state);
}
