/* SPDX-License-Identifier: MIT */
/* The health checks (health.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "rebuild.h"
#include "util.h"

#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

enum check_kind { CHECK_UNIT, CHECK_TCP, CHECK_HTTP, CHECK_COMMAND, CHECK_SERVER };

struct check_ref {
        enum check_kind kind;
        size_t index;
};

static void sleep_ms(uint64_t ms)
{
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Runs argv as the rebuild runs its command; 0 when it exits 0, else what went wrong. */
static int run_program(char *const *argv, const char *path, uint64_t timeout_sec, char *error,
                       size_t size)
{
        struct rebuild_options o = {
            .argv = argv, .path = path, .timeout_sec = timeout_sec, .kill_grace_sec = 1};
        struct rebuild_result *b = calloc(1, sizeof(*b));
        int k;

        if (!b)
                return -ENOMEM;
        k = rebuild_run(&o, b);
        if (k == -ETIME)
                snprintf(error, size, "timed out after %llu s", (unsigned long long)timeout_sec);
        else if (b->exec_failed)
                snprintf(error, size, "cannot run %s: %s", argv[0], strerror(b->exec_errno));
        else if (k < 0 && b->exited)
                snprintf(error, size, "exited with status %d", b->exit_status);
        else if (k < 0 && b->signal)
                snprintf(error, size, "killed by signal %d", b->signal);
        else if (k < 0)
                snprintf(error, size, "cannot run %s: %s", argv[0], strerror(-k));
        free(b);
        return k < 0 ? -EPROTO : 0;
}

static int check_unit(const struct health_options *o, const char *unit, char *error, size_t size)
{
        char *argv[] = {(char *)o->systemctl, (char *)"is-active", (char *)"--quiet", (char *)unit,
                        NULL};
        char why[HEALTH_ERROR_MAX];
        int k = run_program(argv, o->path, HEALTH_UNIT_TIMEOUT_SEC, why, sizeof(why));

        if (k == -EPROTO && strncmp(why, "exited", 6) == 0)
                snprintf(error, size, "not active (%.80s is-active %.100s)", o->systemctl, why);
        else if (k < 0)
                snprintf(error, size, "%s", why);
        return k;
}

static int check_tcp(const char *item, char *error, size_t size)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        struct pollfd pfd = {.events = POLLOUT};
        char address[16];
        uint16_t port;
        int fd, k = 0, soerr = 0;
        socklen_t len = sizeof(soerr);

        profile_health_tcp_address(item, address, &port);
        sa.sin_port = htons(port);
        if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
                return snprintf(error, size, "invalid address"), -EINVAL;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return snprintf(error, size, "socket: %s", strerror(errno)), -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS)
                        k = -errno;
                else {
                        pfd.fd = fd;
                        k = poll(&pfd, 1, HEALTH_CONNECT_TIMEOUT_MS);
                        if (k == 0)
                                k = -ETIMEDOUT;
                        else if (k < 0)
                                k = -errno;
                        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                                k = -errno;
                        else
                                k = -soerr;
                }
        }
        close(fd);
        if (k < 0)
                snprintf(error, size, "%s", strerror(-k));
        return k;
}

/* One GET of path from the mirrors, one attempt each, 2xx or an error. */
static int get_once(char *const *mirrors, size_t n_mirrors, const char *ca_file, const char *path,
                    char *error, size_t size)
{
        struct fetch_options o;
        struct fetch_error fe;
        char *data = NULL;
        size_t data_size;
        int k;

        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = n_mirrors;
        o.ca_file = ca_file;
        o.connect_timeout_ms = HEALTH_CONNECT_TIMEOUT_MS;
        o.deadline_ms = 10000;
        o.max_attempts = (unsigned)n_mirrors;
        k = fetch_get(&o, path, &data, &data_size, &fe);
        free(data);
        if (k < 0)
                snprintf(error, size, "%.160s%s%.80s", fe.url, fe.url[0] ? ": " : "",
                         fe.message[0] ? fe.message : strerror(-k));
        return k;
}

static int check_http(const char *url, char *error, size_t size)
{
        const char *authority = strstr(url, "://") + 3;
        const char *path = strchrnul(authority, '/');
        _cleanup_free_ char *base = strndup(url, (size_t)(path - url));
        char *mirrors[1] = {base};

        if (!base)
                return -ENOMEM;
        while (*path == '/')
                path++;
        return get_once(mirrors, 1, NULL, *path ? path : "?", error, size);
}

/* The profile's argv is counted; the child's must end with NULL. */
static int check_command(const struct health_options *o, const struct profile_health_command *c,
                         char *error, size_t size)
{
        char *argv[PROFILE_HEALTH_MAX_ARGS + 1];

        for (size_t i = 0; i < c->n_argv && i < PROFILE_HEALTH_MAX_ARGS; i++)
                argv[i] = c->argv[i];
        argv[MIN_U64(c->n_argv, PROFILE_HEALTH_MAX_ARGS)] = NULL;
        return run_program(argv, o->path, c->timeout, error, size);
}

static int check_server(const struct health_options *o, char *error, size_t size)
{
        char *mirrors[16];
        size_t n = 0;

        for (size_t i = 0; o->server && i < o->server->n_mirrors && n < ELEMENTSOF(mirrors); i++)
                if (strncmp(o->server->mirrors[i], "http", 4) == 0)
                        mirrors[n++] = o->server->mirrors[i];
        if (n == 0) {
                snprintf(error, size, "no http(s) server is configured");
                return -ENOENT;
        }
        return get_once(mirrors, n, o->server->ca_file, "healthz", error, size);
}

static int check_once(const struct health_options *o, struct check_ref ref, char *error,
                      size_t size)
{
        const struct profile_health *h = o->health;

        switch (ref.kind) {
        case CHECK_UNIT:
                return check_unit(o, h->units[ref.index], error, size);
        case CHECK_TCP:
                return check_tcp(h->tcp[ref.index], error, size);
        case CHECK_HTTP:
                return check_http(h->http[ref.index], error, size);
        case CHECK_COMMAND:
                return check_command(o, &h->commands[ref.index], error, size);
        case CHECK_SERVER:
                return check_server(o, error, size);
        }
        return -EINVAL;
}

/* The checks in the order of the section: units, tcp, http, commands, server. */
static size_t list_checks(const struct profile_health *h, struct check_ref *refs,
                          struct health_result *ret)
{
        size_t n = 0;

#define ADD(kind_, count, fmt, value)                                                              \
        for (size_t i = 0; i < (count) && n < HEALTH_CHECKS_MAX; i++, n++) {                       \
                refs[n] = (struct check_ref){kind_, i};                                            \
                snprintf(ret->checks[n].name, HEALTH_NAME_MAX, fmt, value);                        \
        }
        ADD(CHECK_UNIT, h->n_units, "unit %s", h->units[i]);
        ADD(CHECK_TCP, h->n_tcp, "tcp %s", h->tcp[i]);
        ADD(CHECK_HTTP, h->n_http, "http %s", h->http[i]);
        ADD(CHECK_COMMAND, h->n_commands, "command %s", h->commands[i].argv[0]);
        ADD(CHECK_SERVER, (size_t)h->server, "server%s", "");
#undef ADD
        return n;
}

int health_run(const struct health_options *o, struct health_result *ret)
{
        struct check_ref refs[HEALTH_CHECKS_MAX];
        uint64_t start = monotonic_us(), deadline = start + o->health->deadline * 1000000;
        uint64_t backoff = HEALTH_BACKOFF_INITIAL_MS;

        *ret = (struct health_result){};
        ret->n_checks = list_checks(o->health, refs, ret);
        for (;;) {
                uint64_t now;

                ret->n_failed = 0;
                for (size_t i = 0; i < ret->n_checks; i++) {
                        struct health_check *c = &ret->checks[i];
                        int k;

                        if (c->ok)
                                continue;
                        c->attempts++;
                        c->error[0] = '\0';
                        k = check_once(o, refs[i], c->error, sizeof(c->error));
                        if (k == -ENOMEM)
                                return k;
                        c->ok = k >= 0;
                        ret->n_failed += !c->ok;
                }
                now = monotonic_us();
                ret->duration_ms = (now - start) / 1000;
                if (ret->n_failed == 0)
                        return 0;
                if (now >= deadline)
                        return -ETIMEDOUT;
                sleep_ms(MIN_U64(backoff, (deadline - now) / 1000 + 1));
                backoff = MIN_U64(backoff * 2, HEALTH_BACKOFF_MAX_MS);
        }
}

char *health_first_failure(const struct health_result *r, char *buf, size_t size)
{
        buf[0] = '\0';
        for (size_t i = 0; i < r->n_checks; i++)
                if (!r->checks[i].ok) {
                        snprintf(buf, size, "%s (%s; %u attempt%s in %llu ms)", r->checks[i].name,
                                 r->checks[i].error, r->checks[i].attempts,
                                 r->checks[i].attempts == 1 ? "" : "s",
                                 (unsigned long long)r->duration_ms);
                        break;
                }
        return buf;
}
