/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store-sqlite.h"
#include "util.h"

struct store_sqlite {
        struct store base;
        sqlite3 *db;
        /* One connection for every thread: a transaction spans several statements. */
        pthread_mutex_t lock;
};

/* Version 1, as it was: a new database is made at version 1 and migrated, so that every
 * database goes through the same steps. */
static const char store_schema_v1[] =
    "CREATE TABLE machines (\n"
    "        machine_id TEXT PRIMARY KEY NOT NULL,\n"
    "        state TEXT NOT NULL DEFAULT 'unenrolled',\n"
    "        first_seen INTEGER NOT NULL,\n"
    "        last_seen INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE reports (\n"
    "        machine_id TEXT NOT NULL REFERENCES machines (machine_id),\n"
    "        seq INTEGER NOT NULL CHECK (seq >= 0),\n"
    "        time INTEGER NOT NULL,\n"
    "        received INTEGER NOT NULL,\n"
    "        phase TEXT NOT NULL,\n"
    "        status TEXT NOT NULL,\n"
    "        serial INTEGER,\n"
    "        body TEXT NOT NULL,\n"
    "        PRIMARY KEY (machine_id, seq)\n"
    ");\n";

/* Version 2: device identity (keys, facts, the operator's decision) on the machines; reports
 * keyed by (machine_id, sign_key, seq), so that a device that enrolled again with new keys
 * starts at seq 1, and ordered by an id in the order they were stored. Reports of version 1
 * had no key: they keep sign_key '' and their seq order. */
static const char store_migrate_v2[] =
    "ALTER TABLE machines ADD COLUMN hostname TEXT;\n"
    "ALTER TABLE machines ADD COLUMN facts TEXT;\n"
    "ALTER TABLE machines ADD COLUMN sign_key TEXT;\n"
    "ALTER TABLE machines ADD COLUMN box_key TEXT;\n"
    "ALTER TABLE machines ADD COLUMN enrolled_at INTEGER;\n"
    "ALTER TABLE machines ADD COLUMN decided_at INTEGER;\n"
    "ALTER TABLE machines ADD COLUMN decided_by TEXT;\n"
    "ALTER TABLE machines ADD COLUMN conflict_at INTEGER;\n"
    "CREATE TABLE reports_v2 (\n"
    "        id INTEGER PRIMARY KEY,\n"
    "        machine_id TEXT NOT NULL REFERENCES machines (machine_id),\n"
    "        sign_key TEXT NOT NULL,\n"
    "        seq INTEGER NOT NULL CHECK (seq >= 0),\n"
    "        time INTEGER NOT NULL,\n"
    "        received INTEGER NOT NULL,\n"
    "        phase TEXT NOT NULL,\n"
    "        status TEXT NOT NULL,\n"
    "        serial INTEGER,\n"
    "        body TEXT NOT NULL,\n"
    "        UNIQUE (machine_id, sign_key, seq)\n"
    ");\n"
    "INSERT INTO reports_v2 (machine_id, sign_key, seq, time, received, phase, status, serial, "
    "body) SELECT machine_id, '', seq, time, received, phase, status, serial, body FROM reports "
    "ORDER BY machine_id, seq;\n"
    "DROP TABLE reports;\n"
    "ALTER TABLE reports_v2 RENAME TO reports;\n"
    "CREATE INDEX reports_by_machine ON reports (machine_id, id);\n";

/* Version 3: the quotas. Each report's size, so that a machine's history is summed without
 * reading the bodies, and the count of reports the quotas deleted. */
static const char store_migrate_v3[] =
    "ALTER TABLE reports ADD COLUMN body_size INTEGER NOT NULL DEFAULT 0;\n"
    "UPDATE reports SET body_size = length(CAST(body AS BLOB));\n"
    "ALTER TABLE machines ADD COLUMN reports_trimmed INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE INDEX machines_by_state ON machines (state, last_seen);\n";

/* Version 4: the device time of the last accepted enrollment (a replay is refused, also after
 * a reset) and the keys a machine had when it was approved (nixprov seal --machine refuses
 * keys that changed since). Machines approved before keep their keys as the approved ones. */
static const char store_migrate_v4[] =
    "ALTER TABLE machines ADD COLUMN enroll_time INTEGER;\n"
    "ALTER TABLE machines ADD COLUMN approved_sign_key TEXT;\n"
    "ALTER TABLE machines ADD COLUMN approved_box_key TEXT;\n"
    "UPDATE machines SET approved_sign_key = sign_key, approved_box_key = box_key "
    "WHERE state = 'approved';\n";

/* Reports that tell how an update ended: with an outcome, not the stamp of a serial that is not
 * tried again. */
#define STORE_NOT_STAMP "IFNULL(json_extract(body, '$.outcome'), '') != 'not-retried'"
#define STORE_LATEST_UPDATE(column)                                                                \
        "(SELECT " column " FROM reports r WHERE r.machine_id = m.machine_id "                     \
        "  AND json_extract(body, '$.outcome') IS NOT NULL AND " STORE_NOT_STAMP                   \
        "  ORDER BY id DESC LIMIT 1)"

/* The latest report's phase and status, the latest serial reported, and the count; the
 * machines' columns first. Used with a WHERE or ORDER BY appended. */
#define STORE_MACHINE_SELECT                                                                       \
        "SELECT m.machine_id, m.state, m.first_seen, m.last_seen, "                                \
        "  (SELECT phase FROM reports r WHERE r.machine_id = m.machine_id "                        \
        "    ORDER BY id DESC LIMIT 1), "                                                          \
        "  (SELECT status FROM reports r WHERE r.machine_id = m.machine_id "                       \
        "    ORDER BY id DESC LIMIT 1), "                                                          \
        "  (SELECT serial FROM reports r WHERE r.machine_id = m.machine_id "                       \
        "    AND serial IS NOT NULL ORDER BY id DESC LIMIT 1), "                                   \
        "  (SELECT COUNT(*) FROM reports r WHERE r.machine_id = m.machine_id), "                   \
        "  m.hostname, m.sign_key, m.box_key, m.enrolled_at, m.decided_at, m.decided_by, "         \
        "  m.conflict_at, m.facts, m.reports_trimmed, "                                            \
        "  (SELECT serial FROM reports r WHERE r.machine_id = m.machine_id AND phase = 'done' "    \
        "    AND status = 'ok' AND " STORE_NOT_STAMP " ORDER BY id DESC LIMIT 1), "                \
        "  " STORE_LATEST_UPDATE(                                                                  \
            "json_extract(body, '$.outcome')") ", "                                                \
                                               "  " STORE_LATEST_UPDATE(                           \
                                                   "serial") ", "                                  \
                                                             "  " STORE_LATEST_UPDATE("json_"      \
                                                                                      "extract("   \
                                                                                      "body, "     \
                                                                                      "'$.error'"  \
                                                                                      ")") " "     \
                                                                                           "FROM " \
                                                                                           "machi" \
                                                                                           "nes "  \
                                                                                           "m "

static int store_errno(int code)
{
        switch (code & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static void sqlite3_finalizep(sqlite3_stmt **stmt)
{
        if (*stmt)
                (void)sqlite3_finalize(*stmt);
}
#define _cleanup_finalize_ _cleanup_(sqlite3_finalizep)

static struct store_sqlite *store_lock(struct store_sqlite *store)
{
        (void)pthread_mutex_lock(&store->lock);
        return store;
}

static void store_unlockp(struct store_sqlite **store)
{
        if (*store)
                (void)pthread_mutex_unlock(&(*store)->lock);
}
#define _cleanup_unlock_ _cleanup_(store_unlockp)

static int store_exec(struct store_sqlite *store, const char *sql)
{
        return store_errno(sqlite3_exec(store->db, sql, NULL, NULL, NULL));
}

static int store_prepare(struct store_sqlite *store, const char *sql, sqlite3_stmt **ret_stmt)
{
        return store_errno(sqlite3_prepare_v2(store->db, sql, -1, ret_stmt, NULL));
}

/* Steps a statement that returns no rows. */
static int store_step_done(sqlite3_stmt *stmt)
{
        int code = sqlite3_step(stmt);

        if (code == SQLITE_DONE)
                return 0;
        if (code == SQLITE_ROW)
                return -EIO;
        return store_errno(code);
}

static void store_rollback(struct store_sqlite *store)
{
        if (!sqlite3_get_autocommit(store->db))
                (void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Ends the transaction begun with BEGIN IMMEDIATE: COMMIT when r says the work succeeded, else
 * ROLLBACK. Returns r, or COMMIT's error. */
static int store_finish(struct store_sqlite *store, int r)
{
        if (r >= 0)
                r = store_exec(store, "COMMIT");
        if (r < 0)
                store_rollback(store);
        return r;
}

static int store_pragma_text(struct store_sqlite *store, const char *sql, const char *expected)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        const unsigned char *value;
        int r;

        r = store_prepare(store, sql, &stmt);
        if (r < 0)
                return r;
        if (sqlite3_step(stmt) != SQLITE_ROW)
                return store_errno(sqlite3_errcode(store->db)) ?: -EIO;
        value = sqlite3_column_text(stmt, 0);
        if (!value || strcasecmp((const char *)value, expected) != 0)
                return -EOPNOTSUPP;
        return 0;
}

static int store_user_version(struct store_sqlite *store, int64_t *ret_version)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int r;

        r = store_prepare(store, "PRAGMA user_version", &stmt);
        if (r < 0)
                return r;
        if (sqlite3_step(stmt) != SQLITE_ROW)
                return store_errno(sqlite3_errcode(store->db)) ?: -EIO;
        *ret_version = sqlite3_column_int64(stmt, 0);
        return 0;
}

static int store_migrate(struct store_sqlite *store)
{
        int64_t version = 0;
        char sql[64];
        int r;

        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = store_user_version(store, &version);
        if (r < 0)
                goto fail;
        if (version == STORE_SCHEMA_VERSION) {
                store_rollback(store);
                return 0;
        }
        if (version > STORE_SCHEMA_VERSION || version < 0) {
                r = -EPROTO; /* written by a newer nixprov: do not touch it */
                goto fail;
        }
        /* Each step takes the database one version up, in the same transaction. */
        if (version == 0) {
                r = store_exec(store, store_schema_v1);
                if (r < 0)
                        goto fail;
                version = 1;
        }
        if (version == 1) {
                r = store_exec(store, store_migrate_v2);
                if (r < 0)
                        goto fail;
                version = 2;
        }
        if (version == 2) {
                r = store_exec(store, store_migrate_v3);
                if (r < 0)
                        goto fail;
                version = 3;
        }
        if (version == 3) {
                r = store_exec(store, store_migrate_v4);
                if (r < 0)
                        goto fail;
                version = 4;
        }
        (void)snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
        r = store_exec(store, sql);
        if (r < 0)
                goto fail;
        r = store_exec(store, "COMMIT");
        if (r < 0)
                goto fail;
        return 0;
fail:
        store_rollback(store);
        return r;
}

static void store_sqlite_close(struct store *base)
{
        struct store_sqlite *store = (struct store_sqlite *)base;

        if (store->db)
                (void)sqlite3_close_v2(store->db);
        (void)pthread_mutex_destroy(&store->lock);
        free(store);
}

static void store_sqlite_freep(struct store_sqlite **store)
{
        if (*store)
                store_sqlite_close(&(*store)->base);
}

static const struct store_ops store_sqlite_ops;

int store_sqlite_open(const char *path, struct store **ret_store)
{
        _cleanup_(store_sqlite_freep) struct store_sqlite *store = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path || !*path)
                return -EINVAL;

        /* SQLite would create it 0644; reports are nobody else's business. The -wal and -shm
         * files take the database's mode. */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        fd = safe_close(fd);

        store = calloc(1, sizeof(*store));
        if (!store)
                return -ENOMEM;
        store->base.ops = &store_sqlite_ops;
        store->base.limits = (struct store_limits){
            .history_reports = STORE_HISTORY_REPORTS_DEFAULT,
            .history_bytes = STORE_HISTORY_BYTES_DEFAULT,
            .pending_reports = STORE_PENDING_REPORTS_DEFAULT,
            .pending_machines = STORE_PENDING_MACHINES_DEFAULT,
        };
        if (pthread_mutex_init(&store->lock, NULL) != 0) {
                free(TAKE_PTR(store));
                return -ENOMEM;
        }

        r = sqlite3_open_v2(path, &store->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                            NULL);
        if (r != SQLITE_OK)
                return store_errno(r) ?: -EIO;
        (void)sqlite3_extended_result_codes(store->db, 1);
        (void)sqlite3_busy_timeout(store->db, STORE_BUSY_TIMEOUT_MS);

        /* Reading the schema first tells a file that is not a database from one that is. */
        r = store_pragma_text(store, "PRAGMA journal_mode = WAL", "wal");
        if (r < 0)
                return r;
        r = store_exec(store, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
        if (r < 0)
                return r;
        r = store_migrate(store);
        if (r < 0)
                return r;

        *ret_store = &TAKE_PTR(store)->base;
        return 0;
}

static int store_bind_text(sqlite3_stmt *stmt, int index, const char *s)
{
        return store_errno(sqlite3_bind_text(stmt, index, s, -1, SQLITE_STATIC));
}

static int store_bind_int64(sqlite3_stmt *stmt, int index, int64_t v)
{
        return store_errno(sqlite3_bind_int64(stmt, index, v));
}

static int store_bind_text_or_null(sqlite3_stmt *stmt, int index, const char *s)
{
        return s ? store_bind_text(stmt, index, s) : store_errno(sqlite3_bind_null(stmt, index));
}

/* Columns 3 to 5 of store_read_trust()'s row: the last enrollment time, the approved keys. */
static int store_read_history_of_trust(sqlite3_stmt *stmt, struct store_trust *trust)
{
        const unsigned char *sign_key = sqlite3_column_text(stmt, 4),
                            *box_key = sqlite3_column_text(stmt, 5);

        if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
                trust->has_enroll_time = true;
                trust->enroll_time = sqlite3_column_int64(stmt, 3);
        }
        if (!sign_key || !box_key)
                return 0;
        if (strlen((const char *)sign_key) >= sizeof(trust->approved_sign_key) ||
            strlen((const char *)box_key) >= sizeof(trust->approved_box_key))
                return -EBADMSG;
        strcpy(trust->approved_sign_key, (const char *)sign_key);
        strcpy(trust->approved_box_key, (const char *)box_key);
        trust->has_approved_keys = true;
        return 0;
}

/* Reads a machine's state and keys; -ENOENT when unknown. */
static int store_read_trust(struct store_sqlite *store, const char *machine_id,
                            struct store_trust *ret_trust)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        struct store_trust trust = {};
        const unsigned char *state, *sign_key, *box_key;
        int code, r;

        r = store_prepare(store,
                          "SELECT state, sign_key, box_key, enroll_time, approved_sign_key, "
                          "approved_box_key FROM machines WHERE machine_id = ?1",
                          &stmt);
        if (r < 0)
                return r;
        r = store_bind_text(stmt, 1, machine_id);
        if (r < 0)
                return r;
        code = sqlite3_step(stmt);
        if (code == SQLITE_DONE)
                return -ENOENT;
        if (code != SQLITE_ROW)
                return store_errno(code) ?: -EIO;
        state = sqlite3_column_text(stmt, 0);
        sign_key = sqlite3_column_text(stmt, 1);
        box_key = sqlite3_column_text(stmt, 2);
        r = store_state_from_string((const char *)state, &trust.state);
        if (r < 0)
                return r;
        if (sign_key && box_key) {
                if (strlen((const char *)sign_key) >= sizeof(trust.sign_key) ||
                    strlen((const char *)box_key) >= sizeof(trust.box_key))
                        return -EBADMSG;
                strcpy(trust.sign_key, (const char *)sign_key);
                strcpy(trust.box_key, (const char *)box_key);
                trust.has_keys = true;
        }
        /* A state other than unenrolled without keys would be a broken row. */
        if (trust.has_keys == (trust.state == STORE_STATE_UNENROLLED))
                return -EBADMSG;
        r = store_read_history_of_trust(stmt, &trust);
        if (r < 0)
                return r;
        *ret_trust = trust;
        return 0;
}

static int store_sqlite_get_trust(struct store *base, const char *machine_id,
                                  struct store_trust *ret_trust)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;

        locked = store_lock(store);
        return store_read_trust(store, machine_id, ret_trust);
}

/* -EUSERS when limits.pending_machines are pending already. */
static int store_check_pending_cap(struct store_sqlite *store)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int r;

        r = store_prepare(store, "SELECT COUNT(*) FROM machines WHERE state = 'pending'", &stmt);
        if (r < 0)
                return r;
        if (sqlite3_step(stmt) != SQLITE_ROW)
                return store_errno(sqlite3_errcode(store->db)) ?: -EIO;
        return sqlite3_column_int64(stmt, 0) >= store->base.limits.pending_machines ? -EUSERS : 0;
}

/* A new machine, or one known only from reports of old or a reset: its keys are taken. */
static int store_enroll_new(struct store_sqlite *store, const struct store_enrollment *e,
                            int64_t now, enum store_state *ret_state)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        enum store_state state = e->decided_by ? STORE_STATE_APPROVED : STORE_STATE_PENDING;
        int r;

        if (state == STORE_STATE_PENDING) {
                r = store_check_pending_cap(store);
                if (r < 0)
                        return r;
        }
        r = store_prepare(
            store,
            "INSERT INTO machines (machine_id, state, first_seen, last_seen, hostname, "
            "facts, sign_key, box_key, enrolled_at, decided_at, decided_by, conflict_at) "
            "VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?3, ?8, ?9, NULL) "
            "ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state, "
            "last_seen = max(last_seen, excluded.last_seen), hostname = excluded.hostname, "
            "facts = excluded.facts, sign_key = excluded.sign_key, "
            "box_key = excluded.box_key, enrolled_at = excluded.enrolled_at, "
            "decided_at = excluded.decided_at, decided_by = excluded.decided_by, "
            "conflict_at = NULL",
            &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, e->machine_id)) < 0 ||
            (r = store_bind_text(stmt, 2, store_state_to_string(state))) < 0 ||
            (r = store_bind_int64(stmt, 3, now)) < 0 ||
            (r = store_bind_text(stmt, 4, e->hostname)) < 0 ||
            (r = store_bind_text(stmt, 5, e->facts)) < 0 ||
            (r = store_bind_text(stmt, 6, e->sign_key)) < 0 ||
            (r = store_bind_text(stmt, 7, e->box_key)) < 0 ||
            (r = store_errno(e->decided_by ? sqlite3_bind_int64(stmt, 8, now)
                                           : sqlite3_bind_null(stmt, 8))) < 0 ||
            (r = store_bind_text_or_null(stmt, 9, e->decided_by)) < 0)
                return r;
        r = store_step_done(stmt);
        if (r < 0)
                return r;
        *ret_state = state;
        return 0;
}

/* Another device (or a reinstall) under the same id: only an operator may let the new key in.
 * Noted, so that the fleet listing shows it; returns -EKEYREJECTED once noted. */
static int store_enroll_conflict(struct store_sqlite *store, const char *machine_id, int64_t now)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int r;

        r = store_prepare(store, "UPDATE machines SET conflict_at = ?2 WHERE machine_id = ?1",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, machine_id)) < 0 ||
            (r = store_bind_int64(stmt, 2, now)) < 0)
                return r;
        r = store_step_done(stmt);
        if (r < 0)
                return r;
        return -EKEYREJECTED;
}

/* The same device again: fresh facts, and the policy may approve it now. */
static int store_enroll_again(struct store_sqlite *store, const struct store_enrollment *e,
                              const struct store_trust *trust, int64_t now,
                              enum store_state *ret_state)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        enum store_state state = trust->state;
        int r;

        if (state == STORE_STATE_PENDING && e->decided_by)
                state = STORE_STATE_APPROVED;
        r = store_prepare(store,
                          "UPDATE machines SET hostname = ?2, facts = ?3, "
                          "last_seen = max(last_seen, ?4), state = ?5, "
                          "decided_at = CASE WHEN ?6 IS NULL THEN decided_at ELSE ?4 END, "
                          "decided_by = IFNULL(?6, decided_by) WHERE machine_id = ?1",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, e->machine_id)) < 0 ||
            (r = store_bind_text(stmt, 2, e->hostname)) < 0 ||
            (r = store_bind_text(stmt, 3, e->facts)) < 0 ||
            (r = store_bind_int64(stmt, 4, now)) < 0 ||
            (r = store_bind_text(stmt, 5, store_state_to_string(state))) < 0 ||
            (r = store_bind_text_or_null(stmt, 6, state != trust->state ? e->decided_by : NULL)) <
                0)
                return r;
        r = store_step_done(stmt);
        if (r < 0)
                return r;
        *ret_state = state;
        return 0;
}

/* After an accepted enrollment: its time, and the keys of a machine approved for the first
 * time. */
static int store_enroll_record(struct store_sqlite *store, const struct store_enrollment *e)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int r;

        r = store_prepare(store,
                          "UPDATE machines SET enroll_time = ?2, "
                          "approved_sign_key = CASE WHEN state = 'approved' AND "
                          "approved_sign_key IS NULL THEN sign_key ELSE approved_sign_key END, "
                          "approved_box_key = CASE WHEN state = 'approved' AND "
                          "approved_box_key IS NULL THEN box_key ELSE approved_box_key END "
                          "WHERE machine_id = ?1",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, e->machine_id)) < 0 ||
            (r = store_bind_int64(stmt, 2, e->time)) < 0)
                return r;
        return store_step_done(stmt);
}

static int store_enroll_locked(struct store_sqlite *store, const struct store_enrollment *e,
                               int64_t now, enum store_state *ret_state)
{
        struct store_trust trust;
        bool same_keys;
        int r;

        r = store_read_trust(store, e->machine_id, &trust);
        if (r < 0 && r != -ENOENT)
                return r;
        same_keys = r >= 0 && trust.has_keys && streq(trust.sign_key, e->sign_key) &&
                    streq(trust.box_key, e->box_key);
        /* Older than the last accepted one; or the same second when no keys are held (the last
         * one replayed after a reset). The same second with other keys than the held ones is a
         * conflict, answered as such below. */
        if (r >= 0 && trust.has_enroll_time &&
            (e->time < trust.enroll_time || (e->time == trust.enroll_time && !trust.has_keys)))
                return -ESTALE;
        if (r == -ENOENT || !trust.has_keys)
                r = store_enroll_new(store, e, now, ret_state);
        else if (!same_keys)
                return store_enroll_conflict(store, e->machine_id, now);
        else
                r = store_enroll_again(store, e, &trust, now, ret_state);
        if (r < 0)
                return r;
        return store_enroll_record(store, e);
}

static int store_sqlite_enroll(struct store *base, const struct store_enrollment *enrollment,
                               int64_t now, enum store_state *ret_state)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        enum store_state state = STORE_STATE_UNENROLLED;
        int r, k;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        k = store_enroll_locked(store, enrollment, now, &state);
        if (k < 0 && k != -EKEYREJECTED) { /* -ESTALE too: a replay changes nothing */
                store_rollback(store);
                return k;
        }
        /* A conflict is committed too: conflict_at is the operator's clue. */
        r = store_exec(store, "COMMIT");
        if (r < 0) {
                store_rollback(store);
                return r;
        }
        if (k < 0)
                return k;
        if (ret_state)
                *ret_state = state;
        return 0;
}

/* The report stored under report's (machine, key, seq): 0 when it holds the same bytes,
 * -EEXIST when another one. */
static int store_report_compare(struct store_sqlite *store, const struct store_report *report)
{
        _cleanup_finalize_ sqlite3_stmt *stored = NULL;
        const void *body;
        int r, code;

        r = store_prepare(store,
                          "SELECT body FROM reports WHERE machine_id = ?1 AND sign_key = ?2 "
                          "AND seq = ?3",
                          &stored);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stored, 1, report->machine_id)) < 0 ||
            (r = store_bind_text(stored, 2, report->sign_key)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(stored, 3, (sqlite3_int64)report->seq))) < 0)
                return r;
        code = sqlite3_step(stored);
        if (code != SQLITE_ROW)
                return store_errno(code) ?: -EIO;
        body = sqlite3_column_blob(stored, 0);
        if ((size_t)sqlite3_column_bytes(stored, 0) != report->body_size ||
            (report->body_size > 0 && (!body || memcmp(body, report->body, report->body_size))))
                return -EEXIST;
        return 0;
}

/* Deletes machine_id's reports that sql (?1 the machine, ?2 the limit, ?3 sign_key when not
 * NULL) selects, adding how many to *trimmed. */
static int store_trim_step(struct store_sqlite *store, const char *sql, const char *machine_id,
                           int64_t limit, const char *sign_key, int64_t *trimmed)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int r;

        r = store_prepare(store, sql, &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, machine_id)) < 0 ||
            (r = store_bind_int64(stmt, 2, limit)) < 0 ||
            (sign_key && (r = store_bind_text(stmt, 3, sign_key)) < 0))
                return r;
        r = store_step_done(stmt);
        if (r < 0)
                return r;
        *trimmed += sqlite3_changes(store->db);
        return 0;
}

/* The quotas (struct store_limits), in the transaction that stored a report of machine_id
 * signed with sign_key. */
static int store_trim_history(struct store_sqlite *store, const char *machine_id,
                              const char *sign_key, enum store_state state)
{
        const struct store_limits *l = &store->base.limits;
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int64_t trimmed = 0;
        int r = 0;

        /* A pending device's own reports, from the (pending_reports + 1)th newest back: what
         * the machine stored under other keys (approved, before a reset) is not its to spend. */
        if (state == STORE_STATE_PENDING)
                r = store_trim_step(store,
                                    "DELETE FROM reports WHERE machine_id = ?1 AND sign_key = ?3 "
                                    "AND id <= (SELECT id FROM reports WHERE machine_id = ?1 AND "
                                    "sign_key = ?3 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                                    machine_id, l->pending_reports, sign_key, &trimmed);
        /* Everything from the (history_reports + 1)th newest back. */
        if (r >= 0)
                r = store_trim_step(store,
                                    "DELETE FROM reports WHERE machine_id = ?1 AND id <= (SELECT "
                                    "id FROM reports WHERE machine_id = ?1 ORDER BY id DESC LIMIT "
                                    "1 OFFSET ?2)",
                                    machine_id, l->history_reports, NULL, &trimmed);
        /* Then the oldest of those whose bodies, summed from the newest, pass the bytes; the
         * newest stays whatever its size (a single report's size is the server's --max-body). */
        if (r >= 0)
                r = store_trim_step(
                    store,
                    "DELETE FROM reports WHERE machine_id = ?1 AND id <= (SELECT id FROM (SELECT "
                    "id, SUM(body_size) OVER (ORDER BY id DESC) AS total FROM reports WHERE "
                    "machine_id = ?1) WHERE total > ?2 ORDER BY id DESC LIMIT 1) AND id < "
                    "(SELECT MAX(id) FROM reports WHERE machine_id = ?1)",
                    machine_id, l->history_bytes, NULL, &trimmed);
        if (r < 0 || trimmed == 0)
                return r;
        r = store_prepare(store,
                          "UPDATE machines SET reports_trimmed = reports_trimmed + ?2 "
                          "WHERE machine_id = ?1",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, machine_id)) < 0 ||
            (r = store_bind_int64(stmt, 2, trimmed)) < 0)
                return r;
        return store_step_done(stmt);
}

static int store_insert_report(struct store_sqlite *store, const struct store_report *report,
                               int64_t received, bool *ret_duplicate)
{
        _cleanup_finalize_ sqlite3_stmt *machine = NULL, *insert = NULL;
        struct store_trust trust;
        int r;

        /* Checked again inside the transaction: an operator may have revoked or reset the
         * machine since the route looked. */
        r = store_read_trust(store, report->machine_id, &trust);
        if (r == -ENOENT)
                return -EPERM;
        if (r < 0)
                return r;
        if (!trust.has_keys || !streq(trust.sign_key, report->sign_key) ||
            !(trust.state == STORE_STATE_PENDING || trust.state == STORE_STATE_APPROVED))
                return -EPERM;

        r = store_prepare(
            store, "UPDATE machines SET last_seen = max(last_seen, ?2) WHERE machine_id = ?1",
            &machine);
        if (r < 0)
                return r;
        if ((r = store_bind_text(machine, 1, report->machine_id)) < 0 ||
            (r = store_bind_int64(machine, 2, received)) < 0)
                return r;
        r = store_step_done(machine);
        if (r < 0)
                return r;

        r = store_prepare(
            store,
            "INSERT INTO reports "
            "(machine_id, sign_key, seq, time, received, phase, status, serial, body, body_size) "
            "VALUES (?1, ?9, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10) "
            "ON CONFLICT (machine_id, sign_key, seq) DO NOTHING",
            &insert);
        if (r < 0)
                return r;
        if ((r = store_bind_text(insert, 1, report->machine_id)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(insert, 2, (sqlite3_int64)report->seq))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(insert, 3, report->time))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(insert, 4, received))) < 0 ||
            (r = store_bind_text(insert, 5, report->phase)) < 0 ||
            (r = store_bind_text(insert, 6, report->status)) < 0 ||
            (r = store_errno(report->has_serial
                                 ? sqlite3_bind_int64(insert, 7, (sqlite3_int64)report->serial)
                                 : sqlite3_bind_null(insert, 7))) < 0 ||
            (r = store_errno(sqlite3_bind_text64(insert, 8, report->body, report->body_size,
                                                 SQLITE_STATIC, SQLITE_UTF8))) < 0 ||
            (r = store_bind_text(insert, 9, report->sign_key)) < 0 ||
            (r = store_bind_int64(insert, 10, (int64_t)report->body_size)) < 0)
                return r;
        r = store_step_done(insert);
        if (r < 0)
                return r;
        if (sqlite3_changes(store->db) == 1) {
                *ret_duplicate = false;
                return store_trim_history(store, report->machine_id, report->sign_key, trust.state);
        }

        /* Already stored: a resend of the same bytes, or another report under the same seq. */
        r = store_report_compare(store, report);
        if (r < 0)
                return r;
        *ret_duplicate = true;
        return 0;
}

static int store_sqlite_add_report(struct store *base, const struct store_report *report,
                                   int64_t received, bool *ret_duplicate)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        bool duplicate = false;
        int r;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = store_insert_report(store, report, received, &duplicate);
        /* With synchronous=FULL the WAL is fsynced before COMMIT returns. */
        r = store_finish(store, r);
        if (r < 0)
                return r;
        if (ret_duplicate)
                *ret_duplicate = duplicate;
        return 0;
}

static int store_decide_locked(struct store_sqlite *store, const char *machine_id,
                               enum store_decision decision, int64_t now,
                               enum store_state *ret_previous)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        struct store_trust trust;
        const char *sql;
        int r;

        r = store_read_trust(store, machine_id, &trust);
        if (r < 0)
                return r;

        switch (decision) {
        case STORE_DECISION_APPROVE:
                if (!trust.has_keys)
                        return -ENOKEY;
                /* The operator vouches for the keys the machine holds now. */
                if (trust.state == STORE_STATE_APPROVED)
                        sql = "UPDATE machines SET approved_sign_key = sign_key, "
                              "approved_box_key = box_key WHERE machine_id = ?1";
                else
                        sql = "UPDATE machines SET state = 'approved', decided_at = ?2, "
                              "decided_by = 'operator', approved_sign_key = sign_key, "
                              "approved_box_key = box_key WHERE machine_id = ?1";
                break;
        case STORE_DECISION_REVOKE:
                if (!trust.has_keys)
                        return -ENOKEY;
                if (trust.state == STORE_STATE_REVOKED)
                        goto done;
                sql = "UPDATE machines SET state = 'revoked', decided_at = ?2, "
                      "decided_by = 'operator' WHERE machine_id = ?1";
                break;
        case STORE_DECISION_RESET:
                sql = "UPDATE machines SET state = 'unenrolled', sign_key = NULL, box_key = NULL, "
                      "enrolled_at = NULL, decided_at = NULL, decided_by = NULL, "
                      "conflict_at = NULL WHERE machine_id = ?1";
                break;
        default:
                return -EINVAL;
        }
        r = store_prepare(store, sql, &stmt);
        if (r < 0)
                return r;
        r = store_bind_text(stmt, 1, machine_id);
        if (r >= 0 && sqlite3_bind_parameter_count(stmt) >= 2)
                r = store_bind_int64(stmt, 2, now);
        if (r < 0)
                return r;
        r = store_step_done(stmt);
        if (r < 0)
                return r;
done:
        *ret_previous = trust.state;
        return 0;
}

static int store_sqlite_decide(struct store *base, const char *machine_id,
                               enum store_decision decision, int64_t now,
                               enum store_state *ret_previous)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        enum store_state previous = STORE_STATE_UNENROLLED;
        int r;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = store_decide_locked(store, machine_id, decision, now, &previous);
        r = store_finish(store, r);
        if (r < 0)
                return r;
        if (ret_previous)
                *ret_previous = previous;
        return 0;
}

/* A text column as a new string, NULL for NULL. */
static int store_column_text(sqlite3_stmt *stmt, int column, char **ret_text)
{
        const unsigned char *s = sqlite3_column_text(stmt, column);

        if (!s) {
                if (sqlite3_column_type(stmt, column) != SQLITE_NULL)
                        return -ENOMEM;
                *ret_text = NULL;
                return 0;
        }
        *ret_text = strdup((const char *)s);
        return *ret_text ? 0 : -ENOMEM;
}

static struct store_optional store_column_optional(sqlite3_stmt *stmt, int column)
{
        if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
                return (struct store_optional){};
        return (struct store_optional){.is_set = true, .value = sqlite3_column_int64(stmt, column)};
}

/* Reads a row of STORE_MACHINE_SELECT. */
static int store_machine_from_row(sqlite3_stmt *stmt, struct store_machine *ret_machine)
{
        struct store_machine m = {};
        const unsigned char *id = sqlite3_column_text(stmt, 0);
        int r;

        if (!id || strlen((const char *)id) >= sizeof(m.machine_id))
                return -EBADMSG;
        strcpy(m.machine_id, (const char *)id);
        r = store_state_from_string((const char *)sqlite3_column_text(stmt, 1), &m.state);
        if (r < 0)
                return r;
        m.first_seen = sqlite3_column_int64(stmt, 2);
        m.last_seen = sqlite3_column_int64(stmt, 3);
        m.serial = store_column_optional(stmt, 6);
        m.reports = sqlite3_column_int64(stmt, 7);
        m.enrolled_at = store_column_optional(stmt, 11);
        m.decided_at = store_column_optional(stmt, 12);
        m.conflict_at = store_column_optional(stmt, 14);
        m.reports_trimmed = sqlite3_column_int64(stmt, 16);
        m.running_serial = store_column_optional(stmt, 17);
        m.update_serial = store_column_optional(stmt, 19);
        if ((r = store_column_text(stmt, 4, &m.phase)) < 0 ||
            (r = store_column_text(stmt, 5, &m.status)) < 0 ||
            (r = store_column_text(stmt, 8, &m.hostname)) < 0 ||
            (r = store_column_text(stmt, 9, &m.sign_key)) < 0 ||
            (r = store_column_text(stmt, 10, &m.box_key)) < 0 ||
            (r = store_column_text(stmt, 13, &m.decided_by)) < 0 ||
            (r = store_column_text(stmt, 15, &m.facts)) < 0 ||
            (r = store_column_text(stmt, 18, &m.update_outcome)) < 0 ||
            (r = store_column_text(stmt, 20, &m.update_error)) < 0) {
                store_machine_done(&m);
                return r;
        }
        *ret_machine = m;
        return 0;
}

static int store_list_append(struct store_machine_list *list, sqlite3_stmt *stmt)
{
        struct store_machine *bigger;
        int r;

        bigger = reallocarray(list->machines, list->n_machines + 1, sizeof(*bigger));
        if (!bigger)
                return -ENOMEM;
        list->machines = bigger;
        r = store_machine_from_row(stmt, &list->machines[list->n_machines]);
        if (r < 0)
                return r;
        list->n_machines++;
        return 0;
}

static int store_sqlite_list_machines(struct store *base, const struct store_page *page,
                                      struct store_machine_list *ret_list)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        struct store_machine_list list = {};
        int code, r;

        locked = store_lock(store);
        /* One more than the page, to tell whether more follow. */
        r = store_prepare(store,
                          STORE_MACHINE_SELECT "WHERE m.machine_id > ?2 ORDER BY m.machine_id "
                                               "LIMIT ?1",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_int64(stmt, 1, (int64_t)page->limit + 1)) < 0 ||
            (r = store_bind_text(stmt, 2, page->after_machine ?: "")) < 0)
                return r;
        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (list.n_machines == page->limit) {
                        list.more = true;
                        code = SQLITE_DONE;
                        break;
                }
                r = store_list_append(&list, stmt);
                if (r < 0) {
                        store_machine_list_done(&list);
                        return r;
                }
        }
        if (code != SQLITE_DONE) {
                store_machine_list_done(&list);
                return store_errno(code) ?: -EIO;
        }
        *ret_list = list;
        return 0;
}

static int store_history_append(struct store_history *history, sqlite3_stmt *stmt)
{
        const void *body = sqlite3_column_blob(stmt, 1);
        int size = sqlite3_column_bytes(stmt, 1);
        struct store_history_entry *bigger;
        char *copy;

        if (!body || size <= 0)
                return -EBADMSG;
        bigger = reallocarray(history->entries, history->n_entries + 1, sizeof(*bigger));
        if (!bigger)
                return -ENOMEM;
        history->entries = bigger;
        copy = malloc((size_t)size + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, body, (size_t)size);
        copy[size] = '\0';
        history->entries[history->n_entries++] = (struct store_history_entry){
            .id = sqlite3_column_int64(stmt, 0), .body = copy, .body_size = (size_t)size};
        return 0;
}

/* A page of the reports, from the oldest kept: at most page->limit, and past
 * STORE_PAGE_BYTES_MAX of bodies only the first. */
static int store_read_history(struct store_sqlite *store, const char *machine_id,
                              const struct store_page *page, struct store_history *history)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int64_t bytes = 0;
        int code, r;

        r = store_prepare(store,
                          "SELECT id, body, body_size FROM reports WHERE machine_id = ?1 AND "
                          "id > ?2 ORDER BY id LIMIT ?3",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, machine_id)) < 0 ||
            (r = store_bind_int64(stmt, 2, page->after_report)) < 0 ||
            (r = store_bind_int64(stmt, 3, (int64_t)page->limit + 1)) < 0)
                return r;
        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                /* body_size first: a body past the page is never read. */
                bytes += sqlite3_column_int64(stmt, 2);
                if (history->n_entries == page->limit ||
                    (history->n_entries > 0 && bytes > STORE_PAGE_BYTES_MAX)) {
                        history->more = true;
                        return 0;
                }
                r = store_history_append(history, stmt);
                if (r < 0)
                        return r;
        }
        if (code != SQLITE_DONE)
                return store_errno(code) ?: -EIO;
        return 0;
}

static int store_read_machine(struct store_sqlite *store, const char *machine_id,
                              struct store_machine *ret_machine)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int code, r;

        r = store_prepare(store, STORE_MACHINE_SELECT "WHERE m.machine_id = ?1", &stmt);
        if (r < 0)
                return r;
        r = store_bind_text(stmt, 1, machine_id);
        if (r < 0)
                return r;
        code = sqlite3_step(stmt);
        if (code == SQLITE_DONE)
                return -ENOENT;
        if (code != SQLITE_ROW)
                return store_errno(code) ?: -EIO;
        return store_machine_from_row(stmt, ret_machine);
}

static int store_sqlite_get_machine(struct store *base, const char *machine_id,
                                    const struct store_page *page,
                                    struct store_machine *ret_machine,
                                    struct store_history *ret_history)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        struct store_machine machine = {};
        struct store_history history = {};
        int r;

        locked = store_lock(store);
        /* One read transaction, so the summary and the history agree. */
        r = store_exec(store, "BEGIN");
        if (r < 0)
                return r;
        r = store_read_machine(store, machine_id, &machine);
        if (r >= 0)
                r = store_read_history(store, machine_id, page, &history);
        store_rollback(store);
        if (r < 0) {
                store_machine_done(&machine);
                store_history_done(&history);
                return r;
        }
        history.total = machine.reports;
        *ret_machine = machine;
        *ret_history = history;
        return 0;
}

/* Reads rows of (name, count) into counts; returns the sum of the counts in *ret_sum. */
static int store_read_counts(struct store_sqlite *store, const char *sql,
                             struct store_count counts[static STORE_COUNTS_MAX], size_t *ret_n,
                             int64_t *ret_sum)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int64_t sum = 0;
        size_t n = 0;
        int code, r;

        r = store_prepare(store, sql, &stmt);
        if (r < 0)
                return r;
        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                const unsigned char *name = sqlite3_column_text(stmt, 0);

                if (!name || strlen((const char *)name) >= sizeof(counts[n].name))
                        return -EBADMSG;
                if (n >= STORE_COUNTS_MAX)
                        return -E2BIG;
                strcpy(counts[n].name, (const char *)name);
                counts[n].count = sqlite3_column_int64(stmt, 1);
                sum += counts[n++].count;
        }
        if (code != SQLITE_DONE)
                return store_errno(code) ?: -EIO;
        *ret_n = n;
        if (ret_sum)
                *ret_sum = sum;
        return 0;
}

static int store_sqlite_stats(struct store *base, struct store_stats *ret_stats)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        struct store_stats stats = {};
        struct store_count total[STORE_COUNTS_MAX];
        size_t n_total;
        int r;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN");
        if (r < 0)
                return r;
        r = store_read_counts(store,
                              "SELECT IFNULL((SELECT status FROM reports r "
                              "  WHERE r.machine_id = m.machine_id ORDER BY id DESC LIMIT 1), "
                              "  'none') AS last_status, COUNT(*) FROM machines m "
                              "GROUP BY last_status ORDER BY last_status",
                              stats.by_status, &stats.n_by_status, &stats.machines);
        if (r >= 0)
                r = store_read_counts(
                    store, "SELECT state, COUNT(*) FROM machines GROUP BY state ORDER BY state",
                    stats.by_state, &stats.n_by_state, NULL);
        if (r >= 0)
                r = store_read_counts(store,
                                      "SELECT IFNULL(" STORE_LATEST_UPDATE(
                                          "json_extract(body, '$.outcome')") ", 'none') AS o, "
                                                                             "COUNT(*) FROM "
                                                                             "machines m GROUP BY "
                                                                             "o ORDER BY o",
                                      stats.by_update, &stats.n_by_update, NULL);
        if (r >= 0)
                r = store_read_counts(store, "SELECT 'reports', COUNT(*) FROM reports", total,
                                      &n_total, &stats.reports);
        store_rollback(store);
        if (r < 0)
                return r;
        *ret_stats = stats;
        return 0;
}

static int store_id_list_append(struct store_id_list *list, sqlite3_stmt *stmt)
{
        const unsigned char *id = sqlite3_column_text(stmt, 0);
        char(*bigger)[STORE_MACHINE_ID_MAX];

        if (!id || strlen((const char *)id) >= STORE_MACHINE_ID_MAX)
                return -EBADMSG;
        bigger = reallocarray(list->ids, list->n_ids + 1, sizeof(*bigger));
        if (!bigger)
                return -ENOMEM;
        list->ids = bigger;
        strcpy(list->ids[list->n_ids++], (const char *)id);
        return 0;
}

/* Deletes a machine and its reports. */
static int store_delete_machine(struct store_sqlite *store, const char *machine_id)
{
        static const char *const sql[] = {
            "DELETE FROM reports WHERE machine_id = ?1",
            "DELETE FROM machines WHERE machine_id = ?1",
        };
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(sql) && r >= 0; i++) {
                _cleanup_finalize_ sqlite3_stmt *stmt = NULL;

                if ((r = store_prepare(store, sql[i], &stmt)) >= 0 &&
                    (r = store_bind_text(stmt, 1, machine_id)) >= 0)
                        r = store_step_done(stmt);
        }
        return r;
}

static int store_purge_locked(struct store_sqlite *store, int64_t before, bool dry_run,
                              struct store_id_list *ids)
{
        _cleanup_finalize_ sqlite3_stmt *select = NULL;
        int code, r;

        r = store_prepare(store,
                          "SELECT machine_id FROM machines WHERE state = 'pending' AND "
                          "last_seen < ?1 ORDER BY machine_id",
                          &select);
        if (r < 0)
                return r;
        r = store_bind_int64(select, 1, before);
        if (r < 0)
                return r;
        while ((code = sqlite3_step(select)) == SQLITE_ROW) {
                r = store_id_list_append(ids, select);
                if (r < 0)
                        return r;
        }
        if (code != SQLITE_DONE)
                return store_errno(code) ?: -EIO;
        for (size_t i = 0; !dry_run && i < ids->n_ids; i++) {
                r = store_delete_machine(store, ids->ids[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int store_sqlite_purge_pending(struct store *base, int64_t before, bool dry_run,
                                      struct store_id_list *ret_ids)
{
        struct store_sqlite *store = (struct store_sqlite *)base;
        _cleanup_unlock_ struct store_sqlite *locked = NULL;
        struct store_id_list ids = {};
        int r;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = store_purge_locked(store, before, dry_run, &ids);
        r = store_finish(store, r);
        if (r < 0) {
                store_id_list_done(&ids);
                return r;
        }
        *ret_ids = ids;
        return 0;
}

static const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .close = store_sqlite_close,
    .get_trust = store_sqlite_get_trust,
    .enroll = store_sqlite_enroll,
    .add_report = store_sqlite_add_report,
    .decide = store_sqlite_decide,
    .list_machines = store_sqlite_list_machines,
    .get_machine = store_sqlite_get_machine,
    .stats = store_sqlite_stats,
    .purge_pending = store_sqlite_purge_pending,
};
