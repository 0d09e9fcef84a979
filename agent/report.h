/* SPDX-License-Identifier: MIT */
#pragma once

/* The report phase: every phase change and periodic progress becomes a report, a small JSON
 * object POSTed to the server's /v1/reports. A report is written to an on-disk spool first
 * (atomically, fsynced) and only then sent, so it survives an outage, a crash or a reboot; the
 * spool is delivered in sequence order and a delivered report is deleted.
 *
 * Sequence numbers are per device, start at 1, strictly increase and are never reused, across
 * crashes and reboots too: the next one is kept in SPOOL/seq, written atomically before the
 * report that uses it is spooled (a crash in between leaves a gap, never a repeat). The server
 * is idempotent on (machine_id, seq), so a report sent twice is stored once.
 *
 * Spool layout (mode 0700; every file 0600):
 *   SPOOL/seq                          the next sequence number, decimal
 *   SPOOL/NNNNNNNNNNNNNNNNNNNN.json    one pending report, named by its zero-padded seq
 *   SPOOL/bad/                         spooled files that could not be read, or that the
 *                                      server refused as malformed (HTTP 400), moved aside
 *   SPOOL/seq.lock, SPOOL/send.lock    flock(2)s: one emitter at a time allocates seqs; one
 *                                      sender at a time delivers
 *
 * Secrets: nothing here takes a secret. A report carries phase names, counts, timings, the
 * operator-readable message and error, and log_tail, which is the rebuild's readable output
 * (nixlog_tail(): what nixos-rebuild printed, which never holds a secret: secrets reach Nix
 * only through 0600 files, never argv or the environment). Callers must not put anything else
 * there. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "macro.h"
#include "nixlog.h"

#define REPORT_SPOOL_DIR_DEFAULT "/var/lib/nixprov/reports"
#define REPORT_PATH_DEFAULT "/v1/reports"
/* At most this many reports wait in the spool; past it the oldest progress reports, then the
 * oldest "started" ones, are dropped (never an "ok" or "failed" one). */
#define REPORT_SPOOL_MAX 10000
/* Emit's own opportunistic send gives up after this long; report_flush() has its own deadline. */
#define REPORT_EMIT_DEADLINE_MS_DEFAULT UINT64_C(5000)
/* Bounds of one report: longer texts are cut (log_tail keeps its end, the others their start). */
#define REPORT_MESSAGE_MAX 2048
#define REPORT_ERROR_MAX 2048
#define REPORT_LOG_TAIL_MAX 4096
#define REPORT_TIMINGS_MAX 16
/* A spooled file (or a signed body) larger than this is not a report. */
#define REPORT_BODY_MAX (64 * 1024)
/* Sequence numbers a handle reserves in the seq file at a time: one write for a whole run. The
 * numbers a crash leaves unused are a gap, which the server does not mind. */
#define REPORT_SEQ_BLOCK 64

enum report_phase {
        REPORT_PHASE_IDENTIFY,
        REPORT_PHASE_ENROLL,
        REPORT_PHASE_FETCH,
        REPORT_PHASE_VERIFY,
        REPORT_PHASE_PLAN,
        REPORT_PHASE_BUILDERS,
        REPORT_PHASE_WRITE,
        REPORT_PHASE_REBUILD,
        REPORT_PHASE_REPORT,
        REPORT_PHASE_DONE,
        _REPORT_PHASE_MAX,
};

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
        const struct report_timing *timings; /* phase -> milliseconds, at most
                                                REPORT_TIMINGS_MAX */
        size_t n_timings;
        /* The rebuild's readable output (nixlog_tail()), cut to its last REPORT_LOG_TAIL_MAX
         * bytes. Never anything else: see the note on secrets above. */
        const char *log_tail;
};

/* Builds the JSON body of report r (compact, with jansson) as machine_id sent it with seq at
 * time (seconds since the epoch). Invalid UTF-8 in the texts becomes U+FFFD. Returns 0 with a
 * NUL-terminated string the caller frees, -EINVAL (bad phase, status, machine id, too many
 * timings), -EOVERFLOW (seq above INT64_MAX), -E2BIG (over REPORT_BODY_MAX) or -ENOMEM. A pure
 * function, for tests. */
int report_to_json(const struct report *r, const char *machine_id, uint64_t seq, int64_t time,
                   char **ret_json, size_t *ret_size);

/* The hook for signed reports (docs/design.md: reports are signed with the device's Ed25519 key).
 * Called by report_emit() with the compact JSON body before it is spooled, so a report is signed
 * once and resent byte for byte; returns 0 with the body to spool and send instead (malloc'd, at
 * most REPORT_BODY_MAX bytes), or a negative errno, which fails the emit. */
typedef int (*report_sign_fn)(const char *body, size_t size, char **ret_body, size_t *ret_size,
                              void *userdata);

/* The signer of a device: userdata is its struct devicekey; the body gets the signature of the
 * device's Ed25519 key as its last member (signedjson.h, SIGNEDJSON_CONTEXT_REPORT). */
int report_sign_device(const char *body, size_t size, char **ret_body, size_t *ret_size,
                       void *userdata);

struct report_stats {
        unsigned spooled;       /* reports emitted into the spool by this handle */
        unsigned sent;          /* delivered (2xx), duplicates included, and deleted */
        unsigned duplicates;    /* of those, how many the server already had */
        unsigned send_failures; /* deliveries that stopped on an error */
        unsigned bad;           /* spooled files moved aside to bad/ */
        unsigned dropped;       /* reports dropped because the spool was full */
};

struct report_spool;

/* Opens (creating it with mode 0700 when missing) the spool directory spool_dir for the machine
 * machine_id (32 lowercase hex digits). send_options, when not NULL, says where and how to
 * deliver (mirrors, CA, timeouts; its deadline is replaced by the caller's on every send); it is
 * borrowed and must outlive the spool. NULL: spool only, never send. report_path is the URL path
 * to POST to (NULL: REPORT_PATH_DEFAULT). Leftover temporary files of an interrupted write are
 * removed. Returns 0, -EINVAL (bad machine id or path), -EBADMSG (SPOOL/seq holds no number: the
 * spool refuses to guess a sequence number), or another negative errno. */
int report_open(const char *spool_dir, const char *machine_id,
                const struct fetch_options *send_options, const char *report_path,
                struct report_spool **ret);

struct report_spool *report_close(struct report_spool *s);
DEFINE_POINTER_CLEANUP(report_spool, report_close)

/* The deadline of emit's opportunistic send (default REPORT_EMIT_DEADLINE_MS_DEFAULT; 0 keeps
 * the default). */
void report_set_emit_deadline(struct report_spool *s, uint64_t deadline_ms);
/* Whether report_emit() also tries to deliver (the default) or only spools, leaving delivery to
 * report_flush(): a run spools its quick phases and sends them together. */
void report_set_send_on_emit(struct report_spool *s, bool send);
/* Sets (or, with NULL, clears) the signing hook; see report_sign_fn. */
void report_set_signer(struct report_spool *s, report_sign_fn sign, void *userdata);

/* Assigns the next seq and the current time to r, spools it (durable before any send), and
 * then, unless a send of this handle already failed since the last report_flush(), tries to
 * deliver everything pending within the emit deadline. Sending failures are not errors here:
 * they are counted in the stats, and the reports wait for the next flush. When the spool is
 * full, reports are dropped (see REPORT_SPOOL_MAX; r itself when it is a progress report and
 * every older one is final) and a warning is logged. Returns 0 once
 * the report is spooled, with its seq in *ret_seq (may be NULL); a negative errno when it could
 * not be spooled (-ENOSPC: the spool is full of final reports), which should make the agent exit
 * AGENT_EXIT_REPORT. */
int report_emit(struct report_spool *s, const struct report *r, uint64_t *ret_seq);

/* Sends every spooled report in seq order, each deleted (and the directory fsynced) once the
 * server answered 2xx, a duplicate included. A file that cannot be read or is not a report, or
 * that the server refuses as malformed (HTTP 400) or oversized, is moved to bad/ (counted,
 * logged) and delivery goes on. Any other failure stops delivery there, keeping the order.
 * deadline_ms bounds the whole flush (0: the send options' own deadline). Returns 0 when nothing
 * is left, or the error that stopped delivery (fetch_post_json()'s errors; -ETIMEDOUT when the
 * deadline passed between reports; -ENOMEDIUM when the spool has no send options) with
 * report_last_error() describing it, or a negative errno of the spool itself. *ret_sent
 * (delivered now) and *ret_pending (left in the spool) are set whenever not NULL, on failure
 * too: they are the point. Clears the "a send failed" state that makes report_emit() spool
 * only. */
int report_flush(struct report_spool *s, uint64_t deadline_ms, unsigned *ret_sent,
                 unsigned *ret_pending);

/* How many reports wait in the spool (a directory listing). Returns 0 or a negative errno. */
int report_pending(struct report_spool *s, unsigned *ret_pending);

/* The last failed send of this handle (all zero when none). Owned by the spool. */
const struct fetch_error *report_last_error(const struct report_spool *s);
const struct report_stats *report_stats(const struct report_spool *s);
