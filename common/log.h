/* SPDX-License-Identifier: MIT */
#pragma once

/* Logging for the program layer (agent/, provisioner/). Library code in common/ never calls
 * these: it returns a negative errno (and, where a parser needs it, an error record) and the
 * caller logs once.
 *
 * Messages go to stderr as "PROGRAM: LEVEL: message". "%m" in a format expands to the
 * description of the error passed to the *_errno variants. */

#include <stdarg.h>

#include "macro.h"

enum log_level {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_NOTICE,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
};

/* Sets the program name shown in every line and the most verbose level printed (default INFO). */
void log_setup(const char *program, enum log_level max_level);
void log_set_max_level(enum log_level max_level);

/* Logs a message at level; error is a negative errno used for "%m" (0 for none). Returns error
 * when it is negative, else -EIO, so callers can write "return log_error_errno(r, ...);". */
int log_full_errno(enum log_level level, int error, const char *format, ...) _printf_(3, 4);

#define log_error_errno(error, ...) log_full_errno(LOG_LEVEL_ERROR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_LEVEL_WARNING, (error), __VA_ARGS__)
#define log_error(...) ((void)log_full_errno(LOG_LEVEL_ERROR, 0, __VA_ARGS__))
#define log_warning(...) ((void)log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__))
#define log_notice(...) ((void)log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__))
#define log_info(...) ((void)log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__))
#define log_debug(...) ((void)log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__))

#define log_oom() log_full_errno(LOG_LEVEL_ERROR, -ENOMEM, "Out of memory.")
