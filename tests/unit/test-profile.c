/* SPDX-License-Identifier: MIT */
/* The profile parser: hostile documents first, then what valid ones parse to. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "profile.h"
#include "util.h"

#define EXAMPLES_DIR TEST_DATA_DIR "/../../configs/profiles"

/* Lines 1-5 of most cases: a valid profile. What a case adds starts on line 6. */
#define HEAD                                                                                       \
        "nixprov: 1\n"                                                                             \
        "serial: 7\n"                                                                              \
        "expires: 2099-01-01T00:00:00Z\n"                                                          \
        "strategy: source\n"                                                                       \
        "machines: [4c4c4544004d3510804fb4c04f4d3732]\n"

#define ED25519_KEY                                                                                \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d/3R4BTCScNXUNv0DDh0cjKjz0Adl+65jaeGWbN"
#define ED25519_KEY2                                                                               \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFa1oChmDnitJgsHIdZNxrPbBF5Cf/kP7TDa73cEpYWO"
#define ECDSA_KEY                                                                                  \
        "ecdsa-sha2-nistp256 "                                                                     \
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPDVa9GPnlsfpIkI492bRrz9/"            \
        "tym086NaCfxaJtv6+p+u27S07kdURutN14AUB8AhEYtQ2ZpgWYfc1DygHM7CZg="
#define RSA_KEY                                                                                    \
        "ssh-rsa "                                                                                 \
        "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDEeA80tgRJPLE5gGx6BtbsmrsNxckYaUD0"                         \
        "jg+tNHdGgF1E4LJ7HiyODOU1adKL4IjmOkX6H1IKmgKVZN12TKCrC7Ch9aeUN8fe"                         \
        "1TjgNrHvEyCPr8+Z7NYAMaALlSFMjC+htMTJsedmx77HlfJQTeb4x3eioKNEJWGO"                         \
        "dXHQNMQ5gw=="
/* base64 of the bytes 0, 1, ..., 63: a sealed box is at least 49 bytes. */
#define SEALED_64                                                                                  \
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
#define SEALED_48 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SEALED_49 SEALED_48 "AA=="
#define CACHE_KEY "fleet.cachix.org-1:mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY="

/* Lines 6-9: one valid builder; what a case adds to it starts on line 10, column 5. */
#define BUILDER                                                                                    \
        HEAD "builders:\n"                                                                         \
             "  - uri: ssh://nix@b1\n"                                                             \
             "    systems: [x86_64-linux]\n"                                                       \
             "    host-key: " ED25519_KEY "\n"

/* Lines 6-8: one valid cache; what a case adds starts on line 9, column 5. */
#define CACHE                                                                                      \
        HEAD "cachix:\n"                                                                           \
             "  - name: fleet\n"                                                                   \
             "    public-key: " CACHE_KEY "\n"

struct bad_case {
        const char *yaml;
        int error;
        unsigned line, column;
        const char *key;
        const char *message; /* a part of the message */
};

/* clang-format off */
static const struct bad_case bad_cases[] = {
        /* Bytes */
        {"nixprov: 1\0\n", -EBADMSG, 1, 11, "", "NUL bytes are not allowed"},
        {HEAD "foo: \xff\n", -EBADMSG, 6, 6, "", "invalid UTF-8"},
        {HEAD "foo: \xc0\xaf\n", -EBADMSG, 6, 6, "", "invalid UTF-8"},     /* overlong */
        {HEAD "foo: \xed\xa0\x80\n", -EBADMSG, 6, 6, "", "invalid UTF-8"}, /* surrogate */
        {HEAD "foo: \xe2\x82\n", -EBADMSG, 6, 6, "", "invalid UTF-8"},     /* truncated */
        {HEAD "foo: a\x01\n", -EBADMSG, 6, 7, "", "control character U+0001"},
        {HEAD "foo: a\x1b[2J\n", -EBADMSG, 6, 7, "", "control character U+001B"},
        /* a noncharacter: valid UTF-8 that libyaml's reader refuses, by byte offset */
        {"nixprov: 1\nfoo: a\xef\xbf\xbe\n", -EBADMSG, 2, 7, "",
         "invalid YAML: control characters are not allowed"},

        /* YAML structure */
        {"", -EBADMSG, 1, 1, "", "empty document"},
        {"# nothing but a comment\n", -EBADMSG, 1, 1, "", "empty document"},
        {"---\n", -EBADMSG, 2, 1, "", "empty document"},
        {"- nixprov\n", -EBADMSG, 1, 1, "", "expected a mapping at the top of the document"},
        {"nixprov\n", -EBADMSG, 1, 1, "", "expected a mapping at the top of the document"},
        {HEAD "---\nnixprov: 1\n", -EBADMSG, 6, 1, "", "more than one document"},
        {HEAD "...\n---\n", -EBADMSG, 7, 1, "", "more than one document"},
        {"nixprov: 1\nserial: 7: 8\n", -EBADMSG, 2, 10, "", "invalid YAML"},
        {"nixprov: [1\n", -EBADMSG, 2, 1, "nixprov",
         "invalid YAML: did not find expected ',' or ']'"},
        {HEAD "rebuild:\n\taction: boot\n", -EBADMSG, 7, 1, "rebuild",
         "invalid YAML: found character that cannot start any token"},
        {HEAD "report: &r {interval: 5}\n", -EBADMSG, 6, 9, "report",
         "aliases and anchors are not allowed"},
        {HEAD "rebuild: {action: &a boot}\nreport: *a\n", -EBADMSG, 6, 19, "rebuild.action",
         "aliases and anchors are not allowed"},
        {"nixprov: 1\nserial: &s 7\n", -EBADMSG, 2, 9, "serial", "aliases and anchors"},
        {HEAD "x: *a\n", -EBADMSG, 6, 4, "x", "aliases and anchors are not allowed"},
        {HEAD "<<: *base\n", -EBADMSG, 6, 5, "<<", "aliases and anchors are not allowed"},
        {"nixprov: 1\nserial: !!int 7\n", -EBADMSG, 2, 9, "serial", "tags are not allowed"},
        {HEAD "rebuild: {flake: !!str x}\n", -EBADMSG, 6, 18, "rebuild.flake",
         "tags are not allowed"},
        {HEAD "report: !foo {interval: 5}\n", -EBADMSG, 6, 9, "report", "tags are not allowed"},
        {HEAD "groups: !!seq [a]\n", -EBADMSG, 6, 9, "groups", "tags are not allowed"},
        {HEAD "rebuild: {action: ! boot}\n", -EBADMSG, 6, 19, "rebuild.action",
         "tags are not allowed"},
        {HEAD "nix: {settings: {a: [[[[[[[[1]]]]]]]]}}\n", -E2BIG, 6, 26,
         "nix.settings.a[0][0][0][0][0]", "nesting deeper than 8 levels"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
         -E2BIG, 1, 9, "[0][0][0][0][0][0][0][0]", "nesting deeper than 8 levels"},
        {"? [a]\n: 1\n", -EBADMSG, 1, 3, "", "expected a key, got a list"},

        /* Keys */
        {HEAD "foo: 1\n", -EBADMSG, 6, 1, "foo", "unknown key 'foo'"},
        {HEAD "Serial: 1\n", -EBADMSG, 6, 1, "Serial", "unknown key 'Serial'"},
        {HEAD "nix: {setting: {}}\n", -EBADMSG, 6, 7, "nix.setting", "unknown key 'setting'"},
        {HEAD "nix: {fallback-local: yes}\n", -EBADMSG, 6, 23, "nix.fallback-local", "true or false"},
        {HEAD "nix: {fallback-local: \"true\"}\n", -EBADMSG, 6, 23, "nix.fallback-local", ""},
        {HEAD "nix: {fallback-local: true, fallback-local: false}\n", -EBADMSG, 6, 29,
         "nix.fallback-local", "duplicate key"},
        {HEAD "nix: {local-builds: 1}\n", -EBADMSG, 6, 21, "nix.local-builds", "true or false"},
        {HEAD "nix: {local-builds: \"false\"}\n", -EBADMSG, 6, 21, "nix.local-builds", ""},
        {HEAD "nix: {local-builds: true, local-builds: true}\n", -EBADMSG, 6, 27,
         "nix.local-builds", "duplicate key"},
        {HEAD "nix: {local-build: true}\n", -EBADMSG, 6, 7, "nix.local-build",
         "unknown key 'local-build'"},
        {HEAD "rebuild: {reboot: true}\n", -EBADMSG, 6, 11, "rebuild.reboot", "unknown key"},
        {BUILDER "    user: nix\n", -EBADMSG, 10, 5, "builders[0].user", "unknown key 'user'"},
        {CACHE "    token: x\n", -EBADMSG, 9, 5, "cachix[0].token", "unknown key 'token'"},
        {HEAD "serial: 8\n", -EBADMSG, 6, 1, "serial", "duplicate key 'serial' (first at line 2)"},
        {HEAD "rebuild:\n  action: boot\n  action: test\n", -EBADMSG, 8, 3, "rebuild.action",
         "duplicate key 'action' (first at line 7)"},
        {HEAD "nix:\n  settings:\n    cores: 1\n    cores: 2\n", -EBADMSG, 9, 5,
         "nix.settings.cores",
         "duplicate key 'cores' (first at line 8)"},
        {BUILDER "    systems: [aarch64-linux]\n", -EBADMSG, 10, 5, "builders[0].systems",
         "duplicate key 'systems' (first at line 8)"},

        /* Required keys */
        {"serial: 7\nexpires: 2099-01-01T00:00:00Z\nstrategy: source\ngroups: [a]\n", -EBADMSG, 1,
         1,
         "nixprov", "missing required key 'nixprov'"},
        {"nixprov: 1\nexpires: 2099-01-01T00:00:00Z\nstrategy: source\ngroups: [a]\n", -EBADMSG, 1,
         1,
         "serial", "missing required key 'serial'"},
        {"nixprov: 1\nserial: 7\nstrategy: source\ngroups: [a]\n", -EBADMSG, 1, 1, "expires",
         "missing required key 'expires'"},
        {"nixprov: 1\nserial: 7\nexpires: 2099-01-01T00:00:00Z\ngroups: [a]\n", -EBADMSG, 1, 1,
         "strategy", "missing required key 'strategy'"},
        {"nixprov: 1\nserial: 7\nexpires: 2099-01-01T00:00:00Z\nstrategy: source\n", -EBADMSG, 1, 1,
         "",
         "missing required key 'machines' or 'groups'"},
        {HEAD "builders:\n  - uri: ssh://b\n    host-key: " ED25519_KEY "\n", -EBADMSG, 7, 5,
         "builders[0].systems", "missing required key 'systems'"},
        {HEAD "builders:\n  - {uri: ssh://b, systems: [x86_64-linux]}\n", -EBADMSG, 7, 5,
         "builders[0].host-key", "missing required key 'host-key'"},
        {HEAD "builders:\n  - {systems: [x86_64-linux], host-key: " ED25519_KEY "}\n", -EBADMSG, 7,
         5,
         "builders[0].uri", "missing required key 'uri'"},
        {HEAD "cachix: [{public-key: " CACHE_KEY "}]\n", -EBADMSG, 6, 10, "cachix[0].name",
         "missing required key 'name'"},
        {HEAD "cachix: [{name: fleet}]\n", -EBADMSG, 6, 10, "cachix[0].public-key",
         "missing required key 'public-key'"},
        {BUILDER "    identity: {}\n", -EBADMSG, 10, 15, "builders[0].identity.sealed",
         "missing required key 'sealed'"},

        /* Schema version */
        {"nixprov: 2\nserial: 7\n", -EPROTONOSUPPORT, 1, 10, "nixprov", "unsupported schema 2"},
        {"future-key: {}\nnixprov: 2\n", -EPROTONOSUPPORT, 2, 10, "nixprov",
         "unsupported schema 2"},
        {"nixprov: 0\n", -EPROTONOSUPPORT, 1, 10, "nixprov", "unsupported schema 0"},
        {"nixprov: \"1\"\n", -EBADMSG, 1, 10, "nixprov",
         "expected an unsigned integer, got a quoted string"},
        {"nixprov: 1.0\n", -EBADMSG, 1, 10, "nixprov", "expected an unsigned integer, got '1.0'"},

        /* Numbers */
        {"nixprov: 1\nserial: -1\n", -EBADMSG, 2, 9, "serial",
         "expected an unsigned integer, got '-1'"},
        {"nixprov: 1\nserial: \"7\"\n", -EBADMSG, 2, 9, "serial",
         "expected an unsigned integer, got a quoted string"},
        {"nixprov: 1\nserial: '7'\n", -EBADMSG, 2, 9, "serial", "got a quoted string"},
        {"nixprov: 1\nserial: 18446744073709551616\n", -EBADMSG, 2, 9, "serial",
         "value '18446744073709551616' is out of range"},
        {"nixprov: 1\nserial: 007\n", -EBADMSG, 2, 9, "serial", "got '007'"},
        {"nixprov: 1\nserial: 0x10\n", -EBADMSG, 2, 9, "serial", "got '0x10'"},
        {"nixprov: 1\nserial: 1e3\n", -EBADMSG, 2, 9, "serial", "got '1e3'"},
        {"nixprov: 1\nserial: +7\n", -EBADMSG, 2, 9, "serial", "got '+7'"},
        {"nixprov: 1\nserial:\n", -EBADMSG, 2, 8, "serial",
         "expected an unsigned integer, got nothing"},
        {"nixprov: 1\nserial: ~\n", -EBADMSG, 2, 9, "serial", "got nothing"},
        {"nixprov: 1\nserial: [7]\n", -EBADMSG, 2, 9, "serial",
         "expected an unsigned integer, got a list"},
        {"nixprov: 1\nserial: {a: 7}\n", -EBADMSG, 2, 9, "serial",
         "expected an unsigned integer, got a mapping"},
        {HEAD "report: {interval: 0}\n", -EBADMSG, 6, 20, "report.interval",
         "value 0 is out of range 1..86400"},
        {HEAD "report: {interval: 86401}\n", -EBADMSG, 6, 20, "report.interval",
         "out of range 1..86400"},
        {HEAD "rebuild: {timeout: 0}\n", -EBADMSG, 6, 20, "rebuild.timeout",
         "out of range 1..604800"},
        {HEAD "rebuild: {timeout: 604801}\n", -EBADMSG, 6, 20, "rebuild.timeout",
         "out of range 1..604800"},
        {BUILDER "    max-jobs: 1025\n", -EBADMSG, 10, 15, "builders[0].max-jobs",
         "out of range 0..1024"},
        {BUILDER "    speed-factor: 0\n", -EBADMSG, 10, 19, "builders[0].speed-factor",
         "out of range 1..1000"},
        {BUILDER "    speed-factor: 1001\n", -EBADMSG, 10, 19, "builders[0].speed-factor",
         "out of range 1..1000"},

        /* Booleans */
        {BUILDER "    required: yes\n", -EBADMSG, 10, 15, "builders[0].required",
         "expected true or false, got 'yes'"},
        {BUILDER "    required: \"true\"\n", -EBADMSG, 10, 15, "builders[0].required",
         "expected true or false, got a quoted string"},
        {BUILDER "    required: True\n", -EBADMSG, 10, 15, "builders[0].required", "got 'True'"},
        {BUILDER "    required: 1\n", -EBADMSG, 10, 15, "builders[0].required", "got '1'"},

        /* expires */
        {"nixprov: 1\nexpires: 2099-13-01T00:00:00Z\n", -EBADMSG, 2, 10, "expires",
         "expected a UTC time"},
        {"nixprov: 1\nexpires: 2099-01-01\n", -EBADMSG, 2, 10, "expires", "expected a UTC time"},
        {"nixprov: 1\nexpires: 2099-01-01T00:00:00+01:00\n", -EBADMSG, 2, 10, "expires",
         "expected a UTC time"},
        {"nixprov: 1\nexpires: 2099-02-30T00:00:00Z\n", -EBADMSG, 2, 10, "expires",
         "expected a UTC time"},
        {"nixprov: 1\nexpires: 4102444800\n", -EBADMSG, 2, 10, "expires", "expected a UTC time"},
        {"nixprov: 1\nexpires:\n", -EBADMSG, 2, 9, "expires", "got nothing"},

        /* machines and groups */
        {HEAD "groups: []\n", -EBADMSG, 6, 9, "groups", "the list must not be empty"},
        {"nixprov: 1\nmachines: []\n", -EBADMSG, 2, 11, "machines", "must not be empty"},
        {"nixprov: 1\nmachines: 4c4c4544004d3510804fb4c04f4d3732\n", -EBADMSG, 2, 11, "machines",
         "expected a list, got '4c4c4544004d3510804fb4c04f4d3732'"},
        {"nixprov: 1\nmachines: [4c4c4544004d3510804fb4c04f4d373]\n", -EBADMSG, 2, 12,
         "machines[0]",
         "invalid machine id '4c4c4544004d3510804fb4c04f4d373'"},
        {"nixprov: 1\nmachines:\n  - 4c4c4544004d3510804fb4c04f4d3732\n  - "
         "4c4c4544004d3510804fb4c04f4d373g\n",
         -EBADMSG, 4, 5, "machines[1]", "invalid machine id"},
        {"nixprov: 1\nmachines: [4c4c4544-004d3510-804f-b4c04f4d3732]\n", -EBADMSG, 2, 12,
         "machines[0]", "invalid machine id"},
        /* What an unconfigured image carries: never a device's id. */
        {"nixprov: 1\nmachines: [00000000000000000000000000000000]\n", -EBADMSG, 2, 12,
         "machines[0]", "invalid machine id '00000000000000000000000000000000'"},
        /* The newline a machine-id file may end with is no part of an id in a profile. */
        {"nixprov: 1\nmachines: [\"4c4c4544004d3510804fb4c04f4d3732\\n\"]\n", -EBADMSG, 2, 12,
         "machines[0]", "control character U+000A is not allowed"},
        {"nixprov: 1\nmachines: [[4c4c4544004d3510804fb4c04f4d3732]]\n", -EBADMSG, 2, 12,
         "machines[0]",
         "expected a machine id, got a list"},
        {"nixprov: 1\nmachines: [~]\n", -EBADMSG, 2, 12, "machines[0]",
         "expected a machine id, got nothing"},
        {"nixprov: 1\ngroups: [Edge]\n", -EBADMSG, 2, 10, "groups[0]", "invalid group name 'Edge'"},
        {"nixprov: 1\ngroups: [a, -edge]\n", -EBADMSG, 2, 13, "groups[1]", "invalid group name"},
        {"nixprov: 1\ngroups: [\"a b\"]\n", -EBADMSG, 2, 10, "groups[0]", "invalid group name"},
        {"nixprov: 1\ngroups: [a12345678901234567890123456789012345678901234567890123456789012345]"
         "\n",
         -EBADMSG, 2, 10, "groups[0]", "invalid group name"},

        /* strategy */
        {"nixprov: 1\nstrategy: fast\n", -EBADMSG, 2, 11, "strategy", "unknown strategy 'fast'"},
        {"nixprov: 1\nstrategy: Source\n", -EBADMSG, 2, 11, "strategy", "unknown strategy"},
        {"nixprov: 1\nstrategy: [source]\n", -EBADMSG, 2, 11, "strategy",
         "expected a strategy, got a list"},

        /* nix.settings */
        {HEAD "nix: []\n", -EBADMSG, 6, 6, "nix", "expected a mapping, got a list"},
        {HEAD "nix: {settings: [a]}\n", -EBADMSG, 6, 17, "nix.settings",
         "expected a mapping of settings, got a list"},
        {HEAD "nix: {settings: {Max_Jobs: 1}}\n", -EBADMSG, 6, 18, "nix.settings.Max_Jobs",
         "invalid setting name 'Max_Jobs'"},
        {HEAD "nix: {settings: {include: /etc/x}}\n", -EBADMSG, 6, 18, "nix.settings.include",
         "invalid setting name 'include'"},
        {HEAD "nix: {settings: {-a: 1}}\n", -EBADMSG, 6, 18, "nix.settings.-a",
         "invalid setting name"},
        {HEAD "nix: {settings: {? [a] : 1}}\n", -EBADMSG, 6, 20, "nix.settings",
         "expected a setting name, got a list"},
        {HEAD "nix: {settings: {a: {b: c}}}\n", -EBADMSG, 6, 21, "nix.settings.a",
         "expected a scalar or a list of scalars, got a mapping"},
        {HEAD "nix: {settings: {a: }}\n", -EBADMSG, 6, 21, "nix.settings.a", "got nothing"},
        {HEAD "nix: {settings: {a: [x, {b: c}]}}\n", -EBADMSG, 6, 25, "nix.settings.a[1]",
         "expected a scalar, got a mapping"},
        {HEAD "nix: {settings: {a: [x, \"y z\"]}}\n", -EBADMSG, 6, 25, "nix.settings.a[1]",
         "non-empty and hold no white space"},
        {HEAD "nix: {settings: {a: [x, \"\"]}}\n", -EBADMSG, 6, 25, "nix.settings.a[1]",
         "non-empty"},
        {HEAD "nix:\n  settings:\n    substituters: \"https://a\\nbuild-hook = /tmp/x\"\n",
         -EBADMSG, 8,
         19, "nix.settings.substituters", "control character U+000A"},
        {HEAD "nix:\n  settings:\n    post-build-hook: |\n      /bin/true\n      x = y\n", -EBADMSG,
         8,
         22, "nix.settings.post-build-hook", "control character U+000A"},
        {HEAD "nix:\n  settings:\n    a: [\"x\\ry\"]\n", -EBADMSG, 8, 9, "nix.settings.a[0]",
         "control character U+000D"},
        {HEAD "nix:\n  settings:\n    a: \"x\\u2028y\"\n", -EBADMSG, 8, 8, "nix.settings.a",
         "control character U+2028"},
        {HEAD "nix:\n  settings:\n    a: \"x\\x85y\"\n", -EBADMSG, 8, 8, "nix.settings.a",
         "control character U+0085"},
        {HEAD "nix:\n  settings:\n    a: \"x\\0y\"\n", -EBADMSG, 8, 8, "nix.settings.a",
         "control character U+0000"},
        {HEAD "nix:\n  settings:\n    \"a\\nb\": x\n", -EBADMSG, 8, 5, "nix.settings.a?b",
         "control character U+000A"},
        {HEAD "nix: {settings: {max-jobs: -1}}\n", -EBADMSG, 6, 28, "nix.settings.max-jobs",
         "expected an unsigned integer, 'auto' or 'fit', got '-1'"},
        {HEAD "nix: {settings: {max-jobs: many}}\n", -EBADMSG, 6, 28, "nix.settings.max-jobs",
         "got 'many'"},
        {HEAD "nix: {settings: {max-jobs: [1, 2]}}\n", -EBADMSG, 6, 28, "nix.settings.max-jobs",
         "expected a scalar, got a list"},
        {HEAD "nix: {settings: {cores: auto}}\n", -EBADMSG, 6, 25, "nix.settings.cores",
         "expected an unsigned integer or 'fit', got 'auto'"},

        /* builders */
        {HEAD "builders: {uri: ssh://b}\n", -EBADMSG, 6, 11, "builders",
         "expected a list of builders, got a mapping"},
        {HEAD "builders: [ssh://b]\n", -EBADMSG, 6, 12, "builders[0]",
         "expected a mapping, got 'ssh://b'"},
        {HEAD "builders:\n  - uri: http://b\n", -EBADMSG, 7, 10, "builders[0].uri",
         "expected a URI starting with ssh:// or ssh-ng://, got 'http://b'"},
        {HEAD "builders:\n  - uri: \"ssh://b c\"\n", -EBADMSG, 7, 10, "builders[0].uri",
         "invalid character in builder URI"},
        {HEAD "builders:\n  - uri: ssh://b#c\n", -EBADMSG, 7, 10, "builders[0].uri",
         "invalid character"},
        {HEAD "builders:\n  - uri: ssh://b;ssh://c\n", -EBADMSG, 7, 10, "builders[0].uri",
         "invalid character"},
        {HEAD "builders:\n  - uri: ssh://\n", -EBADMSG, 7, 10, "builders[0].uri", "no host"},
        {HEAD "builders:\n  - uri: ssh-ng://@b\n", -EBADMSG, 7, 10, "builders[0].uri", "no host"},
        {BUILDER "  - {uri: ssh://nix@b1, systems: [x86_64-linux], host-key: " ED25519_KEY "}\n",
         -EBADMSG, 10, 11, "builders[1].uri", "duplicate builder 'ssh://nix@b1' (first at line 7)"},
        {HEAD "builders:\n  - uri: ssh://b\n    systems: []\n", -EBADMSG, 8, 14,
         "builders[0].systems",
         "must not be empty"},
        {HEAD "builders:\n  - uri: ssh://b\n    systems: [x86_64-linux, \"x86 64\"]\n", -EBADMSG, 8,
         29,
         "builders[0].systems[1]", "invalid name 'x86 64'"},
        {HEAD "builders:\n  - uri: ssh://b\n    systems: [\"a,b\"]\n", -EBADMSG, 8, 15,
         "builders[0].systems[0]", "invalid name 'a,b'"},
        {BUILDER "    supported-features: [kvm, -x]\n", -EBADMSG, 10, 31,
         "builders[0].supported-features[1]", "invalid name '-x'"},
        {BUILDER "    mandatory-features: {}\n", -EBADMSG, 10, 25, "builders[0].mandatory-features",
         "expected a list, got a mapping"},

        /* host keys */
        {HEAD "builders:\n  - host-key: AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d\n", -EBADMSG, 7, 15,
         "builders[0].host-key", "expected 'TYPE BASE64'"},
        {HEAD "builders:\n  - host-key: ssh-dss AAAAB3NzaC1kc3M=\n", -EBADMSG, 7, 15,
         "builders[0].host-key", "unsupported host key type"},
        {HEAD "builders:\n  - host-key: ssh-ed25519 AAAA!!!!\n", -EBADMSG, 7, 15,
         "builders[0].host-key", "not valid base64"},
        {HEAD "builders:\n  - host-key: " ED25519_KEY " root@builder\n", -EBADMSG, 7, 15,
         "builders[0].host-key", "expected 'TYPE BASE64' without a comment"},
        {HEAD "builders:\n  - host-key: ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d\n", -EBADMSG, 7,
         15,
         "builders[0].host-key", "without a comment"},
        {HEAD "builders:\n  - host-key: ssh-ed25519 "
              "AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d/3R4BTCScNXUNv0DDh0cjKjz0Adl+65jaeGWbN=\n",
         -EBADMSG, 7, 15, "builders[0].host-key", "not valid base64"},
        {HEAD "builders:\n  - host-key: ssh-rsa "
              "AAAAC3NzaC1lZDI1NTE5AAAAIOOE6d/3R4BTCScNXUNv0DDh0cjKjz0Adl+65jaeGWbN\n",
         -EBADMSG, 7, 15, "builders[0].host-key", "the key is not of type ssh-rsa"},
        {HEAD "builders:\n  - host-key: ssh-ed25519 "
              "AAAAC3NzaC1lZDI1NTE5AAAAHwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
         -EBADMSG, 7, 15, "builders[0].host-key", "not an Ed25519 public key"},
        {HEAD "builders:\n  - host-key: [ssh-ed25519]\n", -EBADMSG, 7, 15, "builders[0].host-key",
         "expected a host key, got a list"},

        /* secrets */
        {BUILDER "    identity: id_ed25519\n", -EBADMSG, 10, 15, "builders[0].identity",
         "expected {sealed: BASE64} or an absolute path, got 'id_ed25519'"},
        {BUILDER "    identity: \"/etc/my key\"\n", -EBADMSG, 10, 15, "builders[0].identity",
         "or an absolute path"},
        {BUILDER "    identity: [/etc/key]\n", -EBADMSG, 10, 15, "builders[0].identity",
         "expected {sealed: BASE64} or an absolute path, got a list"},
        {BUILDER "    identity: {path: /etc/key}\n", -EBADMSG, 10, 16, "builders[0].identity.path",
         "unknown key 'path'"},
        {BUILDER "    identity: {sealed: " SEALED_64 ", sealed: " SEALED_64 "}\n", -EBADMSG, 10,
         114,
         "builders[0].identity.sealed", "duplicate key 'sealed' (first at line 10)"},
        {BUILDER "    identity: {sealed: not-base64}\n", -EBADMSG, 10, 24,
         "builders[0].identity.sealed", "invalid base64"},
        {BUILDER "    identity: {sealed: \"" SEALED_64 " \"}\n", -EBADMSG, 10, 24,
         "builders[0].identity.sealed", "invalid base64"},
        {BUILDER "    identity: {sealed: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJyg"
                 "pKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw}\n",
         -EBADMSG, 10, 24, "builders[0].identity.sealed", "invalid base64"},
        {BUILDER "    identity: {sealed: " SEALED_48 "}\n", -EBADMSG, 10, 24,
         "builders[0].identity.sealed", "sealed value too short (48 bytes"},
        {BUILDER "    identity: {sealed: [" SEALED_64 "]}\n", -EBADMSG, 10, 24,
         "builders[0].identity.sealed", "expected base64, got a list"},
        {CACHE "    auth-token: " SEALED_64 "\n", -EBADMSG, 9, 17, "cachix[0].auth-token",
         "expected {sealed: BASE64}, got '"},
        {CACHE "    auth-token: /etc/cachix-token\n", -EBADMSG, 9, 17, "cachix[0].auth-token",
         "expected {sealed: BASE64}, got '/etc/cachix-token'"},
        {CACHE "    auth-token: {sealed: AAAA}\n", -EBADMSG, 9, 26, "cachix[0].auth-token.sealed",
         "too short (3 bytes"},
        {CACHE "    host: 127.0.0.1\n", -EBADMSG, 9, 11, "cachix[0].host",
         "a host is only for an auth-token"},
        {CACHE "    auth-token: {sealed: " SEALED_49 "}\n    host: 127.0.0.1:8080\n", -EBADMSG, 10,
         11, "cachix[0].host", "invalid host '127.0.0.1:8080' (expected a host name"},
        {CACHE "    auth-token: {sealed: " SEALED_49 "}\n    host: a b\n", -EBADMSG, 10, 11,
         "cachix[0].host", "invalid host 'a b'"},
        {CACHE "    auth-token: {sealed: " SEALED_49 "}\n    host: -x.org\n", -EBADMSG, 10, 11,
         "cachix[0].host", "invalid host '-x.org'"},
        {CACHE "    auth-token: {sealed: " SEALED_49 "}\n    host: [a]\n", -EBADMSG, 10, 11,
         "cachix[0].host", "expected a host name"},

        /* cachix */
        {HEAD "cachix: {name: fleet}\n", -EBADMSG, 6, 9, "cachix",
         "expected a list of caches, got a mapping"},
        {HEAD "cachix: [{name: My_Cache}]\n", -EBADMSG, 6, 17, "cachix[0].name",
         "invalid cache name 'My_Cache'"},
        {HEAD "cachix: [{name: fleet, public-key: fleet:abc}]\n", -EBADMSG, 6, 36,
         "cachix[0].public-key", "expected a key like NAME.cachix.org-1:BASE64"},
        {HEAD "cachix: [{public-key: "
              "fleet.cachix.org-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==}]\n",
         -EBADMSG, 6, 23, "cachix[0].public-key", "expected the base64 of 32 bytes"},
        {HEAD "cachix: [{public-key: .cachix.org-1:mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY=}]"
              "\n",
         -EBADMSG, 6, 23, "cachix[0].public-key", "invalid cache name in public key"},
        {HEAD "cachix: [{public-key: My.cachix.org-1:mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY=}]"
              "\n",
         -EBADMSG, 6, 23, "cachix[0].public-key", "invalid cache name in public key"},
        {HEAD "cachix:\n  - public-key: " CACHE_KEY "\n    name: other\n", -EBADMSG, 7, 17,
         "cachix[0].public-key", "the public key is not for cache 'other'"},
        {HEAD "cachix:\n  - public-key: " CACHE_KEY "\n    name: flee\n", -EBADMSG, 7, 17,
         "cachix[0].public-key", "not for cache 'flee'"},
        {CACHE "  - name: fleet\n    public-key: " CACHE_KEY "\n", -EBADMSG, 9, 11,
         "cachix[1].name",
         "duplicate cache 'fleet' (first at line 7)"},

        /* rebuild */
        {HEAD "rebuild: {action: reboot}\n", -EBADMSG, 6, 19, "rebuild.action",
         "unknown action 'reboot' (expected switch, boot or test)"},
        {HEAD "rebuild: {flake: \"git+https://x#a b\"}\n", -EBADMSG, 6, 18, "rebuild.flake",
         "white space"},
        {HEAD "rebuild: {flake: }\n", -EBADMSG, 6, 18, "rebuild.flake", "got nothing"},
        {HEAD "rebuild: {flake: {url: x}}\n", -EBADMSG, 6, 18, "rebuild.flake",
         "expected a flake reference, got a mapping"},
        {HEAD "report: 30\n", -EBADMSG, 6, 9, "report", "expected a mapping, got '30'"},
        /* health: */
        {HEAD "health: {deadline: 0}\n", -EBADMSG, 6, 20, "health.deadline", "out of range"},
        {HEAD "health: {probe: 1}\n", -EBADMSG, 6, 10, "health.probe", "unknown key"},
        {HEAD "health: {units: [-x.service]}\n", -EBADMSG, 6, 18, "health.units[0]",
         "invalid unit name '-x.service'"},
        {HEAD "health: {units: ['a b.service']}\n", -EBADMSG, 6, 18, "health.units[0]",
         "invalid unit name"},
        {HEAD "health: {tcp: [0]}\n", -EBADMSG, 6, 16, "health.tcp[0]", "invalid port '0'"},
        {HEAD "health: {tcp: [65536]}\n", -EBADMSG, 6, 16, "health.tcp[0]", "invalid port"},
        {HEAD "health: {tcp: [22, 'localhost:22']}\n", -EBADMSG, 6, 20, "health.tcp[1]",
         "expected PORT or IPV4:PORT"},
        {HEAD "health: {tcp: ['1.2.3.256:22']}\n", -EBADMSG, 6, 16, "health.tcp[0]",
         "invalid port"},
        {HEAD "health: {http: ['ftp://127.0.0.1/']}\n", -EBADMSG, 6, 17, "health.http[0]",
         "invalid URL 'ftp://127.0.0.1/'"},
        {HEAD "health: {http: ['http:///x']}\n", -EBADMSG, 6, 17, "health.http[0]",
         "invalid URL"},
        {HEAD "health: {http: ['http://127.0.0.1/a b']}\n", -EBADMSG, 6, 17, "health.http[0]",
         "invalid URL"},
        {HEAD "health: {commands: [{timeout: 5}]}\n", -EBADMSG, 6, 21, "health.commands[0].argv",
         "missing required key"},
        {HEAD "health: {commands: [{argv: []}]}\n", -EBADMSG, 6, 28, "health.commands[0].argv",
         ""},
        {HEAD "health: {commands: [{argv: [bin/true]}]}\n", -EBADMSG, 6, 28,
         "health.commands[0].argv[0]", "expected a program name or an absolute path"},
        {HEAD "health: {commands: [{argv: [/bin/true, '']}]}\n", -EBADMSG, 6, 40,
         "health.commands[0].argv[1]", "empty argument"},
        {HEAD "health: {commands: [{argv: [true], timeout: 3601}]}\n", -EBADMSG, 6, 45,
         "health.commands[0].timeout", "out of range"},
        {HEAD "health: {server: yes}\n", -EBADMSG, 6, 18, "health.server", ""},
};
/* clang-format on */

static bool check_error(size_t i, const struct bad_case *c, int r, const struct profile *p,
                        const struct profile_error *e)
{
        if (r == c->error && e->line == c->line && e->column == c->column &&
            streq(e->key, c->key) && strstr(e->message, c->message) &&
            streq(e->file, "test.yaml") && !p)
                return true;
        print_error("case %zu:\n%s\nexpected %d at %u:%u '%s': ...%s...\n"
                    "got      %d at %u:%u '%s': %s\n\n",
                    i, c->yaml, c->error, c->line, c->column, c->key, c->message, r, e->line,
                    e->column, e->key, e->message);
        return false;
}

static void test_bad(void **state)
{
        unsigned failed = 0;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                struct profile *p = NULL;
                struct profile_error e = {};
                size_t size = strlen(c->yaml);
                int r;

                if (strstr(c->message, "NUL"))
                        size += 2; /* "nixprov: 1\0\n" */
                r = profile_parse(c->yaml, size, "test.yaml", &p, &e);
                if (!check_error(i, c, r, p, &e))
                        failed++;
                p = profile_free(p);
        }
        assert_int_equal(failed, 0);
}

/* ---- limits ---- */

static char *repeat(const char *head, const char *item, size_t n, const char *tail)
{
        struct buf b = BUF_INIT(64 * 1024 * 1024);

        assert_int_equal(buf_puts(&b, head), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(buf_printf(&b, item, i, i), 0);
        assert_int_equal(buf_puts(&b, tail), 0);
        return buf_steal(&b, NULL);
}

static void expect_error(const char *yaml, size_t size, int error, unsigned line, unsigned column,
                         const char *key, const char *message)
{
        struct profile *p = NULL;
        struct profile_error e = {};
        int r;

        r = profile_parse(yaml, size, "test.yaml", &p, &e);
        assert_null(p);
        if (r != error || e.line != line || e.column != column || !streq(e.key, key) ||
            !strstr(e.message, message))
                fail_msg("expected %d at %u:%u '%s': ...%s...\ngot      %d at %u:%u '%s': %s",
                         error, line, column, key, message, r, e.line, e.column, e.key, e.message);
}

static void test_too_large(void **state)
{
        _cleanup_free_ char *yaml = NULL;
        size_t size = PROFILE_MAX_BYTES + 1;

        (void)state;
        yaml = malloc(size);
        assert_non_null(yaml);
        memset(yaml, '#', size);
        expect_error(yaml, size, -E2BIG, 0, 0, "", "larger than 1 MiB");
}

static void test_long_lists(void **state)
{
        struct {
                const char *head, *item, *tail;
                size_t n;
                unsigned line, column;
                const char *key, *message;
        } cases[] = {
            {"nixprov: 1\nmachines:\n", "  - 1%031zx\n", "", PROFILE_MAX_MACHINES + 1, 10003, 5,
             "machines[10000]", "more than 10000 items"},
            {"nixprov: 1\ngroups:\n", "  - g%zu\n", "", PROFILE_MAX_GROUPS + 1, 259, 5,
             "groups[256]", "more than 256 items"},
            {HEAD "nix:\n  settings:\n", "    s%zu: %zu\n", "", PROFILE_MAX_SETTINGS + 1, 264, 5,
             "nix.settings.s256", "more than 256 settings"},
            {HEAD "nix:\n  settings:\n    a:\n", "      - i%zu\n", "",
             PROFILE_MAX_SETTING_ITEMS + 1, 73, 9, "nix.settings.a[64]", "more than 64 items"},
            {HEAD "builders:\n",
             "  - {uri: ssh://b%zu, systems: [x86_64-linux], host-key: " ED25519_KEY "}\n", "",
             PROFILE_MAX_BUILDERS + 1, 71, 5, "builders[64]", "more than 64 builders"},
            {HEAD "builders:\n  - uri: ssh://b\n    systems:\n", "      - s%zu\n", "",
             PROFILE_MAX_NAMES + 1, 73, 9, "builders[0].systems[64]", "more than 64 items"},
            {HEAD "cachix:\n",
             "  - {name: c%zu, public-key: "
             "c%zu.cachix.org-1:mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY=}\n",
             "", PROFILE_MAX_CACHES + 1, 71, 5, "cachix[64]", "more than 64 caches"},
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *yaml =
                    repeat(cases[i].head, cases[i].item, cases[i].n, cases[i].tail);
                _cleanup_free_ char *ok =
                    repeat(cases[i].head, cases[i].item, cases[i].n - 1, cases[i].tail);
                struct profile *p = NULL;
                struct profile_error e = {};
                int r;

                expect_error(yaml, strlen(yaml), -E2BIG, cases[i].line, cases[i].column,
                             cases[i].key, cases[i].message);
                /* One item fewer is within the limit: whatever fails then is not the limit. */
                r = profile_parse(ok, strlen(ok), "test.yaml", &p, &e);
                assert_int_not_equal(r, -E2BIG);
                p = profile_free(p);
        }
}

static void test_long_scalars(void **state)
{
        _cleanup_free_ char *value = NULL, *yaml = NULL, *sealed = NULL, *sealed_yaml = NULL;
        uint8_t *bytes;
        size_t n_bytes = PROFILE_MAX_SEALED + 3;

        (void)state;
        value = malloc(PROFILE_MAX_SCALAR + 2);
        assert_non_null(value);
        memset(value, 'x', PROFILE_MAX_SCALAR + 1);
        value[PROFILE_MAX_SCALAR + 1] = '\0';
        assert_true(asprintf(&yaml, HEAD "nix: {settings: {a: %s}}\n", value) > 0);
        expect_error(yaml, strlen(yaml), -E2BIG, 6, 21, "nix.settings.a",
                     "value longer than 16384 bytes");

        /* A sealed value that decodes past PROFILE_MAX_SEALED but fits in a scalar. */
        bytes = calloc(1, n_bytes);
        assert_non_null(bytes);
        sealed = malloc(sodium_base64_ENCODED_LEN(n_bytes, sodium_base64_VARIANT_ORIGINAL));
        assert_non_null(sealed);
        sodium_bin2base64(sealed,
                          sodium_base64_ENCODED_LEN(n_bytes, sodium_base64_VARIANT_ORIGINAL), bytes,
                          n_bytes, sodium_base64_VARIANT_ORIGINAL);
        free(bytes);
        assert_true(asprintf(&sealed_yaml, CACHE "    auth-token: {sealed: %s}\n", sealed) > 0);
        expect_error(sealed_yaml, strlen(sealed_yaml), -E2BIG, 9, 26, "cachix[0].auth-token.sealed",
                     "sealed value larger than 8192 bytes");
}

static void test_long_key_path(void **state)
{
        _cleanup_free_ char *key = NULL, *yaml = NULL;
        struct profile *p = NULL;
        struct profile_error e = {};
        char line[1024];

        (void)state;
        key = malloc(1001);
        assert_non_null(key);
        memset(key, 'k', 1000);
        key[1000] = '\0';
        assert_true(asprintf(&yaml, HEAD "nix: {settings: {%s: 1}}\n", key) > 0);
        assert_int_equal(profile_parse(yaml, strlen(yaml), "test.yaml", &p, &e), -EBADMSG);
        assert_null(p);
        assert_true(strlen(e.key) < PROFILE_ERROR_KEY_MAX);
        assert_true(strncmp(e.key, "nix.settings.kkkk", 17) == 0);
        assert_true(strlen(e.message) < PROFILE_ERROR_MESSAGE_MAX);
        assert_non_null(strstr(e.message, "invalid setting name 'kkkk"));
        assert_non_null(strstr(e.message, "...'"));
        profile_error_format(&e, line, sizeof(line));
        assert_true(strncmp(line, "test.yaml:6:18: nix.settings.kkk", 32) == 0);
}

/* ---- valid profiles ---- */

static struct profile *parse_ok(const char *yaml)
{
        struct profile *p = NULL;
        struct profile_error e = {};
        char line[1024];
        int r;

        r = profile_parse(yaml, strlen(yaml), "test.yaml", &p, &e);
        if (r < 0)
                fail_msg("%s\nfailed: %d %s", yaml, r,
                         profile_error_format(&e, line, sizeof(line)));
        assert_non_null(p);
        return p;
}

static void test_defaults(void **state)
{
        _cleanup_(profile_freep) struct profile *p = parse_ok(HEAD);

        (void)state;
        assert_int_equal(p->schema, 1);
        assert_int_equal(p->serial, 7);
        assert_int_equal(p->expires, 4070908800); /* 2099-01-01T00:00:00Z */
        assert_int_equal(p->strategy, PROFILE_STRATEGY_SOURCE);
        assert_int_equal(p->n_machines, 1);
        assert_string_equal(p->machines[0], "4c4c4544004d3510804fb4c04f4d3732");
        assert_null(p->groups);
        assert_int_equal(p->n_groups, 0);
        assert_int_equal(p->n_settings, 0);
        assert_int_equal(p->n_builders, 0);
        assert_int_equal(p->n_caches, 0);
        assert_null(p->rebuild.flake);
        assert_int_equal(p->rebuild.action, PROFILE_REBUILD_SWITCH);
        assert_int_equal(p->rebuild.timeout, 7200);
        assert_int_equal(p->report.interval, 30);
        assert_null(profile_find_setting(p, "max-jobs"));
        assert_false(p->fallback_local);
        assert_false(p->local_builds);
        assert_int_equal(p->health.deadline, 60);
        assert_int_equal(profile_health_n_checks(&p->health), 0);
}

static void test_health(void **state)
{
        _cleanup_(profile_freep) struct profile *p =
            parse_ok(HEAD "health:\n"
                          "  deadline: 90\n"
                          "  units: [sshd.service, 'getty@tty1.service']\n"
                          "  tcp: [22, '10.0.0.1:8080']\n"
                          "  http: ['http://127.0.0.1:8080/healthz?x=1', 'https://[::1]:8443/']\n"
                          "  commands:\n"
                          "    - argv: [/bin/test, -e, /run/booted-system]\n"
                          "      timeout: 5\n"
                          "    - argv: [true]\n"
                          "  server: true\n");
        char address[16];
        uint16_t port;

        (void)state;
        assert_int_equal(p->health.deadline, 90);
        assert_int_equal(p->health.n_units, 2);
        assert_string_equal(p->health.units[1], "getty@tty1.service");
        assert_int_equal(p->health.n_tcp, 2);
        profile_health_tcp_address(p->health.tcp[0], address, &port);
        assert_string_equal(address, "127.0.0.1");
        assert_int_equal(port, 22);
        profile_health_tcp_address(p->health.tcp[1], address, &port);
        assert_string_equal(address, "10.0.0.1");
        assert_int_equal(port, 8080);
        assert_int_equal(p->health.n_http, 2);
        assert_int_equal(p->health.n_commands, 2);
        assert_int_equal(p->health.commands[0].n_argv, 3);
        assert_string_equal(p->health.commands[0].argv[2], "/run/booted-system");
        assert_int_equal(p->health.commands[0].timeout, 5);
        assert_int_equal(p->health.commands[1].timeout, 30);
        assert_true(p->health.server);
        assert_int_equal(profile_health_n_checks(&p->health), 9);
}

static void test_values(void **state)
{
        _cleanup_(profile_freep) struct profile *p = parse_ok(
            "nixprov: 1\n"
            "serial: 18446744073709551615\n"
            "expires: 2099-12-31T23:59:59.5Z\n"
            "strategy: \"remote-builders\"\n"
            "machines:\n"
            "  - 4C4C4544004D3510804FB4C04F4D3732\n"
            "  - 0B5E3F1A-92C4-4D7E-8A61-3C2F9E0D4B17\n"
            "groups: [edge, edge.lab-2, 0_a]\n"
            "nix:\n"
            "  settings:\n"
            "    max-jobs: fit\n"
            "    cores: 0\n"
            "    keep-outputs: true\n"
            "    connect-timeout: 10\n"
            "    substituters: [https://a.example.org, 'https://b.example.org?priority=2']\n"
            "    trusted-public-keys:\n"
            "      - a.example.org-1:abc=\n"
            "      - \"b:def\"\n"
            "    extra-sandbox-paths: []\n"
            "    empty: ''\n"
            "    sentence: two words \xf0\x9f\x9a\x80\n"
            "builders:\n"
            "  - uri: ssh-ng://nix@b1.example.org?ssh-key=/etc/k\n"
            "    systems: [x86_64-linux, aarch64-linux]\n"
            "    max-jobs: 0\n"
            "    speed-factor: 1000\n"
            "    supported-features: [big-parallel, kvm]\n"
            "    mandatory-features: []\n"
            "    host-key: " ED25519_KEY "\n"
            "    identity: {sealed: " SEALED_64 "}\n"
            "    required: false\n"
            "  - uri: ssh://[2001:db8::1]:22\n"
            "    systems: [i686-linux]\n"
            "    host-key: " ECDSA_KEY "\n"
            "    identity: /etc/nixprov/id_ed25519\n"
            "    required: true\n"
            "  - uri: ssh://b3\n"
            "    systems: [armv7l-linux]\n"
            "    host-key: " RSA_KEY "\n"
            "cachix:\n"
            "  - name: fleet\n"
            "    public-key: " CACHE_KEY "\n"
            "    auth-token:\n"
            "      sealed: " SEALED_49 "\n"
            "    host: Cache-1.example.org\n"
            "  - name: public-one\n"
            "    public-key: public-one.cachix.org-1:mkQTZVUETc8QvXkUbaj9tSjoR2g5Uq6XKfACl/G0tAY=\n"
            "rebuild:\n"
            "  flake: git+https://git.example.org/fleet?ref=main#edge\n"
            "  action: test\n"
            "  timeout: 604800\n"
            "report:\n"
            "  interval: 86400\n");
        const struct profile_setting *s;

        (void)state;
        assert_true(p->serial == UINT64_MAX);
        assert_int_equal(p->expires, 4102444799);
        assert_int_equal(p->strategy, PROFILE_STRATEGY_REMOTE_BUILDERS);

        assert_int_equal(p->n_machines, 2);
        assert_string_equal(p->machines[0], "4c4c4544004d3510804fb4c04f4d3732");
        assert_string_equal(p->machines[1], "0b5e3f1a92c44d7e8a613c2f9e0d4b17");
        assert_int_equal(p->n_groups, 3);
        assert_string_equal(p->groups[1], "edge.lab-2");

        assert_int_equal(p->n_settings, 9);
        assert_string_equal(profile_find_setting(p, "max-jobs")->value, "fit");
        assert_string_equal(profile_find_setting(p, "cores")->value, "0");
        assert_string_equal(profile_find_setting(p, "keep-outputs")->value, "true");
        assert_string_equal(profile_find_setting(p, "connect-timeout")->value, "10");
        s = profile_find_setting(p, "substituters");
        assert_string_equal(s->value, "https://a.example.org https://b.example.org?priority=2");
        assert_int_equal(s->location.line, 15);
        assert_int_equal(s->location.column, 5);
        assert_string_equal(profile_find_setting(p, "trusted-public-keys")->value,
                            "a.example.org-1:abc= b:def");
        assert_string_equal(profile_find_setting(p, "extra-sandbox-paths")->value, "");
        assert_string_equal(profile_find_setting(p, "empty")->value, "");
        assert_string_equal(profile_find_setting(p, "sentence")->value,
                            "two words \xf0\x9f\x9a\x80");
        assert_null(profile_find_setting(p, "sandbox"));

        assert_int_equal(p->n_builders, 3);
        assert_string_equal(p->builders[0].uri, "ssh-ng://nix@b1.example.org?ssh-key=/etc/k");
        assert_int_equal(p->builders[0].n_systems, 2);
        assert_string_equal(p->builders[0].systems[1], "aarch64-linux");
        assert_int_equal(p->builders[0].max_jobs, 0);
        assert_int_equal(p->builders[0].speed_factor, 1000);
        assert_int_equal(p->builders[0].n_supported_features, 2);
        assert_string_equal(p->builders[0].supported_features[0], "big-parallel");
        assert_int_equal(p->builders[0].n_mandatory_features, 0);
        assert_string_equal(p->builders[0].host_key, ED25519_KEY);
        assert_false(p->builders[0].required);
        assert_int_equal(p->builders[0].identity.kind, PROFILE_SECRET_SEALED);
        assert_int_equal(p->builders[0].identity.sealed_size, 64);
        for (size_t i = 0; i < 64; i++)
                assert_int_equal(p->builders[0].identity.sealed[i], i);
        assert_int_equal(p->builders[0].identity.location.line, 30);
        assert_int_equal(p->builders[0].identity.location.column, 15);
        assert_int_equal(p->builders[0].location.line, 23);
        assert_int_equal(p->builders[0].location.column, 5);

        assert_string_equal(p->builders[1].uri, "ssh://[2001:db8::1]:22");
        assert_int_equal(p->builders[1].max_jobs, 1);
        assert_int_equal(p->builders[1].speed_factor, 1);
        assert_true(p->builders[1].required);
        assert_string_equal(p->builders[1].host_key, ECDSA_KEY);
        assert_int_equal(p->builders[1].identity.kind, PROFILE_SECRET_PATH);
        assert_string_equal(p->builders[1].identity.path, "/etc/nixprov/id_ed25519");
        assert_null(p->builders[1].identity.sealed);
        assert_string_equal(p->builders[2].host_key, RSA_KEY);
        assert_int_equal(p->builders[2].identity.kind, PROFILE_SECRET_NONE);

        assert_int_equal(p->n_caches, 2);
        assert_string_equal(p->caches[0].name, "fleet");
        assert_string_equal(p->caches[0].public_key, CACHE_KEY);
        assert_int_equal(p->caches[0].auth_token.kind, PROFILE_SECRET_SEALED);
        assert_int_equal(p->caches[0].auth_token.sealed_size, 49);
        assert_int_equal(p->caches[1].auth_token.kind, PROFILE_SECRET_NONE);
        assert_string_equal(p->caches[0].host, "Cache-1.example.org");
        assert_null(p->caches[1].host);

        assert_string_equal(p->rebuild.flake, "git+https://git.example.org/fleet?ref=main#edge");
        assert_int_equal(p->rebuild.action, PROFILE_REBUILD_TEST);
        assert_int_equal(p->rebuild.timeout, 604800);
        assert_int_equal(p->report.interval, 86400);
}

static void test_syntax_variants(void **state)
{
        static const char *const variants[] = {
            /* flow style, quoted strings where strings are expected */
            "{nixprov: 1, serial: 7, expires: '2099-01-01T00:00:00Z', strategy: 'source', "
            "groups: [\"edge\"]}",
            /* CRLF line ends */
            "nixprov: 1\r\nserial: 7\r\nexpires: 2099-01-01T00:00:00Z\r\nstrategy: source\r\n"
            "groups: [edge]\r\n",
            /* a byte order mark, an explicit document with a version directive and an end */
            "\xef\xbb\xbf%YAML 1.1\n---\nnixprov: 1\nserial: 7\nexpires: 2099-01-01T00:00:00Z\n"
            "strategy: source\ngroups: [edge]\n...\n# the end\n",
            /* explicit keys, comments everywhere */
            "? nixprov # schema\n: 1\nserial: 7 # serial\nexpires: 2099-01-01T00:00:00Z\n"
            "strategy: source\ngroups:\n# comment\n- edge\n",
            /* no final newline, both machines and groups */
            HEAD "groups: [edge]",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
                _cleanup_(profile_freep) struct profile *p = parse_ok(variants[i]);

                assert_int_equal(p->serial, 7);
                assert_int_equal(p->strategy, PROFILE_STRATEGY_SOURCE);
        }
}

static struct profile *parse_file(const char *name)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        struct profile *p = NULL;
        struct profile_error e = {};
        char line[1024];
        size_t size;
        int r;

        assert_true(asprintf(&path, "%s/%s", EXAMPLES_DIR, name) > 0);
        r = read_file_bounded(path, PROFILE_MAX_BYTES, &data, &size);
        if (r < 0)
                fail_msg("%s: %s", path, strerror(-r));
        r = profile_parse(data, size, name, &p, &e);
        if (r < 0)
                fail_msg("%s", profile_error_format(&e, line, sizeof(line)));
        return p;
}

static void test_examples(void **state)
{
        _cleanup_(profile_freep) struct profile *caches = parse_file("binary-caches.yaml");
        _cleanup_(profile_freep) struct profile *source = parse_file("source.yaml");
        _cleanup_(profile_freep) struct profile *remote = parse_file("remote-builders.yaml");

        (void)state;
        assert_int_equal(caches->strategy, PROFILE_STRATEGY_BINARY_CACHES);
        assert_int_equal(caches->n_machines, 0);
        assert_int_equal(caches->n_groups, 2);
        assert_string_equal(profile_find_setting(caches, "max-jobs")->value, "fit");
        assert_string_equal(profile_find_setting(caches, "extra-experimental-features")->value,
                            "nix-command flakes");
        assert_non_null(caches->rebuild.flake);

        assert_int_equal(source->strategy, PROFILE_STRATEGY_SOURCE);
        assert_int_equal(source->n_machines, 2);
        assert_string_equal(source->machines[1], "0b5e3f1a92c44d7e8a613c2f9e0d4b17");
        assert_int_equal(source->rebuild.action, PROFILE_REBUILD_BOOT);
        assert_null(source->rebuild.flake);

        assert_int_equal(remote->strategy, PROFILE_STRATEGY_REMOTE_BUILDERS);
        assert_int_equal(remote->n_machines, 1);
        assert_int_equal(remote->n_builders, 2);
        assert_int_equal(remote->builders[0].identity.kind, PROFILE_SECRET_SEALED);
        assert_int_equal(remote->builders[1].identity.kind, PROFILE_SECRET_PATH);
        assert_false(remote->builders[1].required);
        assert_true(remote->fallback_local);
        assert_false(remote->local_builds);
        assert_int_equal(remote->n_caches, 1);
        assert_int_equal(remote->caches[0].auth_token.kind, PROFILE_SECRET_SEALED);
        assert_true(remote->caches[0].auth_token.sealed_size > 48);
}

/* ---- the small functions ---- */

static void test_error_format(void **state)
{
        struct profile_error e = {.file = "a.yaml",
                                  .line = 3,
                                  .column = 5,
                                  .key = "serial",
                                  .message = "expected an unsigned integer, got '-1'"};
        char buf[1024], small[8];

        (void)state;
        assert_string_equal(profile_error_format(&e, buf, sizeof(buf)),
                            "a.yaml:3:5: serial: expected an unsigned integer, got '-1'");
        e.key[0] = '\0';
        assert_string_equal(profile_error_format(&e, buf, sizeof(buf)),
                            "a.yaml:3:5: expected an unsigned integer, got '-1'");
        e.line = 0;
        assert_string_equal(profile_error_format(&e, buf, sizeof(buf)),
                            "a.yaml: expected an unsigned integer, got '-1'");
        e.file[0] = '\0';
        assert_string_equal(profile_error_format(&e, buf, sizeof(buf)),
                            "expected an unsigned integer, got '-1'");
        e.line = 2;
        e.column = 1;
        assert_string_equal(profile_error_format(&e, buf, sizeof(buf)),
                            "2:1: expected an unsigned integer, got '-1'");
        assert_string_equal(profile_error_format(&e, small, sizeof(small)), "2:1: ex");
}

static void test_helpers(void **state)
{
        struct profile *p = NULL;
        int r;

        (void)state;
        assert_null(profile_free(NULL));
        assert_string_equal(profile_strategy_to_string(PROFILE_STRATEGY_BINARY_CACHES),
                            "binary-caches");
        assert_string_equal(profile_strategy_to_string(PROFILE_STRATEGY_SOURCE), "source");
        assert_string_equal(profile_strategy_to_string(PROFILE_STRATEGY_REMOTE_BUILDERS),
                            "remote-builders");
        assert_null(profile_strategy_to_string(_PROFILE_STRATEGY_MAX));
        assert_null(profile_strategy_to_string((enum profile_strategy) - 1));
        assert_string_equal(profile_rebuild_action_to_string(PROFILE_REBUILD_SWITCH), "switch");
        assert_string_equal(profile_rebuild_action_to_string(PROFILE_REBUILD_BOOT), "boot");
        assert_string_equal(profile_rebuild_action_to_string(PROFILE_REBUILD_TEST), "test");
        assert_null(profile_rebuild_action_to_string(_PROFILE_REBUILD_ACTION_MAX));
        assert_null(profile_find_setting(NULL, "cores"));

        /* No error record wanted; no file name. */
        r = profile_parse("serial: -1\n", 11, NULL, &p, NULL);
        assert_int_equal(r, -EBADMSG);
        assert_null(p);
        r = profile_parse(HEAD, strlen(HEAD), NULL, &p, NULL);
        assert_int_equal(r, 0);
        p = profile_free(p);
        /* A buffer that is not NUL-terminated: only size bytes are read. */
        r = profile_parse(HEAD "serial: x", strlen(HEAD), "test.yaml", &p, NULL);
        assert_int_equal(r, 0);
        p = profile_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bad),           cmocka_unit_test(test_too_large),
            cmocka_unit_test(test_long_lists),    cmocka_unit_test(test_long_scalars),
            cmocka_unit_test(test_long_key_path), cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_values),        cmocka_unit_test(test_syntax_variants),
            cmocka_unit_test(test_examples),      cmocka_unit_test(test_error_format),
            cmocka_unit_test(test_helpers),       cmocka_unit_test(test_health),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
