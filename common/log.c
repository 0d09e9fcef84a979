/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

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
        int saved_errno = errno;
        va_list ap;

        if (level <= log_max_level) {
                /* glibc's printf expands %m from errno. */
                errno = error < 0 ? -error : error;
                flockfile(stderr);
                fprintf(stderr, "%s: %s", log_program, prefix[level]);
                va_start(ap, format);
                vfprintf(stderr, format, ap);
                va_end(ap);
                fputc('\n', stderr);
                funlockfile(stderr);
        }

        errno = saved_errno;
        return error < 0 ? error : -EIO;
}
