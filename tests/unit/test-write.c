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
#include "macro.h"
#include "util.h"
#include "write.h"

static char root[] = "/tmp/nixprov-test-write-XXXXXX";

static int setup(void **state)
{
        (void)state;
        return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
        (void)state;
        return system("rm -rf /tmp/nixprov-test-write-*") == 0 ? 0 : -1;
}

/* The content of ROOT/path, or NULL when there is no such file. */
static char *content(const char *path)
{
        _cleanup_free_ char *full = NULL;
        char *data = NULL;
        size_t size;

        assert_true(asprintf(&full, "%s%s", root, path) > 0);
        if (read_file_bounded(full, 4096, &data, &size) < 0)
                return NULL;
        return data;
}

static mode_t mode_of(const char *path)
{
        _cleanup_free_ char *full = NULL;
        struct stat st;

        assert_true(asprintf(&full, "%s%s", root, path) > 0);
        assert_int_equal(stat(full, &st), 0);
        return st.st_mode & 07777;
}

static void expect(const char *path, const char *text)
{
        _cleanup_free_ char *data = content(path);

        if (!text) {
                if (data)
                        print_error("%s exists\n", path);
                assert_null(data);
                return;
        }
        assert_non_null(data);
        assert_string_equal(data, text);
}

static void put(const char *path, const char *text, mode_t mode)
{
        _cleanup_free_ char *full = path_join_root(root, path);

        assert_int_equal(write_file_atomic(full, text, strlen(text), mode, 0), 0);
}

static void write_set(const struct write_item *items, size_t n, struct write_set *set)
{
        assert_int_equal(write_files(root, items, n, set, NULL), 0);
}

static void test_write_restore_forget(void **state)
{
        struct write_set set = {};
        const struct write_item first[] = {
            {"/etc/nix/a.conf", "a1", 2, 0644},
            {"/etc/nix/secret", "s1", 2, 0600},
        };
        const struct write_item second[] = {
            {"/etc/nix/a.conf", "a2", 2, 0644},
            {"/etc/nix/secret", "s2", 2, 0600},
        };
        const struct write_item drop[] = {
            {"/etc/nix/a.conf", "a3", 2, 0644},
            {"/etc/nix/secret", NULL, 0, 0600},
            {"/etc/nix/never-there", NULL, 0, 0600},
        };

        (void)state;
        write_set(first, ELEMENTSOF(first), &set);
        expect("/etc/nix/secret", "s1");
        assert_int_equal(mode_of("/etc/nix/secret"), 0600);
        assert_int_equal(mode_of("/etc/nix/a.conf"), 0644);
        assert_int_equal(write_forget_secrets(&set), 0);
        write_set_done(&set);

        /* A rotation: the old secret is kept as ~ until the set is final, then forgotten. */
        write_set(second, ELEMENTSOF(second), &set);
        expect("/etc/nix/secret", "s2");
        expect("/etc/nix/secret~", "s1");
        expect("/etc/nix/a.conf~", "a1");
        assert_int_equal(write_forget_secrets(&set), 0);
        expect("/etc/nix/secret~", NULL);
        expect("/etc/nix/a.conf~", "a1"); /* not a secret: kept for rollback */
        write_set_done(&set);

        /* Removed, then put back by a failed rebuild. */
        write_set(drop, ELEMENTSOF(drop), &set);
        expect("/etc/nix/secret", NULL);
        expect("/etc/nix/secret~", "s2");
        expect("/etc/nix/never-there", NULL);
        /* Nothing to remove, but in the set: its PATH~ may be left by an interrupted run. */
        assert_int_equal(set.n_files, 3);
        assert_true(set.files[1].removed && set.files[1].had_previous);
        assert_true(set.files[2].removed && !set.files[2].had_previous);
        assert_int_equal(write_restore(&set), 0);
        expect("/etc/nix/secret", "s2");
        expect("/etc/nix/a.conf", "a2");
        assert_int_equal(mode_of("/etc/nix/secret"), 0600);
        write_set_done(&set);

        /* Removed for good, right after a restore (which leaves PATH and PATH~ linked to one
         * file): no copy left. */
        write_set(drop, ELEMENTSOF(drop), &set);
        assert_int_equal(write_forget_secrets(&set), 0);
        expect("/etc/nix/secret", NULL);
        expect("/etc/nix/secret~", NULL);
        expect("/etc/nix/a.conf", "a3");
        write_set_done(&set);

        /* A run killed after moving the secret aside left only PATH~: the next run, which has
         * nothing to remove, still forgets it. */
        put("/etc/nix/secret~", "s2", 0600);
        write_set(drop, ELEMENTSOF(drop), &set);
        expect("/etc/nix/secret~", "s2");
        assert_int_equal(write_forget_secrets(&set), 0);
        expect("/etc/nix/secret~", NULL);
        write_set_done(&set);
}

static void test_limits(void **state)
{
        struct write_set set = {};
        struct write_item items[WRITE_MAX_FILES + 1];
        _cleanup_free_ char *failed = NULL;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(items); i++)
                items[i] = (struct write_item){"/x", "x", 1, 0644};
        assert_int_equal(write_files(root, items, ELEMENTSOF(items), &set, &failed), -E2BIG);
        expect("/x", NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_write_restore_forget),
            cmocka_unit_test(test_limits),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
