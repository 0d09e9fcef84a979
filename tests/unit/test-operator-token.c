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
#include <sodium.h>

#include "operator_token.h"

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/tmp/nixprov-test-operator-token-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void write_token(const char *path, const char *text, mode_t mode)
{
        int fd;

        (void)unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static void test_create_and_read(void **state)
{
        char path[128], *token = NULL;
        struct stat st;
        (void)state;

        snprintf(path, sizeof(path), "%s/operator.token", dir);
        assert_int_equal(operator_token_create(path), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, OPERATOR_TOKEN_RANDOM_BYTES * 2 + 1);
        assert_int_equal(operator_token_create(path), -EEXIST);
        assert_int_equal(operator_token_read(path, &token), 0);
        assert_int_equal(strlen(token), OPERATOR_TOKEN_RANDOM_BYTES * 2);
        assert_int_equal(strspn(token, "0123456789abcdef"), OPERATOR_TOKEN_RANDOM_BYTES * 2);
        operator_token_freep(&token);
        assert_null(token);
}

static void test_read_refusals(void **state)
{
        char path[128], *token = NULL;
        (void)state;

        snprintf(path, sizeof(path), "%s/t", dir);
        write_token(path, "0123456789abcdef\n", 0644);
        assert_int_equal(operator_token_read(path, &token), -EPERM);
        write_token(path, "0123456789abcdef\n", 0640);
        assert_int_equal(operator_token_read(path, &token), -EPERM);
        write_token(path, "0123456789abcdef\n", 0400);
        assert_int_equal(operator_token_read(path, &token), 0);
        assert_string_equal(token, "0123456789abcdef");
        operator_token_freep(&token);
        write_token(path, "0123456789abcdef\r\n", 0600);
        assert_int_equal(operator_token_read(path, &token), 0);
        assert_string_equal(token, "0123456789abcdef");
        operator_token_freep(&token);
        write_token(path, "0123456789abcde\n", 0600); /* 15 bytes */
        assert_int_equal(operator_token_read(path, &token), -EBADMSG);
        write_token(path, "0123456789 abcdef\n", 0600);
        assert_int_equal(operator_token_read(path, &token), -EBADMSG);
        write_token(path, "0123456789abcdef\n\n", 0600);
        assert_int_equal(operator_token_read(path, &token), -EBADMSG);
        write_token(path, "", 0600);
        assert_int_equal(operator_token_read(path, &token), -EBADMSG);
        assert_int_equal(operator_token_read(dir, &token), -EINVAL);
        snprintf(path, sizeof(path), "%s/missing", dir);
        assert_int_equal(operator_token_read(path, &token), -ENOENT);
        assert_null(token);
}

static void test_check(void **state)
{
        uint8_t digest[OPERATOR_TOKEN_DIGEST_BYTES];
        (void)state;

        operator_token_digest("0123456789abcdef", 16, digest);
        assert_int_equal(operator_token_check(digest, "Bearer 0123456789abcdef"), 0);
        assert_int_equal(operator_token_check(digest, "BEARER 0123456789abcdef"), 0);
        assert_int_equal(operator_token_check(digest, "Bearer 0123456789abcdeF"), -EKEYREJECTED);
        assert_int_equal(operator_token_check(digest, "Bearer 0123456789abcde"), -EKEYREJECTED);
        assert_int_equal(operator_token_check(digest, "Bearer 0123456789abcdef "), -EKEYREJECTED);
        assert_int_equal(operator_token_check(digest, "Bearer "), -ENOMSG);
        assert_int_equal(operator_token_check(digest, "Bearer"), -ENOMSG);
        assert_int_equal(operator_token_check(digest, "Basic 0123456789abcdef"), -ENOMSG);
        assert_int_equal(operator_token_check(digest, "0123456789abcdef"), -ENOMSG);
        assert_int_equal(operator_token_check(digest, NULL), -ENOMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_create_and_read),
            cmocka_unit_test(test_read_refusals),
            cmocka_unit_test(test_check),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, setup, teardown);
}
