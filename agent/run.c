/* SPDX-License-Identifier: MIT */
/* nixprov-agent run: the first boot (and every later run), phase by phase (engine.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "context.h"
#include "engine.h"
#include "fetch.h"
#include "log.h"

#define ARG_NO_REBUILD 0x100
#define ARG_RETRY 0x101

static void run_help(void)
{
        printf(
            "Usage: nixprov-agent run [OPTIONS...]\n\n"
            "Provisions this device: identify, fetch the profile and its signature, verify\n"
            "them, plan the Nix settings, write them, rebuild with them in force, and report\n"
            "every phase to the server (reports are spooled on disk first). A profile with the\n"
            "serial already applied is nothing to do; a higher serial is an update.\n\n"
            "Options:\n"
            "  -c, --config FILE      the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT
            ")\n"
            "  -r, --root DIR         the device's root directory (default /): every file the\n"
            "                         agent writes, its state and logs are under it\n"
            "      --cmdline FILE     the kernel command line to read nixprov.url=, nixprov.key=\n"
            "                         and nixprov.group= from (default /proc/cmdline; - for none)\n"
            "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
            "      --no-rebuild       write the files but run no rebuild (an installer that\n"
            "                         builds the system itself); the serial is not recorded\n"
            "      --retry            try a serial again that was rolled back or failed\n"
            "  -h, --help             show this help\n\n"
            "Exit codes: 0 done or nothing to do, 2 usage or configuration error, 3 fetch\n"
            "failed, 4 verification refused, 5 write failed, 6 builders unusable, 7 rebuild\n"
            "failed, 8 a report could not be spooled, 9 not admitted by the server (revoked,\n"
            "still pending when the configured wait ran out, or enrolled with another key),\n"
            "10 pre-flight refused (the dry run failed, or the build would compile more than\n"
            "rebuild.max-local-builds derivations on this device), 11 health checks failed\n"
            "(rolled back, or nothing to roll back to).\n");
}

int run_load_config(struct agent_context *ctx, const struct agent_config **ret)
{
        const char *path = ctx->config_path ?: AGENT_CONFIG_PATH_DEFAULT;
        const struct agent_config *config;
        int k;

        k = context_config(ctx, &config);
        if (k < 0)
                return log_error_errno(k, "%s", ctx->error);
        if (config->n_urls == 0)
                return log_error_errno(-EINVAL,
                                       "No server: set server.urls in %s or nixprov.url= "
                                       "on the kernel command line.",
                                       path);
        if (config->n_keys == 0)
                return log_error_errno(-EINVAL,
                                       "No trusted key: set trusted-keys in %s or "
                                       "nixprov.key= on the kernel command line.",
                                       path);
        *ret = config;
        return 0;
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct agent_context *ctx, bool *no_rebuild,
                      bool *retry)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            CONTEXT_LONG_OPTION_MACHINE_ID,
            {"no-rebuild", no_argument, NULL, ARG_NO_REBUILD},
            {"retry", no_argument, NULL, ARG_RETRY},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS_MACHINE_ID "h", options, NULL)) >=
               0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                if (c == ARG_NO_REBUILD)
                        *no_rebuild = true;
                else if (c == ARG_RETRY)
                        *retry = true;
                else if (c == 'h') {
                        run_help();
                        return -AGENT_EXIT_OK;
                } else
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent run --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

void run_state_done(struct run_state *r)
{
        trust_result_done(&r->trust);
        r->plan = plan_free(r->plan);
        secrets_done(&r->secrets);
        free(r->netrc_path);
        free(r->ssh_config_path);
        write_set_done(&r->written);
        free(r->profile);
        free(r->signature);
        free(r->log_dir);
        free(r->previous_system);
        free(r->new_system);
        free(r->health);
}

int cmd_run(int argc, char **argv)
{
        struct agent_context ctx;
        struct run_state r = {.ctx = &ctx};
        int k, exit_code;

        context_init(&ctx);
        k = parse_args(argc, argv, &ctx, &r.no_rebuild, &r.retry);
        if (k <= 0)
                return -k;
        k = fetch_global_init();
        if (k < 0) {
                log_error_errno(k, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_USAGE;
        }
        if (run_load_config(&ctx, &r.config) < 0)
                exit_code = AGENT_EXIT_USAGE;
        else
                exit_code = engine_run(&r);
        run_state_done(&r);
        context_done(&ctx);
        fetch_global_cleanup();
        return exit_code;
}
