/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fileio.h"
#include "util.h"

#define CMDLINE_MAX (64 * 1024)

_printf_(4, 5) static int fail(char *text, size_t size, int error, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(text, size, format, ap);
        va_end(ap);
        return error;
}

int config_load(const char *config_path, const char *cmdline_path, struct agent_config **ret,
                char *error_text, size_t error_size)
{
        _cleanup_(agent_config_freep) struct agent_config *c = NULL;
        _cleanup_free_ char *data = NULL, *cmdline = NULL, *bad = NULL;
        struct profile_error error = {};
        size_t size;
        int k;

        if (!config_path)
                config_path = AGENT_CONFIG_PATH_DEFAULT;
        k = read_file_bounded(config_path, AGENT_CONFIG_MAX_BYTES, &data, &size);
        if (k == -ENOENT) {
                /* A device can be configured by the kernel command line alone. */
                k = agent_config_new_default(&c);
                if (k < 0)
                        return fail(error_text, error_size, k,
                                    "Failed to set up a default configuration: %s", strerror(-k));
        } else if (k < 0) {
                return fail(error_text, error_size, k, "Failed to read %s: %s", config_path,
                            k == -E2BIG ? "larger than 64 KiB" : strerror(-k));
        } else {
                k = agent_config_parse(data, size, config_path, &c, &error);
                if (k < 0) {
                        char where[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX +
                                   PROFILE_ERROR_MESSAGE_MAX + 32];

                        return fail(error_text, error_size, k, "%s",
                                    profile_error_format(&error, where, sizeof(where)));
                }
        }

        if (cmdline_path && !streq(cmdline_path, "-")) {
                k = read_file_bounded(cmdline_path, CMDLINE_MAX, &cmdline, NULL);
                if (k < 0 && k != -ENOENT)
                        return fail(error_text, error_size, k, "Failed to read %s: %s",
                                    cmdline_path, strerror(-k));
                if (k >= 0) {
                        k = agent_config_apply_cmdline(c, cmdline, &bad);
                        if (k < 0)
                                return fail(error_text, error_size, k,
                                            "Invalid '%s' on the kernel command line (%s).",
                                            bad ?: "nixprov option", cmdline_path);
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

char *config_state_path(const struct agent_config *c, const char *root, const char *name)
{
        _cleanup_free_ char *dir = path_join_root(root, c->state_dir);
        char *path;

        if (!dir || asprintf(&path, "%s/%s", dir, name) < 0)
                return NULL;
        return path;
}

void config_fetch_options(const struct agent_config *c, struct fetch_options *o)
{
        fetch_options_init(o);
        o->mirrors = c->urls;
        o->n_mirrors = c->n_urls;
        o->ca_file = c->ca_file;
        o->connect_timeout_ms = c->connect_timeout * 1000;
        o->deadline_ms = c->deadline * 1000;
}
