/* SPDX-License-Identifier: MIT */
/* The agent's secrets: sealed values opened with the device's key, and the 0600 files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devicekey.h"
#include "plan.h"
#include "secrets.h"

#define HOST_KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
#define TOKEN "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"

static char dir[] = "/tmp/nixprov-test-secrets-XXXXXX";
static struct devicekey *key;
static char *systems[] = {(char *)"x86_64-linux"};

struct fixture {
        struct profile p;
        struct profile_cache caches[3];
        struct profile_builder builders[2];
        uint8_t sealed[3][256];
        uint8_t sealed_identity[256];
};

static void seal_to(const uint8_t *pk, const char *text, uint8_t *out, struct profile_secret *s)
{
        assert_int_equal(crypto_box_seal(out, (const uint8_t *)text, strlen(text), pk), 0);
        *s = (struct profile_secret){.kind = PROFILE_SECRET_SEALED,
                                     .sealed = out,
                                     .sealed_size = strlen(text) + crypto_box_SEALBYTES};
}

/* Two caches with tokens (one for a mirror host), one public, one builder with a sealed key. */
static void setup_profile(struct fixture *f)
{
        memset(f, 0, sizeof(*f));
        f->p.schema = PROFILE_SCHEMA;
        f->p.strategy = PROFILE_STRATEGY_REMOTE_BUILDERS;
        f->p.caches = f->caches;
        f->p.n_caches = 3;
        f->caches[0] = (struct profile_cache){.name = (char *)"public",
                                              .public_key = (char *)"public.cachix.org-1:AAAA"};
        f->caches[1] = (struct profile_cache){.name = (char *)"fleet",
                                              .public_key = (char *)"fleet.cachix.org-1:BBBB"};
        seal_to(key->box_public, TOKEN, f->sealed[1], &f->caches[1].auth_token);
        f->caches[2] = (struct profile_cache){.name = (char *)"mirror",
                                              .public_key = (char *)"mirror.cachix.org-1:CCCC",
                                              .host = (char *)"cache.example.org"};
        seal_to(key->box_public, "second-token", f->sealed[2], &f->caches[2].auth_token);
        f->p.builders = f->builders;
        f->p.n_builders = 1;
        f->builders[0] = (struct profile_builder){.uri = (char *)"ssh://nix@b1",
                                                  .systems = systems,
                                                  .n_systems = 1,
                                                  .max_jobs = 1,
                                                  .speed_factor = 1,
                                                  .host_key = (char *)HOST_KEY,
                                                  .required = true};
        seal_to(key->box_public,
                "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----",
                f->sealed_identity, &f->builders[0].identity);
}

static const struct write_item *find(const struct write_item *items, size_t n, const char *path)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(items[i].path, path) == 0)
                        return &items[i];
        fail_msg("no item %s", path);
        return NULL;
}

static void expect_text(const struct write_item *item, const char *text)
{
        assert_int_equal(item->mode, 0600);
        assert_int_equal(item->size, strlen(text));
        assert_memory_equal(item->data, text, item->size);
}

static void test_open_and_render(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct secrets s = {};
        struct write_item items[8];
        struct fixture f;
        char error[SECRETS_ERROR_MAX] = "";
        size_t n = 0;
        (void)state;

        setup_profile(&f);
        assert_int_equal(plan_build(&f.p, NULL, &plan), 0);
        assert_int_equal(secrets_open(&f.p, key, &s, error), 0);
        assert_true(secrets_have_netrc(&s));
        assert_null(s.tokens[0].data);
        assert_string_equal(s.tokens[1].data, TOKEN);
        assert_int_equal(secrets_items(plan, &s, items, ELEMENTSOF(items), &n), 0);
        assert_int_equal(n, 4);
        expect_text(find(items, n, SECRETS_NETRC_FILE),
                    "machine fleet.cachix.org password " TOKEN "\n"
                    "machine cache.example.org password second-token\n");
        expect_text(find(items, n, SECRETS_CONF_FILE), "netrc-file = /etc/nix/nixprov-netrc\n");
        expect_text(find(items, n, SECRETS_CACHIX_DHALL_FILE),
                    "{ authToken = \"" TOKEN "\"\n"
                    ", hostname = \"https://cachix.org\"\n"
                    ", binaryCaches = [] : List { name : Text, secretKey : Text }\n"
                    "}\n");
        /* The key gets back the newline that sealing dropped: ssh wants it. */
        expect_text(
            find(items, n, "/etc/nix/nixprov-builder-0.key"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n");
        secrets_done(&s);
        assert_null(s.tokens[1].data);
        assert_null(s.netrc.data);
        assert_false(secrets_have_netrc(&s));

        /* No room: -E2BIG. */
        assert_int_equal(secrets_open(&f.p, key, &s, error), 0);
        n = 6;
        assert_int_equal(secrets_items(plan, &s, items, 8, &n), -E2BIG);
        secrets_done(&s);
}

static void test_refusals(void **state)
{
        uint8_t other_pk[crypto_box_PUBLICKEYBYTES], other_sk[crypto_box_SECRETKEYBYTES];
        struct secrets s = {};
        struct fixture f;
        char error[SECRETS_ERROR_MAX];
        (void)state;

        /* Sealed to another device. */
        assert_int_equal(crypto_box_keypair(other_pk, other_sk), 0);
        setup_profile(&f);
        seal_to(other_pk, TOKEN, f.sealed[2], &f.caches[2].auth_token);
        assert_int_equal(secrets_open(&f.p, key, &s, error), -EBADMSG);
        assert_string_equal(error, "cachix[2].auth-token: cannot be opened with this device's box "
                                   "key: sealed to another device, or changed");
        /* What had been opened is wiped. */
        assert_null(s.tokens[1].data);

        /* Changed. */
        setup_profile(&f);
        f.sealed_identity[40] ^= 0x80;
        assert_int_equal(secrets_open(&f.p, key, &s, error), -EBADMSG);
        assert_string_equal(error, "builders[0].identity: cannot be opened with this device's box "
                                   "key: sealed to another device, or changed");

        /* A token a netrc line or a Dhall string cannot carry. */
        static const char *const bad_tokens[] = {"two words", "quote\"", "back\\slash",
                                                 "dollar${x}", "new\nline"};
        for (size_t i = 0; i < ELEMENTSOF(bad_tokens); i++) {
                setup_profile(&f);
                seal_to(key->box_public, bad_tokens[i], f.sealed[1], &f.caches[1].auth_token);
                assert_int_equal(secrets_open(&f.p, key, &s, error), -EBADMSG);
                assert_non_null(strstr(error, "cachix[1].auth-token: the opened token is not a "
                                              "Cachix token"));
                assert_null(strstr(error, bad_tokens[i]));
        }
}

static void test_no_secrets(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct secrets s = {};
        struct write_item items[4];
        struct fixture f;
        char error[SECRETS_ERROR_MAX];
        size_t n = 0;
        (void)state;

        setup_profile(&f);
        f.p.n_caches = 1;
        f.p.n_builders = 0;
        assert_int_equal(plan_build(&f.p, NULL, &plan), 0);
        assert_int_equal(secrets_open(&f.p, key, &s, error), 0);
        assert_false(secrets_have_netrc(&s));
        assert_int_equal(secrets_items(plan, &s, items, ELEMENTSOF(items), &n), 0);
        assert_int_equal(n, 0);
        secrets_done(&s);
}

/* The builders phase may leave a builder out of the plan: each sealed key still goes with its
 * own builder, by the builder's place in the profile. */
static void test_identity_follows_builder(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct secrets s = {};
        struct write_item items[4];
        struct fixture f;
        uint8_t second[256];
        char error[SECRETS_ERROR_MAX];
        size_t n = 0;
        (void)state;

        setup_profile(&f);
        f.p.n_caches = 0;
        f.builders[1] = f.builders[0];
        f.builders[1].uri = (char *)"ssh://nix@b2";
        seal_to(key->box_public, "second key", second, &f.builders[1].identity);
        f.p.n_builders = 2;
        assert_int_equal(plan_build(&f.p, NULL, &plan), 0);
        assert_int_equal(secrets_open(&f.p, key, &s, error), 0);
        assert_string_equal(secrets_identity(&s, 1), "second key");
        assert_null(secrets_identity(&s, 2));
        assert_null(secrets_identity(&s, PROFILE_MAX_BUILDERS));
        assert_null(secrets_identity(&s, SIZE_MAX));

        assert_int_equal(plan_remove_builder(plan, 0), 0);
        assert_int_equal(plan->builders[0].index, 1);
        assert_int_equal(secrets_items(plan, &s, items, ELEMENTSOF(items), &n), 0);
        assert_int_equal(n, 1);
        expect_text(find(items, n, "/etc/nix/nixprov-builder-1.key"), "second key\n");
        secrets_done(&s);
        assert_null(secrets_identity(&s, 0));
        assert_null(secrets_identity(&s, 1));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_open_and_render),
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_no_secrets),
            cmocka_unit_test(test_identity_follows_builder),
        };
        int r;

        if (!mkdtemp(dir) || devicekey_load_or_create(dir, &key, NULL) < 0)
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        key = devicekey_free(key);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
        return r;
}
