/* SPDX-License-Identifier: MIT */
#pragma once

/* The report spool: every report is written to an on-disk spool first (atomically, fsynced)
 * and only then sent (delivery.h), so it survives an outage, a crash or a reboot. This module
 * owns the directory: sequence numbers, the locks, trimming a full spool, bad/, reading spooled
 * reports back, and the signing hook. It does no network I/O and never logs: what happened
 * (a file moved to bad/ and why, a report dropped because the spool was full) is recorded in the
 * caller's struct report_outcome, for the caller to log.
 *
 * Sequence numbers are per device, start at 1, strictly increase and are never reused, across
 * crashes and reboots too: the next one is kept in SPOOL/seq, written atomically before the
 * report that uses it is spooled (a crash in between leaves a gap, never a repeat). The server
 * stores each (machine id, device sign key, seq) once, so a report sent twice is stored once,
 * and a wiped device that enrolls with new keys may number its reports from 1 again.
 *
 * Spool layout (mode 0700; every file 0600):
 *   SPOOL/seq                          the next sequence number, decimal
 *   SPOOL/NNNNNNNNNNNNNNNNNNNN.json    one pending report, named by its zero-padded seq
 *   SPOOL/bad/                         spooled files that could not be read or are not a
 *                                      report, and reports the server refused for good (400
 *                                      malformed, 401 unsigned or signed by another key, 409
 *                                      another report under the number, or too big), moved
 *                                      aside; a 403 (not enrolled yet, revoked) keeps them here
 *   SPOOL/seq.lock, SPOOL/send.lock    flock(2)s: one emitter at a time allocates seqs; one
 *                                      sender at a time delivers */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "report.h"

#define REPORT_SPOOL_DIR_DEFAULT "/var/lib/nixprov/reports"
/* At most this many reports wait in the spool; past it the oldest progress reports, then the
 * oldest "started" ones, are dropped (never an "ok" or "failed" one). */
#define REPORT_SPOOL_MAX 10000
/* Sequence numbers a handle reserves in the seq file at a time: one write for a whole run. The
 * numbers a crash leaves unused are a gap, which the server does not mind. */
#define REPORT_SEQ_BLOCK 64
/* "NNNNNNNNNNNNNNNNNNNN.json" and its NUL. */
#define SPOOL_NAME_MAX 26
/* What one call records for its caller to log; past it, events are only counted. */
#define REPORT_EVENTS_MAX 32
#define REPORT_EVENT_DETAIL_MAX 2560

/* The hook for signed reports: called with the compact JSON body before it is spooled, so a
 * report is signed once and resent byte for byte; returns 0 with the body to spool and send
 * instead (malloc'd, at most REPORT_BODY_MAX bytes), or a negative errno, which fails the
 * emit. */
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

enum report_event_kind {
        REPORT_EVENT_MOVED_ASIDE,    /* seq went to bad/; why says what was wrong with it */
        REPORT_EVENT_REFUSED,        /* the server refused seq for good (detail: "URL: its
                                        answer"); a MOVED_ASIDE follows */
        REPORT_EVENT_DROPPED,        /* the spool was full: seq dropped; why: its status */
        REPORT_EVENT_NOT_SPOOLED,    /* the spool is full of final reports: seq not kept */
        REPORT_EVENT_BAD_DIR_FAILED, /* bad/ cannot be made (error) */
        REPORT_EVENT_MOVE_FAILED,    /* seq cannot be moved to bad/ (error) */
        REPORT_EVENT_REMOVE_FAILED,  /* delivered seq cannot be removed (error) */
};

struct report_event {
        enum report_event_kind kind;
        uint64_t seq;
        int error;       /* a negative errno, for the *_FAILED kinds; else 0 */
        const char *why; /* static text, or NULL */
        char detail[REPORT_EVENT_DETAIL_MAX];
};

/* What the spool and delivery did, for the caller to log once: counters over the handle's life,
 * and the events since the caller last cleared them. */
struct report_outcome {
        struct report_stats stats;
        struct report_event events[REPORT_EVENTS_MAX];
        size_t n_events;
        unsigned events_lost; /* events past REPORT_EVENTS_MAX, not recorded */
};

/* Records an event (detail may be NULL). */
void report_outcome_add(struct report_outcome *o, enum report_event_kind kind, uint64_t seq,
                        int error, const char *why, const char *detail);
/* Forgets the recorded events, keeping the counters. */
void report_outcome_clear_events(struct report_outcome *o);

/* The name of seq's file in the spool. */
void spool_file_name(uint64_t seq, char name[static SPOOL_NAME_MAX]);

struct spool;

/* Opens (creating it with mode 0700 when missing) the spool directory dir for the machine
 * machine_id (32 lowercase hex digits); outcome (borrowed, must outlive the spool) receives its
 * counters and events. Leftover temporary files of an interrupted write are removed. Returns 0,
 * -EINVAL (bad machine id or directory), -EBADMSG (SPOOL/seq holds no number: the spool refuses
 * to guess a sequence number), or another negative errno. */
int spool_open(const char *dir, const char *machine_id, struct report_outcome *outcome,
               struct spool **ret);
/* Gives back the sequence numbers reserved and not used, and frees s. */
struct spool *spool_close(struct spool *s);
DEFINE_POINTER_CLEANUP(spool, spool_close)

const char *spool_dir(const struct spool *s);
/* Sets (or, with NULL, clears) the signing hook. */
void spool_set_signer(struct spool *s, report_sign_fn sign, void *userdata);

/* Assigns the next seq and the current time to r, signs it and spools it, durably. When the
 * spool is full, reports are dropped (see REPORT_SPOOL_MAX; r itself when every older one is
 * final: -ENOSPC). Returns 0 with the seq in *ret_seq, or a negative errno. */
int spool_append(struct spool *s, const struct report *r, uint64_t *ret_seq);

/* The seqs of the spooled reports, ascending (at most 4 * REPORT_SPOOL_MAX: -E2BIG past that).
 * The caller frees *ret_seqs. */
int spool_list(struct spool *s, uint64_t **ret_seqs, size_t *ret_n);
/* How many reports wait in the spool. */
int spool_pending(struct spool *s, unsigned *ret_pending);

/* Takes the delivery lock (fd in *ret_fd, closing it releases the lock); with wait false,
 * -EBUSY at once when another process holds it. */
int spool_lock_delivery(struct spool *s, bool wait, int *ret_fd);

/* Reads spooled report seq. Returns 0 with the body, -ENOENT (gone meanwhile), -ENOMEM,
 * -EBADMSG when the file is unreadable or not a report of its seq and was moved to bad/, or the
 * error of moving it there. */
int spool_read(struct spool *s, uint64_t seq, char **ret_body, size_t *ret_size);
/* Moves seq's file to bad/ (why: what is wrong with it), so it never blocks the queue. Returns
 * 0 (also when the file is gone meanwhile) or a negative errno. */
int spool_move_aside(struct spool *s, uint64_t seq, const char *why);
/* Removes delivered report seq (and fsyncs the directory). Returns 0 or a negative errno. */
int spool_remove(struct spool *s, uint64_t seq);
