/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libgen.h>
#include <stdint.h>
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
        if (temporary_path(path, &tmp) < 0)
                return -ENOMEM;
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

                /* Whether or not this run kept one: an interrupted earlier run may have. */
                if (!set->files[i].secret)
                        continue;
                if (asprintf(&previous, "%s~", set->files[i].path) < 0) {
                        previous = NULL;
                        r = -ENOMEM;
                } else if (unlink(previous) < 0)
                        r = errno == ENOENT ? 0 : -errno;
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

/* The files of one write_files() call on their way into place. */
struct write_job {
        char *paths[WRITE_MAX_FILES]; /* ROOT/PATH */
        char *tmps[WRITE_MAX_FILES];  /* the temporary file beside it, until renamed */
        int fds[WRITE_MAX_FILES];
        bool had_previous[WRITE_MAX_FILES];
        size_t n_prepared;
};

/* 1. Every file into a temporary file beside its place: nothing is replaced yet. */
static int prepare_all(const char *root, const struct write_item *items, size_t n_items,
                       struct write_job *job, size_t *failed)
{
        int r;

        for (size_t i = 0; i < n_items; i++, job->n_prepared++) {
                _cleanup_free_ char *dir = NULL;

                job->paths[i] = path_join_root(root, items[i].path);
                if (!job->paths[i] || !(dir = strdup(job->paths[i]))) {
                        *failed = i;
                        return -ENOMEM;
                }
                job->fds[i] = -EBADF;
                if (!items[i].data) { /* a removal: nothing to prepare */
                        job->had_previous[i] = access(job->paths[i], F_OK) == 0;
                        continue;
                }
                r = mkdir_parents(dirname(dir), 0755);
                if (r >= 0)
                        r = atomic_write_prepare(job->paths[i], items[i].data, items[i].size,
                                                 items[i].mode, &job->fds[i], &job->tmps[i]);
                if (r < 0) {
                        *failed = i;
                        return r;
                }
                job->had_previous[i] = access(job->paths[i], F_OK) == 0;
        }
        return 0;
}

/* 2. One sync for all of them (one journal commit instead of one a file). */
static int sync_all(const struct write_job *job, size_t *failed)
{
        for (size_t i = 0; i < job->n_prepared; i++)
                if (job->fds[i] >= 0) {
                        if (syncfs(job->fds[i]) < 0) {
                                *failed = i;
                                return -errno;
                        }
                        break;
                }
        return 0;
}

/* A removal: path becomes path~. */
static int move_aside(const char *path)
{
        _cleanup_free_ char *previous = NULL;

        if (asprintf(&previous, "%s~", path) < 0) {
                previous = NULL;
                return -ENOMEM;
        }
        /* rename() does nothing when both names link the same file, as a restored file and
         * its PATH~ do: hence the unlink first. */
        if (unlink(previous) < 0 && errno != ENOENT)
                return -errno;
        if (rename(path, previous) < 0)
                return -errno;
        return 0;
}

/* 3. Into place, the previous versions kept as PATH~; each one done is recorded in set. */
static int commit_all(const struct write_item *items, struct write_job *job, struct write_set *set,
                      size_t *failed)
{
        int r = 0;

        for (size_t i = 0; i < job->n_prepared; i++) {
                if (!items[i].data)
                        /* Recorded even when there is nothing to remove: its PATH~ may be. */
                        r = job->had_previous[i] ? move_aside(job->paths[i]) : 0;
                else
                        r = atomic_write_commit(job->paths[i], job->tmps[i],
                                                WRITE_FILE_KEEP_PREVIOUS);
                if (r < 0) {
                        *failed = i;
                        return r;
                }
                set->files[set->n_files].secret = (items[i].mode & 077) == 0;
                set->files[set->n_files].removed = !items[i].data;
                set->files[set->n_files].had_previous = job->had_previous[i];
                set->files[set->n_files++].path = TAKE_PTR(job->paths[i]);
                free(job->tmps[i]); /* renamed into place: nothing left to remove */
                job->tmps[i] = NULL;
        }
        return 0;
}

/* A removal with nothing to remove changed nothing (and its directory may not exist). */
static bool changed(const struct write_set *set, size_t i)
{
        return !set->files[i].removed || set->files[i].had_previous;
}

/* 4. The directories, once each. */
static int sync_directories(const struct write_set *set, size_t *failed)
{
        int r;

        for (size_t i = 0; i < set->n_files; i++) {
                bool seen = !changed(set, i);

                for (size_t j = 0; j < i && !seen; j++)
                        seen = changed(set, j) &&
                               same_directory(set->files[i].path, set->files[j].path);
                if (!seen) {
                        r = fsync_directory_of(set->files[i].path);
                        if (r < 0) {
                                *failed = i;
                                return r;
                        }
                }
        }
        return 0;
}

/* What is left of the job: descriptors closed, temporary files removed. */
static void write_job_done(struct write_job *job, size_t n_items)
{
        for (size_t i = 0; i < job->n_prepared; i++) {
                if (job->fds[i] >= 0)
                        safe_close(job->fds[i]);
                if (job->tmps[i]) {
                        (void)unlink(job->tmps[i]);
                        free(job->tmps[i]);
                }
        }
        for (size_t i = 0; i < n_items; i++)
                free(job->paths[i]);
}

int write_files(const char *root, const struct write_item *items, size_t n_items,
                struct write_set *ret, char **ret_failed_path)
{
        struct write_set set = {};
        struct write_job job = {};
        size_t failed = SIZE_MAX;
        int r;

        if (n_items > WRITE_MAX_FILES)
                return -E2BIG;

        r = prepare_all(root, items, n_items, &job, &failed);
        if (r >= 0)
                r = sync_all(&job, &failed);
        if (r >= 0)
                r = commit_all(items, &job, &set, &failed);
        if (r >= 0)
                r = sync_directories(&set, &failed);

        write_job_done(&job, n_items);
        if (r < 0) {
                if (ret_failed_path && failed < n_items)
                        *ret_failed_path = path_join_root(root, items[failed].path);
                (void)write_restore(&set);
                write_set_done(&set);
        } else
                *ret = set;
        return r;
}
