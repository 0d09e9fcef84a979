/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "forwarded.h"

static void test_normalize(void **state)
{
        static const struct {
                const char *input, *output;
        } cases[] = {
            {"127.0.0.1", "127.0.0.1"},
            {"::1", "::1"},
            {"::ffff:127.0.0.9", "127.0.0.9"},
            {"2001:DB8:0:0::1", "2001:db8::1"},
            {"", NULL},
            {"localhost", NULL},
            {"127.0.0.1 ", NULL},
            {"127.1", NULL},
            {"127.0.0.256", NULL},
            {"[::1]", NULL},
            {"::1%lo", NULL},
            {"198.51.100.1:80", NULL},
        };
        char out[FORWARDED_ADDRESS_MAX];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int r = forwarded_address_normalize(cases[i].input, out);

                if (!cases[i].output) {
                        assert_int_equal(r, -EINVAL);
                        continue;
                }
                assert_int_equal(r, 0);
                assert_string_equal(out, cases[i].output);
        }
        assert_int_equal(forwarded_address_normalize(NULL, out), -EINVAL);
}

static void test_client(void **state)
{
        static const char trusted[][FORWARDED_ADDRESS_MAX] = {"127.0.0.1", "10.0.0.2", "::1"};
        static const struct {
                const char *header;
                int result;
                const char *client;
        } cases[] = {
            {"198.51.100.7", 0, "198.51.100.7"},
            {"198.51.100.1, 198.51.100.7", 0, "198.51.100.7"},
            {"198.51.100.1,198.51.100.7, 10.0.0.2", 0, "198.51.100.7"},
            {"198.51.100.1, 198.51.100.7 ,\t::1\t", 0, "198.51.100.7"},
            {"not-an-address, 198.51.100.7", 0, "198.51.100.7"},
            {"::ffff:198.51.100.7", 0, "198.51.100.7"},
            {"2001:db8::7, 127.0.0.1", 0, "2001:db8::7"},
            /* hostile or useless */
            {"", -EINVAL, NULL},
            {" ", -EINVAL, NULL},
            {",", -EINVAL, NULL},
            {"198.51.100.7,", -EINVAL, NULL},
            {"198.51.100.7, not-an-address", -EINVAL, NULL},
            {"198.51.100.7, , 10.0.0.2", -EINVAL, NULL},
            {"198.51.100.7:1234", -EINVAL, NULL},
            {"[2001:db8::7]", -EINVAL, NULL},
            {"198.51.100.7;proto=https", -EINVAL, NULL},
            {"1111111111111111111111111111111111111111111111111111111111", -EINVAL, NULL},
            {"10.0.0.2", -ENOENT, NULL},
            {"127.0.0.1, 10.0.0.2, ::1", -ENOENT, NULL},
        };
        char out[FORWARDED_ADDRESS_MAX];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int r = forwarded_client(cases[i].header, trusted, 3, out);

                assert_int_equal(r, cases[i].result);
                if (r == 0)
                        assert_string_equal(out, cases[i].client);
        }
        /* Without trusted proxies, the right-most item. */
        assert_int_equal(forwarded_client("198.51.100.1, 127.0.0.1", NULL, 0, out), 0);
        assert_string_equal(out, "127.0.0.1");
        assert_int_equal(forwarded_client(NULL, trusted, 3, out), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normalize),
            cmocka_unit_test(test_client),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
