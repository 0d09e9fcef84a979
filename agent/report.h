/* SPDX-License-Identifier: MIT */
#pragma once

/* A report's wire format: every phase change and periodic progress of a run becomes a report,
 * a small JSON object that the device signs, spools (spool.h) and POSTs to the server
 * (delivery.h). This module owns what one report says (struct report), its bounds and the
 * building of its JSON body, with the texts cut to their limits and made valid UTF-8. It does
 * no I/O and never logs.
 *
 * Secrets: nothing here takes a secret. A report carries phase names, counts, timings, the
 * operator-readable message and error, and log_tail, which is the rebuild's readable output
 * (nixlog_tail(): what nixos-rebuild printed, which never holds a secret: secrets reach Nix
 * only through 0600 files, never argv or the environment). Callers must not put anything else
 * there. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dryrun.h"
#include "macro.h"
#include "nixlog.h"

/* Bounds of one report: longer texts are cut (log_tail keeps its end, the others their start). */
#define REPORT_MESSAGE_MAX 2048
#define REPORT_ERROR_MAX 2048
#define REPORT_LOG_TAIL_MAX 4096
/* A spooled file (or a signed body) larger than this is not a report. */
#define REPORT_BODY_MAX (64 * 1024)

enum report_phase {
        REPORT_PHASE_IDENTIFY,
        REPORT_PHASE_ENROLL,
        REPORT_PHASE_FETCH,
        REPORT_PHASE_VERIFY,
        REPORT_PHASE_PLAN,
        REPORT_PHASE_BUILDERS,
        REPORT_PHASE_WRITE,
        REPORT_PHASE_PREFLIGHT,
        REPORT_PHASE_REBUILD,
        REPORT_PHASE_HEALTH,
        REPORT_PHASE_CONFIRM,
        REPORT_PHASE_REPORT,
        REPORT_PHASE_DONE,
        _REPORT_PHASE_MAX,
};

/* One timing a phase at most: the one count of phases, which the engine's table uses too. */
#define REPORT_TIMINGS_MAX ((size_t)_REPORT_PHASE_MAX)

enum report_status {
        REPORT_STATUS_STARTED,
        REPORT_STATUS_PROGRESS,
        REPORT_STATUS_OK,
        REPORT_STATUS_FAILED,
        _REPORT_STATUS_MAX,
};

/* "identify" ... "done"; NULL for a value out of range. */
const char *report_phase_to_string(enum report_phase phase);
/* Returns the phase, or -EINVAL for an unknown name. */
int report_phase_from_string(const char *s);
/* "started", "progress", "ok", "failed"; NULL for a value out of range. */
const char *report_status_to_string(enum report_status status);
int report_status_from_string(const char *s);

/* One health check's outcome, sent as {"name", "ok", "attempts", "error"}. */
struct report_check {
        const char *name; /* "tcp 127.0.0.1:22", "unit sshd.service", ... */
        bool ok;
        unsigned attempts;
        const char *error; /* the last attempt's, when not ok; may be NULL */
};
#define REPORT_CHECKS_MAX 160

struct report_timing {
        enum report_phase phase;
        uint64_t ms;
};

/* What one report says. Every pointer is borrowed for the call and may be NULL (left out). */
struct report {
        enum report_phase phase;
        enum report_status status;
        bool has_serial; /* the profile serial this run is applying */
        uint64_t serial;
        const char *message; /* for people; cut to REPORT_MESSAGE_MAX bytes */
        const char *error;   /* why it failed; cut to REPORT_ERROR_MAX bytes */
        /* Sent as {"substituted", "built" (= built_local), "built_remote", "downloaded_bytes"}. */
        const struct nixlog_counts *counts;
        /* Sent as "preflight": {"to_build", "to_fetch", "download_bytes", "unpacked_bytes"}. */
        const struct dryrun_summary *preflight;
        const struct report_timing *timings; /* phase -> milliseconds, at most
                                                REPORT_TIMINGS_MAX */
        size_t n_timings;
        /* The rebuild's readable output (nixlog_tail()), cut to its last REPORT_LOG_TAIL_MAX
         * bytes. Never anything else: see the note on secrets above. */
        const char *log_tail;
        /* How the update ended, when this report says it: "applied", "rolled-back", "failed"
         * (nothing to roll back to), "pending-reboot", "confirmed" or "not-retried". */
        const char *outcome;
        const char *system;                /* the store path the device runs (or will boot) */
        const char *previous_system;       /* the store path it rolled back to, or would */
        const struct report_check *checks; /* the health checks, at most REPORT_CHECKS_MAX */
        size_t n_checks;
};

/* Builds the JSON body of report r (compact, with jansson) as machine_id sent it with seq at
 * time (seconds since the epoch). Invalid UTF-8 in the texts becomes U+FFFD. Returns 0 with a
 * NUL-terminated string the caller frees, -EINVAL (bad phase, status, machine id, too many
 * timings), -EOVERFLOW (seq above INT64_MAX), -E2BIG (over REPORT_BODY_MAX) or -ENOMEM. A pure
 * function, for tests. */
int report_to_json(const struct report *r, const char *machine_id, uint64_t seq, int64_t time,
                   char **ret_json, size_t *ret_size);
