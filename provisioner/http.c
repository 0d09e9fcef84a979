/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "http.h"
#include "log.h"
#include "util.h"

/* A body past the cap is read and thrown away (so the client gets its 413) up to this much more;
 * beyond it the connection is simply closed. */
#define HTTP_DISCARD_MAX (1024 * 1024)

struct http_request_state;

struct http_server {
        struct MHD_Daemon *daemon;
        http_handler_fn handler;
        void *userdata;
        size_t max_body;
        uint16_t port;

        /* The held requests (http_response_hold()), resumed by the waker thread. */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC */
        pthread_t waker;
        bool waker_started;
        bool stopping; /* under lock */
        bool wake_all; /* under lock */
        unsigned max_waiters;
        unsigned n_waiters; /* under lock */
        struct http_request_state *waiters;
};

/* Per request, from the first call of the access handler to the completion notification. */
struct http_request_state {
        struct buf body;
        bool too_large;
        uint64_t discarded;

        struct MHD_Connection *connection;
        bool held;            /* held once: its deadline is set */
        bool waiting;         /* suspended, in the server's list (under lock) */
        uint64_t deadline_ms; /* monotonic: the end of the wait */
        struct http_request_state *prev, *next;
};

int http_listen_parse(const char *s, struct http_listen *ret)
{
        struct http_listen l = {};
        const char *colon, *host_start, *host_end;
        uint64_t port;
        size_t host_size;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                host_start = s + 1;
                host_end = strchr(host_start, ']');
                if (!host_end || host_end[1] != ':')
                        return -EINVAL;
                colon = host_end + 1;
        } else {
                host_start = s;
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host_end = colon;
        }
        host_size = (size_t)(host_end - host_start);
        if (host_size == 0 || host_size >= sizeof(l.host))
                return -EINVAL;
        memcpy(l.host, host_start, host_size);
        l.host[host_size] = '\0';
        if (parse_u64(colon + 1, &port) < 0 || port > 65535)
                return -EINVAL;
        l.port = (uint16_t)port;

        if (s[0] == '[') {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l.address;

                a->sin6_family = AF_INET6;
                a->sin6_port = htons(l.port);
                if (inet_pton(AF_INET6, l.host, &a->sin6_addr) != 1)
                        return -EINVAL;
                l.address_size = sizeof(*a);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&l.address;

                a->sin_family = AF_INET;
                a->sin_port = htons(l.port);
                if (inet_pton(AF_INET, l.host, &a->sin_addr) != 1)
                        return -EINVAL;
                l.address_size = sizeof(*a);
        }
        *ret = l;
        return 0;
}

const char *http_request_query(const struct http_request *request, const char *key)
{
        if (!request->connection) /* a request made up by a unit test */
                return NULL;
        return MHD_lookup_connection_value(request->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_request_header(const struct http_request *request, const char *name)
{
        if (!request->connection)
                return NULL;
        return MHD_lookup_connection_value(request->connection, MHD_HEADER_KIND, name);
}

/* The opaque part of an entity tag, without W/ and the quotes: *ret_start and length, or -1. */
static ssize_t http_etag_opaque(const char *s, const char **ret_start)
{
        const char *end;

        if (strncmp(s, "W/", 2) == 0)
                s += 2;
        if (s[0] != '"' || !(end = strchr(s + 1, '"')))
                return -1;
        *ret_start = s + 1;
        return end - (s + 1);
}

bool http_etag_matches(const char *if_none_match, const char *etag)
{
        const char *want, *p = if_none_match;
        ssize_t n_want;

        if (!p || !etag || (n_want = http_etag_opaque(etag, &want)) < 0)
                return false;
        for (;;) {
                const char *have;
                ssize_t n_have;

                p += strspn(p, " \t,");
                if (*p == '\0')
                        return false;
                if (*p == '*')
                        return true;
                n_have = http_etag_opaque(p, &have);
                if (n_have < 0)
                        return false; /* malformed: matches nothing, the answer is sent */
                if (n_have == n_want && memcmp(have, want, (size_t)n_want) == 0)
                        return true;
                p = have + n_have + 1;
        }
}

void http_response_set_not_modified(struct http_response *response)
{
        char *empty = strdup("");

        if (!empty)
                return; /* unset: a 500 */
        http_response_set_data(response, HTTP_STATUS_NOT_MODIFIED, NULL, empty, 0);
}

int http_response_set_etag(struct http_response *response, const char *etag)
{
        size_t n = strlen(etag);

        if (n >= sizeof(response->etag))
                return -E2BIG;
        memcpy(response->etag, etag, n + 1);
        return 0;
}

static void http_waiters_unlink(struct http_server *server, struct http_request_state *w)
{
        if (w->prev)
                w->prev->next = w->next;
        else
                server->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->waiting = false;
        server->n_waiters--;
}

/* Whether the handler may hold state's request now. */
static bool http_may_wait(struct http_server *server, const struct http_request_state *state)
{
        bool ok;

        pthread_mutex_lock(&server->lock);
        if (state->held)
                ok = !server->stopping && monotonic_ms() < state->deadline_ms;
        else
                ok = !server->stopping && server->n_waiters < server->max_waiters;
        pthread_mutex_unlock(&server->lock);
        return ok;
}

/* Suspends the connection until the waker resumes it. Returns false when it cannot wait. */
static bool http_hold(struct http_server *server, struct http_request_state *state,
                      unsigned seconds)
{
        uint64_t now = monotonic_ms();

        pthread_mutex_lock(&server->lock);
        if (server->stopping || server->n_waiters >= server->max_waiters ||
            (state->held && now >= state->deadline_ms)) {
                pthread_mutex_unlock(&server->lock);
                return false;
        }
        if (!state->held) {
                state->held = true;
                state->deadline_ms = now + (uint64_t)seconds * 1000;
        }
        state->waiting = true;
        state->prev = NULL;
        state->next = server->waiters;
        if (server->waiters)
                server->waiters->prev = state;
        server->waiters = state;
        server->n_waiters++;
        /* Under the lock: the waker resumes only what is suspended. */
        MHD_suspend_connection(state->connection);
        pthread_cond_signal(&server->cond);
        pthread_mutex_unlock(&server->lock);
        return true;
}

/* Takes the waiters to resume out of the list (all of them when all): under lock. */
static struct http_request_state *http_waiters_take(struct http_server *server, bool all,
                                                    uint64_t now, uint64_t *ret_earliest)
{
        struct http_request_state *taken = NULL, *next;
        uint64_t earliest = UINT64_MAX;

        for (struct http_request_state *w = server->waiters; w; w = next) {
                next = w->next;
                if (all || w->deadline_ms <= now) {
                        http_waiters_unlink(server, w);
                        w->next = taken;
                        taken = w;
                } else if (w->deadline_ms < earliest)
                        earliest = w->deadline_ms;
        }
        *ret_earliest = earliest;
        return taken;
}

static void http_cond_wait_until(struct http_server *server, uint64_t until_ms)
{
        struct timespec ts;

        if (until_ms == UINT64_MAX) {
                pthread_cond_wait(&server->cond, &server->lock);
                return;
        }
        ts.tv_sec = (time_t)(until_ms / 1000);
        ts.tv_nsec = (long)(until_ms % 1000) * 1000000L;
        (void)pthread_cond_timedwait(&server->cond, &server->lock, &ts);
}

/* Resumes the held requests whose wait ended, all of them on http_server_wake(), and every one
 * when the server stops. MHD_resume_connection() is called outside the lock: a connection
 * taken out of the list stays suspended, so its state lives, until it is resumed. */
static void *http_waker(void *userdata)
{
        struct http_server *server = userdata;
        bool stop = false;

        pthread_mutex_lock(&server->lock);
        while (!stop) {
                struct http_request_state *taken, *next;
                uint64_t earliest;

                stop = server->stopping;
                taken =
                    http_waiters_take(server, server->wake_all || stop, monotonic_ms(), &earliest);
                server->wake_all = false;
                pthread_mutex_unlock(&server->lock);
                for (struct http_request_state *w = taken; w; w = next) {
                        next = w->next;
                        w->next = NULL;
                        MHD_resume_connection(w->connection);
                }
                pthread_mutex_lock(&server->lock);
                if (!stop && !server->stopping && !server->wake_all)
                        http_cond_wait_until(server, earliest);
        }
        pthread_mutex_unlock(&server->lock);
        return NULL;
}

void http_server_wake(struct http_server *server)
{
        pthread_mutex_lock(&server->lock);
        server->wake_all = true;
        pthread_cond_signal(&server->cond);
        pthread_mutex_unlock(&server->lock);
}

unsigned http_server_waiters(struct http_server *server)
{
        unsigned n;

        pthread_mutex_lock(&server->lock);
        n = server->n_waiters;
        pthread_mutex_unlock(&server->lock);
        return n;
}

static void http_response_reset(struct http_response *response)
{
        free(response->body);
        response->body = NULL;
        response->body_size = 0;
}

void http_response_hold(struct http_response *response, unsigned seconds)
{
        http_response_reset(response);
        response->hold_seconds = seconds;
}

int http_response_set_json(struct http_response *response, unsigned status, json_t *json)
{
        char *text;

        http_response_reset(response);
        text = json_dumps(json, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        response->status = status;
        response->content_type = "application/json";
        response->body = text;
        response->body_size = strlen(text);
        return 0;
}

void http_response_set_error(struct http_response *response, unsigned status, const char *format,
                             ...)
{
        _cleanup_free_ char *message = NULL;
        json_t *json;
        va_list ap;
        int n;

        http_response_reset(response);
        va_start(ap, format);
        n = vasprintf(&message, format, ap);
        va_end(ap);
        if (n < 0) {
                message = NULL;
                return;
        }
        json = json_pack("{s:s}", "error", message);
        if (!json)
                return;
        (void)http_response_set_json(response, status, json);
        json_decref(json);
}

void http_response_set_data(struct http_response *response, unsigned status,
                            const char *content_type, char *data, size_t size)
{
        http_response_reset(response);
        response->status = status;
        response->content_type = content_type;
        response->body = data;
        response->body_size = size;
}

int http_response_add_header(struct http_response *response, const char *name, const char *value)
{
        if (response->n_headers >= HTTP_MAX_EXTRA_HEADERS)
                return -E2BIG;
        response->headers[response->n_headers].name = name;
        response->headers[response->n_headers].value = value;
        response->n_headers++;
        return 0;
}

static enum MHD_Result http_queue(struct MHD_Connection *connection, struct http_response *r)
{
        static const char fallback[] = "{\"error\":\"internal error\"}";
        struct MHD_Response *response;
        enum MHD_Result result;
        unsigned status = r->status;

        if (r->body) {
                response =
                    MHD_create_response_from_buffer(r->body_size, r->body, MHD_RESPMEM_MUST_FREE);
                if (!response)
                        return MHD_NO; /* r->body is freed by our caller */
                r->body = NULL;
        } else {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                r->content_type = "application/json";
                r->n_headers = 0;
                r->etag[0] = '\0';
                response = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback,
                                                           MHD_RESPMEM_PERSISTENT);
                if (!response)
                        return MHD_NO;
        }

        /* A 304 has no body, so no type. */
        if ((status != MHD_HTTP_NOT_MODIFIED &&
             MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                     r->content_type ?: "application/octet-stream") != MHD_YES) ||
            MHD_add_response_header(response, "X-Content-Type-Options", "nosniff") != MHD_YES ||
            (r->etag[0] &&
             MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, r->etag) != MHD_YES)) {
                MHD_destroy_response(response);
                return MHD_NO;
        }
        for (size_t i = 0; i < r->n_headers; i++)
                if (MHD_add_response_header(response, r->headers[i].name, r->headers[i].value) !=
                    MHD_YES) {
                        MHD_destroy_response(response);
                        return MHD_NO;
                }

        result = MHD_queue_response(connection, status, response);
        MHD_destroy_response(response);
        return result;
}

static enum MHD_Result http_queue_too_large(struct http_server *server,
                                            struct MHD_Connection *connection)
{
        struct http_response response = {};
        enum MHD_Result result;

        http_response_set_error(&response, MHD_HTTP_CONTENT_TOO_LARGE,
                                "request body too large (at most %zu bytes)", server->max_body);
        result = http_queue(connection, &response);
        free(response.body);
        return result;
}

/* The whole request to the handler, and its answer queued; or the request held. */
static enum MHD_Result http_dispatch(struct http_server *server, struct http_request_state *state,
                                     struct MHD_Connection *connection, const char *method,
                                     const char *url)
{
        struct http_response response = {};
        struct http_request request = {
            .method = method,
            .path = url,
            .body = state->body.data ?: "",
            .body_size = state->body.size,
            .connection = connection,
            .resumed = state->held,
            .may_wait = http_may_wait(server, state),
        };
        enum MHD_Result result;

        server->handler(server->userdata, &request, &response);
        if (!response.body && response.hold_seconds > 0) {
                if (request.may_wait && http_hold(server, state, response.hold_seconds))
                        return MHD_YES;
                /* No room, or the server stops: answered as without a wait. */
                response = (struct http_response){};
                request.may_wait = false;
                server->handler(server->userdata, &request, &response);
        }
        if (!response.body)
                log_warning("%s %s: handler gave no response, answering 500", method, url);
        else if (response.status >= 500)
                log_warning("%s %s: %u", method, url, response.status);
        else
                log_debug("%s %s: %u", method, url, response.status);

        result = http_queue(connection, &response);
        free(response.body);
        return result;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *connection, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
        struct http_server *server = cls;
        struct http_request_state *state = *con_cls;

        (void)version;

        if (!state) {
                const char *length;
                uint64_t n;

                state = calloc(1, sizeof(*state));
                if (!state)
                        return MHD_NO;
                state->body = BUF_INIT(server->max_body);
                state->connection = connection;
                *con_cls = state;

                /* Refuse a declared oversized body before reading any of it (and before a
                 * "100 Continue" invites the client to send it). */
                length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (length && parse_u64(length, &n) >= 0 && n > server->max_body)
                        return http_queue_too_large(server, connection);
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (!state->too_large) {
                        int r = buf_append(&state->body, upload_data, *upload_data_size);

                        if (r == -E2BIG) {
                                state->too_large = true;
                                buf_free(&state->body);
                        } else if (r < 0)
                                return MHD_NO;
                }
                if (state->too_large) {
                        /* Chunked: a response cannot be queued while the body is arriving. */
                        state->discarded += *upload_data_size;
                        if (state->discarded > HTTP_DISCARD_MAX) {
                                log_warning("%s %s: body far over the cap of %zu bytes, closing "
                                            "the connection",
                                            method, url, server->max_body);
                                return MHD_NO;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (state->too_large)
                return http_queue_too_large(server, connection);

        return http_dispatch(server, state, connection, method, url);
}

static void http_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
        struct http_request_state *state = *con_cls;

        /* Never state->waiting here: a suspended connection is not completed, and every one is
         * resumed before the daemon stops (http_server_stop()). */
        (void)cls;
        (void)connection;
        (void)toe;

        if (!state)
                return;
        buf_free(&state->body);
        free(state);
        *con_cls = NULL;
}

/* Decodes %HH in the path and the query arguments in place, like libmicrohttpd's own, except
 * that %00 is left as it is: a NUL byte would silently cut "web%00x" to "web" in every C string
 * that follows, and no name this server accepts contains '%'. */
static size_t http_unescape(void *cls, struct MHD_Connection *connection, char *s)
{
        char *out = s;

        (void)cls;
        (void)connection;

        for (const char *in = s; *in;) {
                int high, low;

                if (in[0] == '%' && (high = hex_digit_value(in[1])) >= 0 &&
                    (low = hex_digit_value(in[2])) >= 0 && (high | low) != 0) {
                        *out++ = (char)(high * 16 + low);
                        in += 3;
                } else
                        *out++ = *in++;
        }
        *out = '\0';
        return (size_t)(out - s);
}

/* The errors of bind() worth passing on; anything else from MHD_start_daemon() is -EIO. */
static bool http_is_bind_errno(int e)
{
        return e == EADDRINUSE || e == EADDRNOTAVAIL || e == EACCES || e == EAFNOSUPPORT;
}

static void http_log(void *cls, const char *format, va_list ap)
{
        char message[512];
        size_t n;

        (void)cls;
        (void)vsnprintf(message, sizeof(message), format, ap);
        n = strlen(message);
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
                message[--n] = '\0';
        log_warning("libmicrohttpd: %s", message);
}

static int http_server_init_waiters(struct http_server *server, unsigned max_waiters)
{
        pthread_condattr_t attr;
        int r;

        server->max_waiters = max_waiters;
        r = pthread_mutex_init(&server->lock, NULL);
        if (r != 0)
                return -r;
        if (pthread_condattr_init(&attr) != 0)
                return -ENOMEM;
        r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(&server->cond, &attr);
        pthread_condattr_destroy(&attr);
        if (r != 0) {
                pthread_mutex_destroy(&server->lock);
                return -r;
        }
        return 0;
}

static struct MHD_Daemon *http_daemon_start(struct http_server *server,
                                            const struct http_listen *listen)
{
        unsigned flags =
            MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;

        if (listen->address.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        /* The logger goes first, or the options before it log with MHD's own. A held request
         * keeps its connection open: they come on top of the limit. */
        return MHD_start_daemon(
            flags, listen->port, NULL, NULL, http_access, server, MHD_OPTION_EXTERNAL_LOGGER,
            http_log, NULL, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&listen->address,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)HTTP_CONNECTION_LIMIT + server->max_waiters,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_CONNECTION_LIMIT,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
            MHD_OPTION_NOTIFY_COMPLETED, http_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
            http_unescape, NULL, MHD_OPTION_END);
}

int http_server_start(const struct http_listen *listen, size_t max_body, http_handler_fn handler,
                      void *userdata, struct http_server **ret_server)
{
        return http_server_start_waiting(listen, max_body, 0, handler, userdata, ret_server);
}

int http_server_start_waiting(const struct http_listen *listen, size_t max_body,
                              unsigned max_waiters, http_handler_fn handler, void *userdata,
                              struct http_server **ret_server)
{
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        const union MHD_DaemonInfo *info;
        int r;

        if (!listen || !handler || max_body == 0 || max_body > HTTP_MAX_BODY_LIMIT ||
            max_waiters > HTTP_MAX_WAITERS_LIMIT)
                return -EINVAL;
        server = calloc(1, sizeof(*server));
        if (!server)
                return -ENOMEM;
        server->handler = handler;
        server->userdata = userdata;
        server->max_body = max_body;
        r = http_server_init_waiters(server, max_waiters);
        if (r < 0) {
                free(TAKE_PTR(server));
                return r;
        }

        errno = 0;
        server->daemon = http_daemon_start(server, listen);
        if (!server->daemon) {
                if (http_is_bind_errno(errno))
                        return -errno;
                return -EIO;
        }
        r = pthread_create(&server->waker, NULL, http_waker, server);
        if (r != 0)
                return -r;
        server->waker_started = true;

        info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || info->port == 0)
                return -EIO;
        server->port = info->port;

        *ret_server = TAKE_PTR(server);
        return 0;
}

uint16_t http_server_port(const struct http_server *server)
{
        return server->port;
}

struct http_server *http_server_stop(struct http_server *server)
{
        if (!server)
                return NULL;
        /* Every held request is resumed first (a suspended one would stop MHD): it is answered
         * as without a wait, or closed. */
        pthread_mutex_lock(&server->lock);
        server->stopping = true;
        pthread_cond_signal(&server->cond);
        pthread_mutex_unlock(&server->lock);
        if (server->waker_started)
                (void)pthread_join(server->waker, NULL);
        if (server->daemon)
                MHD_stop_daemon(server->daemon);
        pthread_cond_destroy(&server->cond);
        pthread_mutex_destroy(&server->lock);
        free(server);
        return NULL;
}
