/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "dryrun.h"

static uint64_t add_sat(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
        return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static bool skip_prefix(const char **s, const char *prefix)
{
        size_t n = strlen(prefix);

        if (strncmp(*s, prefix, n) != 0)
                return false;
        *s += n;
        return true;
}

/* Digits into *ret (saturating); at least one. */
static int parse_digits(const char **s, uint64_t *ret, unsigned *ret_n)
{
        uint64_t v = 0;
        unsigned n = 0;

        for (; **s >= '0' && **s <= '9'; (*s)++, n++)
                v = add_sat(mul_sat(v, 10), (uint64_t)(**s - '0'));
        if (n == 0)
                return -EINVAL;
        *ret = v;
        if (ret_n)
                *ret_n = n;
        return 0;
}

int dryrun_parse_size(const char *s, uint64_t *ret_bytes, const char **ret_end)
{
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        uint64_t whole, frac = 0, scale = 1, unit = 1;
        unsigned n = 0;

        if (parse_digits(&s, &whole, NULL) < 0)
                return -EINVAL;
        if (*s == '.') {
                s++;
                if (parse_digits(&s, &frac, &n) < 0 || n > 9)
                        return -EINVAL;
                for (unsigned i = 0; i < n; i++)
                        scale *= 10;
        }
        if (*s++ != ' ')
                return -EINVAL;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++, unit <<= 10) {
                size_t len = strlen(units[i]);

                if (strncmp(s, units[i], len) != 0 || (s[len] >= 'A' && s[len] <= 'z'))
                        continue;
                /* frac < scale <= 10^9 and unit <= 2^60: frac * unit may saturate, and is then
                 * at most UINT64_MAX / scale away from the truth, which the sum saturates. */
                *ret_bytes = add_sat(mul_sat(whole, unit), mul_sat(frac, unit) / scale);
                if (ret_end)
                        *ret_end = s + len;
                return 0;
        }
        return -EINVAL;
}

/* "this X will be VERB" or "these N Xs will be VERB": the count, and the rest after it. */
static int parse_count(const char **s, const char *one, const char *many, uint64_t *ret)
{
        if (skip_prefix(s, "this ")) {
                if (!skip_prefix(s, one))
                        return -EBADMSG;
                *ret = 1;
                return 0;
        }
        if (!skip_prefix(s, "these ") || parse_digits(s, ret, NULL) < 0 || !skip_prefix(s, " ") ||
            !skip_prefix(s, many))
                return -EBADMSG;
        return 0;
}

/* "(X MiB download, Y MiB unpacked):" */
static int parse_sizes(const char *s, struct dryrun_summary *sum)
{
        uint64_t download, unpacked;

        if (!skip_prefix(&s, " (") || dryrun_parse_size(s, &download, &s) < 0 ||
            !skip_prefix(&s, " download, ") || dryrun_parse_size(s, &unpacked, &s) < 0 ||
            !skip_prefix(&s, " unpacked):") || *s != '\0')
                return -EBADMSG;
        sum->download_bytes = add_sat(sum->download_bytes, download);
        sum->unpacked_bytes = add_sat(sum->unpacked_bytes, unpacked);
        return 0;
}

/* One line, NUL-terminated, without its newline. */
static int parse_line(const char *line, struct dryrun_summary *sum)
{
        const char *s = line;
        uint64_t n;
        int r;

        if (strncmp(line, "this ", 5) != 0 && strncmp(line, "these ", 6) != 0)
                return 0;
        if (strstr(line, " will be built:")) {
                r = parse_count(&s, "derivation", "derivations", &n);
                if (r < 0 || strcmp(s, " will be built:") != 0)
                        return -EBADMSG;
                sum->to_build = add_sat(sum->to_build, n);
                sum->have_build = true;
                return 0;
        }
        if (strstr(line, " will be fetched (")) {
                r = parse_count(&s, "path", "paths", &n);
                if (r < 0 || !skip_prefix(&s, " will be fetched"))
                        return -EBADMSG;
                r = parse_sizes(s, sum);
                if (r < 0)
                        return r;
                sum->to_fetch = add_sat(sum->to_fetch, n);
                sum->have_fetch = true;
        }
        return 0;
}

int dryrun_parse(const char *text, size_t size, struct dryrun_summary *ret)
{
        char line[DRYRUN_LINE_MAX + 1];
        size_t start = 0;
        int r = 0;

        *ret = (struct dryrun_summary){};
        while (start < size && r == 0) {
                const char *nl = memchr(text + start, '\n', size - start);
                size_t len = (nl ? (size_t)(nl - text) : size) - start;

                /* A header is one short line: a long one, or one with a NUL, is something else. */
                if (len <= DRYRUN_LINE_MAX && !memchr(text + start, '\0', len)) {
                        memcpy(line, text + start, len);
                        line[len] = '\0';
                        if (len > 0 && line[len - 1] == '\r')
                                line[len - 1] = '\0';
                        r = parse_line(line, ret);
                }
                start += len + 1;
        }
        return r;
}
