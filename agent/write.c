/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "write.h"

static bool same_directory(const char *a, const char *b)
{
        const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');

        return sa && sb && sa - a == sb - b && strncmp(a, b, (size_t)(sa - a)) == 0;
}

static int restore_one(const char *path, bool had_previous)
{
        _cleanup_free_ char *previous = NULL;

        if (!had_previous)
                return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        if (asprintf(&previous, "%s~", path) < 0)
                return -ENOMEM;
        /* Keep PATH~ as well: link, then rename over, so PATH is never missing. */
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.restore", path) < 0)
                return -ENOMEM;
        (void)unlink(tmp);
        if (link(previous, tmp) < 0)
                return -errno;
        if (rename(tmp, path) < 0) {
                int r = -errno;
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

int write_restore(struct write_set *set)
{
        int ret = 0;

        for (size_t i = set->n_files; i-- > 0;) {
                int r = restore_one(set->files[i].path, set->files[i].had_previous);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

int write_forget_secrets(struct write_set *set)
{
        int ret = 0;

        for (size_t i = 0; i < set->n_files; i++) {
                _cleanup_free_ char *previous = NULL;
                int r = 0;

                if (!set->files[i].secret || !set->files[i].had_previous)
                        continue;
                if (asprintf(&previous, "%s~", set->files[i].path) < 0) {
                        previous = NULL;
                        r = -ENOMEM;
                } else if (unlink(previous) < 0 && errno != ENOENT)
                        r = -errno;
                else
                        r = fsync_directory_of(set->files[i].path);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

void write_set_done(struct write_set *set)
{
        for (size_t i = 0; i < set->n_files; i++)
                free(set->files[i].path);
        set->n_files = 0;
}

int write_files(const char *root, const struct write_item *items, size_t n_items,
                struct write_set *ret, char **ret_failed_path)
{
        struct write_set set = {};
        char *paths[WRITE_MAX_FILES] = {}, *tmps[WRITE_MAX_FILES] = {};
        int fds[WRITE_MAX_FILES];
        bool had_previous[WRITE_MAX_FILES];
        size_t n_prepared = 0, failed = SIZE_MAX;
        int r = 0;

        if (n_items > WRITE_MAX_FILES)
                return -E2BIG;

        /* 1. Every file into a temporary file beside its place: nothing is replaced yet. */
        for (size_t i = 0; i < n_items; i++, n_prepared++) {
                _cleanup_free_ char *dir = NULL;

                paths[i] = path_join_root(root, items[i].path);
                if (!paths[i] || !(dir = strdup(paths[i]))) {
                        r = -ENOMEM;
                        failed = i;
                        break;
                }
                fds[i] = -EBADF;
                if (!items[i].data) { /* a removal: nothing to prepare */
                        had_previous[i] = access(paths[i], F_OK) == 0;
                        continue;
                }
                r = mkdir_parents(dirname(dir), 0755);
                if (r >= 0)
                        r = atomic_write_prepare(paths[i], items[i].data, items[i].size,
                                                 items[i].mode, &fds[i], &tmps[i]);
                if (r < 0) {
                        failed = i;
                        break;
                }
                had_previous[i] = access(paths[i], F_OK) == 0;
        }

        /* 2. One sync for all of them (one journal commit instead of one a file). */
        for (size_t i = 0; r >= 0 && i < n_prepared; i++)
                if (fds[i] >= 0) {
                        if (syncfs(fds[i]) < 0) {
                                r = -errno;
                                failed = i;
                        }
                        break;
                }

        /* 3. Into place, the previous versions kept as PATH~. */
        for (size_t i = 0; r >= 0 && i < n_prepared; i++) {
                if (!items[i].data) {
                        _cleanup_free_ char *previous = NULL;

                        if (!had_previous[i])
                                continue;
                        if (asprintf(&previous, "%s~", paths[i]) < 0) {
                                previous = NULL;
                                r = -ENOMEM;
                        } else if (unlink(previous) < 0 && errno != ENOENT)
                                r = -errno;
                        /* rename() does nothing when both names link the same file, as a
                         * restored file and its PATH~ do: hence the unlink first. */
                        else if (rename(paths[i], previous) < 0)
                                r = -errno;
                } else
                        r = atomic_write_commit(paths[i], tmps[i], WRITE_FILE_KEEP_PREVIOUS);
                if (r < 0) {
                        failed = i;
                        break;
                }
                set.files[set.n_files].secret = (items[i].mode & 077) == 0;
                set.files[set.n_files].removed = !items[i].data;
                set.files[set.n_files].had_previous = had_previous[i];
                set.files[set.n_files++].path = TAKE_PTR(paths[i]);
                free(tmps[i]); /* renamed into place: nothing left to remove */
                tmps[i] = NULL;
        }

        /* 4. The directories, once each. */
        for (size_t i = 0; r >= 0 && i < set.n_files; i++) {
                bool seen = false;

                for (size_t j = 0; j < i && !seen; j++)
                        seen = same_directory(set.files[i].path, set.files[j].path);
                if (!seen) {
                        r = fsync_directory_of(set.files[i].path);
                        if (r < 0)
                                failed = i;
                }
        }

        for (size_t i = 0; i < n_prepared; i++) {
                if (fds[i] >= 0)
                        safe_close(fds[i]);
                if (tmps[i]) {
                        (void)unlink(tmps[i]);
                        free(tmps[i]);
                }
        }
        if (r < 0) {
                if (ret_failed_path && failed < n_items)
                        *ret_failed_path = path_join_root(root, items[failed].path);
                (void)write_restore(&set);
                write_set_done(&set);
        } else
                *ret = set;
        for (size_t i = 0; i < n_items; i++)
                free(paths[i]);
        return r;
}
