/* SPDX-License-Identifier: MIT */
#pragma once

/* The write phase: every file of a profile is written atomically under the root, the version it
 * replaces kept as PATH~, and the whole set can be put back as it was (a failed rebuild). */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define WRITE_MAX_FILES 72 /* the Nix files, the 3 secret files, a key per builder */

struct write_item {
        const char *path; /* absolute, as on the device ("/etc/nix/nixprov.conf") */
        const char *data; /* NULL: remove the file (kept as PATH~ like a replaced one, so that
                             write_restore() puts it back); nothing to do when there is none */
        size_t size;
        mode_t mode; /* of a removed file too: 0600 marks it secret (write_forget_secrets()) */
};

struct write_set {
        struct {
                char *path;        /* under the root */
                bool had_previous; /* PATH~ holds what was there before */
                bool secret;       /* readable by its owner only: PATH~ may hold an old secret */
                bool removed;      /* a removal: PATH is gone, PATH~ holds it (had_previous),
                                      or there was none */
        } files[WRITE_MAX_FILES];
        size_t n_files;
};

/* Writes items under root (creating missing parent directories 0755). Stops at the first
 * failure and puts back the files it had already written, so on error nothing has changed.
 * On success *ret records what to put back with write_restore(). Returns 0 or a negative errno
 * (with *ret_failed_path, when not NULL, naming the file that failed; owned by the caller). */
int write_files(const char *root, const struct write_item *items, size_t n_items,
                struct write_set *ret, char **ret_failed_path);

/* Puts every file of the set back as it was before write_files(): the previous version where
 * there was one, no file where there was none. Returns 0 or the first negative errno (it goes on
 * with the other files). */
int write_restore(struct write_set *set);

/* Once the set is final (the rebuild succeeded): removes PATH~ of every secret file of the set
 * (removals with nothing to remove included: an interrupted earlier run may have left PATH~),
 * so that a rotated token or key, or the secret of a file the profile dropped, does not stay on
 * the device. Returns 0 or the first negative errno (it goes on with the other files). */
int write_forget_secrets(struct write_set *set);

/* Frees the set's memory; the files stay as written. */
void write_set_done(struct write_set *set);
