/* SPDX-License-Identifier: MIT */
/* nixprov-agent id: this device's machine id and the public halves of its keys. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "config.h"
#include "devicekey.h"
#include "fileio.h"
#include "identify.h"
#include "log.h"

static void id_help(void)
{
        printf("Usage: nixprov-agent id [--json] [--config FILE] [--root DIR] [--machine-id ID]\n\n"
               "Prints this device's machine id and the public halves of its keys: the Ed25519\n"
               "signing key and the X25519 box key (base64), the one 'nixprov seal --to' seals\n"
               "secrets to. Makes the keys in the state directory when they do not exist yet\n"
               "(secret halves 0600, never replaced; public halves 0644).\n\n"
               "Options:\n"
               "  -c, --config FILE      the agent configuration, for the state directory\n"
               "                         (default " AGENT_CONFIG_PATH_DEFAULT ")\n"
               "  -r, --root DIR         the device's root directory (default /)\n"
               "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
               "      --json             one JSON object: machine_id, sign_public_key,\n"
               "                         box_public_key\n"
               "  -h, --help             show this help\n\n"
               "Exit codes: 0 shown, 2 usage or configuration error, 5 the keys cannot be read\n"
               "or written.\n");
}

int agent_identify(const char *root, const char *machine_id_override, struct identity *ret)
{
        int k = identify(root, machine_id_override, ret);

        if (k < 0) {
                log_error_errno(k, "Failed to identify this machine: %s",
                                k == -ENOENT   ? "no /etc/machine-id and no DMI product UUID"
                                : k == -EINVAL ? "the machine id is not 32 hex digits or a UUID"
                                               : strerror(-k));
                return AGENT_EXIT_USAGE;
        }
        return AGENT_EXIT_OK;
}

int agent_device_keys(const struct agent_config *config, const char *root,
                      struct devicekey **ret_key)
{
        _cleanup_free_ char *state_dir = NULL;
        int k;

        state_dir = path_join_root(root, config->state_dir);
        if (!state_dir) {
                log_oom();
                return AGENT_EXIT_USAGE;
        }
        k = mkdir_parents(state_dir, 0700);
        if (k < 0) {
                log_error_errno(k, "Failed to create %s: %m", state_dir);
                return AGENT_EXIT_WRITE;
        }
        k = devicekey_load_or_create(state_dir, ret_key, NULL);
        if (k < 0) {
                log_error_errno(k, "Failed to load or make the device keys in %s: %s", state_dir,
                                k == -EBADMSG  ? "a key file is damaged"
                                : k == -EEXIST ? "a public key has lost its secret key; "
                                                 "refusing to make a new identity silently"
                                               : strerror(-k));
                return AGENT_EXIT_WRITE;
        }
        return AGENT_EXIT_OK;
}

int cmd_id(int argc, char **argv)
{
        static const struct option options[] = {
            {"config", required_argument, NULL, 'c'},
            {"root", required_argument, NULL, 'r'},
            {"machine-id", required_argument, NULL, 'm'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(agent_config_freep) struct agent_config *config = NULL;
        _cleanup_(devicekey_freep) struct devicekey *key = NULL;
        const char *config_path = NULL, *root = "/", *machine_id_override = NULL;
        char sign[DEVICEKEY_PUBLIC_BASE64_MAX], box[DEVICEKEY_PUBLIC_BASE64_MAX];
        struct identity id;
        bool json = false;
        int c, k;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:r:m:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'r':
                        root = optarg;
                        break;
                case 'm':
                        machine_id_override = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        id_help();
                        return AGENT_EXIT_OK;
                default:
                        return AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent id --help'.", argv[optind]);
                return AGENT_EXIT_USAGE;
        }
        if (config_load(config_path, "-", &config) < 0)
                return AGENT_EXIT_USAGE;
        k = agent_identify(root, machine_id_override, &id);
        if (k != AGENT_EXIT_OK)
                return k;
        k = agent_device_keys(config, root, &key);
        if (k != AGENT_EXIT_OK)
                return k;
        devicekey_public_to_base64(key->sign_public, sign);
        devicekey_public_to_base64(key->box_public, box);
        if (json) {
                json_t *o = json_pack("{s:s, s:s, s:s}", "machine_id", id.machine_id,
                                      "sign_public_key", sign, "box_public_key", box);
                _cleanup_free_ char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

                json_decref(o);
                if (!text) {
                        log_oom();
                        return AGENT_EXIT_USAGE;
                }
                printf("%s\n", text);
        } else
                printf("machine-id: %s\nsign-key:   %s\nbox-key:    %s\n", id.machine_id, sign,
                       box);
        return AGENT_EXIT_OK;
}
