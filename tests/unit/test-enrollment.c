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
            cmocka_unit_test(test_token_file_refusals),
            cmocka_unit_test(test_token_file_key),
            cmocka_unit_test(test_policy_refusals),
            cmocka_unit_test(test_policy_token_files),
            cmocka_unit_test(test_policy_match),
            cmocka_unit_test(test_macs),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
