/* SPDX-License-Identifier: MIT */
/* nixprov-agent id: this device's machine id and the public halves of its keys. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "context.h"
#include "devicekey.h"
#include "fileio.h"
#include "identify.h"
#include "log.h"

static void id_help(void)
{
        printf("Usage: nixprov-agent id [--json] [OPTIONS...]\n\n"
               "Prints this device's machine id and the public halves of its keys: the Ed25519\n"
               "signing key and the X25519 box key (base64), the one 'nixprov seal --to' seals\n"
               "secrets to. Makes the keys in the state directory when they do not exist yet\n"
               "(secret halves 0600, never replaced; public halves 0644).\n\n"
               "Options:\n"
               "  -c, --config FILE      the agent configuration, for the state directory\n"
               "                         (default " AGENT_CONFIG_PATH_DEFAULT ")\n"
               "  -r, --root DIR         the device's root directory (default /)\n"
               "      --cmdline FILE     kernel command line over the configuration (default\n"
               "                         /proc/cmdline; - for none)\n"
               "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
               "      --json             one JSON object: machine_id, sign_public_key,\n"
               "                         box_public_key\n"
               "  -h, --help             show this help\n\n"
               "Exit codes: 0 shown, 2 usage or configuration error, 5 the keys cannot be read\n"
               "or written.\n");
}

/* Prints the machine id and the public keys, as text or JSON. */
static int show(const struct identity *id, const struct devicekey *key, bool json)
{
        char sign[DEVICEKEY_PUBLIC_BASE64_MAX], box[DEVICEKEY_PUBLIC_BASE64_MAX];

        devicekey_public_to_base64(key->sign_public, sign);
        devicekey_public_to_base64(key->box_public, box);
        if (json) {
                json_t *o = json_pack("{s:s, s:s, s:s}", "machine_id", id->machine_id,
                                      "sign_public_key", sign, "box_public_key", box);
                _cleanup_free_ char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

                json_decref(o);
                if (!text) {
                        log_oom();
                        return AGENT_EXIT_USAGE;
                }
                printf("%s\n", text);
        } else
                printf("machine-id: %s\nsign-key:   %s\nbox-key:    %s\n", id->machine_id, sign,
                       box);
        return AGENT_EXIT_OK;
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct agent_context *ctx, bool *json)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            CONTEXT_LONG_OPTION_MACHINE_ID,
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS_MACHINE_ID "h", options, NULL)) >=
               0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                if (c == 'j')
                        *json = true;
                else if (c == 'h') {
                        id_help();
                        return -AGENT_EXIT_OK;
                } else
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent id --help'.", argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

int cmd_id(int argc, char **argv)
{
        _cleanup_(context_done) struct agent_context ctx;
        const struct agent_config *config;
        const struct identity *id;
        struct devicekey *key;
        bool json = false;
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
        k = context_identity(&ctx, &id);
        if (k < 0) {
                log_error_errno(k, "%s", ctx.error);
                return AGENT_EXIT_USAGE;
        }
        k = context_keys(&ctx, &key);
        if (k < 0) {
                log_error_errno(k, "%s", ctx.error);
                return AGENT_EXIT_WRITE;
        }
        return show(id, key, json);
}
