/* SPDX-License-Identifier: MIT */
/* Renders plans and compares the results with tests/data/render/NAME.expected.
 *
 * UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
 * RENDER_OUT=DIR also writes every rendered file under DIR (DIR/EXAMPLE/nixprov.conf,
 * nix-config, nixprov-machines, default.nix), for tests/integration/test-render.sh, which
 * hands them to the real Nix. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "plan.h"
#include "profile.h"
#include "render.h"
#include "util.h"

#define GiB (UINT64_C(1) << 30)

#define HOST_KEY_1                                                                                 \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d/3R4BTCScNXUNv0DDh0cjKjz0Adl+65jaeGWbN"
#define HOST_KEY_2                                                                                 \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFa1oChmDnitJgsHIdZNxrPbBF5Cf/kP7TDa73cEpYWO"

/* A value that needs every kind of escape a Nix string has. */
#define HOSTILE_VALUE "/run/a\"b\\c${d}$${e}$f''g$"

static uint8_t sealed_dummy[64];

static void *mfree(void *p)
{
        free(p);
        return NULL;
}

/* The full example: remote builders on a small device, two caches (one private), settings of
 * every Nix type. Mirrors configs/profiles/remote-builders.yaml with more variety. */
static int full_plan(struct plan **ret)
{
        static char *systems_1[] = {"x86_64-linux", "aarch64-linux"};
        static char *systems_2[] = {"x86_64-linux"};
        static char *features_1[] = {"big-parallel", "kvm", "nixos-test", "benchmark"};
        static char *mandatory_2[] = {"big-parallel"};
        static struct profile_setting settings[] = {
            {.name = "builders-use-substitutes", .value = "true"},
            {.name = "connect-timeout", .value = "5"},
            {.name = "cores", .value = "fit"},
            {.name = "extra-experimental-features", .value = "nix-command flakes"},
            {.name = "trusted-users", .value = "root @wheel"},
        };
        static struct profile_builder builders[] = {
            {
                .uri = "ssh-ng://nix-builder@builder1.example.org",
                .systems = systems_1,
                .n_systems = 2,
                .max_jobs = 8,
                .speed_factor = 4,
                .supported_features = features_1,
                .n_supported_features = 4,
                .host_key = HOST_KEY_1,
                .identity = {.kind = PROFILE_SECRET_SEALED,
                             .sealed = sealed_dummy,
                             .sealed_size = sizeof(sealed_dummy)},
                .required = true,
            },
            {
                .uri = "ssh://nix@builder2.example.org:2222",
                .systems = systems_2,
                .n_systems = 1,
                .max_jobs = 1,
                .speed_factor = 1,
                .mandatory_features = mandatory_2,
                .n_mandatory_features = 1,
                .host_key = HOST_KEY_2,
                .identity = {.kind = PROFILE_SECRET_PATH, .path = "/etc/nixprov/builder2_ed25519"},
                .required = false,
            },
        };
        static struct profile_cache caches[] = {
            {.name = "example-fleet",
             .public_key = "example-fleet.cachix.org-1:"
                           "mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY=",
             .auth_token = {.kind = PROFILE_SECRET_SEALED,
                            .sealed = sealed_dummy,
                            .sealed_size = sizeof(sealed_dummy)}},
            {.name = "public-extras",
             .public_key = "public-extras.cachix.org-1:"
                           "kQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAYm="},
        };
        struct profile p = {
            .schema = PROFILE_SCHEMA,
            .serial = 42,
            .strategy = PROFILE_STRATEGY_REMOTE_BUILDERS,
            .settings = settings,
            .n_settings = ELEMENTSOF(settings),
            .builders = builders,
            .n_builders = ELEMENTSOF(builders),
            .caches = caches,
            .n_caches = ELEMENTSOF(caches),
        };
        /* A Raspberry Pi: 4 CPUs, 1 GiB, both builders answered. */
        struct plan_hardware hw = {.cpus = 4, .memory_bytes = 1 * GiB, .builders_answering = 2};

        return plan_build(&p, &hw, ret);
}

/* The source strategy on a big machine: no builders, no caches, no secrets. */
static int source_plan(struct plan **ret)
{
        static struct profile_setting settings[] = {
            {.name = "keep-outputs", .value = "true"},
            {.name = "keep-derivations", .value = "true"},
            {.name = "max-jobs", .value = "fit"},
            {.name = "cores", .value = "fit"},
            {.name = "max-silent-time", .value = "3600"},
        };
        struct profile p = {
            .schema = PROFILE_SCHEMA,
            .serial = 17,
            .strategy = PROFILE_STRATEGY_SOURCE,
            .settings = settings,
            .n_settings = ELEMENTSOF(settings),
        };
        struct plan_hardware hw = {.cpus = 16, .memory_bytes = 64 * GiB};

        return plan_build(&p, &hw, ret);
}

/* One string setting holding HOSTILE_VALUE, for the escaping checks. */
static int escape_plan(struct plan **ret)
{
        static struct profile_setting settings[] = {
            {.name = "post-build-hook", .value = HOSTILE_VALUE},
        };
        struct profile p = {
            .schema = PROFILE_SCHEMA,
            .serial = 1,
            .strategy = PROFILE_STRATEGY_SOURCE,
            .settings = settings,
            .n_settings = ELEMENTSOF(settings),
        };

        return plan_build(&p, NULL, ret);
}

static void write_text(const char *dir, const char *name, const char *text)
{
        _cleanup_free_ char *path = NULL;

        assert_int_equal(mkdir_parents(dir, 0755), 0);
        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644, 0), 0);
}

/* Compares text with tests/data/render/NAME.expected (or rewrites it, UPDATE_GOLDEN=1), and
 * writes it to $RENDER_OUT/EXAMPLE/FILE when RENDER_OUT is set. */
static void golden(const char *example, const char *file, const char *text)
{
        _cleanup_free_ char *path = NULL, *expected = NULL;
        const char *update = getenv("UPDATE_GOLDEN"), *out = getenv("RENDER_OUT");
        size_t size;

        assert_true(asprintf(&path, "%s/render/%s.%s.expected", TEST_DATA_DIR, example, file) > 0);
        if (out && *out) {
                _cleanup_free_ char *dir = NULL;

                assert_true(asprintf(&dir, "%s/%s", out, example) > 0);
                write_text(dir, file, text);
        }
        if (update && streq(update, "1")) {
                assert_int_equal(mkdir_parents(TEST_DATA_DIR "/render", 0755), 0);
                assert_int_equal(write_file_atomic(path, text, strlen(text), 0644, 0), 0);
                return;
        }
        assert_int_equal(read_file_bounded(path, RENDER_MAX_BYTES, &expected, &size), 0);
        if (!streq(expected, text))
                fprintf(stderr, "%s differs; got:\n%s\n(UPDATE_GOLDEN=1 rewrites it)\n", path,
                        text);
        assert_string_equal(text, expected);
}

static void render_all(const char *example, const struct plan *plan, uint64_t serial)
{
        _cleanup_free_ char *conf = NULL, *env = NULL, *machines = NULL, *module = NULL,
                            *ssh_config = NULL;

        assert_int_equal(render_ssh_config(plan, serial, &ssh_config), 0);
        golden(example, "ssh_config", ssh_config);
        assert_int_equal(render_nix_conf(plan, serial, &conf), 0);
        assert_int_equal(render_nix_config_env(plan, &env), 0);
        assert_int_equal(render_machines(plan, &machines), 0);
        assert_int_equal(render_nixos_module(plan, serial, &module), 0);
        golden(example, "nixprov.conf", conf);
        golden(example, "nix-config", env);
        golden(example, "nixprov-machines", machines);
        golden(example, "default.nix", module);
}

/* A plan made by hand, to hand render what plan_build() would never produce. */
struct hand_plan {
        struct plan plan;
        struct plan_setting setting;
        struct plan_builder builder;
};

static struct plan *hand_plan(struct hand_plan *h, char *name, char *value)
{
        static char *systems[] = {"x86_64-linux"};

        memset(h, 0, sizeof(*h));
        h->setting = (struct plan_setting){.name = name, .value = value};
        h->plan.settings = &h->setting;
        h->plan.n_settings = 1;
        h->builder = (struct plan_builder){.uri = "ssh://host",
                                           .host = "host",
                                           .systems = systems,
                                           .n_systems = 1,
                                           .max_jobs = 1,
                                           .speed_factor = 1,
                                           .host_key = HOST_KEY_1};
        h->plan.builders = &h->builder;
        h->plan.n_builders = 1;
        return &h->plan;
}

static void test_hostile(void **state)
{
        static char huge[RENDER_MAX_BYTES + 1];
        static const struct {
                const char *what;
                char *name, *value;
                int conf, env, module;
        } cases[] = {
            {"newline in a value", "connect-timeout", "1\nbuilders = @/x", -EINVAL, -EINVAL,
             -EINVAL},
            {"newline in a name", "a\nb", "1", -EINVAL, -EINVAL, -EINVAL},
            {"= in a name", "a=b", "1", -EINVAL, -EINVAL, 0},
            {"space in a name", "a b", "1", -EINVAL, -EINVAL, 0},
            {"empty name", "", "1", -EINVAL, -EINVAL, 0},
            {"escape in a value", "post-build-hook", "\x1b]0;x\x07", -EINVAL, -EINVAL, -EINVAL},
            /* nix.conf would cut the line at '#'; a Nix string carries it. */
            {"# in a value", "post-build-hook", "/bin/x #y", -EINVAL, -EINVAL, 0},
            {"past the limit", "post-build-hook", huge, -E2BIG, -E2BIG, -E2BIG},
        };
        (void)state;

        memset(huge, 'x', sizeof(huge) - 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct hand_plan h;
                struct plan *plan = hand_plan(&h, cases[i].name, cases[i].value);
                char *text = NULL;
                int r;

                fprintf(stderr, "case '%s'\n", cases[i].what);
                assert_int_equal(render_nix_conf(plan, 1, &text), cases[i].conf);
                if (cases[i].conf < 0)
                        assert_null(text);
                text = mfree(text);
                assert_int_equal(render_nix_config_env(plan, &text), cases[i].env);
                text = mfree(text);
                r = render_nixos_module(plan, 1, &text);
                assert_int_equal(r, cases[i].module);
                text = mfree(text);
        }
}

static void test_hostile_machines(void **state)
{
        static const struct {
                const char *what;
                char *uri, *identity, *host_key, *system;
        } cases[] = {
            {"space in the URI", "ssh://host -", NULL, HOST_KEY_1, "x86_64-linux"},
            {"; in the URI", "ssh://host;ssh://evil", NULL, HOST_KEY_1, "x86_64-linux"},
            {"# in the URI", "ssh://host#", NULL, HOST_KEY_1, "x86_64-linux"},
            {"empty URI", "", NULL, HOST_KEY_1, "x86_64-linux"},
            {"space in the identity", "ssh://host", "/a b", HOST_KEY_1, "x86_64-linux"},
            {"newline in the host key", "ssh://host", NULL, "ssh-ed25519 A\nB", "x86_64-linux"},
            {"empty host key", "ssh://host", NULL, "", "x86_64-linux"},
            {"comma in a system", "ssh://host", NULL, HOST_KEY_1, "a,b"},
            {"empty system", "ssh://host", NULL, HOST_KEY_1, ""},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct hand_plan h;
                struct plan *plan = hand_plan(&h, "cores", "1");
                char *text = NULL;

                fprintf(stderr, "case '%s'\n", cases[i].what);
                h.builder.uri = cases[i].uri;
                h.builder.identity_path = cases[i].identity;
                h.builder.host_key = cases[i].host_key;
                h.builder.systems = (char **)&cases[i].system;
                assert_int_equal(render_machines(plan, &text), -EINVAL);
                assert_null(text);
        }
}

/* Builders on other ports than 22 go through a Host alias; a host:port that does not parse is
 * refused by every renderer that names the host. */
static void test_ssh_aliases(void **state)
{
        static const struct {
                char *host;
                int r;
                const char *machines_uri; /* the first field of the machines line */
                const char *ssh_config;   /* after the header */
        } cases[] = {
            {"host:0", -EINVAL, NULL, NULL},
            {"host:65536", -EINVAL, NULL, NULL},
            {"host:22x", -EINVAL, NULL, NULL},
            {"host:", -EINVAL, NULL, NULL},
            {":2222", -EINVAL, NULL, NULL},
            {"[::1", -EINVAL, NULL, NULL},
            {"[::1]x", -EINVAL, NULL, NULL},
            {"host", 0, "ssh://u@host", ""},
            {"host:22", 0, "ssh://u@host:22", ""},
            {"host?remote-program=x", 0, "ssh://u@host?remote-program=x", ""},
            {"host:2222", 0, "ssh://u@nixprov-builder-3",
             "Host nixprov-builder-3\n  HostName host\n  Port 2222\n"
             "  HostKeyAlias nixprov-builder-3\n  IdentityFile /k\n"},
            {"[::1]:2200?remote-program=/x/y", 0, "ssh://u@nixprov-builder-3?remote-program=/x/y",
             "Host nixprov-builder-3\n  HostName ::1\n  Port 2200\n"
             "  HostKeyAlias nixprov-builder-3\n  IdentityFile /k\n"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct hand_plan h;
                struct plan *plan = hand_plan(&h, "cores", "1");
                _cleanup_free_ char *machines = NULL, *module = NULL, *ssh_config = NULL;
                char *header = NULL;

                fprintf(stderr, "case '%s'\n", cases[i].host);
                h.builder.host = cases[i].host;
                h.builder.user = "u";
                h.builder.index = 3;
                h.builder.identity_path = "/k";
                assert_int_equal(render_machines(plan, &machines), cases[i].r);
                assert_int_equal(render_nixos_module(plan, 1, &module), cases[i].r);
                assert_int_equal(render_ssh_config(plan, 1, &ssh_config), cases[i].r);
                assert_int_equal(render_plan_has_ssh_aliases(plan),
                                 cases[i].ssh_config && *cases[i].ssh_config);
                if (cases[i].r < 0) {
                        assert_null(machines);
                        assert_null(module);
                        assert_null(ssh_config);
                        continue;
                }
                assert_true(
                    strncmp(machines, cases[i].machines_uri, strlen(cases[i].machines_uri)) == 0);
                assert_int_equal(machines[strlen(cases[i].machines_uri)], ' ');
                assert_true(asprintf(&header,
                                     "# Written by nixprov-agent from profile serial 1.\n"
                                     "# Do not edit: the next profile replaces this file.\n%s",
                                     cases[i].ssh_config) > 0);
                assert_string_equal(ssh_config, header);
                free(header);
                /* The module names the alias too, and keeps the Host blocks. */
                assert_non_null(strstr(module, strchr(cases[i].machines_uri, '@') + 1));
                assert_int_equal(strstr(module, "programs.ssh.extraConfig") != NULL,
                                 *cases[i].ssh_config != '\0');
        }
}

static void test_golden(void **state)
{
        (void)state;

        {
                _cleanup_(plan_freep) struct plan *plan = NULL;

                assert_int_equal(full_plan(&plan), 0);
                render_all("remote-builders", plan, 42);
        }
        {
                _cleanup_(plan_freep) struct plan *plan = NULL;

                assert_int_equal(source_plan(&plan), 0);
                render_all("source", plan, 17);
        }
        {
                _cleanup_(plan_freep) struct plan *plan = NULL;
                _cleanup_free_ char *module = NULL;
                const char *out = getenv("RENDER_OUT");

                assert_int_equal(escape_plan(&plan), 0);
                assert_int_equal(render_nixos_module(plan, 1, &module), 0);
                golden("escape", "default.nix", module);
                if (out && *out) {
                        _cleanup_free_ char *dir = NULL;

                        assert_true(asprintf(&dir, "%s/escape", out) > 0);
                        write_text(dir, "value", HOSTILE_VALUE);
                }
        }
}

/* The example profiles under configs/profiles/, parsed and planned for a small device whose
 * builders all answered (4 CPUs, 1 GiB: a Raspberry Pi). */
static void test_example_profiles(void **state)
{
        static const char *const examples[] = {"binary-caches", "source", "remote-builders"};
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(examples); i++) {
                _cleanup_(profile_freep) struct profile *p = NULL;
                _cleanup_(plan_freep) struct plan *plan = NULL;
                _cleanup_free_ char *path = NULL, *data = NULL, *name = NULL;
                struct profile_error error = {0};
                struct plan_hardware hw = {.cpus = 4, .memory_bytes = 1 * GiB};
                size_t size;

                assert_true(asprintf(&path, "%s/../../configs/profiles/%s.yaml", TEST_DATA_DIR,
                                     examples[i]) > 0);
                assert_int_equal(read_file_bounded(path, PROFILE_MAX_BYTES, &data, &size), 0);
                assert_int_equal(profile_parse(data, size, path, &p, &error), 0);
                hw.builders_answering = (unsigned)p->n_builders;
                assert_int_equal(plan_build(p, &hw, &plan), 0);
                assert_true(asprintf(&name, "profile-%s", examples[i]) > 0);
                render_all(name, plan, p->serial);
        }
}

static void test_machines_format(void **state)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        _cleanup_free_ char *text = NULL;
        static const char *const host_keys[] = {HOST_KEY_1, HOST_KEY_2};
        size_t line = 0;
        char *save = NULL;
        (void)state;

        assert_int_equal(full_plan(&plan), 0);
        assert_int_equal(render_machines(plan, &text), 0);
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
                char *fields[9] = {0}, *fsave = NULL;
                size_t n = 0;
                unsigned char decoded[256];
                size_t decoded_len;

                /* single spaces only: no empty field */
                assert_null(strstr(l, "  "));
                for (char *f = strtok_r(l, " ", &fsave); f && n < 9;
                     f = strtok_r(NULL, " ", &fsave))
                        fields[n++] = f;
                assert_int_equal(n, 8);
                assert_int_equal(sodium_base642bin(decoded, sizeof(decoded), fields[7],
                                                   strlen(fields[7]), NULL, &decoded_len, NULL,
                                                   sodium_base64_VARIANT_ORIGINAL),
                                 0);
                assert_true(line < ELEMENTSOF(host_keys));
                assert_int_equal(decoded_len, strlen(host_keys[line]));
                assert_memory_equal(decoded, host_keys[line], decoded_len);
        }
        assert_int_equal(line, 2);
}

static void test_nix_types(void **state)
{
        static const struct {
                char *name, *value;
                const char *expected; /* the whole line in nix.settings */
        } cases[] = {
            /* strings that only look like something else first */
            {"min-free", "99999999999999999999",
             "min-free = lib.mkDefault \"99999999999999999999\";"},
            {"min-free", "9223372036854775808",
             "min-free = lib.mkDefault \"9223372036854775808\";"},
            {"min-free", "9223372036854775807", "min-free = lib.mkDefault 9223372036854775807;"},
            {"max-silent-time", "007", "max-silent-time = lib.mkDefault \"007\";"},
            {"max-silent-time", "-1", "max-silent-time = lib.mkDefault \"-1\";"},
            {"fallback", "True", "fallback = lib.mkDefault \"True\";"},
            {"max-jobs", "auto", "max-jobs = lib.mkDefault \"auto\";"},
            {"post-build-hook", "", "post-build-hook = lib.mkDefault \"\";"},
            {"post-build-hook", HOSTILE_VALUE,
             "post-build-hook = lib.mkDefault \"/run/a\\\"b\\\\c\\${d}$\\${e}$f''g$\";"},
            /* names that are not Nix identifiers are quoted */
            {"3d", "1", "\"3d\" = lib.mkDefault 1;"},
            {"with", "1", "\"with\" = lib.mkDefault 1;"},
            {"fallback", "true", "fallback = lib.mkDefault true;"},
            {"fallback", "false", "fallback = lib.mkDefault false;"},
            {"connect-timeout", "10", "connect-timeout = lib.mkDefault 10;"},
            {"cores", "0", "cores = lib.mkDefault 0;"},
            {"substituters", "", "substituters = [ ];"},
            {"substituters", "https://a https://b",
             "substituters = [ \"https://a\" \"https://b\" ];"},
            {"trusted-users", "root @wheel", "trusted-users = [ \"root\" \"@wheel\" ];"},
            {"extra-anything", "x", "extra-anything = [ \"x\" ];"},
            {"extra-platforms", "i686-linux", "extra-platforms = [ \"i686-linux\" ];"},
            {"system-features", "kvm 1", "system-features = [ \"kvm\" \"1\" ];"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct hand_plan h;
                struct plan *plan = hand_plan(&h, cases[i].name, cases[i].value);
                _cleanup_free_ char *text = NULL;

                plan->n_builders = 0;
                assert_int_equal(render_nixos_module(plan, 1, &text), 0);
                if (!strstr(text, cases[i].expected))
                        fprintf(stderr, "no '%s' in:\n%s\n", cases[i].expected, text);
                assert_non_null(strstr(text, cases[i].expected));
        }
}

static void test_secrets_include(void **state)
{
        _cleanup_(plan_freep) struct plan *full = NULL, *source = NULL;
        _cleanup_free_ char *conf = NULL, *env = NULL, *module = NULL, *plain = NULL,
                            *plain_module = NULL;
        (void)state;

        assert_int_equal(full_plan(&full), 0);
        assert_int_equal(render_nix_conf(full, 42, &conf), 0);
        assert_int_equal(render_nix_config_env(full, &env), 0);
        assert_int_equal(render_nixos_module(full, 42, &module), 0);
        /* last line of nixprov.conf */
        assert_non_null(strstr(conf, "\n!include /etc/nix/nixprov-secrets.conf\n"));
        assert_int_equal(strlen(strstr(conf, "\n!include")),
                         strlen("\n!include " RENDER_SECRETS_FILE "\n"));
        assert_null(strstr(env, "include"));
        assert_null(strchr(env, '#'));
        assert_non_null(
            strstr(module, "nix.extraOptions = \"!include /etc/nix/nixprov-secrets.conf\";"));
        /* builders go to nix.buildMachines, not nix.settings.builders */
        assert_null(strstr(module, "builders = "));
        assert_non_null(strstr(conf, "builders = @/etc/nix/nixprov-machines\n"));

        assert_int_equal(source_plan(&source), 0);
        assert_int_equal(render_nix_conf(source, 17, &plain), 0);
        assert_int_equal(render_nixos_module(source, 17, &plain_module), 0);
        assert_null(strstr(plain, "include"));
        assert_null(strstr(plain_module, "extraOptions"));
        assert_null(strstr(plain_module, "buildMachines"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_hostile),         cmocka_unit_test(test_hostile_machines),
            cmocka_unit_test(test_golden),          cmocka_unit_test(test_example_profiles),
            cmocka_unit_test(test_machines_format), cmocka_unit_test(test_nix_types),
            cmocka_unit_test(test_ssh_aliases),     cmocka_unit_test(test_secrets_include),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
