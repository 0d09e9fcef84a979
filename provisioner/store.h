/* SPDX-License-Identifier: MIT */
#pragma once

/* The server's store, as an interface: a struct of operations over typed structs (no SQL and no
 * JSON objects cross it), so that each database is one implementation of store_ops. SQLite is
 * the one today (store-sqlite.h). The store keeps machines, their enrolled device keys and the
 * operator's decision, and the reports they sent. A report is committed to disk before
 * store_add_report() returns, and each is kept once per (machine_id, sign_key, seq): seq is the
 * device's, and a device that enrolled again with new keys starts over. Safe to call from
 * several threads, and from another process (nixprov fleet approve) at the same time. Nothing
 * here prints; a database's errors are mapped to negative errnos, -EBUSY for a database that is
 * busy or locked.
 *
 * A machine's state: "unenrolled" (known without keys: from reports of schema 1, or reset by an
 * operator), "pending" (enrolled, waiting for an operator or the policy), "approved",
 * "revoked". Keys are kept as the base64 text the device sent (strict base64, so equal keys
 * are equal strings). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define STORE_SCHEMA_VERSION 4
/* Pages of store_list_machines() and store_get_machine(): a default and a largest limit, and
 * the bytes of report bodies one page of history holds (past them it ends early; it holds at
 * least one report), so that no answer is built from more than a page. */
#define STORE_PAGE_MACHINES_DEFAULT 100
#define STORE_PAGE_MACHINES_MAX 1000
#define STORE_PAGE_REPORTS_DEFAULT 100
#define STORE_PAGE_REPORTS_MAX 1000
#define STORE_PAGE_BYTES_MAX (4 * 1024 * 1024)

/* The quotas of the store (struct store_limits), defaults of nixprov serve's options. */
#define STORE_HISTORY_REPORTS_DEFAULT 1000               /* kept per machine, the newest */
#define STORE_HISTORY_BYTES_DEFAULT (64LL * 1024 * 1024) /* of report bodies per machine */
#define STORE_PENDING_REPORTS_DEFAULT 5                  /* kept per machine no one approved yet */
#define STORE_PENDING_MACHINES_DEFAULT 1000              /* machines pending at once */
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_COUNTS_MAX 16 /* distinct statuses or states counted by store_stats() */
#define STORE_NAME_MAX 64   /* a phase, status or state name, with its NUL */
#define STORE_MACHINE_ID_MAX 33

/* The base64 text of a 32-byte key, with its NUL. */
#define STORE_KEY_BASE64_MAX 45

enum store_state {
        STORE_STATE_UNENROLLED,
        STORE_STATE_PENDING,
        STORE_STATE_APPROVED,
        STORE_STATE_REVOKED,
};

/* "unenrolled", "pending", "approved", "revoked"; NULL out of range. */
const char *store_state_to_string(enum store_state state);

/* The state named s; -EBADMSG for anything else. */
int store_state_from_string(const char *s, enum store_state *ret_state);

/* What the server trusts of a machine. */
struct store_trust {
        enum store_state state;
        bool has_keys; /* false exactly when unenrolled */
        char sign_key[STORE_KEY_BASE64_MAX];
        char box_key[STORE_KEY_BASE64_MAX];
        /* The device time of the last enrollment accepted, kept across a reset. */
        bool has_enroll_time;
        int64_t enroll_time;
        /* The keys the machine had when it was first approved, or when an operator approved
         * it last; kept across a reset. */
        bool has_approved_keys;
        char approved_sign_key[STORE_KEY_BASE64_MAX];
        char approved_box_key[STORE_KEY_BASE64_MAX];
};

/* A validated enrollment; strings borrowed for the call. */
struct store_enrollment {
        const char *machine_id;
        const char *hostname;
        const char *facts;      /* JSON text */
        const char *sign_key;   /* base64 */
        const char *box_key;    /* base64 */
        const char *decided_by; /* the policy rule that approves it, or NULL: pending */
        int64_t time;           /* the device's clock when it made the enrollment */
};

/* A validated report. The strings are borrowed for the duration of the call. */
struct store_report {
        const char *machine_id; /* 32 lowercase hex digits */
        const char *sign_key;   /* base64: the enrolled key the report's signature verified with */
        uint64_t seq;           /* at most INT64_MAX */
        int64_t time;           /* the device's clock, seconds since the epoch */
        const char *phase;
        const char *status;
        bool has_serial;
        uint64_t serial;  /* at most INT64_MAX */
        const char *body; /* the whole report, JSON text as received */
        size_t body_size;
};

enum store_decision {
        STORE_DECISION_APPROVE, /* pending or revoked -> approved (decided_by "operator"); the
                                   current keys become the approved ones (also when approved) */
        STORE_DECISION_REVOKE,  /* pending or approved -> revoked */
        STORE_DECISION_RESET,   /* any -> unenrolled: keys, decision and conflict forgotten (the
                                   last enrollment time and the approved keys are kept) */
};

/* A number a row may not have. */
struct store_optional {
        bool is_set;
        int64_t value;
};

/* One machine as listed: strings are owned by the struct (NULL: unknown), freed by
 * store_machine_done(). */
struct store_machine {
        char machine_id[STORE_MACHINE_ID_MAX];
        enum store_state state;
        int64_t first_seen;
        int64_t last_seen;
        char *phase;                  /* of the latest report stored (insertion order) */
        char *status;                 /* of the latest report stored */
        struct store_optional serial; /* the latest one reported */
        int64_t reports;              /* the number stored */
        char *hostname;
        char *sign_key;
        char *box_key;
        struct store_optional enrolled_at;
        struct store_optional decided_at;
        char *decided_by;
        struct store_optional conflict_at;
        char *facts;             /* JSON text, as store_enroll() was given it */
        int64_t reports_trimmed; /* deleted by the quotas (struct store_limits) */
        /* The update, from the reports' "outcome" (common/report_body.h): the serial of the
         * latest report done ok (not a "not-retried" stamp), and the latest outcome reported
         * (not "not-retried"), its serial and error. */
        struct store_optional running_serial;
        char *update_outcome;
        struct store_optional update_serial;
        char *update_error;
};

void store_machine_done(struct store_machine *machine);

/* Where a page starts and how long it is. */
struct store_page {
        const char *after_machine; /* machines: those after this machine_id; NULL: the first */
        int64_t after_report;      /* reports: those stored after the report of this id; 0 */
        size_t limit;              /* 0: the default; above the largest: the largest */
};

/* A page of machines, by machine_id. */
struct store_machine_list {
        struct store_machine *machines;
        size_t n_machines;
        bool more; /* machines follow the last one */
};

void store_machine_list_done(struct store_machine_list *list);

/* One stored report: the body as received, and its id (increasing in the order stored). */
struct store_history_entry {
        int64_t id;
        char *body;
        size_t body_size;
};

/* A page of a machine's reports, in the order they were stored (the oldest kept first). */
struct store_history {
        struct store_history_entry *entries;
        size_t n_entries;
        int64_t total; /* all reports stored for the machine */
        bool more;     /* reports follow the last one: the next page is after its id */
};

void store_history_done(struct store_history *history);

struct store_count {
        char name[STORE_NAME_MAX];
        int64_t count;
};

/* Machines counted by the status of their latest report ("none" for no report) and by their
 * enrollment state, each sorted by name, and the reports stored. */
struct store_stats {
        int64_t machines;
        int64_t reports;
        struct store_count by_status[STORE_COUNTS_MAX];
        size_t n_by_status;
        struct store_count by_state[STORE_COUNTS_MAX];
        size_t n_by_state;
        struct store_count by_update[STORE_COUNTS_MAX]; /* by the latest outcome ("none") */
        size_t n_by_update;
};

/* What the store keeps of one machine's reports: after each report stored, in the same
 * transaction, the oldest are deleted until at most history_reports remain, of which at most
 * pending_reports of a pending machine's current key, and their bodies take at most
 * history_bytes (the newest report is always kept); the number deleted is added to the
 * machine's reports_trimmed. */
struct store_limits {
        int64_t history_reports;
        int64_t history_bytes;
        int64_t pending_reports;
        int64_t pending_machines; /* a new pending machine past it is refused: -EUSERS */
};

/* Machine ids, owned. */
struct store_id_list {
        char (*ids)[STORE_MACHINE_ID_MAX];
        size_t n_ids;
};

void store_id_list_done(struct store_id_list *list);

struct store_ops;

/* The base of every implementation: embedded as the first member of its own struct. */
struct store {
        const struct store_ops *ops;
        struct store_limits limits; /* the defaults above, until store_set_limits() */
};

/* What an implementation provides; the store_*() functions below check their arguments and
 * call these, with the same contracts. */
struct store_ops {
        const char *name;
        void (*close)(struct store *store);
        int (*get_trust)(struct store *store, const char *machine_id,
                         struct store_trust *ret_trust);
        int (*enroll)(struct store *store, const struct store_enrollment *enrollment, int64_t now,
                      enum store_state *ret_state);
        int (*add_report)(struct store *store, const struct store_report *report, int64_t received,
                          bool *ret_duplicate);
        int (*decide)(struct store *store, const char *machine_id, enum store_decision decision,
                      int64_t now, enum store_state *ret_previous);
        int (*list_machines)(struct store *store, const struct store_page *page,
                             struct store_machine_list *ret_list);
        int (*get_machine)(struct store *store, const char *machine_id,
                           const struct store_page *page, struct store_machine *ret_machine,
                           struct store_history *ret_history);
        int (*stats)(struct store *store, struct store_stats *ret_stats);
        int (*purge_pending)(struct store *store, int64_t before, bool dry_run,
                             struct store_id_list *ret_ids);
};

/* Opens the store at location: today the path of an SQLite database (store-sqlite.h), created
 * when missing. Returns 0, -EPROTO for a database of a newer schema, -EBADMSG for a file that
 * is not a database, or another negative errno. */
int store_open(const char *location, struct store **ret_store);

/* Sets the quotas for the reports stored from now on: each at least 1 (pending_reports may be
 * 0: a pending machine's reports are not kept). Call it before other threads use the store. */
int store_set_limits(struct store *store, const struct store_limits *limits);

/* Closes the store. Accepts NULL; returns NULL. */
struct store *store_close(struct store *store);
DEFINE_POINTER_CLEANUP(store, store_close)

/* Reads what the server trusts of a machine. Returns 0, -ENOENT for an unknown machine, -EBADMSG
 * for a row that makes no sense, or a negative errno. */
int store_get_trust(struct store *store, const char *machine_id, struct store_trust *ret_trust);

/* Records an enrollment at the server's time now, in one transaction:
 *  - its time older than the last accepted one, or the same time while the machine holds no
 *    keys (a replay, also after a reset): -ESTALE, nothing changed;
 *  - unknown, or unenrolled: takes the keys, hostname and facts; approved when decided_by is
 *    set (recorded with decided_at), else pending; any earlier conflict is forgotten;
 *  - the same sign_key and box_key: updates hostname, facts and last_seen; a pending machine
 *    is approved when decided_by is set now;
 *  - other keys: records conflict_at = now and changes nothing else; returns -EKEYREJECTED.
 * A machine that would be pending anew while limits.pending_machines are pending is refused with
 * -EUSERS. An accepted one records its time; a machine approved now for the first time records
 * its keys as the approved ones. Returns 0 with *ret_state (may be NULL) the machine's state
 * afterwards, -ESTALE, -EKEYREJECTED, -EUSERS, or a negative errno (nothing changed). */
int store_enroll(struct store *store, const struct store_enrollment *enrollment, int64_t now,
                 enum store_state *ret_state);

/* Stores a report received at the server's time received, updates the machine's last_seen,
 * and trims its history to the store's limits (struct store_limits). The machine must be pending or
 * approved with report->sign_key as its key (checked again in the transaction): else -EPERM,
 * nothing stored. The transaction is committed (and fsynced) before this returns 0. A report whose
 * (machine_id, sign_key, seq) is already stored with the same bytes is not stored again
 * (*ret_duplicate says so); with other bytes it is refused with -EEXIST. Returns 0 or a negative
 * errno (nothing stored). */
int store_add_report(struct store *store, const struct store_report *report, int64_t received,
                     bool *ret_duplicate);

/* An operator's decision about one machine, at time now. Approving an approved machine or
 * revoking a revoked one changes nothing. Returns 0 with *ret_previous (may be NULL) the state
 * before, -ENOENT for an unknown machine, -ENOKEY to approve or revoke an unenrolled one, or a
 * negative errno. Reports are always kept. */
int store_decide(struct store *store, const char *machine_id, enum store_decision decision,
                 int64_t now, enum store_state *ret_previous);

/* Lists a page of machines (page NULL: the first, of the default length) by machine_id into
 * *ret_list, which the caller frees with store_machine_list_done(). Returns 0 or a negative
 * errno. */
int store_list_machines(struct store *store, const struct store_page *page,
                        struct store_machine_list *ret_list);

/* Reads one machine and a page of its reports (page NULL: the first, from the oldest kept),
 * from one consistent view; the caller frees both with store_machine_done() and
 * store_history_done(). Returns 0, -ENOENT for an unknown machine, or a negative errno. */
int store_get_machine(struct store *store, const char *machine_id, const struct store_page *page,
                      struct store_machine *ret_machine, struct store_history *ret_history);

/* Counts machines and reports. Returns 0 or a negative errno. */
int store_stats(struct store *store, struct store_stats *ret_stats);

/* Deletes the machines pending since before a time (last_seen < before: they have not enrolled
 * again since) and their reports, in one transaction; with dry_run only lists them. Returns 0
 * with their ids (by machine_id) in *ret_ids, freed with store_id_list_done(), or a negative
 * errno (nothing deleted). */
int store_purge_pending(struct store *store, int64_t before, bool dry_run,
                        struct store_id_list *ret_ids);
