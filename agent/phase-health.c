/* SPDX-License-Identifier: MIT */
/* The update's safety net: the system the device runs before a switch is recorded; after it,
 * the profile's health checks run; when the rebuild or a check fails the device goes back to
 * exactly that store path (not the generation below: Cachix's rule), the Nix files are put
 * back, and the serial is remembered so that it is not tried again. With rebuild.action: boot
 * (or a new kernel and rebuild.allow-reboot), the checks wait for the next boot: the confirm phase.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "builders.h"
#include "config.h"
#include "engine.h"
#include "fileio.h"
#include "state.h"
#include "system.h"
#include "trust.h"
#include "util.h"

#define SWITCH_TIMEOUT_SEC 600

static void copy(char *dst, size_t size, const char *s)
{
        snprintf(dst, size, "%s", s ?: "");
}

/* Records the outcome of serial in DIR/update; the systems are the run's. */
static int record(struct run_state *r, uint64_t serial, const char *outcome, const char *cause,
                  const char *booted)
{
        struct update_state u = {
            .serial = serial,
            .time = (int64_t)time(NULL),
            .have_previous_serial = r->trust_ctx.have_applied,
            .previous_serial = r->trust_ctx.applied_serial,
            .previous_time = r->trust_ctx.applied_time,
        };

        copy(u.outcome, sizeof(u.outcome), outcome);
        copy(u.previous, sizeof(u.previous), r->previous_system);
        copy(u.system, sizeof(u.system), r->new_system);
        copy(u.booted, sizeof(u.booted), booted);
        copy(u.cause, sizeof(u.cause), cause);
        return state_update_save(r->state_dir, &u);
}

static uint64_t serial_of(const struct run_state *r)
{
        return r->trust.profile->serial;
}

int update_begin(struct run_state *r, struct phase_result *res)
{
        int k = system_resolve(r->ctx->root, SYSTEM_PROFILE, &r->previous_system);

        if (k < 0 && k != -ENOENT)
                return phase_fail(res, "cannot tell the current system from %s under %s: %s",
                                  SYSTEM_PROFILE, r->ctx->root, strerror(-k));
        k = record(r, serial_of(r), "switching", NULL, NULL);
        if (k < 0)
                return phase_fail(res, "failed to record the update in %s: %s", r->state_dir,
                                  strerror(-k));
        if (r->previous_system)
                engine_note(r, "switching from %s", r->previous_system);
        else
                engine_note(r, "no system profile yet (first boot): nothing to roll back to");
        return 0;
}

/* Switches back to the previous system and puts the Nix files back: appends what was done to
 * text, sets the outcome and records it. */
static void roll_back(struct run_state *r, const char *cause, char *text, size_t size,
                      bool restore_files, struct phase_result *res)
{
        char error[512];
        size_t n = strlen(text);
        int k, restored = 0;

        if (!r->previous_system) {
                snprintf(text + n, size - n,
                         "; nothing to roll back to: there was no system profile before this "
                         "update (first boot)");
                res->outcome = "failed";
                (void)record(r, serial_of(r), res->outcome, cause, NULL);
                return;
        }
        k = system_switch(r->config, r->ctx->root, r->previous_system, "switch", SWITCH_TIMEOUT_SEC,
                          error, sizeof(error));
        if (restore_files)
                restored = write_restore(&r->written);
        if (k < 0)
                snprintf(text + n, size - n, "; the rollback to %s FAILED: %s", r->previous_system,
                         error);
        else if (restore_files)
                snprintf(text + n, size - n, "; rolled back to %s; previous Nix files %s",
                         r->previous_system, restored < 0 ? "could NOT be restored" : "restored");
        else
                snprintf(text + n, size - n, "; rolled back to %s", r->previous_system);
        res->outcome = k < 0 ? "failed" : "rolled-back";
        (void)record(r, serial_of(r), res->outcome, cause, NULL);
}

void update_rebuild_failed(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *now = NULL;
        char cause[ENGINE_MESSAGE_MAX];
        size_t n = strlen(res->message);

        snprintf(cause, sizeof(cause), "rebuild failed: %.1900s", res->message);
        (void)system_resolve(r->ctx->root, SYSTEM_PROFILE, &now);
        if ((!now && !r->previous_system) ||
            (now && r->previous_system && streq(now, r->previous_system))) {
                /* The switch never happened: the files were put back, the system is the old. */
                snprintf(res->message + n, sizeof(res->message) - n,
                         "; the system was not changed%s%s", r->previous_system ? ": " : "",
                         r->previous_system ?: "");
                res->outcome = r->previous_system ? "rolled-back" : "failed";
                (void)record(r, serial_of(r), res->outcome, cause, NULL);
                return;
        }
        r->new_system = TAKE_PTR(now);
        roll_back(r, cause, res->message, sizeof(res->message), false, res);
}

static int run_checks(struct run_state *r, const struct profile_health *h)
{
        struct health_options o = {
            .health = h,
            .systemctl = r->config->systemctl_command,
            .path = r->config->rebuild_path,
            .server = r->fetch,
        };

        if (!r->health && !(r->health = calloc(1, sizeof(*r->health))))
                return -ENOMEM;
        return health_run(&o, r->health);
}

/* The new system becomes the running one at the next boot: recorded for the confirm phase. */
static int pending_reboot(struct run_state *r, struct phase_result *res, const char *why,
                          bool reboot)
{
        _cleanup_free_ char *booted = NULL;
        char error[512] = "";
        int k;

        (void)system_resolve(r->ctx->root, SYSTEM_BOOTED, &booted);
        k = record(r, serial_of(r), "pending-reboot", why, booted);
        if (k < 0)
                return phase_fail(res, "failed to record the pending system in %s: %s",
                                  r->state_dir, strerror(-k));
        res->outcome = "pending-reboot";
        if (reboot && system_reboot(r->config, error, sizeof(error)) < 0)
                snprintf(res->warning, sizeof(res->warning), "The reboot failed: %s", error);
        return phase_ok(res,
                        "%s: %s is the system of the next boot; the health checks run after it "
                        "(%s)",
                        why, r->new_system ?: "the new system",
                        reboot ? "rebooting now" : "waiting for a reboot");
}

int phase_health(struct run_state *r, struct phase_result *res)
{
        const struct profile *p = r->trust.profile;
        _cleanup_free_ char *booted = NULL;
        char why[ENGINE_MESSAGE_MAX], first[ENGINE_MESSAGE_MAX - 64];
        int k;

        (void)system_resolve(r->ctx->root, SYSTEM_PROFILE, &r->new_system);
        if (p->rebuild.action == PROFILE_REBUILD_BOOT)
                return pending_reboot(r, res, "rebuild.action is boot", p->rebuild.allow_reboot);
        k = run_checks(r, &p->health);
        if (k == -ENOMEM)
                return phase_fail(res, "out of memory");
        if (k < 0) {
                snprintf(why, sizeof(why), "health check failed: %s",
                         health_first_failure(r->health, first, sizeof(first)));
                (void)phase_fail(res, "%s", why);
                roll_back(r, why, res->message, sizeof(res->message), true, res);
                return -1;
        }
        (void)system_resolve(r->ctx->root, SYSTEM_BOOTED, &booted);
        if (p->rebuild.allow_reboot && booted && r->new_system &&
            system_boot_files_differ(r->ctx->root, booted, r->new_system))
                return pending_reboot(r, res, "the new system has another kernel or initrd", true);
        res->outcome = "applied";
        (void)record(r, serial_of(r), res->outcome, NULL, NULL);
        if (r->health->n_checks == 0)
                return phase_ok(res, "no health checks in the profile");
        return phase_ok(res, "%zu health check%s passed in %" PRIu64 " ms", r->health->n_checks,
                        r->health->n_checks == 1 ? "" : "s", r->health->duration_ms);
}

/* ---- a serial that failed is not tried again ---- */

bool phase_not_retried_wanted(const struct run_state *r)
{
        struct update_state u;

        if (r->retry || state_update_load(r->state_dir, &u) < 0 || !u.have)
                return false;
        return u.serial == r->trust.profile->serial &&
               (streq(u.outcome, "rolled-back") || streq(u.outcome, "failed"));
}

int phase_not_retried(struct run_state *r, struct phase_result *res)
{
        struct update_state u = {};

        (void)state_update_load(r->state_dir, &u);
        res->outcome = "not-retried";
        snprintf(res->log, sizeof(res->log),
                 "Serial %" PRIu64 " %s before (%s): not tried again. A higher serial, or "
                 "'nixprov-agent run --retry', tries it.",
                 u.serial, streq(u.outcome, "failed") ? "failed" : "was rolled back", u.cause);
        return phase_ok(res, "serial %" PRIu64 " %s before: not tried again", u.serial,
                        streq(u.outcome, "failed") ? "failed" : "was rolled back");
}

/* ---- after a reboot: is the expected system running, and healthy? ---- */

bool phase_confirm_wanted(const struct run_state *r)
{
        struct update_state u;

        return !r->no_rebuild && state_update_load(r->state_dir, &u) >= 0 && u.have &&
               streq(u.outcome, "pending-reboot");
}

/* The applied profile kept by the done phase (0600 in the state directory), for its health:
 * section and rebuild.allow-reboot: verified again with the trusted keys, as `nixprov-agent
 * builders` does, so that nothing but a signed profile decides a rollback or a reboot. */
static int load_applied_profile(const struct run_state *r, struct profile **ret)
{
        _cleanup_free_ char *path = NULL, *sig_path = NULL, *failed = NULL;
        _cleanup_free_ char *data = NULL, *signature = NULL;
        struct trust_result trust = {};
        size_t size = 0, signature_size = 0;
        int k;

        if (asprintf(&path, "%s/%s", r->state_dir, BUILDERS_APPLIED_PROFILE) < 0 ||
            asprintf(&sig_path, "%s/%s", r->state_dir, BUILDERS_APPLIED_SIGNATURE) < 0)
                return -ENOMEM;
        k = trust_read_files(path, sig_path, &data, &size, &signature, &signature_size, &failed);
        if (k < 0)
                return k;
        k = trust_check_signed(r->config->keys, r->config->n_keys, (const uint8_t *)data, size,
                               path, signature, signature_size, &trust);
        if (k < 0) {
                trust_result_done(&trust);
                return -EKEYREJECTED;
        }
        *ret = TAKE_PTR(trust.profile);
        trust_result_done(&trust);
        return 0;
}

/* Back to the previous system after a boot: it becomes the default (and is booted into, when
 * the profile allows a reboot); the serial before the update is the applied one again. */
static int roll_back_boot(struct run_state *r, const struct update_state *u, const char *booted,
                          const struct profile *p, const char *cause, struct phase_result *res)
{
        struct agent_state applied = {.have_applied = true,
                                      .applied_serial = u->previous_serial,
                                      .applied_time = u->previous_time};
        struct update_state done = *u;
        bool running = booted && streq(booted, u->previous);
        bool reboot = !running && p && p->rebuild.allow_reboot;
        char error[512] = "";
        int k = 0;

        res->outcome = "failed";
        if (!u->previous[0])
                return phase_fail(res, "%s; nothing to roll back to (first boot)", cause);
        k = system_switch(r->config, r->ctx->root, u->previous, running ? "switch" : "boot",
                          SWITCH_TIMEOUT_SEC, error, sizeof(error));
        if (k < 0)
                return phase_fail(res, "%s; the rollback to %s FAILED: %s", cause, u->previous,
                                  error);
        if (u->have_previous_serial)
                (void)state_save(r->state_dir, &applied);
        res->outcome = "rolled-back";
        copy(done.outcome, sizeof(done.outcome), res->outcome);
        copy(done.cause, sizeof(done.cause), cause);
        done.time = (int64_t)time(NULL);
        (void)state_update_save(r->state_dir, &done);
        if (reboot && system_reboot(r->config, error, sizeof(error)) < 0)
                snprintf(res->warning, sizeof(res->warning), "The reboot failed: %s", error);
        return phase_fail(res, "%s; rolled back to %s%s", cause, u->previous,
                          running  ? " (already running)"
                          : reboot ? ": the default again, rebooting into it"
                                   : ": the default again from the next boot (rebuild.allow-reboot "
                                     "is not set: no reboot)");
}

int phase_confirm(struct run_state *r, struct phase_result *res)
{
        _cleanup_(profile_freep) struct profile *p = NULL;
        _cleanup_free_ char *booted = NULL;
        char cause[ENGINE_MESSAGE_MAX], first[ENGINE_MESSAGE_MAX - 64];
        struct update_state u;
        int k;

        k = state_update_load(r->state_dir, &u);
        if (k < 0)
                return phase_fail(res, "cannot read %s/%s: %s", r->state_dir, STATE_UPDATE_FILE,
                                  strerror(-k));
        (void)system_resolve(r->ctx->root, SYSTEM_BOOTED, &booted);
        r->has_update_serial = true;
        r->update_serial = u.serial;
        r->new_system = strdup(u.system);
        r->previous_system = u.previous[0] ? strdup(u.previous) : NULL;
        if (streq(booted ?: "", u.booted)) {
                res->outcome = "pending-reboot";
                return phase_ok(res, "serial %" PRIu64 ": waiting for a reboot into %s", u.serial,
                                u.system);
        }
        (void)load_applied_profile(r, &p);
        if (!booted || !streq(booted, u.system)) {
                snprintf(cause, sizeof(cause), "serial %" PRIu64 ": booted %.600s, not %.600s",
                         u.serial, booted ?: "no system", u.system);
                return roll_back_boot(r, &u, booted, p, cause, res);
        }
        k = p ? run_checks(r, &p->health) : -ENOENT;
        if (k < 0) {
                snprintf(cause, sizeof(cause), "serial %" PRIu64 ": health check failed: %s",
                         u.serial,
                         k == -ENOENT ? "the applied profile cannot be read"
                                      : health_first_failure(r->health, first, sizeof(first)));
                return roll_back_boot(r, &u, booted, p, cause, res);
        }
        res->outcome = "confirmed";
        copy(u.outcome, sizeof(u.outcome), res->outcome);
        u.time = (int64_t)time(NULL);
        (void)state_update_save(r->state_dir, &u);
        return phase_ok(res, "serial %" PRIu64 ": %s is running and %zu health check%s passed",
                        u.serial, u.system, r->health->n_checks,
                        r->health->n_checks == 1 ? "" : "s");
}
