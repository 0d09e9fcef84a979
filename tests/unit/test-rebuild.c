/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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
#include "rebuild.h"
#include "util.h"

static void argv_freep(char ***p)
{
        *p = rebuild_argv_free(*p);
}

static void assert_strv_equal(char **got, const char *const *want)
{
        size_t i;

        for (i = 0; want[i]; i++) {
                assert_non_null(got[i]);
                assert_string_equal(got[i], want[i]);
        }
        assert_null(got[i]);
}

static void test_default_argv(void **state)
{
        static const struct {
                const char *action, *flake;
        } refused[] = {
            {NULL, NULL},      {"", NULL},     {"dry-activate", NULL}, {"--flake", NULL},
            {"switch ", NULL}, {"switch", ""}, {"switch", "-I"},       {"switch", "--impure"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                char **argv = (char **)0x1;

                assert_int_equal(rebuild_default_argv(refused[i].action, refused[i].flake, &argv),
                                 -EINVAL);
                assert_ptr_equal(argv, (char **)0x1); /* untouched on failure */
        }

        {
                _cleanup_(argv_freep) char **argv = NULL;

                assert_int_equal(rebuild_default_argv("switch", NULL, &argv), 0);
                assert_strv_equal(argv,
                                  (const char *const[]){"nixos-rebuild", "switch", "--log-format",
                                                        "internal-json", NULL});
        }
        {
                _cleanup_(argv_freep) char **argv = NULL;

                assert_int_equal(
                    rebuild_default_argv("boot", "git+https://git.example.org/f#edge", &argv), 0);
                assert_strv_equal(argv,
                                  (const char *const[]){"nixos-rebuild", "boot", "--flake",
                                                        "git+https://git.example.org/f#edge",
                                                        "--log-format", "internal-json", NULL});
        }
}

static void test_environment(void **state)
{
        _cleanup_(argv_freep) char **envp = NULL;
        _cleanup_free_ char *big = malloc(REBUILD_NIX_CONFIG_MAX + 2);
        (void)state;

        assert_non_null(big);
        memset(big, 'x', REBUILD_NIX_CONFIG_MAX + 1);
        big[REBUILD_NIX_CONFIG_MAX + 1] = '\0';
        assert_int_equal(rebuild_environment(big, NULL, NULL, &envp), -E2BIG);
        assert_int_equal(rebuild_environment(NULL, "", NULL, &envp), -EINVAL);
        assert_null(envp);

        big[REBUILD_NIX_CONFIG_MAX] = '\0';
        assert_int_equal(rebuild_environment(big, NULL, NULL, &envp), 0);
        envp = rebuild_argv_free(envp);

        setenv("NIXPROV_SECRET_MARKER", "secret", 1);
        assert_int_equal(rebuild_environment("substituters =\nmax-jobs = 2\n", NULL, NULL, &envp),
                         0);
        assert_strv_equal(
            envp, (const char *const[]){"PATH=" REBUILD_PATH_DEFAULT, "HOME=/root", "LANG=C.UTF-8",
                                        "NIX_CONFIG=substituters =\nmax-jobs = 2\n", NULL});
        envp = rebuild_argv_free(envp);

        assert_int_equal(rebuild_environment(NULL, "/x/bin", NULL, &envp), 0);
        assert_strv_equal(envp,
                          (const char *const[]){"PATH=/x/bin", "HOME=/root", "LANG=C.UTF-8", NULL});
        envp = rebuild_argv_free(envp);

        /* The builders' Host aliases: NIX_SSHOPTS, split by Nix on white space. */
        assert_int_equal(rebuild_environment("a = 1", "/x/bin", "/r/etc/nixprov/ssh_config", &envp),
                         0);
        assert_strv_equal(envp, (const char *const[]){
                                    "PATH=/x/bin", "HOME=/root", "LANG=C.UTF-8", "NIX_CONFIG=a = 1",
                                    "NIX_SSHOPTS=-F /r/etc/nixprov/ssh_config", NULL});
        envp = rebuild_argv_free(envp);
        assert_int_equal(rebuild_environment(NULL, NULL, "/a b/ssh_config", &envp), -EINVAL);
        assert_int_equal(rebuild_environment(NULL, NULL, "ssh_config", &envp), -EINVAL);
        assert_int_equal(rebuild_environment(NULL, NULL, "/x\n-o ProxyCommand=y", &envp), -EINVAL);
        assert_null(envp);
}

static void remove_tree(const char *dir)
{
        static const char *const entries[] = {"a/prog", "a/only-here", "b/prog", "a",
                                              "b",      "run.log",     ""};

        for (size_t i = 0; i < ELEMENTSOF(entries); i++) {
                _cleanup_free_ char *path = NULL;

                assert_true(asprintf(&path, "%s/%s", dir, entries[i]) > 0);
                (void)remove(path);
        }
}

static void make_file(const char *dir, const char *name, mode_t mode)
{
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        assert_int_equal(write_file_atomic(path, "#!/bin/sh\n", 10, mode, 0), 0);
}

static void test_find_program(void **state)
{
        char dir[] = "/tmp/test-rebuild.XXXXXX";
        _cleanup_free_ char *a = NULL, *b = NULL, *path = NULL, *want = NULL;
        char *file = NULL;
        (void)state;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&a, "%s/a", dir) > 0);
        assert_true(asprintf(&b, "%s/b", dir) > 0);
        assert_int_equal(mkdir(a, 0755), 0);
        assert_int_equal(mkdir(b, 0755), 0);
        make_file(a, "prog", 0644); /* not executable */
        make_file(b, "prog", 0755);
        make_file(a, "only-here", 0644);
        assert_true(asprintf(&want, "%s/prog", b) > 0);

        /* Empty entries (the working directory) are skipped, not searched. */
        assert_true(asprintf(&path, "::%s:%s:", a, b) > 0);
        assert_int_equal(rebuild_find_program("prog", path, &file), 0);
        assert_string_equal(file, want);
        free(file);
        file = NULL;

        assert_int_equal(rebuild_find_program("only-here", path, &file), -EACCES);
        assert_int_equal(rebuild_find_program("missing", path, &file), -ENOENT);
        assert_int_equal(rebuild_find_program("", path, &file), -ENOENT);
        /* A directory of that name is not a program. */
        assert_int_equal(rebuild_find_program("b", dir, &file), -ENOENT);
        assert_null(file);

        assert_int_equal(rebuild_find_program("./rel/prog", path, &file), 0);
        assert_string_equal(file, "./rel/prog");
        free(file);

        remove_tree(dir);
}

static void test_log_path(void **state)
{
        _cleanup_free_ char *path = NULL;

        char dir[] = "/tmp/nixprov-test-logpath-XXXXXX";
        (void)state;

        assert_int_equal(rebuild_log_path("/nonexistent/log", 7, 1700000000, &path), 0);
        assert_string_equal(path, "/nonexistent/log/rebuild-7-20231114T221320Z.log");

        /* A second attempt in the same second gets its own name. */
        assert_non_null(mkdtemp(dir));
        for (unsigned n = 1; n <= 3; n++) {
                _cleanup_free_ char *p = NULL, *expected = NULL;
                FILE *f;

                assert_int_equal(rebuild_log_path(dir, 7, 1700000000, &p), 0);
                if (n == 1)
                        assert_true(asprintf(&expected, "%s/rebuild-7-20231114T221320Z.log", dir) >
                                    0);
                else
                        assert_true(asprintf(&expected, "%s/rebuild-7-20231114T221320Z-%u.log", dir,
                                             n) > 0);
                assert_string_equal(p, expected);
                assert_non_null(f = fopen(p, "w"));
                fclose(f);
        }
        remove_tree(dir);
}

static unsigned progress_calls;

static void count_progress(const struct nixlog_counts *c, uint64_t elapsed_ms, void *userdata)
{
        assert_ptr_equal(userdata, &progress_calls);
        assert_true(elapsed_ms >= 1000);
        assert_int_equal(c->substituted, 1);
        progress_calls++;
}

/* The outcomes, with small commands; test-rebuild.sh drives the real Nix. */
static void test_run(void **state)
{
        char dir[] = "/tmp/test-rebuild.XXXXXX";
        _cleanup_free_ char *log = NULL, *data = NULL;
        struct rebuild_options o = {.path = "/usr/bin:/bin"};
        struct rebuild_result res;
        size_t size;
        (void)state;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&log, "%s/run.log", dir) > 0);

        o.argv = (char *[]){"true", NULL};
        assert_int_equal(rebuild_run(&o, &res), 0);
        assert_true(res.started && res.exited && res.exit_status == 0 && !res.timed_out);

        o.argv = (char *[]){"sh", "-c", "echo 'error: it broke'; exit 3", NULL};
        assert_int_equal(rebuild_run(&o, &res), -EPROTO);
        assert_true(res.exited);
        assert_int_equal(res.exit_status, 3);
        assert_string_equal(res.last_error, "error: it broke");
        assert_string_equal(res.tail, "error: it broke\n");

        o.argv = (char *[]){"sh", "-c", "kill -KILL $$", NULL};
        assert_int_equal(rebuild_run(&o, &res), -EPROTO);
        assert_false(res.exited);
        assert_int_equal(res.signal, SIGKILL);
        assert_false(res.timed_out);

        o.argv = (char *[]){"nixprov-no-such-program", NULL};
        assert_int_equal(rebuild_run(&o, &res), -ENOENT);
        assert_true(res.exec_failed && !res.started);

        /* Found, but exec fails in the child: its errno comes back. */
        o.argv = (char *[]){"/dev/null", NULL};
        assert_int_equal(rebuild_run(&o, &res), -EACCES);
        assert_true(res.exec_failed && !res.started);
        assert_int_equal(res.exec_errno, EACCES);

        o.argv = (char *[]){NULL};
        assert_int_equal(rebuild_run(&o, &res), -EINVAL);

        o.argv = (char *[]){"sh", "-c", "sleep 5", NULL};
        o.timeout_sec = 1;
        assert_int_equal(rebuild_run(&o, &res), -ETIME);
        assert_true(res.timed_out && !res.killed);
        assert_int_equal(res.signal, SIGTERM);
        assert_true(res.duration_ms >= 1000 && res.duration_ms < 3000);
        o.timeout_sec = 0;

        /* Progress every second, the log file, and the counts. */
        o.argv = (char *[]){"sh", "-c",
                            "echo '@nix {\"action\":\"start\",\"id\":1,\"type\":108}'; "
                            "sleep 1.5; echo done >&2",
                            NULL};
        o.log_path = log;
        o.on_progress = count_progress;
        o.progress_interval_sec = 1;
        o.userdata = &progress_calls;
        assert_int_equal(rebuild_run(&o, &res), 0);
        assert_int_equal(progress_calls, 1);
        assert_int_equal(res.counts.substituted, 1);
        assert_int_equal(res.counts.lines, 2);
        assert_int_equal(read_file_bounded(log, 4096, &data, &size), 0);
        assert_string_equal(data, "@nix {\"action\":\"start\",\"id\":1,\"type\":108}\ndone\n");

        /* One log per attempt: an existing one is never reused. */
        assert_int_equal(rebuild_run(&o, &res), -EEXIST);
        assert_false(res.started);

        remove_tree(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_default_argv), cmocka_unit_test(test_environment),
            cmocka_unit_test(test_find_program), cmocka_unit_test(test_log_path),
            cmocka_unit_test(test_run),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
