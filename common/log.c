/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const char *log_program = "nixprov";
static enum log_level log_max_level = LOG_LEVEL_INFO;

void log_setup(const char *program, enum log_level max_level)
{
        log_program = program;
        log_max_level = max_level;
}

void log_set_max_level(enum log_level max_level)
{
        log_max_level = max_level;
}

int log_full_errno(enum log_level level, int error, const char *format, ...)
{
        static const char *const prefix[] = {
            [LOG_LEVEL_ERROR] = "error: ", [LOG_LEVEL_WARNING] = "warning: ",
            [LOG_LEVEL_NOTICE] = "",       [LOG_LEVEL_INFO] = "",
            [LOG_LEVEL_DEBUG] = "debug: ",
        };
        int saved_errno = errno, n;
        char *text = NULL;
        va_list ap;

        if (level <= log_max_level) {
                /* glibc's printf expands %m from errno. */
                errno = error < 0 ? -error : error;
                va_start(ap, format);
                n = vasprintf(&text, format, ap);
                va_end(ap);
                /* Messages carry what devices and servers sent (hostnames, messages, errors):
                 * one line of plain text, whatever they held. */
                if (n >= 0)
                        (void)text_sanitize(text, (size_t)n, text, (size_t)n + 1);
                fprintf(stderr, "%s: %s%s\n", log_program, prefix[level],
                        n >= 0 ? text : "(out of memory)");
                if (n >= 0)
                        free(text);
        }

        errno = saved_errno;
        return error < 0 ? error : -EIO;
}
