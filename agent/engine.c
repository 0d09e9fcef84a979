/* SPDX-License-Identifier: MIT */
/* The phase engine: the table of a run's phases and the loop that runs it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "engine.h"
#include "fileio.h"
#include "log.h"
#include "report-log.h"
#include "util.h"

#define ENGINE_FINAL_FLUSH_MS (30 * 1000)
#define ENGINE_RETRY_FLUSH_MS (3 * 1000)
#define ENGINE_LONG_PHASE_FLUSH_MS (5 * 1000)

/* The run, in order. A phase that fails ends the run with its exit code. */
static const struct phase phases[] = {
    {"identify", REPORT_PHASE_IDENTIFY, AGENT_EXIT_USAGE, phase_identify, NULL, 0},
    {"enroll", REPORT_PHASE_ENROLL, AGENT_EXIT_ENROLL, phase_enroll, NULL, 0},
    /* Before the fetch: a device that booted into a system without network rolls back too. */
    {"confirm", REPORT_PHASE_CONFIRM, AGENT_EXIT_HEALTH, phase_confirm, phase_confirm_wanted, 0},
    {"fetch", REPORT_PHASE_FETCH, AGENT_EXIT_FETCH, phase_fetch, NULL, 0},
    {"verify", REPORT_PHASE_VERIFY, AGENT_EXIT_REFUSED, phase_verify, phase_verify_wanted, 0},
    {"up-to-date", REPORT_PHASE_DONE, AGENT_EXIT_OK, phase_up_to_date, NULL,
     PHASE_STAMP | PHASE_FINAL | PHASE_IF_UP_TO_DATE},
    {"not-retried", REPORT_PHASE_DONE, AGENT_EXIT_OK, phase_not_retried, phase_not_retried_wanted,
     PHASE_STAMP | PHASE_FINAL | PHASE_IF_CHANGED},
    {"plan", REPORT_PHASE_PLAN, AGENT_EXIT_REFUSED, phase_plan, NULL, PHASE_IF_CHANGED},
    {"builders", REPORT_PHASE_BUILDERS, AGENT_EXIT_BUILDERS, phase_builders, phase_builders_wanted,
     PHASE_IF_CHANGED},
    {"write", REPORT_PHASE_WRITE, AGENT_EXIT_WRITE, phase_write, NULL, PHASE_IF_CHANGED},
    {"no-rebuild", REPORT_PHASE_REBUILD, AGENT_EXIT_OK, phase_no_rebuild, NULL,
     PHASE_STAMP | PHASE_FINAL | PHASE_IF_CHANGED | PHASE_IF_NO_REBUILD},
    {"preflight", REPORT_PHASE_PREFLIGHT, AGENT_EXIT_PREFLIGHT, phase_preflight,
     phase_preflight_wanted, PHASE_IF_CHANGED | PHASE_IF_REBUILD},
    {"rebuild", REPORT_PHASE_REBUILD, AGENT_EXIT_REBUILD, phase_rebuild, NULL,
     PHASE_LONG | PHASE_COUNTS | PHASE_IF_CHANGED | PHASE_IF_REBUILD},
    {"health", REPORT_PHASE_HEALTH, AGENT_EXIT_HEALTH, phase_health, NULL,
     PHASE_IF_CHANGED | PHASE_IF_REBUILD},
    {"done", REPORT_PHASE_DONE, AGENT_EXIT_WRITE, phase_done, NULL,
     PHASE_COUNTS | PHASE_FINAL | PHASE_IF_CHANGED | PHASE_IF_REBUILD},
};

/* The engine's own record of the run. */
struct engine {
        struct run_state *r;
        const struct phase *current;
        uint64_t started_us;
        struct report_timing timings[ENGINE_PHASES_MAX];
        uint64_t timings_us[ENGINE_PHASES_MAX];
        size_t n_timings;
        bool spool_set_up;
        bool spool_failed;
        char error[ENGINE_MESSAGE_MAX]; /* why the run failed: what the report says */
        const char *outcome;            /* the current phase's outcome of the update */
};

static bool phase_is_wanted(const struct run_state *r, const struct phase *p)
{
        if ((p->flags & PHASE_IF_UP_TO_DATE) && !r->up_to_date)
                return false;
        if ((p->flags & PHASE_IF_CHANGED) && r->up_to_date)
                return false;
        if ((p->flags & PHASE_IF_NO_REBUILD) && !r->no_rebuild)
                return false;
        if ((p->flags & PHASE_IF_REBUILD) && r->no_rebuild)
                return false;
        return !p->wanted || p->wanted(r);
}

/* The serial the run is about: the fetched profile's, or with a 304 the applied one. */
static bool run_serial(const struct run_state *r, uint64_t *ret)
{
        if (r->trust.profile)
                *ret = r->trust.profile->serial;
        else if (r->not_modified)
                *ret = r->applied_serial;
        else
                return false;
        return true;
}

/* Spools one report; a report that cannot even be spooled ends the run with exit code 8. */
/* The health checks of the run, for the reports of the phases that ran them. */
static size_t report_checks(const struct engine *e, struct report_check *checks)
{
        const struct health_result *h = e->r->health;
        size_t n = 0;

        if (!h ||
            (e->current->phase != REPORT_PHASE_HEALTH && e->current->phase != REPORT_PHASE_CONFIRM))
                return 0;
        for (; n < h->n_checks && n < REPORT_CHECKS_MAX; n++)
                checks[n] =
                    (struct report_check){h->checks[n].name, h->checks[n].ok, h->checks[n].attempts,
                                          h->checks[n].ok ? NULL : h->checks[n].error};
        return n;
}

static void emit(struct engine *e, enum report_status status, const char *message,
                 const char *error, bool with_counts, const char *log_tail)
{
        struct run_state *r = e->r;
        uint64_t serial = 0;
        bool have_serial = run_serial(r, &serial);
        struct report_check checks[REPORT_CHECKS_MAX];
        bool final = status == REPORT_STATUS_OK || status == REPORT_STATUS_FAILED;
        struct report rep = {
            .phase = e->current->phase,
            .status = status,
            .has_serial = have_serial || r->has_update_serial,
            .serial = have_serial ? serial : r->update_serial,
            .message = message,
            .error = error,
            .counts = with_counts ? &r->rebuild.counts : NULL,
            .preflight = e->current->phase == REPORT_PHASE_PREFLIGHT && r->have_preflight
                             ? &r->preflight
                             : NULL,
            .timings = e->timings,
            .n_timings = e->n_timings,
            .log_tail = log_tail,
            .outcome = final ? e->outcome : NULL,
            .system = final && e->outcome ? r->new_system : NULL,
            .previous_system = final && e->outcome ? r->previous_system : NULL,
            .checks = checks,
            .n_checks = final ? report_checks(e, checks) : 0,
        };
        struct report_spool *spool = r->ctx->spool;
        int k;

        if (!spool)
                return;
        if (!e->spool_set_up) {
                /* The quick phases are spooled as they happen and sent together before the
                 * long one (or at the end): a few milliseconds apart, they need no round trip
                 * each. */
                report_set_send_on_emit(spool, false);
                e->spool_set_up = true;
        }
        k = report_emit(spool, &rep, NULL);
        report_log_events(spool);
        if (k < 0) {
                log_error_errno(k, "Failed to spool the %s report: %m",
                                report_phase_to_string(e->current->phase));
                e->spool_failed = true;
        }
}

static void phase_begin(struct engine *e, const struct phase *p)
{
        e->current = p;
        e->started_us = monotonic_us();
        if (p->flags & PHASE_STAMP)
                return;
        if ((p->flags & PHASE_LONG) && e->r->ctx->spool) {
                /* Before the long phase, the server learns how the quick ones went. */
                (void)report_flush(e->r->ctx->spool, ENGINE_LONG_PHASE_FLUSH_MS, NULL, NULL);
                report_log_events(e->r->ctx->spool);
                report_set_send_on_emit(e->r->ctx->spool, true);
        }
        log_info("[%s]", p->name);
        if (p->flags & PHASE_LONG)
                emit(e, REPORT_STATUS_STARTED, NULL, NULL, false, NULL);
}

static void phase_end(struct engine *e)
{
        if ((e->current->flags & PHASE_STAMP) || e->n_timings >= ENGINE_PHASES_MAX)
                return;
        e->timings_us[e->n_timings] = monotonic_us() - e->started_us;
        e->timings[e->n_timings] =
            (struct report_timing){e->current->phase, e->timings_us[e->n_timings] / 1000};
        e->n_timings++;
}

/* Logs and reports the outcome of the current phase; returns the run's exit code when it
 * failed, else -1. */
static int phase_outcome(struct engine *e, int k, const struct phase_result *res)
{
        const struct phase *p = e->current;

        phase_end(e);
        e->outcome = res->outcome;
        if (res->outcome)
                e->r->outcome = res->outcome;
        if (res->warning[0])
                log_warning("%s", res->warning);
        if (k < 0) {
                snprintf(e->error, sizeof(e->error), "%s", res->message);
                log_error("%s failed: %s", report_phase_to_string(p->phase), res->message);
                emit(e, REPORT_STATUS_FAILED, NULL, res->message, res->log_tail != NULL,
                     res->log_tail);
                return res->exit_code ?: p->exit_code;
        }
        if (res->log[0])
                log_info("%s", res->log);
        else if (res->message[0])
                log_info("  %s", res->message);
        emit(e, REPORT_STATUS_OK, res->message[0] ? res->message : NULL, NULL,
             (p->flags & PHASE_COUNTS) != 0, NULL);
        return -1;
}

static int run_table(struct engine *e)
{
        for (size_t i = 0; i < ELEMENTSOF(phases); i++) {
                const struct phase *p = &phases[i];
                struct phase_result res = {};
                int k, exit_code;

                if (!phase_is_wanted(e->r, p))
                        continue;
                phase_begin(e, p);
                k = p->run(e->r, &res);
                exit_code = phase_outcome(e, k, &res);
                if (exit_code >= 0)
                        return exit_code;
                if (p->flags & PHASE_FINAL)
                        return AGENT_EXIT_OK;
        }
        return AGENT_EXIT_OK;
}

static json_t *counts_to_json(const struct nixlog_counts *c)
{
        return json_pack("{s:I, s:I, s:I, s:I}", "substituted", (json_int_t)c->substituted, "built",
                         (json_int_t)c->built_local, "built_remote", (json_int_t)c->built_remote,
                         "downloaded_bytes", (json_int_t)c->downloaded_bytes);
}

/* The record `nixprov-agent status` shows: the outcome of the last run. */
static void save_last_run(const struct engine *e, int exit_code)
{
        const struct run_state *r = e->r;
        _cleanup_free_ char *path = NULL, *text = NULL;
        json_t *o, *timings;
        uint64_t serial;

        if (!r->state_dir ||
            !(path = config_state_path(r->config, r->ctx->root, CONFIG_STATE_LAST_RUN)))
                return;
        o = json_pack("{s:s, s:i, s:s, s:I}", "outcome",
                      exit_code == AGENT_EXIT_OK ? "ok" : "failed", "exit_code", exit_code, "phase",
                      report_phase_to_string(e->current->phase), "time", (json_int_t)time(NULL));
        if (!o)
                return;
        if (e->error[0])
                json_object_set_new(o, "error", json_string(e->error));
        if (run_serial(r, &serial))
                json_object_set_new(o, "serial", json_integer((json_int_t)serial));
        if (r->not_modified)
                json_object_set_new(o, "not_modified", json_true());
        if (r->rebuild.started)
                json_object_set_new(o, "counts", counts_to_json(&r->rebuild.counts));
        if (r->outcome)
                json_object_set_new(o, "update", json_string(r->outcome));
        timings = json_object();
        for (size_t i = 0; timings && i < e->n_timings; i++)
                json_object_set_new(timings, report_phase_to_string(e->timings[i].phase),
                                    json_integer((json_int_t)e->timings_us[i]));
        json_object_set_new(o, "timings_us", timings);
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text)
                (void)write_file_atomic(path, text, strlen(text), 0600, 0);
}

/* Delivers what is left in the spool; what cannot be sent waits for the next run or flush. */
static void deliver(struct report_spool *spool)
{
        unsigned sent = 0, pending = 0;
        int k;

        if (!spool)
                return;
        /* A server that failed earlier in this run gets one short try, not the full wait. */
        k = report_flush(spool,
                         report_stats(spool)->send_failures > 0 ? ENGINE_RETRY_FLUSH_MS
                                                                : ENGINE_FINAL_FLUSH_MS,
                         &sent, &pending);
        report_log_events(spool);
        if (k < 0 && pending > 0)
                log_warning("%u report%s kept in the spool: the server cannot be reached (%s). "
                            "They are sent on the next run or by 'nixprov-agent flush'.",
                            pending, pending == 1 ? " is" : "s are", strerror(-k));
}

/* One run at a time: a timer's run, `watch` and an operator's run must not write the same
 * files at once. Waits for the run that holds the lock, which then has applied what this one
 * would (this one finds nothing to do). Returns the lock's fd (closed to release it; children
 * do not inherit it), or -1 after logging why there is none: a state directory that cannot be
 * made is the identify phase's error to report, not this function's. */
static int run_lock(struct run_state *r)
{
        _cleanup_free_ char *path = NULL;
        const char *dir;
        int fd;

        if (context_state_dir(r->ctx, &dir) < 0 ||
            !(path = config_state_path(r->config, r->ctx->root, CONFIG_STATE_RUN_LOCK)))
                return -1;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                log_warning_errno(-errno, "Cannot open %s, running without the lock: %m", path);
                return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
                log_info("Another run holds %s: waiting for it to end.", path);
                while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
                        ;
        }
        return fd;
}

int engine_run(struct run_state *r)
{
        struct engine e = {.r = r, .current = &phases[0]};
        _cleanup_close_ int lock = -1;
        int exit_code;

        lock = run_lock(r);
        r->engine = &e;
        exit_code = run_table(&e);
        if (e.spool_failed && exit_code == AGENT_EXIT_OK)
                exit_code = AGENT_EXIT_REPORT;
        save_last_run(&e, exit_code);
        deliver(r->ctx->spool);
        r->engine = NULL;
        return exit_code;
}

void engine_progress(struct run_state *r, const char *message)
{
        if (r->engine)
                emit(r->engine, REPORT_STATUS_PROGRESS, message, NULL, true, NULL);
}

void engine_note(struct run_state *r, const char *format, ...)
{
        char line[ENGINE_WARNING_MAX];
        va_list ap;

        (void)r;
        va_start(ap, format);
        (void)vsnprintf(line, sizeof(line), format, ap);
        va_end(ap);
        log_info("  %s", line);
}

static int vfail(struct phase_result *res, int exit_code, const char *format, va_list ap)
{
        (void)vsnprintf(res->message, sizeof(res->message), format, ap);
        res->exit_code = exit_code;
        return -1;
}

int phase_fail(struct phase_result *res, const char *format, ...)
{
        va_list ap;
        int k;

        va_start(ap, format);
        k = vfail(res, 0, format, ap);
        va_end(ap);
        return k;
}

int phase_fail_code(struct phase_result *res, int exit_code, const char *format, ...)
{
        va_list ap;
        int k;

        va_start(ap, format);
        k = vfail(res, exit_code, format, ap);
        va_end(ap);
        return k;
}

int phase_ok(struct phase_result *res, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(res->message, sizeof(res->message), format, ap);
        va_end(ap);
        return 0;
}
