/* SPDX-License-Identifier: MIT */
/* The builders phase's pure parts: builder URIs and the lines people read. The probing itself
 * is tested against a real sshd in tests/integration/test-builders.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "builder_uri.h"
#include "builders.h"
#include "plan.h"
#include "util.h"

static const struct {
        const char *uri;
        int error;
} bad_uris[] = {
    {"", -EINVAL},
    {"http://host", -EINVAL},
    {"ssh:/host", -EINVAL},
    {"ssh://", -EINVAL},
    {"ssh://@host", -EINVAL},
    {"ssh://user@", -EINVAL},
    {"ssh://a@b@host", -EINVAL},
    {"ssh://host:", -EINVAL},
    {"ssh://host:0", -EINVAL},
    {"ssh://host:65536", -EINVAL},
    {"ssh://host:99999999999999999999", -EINVAL},
    {"ssh://host:22a", -EINVAL},
    {"ssh://host/path", -EINVAL},
    {"ssh://[::1", -EINVAL},
    {"ssh://[::1]x", -EINVAL},
    {"ssh://[]:22", -EINVAL},
    {"ssh://host?remote-program=", -EINVAL},
    {"ssh://host?remote-program=nix;reboot", -EINVAL},
    {"ssh://host?remote-program=nix%20--x", -EINVAL},
    {"ssh://host?remote-program=nix%3breboot", -EINVAL},
    {"ssh://host?remote-program=nix%00", -EINVAL},
    {"ssh://host?remote-program=nix%2", -EINVAL},
    {"ssh://host?remote-program=nix%zz", -EINVAL},
    {"ssh://host?remote-program=$(reboot)", -EINVAL},
    {"ssh://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@host", -E2BIG},
};

static void test_bad_uris(void **state)
{
        struct builder_uri u;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad_uris); i++) {
                int k = builders_parse_uri(bad_uris[i].uri, &u);

                if (k != bad_uris[i].error)
                        fail_msg("'%s': got %d, expected %d", bad_uris[i].uri, k,
                                 bad_uris[i].error);
        }
        assert_int_equal(builders_parse_uri(NULL, &u), -EINVAL);
}

static const struct {
        const char *uri;
        const char *user, *host;
        unsigned port;
        const char *program;
} good_uris[] = {
    {"ssh://builder.example.org", "root", "builder.example.org", 22, "nix-store"},
    {"ssh://nix@builder1.example.org", "nix", "builder1.example.org", 22, "nix-store"},
    {"ssh-ng://nix@b:2222", "nix", "b", 2222, "nix-store"},
    {"ssh://root@127.0.0.1:65535", "root", "127.0.0.1", 65535, "nix-store"},
    {"ssh://[::1]", "root", "::1", 22, "nix-store"},
    {"ssh://u@[fe80::1]:2200?x=y", "u", "fe80::1", 2200, "nix-store"},
    {"ssh://h?remote-program=/nix/var/nix/profiles/default/bin/nix-store", "root", "h", 22,
     "/nix/var/nix/profiles/default/bin/nix-store"},
    {"ssh://h:1?remote-store=local?root=/tmp/s&remote-program=/opt/nix%2Dstore", "root", "h", 1,
     "/opt/nix-store"},
    {"ssh://h?remote-programme=x&ssh-key=/etc/k", "root", "h", 22, "nix-store"},
};

static void test_good_uris(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(good_uris); i++) {
                struct builder_uri u;
                int k = builders_parse_uri(good_uris[i].uri, &u);

                if (k != 0)
                        fail_msg("'%s': got %d", good_uris[i].uri, k);
                assert_string_equal(u.user, good_uris[i].user);
                assert_string_equal(u.host, good_uris[i].host);
                assert_int_equal(u.port, good_uris[i].port);
                assert_string_equal(u.program, good_uris[i].program);
        }
}

static void test_states(void **state)
{
        static const char *const names[] = {"ok",          "unreachable", "host-key-mismatch",
                                            "auth-failed", "nix-missing", "timeout"};

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                assert_string_equal(builder_state_to_string((enum builder_state)i), names[i]);
        assert_null(builder_state_to_string(_BUILDER_STATE_MAX));
        assert_null(builder_state_to_string((enum builder_state) - 1));
}

static void test_format(void **state)
{
        struct builder_probe ok = {.state = BUILDER_STATE_OK, .latency_ms = 42};
        struct builder_probe down = {.state = BUILDER_STATE_UNREACHABLE};
        char buf[256], tiny[12];

        (void)state;
        strcpy(ok.nix_version, "nix-store (Nix) 2.8.0");
        strcpy(down.error, "Connection refused");
        assert_string_equal(builders_format("ssh://b", &ok, buf, sizeof(buf)),
                            "ssh://b: ok, 42 ms, nix-store (Nix) 2.8.0");
        assert_string_equal(builders_format("ssh://b", &down, buf, sizeof(buf)),
                            "ssh://b: unreachable: Connection refused");
        assert_string_equal(builders_format("ssh://b", &down, tiny, sizeof(tiny)), "ssh://b: un");
}

static void test_required_ok(void **state)
{
        struct plan_builder builders[2] = {{.required = true}, {.required = false}};
        struct plan plan = {.builders = builders, .n_builders = 2};
        struct builder_probe results[2] = {{.state = BUILDER_STATE_OK},
                                           {.state = BUILDER_STATE_TIMEOUT}};

        (void)state;
        assert_true(builders_required_ok(&plan, results));
        results[0].state = BUILDER_STATE_HOST_KEY_MISMATCH;
        assert_false(builders_required_ok(&plan, results));
        plan.n_builders = 0;
        assert_true(builders_required_ok(&plan, results));
}

/* Probing an empty plan starts nothing and succeeds. */
static void test_probe_nothing(void **state)
{
        struct plan plan = {};

        (void)state;
        assert_int_equal(builders_probe(&plan, "/", NULL, 1000, NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bad_uris),    cmocka_unit_test(test_good_uris),
            cmocka_unit_test(test_states),      cmocka_unit_test(test_format),
            cmocka_unit_test(test_required_ok), cmocka_unit_test(test_probe_nothing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
