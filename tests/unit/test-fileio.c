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
#include "machine_id.h"
#include "util.h"

static char dir[] = "/tmp/nixprov-test-fileio-XXXXXX";

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

static unsigned count_entries(void)
{
        _cleanup_free_ char *cmd = NULL;
        unsigned n = 0;
        FILE *f;

        assert_true(asprintf(&cmd, "ls -A '%s' | wc -l", dir) > 0);
        f = popen(cmd, "r");
        assert_non_null(f);
        assert_int_equal(fscanf(f, "%u", &n), 1);
        pclose(f);
        return n;
}

static void test_mode_is_exact_whatever_the_umask(void **state)
{
        _cleanup_free_ char *secret = in_dir("secret"), *public = in_dir("public");
        struct stat st;
        mode_t old;
        (void)state;

        old = umask(0);
        assert_int_equal(write_file_atomic(secret, "s", 1, 0600, 0), 0);
        umask(077);
        assert_int_equal(write_file_atomic(public, "p", 1, 0644, 0), 0);
        umask(old);

        assert_int_equal(stat(secret, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(public, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        unlink(secret);
        unlink(public);
}

static void test_exclusive_refuses_to_replace(void **state)
{
        _cleanup_free_ char *path = in_dir("key"), *data = NULL;
        (void)state;

        assert_int_equal(write_file_atomic(path, "first", 5, 0600, WRITE_FILE_EXCLUSIVE), 0);
        assert_int_equal(write_file_atomic(path, "second", 6, 0600, WRITE_FILE_EXCLUSIVE), -EEXIST);
        assert_int_equal(read_file_bounded(path, 100, &data, NULL), 0);
        assert_string_equal(data, "first");
        assert_int_equal(count_entries(), 1); /* no temporary file left behind */
        unlink(path);
}

static void test_keep_previous(void **state)
{
        _cleanup_free_ char *path = in_dir("nix.conf"), *previous = in_dir("nix.conf~");
        _cleanup_free_ char *a = NULL, *b = NULL;
        (void)state;

        assert_int_equal(write_file_atomic(path, "v1", 2, 0644, WRITE_FILE_KEEP_PREVIOUS), 0);
        assert_int_equal(access(previous, F_OK), -1); /* nothing to keep the first time */
        assert_int_equal(write_file_atomic(path, "v2", 2, 0644, WRITE_FILE_KEEP_PREVIOUS), 0);
        assert_int_equal(read_file_bounded(path, 100, &a, NULL), 0);
        assert_int_equal(read_file_bounded(previous, 100, &b, NULL), 0);
        assert_string_equal(a, "v2");
        assert_string_equal(b, "v1");
        unlink(path);
        unlink(previous);
}

static void test_symlink_is_not_followed(void **state)
{
        _cleanup_free_ char *target = in_dir("target"), *link_path = in_dir("link");
        _cleanup_free_ char *data = NULL;
        struct stat st;
        (void)state;

        /* Replacing a symlink replaces the link itself; the file it pointed to is untouched. */
        assert_int_equal(write_file_atomic(target, "target", 6, 0644, 0), 0);
        assert_int_equal(symlink(target, link_path), 0);
        assert_int_equal(write_file_atomic(link_path, "new", 3, 0600, 0), 0);
        assert_int_equal(read_file_bounded(target, 100, &data, NULL), 0);
        assert_string_equal(data, "target");
        assert_int_equal(lstat(link_path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        unlink(target);
        unlink(link_path);
}

static void test_failure_leaves_nothing(void **state)
{
        _cleanup_free_ char *path = in_dir("missing-dir/file");
        (void)state;

        assert_int_equal(write_file_atomic(path, "x", 1, 0644, 0), -ENOENT);
        assert_int_equal(count_entries(), 0);
}

static void test_temporary_names_and_leftovers(void **state)
{
        _cleanup_free_ char *tmp = NULL, *secret = NULL, *other = NULL, *keep = NULL;
        _cleanup_free_ char *final = in_dir("netrc"), *tilde = in_dir("netrc~");
        int fd = -EBADF;
        (void)state;

        assert_int_equal(temporary_path("/etc/nix/nixprov-netrc", &tmp), 0);
        assert_true(strncmp(tmp, "/etc/nix/.nixprov-netrc" FILEIO_TEMPORARY_MARK, 36) == 0);
        assert_int_equal(strlen(tmp), strlen("/etc/nix/.nixprov-netrc" FILEIO_TEMPORARY_MARK) + 8);
        assert_true(is_temporary_name(strrchr(tmp, '/') + 1));
        assert_false(is_temporary_name("nixprov-netrc"));
        assert_false(is_temporary_name("nixprov-netrc.tmp-0badf00d")); /* not ours */
        assert_false(is_temporary_name(".x" FILEIO_TEMPORARY_MARK "0badf00"));
        assert_false(is_temporary_name(".x" FILEIO_TEMPORARY_MARK "0badf00d~"));
        assert_false(is_temporary_name(FILEIO_TEMPORARY_MARK "0badf00d"));

        /* Two leftovers (a secret one, 0600, and another), and files that are not ones. */
        assert_int_equal(atomic_write_prepare(final, "token", 5, 0600, &fd, &secret), 0);
        safe_close(fd);
        assert_int_equal(atomic_write_prepare(final, "conf", 4, 0644, &fd, &other), 0);
        safe_close(fd);
        assert_int_equal(write_file_atomic(final, "x", 1, 0600, 0), 0);
        assert_int_equal(write_file_atomic(tilde, "x", 1, 0600, 0), 0);
        assert_int_equal(count_entries(), 4);
        assert_int_equal(remove_temporary_files(dir, REMOVE_TEMPORARY_SECRET), 1);
        assert_int_equal(access(secret, F_OK), -1);
        assert_int_equal(access(other, F_OK), 0);
        assert_int_equal(remove_temporary_files(dir, REMOVE_TEMPORARY_SECRET), 0);
        assert_int_equal(remove_temporary_files(dir, REMOVE_TEMPORARY_OTHER), 1);
        assert_int_equal(access(other, F_OK), -1);
        assert_int_equal(count_entries(), 2); /* netrc and netrc~ stay */
        keep = in_dir("missing");
        assert_int_equal(remove_temporary_files(keep, REMOVE_TEMPORARY_SECRET), 0);
        unlink(final);
        unlink(tilde);
}

static void test_mkdir_parents_and_root_join(void **state)
{
        _cleanup_free_ char *deep = in_dir("a/b/c"), *j1 = NULL, *j2 = NULL, *j3 = NULL;
        struct stat st;
        (void)state;

        mode_t old = umask(022);
        assert_int_equal(mkdir_parents(deep, 0700), 0);
        umask(old);
        assert_int_equal(mkdir_parents(deep, 0700), 0); /* idempotent */
        assert_int_equal(stat(deep, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        {
                _cleanup_free_ char *parent = in_dir("a/b");

                /* the parents it made are 0755, not the leaf's mode */
                assert_int_equal(stat(parent, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0755);
        }

        j1 = path_join_root("/", "/etc/nix/x");
        j2 = path_join_root("/sysroot/", "/etc/nix/x");
        j3 = path_join_root(NULL, "/etc");
        assert_string_equal(j1, "/etc/nix/x");
        assert_string_equal(j2, "/sysroot/etc/nix/x");
        assert_string_equal(j3, "/etc");
}

static void test_machine_id(void **state)
{
        static const struct {
                const char *input;
                int error;
                const char *id;
        } cases[] = {
            {"", -EINVAL, NULL},
            {"00000000000000000000000000000000", -EINVAL, NULL},
            {"4c4c4544004d3510804fb4c04f4d373", -EINVAL, NULL},   /* 31 digits */
            {"4c4c4544004d3510804fb4c04f4d37322", -EINVAL, NULL}, /* 33 */
            {"4c4c4544004d3510804fb4c04f4d373g", -EINVAL, NULL},
            {"4c4c4544-004d-3510-804f-b4c04f4d3732x", -EINVAL, NULL},
            {"4c4c4544x004d-3510-804f-b4c04f4d373", -EINVAL, NULL},
            {"4c4c4544004d3510804fb4c04f4d3732\n\n", -EINVAL, NULL},
            {"4c4c4544004d3510804fb4c04f4d3732", 0, "4c4c4544004d3510804fb4c04f4d3732"},
            {"4C4C4544004D3510804FB4C04F4D3732\n", 0, "4c4c4544004d3510804fb4c04f4d3732"},
            {"4C4C4544-004D-3510-804F-B4C04F4D3732", 0, "4c4c4544004d3510804fb4c04f4d3732"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char id[MACHINE_ID_STRING_MAX] = "untouched";
                int r = machine_id_normalize(cases[i].input, id);

                assert_int_equal(r, cases[i].error);
                assert_string_equal(id, r == 0 ? cases[i].id : "untouched");
        }
}

static void test_machine_id_read(void **state)
{
        _cleanup_free_ char *etc = in_dir("root/etc"), *dmi = in_dir("root/sys/class/dmi/id");
        _cleanup_free_ char *root = in_dir("root"), *mid = in_dir("root/etc/machine-id");
        _cleanup_free_ char *uuid = in_dir("root/sys/class/dmi/id/product_uuid");
        char id[MACHINE_ID_STRING_MAX];
        (void)state;

        assert_int_equal(mkdir_parents(etc, 0755), 0);
        assert_int_equal(machine_id_read(root, id), -ENOENT);

        /* systemd's placeholder falls through to DMI */
        assert_int_equal(write_file_atomic(mid, "uninitialized\n", 14, 0444, 0), 0);
        assert_int_equal(machine_id_read(root, id), -ENOENT);
        assert_int_equal(mkdir_parents(dmi, 0755), 0);
        assert_int_equal(
            write_file_atomic(uuid, "4C4C4544-004D-3510-804F-B4C04F4D3732\n", 37, 0444, 0), 0);
        assert_int_equal(machine_id_read(root, id), 0);
        assert_string_equal(id, "4c4c4544004d3510804fb4c04f4d3732");

        assert_int_equal(write_file_atomic(mid, "0123456789abcdef0123456789abcdef\n", 33, 0444, 0),
                         0);
        assert_int_equal(machine_id_read(root, id), 0);
        assert_string_equal(id, "0123456789abcdef0123456789abcdef");

        assert_int_equal(write_file_atomic(mid, "garbage\n", 8, 0444, 0), 0);
        assert_int_equal(machine_id_read(root, id), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_mode_is_exact_whatever_the_umask),
            cmocka_unit_test(test_exclusive_refuses_to_replace),
            cmocka_unit_test(test_keep_previous),
            cmocka_unit_test(test_symlink_is_not_followed),
            cmocka_unit_test(test_failure_leaves_nothing),
            cmocka_unit_test(test_temporary_names_and_leftovers),
            cmocka_unit_test(test_mkdir_parents_and_root_join),
            cmocka_unit_test(test_machine_id),
            cmocka_unit_test(test_machine_id_read),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
