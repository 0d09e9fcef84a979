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
#include "config.h"
#include "enroll.h"
#include "enrollment.h"
#include "fileio.h"
#include "identify.h"
#include "log.h"
#include "util.h"

static void enroll_help(void)
{
        printf("Usage: nixprov-agent enroll [OPTIONS...]\n\n"
               "Sends this device's enrollment to the server (its machine id, hostname, MACs,\n"
               "system, CPUs, memory and public keys, signed with its device key; with\n"
               "enroll.token-file, a proof that it holds the image's enrollment token) and\n"
               "prints the answer: approved, pending or revoked. 'run' does this before it\n"
               "fetches; this command is for installers and for operators checking a device.\n\n"
               "Options:\n"
               "  -c, --config FILE      the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT ")\n"
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

int agent_enroll_request(const struct agent_config *config, const char *root,
                         const struct identity *id, const struct devicekey *key, char **ret_body,
                         size_t *ret_size, char *error, size_t error_size)
{
        _cleanup_free_ char *token_path = NULL;
        uint8_t token_key[32];
        int k;

        if (config->enroll_token_file) {
                token_path = path_join_root(root, config->enroll_token_file);
                if (!token_path) {
                        snprintf(error, error_size, "out of memory");
                        return AGENT_EXIT_USAGE;
                }
                k = enrollment_token_file_key(token_path, token_key);
                if (k < 0) {
                        snprintf(error, error_size, "the enrollment token %s cannot be used: %s",
                                 token_path,
                                 k == -EPERM    ? "it is readable by others than its owner (it "
                                                  "must be mode 0600)"
                                 : k == -EINVAL ? "not a regular file, or empty"
                                 : k == -E2BIG  ? "larger than " STRINGIFY(ENROLLMENT_TOKEN_MAX)
                                                  " bytes"
                                                : strerror(-k));
                        return AGENT_EXIT_USAGE;
                }
        }
        k = enroll_request(id, key, token_path ? token_key : NULL, (int64_t)time(NULL), ret_body,
                           ret_size);
        sodium_memzero(token_key, sizeof(token_key));
        if (k < 0) {
                snprintf(error, error_size, "the enrollment request cannot be made: %s",
                         strerror(-k));
                return AGENT_EXIT_USAGE;
        }
        return AGENT_EXIT_OK;
}

int agent_enroll(const struct agent_config *config, const char *root,
                 const char *machine_id_override, const struct fetch_options *o, uint64_t wait_ms,
                 enum enroll_state *ret_state)
{
        _cleanup_(devicekey_freep) struct devicekey *key = NULL;
        _cleanup_free_ char *body = NULL;
        struct fetch_error error = {};
        struct identity id;
        char message[512];
        size_t size;
        int k;

        k = agent_identify(root, machine_id_override, &id);
        if (k != AGENT_EXIT_OK)
                return k;
        k = agent_device_keys(config, root, &key);
        if (k != AGENT_EXIT_OK)
                return k;
        k = agent_enroll_request(config, root, &id, key, &body, &size, message, sizeof(message));
        if (k != AGENT_EXIT_OK) {
                log_error("%s", message);
                return k;
        }
        k = enroll_wait(o, body, size, wait_ms, NULL, NULL, ret_state, &error);
        if (k < 0) {
                log_error("Failed to enroll: %s: %s%s", error.url[0] ? error.url : "(no URL)",
                          error.message[0] ? error.message : strerror(-k),
                          error.deadline_reached ? " (deadline reached)" : "");
                return AGENT_EXIT_FETCH;
        }
        return AGENT_EXIT_OK;
}

int cmd_enroll(int argc, char **argv)
{
        static const struct option options[] = {
            {"config", required_argument, NULL, 'c'},
            {"root", required_argument, NULL, 'r'},
            {"cmdline", required_argument, NULL, 'C'},
            {"machine-id", required_argument, NULL, 'm'},
            {"wait", required_argument, NULL, 'w'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(agent_config_freep) struct agent_config *config = NULL;
        const char *config_path = NULL, *root = "/", *cmdline_path = "/proc/cmdline",
                   *machine_id_override = NULL;
        struct fetch_options o;
        enum enroll_state state;
        uint64_t wait_s = 0;
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
                case 'C':
                        cmdline_path = optarg;
                        break;
                case 'm':
                        machine_id_override = optarg;
                        break;
                case 'w':
                        if (parse_u64(optarg, &wait_s) < 0 || wait_s > AGENT_CONFIG_ENROLL_WAIT_MAX) {
                                log_error("Invalid --wait '%s': expected seconds, at most %d.",
                                          optarg, AGENT_CONFIG_ENROLL_WAIT_MAX);
                                return AGENT_EXIT_USAGE;
                        }
                        break;
                case 'h':
                        enroll_help();
                        return AGENT_EXIT_OK;
                default:
                        return AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent enroll --help'.",
                          argv[optind]);
                return AGENT_EXIT_USAGE;
        }
        if (config_load(config_path, cmdline_path, &config) < 0)
                return AGENT_EXIT_USAGE;
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
        config_fetch_options(config, &o);
        k = agent_enroll(config, root, machine_id_override, &o, wait_s * 1000, &state);
        fetch_global_cleanup();
        if (k != AGENT_EXIT_OK)
                return k;
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
