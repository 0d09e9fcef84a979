/* SPDX-License-Identifier: MIT */
/* nixprov-agent run: the first boot (and every later run), phase by phase. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "agent.h"
#include "agent_config.h"
#include "builders.h"
#include "config.h"
#include "devicekey.h"
#include "enroll.h"
#include "fetch.h"
#include "fileio.h"
#include "identify.h"
#include "log.h"
#include "plan.h"
#include "rebuild.h"
#include "render.h"
#include "report.h"
#include "report-log.h"
#include "secrets.h"
#include "state.h"
#include "trust.h"
#include "util.h"
#include "write.h"

#define RUN_FINAL_FLUSH_MS (30 * 1000)
#define RUN_RETRY_FLUSH_MS (3 * 1000)
#define REBUILD_REPORT_FLUSH_MS (5 * 1000)
#define RUN_MAX_PHASES 12

struct run {
        /* options */
        const char *root;
        const char *config_path;
        const char *cmdline_path;
        const char *machine_id_override;
        bool no_rebuild;

        /* what the run learns */
        struct agent_config *config;
        struct identity id;
        struct devicekey *key; /* sodium_malloc'd; made on the very first run */
        char *state_dir; /* under root */
        char *log_dir;   /* under root */
        struct report_spool *spool;
        struct fetch_options fetch;

        char *profile;
        size_t profile_size;
        char *signature;
        size_t signature_size;
        struct trust_result trust;
        struct trust_context trust_ctx;
        struct plan *plan;
        struct secrets secrets; /* opened in plan, wiped right after write */
        char *netrc_path;       /* the written netrc, absolute, for the first build's NIX_CONFIG */
        char *ssh_config_path;  /* the written ssh_config, absolute, when a builder needs an alias */
        struct write_set written;
        struct rebuild_result rebuild;

        /* phase timings, for the final report */
        enum report_phase phase;
        uint64_t phase_started_us;
        struct {
                enum report_phase phase;
                uint64_t us;
        } timings[RUN_MAX_PHASES];
        size_t n_timings;
        bool spool_failed;
        bool pending_logged;
        char error[1024]; /* why the run failed, for last-run.json (what the report says) */
};

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static bool have_serial(const struct run *r)
{
        return r->trust.profile != NULL;
}

/* Spools one report; a report that cannot even be spooled ends the run with exit code 8. */
static void emit(struct run *r, enum report_status status, const char *message, const char *error,
                 bool with_counts, const char *log_tail)
{
        struct report_timing timings[RUN_MAX_PHASES];
        for (size_t i = 0; i < r->n_timings; i++)
                timings[i] = (struct report_timing){r->timings[i].phase, r->timings[i].us / 1000};
        struct report rep = {
                .phase = r->phase,
                .status = status,
                .has_serial = have_serial(r),
                .serial = have_serial(r) ? r->trust.profile->serial : 0,
                .message = message,
                .error = error,
                .counts = with_counts ? &r->rebuild.counts : NULL,
                .timings = timings,
                .n_timings = r->n_timings,
                .log_tail = log_tail,
        };
        int k;

        if (!r->spool)
                return;
        k = report_emit(r->spool, &rep, NULL);
        report_log_events(r->spool);
        if (k < 0) {
                log_error_errno(k, "Failed to spool the %s report: %m", report_phase_to_string(r->phase));
                r->spool_failed = true;
        }
}

/* The quick phases report only their outcome; a long one (the rebuild) its start too. */
static void phase_start(struct run *r, enum report_phase phase)
{
        r->phase = phase;
        r->phase_started_us = now_us();
        log_info("[%s]", report_phase_to_string(phase));
        if (phase == REPORT_PHASE_REBUILD)
                emit(r, REPORT_STATUS_STARTED, NULL, NULL, false, NULL);
}

static void phase_end(struct run *r)
{
        if (r->n_timings < RUN_MAX_PHASES) {
                r->timings[r->n_timings].phase = r->phase;
                r->timings[r->n_timings++].us = now_us() - r->phase_started_us;
        }
}

static void phase_ok(struct run *r, const char *message)
{
        phase_end(r);
        if (message)
                log_info("  %s", message);
        emit(r, REPORT_STATUS_OK, message, NULL, false, NULL);
}

/* Logs and reports a failed phase; returns exit_code for "return phase_failed(...)". */
static int phase_failed(struct run *r, int exit_code, const char *error, const char *log_tail)
{
        phase_end(r);
        snprintf(r->error, sizeof(r->error), "%s", error);
        log_error("%s failed: %s", report_phase_to_string(r->phase), error);
        emit(r, REPORT_STATUS_FAILED, NULL, error, log_tail != NULL, log_tail);
        return exit_code;
}

static void run_help(void)
{
        printf("Usage: nixprov-agent run [OPTIONS...]\n\n"
               "Provisions this device: identify, fetch the profile and its signature, verify\n"
               "them, plan the Nix settings, write them, rebuild with them in force, and report\n"
               "every phase to the server (reports are spooled on disk first). A profile with the\n"
               "serial already applied is nothing to do; a higher serial is an update.\n\n"
               "Options:\n"
               "  -c, --config FILE      the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT ")\n"
               "  -r, --root DIR         the device's root directory (default /): every file the\n"
               "                         agent writes, its state and logs are under it\n"
               "      --cmdline FILE     the kernel command line to read nixprov.url=, nixprov.key=\n"
               "                         and nixprov.group= from (default /proc/cmdline; - for none)\n"
               "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
               "      --no-rebuild       write the files but run no rebuild (an installer that\n"
               "                         builds the system itself); the serial is not recorded\n"
               "  -h, --help             show this help\n\n"
               "Exit codes: 0 done or nothing to do, 2 usage or configuration error, 3 fetch\n"
               "failed, 4 verification refused, 5 write failed, 6 builders unusable, 7 rebuild\n"
               "failed, 8 a report could not be spooled, 9 not admitted by the server (revoked,\n"
               "still pending when the configured wait ran out, or enrolled with another key).\n");
}

static int load_config(struct run *r)
{
        int k;

        k = config_load(r->config_path, r->cmdline_path, &r->config);
        if (k < 0)
                return k;
        if (r->config->n_urls == 0)
                return log_error_errno(-EINVAL, "No server: set server.urls in %s or nixprov.url= "
                                                "on the kernel command line.",
                                       r->config_path);
        if (r->config->n_keys == 0)
                return log_error_errno(-EINVAL, "No trusted key: set trusted-keys in %s or "
                                                "nixprov.key= on the kernel command line.",
                                       r->config_path);
        return 0;
}

static int setup_dirs_and_spool(struct run *r)
{
        _cleanup_free_ char *spool_dir = NULL;
        int k;

        r->state_dir = path_join_root(r->root, r->config->state_dir);
        r->log_dir = path_join_root(r->root, r->config->log_dir);
        if (!r->state_dir || !r->log_dir)
                return log_oom();
        k = mkdir_parents(r->state_dir, 0700);
        if (k >= 0 && chmod(r->state_dir, 0700) < 0) /* it holds the device's keys: root only */
                k = -errno;
        if (k < 0)
                return log_error_errno(k, "Failed to create %s: %m", r->state_dir);
        k = mkdir_parents(r->log_dir, 0750);
        if (k < 0)
                return log_error_errno(k, "Failed to create %s: %m", r->log_dir);

        config_fetch_options(r->config, &r->fetch);
        r->fetch.max_size = PROFILE_MAX_BYTES;

        spool_dir = config_state_path(r->config, r->root, CONFIG_STATE_REPORTS);
        if (!spool_dir)
                return log_oom();
        k = report_open(spool_dir, r->id.machine_id, &r->fetch, REPORT_PATH_DEFAULT, &r->spool);
        if (k < 0)
                return log_error_errno(k, "Failed to open the report spool %s: %m", spool_dir);
        /* The quick phases are spooled as they happen and sent together before the rebuild
         * (or at the end): a few milliseconds apart, they need no round trip each. */
        report_set_send_on_emit(r->spool, false);
        return 0;
}

static void on_enroll_pending(uint64_t waited_ms, void *userdata)
{
        struct run *r = userdata;

        if (r->pending_logged)
                return;
        r->pending_logged = true;
        log_info("  pending: waiting up to %" PRIu64 " s for an operator to approve machine %s "
                 "('nixprov fleet approve %s' on the server)",
                 r->config->enroll_wait - MIN(r->config->enroll_wait, waited_ms / 1000),
                 r->id.machine_id, r->id.machine_id);
}

/* Enrolls with the server and waits while the enrollment is pending. A device that cannot reach
 * the server goes on: its profile may come from a mirror (an offline install), and its reports
 * wait in the spool until a later run or flush enrolls it. */
static int run_enroll(struct run *r)
{
        _cleanup_free_ char *body = NULL;
        struct fetch_error error = {};
        struct fetch_options o;
        enum enroll_state state;
        char message[FETCH_URL_MAX + 512];
        size_t size;
        int k;

        phase_start(r, REPORT_PHASE_ENROLL);
        k = agent_enroll_request(r->config, r->root, &r->id, r->key, &body, &size, message,
                                 sizeof(message));
        if (k != AGENT_EXIT_OK)
                return phase_failed(r, k, message, NULL);

        /* With offline media among the mirrors, an unreachable server is not waited for: the
         * profile is at hand, and the reports wait in the spool anyway. */
        o = r->fetch;
        for (size_t i = 0; i < r->config->n_urls; i++)
                if (strncmp(r->config->urls[i], "file://", 7) == 0)
                        o.deadline_ms = MIN(o.deadline_ms, o.connect_timeout_ms);
        k = enroll_wait(&o, body, size, r->config->enroll_wait * 1000, on_enroll_pending, r,
                        &state, &error);
        if (k < 0) {
                snprintf(message, sizeof(message),
                         "not enrolled: the server cannot be reached (%s: %s); going on with the "
                         "mirrors, the reports wait in the spool",
                         error.url[0] ? error.url : "(no URL)",
                         error.message[0] ? error.message : strerror(-k));
                log_warning("  %s", message);
                phase_ok(r, message);
                return 0;
        }
        switch (state) {
        case ENROLL_APPROVED:
                phase_ok(r, "approved");
                return 0;
        case ENROLL_NO_SERVER:
                phase_ok(r, "skipped: no mirror takes enrollments (file:// or static mirrors)");
                return 0;
        case ENROLL_PENDING:
                snprintf(message, sizeof(message),
                         "not approved within %" PRIu64 " s: machine %s is still pending. Approve "
                         "it on the server with 'nixprov fleet approve %s' (or an enrollment "
                         "policy); the next run asks again",
                         r->config->enroll_wait, r->id.machine_id, r->id.machine_id);
                return phase_failed(r, AGENT_EXIT_ENROLL, message, NULL);
        case ENROLL_REVOKED:
                snprintf(message, sizeof(message),
                         "machine %s is revoked by the operator: stopping, nothing is provisioned",
                         r->id.machine_id);
                return phase_failed(r, AGENT_EXIT_ENROLL, message, NULL);
        case ENROLL_REFUSED:
                snprintf(message, sizeof(message),
                         "the server refuses to enroll machine %s: its enrollment policy admits "
                         "only the devices it lists or that carry its enrollment token "
                         "(enroll.token-file)",
                         r->id.machine_id);
                return phase_failed(r, AGENT_EXIT_ENROLL, message, NULL);
        case ENROLL_CONFLICT:
        default:
                snprintf(message, sizeof(message),
                         "the server knows machine %s with other device keys (a cloned or "
                         "reinstalled disk?) and refuses these until an operator runs "
                         "'nixprov fleet reset %s'",
                         r->id.machine_id, r->id.machine_id);
                return phase_failed(r, AGENT_EXIT_ENROLL, message, NULL);
        }
}

static int run_fetch(struct run *r)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL;
        struct buf groups = BUF_INIT(4096);
        struct fetch_error error = {};
        char message[FETCH_URL_MAX + 1024], source[FETCH_URL_MAX];
        int k;

        phase_start(r, REPORT_PHASE_FETCH);
        /* The server picks the machine's own profile, else its first group's, else a default. */
        for (size_t i = 0; i < r->config->n_groups; i++)
                (void)buf_printf(&groups, "%s%s", i ? "%2C" : "?groups=", r->config->groups[i]);
        if (asprintf(&path, "/v1/machines/%s/profile%s", r->id.machine_id, groups.data ?: "") < 0 ||
            asprintf(&sig_path, "/v1/machines/%s/profile.minisig%s", r->id.machine_id,
                     groups.data ?: "") < 0) {
                buf_free(&groups);
                return phase_failed(r, AGENT_EXIT_FETCH, "out of memory", NULL);
        }
        buf_free(&groups);

        k = fetch_get(&r->fetch, path, &r->profile, &r->profile_size, &error);
        if (k >= 0) {
                snprintf(source, sizeof(source), "%s", error.url);
                r->fetch.max_size = MINISIGN_FILE_MAX;
                k = fetch_get(&r->fetch, sig_path, &r->signature, &r->signature_size, &error);
        }
        if (k < 0) {
                snprintf(message, sizeof(message), "%s: %s (%u attempt%s)", error.url,
                         error.message[0] ? error.message : strerror(-k), error.attempts,
                         error.attempts == 1 ? "" : "s");
                return phase_failed(r, AGENT_EXIT_FETCH, message, NULL);
        }
        snprintf(message, sizeof(message), "%s (%zu bytes) and its signature (%zu bytes)", source,
                 r->profile_size, r->signature_size);
        phase_ok(r, message);
        return 0;
}

static int run_verify(struct run *r, struct agent_state *state, bool *ret_up_to_date)
{
        _cleanup_free_ char *why = NULL;
        char message[256], key_id[MINISIGN_KEY_ID_STRING_MAX];
        int k;

        phase_start(r, REPORT_PHASE_VERIFY);
        k = state_load(r->state_dir, state);
        if (k < 0) {
                snprintf(message, sizeof(message), "the agent state in %s cannot be read: %s",
                         r->state_dir, k == -EBADMSG ? "damaged" : strerror(-k));
                return phase_failed(r, AGENT_EXIT_REFUSED, message, NULL);
        }
        r->trust_ctx = (struct trust_context){
                .keys = r->config->keys,
                .n_keys = r->config->n_keys,
                .machine_id = r->id.machine_id,
                .groups = r->config->groups,
                .n_groups = r->config->n_groups,
                .have_applied = state->have_applied,
                .applied_serial = state->applied_serial,
                .applied_time = state->applied_time,
                .build_time = trust_build_time(),
                .now = (int64_t)time(NULL),
        };
        k = trust_decide(&r->trust_ctx, (const uint8_t *)r->profile, r->profile_size, "profile",
                         r->signature, r->signature_size, &r->trust);
        if (k < 0) {
                why = trust_format_refusal(&r->trust_ctx, &r->trust, k);
                return phase_failed(r, AGENT_EXIT_REFUSED, why ?: trust_strerror(k), NULL);
        }
        *ret_up_to_date = r->trust.decision == TRUST_UP_TO_DATE;
        snprintf(message, sizeof(message), "serial %" PRIu64 " signed by key %s: %s",
                 r->trust.profile->serial,
                 minisign_key_id_to_string(r->trust.key->key_id, key_id),
                 *ret_up_to_date ? "already applied, nothing to do"
                 : state->have_applied ? "an update"
                                       : "first provisioning");
        phase_ok(r, message);
        return 0;
}

static int run_plan(struct run *r)
{
        struct plan_hardware hw = {
                .cpus = r->id.cpus,
                .memory_bytes = r->id.memory_bytes,
                /* Until builders are probed, every builder of the profile counts as answering. */
                .builders_answering = (unsigned)r->trust.profile->n_builders,
        };
        char message[256], error[SECRETS_ERROR_MAX];
        int k;

        phase_start(r, REPORT_PHASE_PLAN);
        k = plan_build(r->trust.profile, &hw, &r->plan);
        if (k < 0) {
                snprintf(message, sizeof(message), "the profile cannot be turned into Nix settings: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_REFUSED, message, NULL);
        }
        /* Sealed values are opened only now, after the signature and the trust rules. */
        k = secrets_open(r->trust.profile, r->key, &r->secrets, error);
        if (k < 0)
                return phase_failed(r, AGENT_EXIT_REFUSED, error, NULL);
        snprintf(message, sizeof(message),
                 "strategy %s, %zu settings, %zu builders, %zu caches; max-jobs %s, cores %s",
                 profile_strategy_to_string(r->plan->strategy), r->plan->n_settings,
                 r->plan->n_builders, r->plan->n_caches, plan_get(r->plan, "max-jobs") ?: "-",
                 plan_get(r->plan, "cores") ?: "-");
        phase_ok(r, message);
        return 0;
}

/* Appends text to dst (a NUL-terminated string in size bytes), cutting it off with "..." when
 * there is no room: the phase's report message stays bounded whatever the builders said. */
static void append_bounded(char *dst, size_t size, const char *text)
{
        size_t used = strlen(dst), len = strlen(text);

        if (used + len < size) {
                memcpy(dst + used, text, len + 1);
                return;
        }
        if (used + 4 > size)
                return;
        memcpy(dst + used, text, size - used - 4);
        memcpy(dst + size - 4, "...", 4);
}

/* The builders phase: probe every builder, re-plan with the number that answered (which decides
 * where builds run, plan.h step 6, and says so first in the report), and leave out of the plan
 * the required builders that did not answer (one not required is kept: Nix skips a builder it
 * cannot reach). */
static int run_builders(struct run *r)
{
        const struct profile *p = r->trust.profile;
        struct builder_probe results[PROFILE_MAX_BUILDERS];
        struct plan_hardware hw = {
                .cpus = r->id.cpus,
                .memory_bytes = r->id.memory_bytes,
        };
        struct plan *replanned = NULL;
        char message[REPORT_MESSAGE_MAX - 256], details[REPORT_MESSAGE_MAX - 512], line[512];
        char error[REPORT_MESSAGE_MAX], count[64];
        const char *mismatch = NULL, *max_jobs, *identities[PROFILE_MAX_BUILDERS];
        size_t n = r->plan->n_builders;
        unsigned answering = 0;
        int k;

        if (n == 0)
                return 0;
        phase_start(r, REPORT_PHASE_BUILDERS);
        /* Sealed identities log in from the memory they were opened into: their files are
         * written only in the next phase. */
        for (size_t i = 0; i < PROFILE_MAX_BUILDERS; i++)
                identities[i] = secrets_identity(&r->secrets, i);
        k = builders_probe(r->plan, r->root, identities, BUILDERS_DEADLINE_DEFAULT_MS, results);
        if (k < 0) {
                snprintf(message, sizeof(message), "the probes could not be started: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_BUILDERS, message, NULL);
        }
        for (size_t i = 0; i < n; i++) {
                if (results[i].state == BUILDER_STATE_OK)
                        answering++;
                else if (results[i].state == BUILDER_STATE_HOST_KEY_MISMATCH &&
                         r->plan->builders[i].required && !mismatch)
                        mismatch = r->plan->builders[i].uri;
        }
        snprintf(count, sizeof(count), "%u of %zu builder%s answer%s", answering, n,
                 n == 1 ? "" : "s", n == 1 ? "s" : "");
        details[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                append_bounded(details, sizeof(details), "; ");
                builders_format(r->plan->builders[i].uri, &results[i], line, sizeof(line));
                append_bounded(details, sizeof(details), line);
                if (results[i].state != BUILDER_STATE_OK)
                        append_bounded(details, sizeof(details),
                                       r->plan->builders[i].required ? " (left out)"
                                                                     : " (kept: not required)");
        }

        if (mismatch) {
                snprintf(error, sizeof(error),
                         "the required builder %s shows another host key than the pinned one: "
                         "possible attack, nothing is written. %s%s",
                         mismatch, count, details);
                return phase_failed(r, AGENT_EXIT_BUILDERS, error, NULL);
        }

        /* max-jobs follows the builders that really answer (plan.h, step 6). */
        hw.builders_answering = answering;
        k = plan_build(p, &hw, &replanned);
        if (k < 0) {
                snprintf(error, sizeof(error), "the profile cannot be planned again: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_BUILDERS, error, NULL);
        }
        if (replanned->local_builds == PLAN_LOCAL_BUILDS_UNUSABLE) {
                plan_free(replanned);
                snprintf(error, sizeof(error),
                         "no builder answers and the profile does not allow building locally "
                         "(nix.fallback-local: false); nothing is written. %s%s",
                         count, details);
                return phase_failed(r, AGENT_EXIT_BUILDERS, error, NULL);
        }
        for (size_t i = n; i-- > 0;)
                if (results[i].state != BUILDER_STATE_OK && replanned->builders[i].required)
                        (void)plan_remove_builder(replanned, i);
        plan_free(r->plan);
        r->plan = replanned;

        /* What was decided comes first: the builders' lines may be cut off. */
        max_jobs = plan_get(r->plan, "max-jobs") ?: "-";
        switch (r->plan->local_builds) {
        case PLAN_LOCAL_BUILDS_NONE:
                snprintf(line, sizeof(line), "building remotely only (max-jobs = %s)", max_jobs);
                break;
        case PLAN_LOCAL_BUILDS_ALSO:
                snprintf(line, sizeof(line),
                         "building remotely and locally (nix.local-builds: true, max-jobs = %s)",
                         max_jobs);
                break;
        case PLAN_LOCAL_BUILDS_FALLBACK:
                snprintf(line, sizeof(line),
                         "none answers: building locally (nix.fallback-local: true, max-jobs = %s)",
                         max_jobs);
                break;
        default:
                snprintf(line, sizeof(line), "max-jobs = %s", max_jobs);
                break;
        }
        snprintf(message, sizeof(message), "%s: %s", count, line);
        append_bounded(message, sizeof(message), details);
        phase_ok(r, message);
        return 0;
}

static bool items_have(const struct write_item *items, size_t n, const char *path)
{
        for (size_t i = 0; i < n; i++)
                if (streq(items[i].path, path))
                        return true;
        return false;
}

/* The secret files an earlier profile left that this one does not write (a token it dropped, a
 * builder key it no longer has) are removed in the same write set, so that a failed rebuild puts
 * them back and a successful one forgets them. The paths of the builder keys found go to
 * ret_paths, for the caller to free. */
static int add_stale_secret_removals(struct run *r, struct write_item *items, size_t max,
                                     size_t *n, char **ret_paths, size_t *ret_n_paths)
{
        static const char *const fixed[] = {SECRETS_NETRC_FILE, SECRETS_CONF_FILE,
                                            SECRETS_CACHIX_DHALL_FILE};
        _cleanup_free_ char *nix_dir = NULL;
        DIR *dir;
        struct dirent *de;
        int k = 0;

        *ret_n_paths = 0;
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                if (!items_have(items, *n, fixed[i])) {
                        if (*n >= max)
                                return -E2BIG;
                        items[(*n)++] = (struct write_item){fixed[i], NULL, 0, 0600};
                }

        nix_dir = path_join_root(r->root, "/etc/nix");
        if (!nix_dir)
                return -ENOMEM;
        dir = opendir(nix_dir);
        if (!dir)
                return errno == ENOENT ? 0 : -errno;
        while (k == 0 && (de = readdir(dir))) {
                char path[PATH_MAX];
                size_t index;
                int end = 0;

                if (sscanf(de->d_name, "nixprov-builder-%zu.key%n", &index, &end) != 1 ||
                    de->d_name[end] != '\0')
                        continue;
                snprintf(path, sizeof(path), PLAN_SEALED_IDENTITY_FORMAT, index);
                if (!streq(path + strlen("/etc/nix/"), de->d_name) ||
                    items_have(items, *n, path))
                        continue;
                if (*n >= max)
                        k = -E2BIG;
                else if (!(ret_paths[*ret_n_paths] = strdup(path)))
                        k = -ENOMEM;
                else
                        items[(*n)++] = (struct write_item){ret_paths[(*ret_n_paths)++], NULL, 0,
                                                            0600};
        }
        closedir(dir);
        return k;
}

static int run_write(struct run *r)
{
        _cleanup_free_ char *conf = NULL, *machines = NULL, *module = NULL, *failed = NULL,
                            *ssh_config = NULL;
        uint64_t serial = r->trust.profile->serial;
        struct write_item items[WRITE_MAX_FILES];
        char *stale[WRITE_MAX_FILES];
        size_t n = 0, n_stale = 0, n_removals = 0;
        char message[512];
        int k;

        phase_start(r, REPORT_PHASE_WRITE);
        k = render_nix_conf(r->plan, serial, &conf);
        if (k >= 0)
                k = render_nixos_module(r->plan, serial, &module);
        /* Always written, empty without builders: a builder of an older profile never lingers. */
        if (k >= 0)
                k = render_machines(r->plan, &machines);
        if (k >= 0)
                k = render_ssh_config(r->plan, serial, &ssh_config);
        if (k >= 0 && render_plan_has_ssh_aliases(r->plan)) {
                _cleanup_free_ char *root = realpath(r->root, NULL);

                r->ssh_config_path = root ? path_join_root(root, RENDER_SSH_CONFIG_FILE) : NULL;
                if (!r->ssh_config_path)
                        k = -errno;
                else if (!string_is_safe(r->ssh_config_path, 4096, "/._+@-"))
                        k = -EINVAL; /* it goes into NIX_SSHOPTS, split on white space */
        }
        if (k < 0) {
                snprintf(message, sizeof(message), "failed to render the Nix files: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }

        items[n++] = (struct write_item){RENDER_NIX_CONF_FILE, conf, strlen(conf), 0644};
        items[n++] = (struct write_item){RENDER_NIXOS_MODULE_FILE, module, strlen(module), 0644};
        items[n++] = (struct write_item){RENDER_MACHINES_FILE, machines, strlen(machines), 0644};
        items[n++] = (struct write_item){RENDER_SSH_CONFIG_FILE, ssh_config, strlen(ssh_config), 0644};
        k = secrets_items(r->plan, &r->secrets, items, ELEMENTSOF(items), &n);
        if (k < 0) {
                secrets_done(&r->secrets);
                snprintf(message, sizeof(message), "failed to prepare the secret files: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }
        if (secrets_have_netrc(&r->secrets)) {
                /* The first build reads the netrc where it was written: under the root, made
                 * absolute (the rebuild does not run in the root's directory). */
                _cleanup_free_ char *root = realpath(r->root, NULL);
                r->netrc_path = root ? path_join_root(root, SECRETS_NETRC_FILE) : NULL;
                if (r->netrc_path && !string_is_safe(r->netrc_path, 4096, "/._+@-")) {
                        /* It goes into a nix.conf line. */
                        secrets_done(&r->secrets);
                        snprintf(message, sizeof(message),
                                 "the root %s has characters a nix.conf line cannot carry", root);
                        return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
                }
                if (!r->netrc_path) {
                        secrets_done(&r->secrets);
                        snprintf(message, sizeof(message), "failed to resolve the root %s: %s",
                                 r->root, strerror(errno));
                        return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
                }
        }
        k = add_stale_secret_removals(r, items, ELEMENTSOF(items), &n, stale, &n_stale);
        if (k < 0) {
                secrets_done(&r->secrets);
                snprintf(message, sizeof(message), "failed to look for secret files to remove: %s",
                         strerror(-k));
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }
        k = write_files(r->root, items, n, &r->written, &failed);
        for (size_t i = 0; i < n_stale; i++)
                free(stale[i]);
        /* Written (or not): the plaintexts are not needed any more. */
        secrets_done(&r->secrets);
        if (k < 0) {
                snprintf(message, sizeof(message), "failed to write %s: %s; nothing was changed",
                         failed ?: "the Nix files", strerror(-k));
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }
        for (size_t i = 0; i < r->written.n_files; i++)
                n_removals += r->written.files[i].removed;
        snprintf(message, sizeof(message), "wrote %zu files (previous versions kept as FILE~)%s",
                 r->written.n_files - n_removals, n_removals > 0 ? "; removed the secret files this profile no "
                                                  "longer has" : "");
        phase_ok(r, message);
        return 0;
}

static void on_rebuild_progress(const struct nixlog_counts *counts, uint64_t elapsed_ms,
                                void *userdata)
{
        struct run *r = userdata;
        char message[256];

        r->rebuild.counts = *counts;
        snprintf(message, sizeof(message),
                 "%" PRIu64 " s: %" PRIu64 " substituted, %" PRIu64 " built locally, %" PRIu64
                 " built remotely",
                 elapsed_ms / 1000, counts->substituted, counts->built_local, counts->built_remote);
        emit(r, REPORT_STATUS_PROGRESS, message, NULL, true, NULL);
}

static int run_rebuild(struct run *r)
{
        _cleanup_free_ char *nix_config = NULL, *log_path = NULL, *command = NULL;
        const struct profile *p = r->trust.profile;
        char **argv = NULL;
        char message[NIXLOG_ERROR_MAX + 512];
        int k;

        /* Before the long phase, the server learns how the quick ones went. */
        (void)report_flush(r->spool, REBUILD_REPORT_FLUSH_MS, NULL, NULL);
        report_log_events(r->spool);
        report_set_send_on_emit(r->spool, true);
        phase_start(r, REPORT_PHASE_REBUILD);
        k = render_nix_config_env(r->plan, &nix_config);
        if (k >= 0 && r->netrc_path) {
                /* The path of the 0600 netrc, never the token: private caches answer the first
                 * build too. */
                char *with = NULL;
                if (asprintf(&with, "%snetrc-file = %s\n", nix_config, r->netrc_path) < 0)
                        k = -ENOMEM;
                else {
                        free(nix_config);
                        nix_config = with;
                }
        }
        if (k >= 0)
                k = rebuild_default_argv(profile_rebuild_action_to_string(p->rebuild.action),
                                         p->rebuild.flake, &argv);
        if (k >= 0)
                k = rebuild_log_path(r->log_dir, p->serial, (int64_t)time(NULL), &log_path);
        if (k >= 0 && !(command = strdup(r->config->rebuild_command)))
                k = -ENOMEM;
        if (k < 0) {
                argv = rebuild_argv_free(argv);
                snprintf(message, sizeof(message), "failed to prepare the rebuild: %s", strerror(-k));
                (void)write_restore(&r->written);
                return phase_failed(r, AGENT_EXIT_REBUILD, message, NULL);
        }
        /* The command is the configuration's (never the profile's): nixos-rebuild, or a test's
         * stand-in, given the same arguments. */
        free(argv[0]);
        argv[0] = TAKE_PTR(command);

        struct rebuild_options o = {
                .argv = argv,
                .nix_config = nix_config,
                .ssh_config = r->ssh_config_path,
                .path = r->config->rebuild_path,
                .timeout_sec = p->rebuild.timeout,
                .log_path = log_path,
                .on_progress = on_rebuild_progress,
                .progress_interval_sec = p->report.interval,
                .userdata = r,
        };
        log_info("  %s %s%s%s (log: %s)", argv[0], argv[1], p->rebuild.flake ? " --flake " : "",
                 p->rebuild.flake ?: "", log_path);
        k = rebuild_run(&o, &r->rebuild);
        argv = rebuild_argv_free(argv);
        if (k < 0) {
                int restored = write_restore(&r->written);

                const char *restored_text = restored < 0 ? "could NOT be restored" : "restored";

                if (r->rebuild.timed_out)
                        snprintf(message, sizeof(message),
                                 "timed out after %" PRIu64 " s and was killed; previous Nix files %s",
                                 p->rebuild.timeout, restored_text);
                else if (r->rebuild.exec_failed)
                        snprintf(message, sizeof(message), "cannot run %s: %s; previous Nix files %s",
                                 r->config->rebuild_command, strerror(r->rebuild.exec_errno),
                                 restored_text);
                else if (!r->rebuild.exited && r->rebuild.signal == 0)
                        snprintf(message, sizeof(message), "cannot run %s: %s; previous Nix files %s",
                                 r->config->rebuild_command, strerror(-k), restored_text);
                else
                        snprintf(message, sizeof(message), "%s %d%s%s; previous Nix files %s",
                                 r->rebuild.exited ? "exited with status" : "killed by signal",
                                 r->rebuild.exited ? r->rebuild.exit_status : r->rebuild.signal,
                                 r->rebuild.last_error[0] ? ": " : "", r->rebuild.last_error,
                                 restored_text);
                return phase_failed(r, AGENT_EXIT_REBUILD, message, r->rebuild.tail);
        }
        snprintf(message, sizeof(message),
                 "done in %" PRIu64 " ms: %" PRIu64 " paths substituted, %" PRIu64
                 " derivations built locally, %" PRIu64 " remotely, %" PRIu64 " bytes downloaded",
                 r->rebuild.duration_ms, r->rebuild.counts.substituted,
                 r->rebuild.counts.built_local, r->rebuild.counts.built_remote,
                 r->rebuild.counts.downloaded_bytes);
        phase_end(r);
        log_info("  %s", message);
        emit(r, REPORT_STATUS_OK, message, NULL, true, NULL);
        return 0;
}

/* Keeps the applied profile and its signature, as downloaded, for `nixprov-agent builders`
 * (which verifies them again before use). */
static int save_applied_profile(struct run *r)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL;
        int k;

        if (asprintf(&path, "%s/%s", r->state_dir, BUILDERS_APPLIED_PROFILE) < 0 ||
            asprintf(&sig_path, "%s/%s", r->state_dir, BUILDERS_APPLIED_SIGNATURE) < 0)
                return -ENOMEM;
        k = write_file_atomic(sig_path, r->signature, r->signature_size, 0600, 0);
        if (k < 0)
                return k;
        return write_file_atomic(path, r->profile, r->profile_size, 0600, 0);
}

/* The record `nixprov-agent status` shows: the outcome of the last run. */
static void save_last_run(struct run *r, int exit_code, const char *outcome)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        json_t *o;

        if (!r->state_dir ||
            !(path = config_state_path(r->config, r->root, CONFIG_STATE_LAST_RUN)))
                return;
        o = json_pack("{s:s, s:i, s:s, s:I}", "outcome", outcome, "exit_code", exit_code,
                      "phase", report_phase_to_string(r->phase), "time", (json_int_t)time(NULL));
        if (o && r->error[0])
                json_object_set_new(o, "error", json_string(r->error));
        if (!o)
                return;
        if (have_serial(r))
                json_object_set_new(o, "serial", json_integer((json_int_t)r->trust.profile->serial));
        if (r->rebuild.started)
                json_object_set_new(o, "counts",
                                    json_pack("{s:I, s:I, s:I, s:I}", "substituted",
                                              (json_int_t)r->rebuild.counts.substituted, "built",
                                              (json_int_t)r->rebuild.counts.built_local,
                                              "built_remote",
                                              (json_int_t)r->rebuild.counts.built_remote,
                                              "downloaded_bytes",
                                              (json_int_t)r->rebuild.counts.downloaded_bytes));
        json_t *timings = json_object();
        for (size_t i = 0; timings && i < r->n_timings; i++)
                json_object_set_new(timings, report_phase_to_string(r->timings[i].phase),
                                    json_integer((json_int_t)r->timings[i].us));
        json_object_set_new(o, "timings_us", timings);
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text)
                (void)write_file_atomic(path, text, strlen(text), 0600, 0);
}

static void finish(struct run *r)
{
        unsigned sent = 0, pending = 0;
        int k;

        if (!r->spool)
                return;
        /* A server that failed earlier in this run gets one short try, not the full wait. */
        k = report_flush(r->spool,
                         report_stats(r->spool)->send_failures > 0 ? RUN_RETRY_FLUSH_MS
                                                                   : RUN_FINAL_FLUSH_MS,
                         &sent, &pending);
        report_log_events(r->spool);
        if (k < 0 && pending > 0)
                log_warning("%u report%s kept in the spool: the server cannot be reached (%s). "
                            "They are sent on the next run or by 'nixprov-agent flush'.",
                            pending, pending == 1 ? " is" : "s are", strerror(-k));
}

static void run_done(struct run *r)
{
        trust_result_done(&r->trust);
        r->plan = plan_free(r->plan);
        r->key = devicekey_free(r->key);
        secrets_done(&r->secrets);
        free(r->netrc_path);
        free(r->ssh_config_path);
        write_set_done(&r->written);
        r->spool = report_close(r->spool);
        r->config = agent_config_free(r->config);
        free(r->profile);
        free(r->signature);
        free(r->state_dir);
        free(r->log_dir);
}

static int run_phases(struct run *r)
{
        struct agent_state state;
        char message[512];
        bool up_to_date = false, created = false;
        int k;

        r->phase = REPORT_PHASE_IDENTIFY;
        r->phase_started_us = now_us();
        k = agent_identify(r->root, r->machine_id_override, &r->id);
        if (k != AGENT_EXIT_OK)
                return k;
        if (setup_dirs_and_spool(r) < 0)
                return AGENT_EXIT_USAGE;
        k = devicekey_load_or_create(r->state_dir, &r->key, &created);
        if (k < 0) {
                snprintf(message, sizeof(message), "the device keys in %s cannot be loaded or made: %s",
                         r->state_dir,
                         k == -EBADMSG ? "a key file is damaged"
                         : k == -EEXIST ? "a public key has lost its secret key; refusing to make a "
                                          "new identity silently"
                                        : strerror(-k));
                log_info("[identify]");
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }
        snprintf(message, sizeof(message), "machine %s (%s), %s, %u CPUs, %" PRIu64 " MiB%s",
                 r->id.machine_id, r->id.hostname, r->id.system, r->id.cpus,
                 r->id.memory_bytes >> 20, created ? "; device keys made" : "");
        log_info("[identify]");
        /* Every report from here on carries the device's signature. */
        report_set_signer(r->spool, report_sign_device, r->key);
        phase_ok(r, message);

        k = run_enroll(r);
        if (k == 0)
                k = run_fetch(r);
        if (k == 0)
                k = run_verify(r, &state, &up_to_date);
        if (k == 0 && up_to_date) {
                r->phase = REPORT_PHASE_DONE;
                emit(r, REPORT_STATUS_OK, "nothing to do: this serial is already applied", NULL, false, NULL);
                log_info("Nothing to do: serial %" PRIu64 " is already applied.",
                         r->trust.profile->serial);
                return AGENT_EXIT_OK;
        }
        if (k == 0)
                k = run_plan(r);
        if (k == 0)
                k = run_builders(r);
        if (k == 0)
                k = run_write(r);
        if (k != 0)
                return k;
        if (r->no_rebuild) {
                k = write_forget_secrets(&r->written);
                if (k < 0)
                        log_warning("Failed to remove the previous versions of the secret files: "
                                    "%s",
                                    strerror(-k));
                r->phase = REPORT_PHASE_REBUILD;
                emit(r, REPORT_STATUS_OK, "skipped (--no-rebuild): the files are written, nothing was built",
                     NULL, false, NULL);
                log_info("Files written for serial %" PRIu64 "; no rebuild (--no-rebuild), so the "
                         "serial is not recorded as applied.",
                         r->trust.profile->serial);
                return AGENT_EXIT_OK;
        }
        k = run_rebuild(r);
        if (k != 0)
                return k;

        phase_start(r, REPORT_PHASE_DONE);
        state = (struct agent_state){
                .have_applied = true,
                .applied_serial = r->trust.profile->serial,
                .applied_time = r->trust.trusted_now,
        };
        k = save_applied_profile(r);
        if (k >= 0)
                k = state_save(r->state_dir, &state);
        if (k < 0) {
                snprintf(message, sizeof(message), "failed to record the applied profile and serial in %s: %s",
                         r->state_dir, strerror(-k));
                return phase_failed(r, AGENT_EXIT_WRITE, message, NULL);
        }
        k = write_forget_secrets(&r->written);
        if (k < 0)
                log_warning("Failed to remove the previous versions of the secret files: %s",
                            strerror(-k));
        snprintf(message, sizeof(message), "provisioned at serial %" PRIu64,
                 r->trust.profile->serial);
        phase_end(r);
        log_info("  %s", message);
        emit(r, REPORT_STATUS_OK, message, NULL, true, NULL);
        return AGENT_EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"root", required_argument, NULL, 'r'},
                {"cmdline", required_argument, NULL, 'C'},
                {"machine-id", required_argument, NULL, 'm'},
                {"no-rebuild", no_argument, NULL, 'N'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct run r = {
                .root = "/",
                .config_path = AGENT_CONFIG_PATH_DEFAULT,
                .cmdline_path = "/proc/cmdline",
        };
        int c, k, exit_code;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:r:m:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        r.config_path = optarg;
                        break;
                case 'r':
                        r.root = optarg;
                        break;
                case 'C':
                        r.cmdline_path = optarg;
                        break;
                case 'm':
                        r.machine_id_override = optarg;
                        break;
                case 'N':
                        r.no_rebuild = true;
                        break;
                case 'h':
                        run_help();
                        return AGENT_EXIT_OK;
                default:
                        return AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent run --help'.", argv[optind]);
                return AGENT_EXIT_USAGE;
        }

        k = fetch_global_init();
        if (k < 0) {
                log_error_errno(k, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_USAGE;
        }
        if (load_config(&r) < 0) {
                exit_code = AGENT_EXIT_USAGE;
        } else {
                exit_code = run_phases(&r);
                if (r.spool_failed && exit_code == AGENT_EXIT_OK)
                        exit_code = AGENT_EXIT_REPORT;
                save_last_run(&r, exit_code, exit_code == AGENT_EXIT_OK ? "ok" : "failed");
                finish(&r);
        }
        run_done(&r);
        fetch_global_cleanup();
        return exit_code;
}
