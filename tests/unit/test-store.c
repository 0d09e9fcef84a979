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
            .seq = seq,
            .time = 1800000000,
            .phase = "fetch",
            .status = status,
            .body = body,
            .body_size = strlen(body),
        };
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
        json_t *machines, *machine, *m;
        char body[256];
        bool duplicate = true;
        (void)state;

        assert_int_equal(store_open(path, &store), 0);

        report = make_report(M1, 2, "started", body);
        report.has_serial = true;
        report.serial = 7;
        assert_int_equal(store_add_report(store, &report, 100, &duplicate), 0);
        assert_false(duplicate);
        assert_int_equal(store_add_report(store, &report, 101, &duplicate), 0);
        assert_true(duplicate);
        /* Out of order: seq 1 arrives after seq 2, and does not become the latest. */
        report = make_report(M1, 1, "failed", body);
        assert_int_equal(store_add_report(store, &report, 102, &duplicate), 0);
        assert_false(duplicate);
        report = make_report(M2, 0, "ok", body);
        assert_int_equal(store_add_report(store, &report, 103, &duplicate), 0);
        assert_false(duplicate);

        assert_int_equal(store_list_machines(store, &machines), 0);
        assert_int_equal(json_array_size(machines), 2);
        m = json_array_get(machines, 0);
        assert_string_equal(json_string_value(json_object_get(m, "machine_id")), M1);
        assert_string_equal(json_string_value(json_object_get(m, "state")), "unenrolled");
        assert_string_equal(json_string_value(json_object_get(m, "status")), "started");
        assert_int_equal(json_integer_value(json_object_get(m, "serial")), 7);
        assert_int_equal(json_integer_value(json_object_get(m, "reports")), 2);
        assert_int_equal(json_integer_value(json_object_get(m, "first_seen")), 100);
        assert_int_equal(json_integer_value(json_object_get(m, "last_seen")), 102);
        m = json_array_get(machines, 1);
        assert_true(json_is_null(json_object_get(m, "serial")));
        json_decref(machines);

        store = store_close(store);
        assert_null(store);

        /* Reopened: everything is still there, in seq order. */
        assert_int_equal(store_open(path, &store), 0);
        assert_int_equal(store_get_machine(store, M1, &machine), 0);
        assert_int_equal(json_array_size(json_object_get(machine, "reports")), 2);
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(json_object_get(machine, "reports"), 0), "seq")),
                         1);
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(json_object_get(machine, "reports"), 1), "seq")),
                         2);
        assert_false(json_is_true(json_object_get(machine, "truncated")));
        json_decref(machine);

        report = make_report(M1, 2, "started", body);
        assert_int_equal(store_add_report(store, &report, 104, &duplicate), 0);
        assert_true(duplicate);

        machine = NULL;
        assert_int_equal(store_get_machine(store, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", &machine),
                         -ENOENT);
        assert_null(machine);

        assert_int_equal(store_stats(store, &machines), 0);
        assert_int_equal(json_integer_value(json_object_get(machines, "machines")), 2);
        assert_int_equal(json_integer_value(json_object_get(machines, "reports")), 3);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(machines, "by_status"), "ok")), 1);
        json_decref(machines);
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
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
