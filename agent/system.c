/* SPDX-License-Identifier: MIT */
/* The system under the root (system.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "rebuild.h"
#include "system.h"
#include "util.h"

/* The store path a target inside the store belongs to: /nix/store/NAME. */
static int store_path_of(const char *target, char **ret)
{
        const char *name = target + strlen(SYSTEM_STORE_DIR);
        size_t n = strcspn(name, "/");

        if (n == 0)
                return -EBADMSG;
        *ret = strndup(target, (size_t)(name - target) + n);
        return *ret ? 0 : -ENOMEM;
}

int system_resolve(const char *root, const char *link, char **ret_store_path)
{
        _cleanup_free_ char *path = path_join_root(root, link);

        if (!path)
                return -ENOMEM;
        for (unsigned i = 0; i < 16; i++) {
                char target[PATH_MAX];
                ssize_t n = readlink(path, target, sizeof(target) - 1);
                char *next, *slash;

                if (n < 0)
                        return errno == EINVAL ? -EBADMSG : -errno;
                target[n] = '\0';
                if (strncmp(target, SYSTEM_STORE_DIR, strlen(SYSTEM_STORE_DIR)) == 0)
                        return store_path_of(target, ret_store_path);
                if (target[0] == '/')
                        next = path_join_root(root, target);
                else {
                        slash = strrchr(path, '/');
                        next = slash ? NULL : strdup(target);
                        if (slash &&
                            asprintf(&next, "%.*s/%s", (int)(slash - path), path, target) < 0)
                                next = NULL;
                }
                if (!next)
                        return -ENOMEM;
                free(path);
                path = next;
        }
        return -ELOOP;
}

static bool file_differs(const char *root, const char *a, const char *b, const char *name)
{
        _cleanup_free_ char *pa = NULL, *pb = NULL, *da = NULL, *db = NULL;
        size_t sa = 0, sb = 0;

        (void)root;
        if (asprintf(&pa, "%s/%s", a, name) < 0 || asprintf(&pb, "%s/%s", b, name) < 0)
                return true;
        /* The kernel and initrd of a NixOS system are links into the store: compare where they
         * lead, or their contents when they are files (the test systems). */
        if (read_file_bounded(pa, 1 << 20, &da, &sa) < 0)
                sa = 0;
        if (read_file_bounded(pb, 1 << 20, &db, &sb) < 0)
                sb = 0;
        return sa != sb || (sa > 0 && memcmp(da, db, sa) != 0);
}

bool system_boot_files_differ(const char *root, const char *a, const char *b)
{
        return file_differs(root, a, b, "kernel") || file_differs(root, a, b, "initrd");
}

static int run(char *const *argv, const char *path, const char *nix_config, unsigned timeout_sec,
               char *error, size_t size)
{
        struct rebuild_options o = {
            .argv = argv, .path = path, .nix_config = nix_config, .timeout_sec = timeout_sec};
        struct rebuild_result *b = calloc(1, sizeof(*b));
        int k;

        if (!b)
                return -ENOMEM;
        k = rebuild_run(&o, b);
        if (k < 0)
                snprintf(error, size, "%.200s %s %d%s%.200s", argv[0],
                         b->exec_failed ? "could not be run: errno"
                         : b->exited    ? "exited with status"
                                        : "was killed by signal",
                         b->exec_failed ? b->exec_errno
                         : b->exited    ? b->exit_status
                                        : b->signal,
                         b->last_error[0] ? ": " : "", b->last_error);
        free(b);
        return k < 0 ? -EPROTO : 0;
}

int system_switch(const struct agent_config *c, const char *root, const char *store_path,
                  const char *action, unsigned timeout_sec, char *error, size_t size)
{
        _cleanup_free_ char *real_root = realpath(root, NULL), *profile = NULL, *stc = NULL;
        int k;

        if (!real_root || !(profile = path_join_root(real_root, SYSTEM_PROFILE)) ||
            asprintf(&stc, "%s/bin/switch-to-configuration", store_path) < 0) {
                snprintf(error, size, "cannot resolve the root %s", root);
                return -EPROTO;
        }
        if (c->rollback_command) {
                char *argv[] = {c->rollback_command, profile, (char *)store_path, (char *)action,
                                NULL};

                return run(argv, c->rebuild_path, NULL, timeout_sec, error, size);
        }
        char *set[] = {(char *)"nix-env", (char *)"-p",       profile,
                       (char *)"--set",   (char *)store_path, NULL};
        char *activate[] = {stc, (char *)action, NULL};

        k = run(set, c->rebuild_path, "substituters =\n", timeout_sec, error, size);
        if (k >= 0)
                k = run(activate, c->rebuild_path, NULL, timeout_sec, error, size);
        return k;
}

int system_reboot(const struct agent_config *c, char *error, size_t size)
{
        char *argv[] = {c->reboot_command, NULL};

        return run(argv, c->rebuild_path, NULL, 60, error, size);
}
