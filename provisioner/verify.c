/* SPDX-License-Identifier: MIT */
/* nixprov verify: is this profile signed by one of these keys, and valid? */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "keyfile.h"
#include "log.h"
#include "trust.h"
#include "util.h"

#define VERIFY_MAX_KEYS 16

static void verify_help(void)
{
        printf("Usage: nixprov verify -p KEY.pub [-p KEY.pub...] [-x SIGNATURE] PROFILE...\n\n"
               "Checks each PROFILE's signature (PROFILE.minisig by default) over its raw bytes,\n"
               "then its schema. Nothing about a device is checked here (rollback, expiry,\n"
               "machine binding): 'nixprov-agent verify' makes the device's whole decision.\n\n"
               "Options:\n"
               "  -p, --public-key KEY   trusted public key: a .pub file or its base64 line\n"
               "                         (repeatable; any of them may have signed)\n"
               "  -x, --signature FILE   the signature file (only with a single PROFILE)\n"
               "  -q, --quiet            print nothing for a good profile\n"
               "  -h, --help             show this help\n\n"
               "Exit codes: 0 every profile verified, 1 a file could not be read,\n"
               "2 usage error, 4 a signature or profile was refused.\n");
}

static int verify_one(const struct trust_context *ctx, const char *path, const char *signature_path,
                      bool quiet)
{
        _cleanup_free_ char *profile = NULL, *signature = NULL, *failed_path = NULL;
        _cleanup_free_ char *why = NULL;
        struct trust_result result = {};
        char key_id[MINISIGN_KEY_ID_STRING_MAX], expires[RFC3339_MAX];
        size_t profile_size, signature_size;
        int r;

        r = trust_read_files(path, signature_path, &profile, &profile_size, &signature,
                             &signature_size, &failed_path);
        if (r == TRUST_REFUSED_TOO_LARGE || r == TRUST_REFUSED_SIGNATURE_MALFORMED) {
                log_error("%s: refused: %s", failed_path ?: path, trust_strerror(r));
                return EXIT_REFUSED;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read %s: %m", failed_path ?: path);
                return EXIT_FAIL;
        }

        r = trust_check_signed(ctx->keys, ctx->n_keys, (const uint8_t *)profile, profile_size, path,
                               signature, signature_size, &result);
        if (r < 0) {
                why = trust_format_refusal(ctx, &result, r);
                log_error("%s: refused: %s", path, why ?: trust_strerror(r));
                trust_result_done(&result);
                return r == -ENOMEM ? EXIT_FAIL : EXIT_REFUSED;
        }
        if (!quiet)
                printf("%s: ok: signed by key %s; serial %" PRIu64 ", strategy %s, expires %s\n",
                       path, minisign_key_id_to_string(result.key->key_id, key_id),
                       result.profile->serial, profile_strategy_to_string(result.profile->strategy),
                       format_rfc3339_utc(result.profile->expires, expires));
        trust_result_done(&result);
        return EXIT_OK;
}

int cmd_verify(int argc, char **argv)
{
        static const struct option options[] = {
            {"public-key", required_argument, NULL, 'p'},
            {"signature", required_argument, NULL, 'x'},
            {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct minisign_public_key keys[VERIFY_MAX_KEYS];
        const char *signature_path = NULL;
        bool quiet = false;
        size_t n_keys = 0;
        int c, r, ret = EXIT_OK;

        optind = 0;
        while ((c = getopt_long(argc, argv, "p:P:x:qh", options, NULL)) >= 0) {
                switch (c) {
                case 'p':
                case 'P': /* minisign spells the inline key -P */
                        if (n_keys >= VERIFY_MAX_KEYS) {
                                log_error("Too many public keys (at most %d).", VERIFY_MAX_KEYS);
                                return EXIT_USAGE;
                        }
                        r = keyfile_load_public(optarg, &keys[n_keys]);
                        if (r < 0) {
                                log_error_errno(r, "Failed to load public key '%s': %s", optarg,
                                                r == -EBADMSG  ? "not a minisign public key"
                                                : r == -ENOENT ? "no such file, and not a key"
                                                               : strerror(-r));
                                return EXIT_USAGE;
                        }
                        n_keys++;
                        break;
                case 'x':
                        signature_path = optarg;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        verify_help();
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        }
        if (n_keys == 0 || optind >= argc) {
                log_error(
                    "Expected -p KEY.pub and at least one profile. Run 'nixprov verify --help'.");
                return EXIT_USAGE;
        }
        if (signature_path && argc - optind != 1) {
                log_error("-x names one signature: give exactly one profile with it.");
                return EXIT_USAGE;
        }

        struct trust_context ctx = {.keys = keys, .n_keys = n_keys};
        for (int i = optind; i < argc; i++) {
                int k = verify_one(&ctx, argv[i], signature_path, quiet);

                /* A refusal outranks a read failure: it is the answer an operator looks for. */
                if (k == EXIT_REFUSED || ret == EXIT_OK)
                        ret = k == EXIT_OK ? ret : k;
        }
        return ret;
}
