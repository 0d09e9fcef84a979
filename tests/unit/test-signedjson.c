/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "signedjson.h"

static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
static uint8_t other_pk[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];

static int setup(void **state)
{
        (void)state;
        if (sodium_init() < 0)
                return -1;
        crypto_sign_keypair(pk, sk);
        crypto_sign_keypair(other_pk, other_sk);
        return 0;
}

static void test_sign_refuses(void **state)
{
        static const char *const bad[] = {"", "{}", "[1]", "{\"a\":1", "\"x\"", "{\"a\":1}\n"};
        char *body = (char *)1;
        size_t size;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(signedjson_sign(SIGNEDJSON_CONTEXT_REPORT, bad[i], strlen(bad[i]),
                                                 sk, &body, &size),
                                 -EINVAL);
        assert_int_equal(signedjson_sign("", "{\"a\":1}", 7, sk, &body, &size), -EINVAL);
        assert_int_equal(signedjson_sign("a\nb", "{\"a\":1}", 7, sk, &body, &size), -EINVAL);
        assert_ptr_equal(body, (char *)1);
}

static void test_round_trip(void **state)
{
        static const char json[] = "{\"machine_id\":\"0123\",\"seq\":7}";
        _cleanup_free_ char *body = NULL;
        size_t size;

        (void)state;
        assert_int_equal(
            signedjson_sign(SIGNEDJSON_CONTEXT_REPORT, json, strlen(json), sk, &body, &size), 0);
        assert_int_equal(size, strlen(body));
        assert_int_equal(size, strlen(json) - 1 + SIGNEDJSON_SUFFIX_SIZE);
        assert_memory_equal(body, json, strlen(json) - 1);
        assert_memory_equal(body + strlen(json) - 1, ",\"signature\":\"", 14);
        assert_string_equal(body + size - 2, "\"}");

        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size, pk), 0);
        /* Another key, another context. */
        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size, other_pk),
                         -EKEYREJECTED);
        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_ENROLL, body, size, pk),
                         -EKEYREJECTED);
}

/* Every single-byte change of a signed body is refused. */
static void test_every_byte(void **state)
{
        static const char json[] = "{\"machine_id\":\"0123\",\"seq\":7,\"phase\":\"fetch\"}";
        _cleanup_free_ char *body = NULL;
        size_t size;

        (void)state;
        assert_int_equal(
            signedjson_sign(SIGNEDJSON_CONTEXT_REPORT, json, strlen(json), sk, &body, &size), 0);
        for (size_t i = 0; i < size; i++)
                for (unsigned bit = 0; bit < 8; bit++) {
                        body[i] ^= (char)(1u << bit);
                        assert_int_not_equal(
                            signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size, pk), 0);
                        body[i] ^= (char)(1u << bit);
                }
        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size, pk), 0);
        /* Truncated or extended. */
        for (size_t n = 0; n < size; n++)
                assert_int_not_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, n, pk), 0);
}

static void test_unsigned_and_malformed(void **state)
{
        static const struct {
                const char *body;
                int error;
        } cases[] = {
            {"{\"machine_id\":\"0123\",\"seq\":7}", -ENOMSG},
            {"", -ENOMSG},
            {"{\"seq\":7,\"signature\":\"abc\"}", -EBADMSG},
            {"{\"seq\":7,\"signature\":"
             "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
             "A"
             "A!==\"}",
             -EBADMSG},
            {"{\"seq\":7,\"signature\":"
             "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
             "A"
             "AA==\"}",
             -EKEYREJECTED},
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, cases[i].body,
                                                   strlen(cases[i].body), pk),
                                 cases[i].error);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sign_refuses),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_every_byte),
            cmocka_unit_test(test_unsigned_and_malformed),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
