/* SPDX-License-Identifier: MIT */
#pragma once

/* Safe file writing: nothing half-written is ever visible, and a file is never more readable
 * than its final mode, not even for an instant. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum write_file_flags {
        /* Fail with -EEXIST when path exists, instead of replacing it (secret keys). */
        WRITE_FILE_EXCLUSIVE = 1 << 0,
        /* Keep the file it replaces as path~ (hard link taken before the rename). */
        WRITE_FILE_KEEP_PREVIOUS = 1 << 1,
};

/* Writes data to path atomically: a temporary file in the same directory created
 * O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC with mode (umask does not loosen or tighten it), written,
 * fsynced, renamed over path (or linked to it, with WRITE_FILE_EXCLUSIVE), and the directory
 * fsynced. On failure the temporary file is removed and path is as it was. Returns 0 or a
 * negative errno. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode,
                      enum write_file_flags flags);

/* The two halves of write_file_atomic(), for writing several files with one sync:
 * atomic_write_prepare() creates the temporary file beside path with mode and writes data (no
 * fsync); *ret_fd and *ret_tmp belong to the caller, who syncs it (fsync, or one syncfs() for
 * many), then calls atomic_write_commit() to put it in place (and keep the previous version, or
 * refuse to replace, as flags say), then fsyncs the directory. On failure of either the caller
 * unlinks the temporary file. Return 0 or a negative errno. */
int atomic_write_prepare(const char *path, const void *data, size_t size, mode_t mode, int *ret_fd,
                         char **ret_tmp);
int atomic_write_commit(const char *path, const char *tmp, enum write_file_flags flags);

/* The temporary files of atomic writes are DIR/.NAME.nixprov-tmp-XXXXXXXX (8 random hex digits)
 * for DIR/NAME, created with the final file's mode: an interrupted run leaves them behind, and
 * the next one recognises and removes them (remove_temporary_files()). */
#define FILEIO_TEMPORARY_MARK ".nixprov-tmp-"

/* Allocates the name of a new temporary file beside path. Returns 0 or -ENOMEM. */
int temporary_path(const char *path, char **ret);

/* Whether a directory entry's name is one temporary_path() makes. */
bool is_temporary_name(const char *name);

enum remove_temporary_flags {
        REMOVE_TEMPORARY_SECRET = 1 << 0, /* those readable by their owner only (a secret's) */
        REMOVE_TEMPORARY_OTHER = 1 << 1,  /* the others */
};

/* Removes the leftovers of interrupted atomic writes directly in dir (is_temporary_name(), not
 * recursive; symbolic links are not followed). A missing dir has none. Returns the number
 * removed, or a negative errno (it goes on with the other entries). */
int remove_temporary_files(const char *dir, enum remove_temporary_flags flags);

/* fsyncs the directory that holds path. */
int fsync_directory_of(const char *path);

/* Creates directory path with mode (and missing parents with 0755); an existing directory is
 * left as it is. Returns 0 or a negative errno. */
int mkdir_parents(const char *path, mode_t mode);

/* Joins root and an absolute path ("/etc/nix/x") into a newly allocated string; root "/" or
 * NULL returns a copy of path. Returns NULL when out of memory. */
char *path_join_root(const char *root, const char *path);
