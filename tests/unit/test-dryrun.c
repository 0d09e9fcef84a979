/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dryrun.h"

static struct dryrun_summary parse_ok(const char *text)
{
        struct dryrun_summary s;

        assert_int_equal(dryrun_parse(text, strlen(text), &s), 0);
        return s;
}

static void test_nix_2_8(void **state)
{
        /* As Nix 2.8 (Debian 12) prints it. */
        struct dryrun_summary s =
            parse_ok("these 3 derivations will be built:\n"
                     "  /nix/store/ifpc7z12z511j5ghngi3whfxnfcpmzx4-nixprov-demo-a.drv\n"
                     "  /nix/store/l69b4967d8zw5hvv2lm32836ag18vi71-nixprov-demo-b.drv\n"
                     "  /nix/store/9dypna91lgh6ci8ga0vckhi9qpwb9fah-nixprov-demo-c.drv\n"
                     "these 12 paths will be fetched (35.47 MiB download, 180.02 MiB unpacked):\n"
                     "  /nix/store/0000000000000000000000000000000a-glibc-2.37\n");
        (void)state;

        assert_true(s.have_build && s.have_fetch);
        assert_int_equal(s.to_build, 3);
        assert_int_equal(s.to_fetch, 12);
        /* 35.47 MiB = 35 MiB + 47/100 MiB, rounded down */
        assert_int_equal(s.download_bytes, 35 * 1048576ULL + 47 * 1048576ULL / 100);
        assert_int_equal(s.unpacked_bytes, 180 * 1048576ULL + 2 * 1048576ULL / 100);
}

static void test_current_nix_and_singular(void **state)
{
        struct dryrun_summary s =
            parse_ok("this derivation will be built:\n  /nix/store/x.drv\r\n"
                     "this path will be fetched (512.5 KiB download, 2.0 GiB unpacked):\n"
                     "  /nix/store/y\n");
        (void)state;

        assert_int_equal(s.to_build, 1);
        assert_int_equal(s.to_fetch, 1);
        assert_int_equal(s.download_bytes, 512 * 1024 + 512);
        assert_int_equal(s.unpacked_bytes, 2ULL << 30);

        s = parse_ok("these 2 paths will be fetched (17 B download, 1 EiB unpacked):\n");
        assert_int_equal(s.download_bytes, 17);
        assert_int_equal(s.unpacked_bytes, 1ULL << 60);
        assert_false(s.have_build);
}

static void test_nothing_to_do_and_noise(void **state)
{
        struct dryrun_summary s = parse_ok("");
        (void)state;

        assert_false(s.have_build || s.have_fetch);
        s = parse_ok("warning: unknown setting 'foo'\n"
                     "don't know how to build these paths:\n  /nix/store/z\n"
                     "building the system configuration...\n");
        assert_int_equal(s.to_build + s.to_fetch, 0);
        /* Twice (nixos-rebuild may run two dry builds): they add up. */
        s = parse_ok("these 2 derivations will be built:\nthese 5 derivations will be built:\n");
        assert_int_equal(s.to_build, 7);
}

static void test_refused(void **state)
{
        static const char *const bad[] = {
            "these x derivations will be built:\n",
            "these 3 derivation will be built:\n",
            "this derivations will be built:\n",
            "these 3 derivations will be built: now\n",
            "these 2 paths will be fetched (1.0 MiB download):\n",
            "these 2 paths will be fetched (1.0 Mib download, 2 MiB unpacked):\n",
            "these 2 paths will be fetched (1. MiB download, 2 MiB unpacked):\n",
            "these 2 paths will be fetched (-1 MiB download, 2 MiB unpacked):\n",
            "these 2 paths will be fetched (1 MiB download, 2 MiB unpacked)\n",
            "these 2 paths will be fetched (0.1234567890 MiB download, 2 MiB unpacked):\n",
        };
        struct dryrun_summary s;
        (void)state;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(dryrun_parse(bad[i], strlen(bad[i]), &s), -EBADMSG);
        }
}

static void test_saturation_and_nul(void **state)
{
        const char nul[] = "these 2\0 derivations will be built:\nthis path will be built:\n";
        struct dryrun_summary s = parse_ok(
            "these 99999999999999999999999 derivations will be built:\n"
            "these 3 paths will be fetched (99999999999999999999 EiB download, 1 B unpacked):\n");
        uint64_t bytes;
        (void)state;

        assert_int_equal(s.to_build, UINT64_MAX);
        assert_int_equal(s.download_bytes, UINT64_MAX);
        assert_int_equal(s.unpacked_bytes, 1);
        /* A line with a NUL is not a header; "this path will be built:" is refused. */
        assert_int_equal(dryrun_parse(nul, sizeof(nul) - 1, &s), -EBADMSG);
        assert_int_equal(dryrun_parse(nul, 36, &s), 0);
        assert_false(s.have_build);
        assert_int_equal(dryrun_parse_size("3 KiB", &bytes, NULL), 0);
        assert_int_equal(bytes, 3072);
        assert_int_equal(dryrun_parse_size("3 KiBs", &bytes, NULL), -EINVAL);
        assert_int_equal(dryrun_parse_size("3KiB", &bytes, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nix_2_8),
            cmocka_unit_test(test_current_nix_and_singular),
            cmocka_unit_test(test_nothing_to_do_and_noise),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_saturation_and_nul),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
