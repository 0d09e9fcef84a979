/* SPDX-License-Identifier: MIT */
/* Unit tests for net/fetch.c: what can be checked without a real server (file:// and a canned
 * answer on 127.0.0.1 stand in for one; the network cases are in
 * tests/integration/test-fetch.sh). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fetch.h"
#include "fileio.h"
#include "macro.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-fetch-XXXXXX";
static char mirror_url[sizeof(tmpdir) + 16];

static int setup(void **state)
{
        char path[sizeof(tmpdir) + 32];

        (void)state;
        if (fetch_global_init() < 0 || !mkdtemp(tmpdir))
                return -1;
        (void)snprintf(mirror_url, sizeof(mirror_url), "file://%s/", tmpdir);
        (void)snprintf(path, sizeof(path), "%s/v1", tmpdir);
        if (mkdir_parents(path, 0755) < 0)
                return -1;
        (void)snprintf(path, sizeof(path), "%s/v1/profile", tmpdir);
        return write_file_atomic(path, "nixprov: 1\n", 11, 0644, 0) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        char cmd[sizeof(tmpdir) + 16];

        (void)state;
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        fetch_global_cleanup();
        return system(cmd) == 0 ? 0 : -1;
}

static void test_options_defaults(void **state)
{
        struct fetch_options o;

        (void)state;
        memset(&o, 0xaa, sizeof(o));
        fetch_options_init(&o);
        assert_null(o.mirrors);
        assert_int_equal(o.n_mirrors, 0);
        assert_null(o.ca_file);
        assert_int_equal(o.connect_timeout_ms, 10000);
        assert_int_equal(o.stall_timeout_ms, 30000);
        assert_int_equal(o.deadline_ms, 300000);
        assert_int_equal(o.backoff_initial_ms, 500);
        assert_int_equal(o.backoff_max_ms, 30000);
        assert_int_equal(o.max_size, 1024 * 1024);
        assert_null(o.on_attempt);
        assert_null(o.userdata);
}

static void test_backoff(void **state)
{
        static const uint32_t randoms[] = {0, 1, 12345, 0x7fffffff, 0x80000000, UINT32_MAX};
        static const struct {
                uint64_t initial, max;
        } configs[] = {
            {500, 30000},    {1, 1}, {0, 30000}, {1000, 500}, {UINT64_MAX / 3, UINT64_MAX},
            {1, UINT64_MAX},
        };
        struct fetch_options o;

        (void)state;
        fetch_options_init(&o);
        for (size_t c = 0; c < ELEMENTSOF(configs); c++) {
                o.backoff_initial_ms = configs[c].initial;
                o.backoff_max_ms = configs[c].max;
                for (unsigned round = 0; round < 80; round++) {
                        uint64_t cap = configs[c].initial;

                        for (unsigned i = 0; i < round && cap < configs[c].max; i++)
                                cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
                        cap = MIN(cap, configs[c].max);

                        for (size_t r = 0; r < ELEMENTSOF(randoms); r++)
                                assert_true(fetch_backoff_ms(&o, round, randoms[r]) <= cap);
                        assert_int_equal(fetch_backoff_ms(&o, round, 0), 0);
                        /* The top of the range is reachable (when cap fits in 32 bits). */
                        if (cap < UINT32_MAX)
                                assert_int_equal(fetch_backoff_ms(&o, round, UINT32_MAX), cap);
                }
        }

        /* The defaults: 500 ms, 1 s, 2 s, ... capped at 30 s; half of the range for half. */
        fetch_options_init(&o);
        assert_int_equal(fetch_backoff_ms(&o, 0, UINT32_MAX), 500);
        assert_int_equal(fetch_backoff_ms(&o, 1, UINT32_MAX), 1000);
        assert_int_equal(fetch_backoff_ms(&o, 5, UINT32_MAX), 16000);
        assert_int_equal(fetch_backoff_ms(&o, 6, UINT32_MAX), 30000);
        assert_int_equal(fetch_backoff_ms(&o, UINT32_MAX, UINT32_MAX), 30000);
        assert_int_equal(fetch_backoff_ms(&o, 3, 0x80000000), 2000);
}

static void test_url_join(void **state)
{
        static const struct {
                const char *mirror, *path;
                int error;
                const char *url;
        } cases[] = {
            /* Hostile and invalid first. */
            {"ftp://127.0.0.1/m", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"gopher://127.0.0.1/", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"/srv/mirror", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"127.0.0.1/mirror", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"http:/127.0.0.1", "/v1/p", -EPROTONOSUPPORT, NULL},
            {"http://127.0.0.1/a b", "/v1/p", -EINVAL, NULL},
            {"http://127.0.0.1/\n", "/v1/p", -EINVAL, NULL},
            {"http://127.0.0.1/?q", "/v1/p", -EINVAL, NULL},
            {"http://127.0.0.1/#f", "/v1/p", -EINVAL, NULL},
            {"http://127.0.0.1", "", -EINVAL, NULL},
            {"http://127.0.0.1", "/", -EINVAL, NULL},
            {"http://127.0.0.1", "..", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/../../etc/shadow", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/..", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/..?x", -EINVAL, NULL},
            {"file:///srv", "../etc/shadow", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/a b", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/a\r\nX: y", -EINVAL, NULL},
            {"http://127.0.0.1", "/v1/#frag", -EINVAL, NULL},
            /* Good ones. */
            {"http://127.0.0.1:8080", "/v1/machines/ID/profile", 0,
             "http://127.0.0.1:8080/v1/machines/ID/profile"},
            {"http://127.0.0.1:8080/", "/v1/p", 0, "http://127.0.0.1:8080/v1/p"},
            {"http://127.0.0.1:8080/base", "v1/p", 0, "http://127.0.0.1:8080/base/v1/p"},
            {"http://127.0.0.1:8080/base/", "v1/p", 0, "http://127.0.0.1:8080/base/v1/p"},
            {"http://127.0.0.1:8080/base//", "//v1/p", 0, "http://127.0.0.1:8080/base/v1/p"},
            {"HTTPS://127.0.0.1/base", "/v1/p.minisig", 0, "HTTPS://127.0.0.1/base/v1/p.minisig"},
            {"https://127.0.0.1", "/v1/p?serial=7", 0, "https://127.0.0.1/v1/p?serial=7"},
            {"file:///srv/mirror", "/v1/p", 0, "file:///srv/mirror/v1/p"},
            {"file:///srv/mirror/", "/v1/p", 0, "file:///srv/mirror/v1/p"},
            {"file:///", "/v1/p", 0, "file:///v1/p"},
            {"file://", "/v1/p", 0, "file:///v1/p"},
            {"http://127.0.0.1//", "/v1/p", 0, "http://127.0.0.1/v1/p"},
            {"http://127.0.0.1", "/v1/a..b/.../c", 0, "http://127.0.0.1/v1/a..b/.../c"},
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *url = (char *)0x1;
                int r;

                r = fetch_url_join(cases[i].mirror, cases[i].path, &url);
                if (r != cases[i].error)
                        fail_msg("case %zu: '%s' + '%s': got %d, expected %d", i, cases[i].mirror,
                                 cases[i].path, r, cases[i].error);
                if (r < 0) {
                        assert_ptr_equal(url, (char *)0x1); /* untouched */
                        continue;
                }
                assert_string_equal(url, cases[i].url);
                free(url);
        }
}

static void test_url_join_too_long(void **state)
{
        char path[FETCH_URL_MAX + 1];
        char *url = NULL;

        (void)state;
        memset(path, 'a', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';
        assert_int_equal(fetch_url_join("http://127.0.0.1", path, &url), -E2BIG);
        path[FETCH_URL_MAX - 10] = '\0';
        assert_int_equal(fetch_url_join("http://127.0.0.1", path, &url), -E2BIG);
        assert_null(url);
}

/* Any mirror of another protocol refuses the whole call before any attempt; the good mirror
 * listed first would refuse connections, so an attempt would show. */
static void test_get_refuses_protocols(void **state)
{
        static const char *const bad[] = {
            "ftp://127.0.0.1:1/", "gopher://127.0.0.1:1/", "/srv/mirror",
            "scp://127.0.0.1:1/", "ldap://127.0.0.1:1/",   "dict://127.0.0.1:1/",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *mirrors[] = {(char *)"http://127.0.0.1:1/", (char *)bad[i]};
                struct fetch_options o;
                struct fetch_error e;
                char *data = (char *)0x1;
                size_t size = 7;

                fetch_options_init(&o);
                o.mirrors = mirrors;
                o.n_mirrors = ELEMENTSOF(mirrors);
                assert_int_equal(fetch_get(&o, "/v1/p", &data, &size, &e), -EPROTONOSUPPORT);
                assert_int_equal(e.attempts, 0);
                assert_string_equal(e.url, bad[i]);
                assert_ptr_equal(data, (char *)0x1);
                assert_int_equal(size, 7);
        }
}

static void test_get_invalid_options(void **state)
{
        char *mirrors[] = {mirror_url};
        struct fetch_options o;
        struct fetch_error e;
        char *data = NULL;

        (void)state;
        fetch_options_init(&o);
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, NULL, &e), -EINVAL);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.deadline_ms = 0;
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, NULL, &e), -EINVAL);
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.max_size = 0;
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, NULL, &e), -EINVAL);
        o.max_size = 100;
        o.ca_file = "/nonexistent/ca.pem";
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, NULL, &e), -ENOENT);
        assert_int_equal(e.attempts, 0);
        assert_null(data);
}

static void test_get_file(void **state)
{
        char *mirrors[] = {mirror_url};
        struct fetch_options o;
        struct fetch_error e;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        (void)state;
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, &size, &e), 0);
        assert_int_equal(size, 11);
        assert_string_equal(data, "nixprov: 1\n");
        assert_int_equal(e.attempts, 1);

        /* Exactly at the cap is fine; one byte over is not. */
        free(data);
        data = NULL;
        o.max_size = 11;
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, &size, &e), 0);
        free(data);
        data = NULL;
        o.max_size = 10;
        assert_int_equal(fetch_get(&o, "/v1/profile", &data, &size, &e), -E2BIG);
        assert_null(data);
        assert_int_equal(e.attempts, 1); /* the mirror is ruled out, not retried */
        assert_false(e.deadline_reached);
        assert_non_null(strstr(e.message, "cap of 10 bytes"));
}

static void test_get_missing_file_until_deadline(void **state)
{
        char *mirrors[] = {mirror_url};
        struct fetch_options o;
        struct fetch_error e;
        char *data = NULL;

        (void)state;
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.deadline_ms = 300;
        o.backoff_initial_ms = 20;
        assert_int_equal(fetch_get(&o, "/v1/missing", &data, NULL, &e), -ENOENT);
        assert_null(data);
        assert_true(e.attempts >= 2);
        assert_true(e.deadline_reached);
        assert_non_null(strstr(e.url, "/v1/missing"));
}

static void test_post_json_refusals(void **state)
{
        char *mirrors[] = {mirror_url};
        struct fetch_options o;
        struct fetch_error e;

        (void)state;
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        /* A file:// mirror cannot take a POST. */
        assert_int_equal(fetch_post_json(&o, "/v1/reports", "{}", 2, NULL, NULL, &e),
                         -EPROTONOSUPPORT);
        assert_int_equal(e.attempts, 0);
        /* Every request body has a cap. */
        o.max_size = 1;
        assert_int_equal(fetch_post_json(&o, "/v1/reports", "{}", 2, NULL, NULL, &e), -E2BIG);
        assert_int_equal(e.attempts, 0);
}

/* A one-thread HTTP server on 127.0.0.1 (a port the kernel picks) that answers every request
 * with one canned response and keeps the last request it got, for the client's own options. */
#define CANNED_REQUEST_MAX 8192

struct canned_server {
        int listen_fd;
        unsigned port;
        const char *response;
        unsigned max_connections;
        unsigned connections;
        char request[CANNED_REQUEST_MAX];
        pthread_t thread;
};

static void *canned_serve(void *userdata)
{
        struct canned_server *c = userdata;

        while (c->connections < c->max_connections) {
                size_t n = 0;
                int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0)
                        break;
                while (n + 1 < sizeof(c->request)) {
                        ssize_t k = read(fd, c->request + n, sizeof(c->request) - 1 - n);

                        if (k <= 0)
                                break;
                        n += (size_t)k;
                        c->request[n] = '\0';
                        if (strstr(c->request, "\r\n\r\n"))
                                break;
                }
                c->connections++;
                (void)write_all(fd, c->response, strlen(c->response));
                close(fd);
        }
        return NULL;
}

static void canned_start(struct canned_server *c, const char *response, unsigned max_connections)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);

        *c = (struct canned_server){.response = response, .max_connections = max_connections};
        c->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(c->listen_fd >= 0);
        assert_int_equal(bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(c->listen_fd, 8), 0);
        assert_int_equal(getsockname(c->listen_fd, (struct sockaddr *)&a, &len), 0);
        c->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&c->thread, NULL, canned_serve, c), 0);
}

/* Stops the server (shutdown() wakes its accept()) and returns how many requests it answered. */
static unsigned canned_stop(struct canned_server *c)
{
        (void)shutdown(c->listen_fd, SHUT_RDWR);
        assert_int_equal(pthread_join(c->thread, NULL), 0);
        close(c->listen_fd);
        return c->connections;
}

static void test_headers_and_error_answer(void **state)
{
        static const char *const headers[] = {"Authorization: Bearer s3cret-token",
                                              "X-Nixprov-Proof: abc", NULL};
        struct canned_server c;
        char base[64], *mirrors[] = {base};
        struct fetch_options o;
        struct fetch_error e;
        char *data = NULL;

        (void)state;
        canned_start(&c,
                     "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                     "Content-Length: 27\r\nConnection: close\r\n\r\n"
                     "{\"error\":\"unknown machine\"}",
                     4);
        (void)snprintf(base, sizeof(base), "http://127.0.0.1:%u/", c.port);
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.deadline_ms = 5000;
        o.backoff_initial_ms = 10;
        o.headers = headers;
        o.user_agent = "nixprov/test";
        o.max_attempts = 1; /* a 404 is retried otherwise */
        assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -ENOENT);
        assert_null(data);
        assert_int_equal(canned_stop(&c), 1);
        assert_int_equal(e.attempts, 1);
        assert_int_equal(e.http_status, 404);
        assert_false(e.deadline_reached);
        assert_string_equal(e.answer, "{\"error\":\"unknown machine\"}");
        assert_non_null(strstr(c.request, "GET /v1/machines HTTP/1.1\r\n"));
        assert_non_null(strstr(c.request, "\r\nAuthorization: Bearer s3cret-token\r\n"));
        assert_non_null(strstr(c.request, "\r\nX-Nixprov-Proof: abc\r\n"));
        assert_non_null(strstr(c.request, "\r\nUser-Agent: nixprov/test\r\n"));
        /* The secret header never reaches the error a caller logs. */
        assert_null(strstr(e.url, "s3cret"));
        assert_null(strstr(e.message, "s3cret"));
        assert_null(strstr(e.answer, "s3cret"));
}

static void test_redirect_not_followed(void **state)
{
        struct canned_server c;
        char base[64], *mirrors[] = {base};
        struct fetch_options o;
        struct fetch_error e;
        char *data = NULL;

        (void)state;
        canned_start(&c,
                     "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     4);
        (void)snprintf(base, sizeof(base), "http://127.0.0.1:%u", c.port);
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.deadline_ms = 5000;
        o.no_redirects = true;
        o.max_attempts = 1;
        assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -EPROTO);
        assert_null(data);
        assert_int_equal(canned_stop(&c), 1);
        assert_int_equal(e.http_status, 302);
        assert_int_equal(e.attempts, 1);
}

static void test_headers_refused(void **state)
{
        static const char *const smuggled[] = {"X-A: b\r\nX-Injected: 1", NULL};
        static const char *const no_colon[] = {"Authorization", NULL};
        static const char *const empty_name[] = {": value", NULL};
        static const char *const space_in_name[] = {"X A: b", NULL};
        static const char *const non_ascii[] = {"X-A: \xc3\xa9", NULL};
        static const char *const empty[] = {"", NULL};
        static const char *const too_many[FETCH_HEADERS_MAX + 2] = {
            "A: 1", "A: 2", "A: 3", "A: 4", "A: 5", "A: 6", "A: 7", "A: 8", "A: 9", NULL};
        static const char *const *const cases[] = {smuggled,  no_colon, empty_name, space_in_name,
                                                   non_ascii, empty,    too_many};
        char long_header[FETCH_HEADER_MAX + 2];
        const char *too_long[] = {long_header, NULL};
        /* Nothing listens there: a request that went out would fail with -ECONNREFUSED. */
        char *mirrors[] = {"http://127.0.0.1:1/"};
        struct fetch_options o;
        struct fetch_error e;
        char *data = NULL;

        (void)state;
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                o.headers = cases[i];
                assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -EINVAL);
                assert_int_equal(e.attempts, 0);
                assert_null(data);
                assert_int_equal(fetch_post_json(&o, "/v1/reports", "{}", 2, NULL, NULL, &e),
                                 -EINVAL);
                assert_int_equal(e.attempts, 0);
        }
        memset(long_header, 'a', sizeof(long_header) - 1);
        long_header[0] = 'X', long_header[1] = ':';
        long_header[sizeof(long_header) - 1] = '\0';
        o.headers = too_long;
        assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -EINVAL);
        assert_int_equal(e.attempts, 0);
        long_header[FETCH_HEADER_MAX] = '\0'; /* exactly at the limit: sent */
        o.deadline_ms = 200;
        o.max_attempts = 1;
        assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -ECONNREFUSED);
        assert_int_equal(e.attempts, 1);
        o.headers = NULL;
        o.user_agent = "bad agent\r\nX: 1";
        assert_int_equal(fetch_get(&o, "/v1/machines", &data, NULL, &e), -EINVAL);
        assert_int_equal(e.attempts, 0);
}

static void test_etag_valid(void **state)
{
        char long_tag[FETCH_ETAG_MAX + 2];

        (void)state;
        assert_true(fetch_etag_valid("\"abc\""));
        assert_true(fetch_etag_valid("W/\"5f-1a\""));
        assert_true(fetch_etag_valid("\"\""));
        assert_false(fetch_etag_valid(NULL));
        assert_false(fetch_etag_valid(""));
        assert_false(fetch_etag_valid("abc"));
        assert_false(fetch_etag_valid("\"a b\""));
        assert_false(fetch_etag_valid("\"a\"b\""));
        assert_false(fetch_etag_valid("\"a\r\nX: y\""));
        assert_false(fetch_etag_valid("w/\"a\""));
        assert_false(fetch_etag_valid("\"\xc3\xa9\""));
        memset(long_tag, 'a', sizeof(long_tag) - 1);
        long_tag[0] = '"';
        long_tag[sizeof(long_tag) - 2] = '"';
        long_tag[sizeof(long_tag) - 1] = '\0';
        assert_false(fetch_etag_valid(long_tag));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_etag_valid),
            cmocka_unit_test(test_options_defaults),
            cmocka_unit_test(test_backoff),
            cmocka_unit_test(test_url_join),
            cmocka_unit_test(test_url_join_too_long),
            cmocka_unit_test(test_get_refuses_protocols),
            cmocka_unit_test(test_get_invalid_options),
            cmocka_unit_test(test_get_file),
            cmocka_unit_test(test_get_missing_file_until_deadline),
            cmocka_unit_test(test_post_json_refusals),
            cmocka_unit_test(test_headers_and_error_answer),
            cmocka_unit_test(test_redirect_not_followed),
            cmocka_unit_test(test_headers_refused),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
