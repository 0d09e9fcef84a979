/* SPDX-License-Identifier: MIT */
/* nixprov-agent verify: the agent's whole decision about a profile, applying nothing. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "fileio.h"
#include "keyfile.h"
#include "log.h"
#include "machine_id.h"
#include "state.h"
#include "trust.h"
#include "util.h"

#define VERIFY_MAX_KEYS 16
#define VERIFY_MAX_GROUPS 64
#define DEFAULT_STATE_DIR "/var/lib/nixprov"

static void verify_help(void)
{
        printf(
            "Usage: nixprov-agent verify --key KEY [OPTIONS...] PROFILE\n\n"
            "Makes the agent's whole decision about PROFILE and its signature (PROFILE.minisig)\n"
            "without applying anything: the signature over the raw bytes by a trusted key, the\n"
            "schema, rollback against the last applied serial, expiry against the clock floor,\n"
            "and whether the profile names this machine or one of its groups.\n\n"
            "Options:\n"
            "  -k, --key KEY          trusted public key: a minisign .pub file or its base64 line\n"
            "                         (repeat for several keys, e.g. while rotating)\n"
            "  -x, --signature FILE   the signature (default: PROFILE.minisig)\n"
            "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
            "  -g, --group NAME       a group this machine belongs to (repeatable)\n"
            "  -s, --state DIR        the agent's state directory, for the last applied serial\n"
            "                         (default: ROOT" DEFAULT_STATE_DIR ")\n"
            "  -r, --root DIR         the device's root directory (default: /)\n"
            "  -q, --quiet            print nothing when the profile would be applied\n"
            "  -h, --help             show this help\n\n"
            "Exit codes: 0 the profile would be applied (or is the one already applied),\n"
            "2 usage or configuration error, 4 refused.\n");
}

/* Says what trust_decide() decided about the profile called name, in one line: on stdout for an
 * accepted profile (unless quiet), on stderr with the details of a refusal. Returns the exit
 * code. */
static int decision_log(const char *name, const struct trust_context *ctx,
                        const struct trust_result *result, int error, bool quiet)
{
        const struct profile *p = result->profile;
        char key_id[MINISIGN_KEY_ID_STRING_MAX], expires[RFC3339_MAX];
        _cleanup_free_ char *why = NULL;

        if (error < 0) {
                why = trust_format_refusal(ctx, result, error);
                log_error("%s: refused: %s", name, why ?: trust_strerror(error));
                return AGENT_EXIT_REFUSED;
        }
        if (quiet)
                return AGENT_EXIT_OK;
        if (result->decision == TRUST_UP_TO_DATE)
                printf("%s: up to date: serial %" PRIu64 " is already applied; nothing to do\n",
                       name, p->serial);
        else
                printf("%s: would apply serial %" PRIu64 " (%s; strategy %s, expires %s, signed by "
                       "key %s)\n",
                       name, p->serial, ctx->have_applied ? "an update" : "first provisioning",
                       profile_strategy_to_string(p->strategy),
                       format_rfc3339_utc(p->expires, expires),
                       minisign_key_id_to_string(result->key->key_id, key_id));
        return AGENT_EXIT_OK;
}

/* What the command line asks for. */
struct verify_args {
        struct minisign_public_key keys[VERIFY_MAX_KEYS];
        size_t n_keys;
        char *groups[VERIFY_MAX_GROUPS];
        size_t n_groups;
        const char *signature_path, *machine_id_arg, *state_dir, *root, *profile_path;
        bool quiet;
};

/* One option other than --help. Returns 0, or -1 after logging why it is refused. */
static int parse_option(struct verify_args *a, int c, char *arg)
{
        int r;

        switch (c) {
        case 'k':
                if (a->n_keys >= VERIFY_MAX_KEYS) {
                        log_error("Too many --key options (at most %d).", VERIFY_MAX_KEYS);
                        return -1;
                }
                r = keyfile_load_public(arg, &a->keys[a->n_keys]);
                if (r < 0) {
                        log_error_errno(r, "Failed to load trusted key '%s': %s", arg,
                                        r == -EBADMSG  ? "not a minisign public key"
                                        : r == -ENOENT ? "no such file, and not a key"
                                                       : strerror(-r));
                        return -1;
                }
                a->n_keys++;
                return 0;
        case 'x':
                a->signature_path = arg;
                return 0;
        case 'm':
                a->machine_id_arg = arg;
                return 0;
        case 'g':
                if (a->n_groups >= VERIFY_MAX_GROUPS) {
                        log_error("Too many --group options (at most %d).", VERIFY_MAX_GROUPS);
                        return -1;
                }
                if (!string_is_safe(arg, 64, "._-")) {
                        log_error("Invalid group name '%s'.", arg);
                        return -1;
                }
                a->groups[a->n_groups++] = arg;
                return 0;
        case 's':
                a->state_dir = arg;
                return 0;
        case 'r':
                a->root = arg;
                return 0;
        case 'q':
                a->quiet = true;
                return 0;
        default:
                return -1;
        }
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct verify_args *a)
{
        static const struct option options[] = {
            {"key", required_argument, NULL, 'k'},
            {"signature", required_argument, NULL, 'x'},
            {"machine-id", required_argument, NULL, 'm'},
            {"group", required_argument, NULL, 'g'},
            {"state", required_argument, NULL, 's'},
            {"root", required_argument, NULL, 'r'},
            {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "k:x:m:g:s:r:qh", options, NULL)) >= 0) {
                if (c == 'h') {
                        verify_help();
                        return -AGENT_EXIT_OK;
                }
                if (parse_option(a, c, optarg) < 0)
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc - 1) {
                log_error("Expected exactly one profile. Run 'nixprov-agent verify --help'.");
                return -AGENT_EXIT_USAGE;
        }
        if (a->n_keys == 0) {
                log_error("No trusted key: give at least one --key.");
                return -AGENT_EXIT_USAGE;
        }
        a->profile_path = argv[optind];
        return 1;
}

/* The machine id and the agent state the decision depends on. Returns 0, or -1 after
 * logging. */
static int load_device(const struct verify_args *a, char machine_id[static MACHINE_ID_STRING_MAX],
                       struct agent_state *ret_state)
{
        _cleanup_free_ char *default_state = NULL;
        const char *state_dir = a->state_dir;
        int r;

        if (a->machine_id_arg)
                r = machine_id_normalize(a->machine_id_arg, machine_id);
        else
                r = machine_id_read(a->root, machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to get this machine's id%s%s: %s",
                                a->machine_id_arg ? " from " : "", a->machine_id_arg ?: "",
                                r == -EINVAL ? "not 32 hex digits or a UUID" : strerror(-r));
                return -1;
        }

        if (!state_dir) {
                default_state = path_join_root(a->root, DEFAULT_STATE_DIR);
                if (!default_state) {
                        log_oom();
                        return -1;
                }
                state_dir = default_state;
        }
        r = state_load(state_dir, ret_state);
        if (r < 0) {
                log_error_errno(r, "Failed to read the agent state in %s: %s", state_dir,
                                r == -EBADMSG ? "the file is damaged; refusing to guess"
                                              : strerror(-r));
                return -1;
        }
        return 0;
}

int cmd_verify(int argc, char **argv)
{
        struct verify_args a = {.root = "/"};
        _cleanup_free_ char *failed_path = NULL, *profile = NULL, *signature = NULL;
        char machine_id[MACHINE_ID_STRING_MAX];
        struct agent_state state;
        struct trust_result result;
        size_t profile_size, signature_size;
        int r;

        r = parse_args(argc, argv, &a);
        if (r <= 0)
                return -r;
        if (load_device(&a, machine_id, &state) < 0)
                return AGENT_EXIT_USAGE;

        r = trust_read_files(a.profile_path, a.signature_path, &profile, &profile_size, &signature,
                             &signature_size, &failed_path);
        if (r < 0) {
                if (r == TRUST_REFUSED_TOO_LARGE || r == TRUST_REFUSED_SIGNATURE_MALFORMED)
                        log_error("%s: refused: %s", failed_path ?: a.profile_path,
                                  trust_strerror(r));
                else
                        log_error_errno(r, "Failed to read %s: %m", failed_path ?: a.profile_path);
                return AGENT_EXIT_REFUSED;
        }

        struct trust_context ctx = {
            .keys = a.keys,
            .n_keys = a.n_keys,
            .machine_id = machine_id,
            .groups = a.groups,
            .n_groups = a.n_groups,
            .have_applied = state.have_applied,
            .applied_serial = state.applied_serial,
            .applied_time = state.applied_time,
            .build_time = trust_build_time(),
            .now = (int64_t)time(NULL),
        };
        r = trust_decide(&ctx, (const uint8_t *)profile, profile_size, a.profile_path, signature,
                         signature_size, &result);
        r = decision_log(a.profile_path, &ctx, &result, r, a.quiet);
        trust_result_done(&result);
        return r;
}
