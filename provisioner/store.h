/* SPDX-License-Identifier: MIT */
#pragma once

/* The server's store: an SQLite database (WAL, synchronous=FULL) of machines, their enrolled
 * device keys and the operator's decision, and the reports they sent. A report is committed to
 * disk before store_add_report() returns, and each is kept once per (machine_id, sign_key, seq):
 * seq is the device's, and a device that enrolled again with new keys starts over. Safe to call
 * from several threads, and from another process (nixprov fleet approve) at the same time.
 * Nothing here prints; SQLite's errors are mapped to negative errnos.
 *
 * A machine's state: "unenrolled" (known without keys: from reports of schema 1, or reset by an
 * operator), "pending" (enrolled, waiting for an operator or the policy), "approved",
 * "revoked". Keys are kept as the base64 text the device sent (strict base64, so equal keys
 * are equal strings). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "macro.h"

#define STORE_SCHEMA_VERSION 2
#define STORE_FLEET_MAX 100000 /* machines listed by store_list_machines() */
#define STORE_HISTORY_MAX 1000 /* reports of one machine returned (the latest ones) */
#define STORE_BUSY_TIMEOUT_MS 5000

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

/* What the server trusts of a machine. */
struct store_trust {
        enum store_state state;
        bool has_keys; /* false exactly when unenrolled */
        char sign_key[STORE_KEY_BASE64_MAX];
        char box_key[STORE_KEY_BASE64_MAX];
};

/* A validated enrollment; strings borrowed for the call. */
struct store_enrollment {
        const char *machine_id;
        const char *hostname;
        const char *facts;      /* JSON text */
        const char *sign_key;   /* base64 */
        const char *box_key;    /* base64 */
        const char *decided_by; /* the policy rule that approves it, or NULL: pending */
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

struct store;

/* Opens (creating when missing, mode 0600) the database at path and brings its schema to
 * STORE_SCHEMA_VERSION. Returns 0, -EPROTO for a database of a newer schema, -EBADMSG for a file
 * that is not a database, or another negative errno. */
int store_open(const char *path, struct store **ret_store);

/* Closes the database. Accepts NULL; returns NULL. */
struct store *store_close(struct store *store);
DEFINE_POINTER_CLEANUP(store, store_close)

/* Reads what the server trusts of a machine. Returns 0, -ENOENT for an unknown machine, -EBADMSG
 * for a row that makes no sense, or a negative errno. */
int store_get_trust(struct store *store, const char *machine_id, struct store_trust *ret_trust);

/* Records an enrollment at the server's time now, in one transaction:
 *  - unknown, or unenrolled: takes the keys, hostname and facts; approved when decided_by is
 *    set (recorded with decided_at), else pending; any earlier conflict is forgotten;
 *  - the same sign_key and box_key: updates hostname, facts and last_seen; a pending machine
 *    is approved when decided_by is set now;
 *  - other keys: records conflict_at = now and changes nothing else; returns -EKEYREJECTED.
 * Returns 0 with *ret_state (may be NULL) the machine's state afterwards, -EKEYREJECTED, or a
 * negative errno (nothing changed). */
int store_enroll(struct store *store, const struct store_enrollment *enrollment, int64_t now,
                 enum store_state *ret_state);

/* Stores a report received at the server's time received, and updates the machine's
 * last_seen. The machine must be pending or approved with report->sign_key as its key (checked
 * again in the transaction): else -EPERM, nothing stored. The transaction is committed (and
 * fsynced) before this returns 0. A report whose (machine_id, sign_key, seq) is already stored
 * with the same bytes is not stored again (*ret_duplicate says so); with other bytes it is
 * refused with -EEXIST. Returns 0 or a negative errno (nothing stored). */
int store_add_report(struct store *store, const struct store_report *report, int64_t received,
                     bool *ret_duplicate);

enum store_decision {
        STORE_DECISION_APPROVE, /* pending or revoked -> approved (decided_by "operator") */
        STORE_DECISION_REVOKE,  /* pending or approved -> revoked */
        STORE_DECISION_RESET,   /* any -> unenrolled: keys, decision and conflict forgotten */
};

/* An operator's decision about one machine, at time now. Approving an approved machine or
 * revoking a revoked one changes nothing. Returns 0 with *ret_previous (may be NULL) the state
 * before, -ENOENT for an unknown machine, -ENOKEY to approve or revoke an unenrolled one, or a
 * negative errno. Reports are always kept. */
int store_decide(struct store *store, const char *machine_id, enum store_decision decision,
                 int64_t now, enum store_state *ret_previous);

/* Returns a new JSON array of every machine (at most STORE_FLEET_MAX, by machine_id):
 * {"machine_id", "state", "first_seen", "last_seen", "phase", "status", "serial", "reports",
 * "hostname", "sign_key", "box_key", "enrolled_at", "decided_at", "decided_by", "conflict_at",
 * "facts"}, with phase and status of the latest report stored (insertion order), serial the
 * latest one reported (or null), reports the number stored, and null for what is unknown. */
int store_list_machines(struct store *store, json_t **ret_machines);

/* Returns a new JSON object for one machine: the fields of store_list_machines() and "reports",
 * the stored report objects in the order they were stored (the latest STORE_HISTORY_MAX of them;
 * "truncated" says whether older ones were left out). Returns 0, -ENOENT for an unknown machine, or
 * a negative errno. */
int store_get_machine(struct store *store, const char *machine_id, json_t **ret_machine);

/* Returns a new JSON object {"machines": N, "reports": N, "by_status": {STATUS: N, ...},
 * "by_state": {STATE: N, ...}}, where by_status counts machines by the status of their latest
 * report ("none" for no report) and by_state by their enrollment state. */
int store_stats(struct store *store, json_t **ret_stats);
