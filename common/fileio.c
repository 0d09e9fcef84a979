/* SPDX-License-Identifier: MIT */
#include <dirent.h>
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

int fsync_directory_of(const char *path)
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

int temporary_path(const char *path, char **ret)
{
        const char *slash = strrchr(path, '/');
        int dir_len = slash ? (int)(slash - path + 1) : 0;

        if (asprintf(ret, "%.*s.%s" FILEIO_TEMPORARY_MARK "%08x", dir_len, path, path + dir_len,
                     randombytes_random()) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

bool is_temporary_name(const char *name)
{
        const char *mark = NULL, *p = name;
        size_t n = 0;

        if (name[0] != '.')
                return false;
        while ((p = strstr(p, FILEIO_TEMPORARY_MARK))) /* the last one */
                mark = p++;
        if (!mark || mark == name)
                return false;
        for (p = mark + strlen(FILEIO_TEMPORARY_MARK); *p; p++, n++)
                if (!strchr("0123456789abcdef", *p))
                        return false;
        return n == 8;
}

/* Whether the entry is a leftover that flags asks to remove. */
static bool temporary_wanted(int dir_fd, const char *name, enum remove_temporary_flags flags)
{
        struct stat st;
        bool secret;

        if (!is_temporary_name(name))
                return false;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        secret = S_ISREG(st.st_mode) && (st.st_mode & 077) == 0;
        return (flags & (secret ? REMOVE_TEMPORARY_SECRET : REMOVE_TEMPORARY_OTHER)) != 0;
}

int remove_temporary_files(const char *dir, enum remove_temporary_flags flags)
{
        struct dirent *de;
        int n = 0, r = 0;
        DIR *d;

        d = opendir(dir);
        if (!d)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        for (errno = 0; (de = readdir(d)); errno = 0) {
                if (!temporary_wanted(dirfd(d), de->d_name, flags))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                } else
                        n++;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        closedir(d);
        return r < 0 ? r : n;
}

int atomic_write_prepare(const char *path, const void *data, size_t size, mode_t mode, int *ret_fd,
                         char **ret_tmp)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = temporary_path(path, &tmp);
        if (r < 0)
                return r;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        if (fd < 0)
                return -errno;
        /* The umask can only have removed bits; put back exactly the requested ones. */
        r = fchmod(fd, mode) < 0 ? -errno : write_all(fd, data, size);
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        *ret_tmp = TAKE_PTR(tmp);
        return 0;
}

int atomic_write_commit(const char *path, const char *tmp, enum write_file_flags flags)
{
        _cleanup_free_ char *previous = NULL;

        if (flags & WRITE_FILE_EXCLUSIVE) {
                /* link() fails with EEXIST instead of replacing: no window for a race. */
                if (link(tmp, path) < 0)
                        return -errno;
                (void)unlink(tmp);
                return 0;
        }
        if (flags & WRITE_FILE_KEEP_PREVIOUS) {
                if (asprintf(&previous, "%s~", path) < 0)
                        return -ENOMEM;
                if (unlink(previous) < 0 && errno != ENOENT)
                        return -errno;
                if (link(path, previous) < 0 && errno != ENOENT)
                        return -errno;
        }
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode,
                      enum write_file_flags flags)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = atomic_write_prepare(path, data, size, mode, &fd, &tmp);
        if (r < 0)
                return r;
        r = fsync(fd) < 0 ? -errno : atomic_write_commit(path, tmp, flags);
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        return fsync_directory_of(path);
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
                /* Parents get the usual 0755; only the directory asked for gets mode. */
                if (mkdir(copy, saved == '\0' ? mode : 0755) < 0 && errno != EEXIST)
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
