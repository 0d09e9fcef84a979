/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trust.h"
#include "util.h"

#define MACHINE "0123456789abcdef0123456789abcdef"
#define OTHER_MACHINE "fedcba9876543210fedcba9876543210"
#define T_2027 1801353600 /* 2027-01-31T00:00:00Z */
#define T_2026 1767225600 /* 2026-01-01T00:00:00Z */
#define T_2028 1830297600 /* 2028-01-01T00:00:00Z */

static struct minisign_public_key trusted_pk, rotated_pk, stranger_pk;
/* What the device trusts; the result's key points into it, so it outlives every decision. */
static struct minisign_public_key device_keys[2];
static struct minisign_secret_key *trusted_sk, *rotated_sk, *stranger_sk;

static int setup(void **state)
{
        (void)state;
        if (minisign_generate(&trusted_pk, &trusted_sk) < 0 ||
            minisign_generate(&rotated_pk, &rotated_sk) < 0 ||
            minisign_generate(&stranger_pk, &stranger_sk) < 0)
                return -1;
        device_keys[0] = trusted_pk;
        device_keys[1] = rotated_pk;
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        trusted_sk = minisign_secret_key_free(trusted_sk);
        rotated_sk = minisign_secret_key_free(rotated_sk);
        stranger_sk = minisign_secret_key_free(stranger_sk);
        return 0;
}

static char *make_profile(uint64_t serial, const char *expires, const char *binding)
{
        char *text;

        assert_true(asprintf(&text,
                             "nixprov: 1\n"
                             "serial: %llu\n"
                             "expires: %s\n"
                             "%s\n"
                             "strategy: binary-caches\n",
                             (unsigned long long)serial, expires, binding) > 0);
        return text;
}

static char *sign(const struct minisign_secret_key *sk, const char *text)
{
        char *sig = NULL;

        assert_int_equal(
            minisign_sign(sk, (const uint8_t *)text, strlen(text), NULL, NULL, true, &sig), 0);
        return sig;
}

struct device {
        bool have_applied;
        uint64_t applied_serial;
        int64_t applied_time;
        int64_t build_time;
        int64_t now;
        const char *group;
};

static int decide(const struct device *d, const char *text, size_t size, const char *sig,
                  struct trust_result *result)
{
        char *groups[] = {(char *)d->group};
        struct trust_context ctx = {
            .keys = device_keys,
            .n_keys = ELEMENTSOF(device_keys),
            .machine_id = MACHINE,
            .groups = groups,
            .n_groups = d->group ? 1 : 0,
            .have_applied = d->have_applied,
            .applied_serial = d->applied_serial,
            .applied_time = d->applied_time,
            .build_time = d->build_time ?: T_2026,
            .now = d->now ?: T_2026 + 100,
        };

        return trust_decide(&ctx, (const uint8_t *)text, size, "profile.yaml", sig, strlen(sig),
                            result);
}

/* The table: one profile, one device, one expected answer. */
static void test_decisions(void **state)
{
        static const struct {
                const char *name;
                uint64_t serial;
                const char *expires;
                const char *binding;
                struct device device;
                int error;
                enum trust_decision decision;
        } cases[] = {
            /* refusals first */
            {"rollback",
             6,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.have_applied = true, .applied_serial = 7},
             TRUST_REFUSED_ROLLBACK,
             0},
            {"expired",
             7,
             "2025-01-01T00:00:00Z",
             "machines: [" MACHINE "]",
             {},
             TRUST_REFUSED_EXPIRED,
             0},
            {"expires exactly now",
             7,
             "2026-01-01T00:01:40Z",
             "machines: [" MACHINE "]",
             {},
             TRUST_REFUSED_EXPIRED,
             0},
            {"clock reset to 1970, below the build-time floor",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.now = 1, .build_time = T_2028},
             TRUST_REFUSED_EXPIRED,
             0},
            {"clock reset, below the last applied time",
             8,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.have_applied = true, .applied_serial = 7, .applied_time = T_2028, .now = 1},
             TRUST_REFUSED_EXPIRED,
             0},
            {"another machine",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" OTHER_MACHINE "]",
             {},
             TRUST_REFUSED_WRONG_MACHINE,
             0},
            {"another group",
             7,
             "2027-01-31T00:00:00Z",
             "groups: [lab]",
             {.group = "edge"},
             TRUST_REFUSED_WRONG_MACHINE,
             0},
            {"a group but the device has none",
             7,
             "2027-01-31T00:00:00Z",
             "groups: [edge]",
             {},
             TRUST_REFUSED_WRONG_MACHINE,
             0},
            /* accepted */
            {"first provisioning",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {},
             0,
             TRUST_APPLY},
            {"clock reset, but the floor is before expiry",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.now = 1},
             0,
             TRUST_APPLY},
            {"same serial",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.have_applied = true, .applied_serial = 7},
             0,
             TRUST_UP_TO_DATE},
            {"update",
             8,
             "2027-01-31T00:00:00Z",
             "machines: [" MACHINE "]",
             {.have_applied = true, .applied_serial = 7},
             0,
             TRUST_APPLY},
            {"by group",
             7,
             "2027-01-31T00:00:00Z",
             "groups: [lab, edge]",
             {.group = "edge"},
             0,
             TRUST_APPLY},
            {"by machine among others",
             7,
             "2027-01-31T00:00:00Z",
             "machines: [" OTHER_MACHINE ", " MACHINE "]",
             {},
             0,
             TRUST_APPLY},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text =
                    make_profile(cases[i].serial, cases[i].expires, cases[i].binding);
                _cleanup_free_ char *sig = sign(trusted_sk, text);
                struct trust_result result;
                int r = decide(&cases[i].device, text, strlen(text), sig, &result);

                if (r != cases[i].error)
                        fail_msg("%s: got %d (%s), want %d", cases[i].name, r, trust_strerror(r),
                                 cases[i].error);
                /* The profile parsed in every case here: the caller can say which serial. */
                assert_non_null(result.profile);
                assert_true(result.profile->serial == cases[i].serial);
                if (r == 0) {
                        assert_int_equal(result.decision, cases[i].decision);
                        assert_ptr_not_equal(result.key, NULL);
                } else {
                        _cleanup_free_ char *why = NULL;
                        const struct minisign_public_key keys[] = {trusted_pk};
                        struct trust_context ctx = {.keys = keys,
                                                    .n_keys = 1,
                                                    .machine_id = MACHINE,
                                                    .applied_serial =
                                                        cases[i].device.applied_serial};

                        why = trust_format_refusal(&ctx, &result, r);
                        assert_non_null(why);
                        assert_true(strlen(why) > 10);
                }
                trust_result_done(&result);
                assert_null(result.profile);
        }
}

static void test_signature_refusals(void **state)
{
        _cleanup_free_ char *text =
            make_profile(7, "2027-01-31T00:00:00Z", "machines: [" MACHINE "]");
        _cleanup_free_ char *good = sign(trusted_sk, text);
        _cleanup_free_ char *stranger = sign(stranger_sk, text);
        _cleanup_free_ char *flipped = strdup(text);
        _cleanup_free_ char *garbage_yaml = strdup("{{{{ not: [yaml");
        _cleanup_free_ char *garbage_sig = sign(trusted_sk, "something else");
        _cleanup_free_ char *big = NULL;
        struct device d = {};
        struct trust_result result;
        (void)state;

        assert_int_equal(decide(&d, text, strlen(text), "not a signature", &result),
                         TRUST_REFUSED_SIGNATURE_MALFORMED);
        assert_null(result.profile);

        assert_int_equal(decide(&d, text, strlen(text), stranger, &result),
                         TRUST_REFUSED_UNKNOWN_KEY);
        assert_true(result.have_signature_key_id);
        assert_memory_equal(result.signature_key_id, stranger_pk.key_id, MINISIGN_KEY_ID_BYTES);
        assert_null(result.profile);

        /* Every byte of the profile matters. */
        for (size_t i = 0; i < strlen(flipped); i++) {
                flipped[i] ^= 0x01;
                assert_int_equal(decide(&d, flipped, strlen(flipped), good, &result),
                                 TRUST_REFUSED_BAD_SIGNATURE);
                assert_null(result.profile);
                flipped[i] ^= 0x01;
        }
        /* A truncated or extended profile too. */
        assert_int_equal(decide(&d, text, strlen(text) - 1, good, &result),
                         TRUST_REFUSED_BAD_SIGNATURE);

        /* Garbage YAML under a signature of other bytes: refused before any parsing. */
        assert_int_equal(decide(&d, garbage_yaml, strlen(garbage_yaml), garbage_sig, &result),
                         TRUST_REFUSED_BAD_SIGNATURE);
        assert_null(result.profile);

        /* The size cap comes before everything. */
        big = calloc(1, PROFILE_MAX_BYTES + 2);
        assert_non_null(big);
        memset(big, '#', PROFILE_MAX_BYTES + 1);
        assert_int_equal(decide(&d, big, PROFILE_MAX_BYTES + 1, good, &result),
                         TRUST_REFUSED_TOO_LARGE);
}

static void test_signed_but_invalid(void **state)
{
        static const char text[] = "nixprov: 1\nserial: 7\nexpires: tomorrow\n";
        _cleanup_free_ char *sig = sign(trusted_sk, text);
        struct device d = {};
        struct trust_result result;
        (void)state;

        assert_int_equal(decide(&d, text, strlen(text), sig, &result), TRUST_REFUSED_INVALID);
        assert_null(result.profile);
        assert_int_equal(result.error.line, 3);
        assert_string_equal(result.error.key, "expires");
}

static void test_rotated_key(void **state)
{
        _cleanup_free_ char *text =
            make_profile(7, "2027-01-31T00:00:00Z", "machines: [" MACHINE "]");
        _cleanup_free_ char *sig = sign(rotated_sk, text);
        struct device d = {};
        struct trust_result result;
        (void)state;

        assert_int_equal(decide(&d, text, strlen(text), sig, &result), 0);
        assert_memory_equal(result.key->key_id, rotated_pk.key_id, MINISIGN_KEY_ID_BYTES);
        trust_result_done(&result);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_signature_refusals),
            cmocka_unit_test(test_signed_but_invalid),
            cmocka_unit_test(test_decisions),
            cmocka_unit_test(test_rotated_key),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
