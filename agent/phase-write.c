/* SPDX-License-Identifier: MIT */
/* The write phase: the Nix files and the secret files, all or nothing, the previous versions
 * kept for the rebuild to fall back to. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fileio.h"
#include "render.h"
#include "util.h"

/* The paths of the builder keys found to remove; freed with the struct. */
struct stale {
        char *paths[WRITE_MAX_FILES];
        size_t n;
};

static void stale_done(struct stale *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->paths[i]);
        s->n = 0;
}

static bool items_have(const struct write_item *items, size_t n, const char *path)
{
        for (size_t i = 0; i < n; i++)
                if (streq(items[i].path, path))
                        return true;
        return false;
}

/* Adds a removal of each builder key ROOT/etc/nix/nixprov-builder-N.key this profile does not
 * write. */
static int add_stale_builder_keys(const char *root, struct write_item *items, size_t max, size_t *n,
                                  struct stale *stale)
{
        _cleanup_free_ char *nix_dir = NULL;
        struct dirent *de;
        DIR *dir;
        int k = 0;

        nix_dir = path_join_root(root, "/etc/nix");
        if (!nix_dir)
                return -ENOMEM;
        dir = opendir(nix_dir);
        if (!dir)
                return errno == ENOENT ? 0 : -errno;
        while (k == 0 && (de = readdir(dir))) {
                char path[PATH_MAX];
                size_t index;
                int end = 0;

                /* KEY~ too: what an interrupted run moved aside goes with the removal of KEY. */
                if (sscanf(de->d_name, "nixprov-builder-%zu.key%n", &index, &end) != 1 ||
                    (de->d_name[end] != '\0' && !streq(de->d_name + end, "~")))
                        continue;
                snprintf(path, sizeof(path), PLAN_SEALED_IDENTITY_FORMAT, index);
                if (strncmp(path + strlen("/etc/nix/"), de->d_name, (size_t)end) != 0 ||
                    path[strlen("/etc/nix/") + (size_t)end] != '\0' || items_have(items, *n, path))
                        continue;
                if (*n >= max)
                        k = -E2BIG;
                else if (!(stale->paths[stale->n] = strdup(path)))
                        k = -ENOMEM;
                else
                        items[(*n)++] =
                            (struct write_item){stale->paths[stale->n++], NULL, 0, 0600};
        }
        closedir(dir);
        return k;
}

/* The secret files an earlier profile left that this one does not write (a token it dropped, a
 * builder key it no longer has) are removed in the same write set, so that a failed rebuild puts
 * them back and a successful one forgets them. */
static int add_stale_secret_removals(const char *root, struct write_item *items, size_t max,
                                     size_t *n, struct stale *stale)
{
        static const char *const fixed[] = {SECRETS_NETRC_FILE, SECRETS_CONF_FILE,
                                            SECRETS_CACHIX_DHALL_FILE};

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                if (!items_have(items, *n, fixed[i])) {
                        if (*n >= max)
                                return -E2BIG;
                        items[(*n)++] = (struct write_item){fixed[i], NULL, 0, 0600};
                }
        return add_stale_builder_keys(root, items, max, n, stale);
}

/* The first build reads the netrc where it was written: under the root, made absolute (the
 * rebuild does not run in the root's directory). */
static int resolve_netrc(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *root = realpath(r->ctx->root, NULL);

        r->netrc_path = root ? path_join_root(root, SECRETS_NETRC_FILE) : NULL;
        if (r->netrc_path && !string_is_safe(r->netrc_path, 4096, "/._+@-")) /* a nix.conf line */
                return phase_fail(res, "the root %s has characters a nix.conf line cannot carry",
                                  root);
        if (!r->netrc_path)
                return phase_fail(res, "failed to resolve the root %s: %s", r->ctx->root,
                                  strerror(errno));
        return 0;
}

/* The first build reads the Host aliases of builders on other ports than 22 from the written
 * ssh_config (NIX_SSHOPTS=-F PATH, split on white space): under the root, made absolute. */
static int resolve_ssh_config(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *root = realpath(r->ctx->root, NULL);

        r->ssh_config_path = root ? path_join_root(root, RENDER_SSH_CONFIG_FILE) : NULL;
        if (r->ssh_config_path && !string_is_safe(r->ssh_config_path, 4096, "/._+@-"))
                return phase_fail(res, "failed to render the Nix files: %s", strerror(EINVAL));
        if (!r->ssh_config_path)
                return phase_fail(res, "failed to render the Nix files: %s", strerror(errno));
        return 0;
}

/* The files to write: the rendered Nix files, the ssh_config of the builders' Host aliases, the
 * secret files and the removals. */
static int collect(struct run_state *r, struct write_item *items, size_t *n, char **conf,
                   char **module, char **machines, char **ssh_config, struct stale *stale,
                   struct phase_result *res)
{
        uint64_t serial = r->trust.profile->serial;
        int k;

        k = render_nix_conf(r->plan, serial, conf);
        if (k >= 0)
                k = render_nixos_module(r->plan, serial, module);
        /* Always written, empty without builders: a builder of an older profile never lingers. */
        if (k >= 0)
                k = render_machines(r->plan, machines);
        if (k >= 0)
                k = render_ssh_config(r->plan, serial, ssh_config);
        if (k < 0)
                return phase_fail(res, "failed to render the Nix files: %s", strerror(-k));
        if (render_plan_has_ssh_aliases(r->plan)) {
                k = resolve_ssh_config(r, res);
                if (k < 0)
                        return k;
        }
        items[(*n)++] = (struct write_item){RENDER_NIX_CONF_FILE, *conf, strlen(*conf), 0644};
        items[(*n)++] =
            (struct write_item){RENDER_NIXOS_MODULE_FILE, *module, strlen(*module), 0644};
        items[(*n)++] =
            (struct write_item){RENDER_MACHINES_FILE, *machines, strlen(*machines), 0644};
        items[(*n)++] =
            (struct write_item){RENDER_SSH_CONFIG_FILE, *ssh_config, strlen(*ssh_config), 0644};
        k = secrets_items(r->plan, &r->secrets, items, WRITE_MAX_FILES, n);
        if (k < 0)
                return phase_fail(res, "failed to prepare the secret files: %s", strerror(-k));
        if (secrets_have_netrc(&r->secrets)) {
                k = resolve_netrc(r, res);
                if (k < 0)
                        return k;
        }
        k = add_stale_secret_removals(r->ctx->root, items, WRITE_MAX_FILES, n, stale);
        if (k < 0)
                return phase_fail(res, "failed to look for secret files to remove: %s",
                                  strerror(-k));
        return 0;
}

/* Every directory a run writes files into with atomic writes, the state directory aside. */
static const char *const written_dirs[] = {
    "/etc/nix",             /* RENDER_NIX_CONF_FILE, the machines, the secrets, builder keys */
    "/etc/nixos/nixprov",   /* RENDER_NIXOS_MODULE_FILE */
    "/etc/nixprov",         /* RENDER_SSH_CONFIG_FILE */
    "/root/.config/cachix", /* SECRETS_CACHIX_DHALL_FILE */
};

static int remove_leftovers_in(const char *dir, enum remove_temporary_flags flags, unsigned *n,
                               struct phase_result *res)
{
        int k = remove_temporary_files(dir, flags);

        if (k < 0)
                return phase_fail_code(res, AGENT_EXIT_WRITE,
                                       "failed to remove the temporary files an interrupted run "
                                       "left in %s: %s",
                                       dir, strerror(-k));
        *n += (unsigned)k;
        return 0;
}

int phase_write_remove_leftovers(struct run_state *r, struct phase_result *res)
{
        static const enum remove_temporary_flags passes[] = {REMOVE_TEMPORARY_SECRET,
                                                             REMOVE_TEMPORARY_OTHER};
        unsigned n = 0;
        int k = 0;

        /* The secret ones (a token or a key in plain text) first, in every directory. */
        for (size_t p = 0; k >= 0 && p < ELEMENTSOF(passes); p++) {
                for (size_t i = 0; k >= 0 && i < ELEMENTSOF(written_dirs); i++) {
                        _cleanup_free_ char *dir = path_join_root(r->ctx->root, written_dirs[i]);

                        k = dir ? remove_leftovers_in(dir, passes[p], &n, res)
                                : phase_fail(res, "Out of memory.");
                }
                if (k >= 0)
                        k = remove_leftovers_in(r->state_dir, passes[p], &n, res);
        }
        if (k < 0)
                return k;
        if (n > 0)
                engine_note(r, "removed %u temporary file%s of an interrupted run", n,
                            n == 1 ? "" : "s");
        return 0;
}

int phase_write(struct run_state *r, struct phase_result *res)
{
        _cleanup_free_ char *conf = NULL, *machines = NULL, *module = NULL, *failed = NULL,
                            *ssh_config = NULL;
        struct write_item items[WRITE_MAX_FILES];
        struct stale stale = {};
        size_t n = 0, n_removals = 0, n_removed = 0;
        int k;

        k = collect(r, items, &n, &conf, &module, &machines, &ssh_config, &stale, res);
        if (k >= 0)
                k = write_files(r->ctx->root, items, n, &r->written, &failed);
        stale_done(&stale);
        /* Written (or not): the plaintexts are not needed any more. */
        secrets_done(&r->secrets);
        if (k < 0 && !res->message[0])
                return phase_fail(res, "failed to write %s: %s; nothing was changed",
                                  failed ?: "the Nix files", strerror(-k));
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->written.n_files; i++) {
                n_removals += r->written.files[i].removed;
                n_removed += r->written.files[i].removed && r->written.files[i].had_previous;
        }
        return phase_ok(res, "wrote %zu files (previous versions kept as FILE~)%s",
                        r->written.n_files - n_removals,
                        n_removed > 0 ? "; removed the secret files this profile no longer has"
                                      : "");
}
