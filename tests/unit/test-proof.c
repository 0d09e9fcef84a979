/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "proof.h"

#define M1 "0123456789abcdef0123456789abcdef"
#define M2 "fedcba9876543210fedcba9876543210"
#define TARGET "/v1/machines/" M1 "/profile?groups=edge,web"
#define NOW INT64_C(1800000000)

static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
static uint8_t other_pk[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];

static int verify_value(const char *value, const char *method, const char *target,
                        const char *machine_id, int64_t now, int64_t window)
{
        struct proof p;
        int r = proof_parse(value, strlen(value), &p);

        return r < 0 ? r : proof_verify(&p, pk, method, target, machine_id, now, window);
}

static void test_round_trip(void **state)
{
        char value[PROOF_VALUE_MAX];
        struct proof p;
        (void)state;

        assert_int_equal(proof_build(sk, "GET", TARGET, M1, NOW, value), 0);
        assert_int_equal(strlen(value), 3 + 32 + 1 + 10 + 1 + 88);
        assert_memory_equal(value, "v1 " M1 " 1800000000 ", 3 + 32 + 12);
        assert_int_equal(proof_parse(value, strlen(value), &p), 0);
        assert_string_equal(p.machine_id, M1);
        assert_int_equal(p.time, NOW);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW, 300), 0);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW + 300, 300), 0);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW - 300, 300), 0);
}

static void test_refusals(void **state)
{
        char value[PROOF_VALUE_MAX];
        struct proof p;
        (void)state;

        assert_int_equal(proof_build(sk, "GET", TARGET, M1, NOW, value), 0);
        /* Stale or from the future. */
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW + 301, 300), -ETIME);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW - 301, 300), -ETIME);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW + 1, 0), -ETIME);
        /* Another request, machine or key. */
        assert_int_equal(verify_value(value, "HEAD", TARGET, M1, NOW, 300), -EKEYREJECTED);
        assert_int_equal(verify_value(value, "GET", "/v1/machines/" M1 "/profile", M1, NOW, 300),
                         -EKEYREJECTED);
        assert_int_equal(verify_value(value, "GET",
                                      "/v1/machines/" M1 "/profile.minisig?groups=edge,web", M1,
                                      NOW, 300),
                         -EKEYREJECTED);
        assert_int_equal(verify_value(value, "GET", TARGET, M2, NOW, 300), -EXDEV);
        assert_int_equal(proof_parse(value, strlen(value), &p), 0);
        assert_int_equal(proof_verify(&p, other_pk, "GET", TARGET, M1, NOW, 300), -EKEYREJECTED);
        assert_int_equal(proof_build(other_sk, "GET", TARGET, M1, NOW, value), 0);
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW, 300), -EKEYREJECTED);
        /* A time changed after signing. */
        assert_int_equal(proof_build(sk, "GET", TARGET, M1, NOW, value), 0);
        value[3 + 32 + 1 + 9] = '1';
        assert_int_equal(verify_value(value, "GET", TARGET, M1, NOW, 300), -EKEYREJECTED);
        /* Bad arguments. */
        assert_int_equal(proof_build(sk, "GET", TARGET, "0123", NOW, value), -EINVAL);
        assert_int_equal(proof_build(sk, "GET", TARGET, M1, -1, value), -EINVAL);
        assert_int_equal(proof_build(sk, "", TARGET, M1, NOW, value), -EINVAL);
        assert_int_equal(proof_build(sk, "GET", "", M1, NOW, value), -EINVAL);
        assert_int_equal(proof_verify(&p, pk, "GET", TARGET, M1, NOW, -1), -EINVAL);
}

static void test_parse(void **state)
{
        static const char sig[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                  "AAAAAAAAAAAAAAAAAAAAAAA==";
        char good[PROOF_VALUE_MAX], bad[PROOF_VALUE_MAX + 8];
        const char *bad_forms[] = {
            "",
            "v1",
            "v2 " M1 " 1800000000 %s",
            "v1  " M1 " 1800000000 %s",
            "v1 " M1 "  1800000000 %s",
            "v1 " M1 " 1800000000  %s",
            "v1 " M1 " 1800000000 %s ",
            "V1 " M1 " 1800000000 %s",
            "v1 0123456789ABCDEF0123456789ABCDEF 1800000000 %s",
            "v1 0123456789abcdef0123456789abcdeg 1800000000 %s",
            "v1 " M1 " 01800000000 %s",
            "v1 " M1 " -1800000000 %s",
            "v1 " M1 " +1800000000 %s",
            "v1 " M1 " 18e8 %s",
            "v1 " M1 "  %s",
            "v1 " M1 " 9999999999999999999 %s",
            "v1 " M1 " 1800000000 %sA",
            "v1 " M1 " 1800000000 %.86s",
            "v1 " M1 " 1800000000 %.86sA=",
        };
        struct proof p;
        (void)state;

        snprintf(good, sizeof(good), "v1 " M1 " 1800000000 %s", sig);
        assert_int_equal(proof_parse(good, strlen(good), &p), 0);
        snprintf(good, sizeof(good), "v1 " M1 " 0 %s", sig);
        assert_int_equal(proof_parse(good, strlen(good), &p), 0);
        assert_int_equal(p.time, 0);
        for (size_t i = 0; i < sizeof(bad_forms) / sizeof(bad_forms[0]); i++) {
                snprintf(bad, sizeof(bad), bad_forms[i], sig);
                if (proof_parse(bad, strlen(bad), &p) != -EBADMSG)
                        fail_msg("parsed: '%s'", bad);
        }
        /* A NUL inside, and a base64 that is not 64 bytes' worth. */
        snprintf(good, sizeof(good), "v1 " M1 " 1800000000 %s", sig);
        good[10] = '\0';
        assert_int_equal(proof_parse(good, strlen(sig) + 3 + 32 + 12, &p), -EBADMSG);
        assert_int_equal(proof_parse(NULL, 0, &p), -EBADMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_parse),
        };
        if (sodium_init() < 0)
                return 1;
        crypto_sign_keypair(pk, sk);
        crypto_sign_keypair(other_pk, other_sk);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
