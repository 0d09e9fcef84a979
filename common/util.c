/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

int parse_u64(const char *s, uint64_t *ret_value)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '0' && s[1] != '\0')
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                unsigned d;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret_value = v;
        return 0;
}

static int parse_fixed_digits(const char *s, size_t n, unsigned *ret)
{
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        *ret = v;
        return 0;
}

static bool is_leap_year(unsigned y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

int parse_rfc3339_utc(const char *s, int64_t *ret_time)
{
        static const unsigned month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        unsigned year, month, day, hour, minute, second;
        const char *p;

        if (!s || strlen(s) < 20)
                return -EINVAL;
        if (parse_fixed_digits(s, 4, &year) < 0 || s[4] != '-' ||
            parse_fixed_digits(s + 5, 2, &month) < 0 || s[7] != '-' ||
            parse_fixed_digits(s + 8, 2, &day) < 0 || (s[10] != 'T' && s[10] != 't') ||
            parse_fixed_digits(s + 11, 2, &hour) < 0 || s[13] != ':' ||
            parse_fixed_digits(s + 14, 2, &minute) < 0 || s[16] != ':' ||
            parse_fixed_digits(s + 17, 2, &second) < 0)
                return -EINVAL;
        if (year < 1970 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
            second > 60)
                return -EINVAL;
        if (day > month_days[month - 1] + (month == 2 && is_leap_year(year)))
                return -EINVAL;

        p = s + 19;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if ((*p != 'Z' && *p != 'z') || p[1] != '\0')
                return -EINVAL;

        if (second == 60) /* a leap second: count it as the next one */
                second = 59;
        *ret_time = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
        return 0;
}

char *format_rfc3339_utc(int64_t t, char buf[static RFC3339_MAX])
{
        struct tm tm;
        time_t tt = (time_t)t;

        if (!gmtime_r(&tt, &tm) || strftime(buf, RFC3339_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, RFC3339_MAX, "@%lld", (long long)t);
        return buf;
}

int read_fd_bounded(int fd, size_t max, char **ret_data, size_t *ret_size)
{
        _cleanup_free_ char *data = NULL;
        size_t size = 0, allocated = 0;

        for (;;) {
                ssize_t n;

                if (allocated - size < 2) {
                        size_t grow = allocated ? allocated * 2 : 4096;
                        char *p;

                        /* One byte past max tells us the file is too large. */
                        if (grow > max + 2)
                                grow = max + 2;
                        if (grow <= allocated)
                                return -E2BIG;
                        p = realloc(data, grow);
                        if (!p)
                                return -ENOMEM;
                        data = p;
                        allocated = grow;
                }
                n = read(fd, data + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t)n;
                if (size > max)
                        return -E2BIG;
        }
        if (!data) {
                data = malloc(1);
                if (!data)
                        return -ENOMEM;
        }
        data[size] = '\0';
        *ret_data = TAKE_PTR(data);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_file_bounded(const char *path, size_t max, char **ret_data, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_fd_bounded(fd, max, ret_data, ret_size);
}

int write_all(int fd, const void *data, size_t size)
{
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

bool string_is_safe(const char *s, size_t max, const char *extra)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++, n++) {
                if (n >= max)
                        return false;
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9'))
                        continue;
                if (!extra || !strchr(extra, *p))
                        return false;
        }
        return true;
}

size_t utf8_next(const char *s, size_t n, uint32_t *ret_codepoint)
{
        const unsigned char *u = (const unsigned char *)s;
        uint32_t cp, min;
        size_t len;

        if (n == 0)
                return 0;
        if (u[0] < 0x80) {
                len = 1, cp = u[0], min = 0;
        } else if ((u[0] & 0xe0) == 0xc0) {
                len = 2, cp = u[0] & 0x1f, min = 0x80;
        } else if ((u[0] & 0xf0) == 0xe0) {
                len = 3, cp = u[0] & 0x0f, min = 0x800;
        } else if ((u[0] & 0xf8) == 0xf0) {
                len = 4, cp = u[0] & 0x07, min = 0x10000;
        } else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((u[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (u[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        if (ret_codepoint)
                *ret_codepoint = cp;
        return len;
}

bool codepoint_is_unsafe(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
               (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
               (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

size_t text_sanitize(const char *s, size_t n, char *out, size_t out_size)
{
        size_t i = 0, o = 0;

        if (out_size == 0)
                return 0;
        while (i < n) {
                uint32_t cp = 0;
                size_t len = utf8_next(s + i, n - i, &cp);
                bool unsafe = len == 0 || codepoint_is_unsafe(cp);
                size_t out_len = unsafe ? 1 : len;

                if (o + out_len >= out_size)
                        break;
                if (unsafe)
                        out[o] = '?';
                else
                        memmove(out + o, s + i, len);
                o += out_len;
                i += len ?: 1;
        }
        out[o] = '\0';
        return o;
}

int read_fd_into(int fd, void *buf, size_t max, size_t *ret_size)
{
        size_t size = 0;

        for (;;) {
                ssize_t n = read(fd, (char *)buf + size, max + 1 - size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t)n;
                if (size > max)
                        return -E2BIG;
        }
        *ret_size = size;
        return 0;
}

int hex_digit_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int buf_append(struct buf *b, const void *data, size_t size)
{
        size_t need;

        if (size > b->max || b->size > b->max - size)
                return -E2BIG;
        need = b->size + size + 1;
        if (need > b->allocated) {
                size_t grow = b->allocated ? b->allocated : 256;
                char *p;

                while (grow < need)
                        grow *= 2;
                if (grow > b->max + 1)
                        grow = b->max + 1;
                p = realloc(b->data, grow);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->allocated = grow;
        }
        if (size > 0)
                memcpy(b->data + b->size, data, size);
        b->size += size;
        b->data[b->size] = '\0';
        return 0;
}

int buf_puts(struct buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *format, ...)
{
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vasprintf(&s, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return buf_append(b, s, (size_t)n);
}

void buf_free(struct buf *b)
{
        free(b->data);
        *b = BUF_INIT(b->max);
}

char *buf_steal(struct buf *b, size_t *ret_size)
{
        char *data = b->data;

        if (!data)
                data = calloc(1, 1);
        if (ret_size)
                *ret_size = b->size;
        *b = BUF_INIT(b->max);
        return data;
}

int base64_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size)
{
        const char *end;
        size_t size;

        if (len == 0 || len % 4 != 0)
                return -EINVAL;
        if (len / 4 * 3 > max + 2)
                return -E2BIG;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/' || c == '='))
                        return -EINVAL;
        }
        if (sodium_base642bin(out, max, s, len, NULL, &size, &end,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
                return len / 4 * 3 > max ? -E2BIG : -EINVAL;
        if (end != s + len)
                return -EINVAL;
        *ret_size = size;
        return 0;
}

uint64_t monotonic_ms(void)
{
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t monotonic_us(void)
{
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void sleep_until_monotonic_ms(uint64_t until_ms)
{
        struct timespec ts = {
            .tv_sec = (time_t)(until_ms / 1000),
            .tv_nsec = (long)(until_ms % 1000) * 1000000,
        };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}
