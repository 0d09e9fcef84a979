/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "util.h"

#define M1 "0123456789abcdef0123456789abcdef"
#define M2 "fedcba9876543210fedcba9876543210"
#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
#define KEY_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA="

static char dir[] = "/tmp/nixprov-test-store-XXXXXX";

static int setup(void **state)
{
        (void)state;
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *in_dir(const char *name)
{
        char *p;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static struct store_report make_report(const char *machine_id, uint64_t seq, const char *status,
                                       char body[static 256])
{
        snprintf(body, 256,
                 "{\"machine_id\":\"%s\",\"seq\":%llu,\"phase\":\"fetch\",\"status\":\"%s\","
                 "\"time\":1800000000}",
                 machine_id, (unsigned long long)seq, status);
        return (struct store_report){
            .machine_id = machine_id,
            .sign_key = KEY_A,
            .seq = seq,
            .time = 1800000000,
            .phase = "fetch",
            .status = status,
            .body = body,
            .body_size = strlen(body),
        };
}

/* The devices' clock: every enrollment is newer than the one before. */
static int64_t device_clock = 1000;

static void enroll_with(struct store *store, const char *machine_id, const char *sign_key,
                        const char *decided_by, int r_expected, enum store_state expected)
{
        struct store_enrollment e = {
            .time = device_clock++,
            .machine_id = machine_id,
            .hostname = "edge-1",
            .facts = "{\"cpus\":2}",
            .sign_key = sign_key,
            .box_key = KEY_C,
            .decided_by = decided_by,
        };
        enum store_state state = 99;

        assert_int_equal(store_enroll(store, &e, 50, &state), r_expected);
        if (r_expected == 0)
                assert_int_equal(state, expected);
        else
                assert_int_equal(state, 99);
}

static void test_refuses_what_it_cannot_store(void **state)
{
        _cleanup_free_ char *path = in_dir("refuse.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_report report;
        char body[256];
        bool duplicate;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        report = make_report(M1, 1, "ok", body);
        report.seq = (uint64_t)INT64_MAX + 1;
        assert_int_equal(store_add_report(store, &report, 1, &duplicate), -EINVAL);
        report = make_report(M1, 1, "ok", body);
        report.has_serial = true;
        report.serial = UINT64_MAX;
        assert_int_equal(store_add_report(store, &report, 1, &duplicate), -EINVAL);
        report = make_report(M1, 1, "ok", body);
        report.machine_id = NULL;
        assert_int_equal(store_add_report(store, &report, 1, &duplicate), -EINVAL);
        report = make_report(M1, 1, "ok", body);
        report.sign_key = NULL;
        assert_int_equal(store_add_report(store, &report, 1, &duplicate), -EINVAL);
        /* Not enrolled: refused, nothing stored. */
        report = make_report(M1, 1, "ok", body);
        assert_int_equal(store_add_report(store, &report, 1, &duplicate), -EPERM);
}

static void test_not_a_database(void **state)
{
        _cleanup_free_ char *path = in_dir("garbage.db");
        struct store *store = NULL;
        FILE *f;
        (void)state;

        f = fopen(path, "w");
        assert_non_null(f);
        for (int i = 0; i < 512; i++)
                fputs("not a database ", f);
        fclose(f);
        assert_int_equal(store_open(path, &store), -EBADMSG);
        assert_null(store);
}

static void test_newer_schema_is_left_alone(void **state)
{
        _cleanup_free_ char *path = in_dir("newer.db");
        struct store *store = NULL;
        sqlite3 *db;
        (void)state;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(path, &store), -EPROTO);
        assert_null(store);
}

static void test_new_database_is_private(void **state)
{
        _cleanup_free_ char *path = in_dir("private.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct stat st;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_reports_stored_once_and_kept(void **state)
{
        _cleanup_free_ char *path = in_dir("reports.db");
        struct store *store = NULL;
        struct store_report report;
        struct store_machine_list list = {};
        struct store_machine machine = {}, *m;
        struct store_history history = {};
        struct store_stats stats;
        char body[256];
        bool duplicate = true;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        enroll_with(store, M2, KEY_A, "policy:mac", 0, STORE_STATE_APPROVED);

        report = make_report(M1, 2, "started", body);
        report.has_serial = true;
        report.serial = 7;
        assert_int_equal(store_add_report(store, &report, 100, &duplicate), 0);
        assert_false(duplicate);
        assert_int_equal(store_add_report(store, &report, 101, &duplicate), 0);
        assert_true(duplicate);
        /* Out of order: seq 1 arrives after seq 2, and becomes the latest: the latest is the
         * last one stored (a device that started over counts from 1 again). */
        report = make_report(M1, 1, "failed", body);
        assert_int_equal(store_add_report(store, &report, 102, &duplicate), 0);
        assert_false(duplicate);
        report = make_report(M2, 0, "ok", body);
        assert_int_equal(store_add_report(store, &report, 103, &duplicate), 0);
        assert_false(duplicate);

        assert_int_equal(store_list_machines(store, NULL, &list), 0);
        assert_int_equal(list.n_machines, 2);
        m = &list.machines[0];
        assert_string_equal(m->machine_id, M1);
        assert_int_equal(m->state, STORE_STATE_PENDING);
        assert_string_equal(m->status, "failed");
        assert_true(m->serial.is_set);
        assert_int_equal(m->serial.value, 7);
        assert_int_equal(m->reports, 2);
        assert_int_equal(m->first_seen, 50);
        assert_int_equal(m->last_seen, 102);
        m = &list.machines[1];
        assert_false(m->serial.is_set);
        store_machine_list_done(&list);

        store = store_close(store);
        assert_null(store);

        /* Reopened: everything is still there, in the order stored. */
        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store_get_machine(store, M1, NULL, &machine, &history), 0);
        assert_int_equal(history.n_entries, 2);
        assert_non_null(strstr(history.entries[0].body, "\"seq\":2,"));
        assert_non_null(strstr(history.entries[1].body, "\"seq\":1,"));
        assert_int_equal(history.total, 2); /* nothing left out */
        store_machine_done(&machine);
        store_history_done(&history);

        report = make_report(M1, 2, "started", body);
        report.has_serial = true;
        report.serial = 7;
        assert_int_equal(store_add_report(store, &report, 104, &duplicate), 0);
        assert_true(duplicate);
        /* The same seq with other bytes: refused. */
        report = make_report(M1, 2, "ok", body);
        assert_int_equal(store_add_report(store, &report, 104, &duplicate), -EEXIST);

        assert_int_equal(
            store_get_machine(store, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", NULL, &machine, &history),
            -ENOENT);
        assert_int_equal(history.n_entries, 0);
        assert_null(machine.phase);

        assert_int_equal(store_stats(store, &stats), 0);
        assert_int_equal(stats.machines, 2);
        assert_int_equal(stats.reports, 3);
        /* Sorted by name. */
        assert_int_equal(stats.n_by_status, 2);
        assert_string_equal(stats.by_status[0].name, "failed");
        assert_int_equal(stats.by_status[0].count, 1);
        assert_string_equal(stats.by_status[1].name, "ok");
        assert_int_equal(stats.by_status[1].count, 1);
        assert_int_equal(stats.n_by_state, 2);
        assert_string_equal(stats.by_state[0].name, "approved");
        assert_int_equal(stats.by_state[0].count, 1);
        assert_string_equal(stats.by_state[1].name, "pending");
        assert_int_equal(stats.by_state[1].count, 1);
        store_close(store);
}

static void test_enroll_and_decide(void **state)
{
        _cleanup_free_ char *path = in_dir("decide.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_report report;
        struct store_trust trust;
        enum store_state previous;
        char body[256];
        bool duplicate;
        struct store_machine m;
        struct store_history history;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store_get_trust(store, M1, &trust), -ENOENT);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 1, NULL), -ENOENT);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_RESET, 1, NULL), -ENOENT);

        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        /* The policy approves a pending machine when it enrolls again. */
        enroll_with(store, M1, KEY_A, "policy:token", 0, STORE_STATE_APPROVED);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_int_equal(trust.state, STORE_STATE_APPROVED);
        assert_string_equal(trust.sign_key, KEY_A);
        assert_string_equal(trust.box_key, KEY_C);

        /* Another key: refused and noted, the keys stay. */
        enroll_with(store, M1, KEY_B, "policy:machine-id", -EKEYREJECTED, 0);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_string_equal(trust.sign_key, KEY_A);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_true(m.conflict_at.is_set);
        assert_int_equal(m.conflict_at.value, 50);
        assert_string_equal(m.decided_by, "policy:token");
        store_machine_done(&m);
        store_history_done(&history);

        assert_int_equal(store_decide(store, M1, STORE_DECISION_REVOKE, 60, &previous), 0);
        assert_int_equal(previous, STORE_STATE_APPROVED);
        /* Enrolling again does not undo it, whatever the policy says. */
        enroll_with(store, M1, KEY_A, "policy:machine-id", 0, STORE_STATE_REVOKED);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_REVOKE, 61, &previous), 0);
        assert_int_equal(previous, STORE_STATE_REVOKED);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 62, &previous), 0);
        assert_int_equal(previous, STORE_STATE_REVOKED);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_string_equal(m.decided_by, "operator");
        assert_true(m.decided_at.is_set);
        assert_int_equal(m.decided_at.value, 62);
        store_machine_done(&m);
        store_history_done(&history);

        report = make_report(M1, 1, "ok", body);
        assert_int_equal(store_add_report(store, &report, 70, &duplicate), 0);

        /* Reset: keys and conflict forgotten, reports kept; approving it now is refused. */
        assert_int_equal(store_decide(store, M1, STORE_DECISION_RESET, 80, &previous), 0);
        assert_int_equal(previous, STORE_STATE_APPROVED);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_int_equal(trust.state, STORE_STATE_UNENROLLED);
        assert_false(trust.has_keys);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 81, NULL), -ENOKEY);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_REVOKE, 81, NULL), -ENOKEY);
        assert_int_equal(store_add_report(store, &report, 82, &duplicate), -EPERM);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_false(m.conflict_at.is_set);
        assert_null(m.sign_key);
        assert_int_equal(history.total, 1);
        store_machine_done(&m);
        store_history_done(&history);

        /* Re-enrolled with a new key: seq 1 again is a new report, not a duplicate. */
        enroll_with(store, M1, KEY_B, NULL, 0, STORE_STATE_PENDING);
        report = make_report(M1, 1, "started", body);
        report.sign_key = KEY_B;
        assert_int_equal(store_add_report(store, &report, 90, &duplicate), 0);
        assert_false(duplicate);
        /* A report under the old key is refused. */
        report.sign_key = KEY_A;
        assert_int_equal(store_add_report(store, &report, 91, &duplicate), -EPERM);
}

/* A database as nixprov 0.1 (schema 1) wrote it: its machines and reports survive the
 * migration, in their order, and the machines can enroll. */
static void test_migrates_schema_1(void **state)
{
        _cleanup_free_ char *path = in_dir("v1.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_machine_list list;
        struct store_machine m, *listed;
        struct store_history history;
        sqlite3 *db;
        (void)state;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(
                db,
                "CREATE TABLE machines (machine_id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL "
                "DEFAULT 'unenrolled', first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
                "CREATE TABLE reports (machine_id TEXT NOT NULL REFERENCES machines (machine_id), "
                "seq INTEGER NOT NULL CHECK (seq >= 0), time INTEGER NOT NULL, received INTEGER "
                "NOT NULL, phase TEXT NOT NULL, status TEXT NOT NULL, serial INTEGER, body TEXT "
                "NOT NULL, PRIMARY KEY (machine_id, seq));"
                "INSERT INTO machines VALUES ('" M1 "', 'unenrolled', 10, 30);"
                "INSERT INTO machines VALUES ('" M2 "', 'unenrolled', 11, 11);"
                /* Received out of order: schema 1 ordered by seq. */
                "INSERT INTO reports VALUES ('" M1 "', 2, 1800000002, 30, 'rebuild', 'ok', 7, "
                "'{\"machine_id\":\"" M1 "\",\"seq\":2}');"
                "INSERT INTO reports VALUES ('" M1 "', 1, 1800000001, 20, 'fetch', 'started', "
                "NULL, '{\"machine_id\":\"" M1 "\",\"seq\":1}');"
                "INSERT INTO reports VALUES ('" M2 "', 0, 1800000000, 11, 'identify', 'failed', "
                "NULL, '{\"machine_id\":\"" M2 "\",\"seq\":0}');"
                "PRAGMA user_version = 1;",
                NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store_list_machines(store, NULL, &list), 0);
        assert_int_equal(list.n_machines, 2);
        listed = &list.machines[0];
        assert_string_equal(listed->machine_id, M1);
        assert_int_equal(listed->state, STORE_STATE_UNENROLLED);
        assert_string_equal(listed->status, "ok");
        assert_true(listed->serial.is_set);
        assert_int_equal(listed->serial.value, 7);
        assert_int_equal(listed->reports, 2);
        assert_int_equal(listed->first_seen, 10);
        assert_null(listed->sign_key);
        assert_null(listed->hostname);
        assert_string_equal(list.machines[1].status, "failed");
        store_machine_list_done(&list);

        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_int_equal(history.n_entries, 2);
        assert_string_equal(history.entries[0].body, "{\"machine_id\":\"" M1 "\",\"seq\":1}");
        assert_string_equal(history.entries[1].body, "{\"machine_id\":\"" M1 "\",\"seq\":2}");
        store_machine_done(&m);
        store_history_done(&history);

        /* An old machine enrolls as a new one, and its reports are kept. */
        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_int_equal(history.total, 2);
        assert_int_equal(m.first_seen, 10);
        store_machine_done(&m);
        store_history_done(&history);
        store = store_close(store);

        /* At version 2 now, and opened again without another migration. */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        {
                sqlite3_stmt *stmt;

                assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL),
                                 SQLITE_OK);
                assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
                assert_int_equal(sqlite3_column_int(stmt, 0), STORE_SCHEMA_VERSION);
                sqlite3_finalize(stmt);
        }
        sqlite3_close(db);
        assert_int_equal(store_open(path, &store), 0);
}

/* The quotas: a pending machine keeps its newest pending_reports, an approved one its newest
 * history_reports within history_bytes (the newest always), and the count of what was deleted is
 * kept. */
static void expect_history(struct store *store, const char *machine_id, const char *seqs,
                           int64_t trimmed)
{
        struct store_machine m;
        struct store_history history;
        char got[256] = "";

        assert_int_equal(store_get_machine(store, machine_id, NULL, &m, &history), 0);
        for (size_t i = 0; i < history.n_entries; i++) {
                const char *p = strstr(history.entries[i].body, "\"seq\":");

                assert_non_null(p);
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%lld", i ? " " : "",
                         strtoll(p + 6, NULL, 10));
        }
        assert_string_equal(got, seqs);
        assert_int_equal(m.reports, (int64_t)history.n_entries);
        assert_int_equal(m.reports_trimmed, trimmed);
        store_machine_done(&m);
        store_history_done(&history);
}

static void add_reports(struct store *store, const char *machine_id, uint64_t from, uint64_t to)
{
        char body[256];
        bool duplicate;

        for (uint64_t seq = from; seq <= to; seq++) {
                struct store_report report = make_report(machine_id, seq, "ok", body);

                assert_int_equal(store_add_report(store, &report, 60, &duplicate), 0);
                assert_false(duplicate);
        }
}

static void test_quotas_trim_oldest(void **state)
{
        _cleanup_free_ char *path = in_dir("quotas.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_limits limits = {.history_reports = 4,
                                      .history_bytes = 1 << 20,
                                      .pending_reports = 2,
                                      .pending_machines = 10};
        struct store_report sized;
        char body[256];
        enum store_state previous;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store->limits.pending_reports, STORE_PENDING_REPORTS_DEFAULT);
        limits.history_reports = 0;
        assert_int_equal(store_set_limits(store, &limits), -EINVAL);
        limits.history_reports = 4;
        assert_int_equal(store_set_limits(store, &limits), 0);

        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        add_reports(store, M1, 1, 5);
        expect_history(store, M1, "4 5", 3);

        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 70, &previous), 0);
        add_reports(store, M1, 6, 8);
        expect_history(store, M1, "5 6 7 8", 4);

        /* Every body here has the same size: room for two and a byte. */
        sized = make_report(M1, 9, "ok", body);
        limits.history_bytes = (int64_t)sized.body_size * 2 + 1;
        assert_int_equal(store_set_limits(store, &limits), 0);
        add_reports(store, M1, 9, 9);
        expect_history(store, M1, "8 9", 7);

        /* A limit below one report keeps the newest. */
        limits.history_bytes = 1;
        assert_int_equal(store_set_limits(store, &limits), 0);
        add_reports(store, M1, 10, 10);
        expect_history(store, M1, "10", 9);

        /* pending_reports 0: a pending machine's reports are not kept, and counted. */
        limits = (struct store_limits){
            .history_reports = 4, .history_bytes = 1 << 20, .pending_machines = 10};
        assert_int_equal(store_set_limits(store, &limits), 0);
        enroll_with(store, M2, KEY_A, NULL, 0, STORE_STATE_PENDING);
        add_reports(store, M2, 1, 3);
        expect_history(store, M2, "", 3);
        expect_history(store, M1, "10", 9);

        /* Reset and enrolled again with another key: the pending device's reports are trimmed,
         * not those its machine stored before under the old key. */
        assert_int_equal(store_decide(store, M1, STORE_DECISION_RESET, 80, &previous), 0);
        enroll_with(store, M1, KEY_B, NULL, 0, STORE_STATE_PENDING);
        for (uint64_t seq = 1; seq <= 3; seq++) {
                struct store_report report = make_report(M1, seq, "ok", body);
                bool duplicate;

                report.sign_key = KEY_B;
                assert_int_equal(store_add_report(store, &report, 90, &duplicate), 0);
        }
        expect_history(store, M1, "10", 12);
}

/* Pages: machines after a cursor, reports after a cursor, and a page of history that ends
 * when its bodies pass STORE_PAGE_BYTES_MAX. */
static void test_pages(void **state)
{
        _cleanup_free_ char *path = in_dir("pages.db");
        _cleanup_free_ char *big = NULL;
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_page page = {.limit = 1};
        struct store_machine_list list;
        struct store_history history;
        struct store_machine m;
        size_t big_size = 256 * 1024, n = STORE_PAGE_BYTES_MAX / (256 * 1024);
        bool duplicate;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        enroll_with(store, M1, KEY_A, "policy", 0, STORE_STATE_APPROVED);
        enroll_with(store, M2, KEY_A, "policy", 0, STORE_STATE_APPROVED);
        assert_int_equal(store_list_machines(store, &page, &list), 0);
        assert_int_equal(list.n_machines, 1);
        assert_string_equal(list.machines[0].machine_id, M1);
        assert_true(list.more);
        store_machine_list_done(&list);
        page.after_machine = M1;
        assert_int_equal(store_list_machines(store, &page, &list), 0);
        assert_int_equal(list.n_machines, 1);
        assert_string_equal(list.machines[0].machine_id, M2);
        assert_false(list.more);
        store_machine_list_done(&list);

        add_reports(store, M1, 1, 5);
        page = (struct store_page){.limit = 2};
        assert_int_equal(store_get_machine(store, M1, &page, &m, &history), 0);
        assert_int_equal(history.n_entries, 2);
        assert_true(history.more);
        assert_int_equal(history.total, 5);
        assert_non_null(strstr(history.entries[0].body, "\"seq\":1,"));
        page.after_report = history.entries[1].id;
        store_machine_done(&m);
        store_history_done(&history);
        page.limit = 100;
        assert_int_equal(store_get_machine(store, M1, &page, &m, &history), 0);
        assert_int_equal(history.n_entries, 3);
        assert_false(history.more);
        assert_non_null(strstr(history.entries[0].body, "\"seq\":3,"));
        store_machine_done(&m);
        store_history_done(&history);

        /* n + 1 reports of 256 KiB: the first page holds the n that fit. */
        big = malloc(big_size);
        assert_non_null(big);
        /* A JSON object, as every stored report is (the store reads members of the bodies). */
        memset(big, 'x', big_size);
        memcpy(big, "{\"x\":\"", 6);
        memcpy(big + big_size - 2, "\"}", 2);
        for (uint64_t seq = 1; seq <= n + 1; seq++) {
                char body[256];
                struct store_report report = make_report(M2, seq, "ok", body);

                report.body = big;
                report.body_size = big_size;
                assert_int_equal(store_add_report(store, &report, 60, &duplicate), 0);
        }
        assert_int_equal(store_get_machine(store, M2, NULL, &m, &history), 0);
        assert_int_equal(history.n_entries, n);
        assert_true(history.more);
        store_machine_done(&m);
        store_history_done(&history);
}

/* At most pending_machines pending: one more is refused, nothing written; an approved one or
 * the same pending one again passes. Purging deletes pending machines last seen before a time,
 * with their reports; a dry run deletes nothing. */
static void test_pending_cap_and_purge(void **state)
{
        _cleanup_free_ char *path = in_dir("pending.db");
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_limits limits = {.history_reports = 10,
                                      .history_bytes = 1 << 20,
                                      .pending_reports = 5,
                                      .pending_machines = 1};
        struct store_id_list ids;
        struct store_machine m;
        struct store_history history;
        struct store_trust trust;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store->limits.pending_machines, STORE_PENDING_MACHINES_DEFAULT);
        assert_int_equal(store_set_limits(store, &limits), 0);
        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        enroll_with(store, M2, KEY_A, NULL, -EUSERS, STORE_STATE_PENDING);
        assert_int_equal(store_get_trust(store, M2, &trust), -ENOENT);
        enroll_with(store, M1, KEY_A, NULL, 0, STORE_STATE_PENDING);
        enroll_with(store, M2, KEY_A, "policy", 0, STORE_STATE_APPROVED);
        add_reports(store, M1, 1, 2);
        add_reports(store, M2, 1, 2);

        /* Enrolled and reported at 50 and 60. */
        assert_int_equal(store_purge_pending(store, 60, false, &ids), 0);
        assert_int_equal(ids.n_ids, 0);
        store_id_list_done(&ids);
        assert_int_equal(store_purge_pending(store, 61, true, &ids), 0);
        assert_int_equal(ids.n_ids, 1);
        assert_string_equal(ids.ids[0], M1);
        store_id_list_done(&ids);
        expect_history(store, M1, "1 2", 0);
        assert_int_equal(store_purge_pending(store, 61, false, &ids), 0);
        assert_int_equal(ids.n_ids, 1);
        assert_string_equal(ids.ids[0], M1);
        store_id_list_done(&ids);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), -ENOENT);
        expect_history(store, M2, "1 2", 0);
        /* Room again for a pending machine. */
        enroll_with(store, M1, KEY_B, NULL, 0, STORE_STATE_PENDING);
}

/* A replayed enrollment changes nothing, also after a reset; the approved keys survive it.
 */
static void test_enroll_freshness(void **state)
{
        struct store_enrollment e = {.machine_id = M1,
                                     .hostname = "edge-1",
                                     .facts = "{\"cpus\":2}",
                                     .sign_key = KEY_A,
                                     .box_key = KEY_C,
                                     .time = 500};
        struct store_machine m = {};
        struct store_history history = {};
        struct store_trust trust;
        struct store *store;
        char path[128];
        (void)state;

        snprintf(path, sizeof(path), "%s/fresh.db", dir);
        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store_enroll(store, &e, 50, NULL), 0);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_true(trust.has_enroll_time);
        assert_int_equal(trust.enroll_time, 500);
        assert_false(trust.has_approved_keys);
        /* The same second with the same keys: the device asking again. */
        e.hostname = "edge-1b";
        assert_int_equal(store_enroll(store, &e, 51, NULL), 0);
        /* Older: refused, nothing changed. */
        e.time = 499;
        e.hostname = "rolled-back";
        assert_int_equal(store_enroll(store, &e, 52, NULL), -ESTALE);
        assert_int_equal(store_get_machine(store, M1, NULL, &m, &history), 0);
        assert_string_equal(m.hostname, "edge-1b");
        assert_int_equal(m.last_seen, 51);
        store_machine_done(&m);
        store_history_done(&history);

        /* Approved by the operator: the keys are recorded; a reset keeps them and the time.
         */
        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 60, NULL), 0);
        assert_int_equal(store_decide(store, M1, STORE_DECISION_RESET, 61, NULL), 0);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_false(trust.has_keys);
        assert_true(trust.has_approved_keys);
        assert_string_equal(trust.approved_sign_key, KEY_A);
        assert_int_equal(trust.enroll_time, 500);
        /* The old enrollment replayed after the reset, or another key in the same second.
         */
        e.time = 500;
        assert_int_equal(store_enroll(store, &e, 62, NULL), -ESTALE);
        e.sign_key = KEY_B;
        assert_int_equal(store_enroll(store, &e, 62, NULL), -ESTALE);
        e.time = 499;
        assert_int_equal(store_enroll(store, &e, 62, NULL), -ESTALE);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_int_equal(trust.state, STORE_STATE_UNENROLLED);
        /* A newer one with new keys, approved by a policy: the approved keys stay the old.
         */
        e.time = 501;
        e.decided_by = "policy:machine-id";
        assert_int_equal(store_enroll(store, &e, 63, NULL), 0);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_int_equal(trust.state, STORE_STATE_APPROVED);
        assert_string_equal(trust.sign_key, KEY_B);
        assert_string_equal(trust.approved_sign_key, KEY_A);
        /* Until an operator approves it again. */
        assert_int_equal(store_decide(store, M1, STORE_DECISION_APPROVE, 64, NULL), 0);
        assert_int_equal(store_get_trust(store, M1, &trust), 0);
        assert_string_equal(trust.approved_sign_key, KEY_B);
        /* A machine first approved by a policy records the keys it had. */
        e.machine_id = M2;
        assert_int_equal(store_enroll(store, &e, 65, NULL), 0);
        assert_int_equal(store_get_trust(store, M2, &trust), 0);
        assert_true(trust.has_approved_keys);
        assert_string_equal(trust.approved_box_key, KEY_C);
        store_close(store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refuses_what_it_cannot_store),
            cmocka_unit_test(test_not_a_database),
            cmocka_unit_test(test_newer_schema_is_left_alone),
            cmocka_unit_test(test_new_database_is_private),
            cmocka_unit_test(test_reports_stored_once_and_kept),
            cmocka_unit_test(test_enroll_and_decide),
            cmocka_unit_test(test_migrates_schema_1),
            cmocka_unit_test(test_quotas_trim_oldest),
            cmocka_unit_test(test_pages),
            cmocka_unit_test(test_pending_cap_and_purge),
            cmocka_unit_test(test_enroll_freshness),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
