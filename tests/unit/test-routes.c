/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http.h"
#include "routes.h"

static void test_machine_ids(void **state)
{
        static const struct {
                const char *id;
                bool valid;
        } cases[] = {
            {"", false},
            {"../../../../../../etc/passwd", false},
            {"0123456789ABCDEF0123456789ABCDEF", false},
            {"0123456789abcdef0123456789abcde", false},
            {"0123456789abcdef0123456789abcdef0", false},
            {"0123456789abcdef0123456789abcdeg", false},
            {"0123456789abcdef0123456789abcde/", false},
            {"0123456789abcdef0123456789abcde.", false},
            {"0123456789abcdef0123456789abcdef", true},
            {"ffffffffffffffffffffffffffffffff", true},
        };
        (void)state;

        assert_false(routes_machine_id_is_valid(NULL));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(routes_machine_id_is_valid(cases[i].id), cases[i].valid);
}

static void test_group_names(void **state)
{
        static const struct {
                const char *name;
                bool valid;
        } cases[] = {
            {"", false},
            {"..", false},
            {".hidden", false},
            {"-flag", false},
            {"_x", false},
            {"a/b", false},
            {"../secret", false},
            {"Web", false},
            {"web server", false},
            {"web%2f", false},
            {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, /* 65 */
            {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},   /* 64 */
            {"web", true},
            {"0", true},
            {"site-a.rack_2", true},
        };
        (void)state;

        assert_false(routes_group_name_is_valid(NULL));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(routes_group_name_is_valid(cases[i].name), cases[i].valid);
}

static void test_listen_addresses(void **state)
{
        static const struct {
                const char *listen;
                int r;
                uint16_t port;
        } cases[] = {
            {"", -EINVAL, 0},
            {"127.0.0.1", -EINVAL, 0},
            {"localhost:8470", -EINVAL, 0},
            {"127.0.0.1:", -EINVAL, 0},
            {"127.0.0.1:65536", -EINVAL, 0},
            {"127.0.0.1:-1", -EINVAL, 0},
            {"127.0.0.1:08470", -EINVAL, 0},
            {"127.0.0.1:84 70", -EINVAL, 0},
            {"::1:8470", -EINVAL, 0},
            {"[::1]8470", -EINVAL, 0},
            {"[127.0.0.1]:8470", -EINVAL, 0},
            {":8470", -EINVAL, 0},
            {"127.0.0.1:0", 0, 0},
            {"127.0.0.1:8470", 0, 8470},
            {"0.0.0.0:65535", 0, 65535},
            {"[::1]:8470", 0, 8470},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct http_listen listen = {.port = 1};

                assert_int_equal(http_listen_parse(cases[i].listen, &listen), cases[i].r);
                if (cases[i].r == 0)
                        assert_int_equal(listen.port, cases[i].port);
                else
                        assert_int_equal(listen.port, 1); /* untouched on failure */
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_machine_ids),
            cmocka_unit_test(test_group_names),
            cmocka_unit_test(test_listen_addresses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
