/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

struct store {
        sqlite3 *db;
        /* One connection for every thread: a transaction spans several statements. */
        pthread_mutex_t lock;
};

static const char store_schema[] =
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

/* The latest report's phase and status, the latest serial reported, and the count; the
 * machines' columns first. Used with a WHERE or ORDER BY appended. */
#define STORE_MACHINE_SELECT                                                                       \
        "SELECT m.machine_id, m.state, m.first_seen, m.last_seen, "                                \
        "  (SELECT phase FROM reports r WHERE r.machine_id = m.machine_id "                        \
        "    ORDER BY seq DESC LIMIT 1), "                                                         \
        "  (SELECT status FROM reports r WHERE r.machine_id = m.machine_id "                       \
        "    ORDER BY seq DESC LIMIT 1), "                                                         \
        "  (SELECT serial FROM reports r WHERE r.machine_id = m.machine_id "                       \
        "    AND serial IS NOT NULL ORDER BY seq DESC LIMIT 1), "                                  \
        "  (SELECT COUNT(*) FROM reports r WHERE r.machine_id = m.machine_id) "                    \
        "FROM machines m "

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

static struct store *store_lock(struct store *store)
{
        (void)pthread_mutex_lock(&store->lock);
        return store;
}

static void store_unlockp(struct store **store)
{
        if (*store)
                (void)pthread_mutex_unlock(&(*store)->lock);
}
#define _cleanup_unlock_ _cleanup_(store_unlockp)

static int store_exec(struct store *store, const char *sql)
{
        return store_errno(sqlite3_exec(store->db, sql, NULL, NULL, NULL));
}

static int store_prepare(struct store *store, const char *sql, sqlite3_stmt **ret_stmt)
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

static void store_rollback(struct store *store)
{
        if (!sqlite3_get_autocommit(store->db))
                (void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
}

static int store_pragma_text(struct store *store, const char *sql, const char *expected)
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

static int store_user_version(struct store *store, int64_t *ret_version)
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

static int store_migrate(struct store *store)
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
        /* Version 0: a new database. Later versions add their steps here. */
        r = store_exec(store, store_schema);
        if (r < 0)
                goto fail;
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

int store_open(const char *path, struct store **ret_store)
{
        _cleanup_(store_freep) struct store *store = NULL;
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

        *ret_store = TAKE_PTR(store);
        return 0;
}

struct store *store_close(struct store *store)
{
        if (!store)
                return NULL;
        if (store->db)
                (void)sqlite3_close_v2(store->db);
        (void)pthread_mutex_destroy(&store->lock);
        free(store);
        return NULL;
}

static int store_bind_text(sqlite3_stmt *stmt, int index, const char *s)
{
        return store_errno(sqlite3_bind_text(stmt, index, s, -1, SQLITE_STATIC));
}

static int store_insert_report(struct store *store, const struct store_report *report,
                               int64_t received, bool *ret_duplicate)
{
        _cleanup_finalize_ sqlite3_stmt *machine = NULL, *insert = NULL;
        int r;

        r = store_prepare(store,
                          "INSERT INTO machines (machine_id, first_seen, last_seen) "
                          "VALUES (?1, ?2, ?2) ON CONFLICT (machine_id) DO UPDATE "
                          "SET last_seen = max(last_seen, excluded.last_seen)",
                          &machine);
        if (r < 0)
                return r;
        r = store_bind_text(machine, 1, report->machine_id);
        if (r < 0)
                return r;
        r = store_errno(sqlite3_bind_int64(machine, 2, received));
        if (r < 0)
                return r;
        r = store_step_done(machine);
        if (r < 0)
                return r;

        r = store_prepare(store,
                          "INSERT INTO reports "
                          "(machine_id, seq, time, received, phase, status, serial, body) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                          "ON CONFLICT (machine_id, seq) DO NOTHING",
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
                                                 SQLITE_STATIC, SQLITE_UTF8))) < 0)
                return r;
        r = store_step_done(insert);
        if (r < 0)
                return r;

        *ret_duplicate = sqlite3_changes(store->db) == 0;
        return 0;
}

int store_add_report(struct store *store, const struct store_report *report, int64_t received,
                     bool *ret_duplicate)
{
        _cleanup_unlock_ struct store *locked = NULL;
        bool duplicate;
        int r;

        if (!store || !report || !report->machine_id || !report->phase || !report->status ||
            !report->body || report->seq > INT64_MAX ||
            (report->has_serial && report->serial > INT64_MAX))
                return -EINVAL;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = store_insert_report(store, report, received, &duplicate);
        if (r < 0) {
                store_rollback(store);
                return r;
        }
        /* With synchronous=FULL the WAL is fsynced before COMMIT returns. */
        r = store_exec(store, "COMMIT");
        if (r < 0) {
                store_rollback(store);
                return r;
        }
        if (ret_duplicate)
                *ret_duplicate = duplicate;
        return 0;
}

static json_t *store_column_json_text(sqlite3_stmt *stmt, int column)
{
        const unsigned char *s = sqlite3_column_text(stmt, column);

        return s ? json_string((const char *)s) : json_null();
}

static json_t *store_column_json_integer(sqlite3_stmt *stmt, int column)
{
        if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
                return json_null();
        return json_integer(sqlite3_column_int64(stmt, column));
}

/* Builds a machine object from a row of STORE_MACHINE_SELECT. */
static int store_machine_from_row(sqlite3_stmt *stmt, json_t **ret_machine)
{
        json_t *machine;

        machine = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "machine_id",
            store_column_json_text(stmt, 0), "state", store_column_json_text(stmt, 1), "first_seen",
            store_column_json_integer(stmt, 2), "last_seen", store_column_json_integer(stmt, 3),
            "phase", store_column_json_text(stmt, 4), "status", store_column_json_text(stmt, 5),
            "serial", store_column_json_integer(stmt, 6), "reports",
            store_column_json_integer(stmt, 7));
        if (!machine)
                return -ENOMEM;
        *ret_machine = machine;
        return 0;
}

int store_list_machines(struct store *store, json_t **ret_machines)
{
        _cleanup_unlock_ struct store *locked = NULL;
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        json_t *machines;
        int code, r;

        locked = store_lock(store);
        r = store_prepare(store, STORE_MACHINE_SELECT "ORDER BY m.machine_id LIMIT ?1", &stmt);
        if (r < 0)
                return r;
        r = store_errno(sqlite3_bind_int64(stmt, 1, STORE_FLEET_MAX));
        if (r < 0)
                return r;

        machines = json_array();
        if (!machines)
                return -ENOMEM;
        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                json_t *machine;

                r = store_machine_from_row(stmt, &machine);
                if (r < 0 || json_array_append_new(machines, machine) < 0) {
                        json_decref(machines);
                        return r < 0 ? r : -ENOMEM;
                }
        }
        if (code != SQLITE_DONE) {
                json_decref(machines);
                return store_errno(code) ?: -EIO;
        }
        *ret_machines = machines;
        return 0;
}

static int store_history(struct store *store, const char *machine_id, json_t *reports)
{
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        int code, r;

        /* The latest STORE_HISTORY_MAX, in seq order. */
        r = store_prepare(store,
                          "SELECT body FROM (SELECT seq, body FROM reports WHERE machine_id = ?1 "
                          "ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
                          &stmt);
        if (r < 0)
                return r;
        if ((r = store_bind_text(stmt, 1, machine_id)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(stmt, 2, STORE_HISTORY_MAX))) < 0)
                return r;

        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                const void *body = sqlite3_column_blob(stmt, 0);
                int size = sqlite3_column_bytes(stmt, 0);
                json_t *report;

                if (!body || size <= 0)
                        return -EBADMSG;
                report = json_loadb(body, (size_t)size, JSON_REJECT_DUPLICATES, NULL);
                if (!report)
                        return -EBADMSG;
                if (json_array_append_new(reports, report) < 0)
                        return -ENOMEM;
        }
        if (code != SQLITE_DONE)
                return store_errno(code) ?: -EIO;
        return 0;
}

int store_get_machine(struct store *store, const char *machine_id, json_t **ret_machine)
{
        _cleanup_unlock_ struct store *locked = NULL;
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        json_t *machine = NULL, *reports = NULL;
        json_int_t total;
        int code, r;

        if (!machine_id)
                return -EINVAL;

        locked = store_lock(store);
        /* One read transaction, so the summary and the history agree. */
        r = store_exec(store, "BEGIN");
        if (r < 0)
                return r;

        r = store_prepare(store, STORE_MACHINE_SELECT "WHERE m.machine_id = ?1", &stmt);
        if (r < 0)
                goto out;
        r = store_bind_text(stmt, 1, machine_id);
        if (r < 0)
                goto out;
        code = sqlite3_step(stmt);
        if (code == SQLITE_DONE) {
                r = -ENOENT;
                goto out;
        }
        if (code != SQLITE_ROW) {
                r = store_errno(code) ?: -EIO;
                goto out;
        }
        r = store_machine_from_row(stmt, &machine);
        if (r < 0)
                goto out;
        total = json_integer_value(json_object_get(machine, "reports"));

        reports = json_array();
        if (!reports) {
                r = -ENOMEM;
                goto out;
        }
        r = store_history(store, machine_id, reports);
        if (r < 0)
                goto out;
        if (json_object_set_new(machine, "reports_total", json_integer(total)) < 0 ||
            json_object_set_new(machine, "truncated",
                                json_boolean(total > (json_int_t)json_array_size(reports))) < 0 ||
            json_object_set(machine, "reports", reports) < 0) {
                r = -ENOMEM;
                goto out;
        }
        *ret_machine = TAKE_PTR(machine);
        r = 0;
out:
        json_decref(reports);
        json_decref(machine);
        sqlite3_finalize(TAKE_PTR(stmt));
        store_rollback(store);
        return r;
}

int store_stats(struct store *store, json_t **ret_stats)
{
        _cleanup_unlock_ struct store *locked = NULL;
        _cleanup_finalize_ sqlite3_stmt *stmt = NULL;
        json_t *stats = NULL, *by_status;
        json_int_t machines = 0;
        int code, r;

        locked = store_lock(store);
        r = store_exec(store, "BEGIN");
        if (r < 0)
                return r;

        r = store_prepare(store,
                          "SELECT IFNULL((SELECT status FROM reports r "
                          "  WHERE r.machine_id = m.machine_id ORDER BY seq DESC LIMIT 1), 'none') "
                          "  AS last_status, COUNT(*) FROM machines m GROUP BY last_status "
                          "ORDER BY last_status",
                          &stmt);
        if (r < 0)
                goto out;
        by_status = json_object();
        stats = json_pack("{s:o}", "by_status", by_status);
        if (!stats) {
                r = -ENOMEM;
                goto out;
        }
        while ((code = sqlite3_step(stmt)) == SQLITE_ROW) {
                const unsigned char *status = sqlite3_column_text(stmt, 0);
                json_int_t n = sqlite3_column_int64(stmt, 1);

                if (!status ||
                    json_object_set_new(by_status, (const char *)status, json_integer(n)) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                machines += n;
        }
        if (code != SQLITE_DONE) {
                r = store_errno(code) ?: -EIO;
                goto out;
        }
        sqlite3_finalize(TAKE_PTR(stmt));

        r = store_prepare(store, "SELECT COUNT(*) FROM reports", &stmt);
        if (r < 0)
                goto out;
        if (sqlite3_step(stmt) != SQLITE_ROW) {
                r = store_errno(sqlite3_errcode(store->db)) ?: -EIO;
                goto out;
        }
        if (json_object_set_new(stats, "machines", json_integer(machines)) < 0 ||
            json_object_set_new(stats, "reports", json_integer(sqlite3_column_int64(stmt, 0))) <
                0) {
                r = -ENOMEM;
                goto out;
        }
        *ret_stats = TAKE_PTR(stats);
        r = 0;
out:
        json_decref(stats);
        sqlite3_finalize(TAKE_PTR(stmt));
        store_rollback(store);
        return r;
}
