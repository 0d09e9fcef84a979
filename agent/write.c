/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "write.h"

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
        int r;

        if (n_items > WRITE_MAX_FILES)
                return -E2BIG;

        for (size_t i = 0; i < n_items; i++) {
                _cleanup_free_ char *path = path_join_root(root, items[i].path), *dir = NULL;

                if (!path || !(dir = strdup(path))) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = mkdir_parents(dirname(dir), 0755);
                if (r >= 0) {
                        bool had_previous = access(path, F_OK) == 0;

                        r = write_file_atomic(path, items[i].data, items[i].size, items[i].mode,
                                              WRITE_FILE_KEEP_PREVIOUS);
                        if (r >= 0) {
                                set.files[set.n_files].had_previous = had_previous;
                                set.files[set.n_files++].path = TAKE_PTR(path);
                                continue;
                        }
                }
                if (ret_failed_path)
                        *ret_failed_path = TAKE_PTR(path);
                goto fail;
        }
        *ret = set;
        return 0;

fail:
        (void)write_restore(&set);
        write_set_done(&set);
        return r;
}
