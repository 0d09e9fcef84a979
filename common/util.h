/* SPDX-License-Identifier: MIT */
#pragma once

/* Checked number and time parsing, bounded file reading, a bounded growable buffer. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Parses a decimal unsigned integer: digits only, no sign, no leading zeros (except "0"),
 * no white space. Returns 0, -EINVAL (not a number) or -ERANGE (does not fit). */
int parse_u64(const char *s, uint64_t *ret_value);

/* Parses an RFC 3339 UTC time of the form 2027-01-31T00:00:00Z (an optional fraction of a
 * second is accepted and dropped; only the "Z" offset is accepted). Returns 0 with seconds since
 * the epoch, or -EINVAL. */
int parse_rfc3339_utc(const char *s, int64_t *ret_time);

#define RFC3339_MAX 32
/* Formats t as 2027-01-31T00:00:00Z into buf. */
char *format_rfc3339_utc(int64_t t, char buf[static RFC3339_MAX]);

/* Reads a whole file of at most max bytes. The returned buffer has a NUL byte after the data
 * (not counted in *ret_size), and belongs to the caller. Returns 0, -E2BIG when the file holds
 * more than max bytes, or a negative errno. */
int read_file_bounded(const char *path, size_t max, char **ret_data, size_t *ret_size);
int read_fd_bounded(int fd, size_t max, char **ret_data, size_t *ret_size);
/* Reads fd to its end into buf, which the caller provides with room for max + 1 bytes (locked
 * memory, for a secret): one byte past max tells that there is more. Returns 0 with the size read,
 * -E2BIG when fd holds more than max bytes, or a negative errno. buf may hold what was read even
 * on failure: the caller wipes it. */
int read_fd_into(int fd, void *buf, size_t max, size_t *ret_size);

/* Writes all of data to fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *data, size_t size);

/* True when s is non-empty, at most max bytes, and every byte is in [a-zA-Z0-9] or in extra. */
bool string_is_safe(const char *s, size_t max, const char *extra);

/* The one UTF-8 decoder of the tree: the length (1 to 4) of the valid UTF-8 sequence at s, of
 * which n bytes may be read, or 0 when there is none (n == 0, a stray or missing continuation
 * byte, an overlong form, a surrogate, above U+10FFFF: RFC 3629). The code point goes to
 * *ret_codepoint (may be NULL) when the length is not 0. */
size_t utf8_next(const char *s, size_t n, uint32_t *ret_codepoint);

/* True for a code point that must not reach a terminal from text someone else wrote: C0
 * controls and DEL, C1 controls (U+0080-U+009F), and invisible formatting that can reorder or
 * hide what is shown: U+061C, U+200B-U+200F, U+2028-U+202E (separators, bidi embeddings and
 * overrides), U+2060-U+2069 (joiners, bidi isolates), U+206A-U+206F and U+FEFF. */
bool codepoint_is_unsafe(uint32_t cp);

/* Copies the n bytes of s into out (out_size bytes, at least 1), NUL-terminated, with each
 * unsafe code point (codepoint_is_unsafe()), each byte of invalid UTF-8 and each NUL replaced by
 * '?', so that text a device sent is shown as text (the one function for that: nixprov fleet and
 * every log line use it). A character that does not fit is left out whole. out may be s (the
 * output is never longer than the input). Returns the length written. */
size_t text_sanitize(const char *s, size_t n, char *out, size_t out_size);

/* The value of one hexadecimal digit (either case), or -1. */
int hex_digit_value(char c);

/* A growable byte buffer with a hard limit: appending past max fails with -E2BIG and leaves
 * the buffer as it was. data is always NUL-terminated (when not NULL). */
struct buf {
        char *data;
        size_t size;
        size_t allocated;
        size_t max;
};

#define BUF_INIT(limit) ((struct buf){.max = (limit)})

int buf_append(struct buf *b, const void *data, size_t size);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *format, ...) _printf_(2, 3);
/* Frees the contents and resets the buffer (keeps max). */
void buf_free(struct buf *b);
/* Returns the NUL-terminated contents to the caller (an empty string when nothing was added;
 * NULL only when out of memory) and resets the buffer. */
char *buf_steal(struct buf *b, size_t *ret_size);

/* Decodes len bytes of strict standard base64 (the "+/" alphabet, "=" padding required, no white
 * space, no non-zero bits past the last byte) into out, which holds max bytes. Every byte is
 * checked against the alphabet first: libsodium 1.0.18 decodes any byte >= 0x80 as '/', so a
 * changed high bit would otherwise go unnoticed. Returns 0, -EINVAL, or -E2BIG (more than max
 * bytes). */
int base64_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t monotonic_ms(void);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t monotonic_us(void);
/* Sleeps until CLOCK_MONOTONIC reaches until_ms, through signals. */
void sleep_until_monotonic_ms(uint64_t until_ms);
