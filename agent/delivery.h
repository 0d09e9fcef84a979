/* SPDX-License-Identifier: MIT */
#pragma once

/* Report delivery: the handle a run or a command holds (struct report_spool: a spool, spool.h,
 * and how to reach the server), and the sending of the spool in sequence order over HTTP
 * (net/fetch.h), each report POSTed to the server's /v1/reports and deleted once delivered.
 * This module owns what each answer means:
 *   2xx                      delivered (a duplicate too: the server already had it): deleted
 *   400, 401, 409, too big   refused for good (malformed; unsigned or signed by a key the server
 *                            does not hold for the machine; another report under this number):
 *                            moved to the spool's bad/, and delivery goes on
 *   403                      not enrolled yet, or revoked: kept, delivery stops
 *   404, 405, 410, 501       a static mirror without the endpoint: that mirror is skipped
 *   anything else            kept and retried (within the deadline, then at the next flush)
 * It never logs: the handle records what happened (report_outcome()) for the caller to log. */

#include <stdbool.h>
#include <stdint.h>

#include "fetch.h"
#include "macro.h"
#include "report.h"
#include "spool.h"

#define REPORT_PATH_DEFAULT "/v1/reports"
#define REPORT_PATH_MAX 256
/* Emit's own opportunistic send gives up after this long; report_flush() has its own deadline. */
#define REPORT_EMIT_DEADLINE_MS_DEFAULT UINT64_C(5000)

/* What an answer to a report's POST means (see the table above). */
enum delivery_verdict {
        DELIVERY_DELIVERED,
        DELIVERY_REFUSED, /* for good: to bad/ */
        DELIVERY_STOP,    /* kept; delivery stops here, keeping the order */
};

/* The verdict on fetch_post_json()'s result r with its error e. */
enum delivery_verdict delivery_verdict(int r, const struct fetch_error *e);

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
 * every older one is final), recorded as events. Returns 0 once the report is spooled, with its
 * seq in *ret_seq (may be NULL); a negative errno when it could not be spooled (-ENOSPC: the
 * spool is full of final reports), which should make the agent exit AGENT_EXIT_REPORT. */
int report_emit(struct report_spool *s, const struct report *r, uint64_t *ret_seq);

/* Sends every spooled report in seq order, each deleted (and the directory fsynced) once the
 * server answered 2xx, a duplicate included. A file that cannot be read or is not a report, or
 * that the server refuses for good, is moved to bad/ (counted, recorded as events) and delivery
 * goes on. Any other failure stops delivery there, keeping the order. deadline_ms bounds the
 * whole flush (0: the send options' own deadline). Returns 0 when nothing is left, or the error
 * that stopped delivery (fetch_post_json()'s errors; -ETIMEDOUT when the deadline passed
 * between reports; -ENOMEDIUM when the spool has no send options) with report_last_error()
 * describing it, or a negative errno of the spool itself. *ret_sent (delivered now) and
 * *ret_pending (left in the spool) are set whenever not NULL, on failure too: they are the
 * point. Clears the "a send failed" state that makes report_emit() spool only. */
int report_flush(struct report_spool *s, uint64_t deadline_ms, unsigned *ret_sent,
                 unsigned *ret_pending);

/* How many reports wait in the spool (a directory listing). Returns 0 or a negative errno. */
int report_pending(struct report_spool *s, unsigned *ret_pending);

/* The last failed send of this handle (all zero when none). Owned by the spool. */
const struct fetch_error *report_last_error(const struct report_spool *s);
const struct report_stats *report_stats(const struct report_spool *s);
/* The counters and the events recorded since the last report_clear_events(), for the caller to
 * log. Owned by the spool. */
const struct report_outcome *report_outcome(const struct report_spool *s);
void report_clear_events(struct report_spool *s);
/* The spool directory, as given to report_open(). */
const char *report_spool_dir(const struct report_spool *s);
