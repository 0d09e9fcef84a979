/* SPDX-License-Identifier: MIT */
#pragma once

/* The phase engine of 'nixprov-agent run'. The run is a table of phases (engine.c); the engine
 * runs them in order, times them, logs and reports each one's outcome (started for a long phase,
 * then ok or failed), keeps the timings for the reports and last-run.json, and applies the rules
 * that skip a phase (the serial is already applied; --no-rebuild) or end the run after one. A
 * phase does only its work: it gets the run state and returns 0 with the message of its ok
 * report, or a failure (the exit code and the message) for the engine to log and report. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "builders.h"
#include "context.h"
#include "health.h"
#include "plan.h"
#include "rebuild.h"
#include "report-log.h"
#include "secrets.h"
#include "trust.h"
#include "write.h"

/* The phases a run can time: one per report phase (at most), so every timing fits a report. */
#define ENGINE_PHASES_MAX REPORT_TIMINGS_MAX

#define ENGINE_MESSAGE_MAX REPORT_MESSAGE_MAX
#define ENGINE_WARNING_MAX (ENGINE_MESSAGE_MAX + 16)

struct engine;

/* What every phase reads and writes: the options, the context and what the run has learned. */
struct run_state {
        struct agent_context *ctx; /* the configuration, identity, keys, fetch options, spool */
        bool no_rebuild;

        const struct agent_config *config;
        const struct identity *id;
        struct devicekey *key;
        const char *state_dir;
        char *log_dir; /* ROOT/LOG-DIR, made 0750 */
        struct fetch_options *fetch;

        unsigned wait_seconds; /* watch: the profile request waits up to this long for a new one */
        char etag[FETCH_ETAG_MAX]; /* the fetched profile's ETag ("" when none) */
        bool not_modified;         /* the server answered 304: the applied profile is current */
        uint64_t applied_serial;   /* ... with this serial (from the state, when not_modified) */
        char *profile;
        size_t profile_size;
        char *signature;
        size_t signature_size;
        struct trust_result trust;
        struct trust_context trust_ctx;
        bool have_applied; /* an earlier serial is applied: this is an update */
        bool up_to_date;   /* verify found the serial applied already: nothing to do */
        struct plan *plan;
        struct secrets secrets; /* opened in plan, wiped right after write */
        char *netrc_path;       /* the written netrc, absolute, for the first build's NIX_CONFIG */
        char *ssh_config_path; /* the written ssh_config, absolute, when a builder needs an alias */
        struct write_set written;
        struct dryrun_summary preflight; /* what the dry run said (have_preflight) */
        bool have_preflight;
        struct rebuild_result rebuild;

        /* The update (phase-health.c): the system before it, the one it switched to, the
         * health checks' outcome (NULL until they ran) and how it ended, for the reports. */
        bool retry;            /* run --retry: a serial that was rolled back is tried again */
        char *previous_system; /* the store path of the system profile before; NULL: none */
        char *new_system;
        struct health_result *health;
        const char *outcome;
        bool has_update_serial; /* confirm: the serial of the pending update, for its reports */
        uint64_t update_serial;

        bool pending_logged;
        struct engine *engine; /* the engine's, while it runs */
};

/* A phase's outcome, filled by the phase for the engine. */
struct phase_result {
        char message[ENGINE_MESSAGE_MAX]; /* ok: the report's message (may be empty); failed: why */
        char warning[ENGINE_WARNING_MAX]; /* logged as a warning before the outcome */
        char log[ENGINE_WARNING_MAX];     /* a stamp's line for the log (not the report's) */
        const char *log_tail;             /* failed: the end of the command's log, for the report */
        int exit_code;                    /* failed: 0 for the row's exit code */
        const char *outcome;              /* the update's outcome, when this phase decided it */
};

enum {
        PHASE_LONG = 1 << 0,          /* reports its start; the quick reports are sent before it */
        PHASE_COUNTS = 1 << 1,        /* its ok report carries the rebuild's counts */
        PHASE_STAMP = 1 << 2,         /* an outcome with no work of its own: not timed, no header */
        PHASE_FINAL = 1 << 3,         /* the run ends after it */
        PHASE_IF_UP_TO_DATE = 1 << 4, /* runs only when the serial is applied already ... */
        PHASE_IF_CHANGED = 1 << 5,    /* ... only when it is not */
        PHASE_IF_NO_REBUILD = 1 << 6, /* runs only with --no-rebuild ... */
        PHASE_IF_REBUILD = 1 << 7,    /* ... only without */
};

struct phase {
        const char *name;        /* the log's "[name]" */
        enum report_phase phase; /* what its reports say */
        int exit_code;           /* the run's exit code when it fails */
        int (*run)(struct run_state *r, struct phase_result *res);
        bool (*wanted)(const struct run_state *r); /* NULL: always (under the flags' rules) */
        unsigned flags;
};

/* For "return phase_fail(res, ...)" in a phase: the message, and the row's exit code. Returns
 * -1. phase_fail_code() with another exit code. */
_printf_(2, 3) int phase_fail(struct phase_result *res, const char *format, ...);
_printf_(3, 4) int phase_fail_code(struct phase_result *res, int exit_code, const char *format,
                                   ...);
/* Sets the ok report's message; returns 0. */
_printf_(2, 3) int phase_ok(struct phase_result *res, const char *format, ...);

/* During a long phase: a progress report (with the rebuild's counts) and a log line. */
void engine_progress(struct run_state *r, const char *message);
/* During a phase: a line for the log, indented under the phase's header. */
_printf_(2, 3) void engine_note(struct run_state *r, const char *format, ...);

/* The configuration, with what a run cannot do without: a server and a trusted key (run.c).
 * Logs what is missing. */
int run_load_config(struct agent_context *ctx, const struct agent_config **ret);
/* Frees what a run left in r. */
void run_state_done(struct run_state *r);

/* Runs the phases of the table on r, writes last-run.json and delivers the reports. Returns the
 * exit code of the run (agent.h). */
int engine_run(struct run_state *r);

/* The phases, one file each (agent/phase-NAME.c). */
int phase_identify(struct run_state *r, struct phase_result *res);
int phase_enroll(struct run_state *r, struct phase_result *res);
int phase_fetch(struct run_state *r, struct phase_result *res);
int phase_verify(struct run_state *r, struct phase_result *res);
bool phase_verify_wanted(const struct run_state *r);
int phase_up_to_date(struct run_state *r, struct phase_result *res);
int phase_plan(struct run_state *r, struct phase_result *res);
int phase_builders(struct run_state *r, struct phase_result *res);
bool phase_builders_wanted(const struct run_state *r);
int phase_write(struct run_state *r, struct phase_result *res);
/* Removes what an interrupted run left (temporary files of atomic writes) in every directory a
 * run writes to, the secret ones first; identify calls it before anything is written. */
int phase_write_remove_leftovers(struct run_state *r, struct phase_result *res);
int phase_no_rebuild(struct run_state *r, struct phase_result *res);
int phase_preflight(struct run_state *r, struct phase_result *res);
bool phase_preflight_wanted(const struct run_state *r);
int phase_rebuild(struct run_state *r, struct phase_result *res);
int phase_done(struct run_state *r, struct phase_result *res);
int phase_health(struct run_state *r, struct phase_result *res);
int phase_not_retried(struct run_state *r, struct phase_result *res);
bool phase_not_retried_wanted(const struct run_state *r);
int phase_confirm(struct run_state *r, struct phase_result *res);
bool phase_confirm_wanted(const struct run_state *r);
/* The rebuild phase's part of the update: before it switches, the system it switches from is
 * recorded; when it failed, the system is switched back to it (cause: why), the Nix files put
 * back, and res's message says what was done. */
int update_begin(struct run_state *r, struct phase_result *res);
void update_rebuild_failed(struct run_state *r, struct phase_result *res);
