/* SPDX-License-Identifier: MIT */
#pragma once

/* Secrets typed or read by the operator's tool: passwords and secret key files. They live in
 * sodium_malloc() memory (locked, guarded) and are wiped when freed; they never pass through
 * stdio buffers, argv or the environment. */

#include <stddef.h>

#include "macro.h"

/* Bytes of a password, as minisign (its PASSWORDMAXBYTES, less the NUL byte). */
#define PASSWORD_MAX 1023

/* Wipes and frees a password or secret file read by the functions below. Accepts NULL. */
char *password_free(char *password);
static inline void password_freep(char **p)
{
        *p = password_free(*p);
}
#define _cleanup_password_ _cleanup_(password_freep)

/* Asks for a password as minisign does: when stdin is a terminal, on /dev/tty with prompt and
 * echo off; otherwise one line read from stdin (byte by byte, so a second call reads the next
 * line). The line ending (LF or CRLF) is dropped. Returns 0, -ENODATA (end of input before any
 * byte), -E2BIG (longer than PASSWORD_MAX), -EBADMSG (a NUL byte), -EINTR (interrupted), or a
 * negative errno. */
int password_prompt(const char *prompt, char **ret_password);

/* Reads the password from a file (or a pipe, e.g. "<(pass show key)"): its first and only line,
 * with or without a line ending. Returns 0, -E2BIG, -EBADMSG (more than one line, or a NUL
 * byte), or a negative errno. */
int password_from_file(const char *path, char **ret_password);

/* Reads a whole small file holding a secret (a secret key) into locked memory, NUL-terminated
 * (the NUL not counted in *ret_size). Free with password_free(). Returns 0, -E2BIG when it
 * holds more than max bytes, or a negative errno. */
int password_read_secret_file(const char *path, size_t max, char **ret_data, size_t *ret_size);

/* For the commands: the password from password_file when not NULL, else password_prompt()
 * with prompt. Logs why on failure (the program layer's one message) and returns the negative
 * errno. */
int password_ask(const char *password_file, const char *prompt, char **ret_password);
