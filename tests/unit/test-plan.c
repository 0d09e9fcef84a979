/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "util.h"

#define GiB (UINT64_C(1) << 30)
#define MiB (UINT64_C(1) << 20)

#define BINARY_CACHES_SUBSTITUTERS                                                                 \
        "https://cache.nixos.org https://nix-community.cachix.org "                                \
        "https://cuda-maintainers.cachix.org https://devenv.cachix.org"
#define NIXOS_KEY "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
#define BINARY_CACHES_KEYS                                                                         \
        NIXOS_KEY " nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs= "      \
                  "cuda-maintainers.cachix.org-1:0dq3bujKpuEPMCX6U4WylrUDZ9JyUG0VpVZa7CNfq5E= "    \
                  "devenv.cachix.org-1:w1cLUi8dv3hnoSPGAuibQv+f9TZLr6cv/Hm9XgU50cw="
#define BINARY_CACHES_PRESET                                                                       \
        "substituters = " BINARY_CACHES_SUBSTITUTERS "\n"                                          \
        "trusted-public-keys = " BINARY_CACHES_KEYS "\n"                                           \
        "max-jobs = auto\n"                                                                        \
        "cores = 0\n"                                                                              \
        "builders-use-substitutes = true\n"                                                        \
        "keep-outputs = true\n"                                                                    \
        "keep-derivations = true\n"                                                                \
        "fallback = true\n"                                                                        \
        "connect-timeout = 10\n"                                                                   \
        "stalled-download-timeout = 300\n"

#define HOST_KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d/3R4BTCScNXUNv0DDh0cjKjz0Adl+65jaeGWbN"

static char *systems_x86[] = {"x86_64-linux"};

/* A profile of one strategy and up to four settings, built in place (no parser needed). */
struct test_profile {
        struct profile profile;
        struct profile_setting settings[4];
        struct profile_builder builders[2];
        struct profile_cache caches[2];
};

static struct profile *make_profile(struct test_profile *t, enum profile_strategy strategy)
{
        memset(t, 0, sizeof(*t));
        t->profile.schema = PROFILE_SCHEMA;
        t->profile.serial = 7;
        t->profile.strategy = strategy;
        t->profile.settings = t->settings;
        t->profile.builders = t->builders;
        t->profile.caches = t->caches;
        return &t->profile;
}

static void add_setting(struct test_profile *t, char *name, char *value)
{
        assert_true(t->profile.n_settings < ELEMENTSOF(t->settings));
        t->settings[t->profile.n_settings++] =
            (struct profile_setting){.name = name, .value = value};
}

static struct profile_builder *add_builder(struct test_profile *t, char *uri)
{
        struct profile_builder *b;

        assert_true(t->profile.n_builders < ELEMENTSOF(t->builders));
        b = &t->builders[t->profile.n_builders++];
        *b = (struct profile_builder){
            .uri = uri,
            .systems = systems_x86,
            .n_systems = 1,
            .max_jobs = 1,
            .speed_factor = 1,
            .host_key = HOST_KEY,
            .required = true,
        };
        return b;
}

static struct profile_cache *add_cache(struct test_profile *t, char *name, char *key)
{
        struct profile_cache *c;

        assert_true(t->profile.n_caches < ELEMENTSOF(t->caches));
        c = &t->caches[t->profile.n_caches++];
        *c = (struct profile_cache){.name = name, .public_key = key};
        return c;
}

/* The plan's settings as nix.conf lines, for comparing a whole plan at once. */
static char *settings_text(const struct plan *plan)
{
        struct buf b = BUF_INIT(1024 * 1024);

        for (size_t i = 0; i < plan->n_settings; i++)
                assert_int_equal(
                    buf_printf(&b, "%s = %s\n", plan->settings[i].name, plan->settings[i].value),
                    0);
        return buf_steal(&b, NULL);
}

static void assert_plan_settings(const struct plan *plan, const char *expected)
{
        char *text = settings_text(plan);

        if (!streq(text, expected))
                fprintf(stderr, "got:\n%s\nexpected:\n%s\n", text, expected);
        assert_string_equal(text, expected);
        free(text);
}

static const struct plan_hardware big = {.cpus = 16, .memory_bytes = 64 * GiB};

static void test_hostile(void **state)
{
        static char long_value[PLAN_MAX_VALUE + 2];
        enum kind { SETTING, BUILDER_URI, BUILDER_SYSTEM, BUILDER_PATH, CACHE, STRATEGY };
        static const struct {
                const char *what;
                enum kind kind;
                char *name;
                char *value;
                int error;
        } cases[] = {
            {"newline in a value", SETTING, "connect-timeout", "10\nbuilders = @/tmp/x", -EINVAL},
            {"tab in a value", SETTING, "connect-timeout", "1\t0", -EINVAL},
            {"escape in a value", SETTING, "connect-timeout", "\x1b[2J", -EINVAL},
            {"DEL in a value", SETTING, "connect-timeout", "1\x7f", -EINVAL},
            {"# in a value", SETTING, "post-build-hook", "/bin/true # comment", -EINVAL},
            {"name include", SETTING, "include", "/etc/shadow", -EINVAL},
            {"name !include", SETTING, "!include", "/etc/shadow", -EINVAL},
            {"name with a space", SETTING, "max jobs", "1", -EINVAL},
            {"name with =", SETTING, "a=b", "1", -EINVAL},
            {"empty name", SETTING, "", "1", -EINVAL},
            {"value past the limit", SETTING, "post-build-hook", long_value, -E2BIG},
            {"http builder", BUILDER_URI, NULL, "http://builder.example.org", -EINVAL},
            {"builder without host", BUILDER_URI, NULL, "ssh://", -EINVAL},
            {"builder with empty user", BUILDER_URI, NULL, "ssh://@host", -EINVAL},
            {"builder with only a user", BUILDER_URI, NULL, "ssh://nix@", -EINVAL},
            {"builder with two users", BUILDER_URI, NULL, "ssh://a@b@host", -EINVAL},
            {"builder with a space", BUILDER_URI, NULL, "ssh://host extra", -EINVAL},
            {"builder with ;", BUILDER_URI, NULL, "ssh://host;ssh://evil", -EINVAL},
            {"builder with #", BUILDER_URI, NULL, "ssh://host#x", -EINVAL},
            {"system with a comma", BUILDER_SYSTEM, NULL, "x86_64-linux,i686-linux", -EINVAL},
            {"system with a space", BUILDER_SYSTEM, NULL, "x86_64-linux i686-linux", -EINVAL},
            {"identity with a space", BUILDER_PATH, NULL, "/root/my key", -EINVAL},
            {"relative identity", BUILDER_PATH, NULL, "root/key", -EINVAL},
            {"cache name with a slash", CACHE, "evil/x", "evil.cachix.org-1:AAAA", -EINVAL},
            {"cache key with a space", CACHE, "ok", "ok.cachix.org-1:AA AA", -EINVAL},
            {"unknown strategy", STRATEGY, NULL, NULL, -EINVAL},
        };
        (void)state;

        memset(long_value, 'a', sizeof(long_value) - 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct test_profile t;
                struct profile *p = make_profile(&t, PROFILE_STRATEGY_REMOTE_BUILDERS);
                struct plan *plan = (struct plan *)0x1;
                struct profile_builder *b;
                int r;

                switch (cases[i].kind) {
                case SETTING:
                        add_setting(&t, cases[i].name, cases[i].value);
                        break;
                case BUILDER_URI:
                        add_builder(&t, cases[i].value);
                        break;
                case BUILDER_SYSTEM:
                        b = add_builder(&t, "ssh://host");
                        b->systems = (char **)&cases[i].value;
                        break;
                case BUILDER_PATH:
                        b = add_builder(&t, "ssh://host");
                        b->identity.kind = PROFILE_SECRET_PATH;
                        b->identity.path = cases[i].value;
                        break;
                case CACHE:
                        add_cache(&t, cases[i].name, cases[i].value);
                        break;
                case STRATEGY:
                        p->strategy = _PROFILE_STRATEGY_MAX;
                        break;
                }
                r = plan_build(p, &big, &plan);
                if (r != cases[i].error)
                        fprintf(stderr, "case '%s': %d\n", cases[i].what, r);
                assert_int_equal(r, cases[i].error);
                assert_ptr_equal(plan, (struct plan *)0x1); /* untouched on failure */
        }
}

static void test_hostile_shapes(void **state)
{
        struct test_profile t;
        struct profile *p;
        struct plan *plan = NULL;
        (void)state;

        /* NULL arguments */
        p = make_profile(&t, PROFILE_STRATEGY_SOURCE);
        assert_int_equal(plan_build(NULL, &big, &plan), -EINVAL);
        assert_int_equal(plan_build(p, &big, NULL), -EINVAL);

        /* A builder list and a "builders" setting of its own: one would be ignored. */
        p = make_profile(&t, PROFILE_STRATEGY_REMOTE_BUILDERS);
        add_setting(&t, "builders", "@/etc/nix/machines");
        add_builder(&t, "ssh://host");
        assert_int_equal(plan_build(p, &big, &plan), -EINVAL);

        /* A builder without systems. */
        p = make_profile(&t, PROFILE_STRATEGY_REMOTE_BUILDERS);
        add_builder(&t, "ssh://host")->n_systems = 0;
        assert_int_equal(plan_build(p, &big, &plan), -EINVAL);

        /* Past the parser's own limits. */
        p = make_profile(&t, PROFILE_STRATEGY_SOURCE);
        p->n_settings = PROFILE_MAX_SETTINGS + 1;
        assert_int_equal(plan_build(p, &big, &plan), -E2BIG);
        assert_null(plan);
}

static void test_presets(void **state)
{
        static const struct {
                enum profile_strategy strategy;
                const char *expected;
        } cases[] = {
            {PROFILE_STRATEGY_BINARY_CACHES, BINARY_CACHES_PRESET},
            {PROFILE_STRATEGY_SOURCE, "substituters = https://cache.nixos.org\n"
                                      "trusted-public-keys = " NIXOS_KEY "\n"
                                      "max-jobs = auto\n"
                                      "cores = 0\n"},
            /* Without builders it is the binary-caches preset. */
            {PROFILE_STRATEGY_REMOTE_BUILDERS, BINARY_CACHES_PRESET},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                struct test_profile t;

                assert_int_equal(plan_build(make_profile(&t, cases[i].strategy), &big, &plan), 0);
                assert_int_equal(plan->strategy, cases[i].strategy);
                assert_plan_settings(plan, cases[i].expected);
                assert_int_equal(plan->n_builders, 0);
                assert_int_equal(plan->n_caches, 0);
                assert_false(plan_needs_secrets(plan));
        }
}

static void test_overrides(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct test_profile t;
        struct profile *p = make_profile(&t, PROFILE_STRATEGY_SOURCE);
        (void)state;

        /* Replaced where it stands; new keys appended in the profile's order. */
        add_setting(&t, "max-silent-time", "3600");
        add_setting(&t, "cores", "2");
        add_setting(&t, "extra-experimental-features", "nix-command flakes");
        add_setting(&t, "substituters", "");
        assert_int_equal(plan_build(p, &big, &plan), 0);
        assert_plan_settings(plan, "substituters = \n"
                                   "trusted-public-keys = " NIXOS_KEY "\n"
                                   "max-jobs = auto\n"
                                   "cores = 2\n"
                                   "max-silent-time = 3600\n"
                                   "extra-experimental-features = nix-command flakes\n");
        assert_string_equal(plan_get(plan, "cores"), "2");
        assert_null(plan_get(plan, "builders"));
}

static void test_fit_rule(void **state)
{
        static const struct {
                unsigned cpus;
                uint64_t memory;
                uint64_t jobs, cores;
        } cases[] = {
            /* unknown and absurd first */
            {0, 0, 1, 1},
            {64, 0, 1, 64},
            {0, 64 * GiB, 1, 1},
            {1, 100 * MiB, 1, 1},
            {UINT32_MAX, UINT64_MAX, 65535, 65537},
            {1, 1 * GiB, 1, 1},
            {2, 4 * GiB, 1, 2},
            {4, 8 * GiB, 2, 2},
            {8, 16 * GiB, 2, 4},
            {16, 64 * GiB, 4, 4},
            {16, 2 * GiB, 1, 16},
            {16, 3 * GiB, 2, 8},
            {64, 256 * GiB, 8, 8},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct plan_hardware hw = {.cpus = cases[i].cpus, .memory_bytes = cases[i].memory};
                uint64_t jobs = 0, cores = 0;

                plan_fit(&hw, &jobs, &cores);
                if (jobs != cases[i].jobs || cores != cases[i].cores)
                        fprintf(stderr, "%u CPUs, %" PRIu64 " bytes: %" PRIu64 " x %" PRIu64 "\n",
                                cases[i].cpus, cases[i].memory, jobs, cores);
                assert_true(jobs == cases[i].jobs);
                assert_true(cores == cases[i].cores);
                assert_true(jobs * cores <= (cases[i].cpus > 0 ? cases[i].cpus : 1));
        }
}

static void test_fit_in_plan(void **state)
{
        static const struct {
                struct plan_hardware hw;
                const char *max_jobs, *cores;
                const char *expected_jobs, *expected_cores;
        } cases[] = {
            {{.cpus = 1, .memory_bytes = 1 * GiB}, "fit", "fit", "1", "1"},
            {{.cpus = 2, .memory_bytes = 4 * GiB}, "fit", "fit", "1", "2"},
            {{.cpus = 16, .memory_bytes = 64 * GiB}, "fit", "fit", "4", "4"},
            {{.cpus = 16, .memory_bytes = 64 * GiB}, "auto", "fit", "auto", "4"},
            {{.cpus = 16, .memory_bytes = 64 * GiB}, "3", "0", "3", "0"},
            {{.cpus = 16, .memory_bytes = 64 * GiB}, NULL, NULL, "auto", "0"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                struct test_profile t;
                struct profile *p = make_profile(&t, PROFILE_STRATEGY_BINARY_CACHES);

                if (cases[i].max_jobs)
                        add_setting(&t, "max-jobs", (char *)cases[i].max_jobs);
                if (cases[i].cores)
                        add_setting(&t, "cores", (char *)cases[i].cores);
                assert_int_equal(plan_build(p, &cases[i].hw, &plan), 0);
                assert_string_equal(plan_get(plan, "max-jobs"), cases[i].expected_jobs);
                assert_string_equal(plan_get(plan, "cores"), cases[i].expected_cores);
        }
}

static void test_caches(void **state)
{
        static const struct {
                enum profile_strategy strategy;
                char *substituters; /* the profile's own, or NULL */
                char *keys;
                const char *expected_substituters, *expected_keys;
        } cases[] = {
            {PROFILE_STRATEGY_BINARY_CACHES, NULL, NULL,
             BINARY_CACHES_SUBSTITUTERS " https://fleet.cachix.org",
             BINARY_CACHES_KEYS " fleet.cachix.org-1:AAAA"},
            {PROFILE_STRATEGY_SOURCE, NULL, NULL,
             "https://cache.nixos.org https://fleet.cachix.org",
             NIXOS_KEY " fleet.cachix.org-1:AAAA"},
            /* The profile's own lists are used as they are, plus the caches'. */
            {PROFILE_STRATEGY_BINARY_CACHES, "https://mirror.example.org", "mirror-1:BBBB",
             "https://mirror.example.org https://fleet.cachix.org",
             "mirror-1:BBBB fleet.cachix.org-1:AAAA"},
            {PROFILE_STRATEGY_BINARY_CACHES, "", "", "https://fleet.cachix.org",
             "fleet.cachix.org-1:AAAA"},
            /* Already there: not repeated. */
            {PROFILE_STRATEGY_SOURCE, "https://fleet.cachix.org", "fleet.cachix.org-1:AAAA",
             "https://fleet.cachix.org", "fleet.cachix.org-1:AAAA"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                struct test_profile t;
                struct profile *p = make_profile(&t, cases[i].strategy);

                if (cases[i].substituters)
                        add_setting(&t, "substituters", cases[i].substituters);
                if (cases[i].keys)
                        add_setting(&t, "trusted-public-keys", cases[i].keys);
                add_cache(&t, "fleet", "fleet.cachix.org-1:AAAA");
                assert_int_equal(plan_build(p, &big, &plan), 0);
                assert_string_equal(plan_get(plan, "substituters"), cases[i].expected_substituters);
                assert_string_equal(plan_get(plan, "trusted-public-keys"), cases[i].expected_keys);
                assert_int_equal(plan->n_caches, 1);
                assert_string_equal(plan->caches[0].name, "fleet");
                assert_false(plan_needs_secrets(plan));
        }
}

static void test_cache_with_token(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct test_profile t;
        struct profile *p = make_profile(&t, PROFILE_STRATEGY_BINARY_CACHES);
        static uint8_t sealed[64];
        struct profile_cache *c;
        (void)state;

        add_cache(&t, "public", "public.cachix.org-1:AAAA");
        c = add_cache(&t, "private", "private.cachix.org-1:BBBB");
        c->auth_token = (struct profile_secret){
            .kind = PROFILE_SECRET_SEALED, .sealed = sealed, .sealed_size = sizeof(sealed)};
        assert_int_equal(plan_build(p, &big, &plan), 0);
        assert_true(plan_needs_secrets(plan));
        assert_false(plan->caches[0].has_auth_token);
        assert_true(plan->caches[1].has_auth_token);
        assert_string_equal(plan->caches[0].host, "public.cachix.org");
        assert_string_equal(plan->caches[1].host, "private.cachix.org");
        assert_string_equal(plan_get(plan, "substituters"), BINARY_CACHES_SUBSTITUTERS
                            " https://public.cachix.org https://private.cachix.org");
        plan = plan_free(plan);

        /* A token for another host (a mirror of the cache): the netrc names that host. */
        c = &t.profile.caches[1];
        c->host = (char *)"127.0.0.1";
        assert_int_equal(plan_build(p, &big, &plan), 0);
        assert_string_equal(plan->caches[1].host, "127.0.0.1");
        assert_string_equal(plan_get(plan, "substituters"),
                            BINARY_CACHES_SUBSTITUTERS " https://public.cachix.org");
        assert_non_null(strstr(plan_get(plan, "trusted-public-keys"), "private.cachix.org-1:BBBB"));
        plan = plan_free(plan);
        c->host = (char *)"bad host";
        assert_int_equal(plan_build(p, &big, &plan), -EINVAL);
        c->host = NULL;
}

static void test_builders(void **state)
{
        static const struct {
                char *uri;
                enum plan_builder_protocol protocol;
                const char *user, *host;
        } cases[] = {
            {"ssh://nix@builder.example.org", PLAN_BUILDER_SSH, "nix", "builder.example.org"},
            {"ssh-ng://builder.example.org", PLAN_BUILDER_SSH_NG, NULL, "builder.example.org"},
            {"ssh://nix@builder.example.org:2222", PLAN_BUILDER_SSH, "nix",
             "builder.example.org:2222"},
            {"ssh-ng://b@10.0.0.1?compress=true", PLAN_BUILDER_SSH_NG, "b",
             "10.0.0.1?compress=true"},
            {"ssh://[::1]:22", PLAN_BUILDER_SSH, NULL, "[::1]:22"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                struct test_profile t;
                struct profile *p = make_profile(&t, PROFILE_STRATEGY_REMOTE_BUILDERS);
                struct profile_builder *b;
                static uint8_t sealed[64];

                b = add_builder(&t, "ssh://first@first.example.org");
                b->identity = (struct profile_secret){.kind = PROFILE_SECRET_PATH,
                                                      .path = "/etc/nixprov/first_ed25519"};
                b = add_builder(&t, cases[i].uri);
                b->identity = (struct profile_secret){
                    .kind = PROFILE_SECRET_SEALED, .sealed = sealed, .sealed_size = 64};
                b->max_jobs = 6;
                b->speed_factor = 2;
                b->required = false;

                assert_int_equal(plan_build(p, &big, &plan), 0);
                assert_string_equal(plan_get(plan, "builders"), "@/etc/nix/nixprov-machines");
                assert_int_equal(plan->n_builders, 2);
                assert_string_equal(plan->builders[0].identity_path, "/etc/nixprov/first_ed25519");
                assert_false(plan->builders[0].identity_sealed);
                assert_string_equal(plan->builders[1].uri, cases[i].uri);
                assert_int_equal(plan->builders[1].protocol, cases[i].protocol);
                if (cases[i].user)
                        assert_string_equal(plan->builders[1].user, cases[i].user);
                else
                        assert_null(plan->builders[1].user);
                assert_string_equal(plan->builders[1].host, cases[i].host);
                assert_string_equal(plan->builders[1].identity_path,
                                    "/etc/nix/nixprov-builder-1.key");
                assert_true(plan->builders[1].identity_sealed);
                assert_true(plan->builders[1].max_jobs == 6);
                assert_true(plan->builders[1].speed_factor == 2);
                assert_false(plan->builders[1].required);
                assert_string_equal(plan->builders[1].host_key, HOST_KEY);
                /* no builder answered, no fallback: max-jobs as the preset says */
                assert_string_equal(plan_get(plan, "max-jobs"), "auto");
        }
}

/* Where builds run with strategy remote-builders: remotely only while a builder answers
 * (max-jobs = 0, whatever the settings and the hardware say), unless nix.local-builds; when
 * none answers, locally with nix.fallback-local (never with max-jobs = 0), or nowhere. */
static void test_local_builds(void **state)
{
        static const struct plan_hardware one_answers = {
            .cpus = 16, .memory_bytes = 64 * GiB, .builders_answering = 1};
        static const struct plan_hardware small_two_answer = {
            .cpus = 1, .memory_bytes = 1 * GiB, .builders_answering = 2};
        static const struct plan_hardware none_answers = {
            .cpus = 4, .memory_bytes = 8 * GiB, .builders_answering = 0};
        static const struct {
                const char *what;
                enum profile_strategy strategy;
                const struct plan_hardware *hw;
                bool with_builder, local_builds, fallback_local;
                char *max_jobs; /* the profile's own, or NULL */
                const char *expected;
                enum plan_local_builds decision;
        } cases[] = {
            {"a builder answers: remotely only, on a large device too",
             PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, true, false, false, NULL, "0",
             PLAN_LOCAL_BUILDS_NONE},
            {"small device", PROFILE_STRATEGY_REMOTE_BUILDERS, &small_two_answer, true, false,
             false, NULL, "0", PLAN_LOCAL_BUILDS_NONE},
            {"fit becomes 0", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, true, false, true,
             "fit", "0", PLAN_LOCAL_BUILDS_NONE},
            {"auto becomes 0", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, true, false, false,
             "auto", "0", PLAN_LOCAL_BUILDS_NONE},
            {"the profile's number only sizes a fallback", PROFILE_STRATEGY_REMOTE_BUILDERS,
             &one_answers, true, false, true, "3", "0", PLAN_LOCAL_BUILDS_NONE},
            {"local-builds: the preset's auto", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers,
             true, true, false, NULL, "auto", PLAN_LOCAL_BUILDS_ALSO},
            {"local-builds: fit", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, true, true, false,
             "fit", "4", PLAN_LOCAL_BUILDS_ALSO},
            {"local-builds: the profile's number", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers,
             true, true, false, "3", "3", PLAN_LOCAL_BUILDS_ALSO},
            {"local-builds: the profile's 0", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, true,
             true, true, "0", "0", PLAN_LOCAL_BUILDS_ALSO},
            {"none answers, fallback: auto", PROFILE_STRATEGY_REMOTE_BUILDERS, &none_answers, true,
             false, true, NULL, "auto", PLAN_LOCAL_BUILDS_FALLBACK},
            {"none answers, fallback: fit", PROFILE_STRATEGY_REMOTE_BUILDERS, &none_answers, true,
             false, true, "fit", "2", PLAN_LOCAL_BUILDS_FALLBACK},
            {"none answers, fallback: the profile's number", PROFILE_STRATEGY_REMOTE_BUILDERS,
             &none_answers, true, false, true, "3", "3", PLAN_LOCAL_BUILDS_FALLBACK},
            {"none answers, fallback: 0 would build nothing, fit instead",
             PROFILE_STRATEGY_REMOTE_BUILDERS, &none_answers, true, false, true, "0", "2",
             PLAN_LOCAL_BUILDS_FALLBACK},
            {"none answers, no fallback: unusable", PROFILE_STRATEGY_REMOTE_BUILDERS, &none_answers,
             true, true, false, NULL, "auto", PLAN_LOCAL_BUILDS_UNUSABLE},
            {"no builder listed", PROFILE_STRATEGY_REMOTE_BUILDERS, &one_answers, false, false,
             false, NULL, "auto", PLAN_LOCAL_BUILDS_AS_SET},
            {"other strategy", PROFILE_STRATEGY_BINARY_CACHES, &one_answers, true, false, false,
             NULL, "auto", PLAN_LOCAL_BUILDS_AS_SET},
            {"unknown answers", PROFILE_STRATEGY_REMOTE_BUILDERS, NULL, true, false, false, "fit",
             "1", PLAN_LOCAL_BUILDS_AS_SET},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                struct test_profile t;
                struct profile *p = make_profile(&t, cases[i].strategy);

                p->local_builds = cases[i].local_builds;
                p->fallback_local = cases[i].fallback_local;
                if (cases[i].with_builder)
                        add_builder(&t, "ssh://nix@builder.example.org");
                if (cases[i].max_jobs)
                        add_setting(&t, "max-jobs", cases[i].max_jobs);
                assert_int_equal(plan_build(p, cases[i].hw, &plan), 0);
                if (!streq(plan_get(plan, "max-jobs"), cases[i].expected) ||
                    plan->local_builds != cases[i].decision)
                        fprintf(stderr, "case '%s': max-jobs = %s, decision %d\n", cases[i].what,
                                plan_get(plan, "max-jobs"), (int)plan->local_builds);
                assert_string_equal(plan_get(plan, "max-jobs"), cases[i].expected);
                assert_int_equal(plan->local_builds, cases[i].decision);
        }
}

/* The builders phase leaves builders out: the others keep their order, the setting stays. */
static void test_remove_builder(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        struct test_profile t;
        struct profile *p = make_profile(&t, PROFILE_STRATEGY_REMOTE_BUILDERS);

        (void)state;
        add_builder(&t, "ssh://a@a.example.org");
        add_builder(&t, "ssh://b@b.example.org");
        assert_int_equal(plan_build(p, &big, &plan), 0);
        assert_int_equal(plan_remove_builder(plan, 2), -EINVAL);
        assert_int_equal(plan_remove_builder(NULL, 0), -EINVAL);
        assert_int_equal(plan_remove_builder(plan, 0), 0);
        assert_int_equal(plan->n_builders, 1);
        assert_string_equal(plan->builders[0].uri, "ssh://b@b.example.org");
        assert_int_equal(plan_remove_builder(plan, 0), 0);
        assert_int_equal(plan->n_builders, 0);
        assert_int_equal(plan_remove_builder(plan, 0), -EINVAL);
        assert_string_equal(plan_get(plan, "builders"), "@/etc/nix/nixprov-machines");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_remove_builder),   cmocka_unit_test(test_hostile),
            cmocka_unit_test(test_hostile_shapes),   cmocka_unit_test(test_presets),
            cmocka_unit_test(test_overrides),        cmocka_unit_test(test_fit_rule),
            cmocka_unit_test(test_fit_in_plan),      cmocka_unit_test(test_caches),
            cmocka_unit_test(test_cache_with_token), cmocka_unit_test(test_builders),
            cmocka_unit_test(test_local_builds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
