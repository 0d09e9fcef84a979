/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "builder_uri.h"
#include "util.h"

static bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int copy_part(char *dst, size_t size, const char *src, size_t len)
{
        if (len >= size)
                return -E2BIG;
        memcpy(dst, src, len);
        dst[len] = '\0';
        return 0;
}

/* Percent-decodes src[0..len) into dst; refuses what is not a plain command name or path. */
static int decode_program(char *dst, size_t size, const char *src, size_t len)
{
        size_t n = 0;

        for (size_t i = 0; i < len; i++) {
                char c = src[i];

                if (c == '%') {
                        int hi, lo;

                        if (i + 2 >= len)
                                return -EINVAL;
                        hi = hex_digit_value(src[i + 1]);
                        lo = hex_digit_value(src[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = (char)(hi * 16 + lo);
                        i += 2;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("._/+-", c)) ||
                    c == '\0')
                        return -EINVAL;
                if (n + 1 >= size)
                        return -E2BIG;
                dst[n++] = c;
        }
        if (n == 0)
                return -EINVAL;
        dst[n] = '\0';
        return 0;
}

/* [user@] of the authority p..end; *ret_host is where the host starts. */
static int parse_user(const char *p, const char *end, struct builder_uri *u, const char **ret_host)
{
        const char *at = memchr(p, '@', (size_t)(end - p));
        int k;

        if (!at) {
                strcpy(u->user, BUILDERS_DEFAULT_USER);
                *ret_host = p;
                return 0;
        }
        if (at == p || memchr(at + 1, '@', (size_t)(end - at - 1)))
                return -EINVAL;
        k = copy_part(u->user, sizeof(u->user), p, (size_t)(at - p));
        if (k < 0)
                return k;
        *ret_host = at + 1;
        return 0;
}

/* host or [v6] of host..end, with *ret_port where a ":port" starts (NULL without one). */
static int parse_host(const char *host, const char *end, struct builder_uri *u,
                      const char **ret_port)
{
        const char *host_end, *port = NULL;
        int k;

        if (*host == '[') {
                const char *close = memchr(host, ']', (size_t)(end - host));

                if (!close)
                        return -EINVAL;
                k = copy_part(u->host, sizeof(u->host), host + 1, (size_t)(close - host - 1));
                if (k < 0)
                        return k;
                if (close + 1 < end) {
                        if (close[1] != ':')
                                return -EINVAL;
                        port = close + 2;
                }
        } else {
                host_end = memchr(host, ':', (size_t)(end - host));
                if (host_end)
                        port = host_end + 1;
                else
                        host_end = end;
                k = copy_part(u->host, sizeof(u->host), host, (size_t)(host_end - host));
                if (k < 0)
                        return k;
        }
        if (u->host[0] == '\0')
                return -EINVAL;
        *ret_port = port;
        return 0;
}

/* Decimal digits port..end, 1 to 65535. */
static int parse_port(const char *port, const char *end, unsigned *ret)
{
        unsigned long v = 0;

        if (port == end)
                return -EINVAL;
        for (const char *c = port; c < end; c++) {
                if (*c < '0' || *c > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*c - '0');
                if (v > 65535)
                        return -EINVAL;
        }
        if (v == 0)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

/* The query after '?' (NULL: none): only remote-program= is taken, the last one winning. */
static int parse_query(const char *query, struct builder_uri *u)
{
        int k;

        strcpy(u->program, BUILDERS_DEFAULT_PROGRAM);
        for (const char *q = query; q && *q;) {
                const char *end = strchr(q, '&') ?: q + strlen(q);

                if (startswith(q, "remote-program=") && q + strlen("remote-program=") <= end) {
                        const char *v = q + strlen("remote-program=");

                        k = decode_program(u->program, sizeof(u->program), v, (size_t)(end - v));
                        if (k < 0)
                                return k;
                }
                q = *end ? end + 1 : end;
        }
        return 0;
}

int builders_parse_uri(const char *uri, struct builder_uri *ret)
{
        struct builder_uri u = {.port = BUILDERS_DEFAULT_PORT};
        const char *p, *query, *authority_end, *host, *port;
        int k;

        if (!uri || !ret)
                return -EINVAL;
        if (startswith(uri, "ssh://"))
                p = uri + strlen("ssh://");
        else if (startswith(uri, "ssh-ng://"))
                p = uri + strlen("ssh-ng://");
        else
                return -EINVAL;

        query = strchr(p, '?');
        authority_end = query ?: p + strlen(p);
        if (memchr(p, '/', (size_t)(authority_end - p)))
                return -EINVAL;

        k = parse_user(p, authority_end, &u, &host);
        if (k < 0)
                return k;
        k = parse_host(host, authority_end, &u, &port);
        if (k < 0)
                return k;
        if (port) {
                k = parse_port(port, authority_end, &u.port);
                if (k < 0)
                        return k;
        }
        k = parse_query(query ? query + 1 : NULL, &u);
        if (k < 0)
                return k;

        *ret = u;
        return 0;
}
