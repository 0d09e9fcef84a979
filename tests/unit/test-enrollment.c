/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "enrollment.h"
#include "util.h"

static char dir[] = "/tmp/nixprov-test-enroll-XXXXXX";
static char token_ok[128], token_open[128], token_empty[128];

static void write_token(const char *path, const char *text, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static int setup(void **state)
{
        (void)state;
        if (!mkdtemp(dir) || sodium_init() < 0)
                return -1;
        snprintf(token_ok, sizeof(token_ok), "%s/token", dir);
        snprintf(token_open, sizeof(token_open), "%s/token-open", dir);
        snprintf(token_empty, sizeof(token_empty), "%s/token-empty", dir);
        write_token(token_ok, "s3cret\n", 0600);
        write_token(token_open, "s3cret\n", 0644);
        write_token(token_empty, "\n", 0400);
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static int parse(const char *text, struct enrollment_policy **ret, struct profile_error *error)
{
        return enrollment_policy_parse(text, strlen(text), "policy.yaml", ret, error);
}

/* enrollment_token_file_key(), which the server's policy and the agent share. */
static char *token_path(const char *name, const char *text, mode_t mode)
{
        char *p = NULL;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        write_token(p, text, mode);
        return p;
}

static void test_token_file_refusals(void **state)
{
        uint8_t k[32];
        char *group = token_path("group", "secret\n", 0640);
        char *writable = token_path("writable", "secret\n", 0620);
        char *big, *link = NULL, *missing = NULL;
        char text[ENROLLMENT_TOKEN_MAX + 2];
        (void)state;

        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        big = token_path("big", text, 0600);
        assert_true(asprintf(&link, "%s/link", dir) > 0);
        assert_int_equal(symlink(big, link), 0);
        assert_true(asprintf(&missing, "%s/missing", dir) > 0);

        assert_int_equal(enrollment_token_file_key(token_open, k), -EPERM);
        assert_int_equal(enrollment_token_file_key(group, k), -EPERM);
        assert_int_equal(enrollment_token_file_key(writable, k), -EPERM);
        assert_int_equal(enrollment_token_file_key(token_empty, k), -EINVAL);
        assert_int_equal(enrollment_token_file_key(big, k), -E2BIG);
        assert_int_equal(enrollment_token_file_key(link, k), -ELOOP);
        assert_int_equal(enrollment_token_file_key(missing, k), -ENOENT);
        assert_int_equal(enrollment_token_file_key(dir, k), -EINVAL);
        free(group);
        free(writable);
        free(big);
        free(link);
        free(missing);
}

/* One trailing newline is not part of the token; anything else is. */
static void test_token_file_key(void **state)
{
        uint8_t a[32], b[32], c[32], expected[32];
        char *without = token_path("t-without", "s3cret", 0600);
        char *other = token_path("t-other", "s3cret \n", 0600);
        (void)state;

        assert_int_equal(enrollment_token_file_key(token_ok, a), 0);
        assert_int_equal(enrollment_token_file_key(without, b), 0);
        assert_int_equal(enrollment_token_file_key(other, c), 0);
        assert_memory_equal(a, b, sizeof(a));
        assert_memory_not_equal(a, c, sizeof(a));
        enrollment_token_key((const uint8_t *)"s3cret", 6, expected);
        assert_memory_equal(a, expected, sizeof(a));
        free(without);
        free(other);
}

static void test_policy_refusals(void **state)
{
        static const struct {
                const char *yaml;
                int r;
                unsigned line;
                const char *key;
                const char *message; /* a part of it */
        } cases[] = {
            {"", -EBADMSG, 0, "", ""},
            {"approve: {}\nextra: 1\n", -EBADMSG, 2, "extra", "unknown"},
            {"other: 1\n", -EBADMSG, 1, "other", "unknown"},
            {"approve:\n  machine-ids: [xyz]\n", -EBADMSG, 2, "approve.machine-ids[0]",
             "invalid machine id"},
            {"approve:\n  machine-ids: 0123456789abcdef0123456789abcdef\n", -EBADMSG, 2,
             "approve.machine-ids", "list"},
            {"approve:\n  macs: [\"52:54:00:12:34\"]\n", -EBADMSG, 2, "approve.macs[0]",
             "invalid MAC"},
            {"approve:\n  macs: []\n  macs: []\n", -EBADMSG, 3, "approve.macs", "duplicate"},
            {"approve:\n  token-files: [relative/token]\n", -EBADMSG, 2, "approve.token-files[0]",
             "absolute"},
            {"approve:\n  token-files: [/nonexistent/nixprov-token]\n", -EBADMSG, 2,
             "approve.token-files[0]", "cannot read"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct enrollment_policy *p = NULL;
                struct profile_error error = {};
                int r = parse(cases[i].yaml, &p, &error);

                if (r != cases[i].r)
                        fail_msg("case %zu: %d, expected %d (%s)", i, r, cases[i].r, error.message);
                assert_null(p);
                if (cases[i].line)
                        assert_int_equal(error.line, cases[i].line);
                assert_string_equal(error.key, cases[i].key);
                if (!strstr(error.message, cases[i].message))
                        fail_msg("case %zu: '%s' lacks '%s'", i, error.message, cases[i].message);
        }
}

static void test_policy_token_files(void **state)
{
        struct enrollment_policy *p = NULL;
        struct profile_error error = {};
        char *yaml;
        (void)state;

        /* Readable by others: refused, naming the mode, never the token. */
        assert_true(asprintf(&yaml, "approve:\n  token-files:\n    - %s\n", token_open) > 0);
        assert_int_equal(parse(yaml, &p, &error), -EBADMSG);
        assert_int_equal(error.line, 3);
        assert_string_equal(error.key, "approve.token-files[0]");
        assert_non_null(strstr(error.message, "must be mode 0600"));
        assert_null(strstr(error.message, "s3cret"));
        free(yaml);

        assert_true(asprintf(&yaml, "approve:\n  token-files: [%s]\n", token_empty) > 0);
        assert_int_equal(parse(yaml, &p, &error), -EBADMSG);
        assert_non_null(strstr(error.message, "empty"));
        free(yaml);

        assert_true(asprintf(&yaml, "approve:\n  token-files: [%s]\n", dir) > 0);
        assert_int_equal(parse(yaml, &p, &error), -EBADMSG);
        free(yaml);
}

static void test_policy_match(void **state)
{
        struct enrollment_policy *p = NULL;
        struct profile_error error = {};
        struct enrollment_request request = {};
        uint8_t k[32];
        json_t *macs;
        char *yaml;
        (void)state;

        assert_true(asprintf(&yaml,
                             "approve:\n"
                             "  machine-ids: [0123456789ABCDEF0123456789ABCDEF,\n"
                             "                4c4c4544-004d-3510-804f-b4c04f4d3732]\n"
                             "  macs: [\"52:54:00:AB:CD:EF\"]\n"
                             "  token-files: [%s]\n",
                             token_ok) > 0);
        assert_int_equal(parse(yaml, &p, &error), 0);
        free(yaml);
        assert_int_equal(p->n_machine_ids, 2);
        assert_string_equal(p->machine_ids[0], "0123456789abcdef0123456789abcdef");
        assert_string_equal(p->machine_ids[1], "4c4c4544004d3510804fb4c04f4d3732");
        assert_string_equal(p->macs[0], "52:54:00:ab:cd:ef");
        assert_int_equal(p->n_token_keys, 1);

        macs = json_pack("[s]", "02:00:00:00:00:01");
        request.macs = macs;
        request.machine_id = "ffffffffffffffffffffffffffffffff";
        memset(request.sign_key, 1, sizeof(request.sign_key));
        memset(request.box_key, 2, sizeof(request.box_key));
        assert_null(enrollment_policy_match(NULL, &request));
        assert_null(enrollment_policy_match(p, &request));

        request.machine_id = "4c4c4544004d3510804fb4c04f4d3732";
        assert_string_equal(enrollment_policy_match(p, &request), "policy:machine-id");
        request.machine_id = "ffffffffffffffffffffffffffffffff";

        assert_int_equal(json_array_append_new(macs, json_string("52:54:00:ab:cd:ef")), 0);
        assert_string_equal(enrollment_policy_match(p, &request), "policy:mac");
        json_array_clear(macs);

        /* The token without its newline; the proof binds the machine id and both keys. */
        enrollment_token_key((const uint8_t *)"s3cret", 6, k);
        enrollment_token_proof(k, request.machine_id, request.sign_key, request.box_key,
                               request.token_proof);
        request.has_token_proof = true;
        assert_string_equal(enrollment_policy_match(p, &request), "policy:token");
        request.box_key[0] ^= 1;
        assert_null(enrollment_policy_match(p, &request));

        json_decref(macs);
        enrollment_policy_free(p);
}

/* ---- the request (POST /v1/enroll) ---------------------------------------------------------- */

#define KEY0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define M1 "0123456789abcdef0123456789abcdef"

/* A valid request, with key set to the JSON text value (NULL: removed). */
static json_t *request_with(const char *key, const char *value)
{
        json_t *json =
            json_pack("{s:s, s:s, s:[s], s:s, s:i, s:I, s:s, s:s, s:i, s:s}", "machine_id", M1,
                      "hostname", "m1", "macs", "52:54:00:12:34:56", "system", "x86_64-linux",
                      "cpus", 4, "memory", (json_int_t)8 << 30, "sign_key", KEY0, "box_key", KEY1,
                      "time", 1700000000, "signature", "not checked here");

        assert_non_null(json);
        if (!key)
                return json;
        if (!value) {
                assert_int_equal(json_object_del(json, key), 0);
                return json;
        }
        assert_int_equal(json_object_set_new(
                             json, key, json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)),
                         0);
        return json;
}

static void test_request_refusals(void **state)
{
        static const struct {
                const char *key;
                const char *value; /* JSON text; NULL: the member is missing */
                const char *problem;
        } cases[] = {
            {"machine_id", NULL, "missing field 'machine_id'"},
            {"machine_id", "32", "field 'machine_id' must be a string"},
            {"machine_id", "\"0123\"",
             "field 'machine_id' must be 32 lowercase hexadecimal digits"},
            {"machine_id", "\"0123456789ABCDEF0123456789ABCDEF\"",
             "field 'machine_id' must be 32 lowercase hexadecimal digits"},
            {"machine_id", "\"0123456789abcdef\\u00000123456789abcde\"",
             "field 'machine_id' must not contain NUL"},
            {"hostname", NULL, "missing field 'hostname'"},
            {"hostname", "\"\"",
             "field 'hostname' must be a non-empty string without control "
             "characters"},
            {"hostname", "\"m1\\nx\"",
             "field 'hostname' must be a non-empty string without "
             "control characters"},
            {"hostname", "\"m1\\u007f\"",
             "field 'hostname' must be a non-empty string without "
             "control characters"},
            {"hostname", "[\"m1\"]", "field 'hostname' must be a string"},
            {"macs", NULL, "missing field 'macs'"},
            {"macs", "\"52:54:00:12:34:56\"", "field 'macs' must be an array of strings"},
            {"macs", "[1]", "field 'macs' must be an array of strings"},
            {"macs", "[\"52:54:00:12:34:5G\"]",
             "field 'macs' must be an array of MAC addresses like \"aa:bb:cc:dd:ee:ff\" "
             "(lowercase)"},
            {"macs", "[\"52:54:00:AB:CD:EF\"]",
             "field 'macs' must be an array of MAC addresses like \"aa:bb:cc:dd:ee:ff\" "
             "(lowercase)"},
            {"system", NULL, "missing field 'system'"},
            {"system", "\"\"", "field 'system' must be a Nix system like \"x86_64-linux\""},
            {"system", "\"x86_64\\tlinux\"",
             "field 'system' must be a Nix system like \"x86_64-linux\""},
            {"system", "null", "field 'system' must be a string"},
            {"cpus", NULL, "missing field 'cpus'"},
            {"cpus", "0", "field 'cpus' must be an integer >= 1"},
            {"cpus", "\"4\"", "field 'cpus' must be an integer >= 1"},
            {"cpus", "1.5", "field 'cpus' must be an integer >= 1"},
            {"memory", NULL, "missing field 'memory'"},
            {"memory", "-1", "field 'memory' must be an integer >= 0"},
            {"sign_key", NULL, "missing field 'sign_key'"},
            {"sign_key", "\"AAAA\"",
             "field 'sign_key' must be the base64 of 32 bytes (an Ed25519 public key)"},
            {"sign_key", "\"" KEY0 "AAAA\"",
             "field 'sign_key' must be the base64 of 32 bytes (an Ed25519 public key)"},
            {"sign_key", "\"!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
             "field 'sign_key' must be the base64 of 32 bytes (an Ed25519 public key)"},
            {"sign_key", "32",
             "field 'sign_key' must be the base64 of 32 bytes (an Ed25519 "
             "public key)"},
            {"box_key", NULL, "missing field 'box_key'"},
            {"box_key", "\"AAAA\"",
             "field 'box_key' must be the base64 of 32 bytes (an X25519 public key)"},
            {"time", NULL, "missing field 'time'"},
            {"time", "-1", "field 'time' must be an integer >= 0"},
            {"time", "true", "field 'time' must be an integer >= 0"},
            {"token_proof", "\"AAAA\"", "field 'token_proof' must be the base64 of 32 bytes"},
            {"token_proof", "null", "field 'token_proof' must be the base64 of 32 bytes"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *json = request_with(cases[i].key, cases[i].value);
                struct enrollment_request request, untouched;
                char problem[ENROLLMENT_PROBLEM_MAX] = "";
                int r;

                memset(&request, 0x5a, sizeof(request));
                untouched = request;
                r = enrollment_request_parse(json, &request, problem);
                if (r != -EBADMSG || !streq(problem, cases[i].problem))
                        fail_msg("case %zu (%s): %d '%s', expected '%s'", i, cases[i].key, r,
                                 problem, cases[i].problem);
                /* Nothing is handed out on a refusal. */
                assert_memory_equal(&request, &untouched, sizeof(request));
                json_decref(json);
        }
}

static void test_request_bounds(void **state)
{
        struct enrollment_request request;
        char problem[ENROLLMENT_PROBLEM_MAX] = "";
        char text[ENROLLMENT_HOSTNAME_MAX + 2];
        json_t *json, *macs, *deep;
        (void)state;

        /* Exactly at each limit: taken. */
        memset(text, 'h', sizeof(text) - 1);
        text[ENROLLMENT_HOSTNAME_MAX] = '\0';
        json = request_with(NULL, NULL);
        assert_int_equal(json_object_set_new(json, "hostname", json_string(text)), 0);
        macs = json_object_get(json, "macs");
        while (json_array_size(macs) < ENROLLMENT_MACS_MAX)
                assert_int_equal(json_array_append_new(macs, json_string("02:00:00:00:00:01")), 0);
        assert_int_equal(enrollment_request_parse(json, &request, problem), 0);
        enrollment_request_done(&request);

        /* One past: refused, naming the limit. */
        text[ENROLLMENT_HOSTNAME_MAX] = 'h';
        text[ENROLLMENT_HOSTNAME_MAX + 1] = '\0';
        assert_int_equal(json_object_set_new(json, "hostname", json_string(text)), 0);
        assert_int_equal(enrollment_request_parse(json, &request, problem), -EBADMSG);
        assert_string_equal(problem, "field 'hostname' is too long (max 253 bytes)");
        assert_int_equal(json_object_set_new(json, "hostname", json_string("m1")), 0);
        assert_int_equal(json_array_append_new(macs, json_string("02:00:00:00:00:01")), 0);
        assert_int_equal(enrollment_request_parse(json, &request, problem), -EBADMSG);
        assert_string_equal(problem, "field 'macs' has too many elements (max 64)");
        json_decref(json);

        memset(text, 's', ENROLLMENT_SYSTEM_MAX + 1);
        text[ENROLLMENT_SYSTEM_MAX + 1] = '\0';
        json = request_with("system", NULL);
        assert_int_equal(json_object_set_new(json, "system", json_string(text)), 0);
        assert_int_equal(enrollment_request_parse(json, &request, problem), -EBADMSG);
        assert_string_equal(problem, "field 'system' is too long (max 64 bytes)");
        json_decref(json);

        /* Not an object; nested past the bound (in a member the server does not know). */
        json = json_pack("[s]", M1);
        assert_int_equal(enrollment_request_parse(json, &request, problem), -EBADMSG);
        assert_string_equal(problem, "an enrollment must be a JSON object");
        json_decref(json);
        json = request_with(NULL, NULL);
        deep = json_array();
        for (int i = 0; i < JSON_SCHEMA_DEPTH_MAX; i++)
                deep = json_pack("[o]", deep);
        assert_int_equal(json_object_set_new(json, "extra", deep), 0);
        assert_int_equal(enrollment_request_parse(json, &request, problem), -EBADMSG);
        assert_string_equal(problem, "nested deeper than 16");
        assert_int_equal(enrollment_request_parse(NULL, &request, problem), -EBADMSG);
        assert_int_equal(enrollment_request_parse(json, NULL, problem), -EINVAL);
        json_decref(json);
}

static void test_request_ok(void **state)
{
        struct enrollment_request request;
        char problem[ENROLLMENT_PROBLEM_MAX] = "";
        json_t *json = request_with("newer_fact", "{\"gpu\": \"none\"}");
        char *facts;
        (void)state;

        /* Members it does not know (a newer agent's, the signature) are ignored. */
        assert_int_equal(enrollment_request_parse(json, &request, problem), 0);
        assert_string_equal(request.machine_id, M1);
        assert_string_equal(request.hostname, "m1");
        assert_string_equal(request.system, "x86_64-linux");
        assert_int_equal(request.cpus, 4);
        assert_int_equal(request.memory, (int64_t)8 << 30);
        assert_int_equal(request.time, 1700000000);
        assert_string_equal(request.sign_key_base64, KEY0);
        assert_string_equal(request.box_key_base64, KEY1);
        for (size_t i = 0; i < ENROLLMENT_KEY_BYTES; i++) {
                assert_int_equal(request.sign_key[i], 0);
                assert_int_equal(request.box_key[i], 1);
        }
        assert_false(request.has_token_proof);
        facts = json_dumps(request.facts, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(facts, "{\"cpus\":4,\"macs\":[\"52:54:00:12:34:56\"],\"memory\":"
                                   "8589934592,\"system\":\"x86_64-linux\"}");
        free(facts);
        enrollment_request_done(&request);
        assert_null(request.facts);
        json_decref(json);

        json = request_with("token_proof", "\"" KEY1 "\"");
        assert_int_equal(enrollment_request_parse(json, &request, problem), 0);
        assert_true(request.has_token_proof);
        assert_int_equal(request.token_proof[0], 1);
        assert_int_equal(request.token_proof[ENROLLMENT_PROOF_BYTES - 1], 1);
        enrollment_request_done(&request);
        json_decref(json);
}

static void test_macs(void **state)
{
        (void)state;
        assert_true(enrollment_mac_is_valid("52:54:00:12:34:56"));
        assert_false(enrollment_mac_is_valid("52:54:00:12:34:5"));
        assert_false(enrollment_mac_is_valid("52:54:00:12:34:56:"));
        assert_false(enrollment_mac_is_valid("52-54-00-12-34-56"));
        assert_false(enrollment_mac_is_valid("52:54:00:12:34:5F"));
        assert_false(enrollment_mac_is_valid(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_token_file_refusals), cmocka_unit_test(test_token_file_key),
            cmocka_unit_test(test_policy_refusals),     cmocka_unit_test(test_policy_token_files),
            cmocka_unit_test(test_policy_match),        cmocka_unit_test(test_macs),
            cmocka_unit_test(test_request_refusals),    cmocka_unit_test(test_request_bounds),
            cmocka_unit_test(test_request_ok),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
