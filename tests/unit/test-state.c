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

#include "fileio.h"
#include "state.h"
#include "util.h"

static char dir[] = "/tmp/nixprov-test-state-XXXXXX";

static void put(const char *text)
{
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/%s", dir, STATE_APPLIED_FILE) > 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600, 0), 0);
}

static void test_damaged_state_is_an_error(void **state)
{
        static const char *const damaged[] = {
            "",
            "serial 7\n",
            "applied-at 5\nserial 7\n",
            "serial -7\napplied-at 5\n",
            "serial 7\napplied-at 5\nextra 1\n",
            "serial 7\napplied-at 99999999999999999999\n",
            "serial 7\napplied-at 9223372036854775808\n",
            "serial07\napplied-at 5\n",
            "serial 7\0\napplied-at 5\n",
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(damaged); i++) {
                struct agent_state s = {.applied_serial = 42};
                _cleanup_free_ char *path = NULL;

                assert_true(asprintf(&path, "%s/%s", dir, STATE_APPLIED_FILE) > 0);
                /* the NUL case needs its real length */
                size_t n = i == ELEMENTSOF(damaged) - 1 ? sizeof("serial 7\0\napplied-at 5\n") - 1
                                                        : strlen(damaged[i]);
                assert_int_equal(write_file_atomic(path, damaged[i], n, 0600, 0), 0);
                if (state_load(dir, &s) != -EBADMSG)
                        fail_msg("case %zu was accepted", i);
                assert_true(s.applied_serial == 42);
        }
}

static void test_missing_state_is_a_new_device(void **state)
{
        struct agent_state s = {.have_applied = true};
        (void)state;

        assert_int_equal(state_load("/nonexistent/nixprov-state", &s), 0);
        assert_false(s.have_applied);
}

static void test_round_trip(void **state)
{
        struct agent_state in = {
            .have_applied = true, .applied_serial = UINT64_MAX, .applied_time = 1801353600};
        struct agent_state out = {};
        _cleanup_free_ char *path = NULL;
        struct stat st;
        (void)state;

        assert_int_equal(state_save(dir, &in), 0);
        assert_int_equal(state_load(dir, &out), 0);
        assert_true(out.have_applied);
        assert_true(out.applied_serial == UINT64_MAX);
        assert_int_equal(out.applied_time, 1801353600);

        assert_true(asprintf(&path, "%s/%s", dir, STATE_APPLIED_FILE) > 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        put("serial 3\napplied-at 4\n");
        assert_int_equal(state_load(dir, &out), 0);
        assert_true(out.applied_serial == 3);
        assert_int_equal(out.applied_time, 4);
}

static void put_update(const char *text)
{
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/%s", dir, STATE_UPDATE_FILE) > 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600, 0), 0);
}

static void test_update(void **state)
{
        struct update_state in = {.serial = 5,
                                  .time = 1801353600,
                                  .have_previous_serial = true,
                                  .previous_serial = 4,
                                  .previous_time = 17},
                            out = {};
        static const char *const damaged[] = {
            "serial 5\n",                        /* no outcome */
            "serial 5\noutcome x\nserial\n",     /* no value */
            "serial five\noutcome x\n",          /* not a number */
            "serial 5\noutcome x\nsurprise 1\n", /* unknown key */
            "serial 5\noutcome x\ntime 9223372036854775808\n",
        };
        (void)state;

        assert_int_equal(state_update_load(dir, &out), 0);
        assert_false(out.have);
        strcpy(in.outcome, "rolled-back");
        strcpy(in.previous, "/nix/store/aaaa-nixos-system-a");
        strcpy(in.system, "/nix/store/bbbb-nixos-system-b");
        strcpy(in.cause, "health check failed:\ntcp 22");
        assert_int_equal(state_update_save(dir, &in), 0);
        assert_int_equal(state_update_load(dir, &out), 0);
        assert_true(out.have);
        assert_true(out.serial == 5);
        assert_string_equal(out.outcome, "rolled-back");
        assert_int_equal(out.time, 1801353600);
        assert_true(out.have_previous_serial && out.previous_serial == 4);
        assert_int_equal(out.previous_time, 17);
        assert_string_equal(out.previous, "/nix/store/aaaa-nixos-system-a");
        assert_string_equal(out.system, "/nix/store/bbbb-nixos-system-b");
        assert_string_equal(out.booted, "");
        assert_string_equal(out.cause, "health check failed: tcp 22"); /* one line */
        strcpy(in.outcome, "two words");
        assert_int_equal(state_update_save(dir, &in), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(damaged); i++) {
                put_update(damaged[i]);
                if (state_update_load(dir, &out) != -EBADMSG)
                        fail_msg("case %zu was accepted", i);
        }
}

static void put_etag(const char *text)
{
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/%s", dir, STATE_ETAG_FILE) > 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600, 0), 0);
}

static void test_etag(void **state)
{
        static const char *const damaged[] = {
            "",
            "serial 1\n",
            "etag \"a\"\nserial 1\n",
            "serial x\netag \"a\"\n",
            "serial 1\netag \"a b\"\n",
            "serial 1\netag \n",
            "serial 1\netag \"a\"",
            "serial 1\netag \"a\"\nmore\n",
        };
        char etag[STATE_ETAG_MAX], long_tag[STATE_ETAG_MAX + 1];
        _cleanup_free_ char *path = NULL;
        uint64_t serial;
        struct stat st;

        (void)state;
        assert_true(asprintf(&path, "%s/%s", dir, STATE_ETAG_FILE) > 0);
        (void)unlink(path);
        assert_int_equal(state_load_etag(dir, &serial, etag), -ENOENT);

        assert_int_equal(state_save_etag(dir, 7, "W/\"5f-1a\""), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(state_load_etag(dir, &serial, etag), 0);
        assert_true(serial == 7);
        assert_string_equal(etag, "W/\"5f-1a\"");

        for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
                put_etag(damaged[i]);
                assert_int_equal(state_load_etag(dir, &serial, etag), -EBADMSG);
        }
        assert_int_equal(state_save_etag(dir, 1, ""), -EINVAL);
        assert_int_equal(state_save_etag(dir, 1, "\"a\nb\""), -EINVAL);
        memset(long_tag, 'a', sizeof(long_tag) - 1);
        long_tag[sizeof(long_tag) - 1] = '\0';
        assert_int_equal(state_save_etag(dir, 1, long_tag), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_damaged_state_is_an_error),
            cmocka_unit_test(test_missing_state_is_a_new_device),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_update),
            cmocka_unit_test(test_etag),
        };
        int r;

        if (!mkdtemp(dir))
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
        return r;
}
