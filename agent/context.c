/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "context.h"
#include "fileio.h"
#include "util.h"

_printf_(3, 4) static int fail(struct agent_context *c, int error, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(c->error, sizeof(c->error), format, ap);
        va_end(ap);
        return error;
}

void context_init(struct agent_context *c)
{
        *c = (struct agent_context){
            .root = "/",
            .cmdline_path = CONTEXT_CMDLINE_DEFAULT,
        };
}

void context_done(struct agent_context *c)
{
        c->spool = report_close(c->spool);
        c->key = devicekey_free(c->key);
        c->config = agent_config_free(c->config);
        free(c->state_dir);
        c->state_dir = NULL;
}

int context_parse_option(struct agent_context *c, int opt, const char *arg)
{
        switch (opt) {
        case 'c':
                c->config_path = arg;
                return 1;
        case 'r':
                c->root = arg;
                return 1;
        case CONTEXT_ARG_CMDLINE:
                c->cmdline_path = arg;
                return 1;
        case 'm':
                c->machine_id = arg;
                return 1;
        default:
                return 0;
        }
}

int context_config(struct agent_context *c, const struct agent_config **ret)
{
        int k;

        if (!c->config) {
                k = config_load(c->config_path, c->cmdline_path, &c->config, c->error,
                                sizeof(c->error));
                if (k < 0)
                        return k;
        }
        *ret = c->config;
        return 0;
}

int context_identity(struct agent_context *c, const struct identity **ret)
{
        int k;

        if (!c->have_identity) {
                k = identify(c->root, c->machine_id, &c->identity);
                if (k < 0)
                        return fail(c, k, "Failed to identify this machine: %s",
                                    k == -ENOENT   ? "no /etc/machine-id and no DMI product UUID"
                                    : k == -EINVAL ? "the machine id is not 32 hex digits or a UUID"
                                                   : strerror(-k));
                c->have_identity = true;
        }
        *ret = &c->identity;
        return 0;
}

int context_state_dir(struct agent_context *c, const char **ret)
{
        const struct agent_config *config;
        _cleanup_free_ char *dir = NULL;
        int k;

        if (!c->state_dir) {
                k = context_config(c, &config);
                if (k < 0)
                        return k;
                dir = path_join_root(c->root, config->state_dir);
                if (!dir)
                        return fail(c, -ENOMEM, "Out of memory.");
                k = mkdir_parents(dir, 0700);
                if (k >= 0 && chmod(dir, 0700) < 0) /* it holds the device's keys: root only */
                        k = -errno;
                if (k < 0)
                        return fail(c, k, "Failed to create %s: %s", dir, strerror(-k));
                c->state_dir = TAKE_PTR(dir);
        }
        *ret = c->state_dir;
        return 0;
}

const char *context_keys_strerror(int error)
{
        return error == -EBADMSG  ? "a key file is damaged"
               : error == -EEXIST ? "a public key has lost its secret key; refusing to make a "
                                    "new identity silently"
                                  : strerror(-error);
}

int context_keys(struct agent_context *c, struct devicekey **ret)
{
        const char *dir;
        int k;

        if (!c->key) {
                k = context_state_dir(c, &dir);
                if (k < 0)
                        return k;
                k = devicekey_load_or_create(dir, &c->key, &c->key_created);
                if (k < 0)
                        return fail(c, k, "Failed to load or make the device keys in %s: %s", dir,
                                    context_keys_strerror(k));
        }
        *ret = c->key;
        return 0;
}

int context_fetch_options(struct agent_context *c, struct fetch_options **ret)
{
        const struct agent_config *config;
        int k;

        if (!c->have_fetch) {
                k = context_config(c, &config);
                if (k < 0)
                        return k;
                config_fetch_options(config, &c->fetch);
                c->have_fetch = true;
        }
        *ret = &c->fetch;
        return 0;
}

int context_spool(struct agent_context *c, const char *dir, const struct fetch_options *send,
                  bool sign, struct report_spool **ret)
{
        const struct agent_config *config;
        const struct identity *id;
        _cleanup_free_ char *default_dir = NULL;
        struct devicekey *key = NULL;
        int k;

        if (c->spool)
                return fail(c, -EBUSY, "The report spool is open already.");
        k = context_config(c, &config);
        if (k >= 0)
                k = context_identity(c, &id);
        if (k >= 0 && sign)
                k = context_keys(c, &key);
        if (k < 0)
                return k;
        if (!dir) {
                dir = default_dir = config_state_path(config, c->root, CONFIG_STATE_REPORTS);
                if (!dir)
                        return fail(c, -ENOMEM, "Out of memory.");
        }
        k = report_open(dir, id->machine_id, send, REPORT_PATH_DEFAULT, &c->spool);
        if (k == -EBADMSG)
                return fail(c, k,
                            "Failed to open the report spool %s: %s/seq does not hold a sequence "
                            "number; refusing to guess one (a reused number would be ignored by "
                            "the server).",
                            dir, dir);
        if (k < 0)
                return fail(c, k, "Failed to open the report spool %s: %s", dir, strerror(-k));
        if (key)
                report_set_signer(c->spool, report_sign_device, key);
        *ret = c->spool;
        return 0;
}

void context_sign_reports(struct agent_context *c)
{
        if (c->spool && c->key)
                report_set_signer(c->spool, report_sign_device, c->key);
}
