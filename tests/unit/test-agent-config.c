/* SPDX-License-Identifier: MIT */
/* The agent's configuration: hostile files first, then what valid ones parse to, then the
 * kernel command line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent_config.h"
#include "keyfile.h"
#include "util.h"

#define KEYS_DIR TEST_DATA_DIR "/keys"
#define EXAMPLE TEST_DATA_DIR "/../../configs/agent.yaml"

/* The base64 lines of tests/data/keys/fleet.pub and other.pub. */
#define FLEET_KEY "RWSD43coa+5OoiQlNYklthXAnK9p5Jl9tXMEhTU91t7O4mYLg9cix558"
#define OTHER_KEY "RWSs6/aTxQ811vPvWSObfAVXp8/t8oF71scccpfrw62KyOk/uPkZsIHj"

struct bad_case {
        const char *yaml;
        int error;
        unsigned line, column;
        const char *key;
        const char *message; /* a part of the message */
};

/* clang-format off */
static const struct bad_case bad_cases[] = {
        /* Bytes and YAML structure: the profile's rules, shared */
        {"state-dir: /a\0\n", -EBADMSG, 1, 14, "", "NUL bytes are not allowed"},
        {"state-dir: /a\x1b[2J\n", -EBADMSG, 1, 14, "", "control character U+001B"},
        {"state-dir: /\xff\n", -EBADMSG, 1, 13, "", "invalid UTF-8"},
        {"state-dir: \"/a\\nb\"\n", -EBADMSG, 1, 12, "state-dir", "control character U+000A"},
        {"", -EBADMSG, 1, 1, "", "empty document"},
        {"# nothing but a comment\n", -EBADMSG, 1, 1, "", "empty document"},
        {"- server\n", -EBADMSG, 1, 1, "", "expected a mapping at the top of the document"},
        {"groups: [a]\n---\ngroups: [b]\n", -EBADMSG, 2, 1, "", "more than one document"},
        {"server: {urls: [a\n", -EBADMSG, 2, 1, "server.urls", "invalid YAML"},
        {"groups: &g [a]\n", -EBADMSG, 1, 9, "groups", "aliases and anchors are not allowed"},
        {"groups: [a]\nstate-dir: *g\n", -EBADMSG, 2, 12, "state-dir", "aliases and anchors"},
        {"state-dir: !!str /x\n", -EBADMSG, 1, 12, "state-dir", "tags are not allowed"},
        {"server: {urls: [[[https://x]]]}\n", -E2BIG, 1, 18, "server.urls[0][0]",
         "nesting deeper than 4 levels"},

        /* Keys */
        {"foo: 1\n", -EBADMSG, 1, 1, "foo", "unknown key 'foo'"},
        {"State-Dir: /x\n", -EBADMSG, 1, 1, "State-Dir", "unknown key 'State-Dir'"},
        {"server:\n  url: https://x\n", -EBADMSG, 2, 3, "server.url", "unknown key 'url'"},
        {"rebuild: {cmd: x}\n", -EBADMSG, 1, 11, "rebuild.cmd", "unknown key 'cmd'"},
        {"nixprov: 1\n", -EBADMSG, 1, 1, "nixprov", "unknown key 'nixprov'"},
        {"groups: [a]\ngroups: [b]\n", -EBADMSG, 2, 1, "groups",
         "duplicate key 'groups' (first at line 1)"},
        {"server:\n  deadline: 5\n  deadline: 6\n", -EBADMSG, 3, 3, "server.deadline",
         "duplicate key 'deadline' (first at line 2)"},
        {"? [a]\n: 1\n", -EBADMSG, 1, 3, "", "expected a key, got a list"},

        /* Types */
        {"server: https://x\n", -EBADMSG, 1, 9, "server", "expected a mapping, got 'https://x'"},
        {"server: {urls: https://x}\n", -EBADMSG, 1, 16, "server.urls",
         "expected a list, got 'https://x'"},
        {"server: {urls: [{a: b}]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "expected a URL, got a mapping"},
        {"server: {connect-timeout: \"10\"}\n", -EBADMSG, 1, 27, "server.connect-timeout",
         "expected an unsigned integer, got a quoted string"},
        {"server: {deadline: ~}\n", -EBADMSG, 1, 20, "server.deadline",
         "expected an unsigned integer, got nothing"},
        {"server: {deadline: -1}\n", -EBADMSG, 1, 20, "server.deadline",
         "expected an unsigned integer, got '-1'"},
        {"server: {deadline: 0x10}\n", -EBADMSG, 1, 20, "server.deadline",
         "expected an unsigned integer"},
        {"state-dir: null\n", -EBADMSG, 1, 12, "state-dir",
         "expected an absolute path, got nothing"},
        {"state-dir: [/x]\n", -EBADMSG, 1, 12, "state-dir", "expected an absolute path, got a list"},
        {"groups: edge\n", -EBADMSG, 1, 9, "groups", "expected a list, got 'edge'"},
        {"groups: [[a]]\n", -EBADMSG, 1, 10, "groups[0]", "expected a group name, got a list"},
        {"trusted-keys: " FLEET_KEY "\n", -EBADMSG, 1, 15, "trusted-keys",
         "expected a list of public keys"},
        {"trusted-keys: [[a]]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "expected a public key, got a list"},
        {"trusted-keys: [\"\"]\n", -EBADMSG, 1, 16, "trusted-keys[0]", "invalid public key ''"},
        {"rebuild: {command: [a]}\n", -EBADMSG, 1, 20, "rebuild.command",
         "expected a command, got a list"},
        {"rebuild: []\n", -EBADMSG, 1, 10, "rebuild", "expected a mapping, got a list"},

        /* Ranges */
        {"server: {connect-timeout: 0}\n", -EBADMSG, 1, 27, "server.connect-timeout",
         "value 0 is out of range 1..600"},
        {"server: {connect-timeout: 601}\n", -EBADMSG, 1, 27, "server.connect-timeout",
         "value 601 is out of range 1..600"},
        {"server: {deadline: 0}\n", -EBADMSG, 1, 20, "server.deadline",
         "value 0 is out of range 1..86400"},
        {"server: {deadline: 86401}\n", -EBADMSG, 1, 20, "server.deadline",
         "value 86401 is out of range 1..86400"},
        {"server: {deadline: 18446744073709551616}\n", -EBADMSG, 1, 20, "server.deadline",
         "value '18446744073709551616' is out of range"},

        /* URLs */
        {"server: {urls: [ftp://x]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "invalid URL 'ftp://x': expected http://, https:// or file://"},
        {"server: {urls: [HTTPS://x]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "expected http://, https:// or file://"},
        {"server: {urls: [prov.example.org]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "expected http://, https:// or file://"},
        {"server: {urls: [\"https://\"]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "nothing after the scheme"},
        {"server:\n  urls:\n    - https://a\n    - \"https://b c\"\n", -EBADMSG, 4, 7,
         "server.urls[1]", "invalid URL 'https://b c': white space"},
        {"server: {urls: [\"https://\xc3\xa9\"]}\n", -EBADMSG, 1, 17, "server.urls[0]",
         "non-ASCII"},

        /* Trusted keys */
        {"trusted-keys: [RWSD43coa]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "invalid public key 'RWSD43coa' (expected a minisign public key line or the absolute "
         "path of a .pub file)"},
        {"trusted-keys:\n  - " FLEET_KEY "\n  - " OTHER_KEY "x\n", -EBADMSG, 3, 5,
         "trusted-keys[1]", "invalid public key"},
        {"trusted-keys: [keys/fleet.pub]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "invalid public key 'keys/fleet.pub'"},
        {"trusted-keys:\n  - " FLEET_KEY "\n  - /nonexistent/fleet.pub\n", -EBADMSG, 3, 5,
         "trusted-keys[1]",
         "cannot read key file '/nonexistent/fleet.pub': No such file or directory"},
        {"trusted-keys: [" KEYS_DIR "]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "not a regular file"},
        {"trusted-keys: [/dev/null]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "cannot read key file '/dev/null': not a regular file"},
        {"trusted-keys: [" KEYS_DIR "/fleet.sec]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "is not a minisign public key file"},
        {"trusted-keys: [" KEYS_DIR "/README.md]\n", -EBADMSG, 1, 16, "trusted-keys[0]",
         "is not a minisign public key file"},

        /* Groups */
        {"groups: [Edge]\n", -EBADMSG, 1, 10, "groups[0]",
         "invalid group name 'Edge' (expected [a-z0-9][a-z0-9._-]*)"},
        {"groups: [edge, -lab]\n", -EBADMSG, 1, 16, "groups[1]", "invalid group name '-lab'"},
        {"groups: [\"\"]\n", -EBADMSG, 1, 10, "groups[0]", "invalid group name ''"},
        {"groups: [\"a b\"]\n", -EBADMSG, 1, 10, "groups[0]", "invalid group name 'a b'"},
        {"groups: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", -EBADMSG,
         1, 10, "groups[0]", "invalid group name"},

        /* Paths */
        {"state-dir: var/lib/nixprov\n", -EBADMSG, 1, 12, "state-dir",
         "invalid path 'var/lib/nixprov': not an absolute path"},
        {"log-dir: \"~/logs\"\n", -EBADMSG, 1, 10, "log-dir", "not an absolute path"},
        {"log-dir: \"\"\n", -EBADMSG, 1, 10, "log-dir", "not an absolute path"},
        {"server: {ca-file: ca.pem}\n", -EBADMSG, 1, 19, "server.ca-file",
         "invalid path 'ca.pem': not an absolute path"},

        /* Rebuild */
        {"rebuild: {command: nixos-rebuild --fast}\n", -EBADMSG, 1, 20, "rebuild.command",
         "invalid command 'nixos-rebuild --fast': white space"},
        {"rebuild: {command: bin/nixos-rebuild}\n", -EBADMSG, 1, 20, "rebuild.command",
         "expected a program name or an absolute path"},
        {"rebuild: {command: \"\"}\n", -EBADMSG, 1, 20, "rebuild.command",
         "invalid command '': empty"},
        {"rebuild: {dry-run-command: nix build}\n", -EBADMSG, 1, 28, "rebuild.dry-run-command",
         "invalid command 'nix build': white space"},
        {"rebuild: {path: /bin::/usr/bin}\n", -EBADMSG, 1, 17, "rebuild.path",
         "invalid search path '/bin::/usr/bin': an empty entry"},
        {"rebuild: {path: \"/bin:\"}\n", -EBADMSG, 1, 17, "rebuild.path", "an empty entry"},
        {"rebuild: {path: \"\"}\n", -EBADMSG, 1, 17, "rebuild.path", "an empty entry"},
        {"rebuild: {path: /bin:usr/bin}\n", -EBADMSG, 1, 17, "rebuild.path",
         "an entry that is not an absolute path"},

        /* Enroll */
        {"enroll: {token-file: token}\n", -EBADMSG, 1, 22, "enroll.token-file",
         "invalid path 'token': not an absolute path"},
        {"enroll: {wait: 604801}\n", -EBADMSG, 1, 16, "enroll.wait",
         "value 604801 is out of range 0..604800"},
        {"enroll: {wait: -1}\n", -EBADMSG, 1, 16, "enroll.wait",
         "expected an unsigned integer, got '-1'"},
        {"enroll: {token: x}\n", -EBADMSG, 1, 10, "enroll.token", "unknown key 'token'"},
};
/* clang-format on */

static void test_bad(void **state)
{
        unsigned failed = 0;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                struct agent_config *config = NULL;
                struct profile_error e = {};
                size_t size = strlen(c->yaml);
                int r;

                if (strstr(c->message, "NUL"))
                        size += 2; /* "...\0\n" */
                r = agent_config_parse(c->yaml, size, "agent.yaml", &config, &e);
                if (r != c->error || e.line != c->line || e.column != c->column ||
                    !streq(e.key, c->key) || !strstr(e.message, c->message) ||
                    !streq(e.file, "agent.yaml") || config) {
                        print_error("case %zu:\n%s\nexpected %d at %u:%u '%s': ...%s...\n"
                                    "got      %d at %u:%u '%s': %s\n\n",
                                    i, c->yaml, c->error, c->line, c->column, c->key, c->message, r,
                                    e.line, e.column, e.key, e.message);
                        failed++;
                }
                config = agent_config_free(config);
        }
        assert_int_equal(failed, 0);
}

/* ---- limits ---- */

static void expect_error(const char *yaml, size_t size, int error, unsigned line, unsigned column,
                         const char *key, const char *message)
{
        struct agent_config *c = NULL;
        struct profile_error e = {};
        int r;

        r = agent_config_parse(yaml, size, "agent.yaml", &c, &e);
        assert_null(c);
        if (r != error || e.line != line || e.column != column || !streq(e.key, key) ||
            !strstr(e.message, message))
                fail_msg("expected %d at %u:%u '%s': ...%s...\ngot      %d at %u:%u '%s': %s",
                         error, line, column, key, message, r, e.line, e.column, e.key, e.message);
}

static char *repeat(const char *head, const char *item, size_t n, const char *tail)
{
        struct buf b = BUF_INIT(1024 * 1024);

        assert_int_equal(buf_puts(&b, head), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(buf_printf(&b, item, i), 0);
        assert_int_equal(buf_puts(&b, tail), 0);
        return buf_steal(&b, NULL);
}

static void test_limits(void **state)
{
        _cleanup_free_ char *big = NULL, *long_value = NULL, *urls = NULL, *keys = NULL,
                            *groups = NULL, *yaml = NULL;
        struct agent_config *c = NULL;

        (void)state;
        big = malloc(AGENT_CONFIG_MAX_BYTES + 1);
        assert_non_null(big);
        memset(big, '#', AGENT_CONFIG_MAX_BYTES + 1);
        expect_error(big, AGENT_CONFIG_MAX_BYTES + 1, -E2BIG, 0, 0, "", "larger than 64 KiB");

        long_value = repeat("state-dir: /", "a", AGENT_CONFIG_MAX_VALUE, "\n");
        expect_error(long_value, strlen(long_value), -E2BIG, 1, 12, "state-dir",
                     "value longer than 4096 bytes");
        /* One byte less fits. */
        long_value[strlen(long_value) - 2] = '\n';
        long_value[strlen(long_value) - 1] = '\0';
        assert_int_equal(agent_config_parse(long_value, strlen(long_value), NULL, &c, NULL), 0);
        assert_int_equal(strlen(c->state_dir), AGENT_CONFIG_MAX_VALUE);
        c = agent_config_free(c);

        /* Lists: line i + 3 holds item i. */
        urls = repeat("server:\n  urls:\n", "    - https://m%zu.example.org\n",
                      AGENT_CONFIG_MAX_URLS + 1, "");
        expect_error(urls, strlen(urls), -E2BIG, AGENT_CONFIG_MAX_URLS + 3, 7, "server.urls[16]",
                     "more than 16 items");
        keys = repeat("trusted-keys:\n", "  - " FLEET_KEY "\n", AGENT_CONFIG_MAX_KEYS + 1, "");
        expect_error(keys, strlen(keys), -E2BIG, AGENT_CONFIG_MAX_KEYS + 2, 5, "trusted-keys[16]",
                     "more than 16 keys");
        groups = repeat("groups:\n", "  - g%zu\n", AGENT_CONFIG_MAX_GROUPS + 1, "");
        expect_error(groups, strlen(groups), -E2BIG, AGENT_CONFIG_MAX_GROUPS + 2, 5, "groups[64]",
                     "more than 64 items");

        /* Exactly at the limits. */
        yaml = repeat("groups:\n", "  - g%zu\n", AGENT_CONFIG_MAX_GROUPS, "");
        assert_int_equal(agent_config_parse(yaml, strlen(yaml), NULL, &c, NULL), 0);
        assert_int_equal(c->n_groups, AGENT_CONFIG_MAX_GROUPS);
        assert_string_equal(c->groups[63], "g63");
        c = agent_config_free(c);
        free(yaml);
        yaml = repeat("trusted-keys:\n", "  - " FLEET_KEY "\n", AGENT_CONFIG_MAX_KEYS, "");
        assert_int_equal(agent_config_parse(yaml, strlen(yaml), NULL, &c, NULL), 0);
        assert_int_equal(c->n_keys, AGENT_CONFIG_MAX_KEYS);
        c = agent_config_free(c);
}

/* ---- valid files ---- */

static struct agent_config *parse_ok(const char *yaml)
{
        struct agent_config *c = NULL;
        struct profile_error e = {};
        int r;

        r = agent_config_parse(yaml, strlen(yaml), "agent.yaml", &c, &e);
        if (r < 0)
                fail_msg("%s\nfailed: %d at %u:%u '%s': %s", yaml, r, e.line, e.column, e.key,
                         e.message);
        assert_non_null(c);
        return c;
}

static void assert_defaults(const struct agent_config *c)
{
        assert_int_equal(c->n_urls, 0);
        assert_null(c->ca_file);
        assert_int_equal(c->connect_timeout, AGENT_CONFIG_CONNECT_TIMEOUT_DEFAULT);
        assert_int_equal(c->deadline, AGENT_CONFIG_DEADLINE_DEFAULT);
        assert_int_equal(c->n_keys, 0);
        assert_int_equal(c->n_groups, 0);
        assert_string_equal(c->state_dir, AGENT_CONFIG_STATE_DIR_DEFAULT);
        assert_string_equal(c->log_dir, AGENT_CONFIG_LOG_DIR_DEFAULT);
        assert_string_equal(c->rebuild_command, AGENT_CONFIG_REBUILD_COMMAND_DEFAULT);
        assert_null(c->rebuild_path);
        assert_null(c->dry_run_command);
        assert_null(c->enroll_token_file);
        assert_int_equal(c->enroll_wait, AGENT_CONFIG_ENROLL_WAIT_DEFAULT);
}

static void load_key(const char *name, struct minisign_public_key *ret)
{
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/%s", KEYS_DIR, name) > 0);
        assert_int_equal(keyfile_load_public(path, ret), 0);
}

static void assert_key(const struct minisign_public_key *key, const char *name)
{
        struct minisign_public_key expected;

        load_key(name, &expected);
        assert_memory_equal(key, &expected, sizeof(expected));
}

static void test_defaults(void **state)
{
        _cleanup_(agent_config_freep) struct agent_config *empty = parse_ok("{}\n");
        _cleanup_(agent_config_freep) struct agent_config *sections =
            parse_ok("server: {}\nrebuild: {}\ngroups: []\ntrusted-keys: []\n");
        _cleanup_(agent_config_freep) struct agent_config *fresh = NULL;

        (void)state;
        assert_defaults(empty);
        assert_defaults(sections);
        assert_int_equal(agent_config_new_default(&fresh), 0);
        assert_defaults(fresh);
        /* Zero URLs in the file: the command line may give them. */
        assert_null(agent_config_free(NULL));
}

static void test_values(void **state)
{
        _cleanup_(agent_config_freep) struct agent_config *c =
            parse_ok("server:\n"
                     "  urls: [https://prov.example.org/base, \"http://10.0.0.1:8080\",\n"
                     "         'file:///run/media/nixprov']\n"
                     "  ca-file: /etc/nixprov/ca.pem\n"
                     "  connect-timeout: 600\n"
                     "  deadline: 1\n"
                     "trusted-keys:\n"
                     "  - " FLEET_KEY "\n"
                     "  - " KEYS_DIR "/other.pub\n"
                     "  - \"" KEYS_DIR "/rotated.pub\"\n"
                     "groups: [edge, edge.lab-2, 0_x]\n"
                     "state-dir: /srv/state dir\n"
                     "log-dir: /var/log/nixprov/\n"
                     "rebuild:\n"
                     "  command: /run/current-system/sw/bin/nixos-rebuild\n"
                     "  dry-run-command: /usr/local/bin/dry-build\n"
                     "  path: /bin\n"
                     "enroll:\n"
                     "  token-file: /etc/nixprov/enroll-token\n"
                     "  wait: 0\n");

        (void)state;
        assert_int_equal(c->n_urls, 3);
        assert_string_equal(c->urls[0], "https://prov.example.org/base");
        assert_string_equal(c->urls[1], "http://10.0.0.1:8080");
        assert_string_equal(c->urls[2], "file:///run/media/nixprov");
        assert_string_equal(c->ca_file, "/etc/nixprov/ca.pem");
        assert_int_equal(c->connect_timeout, 600);
        assert_int_equal(c->deadline, 1);
        assert_int_equal(c->n_keys, 3);
        assert_key(&c->keys[0], "fleet.pub");
        assert_key(&c->keys[1], "other.pub");
        assert_key(&c->keys[2], "rotated.pub");
        assert_int_equal(c->n_groups, 3);
        assert_string_equal(c->groups[0], "edge");
        assert_string_equal(c->groups[1], "edge.lab-2");
        assert_string_equal(c->groups[2], "0_x");
        assert_string_equal(c->state_dir, "/srv/state dir");
        assert_string_equal(c->log_dir, "/var/log/nixprov/");
        assert_string_equal(c->rebuild_command, "/run/current-system/sw/bin/nixos-rebuild");
        assert_string_equal(c->rebuild_path, "/bin");
        assert_string_equal(c->dry_run_command, "/usr/local/bin/dry-build");
        assert_string_equal(c->enroll_token_file, "/etc/nixprov/enroll-token");
        assert_int_equal(c->enroll_wait, 0);
}

static void test_example(void **state)
{
        _cleanup_(agent_config_freep) struct agent_config *c = NULL;
        _cleanup_free_ char *data = NULL;
        struct profile_error e = {};
        size_t size;
        int r;

        (void)state;
        assert_int_equal(read_file_bounded(EXAMPLE, AGENT_CONFIG_MAX_BYTES, &data, &size), 0);
        r = agent_config_parse(data, size, "agent.yaml", &c, &e);
        if (r < 0)
                fail_msg("configs/agent.yaml: %d at %u:%u '%s': %s", r, e.line, e.column, e.key,
                         e.message);
        assert_int_equal(c->n_urls, 2);
        assert_string_equal(c->urls[0], "https://prov.example.org");
        assert_string_equal(c->urls[1], "https://mirror.example.org");
        assert_null(c->ca_file);
        assert_int_equal(c->connect_timeout, AGENT_CONFIG_CONNECT_TIMEOUT_DEFAULT);
        assert_int_equal(c->deadline, AGENT_CONFIG_DEADLINE_DEFAULT);
        assert_int_equal(c->n_keys, 1);
        assert_key(&c->keys[0], "fleet.pub");
        assert_int_equal(c->n_groups, 1);
        assert_string_equal(c->groups[0], "edge");
        assert_string_equal(c->state_dir, AGENT_CONFIG_STATE_DIR_DEFAULT);
        assert_string_equal(c->log_dir, AGENT_CONFIG_LOG_DIR_DEFAULT);
        assert_string_equal(c->rebuild_command, AGENT_CONFIG_REBUILD_COMMAND_DEFAULT);
        assert_string_equal(c->rebuild_path, "/run/current-system/sw/bin:/usr/bin:/bin");
}

static void test_api_edges(void **state)
{
        struct agent_config *c = NULL;
        struct profile_error e = {.line = 42};
        int r;

        (void)state;
        /* No error record, no file name. */
        r = agent_config_parse("foo: 1\n", 7, NULL, &c, NULL);
        assert_int_equal(r, -EBADMSG);
        assert_null(c);
        r = agent_config_parse("foo: 1\n", 7, NULL, &c, &e);
        assert_int_equal(r, -EBADMSG);
        assert_string_equal(e.file, "");
        assert_int_equal(e.line, 1);
        /* data NULL: empty with size 0, refused otherwise (the record untouched). */
        e.line = 42;
        assert_int_equal(agent_config_parse(NULL, 0, NULL, &c, &e), -EBADMSG);
        assert_string_equal(e.message, "empty document");
        e.line = 42;
        assert_int_equal(agent_config_parse(NULL, 1, NULL, &c, &e), -EINVAL);
        assert_int_equal(e.line, 42);
        /* Only size bytes are read. */
        r = agent_config_parse("groups: [a]\nfoo: 1", 12, NULL, &c, NULL);
        assert_int_equal(r, 0);
        assert_int_equal(c->n_groups, 1);
        c = agent_config_free(c);
        /* A byte order mark is skipped. */
        r = agent_config_parse("\xef\xbb\xbfgroups: [a]\n", 15, NULL, &c, NULL);
        assert_int_equal(r, 0);
        c = agent_config_free(c);
}

/* ---- the kernel command line ---- */

/* A configuration as a file would give it, to be overridden. */
static struct agent_config *configured(void)
{
        return parse_ok("server: {urls: [https://file.example.org, https://mirror.example.org]}\n"
                        "trusted-keys: [" FLEET_KEY "]\n"
                        "groups: [from-file]\n");
}

static void assert_configured(const struct agent_config *c)
{
        assert_int_equal(c->n_urls, 2);
        assert_string_equal(c->urls[0], "https://file.example.org");
        assert_string_equal(c->urls[1], "https://mirror.example.org");
        assert_int_equal(c->n_keys, 1);
        assert_key(&c->keys[0], "fleet.pub");
        assert_int_equal(c->n_groups, 1);
        assert_string_equal(c->groups[0], "from-file");
}

struct cmdline_bad_case {
        const char *cmdline;
        int error;
        const char *bad_word;
};

/* clang-format off */
static const struct cmdline_bad_case cmdline_bad_cases[] = {
        {"nixprov.url=ftp://x", -EINVAL, "nixprov.url=ftp://x"},
        {"quiet nixprov.url=https://ok nixprov.url=prov.example.org splash", -EINVAL,
         "nixprov.url=prov.example.org"},
        {"nixprov.url", -EINVAL, "nixprov.url"},
        {"nixprov.url=", -EINVAL, "nixprov.url="},
        {"nixprov.url=\"\"", -EINVAL, "nixprov.url=\"\""},
        {"nixprov.url=https://", -EINVAL, "nixprov.url=https://"},
        {"\"nixprov.url=https://a b\"", -EINVAL, "\"nixprov.url=https://a b\""},
        {"nixprov.url=\"https://a\tb\"", -EINVAL, "nixprov.url=\"https://a\tb\""},
        {"nixprov.url=https://\xc3\xa9", -EINVAL, "nixprov.url=https://\xc3\xa9"},
        {"nixprov.key=RWSD43coa", -EINVAL, "nixprov.key=RWSD43coa"},
        {"nixprov.key=" KEYS_DIR "/other.pub", -EINVAL, "nixprov.key=" KEYS_DIR "/other.pub"},
        {"nixprov.key", -EINVAL, "nixprov.key"},
        {"nixprov.key=\"untrusted comment: x\n" OTHER_KEY "\"", -EINVAL,
         "nixprov.key=\"untrusted comment: x\n" OTHER_KEY "\""},
        {"nixprov.group=Edge", -EINVAL, "nixprov.group=Edge"},
        {"nixprov.group=", -EINVAL, "nixprov.group="},
        {"nixprov.group=\"a b\"", -EINVAL, "nixprov.group=\"a b\""},
        /* Good words first: nothing of them may stick. */
        {"nixprov.url=https://new nixprov.group=edge nixprov.key=" OTHER_KEY " nixprov.key=x",
         -EINVAL, "nixprov.key=x"},
        {"nixprov.group=edge\nnixprov.url=file:///ok\tnixprov.url=gopher://x\n", -EINVAL,
         "nixprov.url=gopher://x"},
};
/* clang-format on */

static void test_cmdline_bad(void **state)
{
        unsigned failed = 0;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cmdline_bad_cases); i++) {
                const struct cmdline_bad_case *t = &cmdline_bad_cases[i];
                _cleanup_(agent_config_freep) struct agent_config *c = configured();
                _cleanup_free_ char *bad = NULL;
                char **urls = c->urls;
                int r;

                r = agent_config_apply_cmdline(c, t->cmdline, &bad);
                if (r != t->error || !bad || !streq(bad, t->bad_word)) {
                        print_error("case %zu: '%s'\nexpected %d '%s'\ngot      %d '%s'\n\n", i,
                                    t->cmdline, t->error, t->bad_word, r, bad ? bad : "(null)");
                        failed++;
                }
                /* Unchanged, down to the list itself. */
                assert_ptr_equal(c->urls, urls);
                assert_configured(c);
                /* Without a place for the word. */
                assert_int_equal(agent_config_apply_cmdline(c, t->cmdline, NULL), t->error);
                assert_configured(c);
        }
        assert_int_equal(failed, 0);
}

static void test_cmdline_limits(void **state)
{
        _cleanup_(agent_config_freep) struct agent_config *c = configured();
        _cleanup_free_ char *urls = NULL, *keys = NULL, *groups = NULL, *bad = NULL;

        (void)state;
        urls = repeat("", "nixprov.url=https://m%zu ", AGENT_CONFIG_MAX_URLS + 1, "\n");
        assert_int_equal(agent_config_apply_cmdline(c, urls, &bad), -E2BIG);
        assert_string_equal(bad, "nixprov.url=https://m16");
        free(bad);
        bad = NULL;
        keys = repeat("", "nixprov.key=" FLEET_KEY " ", AGENT_CONFIG_MAX_KEYS + 1, "");
        assert_int_equal(agent_config_apply_cmdline(c, keys, &bad), -E2BIG);
        assert_string_equal(bad, "nixprov.key=" FLEET_KEY);
        free(bad);
        bad = NULL;
        groups = repeat("", "nixprov.group=g%zu ", AGENT_CONFIG_MAX_GROUPS + 1, "");
        assert_int_equal(agent_config_apply_cmdline(c, groups, &bad), -E2BIG);
        assert_string_equal(bad, "nixprov.group=g64");
        assert_configured(c);

        /* At the limit. */
        groups[strlen(groups) - strlen("nixprov.group=g64 ")] = '\0';
        assert_int_equal(agent_config_apply_cmdline(c, groups, NULL), 0);
        assert_int_equal(c->n_groups, AGENT_CONFIG_MAX_GROUPS);
        assert_string_equal(c->groups[63], "g63");
}

static void test_cmdline(void **state)
{
        (void)state;

        /* Nothing of ours: nothing changes. */
        static const char *const unrelated[] = {
            "",
            "\n",
            "BOOT_IMAGE=/boot/bzImage root=/dev/sda1 ro quiet splash\n",
            "nixprov.foo=bar nixprovurl=x nixprov.urls=ftp://x xnixprov.url=ftp://x",
            /* Inside quotes, a nixprov word is a part of another parameter's value. */
            "init=/bin/sh foo=\"a nixprov.url=ftp://x b\" \"bar nixprov.group=BAD\"",
            "=nixprov.url=ftp://x",
        };
        for (size_t i = 0; i < ELEMENTSOF(unrelated); i++) {
                _cleanup_(agent_config_freep) struct agent_config *c = configured();

                if (agent_config_apply_cmdline(c, unrelated[i], NULL) != 0)
                        fail_msg("'%s' was not ignored", unrelated[i]);
                assert_configured(c);
        }

        /* URLs only: they replace the file's, in order; keys and groups stay. */
        {
                _cleanup_(agent_config_freep) struct agent_config *c = configured();

                assert_int_equal(agent_config_apply_cmdline(
                                     c,
                                     "BOOT_IMAGE=/vmlinuz nixprov.url=https://a.example.org "
                                     "quiet nixprov.url=file:///run/media\n",
                                     NULL),
                                 0);
                assert_int_equal(c->n_urls, 2);
                assert_string_equal(c->urls[0], "https://a.example.org");
                assert_string_equal(c->urls[1], "file:///run/media");
                assert_int_equal(c->n_keys, 1);
                assert_key(&c->keys[0], "fleet.pub");
                assert_int_equal(c->n_groups, 1);
                assert_string_equal(c->groups[0], "from-file");
        }

        /* Keys and groups, with the kernel's quoting and any white space between words. */
        {
                _cleanup_(agent_config_freep) struct agent_config *c = configured();

                assert_int_equal(agent_config_apply_cmdline(
                                     c,
                                     "  nixprov.key=\"" OTHER_KEY "\"\tnixprov.group=lab\n"
                                     "\"nixprov.key=" FLEET_KEY "\" nixprov.group=\"edge.2\"  ",
                                     NULL),
                                 0);
                assert_int_equal(c->n_urls, 2);
                assert_string_equal(c->urls[0], "https://file.example.org");
                assert_int_equal(c->n_keys, 2);
                assert_key(&c->keys[0], "other.pub");
                assert_key(&c->keys[1], "fleet.pub");
                assert_int_equal(c->n_groups, 2);
                assert_string_equal(c->groups[0], "lab");
                assert_string_equal(c->groups[1], "edge.2");
        }

        /* A configuration made by the command line alone. */
        {
                _cleanup_(agent_config_freep) struct agent_config *c = NULL;
                _cleanup_free_ char *bad = NULL;

                assert_int_equal(agent_config_new_default(&c), 0);
                assert_int_equal(
                    agent_config_apply_cmdline(c,
                                               "nixprov.url=https://prov nixprov.key=" FLEET_KEY
                                               " nixprov.group=edge nixprov.group=edge",
                                               &bad),
                    0);
                assert_null(bad);
                assert_int_equal(c->n_urls, 1);
                assert_string_equal(c->urls[0], "https://prov");
                assert_int_equal(c->n_keys, 1);
                assert_int_equal(c->n_groups, 2);
                assert_string_equal(c->state_dir, AGENT_CONFIG_STATE_DIR_DEFAULT);
                /* Applied twice: the second replaces the first. */
                assert_int_equal(agent_config_apply_cmdline(c, "nixprov.url=http://other", NULL),
                                 0);
                assert_int_equal(c->n_urls, 1);
                assert_string_equal(c->urls[0], "http://other");
                assert_int_equal(c->n_groups, 2);
        }

        assert_int_equal(agent_config_apply_cmdline(NULL, "", NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bad),         cmocka_unit_test(test_limits),
            cmocka_unit_test(test_defaults),    cmocka_unit_test(test_values),
            cmocka_unit_test(test_example),     cmocka_unit_test(test_api_edges),
            cmocka_unit_test(test_cmdline_bad), cmocka_unit_test(test_cmdline_limits),
            cmocka_unit_test(test_cmdline),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
