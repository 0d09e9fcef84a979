/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "macro.h"
#include "operator_token.h"
#include "util.h"

static bool token_is_valid(const char *s, size_t size)
{
        if (size < OPERATOR_TOKEN_MIN || size > OPERATOR_TOKEN_MAX)
                return false;
        for (size_t i = 0; i < size; i++)
                if (s[i] <= ' ' || s[i] > '~')
                        return false;
        return true;
}

int operator_token_read(const char *path, char **ret_token)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t size = 0;
        char *token;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        /* A token anyone can read lets anyone see the fleet. */
        if (st.st_mode & 0077)
                return -EPERM;

        token = sodium_malloc(OPERATOR_TOKEN_MAX + 2);
        if (!token)
                return -ENOMEM;
        r = read_fd_into(fd, token, OPERATOR_TOKEN_MAX + 1, &size);
        if (r >= 0 && size > 0 && token[size - 1] == '\n')
                size--;
        if (r >= 0 && size > 0 && token[size - 1] == '\r')
                size--;
        if (r >= 0 && !token_is_valid(token, size))
                r = -EBADMSG;
        if (r < 0) {
                sodium_free(token);
                return r;
        }
        token[size] = '\0';
        *ret_token = token;
        return 0;
}

void operator_token_freep(char **p)
{
        if (*p)
                sodium_free(*p);
        *p = NULL;
}

int operator_token_create(const char *path)
{
        uint8_t random[OPERATOR_TOKEN_RANDOM_BYTES];
        char text[OPERATOR_TOKEN_RANDOM_BYTES * 2 + 2];
        int r;

        if (sodium_init() < 0)
                return -EIO;
        randombytes_buf(random, sizeof(random));
        (void)sodium_bin2hex(text, sizeof(text), random, sizeof(random));
        sodium_memzero(random, sizeof(random));
        text[OPERATOR_TOKEN_RANDOM_BYTES * 2] = '\n';
        r = write_file_atomic(path, text, OPERATOR_TOKEN_RANDOM_BYTES * 2 + 1, 0600,
                              WRITE_FILE_EXCLUSIVE);
        sodium_memzero(text, sizeof(text));
        return r;
}

void operator_token_digest(const char *token, size_t size,
                           uint8_t ret_digest[static OPERATOR_TOKEN_DIGEST_BYTES])
{
        (void)crypto_generichash(ret_digest, OPERATOR_TOKEN_DIGEST_BYTES, (const uint8_t *)token,
                                 size, NULL, 0);
}

int operator_token_check(const uint8_t digest[static OPERATOR_TOKEN_DIGEST_BYTES],
                         const char *authorization)
{
        uint8_t given[OPERATOR_TOKEN_DIGEST_BYTES];
        const char *token;
        int r;

        if (!authorization || strncasecmp(authorization, "Bearer ", strlen("Bearer ")) != 0)
                return -ENOMSG;
        token = authorization + strlen("Bearer ");
        token += strspn(token, " ");
        if (token[0] == '\0')
                return -ENOMSG;
        /* Digests of the same size: the comparison takes the same time wherever they differ. */
        operator_token_digest(token, strlen(token), given);
        r = sodium_memcmp(given, digest, OPERATOR_TOKEN_DIGEST_BYTES) == 0 ? 0 : -EKEYREJECTED;
        sodium_memzero(given, sizeof(given));
        return r;
}
