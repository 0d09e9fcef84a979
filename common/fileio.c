/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "util.h"

static int fsync_directory_of(const char *path)
{
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int fd = -EBADF;

        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode,
                      enum write_file_flags flags)
{
        _cleanup_free_ char *tmp = NULL, *previous = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint32_t nonce = randombytes_random();
        int r;

        if (asprintf(&tmp, "%s.tmp-%08x", path, nonce) < 0)
                return -ENOMEM;

        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        if (fd < 0)
                return -errno;
        /* The umask can only have removed bits; put back exactly the requested ones. */
        if (fchmod(fd, mode) < 0) {
                r = -errno;
                goto fail;
        }
        r = write_all(fd, data, size);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }

        if (flags & WRITE_FILE_EXCLUSIVE) {
                /* link() fails with EEXIST instead of replacing: no window for a race. */
                if (link(tmp, path) < 0) {
                        r = -errno;
                        goto fail;
                }
                (void)unlink(tmp);
        } else {
                if (flags & WRITE_FILE_KEEP_PREVIOUS) {
                        if (asprintf(&previous, "%s~", path) < 0) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        if (unlink(previous) < 0 && errno != ENOENT) {
                                r = -errno;
                                goto fail;
                        }
                        if (link(path, previous) < 0 && errno != ENOENT) {
                                r = -errno;
                                goto fail;
                        }
                }
                if (rename(tmp, path) < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        return fsync_directory_of(path);

fail:
        (void)unlink(tmp);
        return r;
}

int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *copy = strdup(path);
        struct stat st;

        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = saved;
                if (saved == '\0')
                        break;
        }
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        return 0;
}

char *path_join_root(const char *root, const char *path)
{
        char *joined;
        size_t n;

        if (!root || streq(root, "/") || !*root)
                return strdup(path);
        n = strlen(root);
        while (n > 1 && root[n - 1] == '/')
                n--;
        if (asprintf(&joined, "%.*s%s%s", (int)n, root, path[0] == '/' ? "" : "/", path) < 0)
                return NULL;
        return joined;
}
