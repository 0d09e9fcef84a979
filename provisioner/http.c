/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "forwarded.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* A body past the cap is read and thrown away (so the client gets its 413) up to this much more;
 * beyond it the connection is simply closed. */
#define HTTP_DISCARD_MAX (1024 * 1024)

/* How often the watchdog looks for connections past their deadline. */
#define HTTP_WATCHDOG_PERIOD_MS 250

/* Where a connection is in its current request; the phase decides its deadline. */
enum http_phase {
        HTTP_PHASE_HEAD,   /* waiting for a request head (also between keep-alive requests) */
        HTTP_PHASE_BODY,   /* the head is in, the body is being read */
        HTTP_PHASE_ANSWER, /* the request is read: handled, held or answered, no deadline */
};

/* One TCP connection, from libmicrohttpd's start notification to its close notification (which
 * comes before it closes the socket, so fd stays valid while the connection is listed). */
struct http_conn {
        struct http_conn *prev, *next;
        int fd;
        enum http_phase phase;
        uint64_t deadline_ms; /* CLOCK_MONOTONIC; 0: none */
        bool cut;
        char peer[HTTP_ADDRESS_MAX];
};

struct http_server {
        struct MHD_Daemon *daemon;
        http_handler_fn handler;
        void *userdata;
        struct http_options options;
        uint16_t port;

        /* The connections and the watchdog that cuts off those past their deadline. lock is
         * a leaf: nothing else is locked, and no libmicrohttpd function called, under it. */
        pthread_mutex_t lock;
        pthread_cond_t wake;
        pthread_t watchdog;
        bool lock_initialized, watchdog_started, watchdog_stop;
        struct http_conn *conns;

        /* The held requests (http_response_hold()), resumed by the waker thread. Under
         * waiters_lock a connection is suspended (so that the waker resumes only suspended
         * ones), never resumed; lock and waiters_lock are never held together. */
        pthread_mutex_t waiters_lock;
        pthread_cond_t waiters_cond; /* CLOCK_MONOTONIC */
        pthread_t waker;
        bool waiters_initialized, waker_started;
        bool stopping;      /* under waiters_lock */
        bool wake_all;      /* under waiters_lock */
        bool added;         /* under waiters_lock: one was held since the waker last looked */
        unsigned n_waiters; /* under waiters_lock */
        struct http_request_state *waiters;
};

/* Per request, from the first call of the access handler to the completion notification. */
struct http_request_state {
        struct buf body;
        bool too_large;
        uint64_t discarded;
        char client[HTTP_ADDRESS_MAX];

        struct MHD_Connection *connection;
        bool held;            /* held once: its deadline is set */
        bool waiting;         /* suspended, in the server's list (under waiters_lock) */
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

        pthread_mutex_lock(&server->waiters_lock);
        if (state->held)
                ok = !server->stopping && monotonic_ms() < state->deadline_ms;
        else
                ok = !server->stopping && server->n_waiters < server->options.max_waiters;
        pthread_mutex_unlock(&server->waiters_lock);
        return ok;
}

/* Suspends the connection until the waker resumes it. Returns false when it cannot wait. */
static bool http_hold(struct http_server *server, struct http_request_state *state,
                      unsigned seconds)
{
        uint64_t now = monotonic_ms();

        pthread_mutex_lock(&server->waiters_lock);
        if (server->stopping || server->n_waiters >= server->options.max_waiters ||
            (state->held && now >= state->deadline_ms)) {
                pthread_mutex_unlock(&server->waiters_lock);
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
        server->added = true;
        /* Under the lock: the waker resumes only what is suspended. */
        MHD_suspend_connection(state->connection);
        pthread_cond_signal(&server->waiters_cond);
        pthread_mutex_unlock(&server->waiters_lock);
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
                pthread_cond_wait(&server->waiters_cond, &server->waiters_lock);
                return;
        }
        ts.tv_sec = (time_t)(until_ms / 1000);
        ts.tv_nsec = (long)(until_ms % 1000) * 1000000L;
        (void)pthread_cond_timedwait(&server->waiters_cond, &server->waiters_lock, &ts);
}

/* Resumes the held requests whose wait ended, all of them on http_server_wake(), and every one
 * when the server stops. MHD_resume_connection() is called outside the lock: a connection
 * taken out of the list stays suspended, so its state lives, until it is resumed. */
static void *http_waker(void *userdata)
{
        struct http_server *server = userdata;
        bool stop = false;

        pthread_mutex_lock(&server->waiters_lock);
        while (!stop) {
                struct http_request_state *taken, *next;
                uint64_t earliest;

                stop = server->stopping;
                taken =
                    http_waiters_take(server, server->wake_all || stop, monotonic_ms(), &earliest);
                server->wake_all = false;
                server->added = false;
                pthread_mutex_unlock(&server->waiters_lock);
                for (struct http_request_state *w = taken; w; w = next) {
                        next = w->next;
                        w->next = NULL;
                        MHD_resume_connection(w->connection);
                }
                pthread_mutex_lock(&server->waiters_lock);
                /* One held while the lock was released may end before earliest: look again. */
                if (!stop && !server->stopping && !server->wake_all && !server->added)
                        http_cond_wait_until(server, earliest);
        }
        pthread_mutex_unlock(&server->waiters_lock);
        return NULL;
}

void http_server_wake(struct http_server *server)
{
        pthread_mutex_lock(&server->waiters_lock);
        server->wake_all = true;
        pthread_cond_signal(&server->waiters_cond);
        pthread_mutex_unlock(&server->waiters_lock);
}

unsigned http_server_waiters(struct http_server *server)
{
        unsigned n;

        pthread_mutex_lock(&server->waiters_lock);
        n = server->n_waiters;
        pthread_mutex_unlock(&server->waiters_lock);
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
                                "request body too large (at most %zu bytes)",
                                server->options.max_body);
        result = http_queue(connection, &response);
        free(response.body);
        return result;
}

/* The framing headers of a request, every occurrence (libmicrohttpd keeps each one, but itself
 * only looks at the first, and prefers Transfer-Encoding to Content-Length). */
struct http_framing {
        unsigned n_length;
        unsigned n_encoding;
        const char *encoding;
};

static enum MHD_Result http_count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
        struct http_framing *f = cls;

        (void)kind;
        if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
                f->n_length++;
        else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
                f->n_encoding++;
                f->encoding = value;
        }
        return MHD_YES;
}

/* Returns why the body's length is ambiguous (where a proxy in front and this server could
 * disagree on where the request ends: request smuggling), or NULL when it is not. */
static const char *http_framing_error(struct MHD_Connection *connection)
{
        struct http_framing f = {};

        (void)MHD_get_connection_values(connection, MHD_HEADER_KIND, http_count_framing, &f);
        if (f.n_length > 1)
                return "more than one Content-Length header";
        if (f.n_encoding > 1)
                return "more than one Transfer-Encoding header";
        if (f.n_length > 0 && f.n_encoding > 0)
                return "both Content-Length and Transfer-Encoding";
        if (f.n_encoding > 0 && (!f.encoding || strcasecmp(f.encoding, "chunked") != 0))
                return "a Transfer-Encoding other than chunked";
        return NULL;
}

static enum MHD_Result http_queue_bad_framing(struct MHD_Connection *connection, const char *method,
                                              const char *url, const char *why)
{
        struct http_response response = {};
        enum MHD_Result result;

        log_warning("%s %s: ambiguous framing (%s), answering 400 and closing", method, url, why);
        http_response_set_error(&response, MHD_HTTP_BAD_REQUEST, "ambiguous request framing: %s",
                                why);
        /* Queued before the body is read: libmicrohttpd then closes the connection after the
         * answer instead of parsing what follows as another request. */
        (void)http_response_add_header(&response, MHD_HTTP_HEADER_CONNECTION, "close");
        result = http_queue(connection, &response);
        free(response.body);
        return result;
}

static enum MHD_Result http_last_forwarded(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
        const char **last = cls;

        (void)kind;
        if (strcasecmp(key, "X-Forwarded-For") == 0)
                *last = value;
        return MHD_YES;
}

/* Into state->client, who sent the request: the peer, or for a trusted proxy the client that
 * the last X-Forwarded-For header names (see forwarded_client()). */
static void http_find_client(const struct http_server *server, struct MHD_Connection *connection,
                             const struct http_conn *conn, struct http_request_state *state)
{
        const struct http_options *o = &server->options;
        const char *header = NULL;

        if (!conn) {
                snprintf(state->client, sizeof(state->client), "unknown");
                return;
        }
        if (forwarded_is_trusted(o->trusted_proxies, o->n_trusted_proxies, conn->peer)) {
                (void)MHD_get_connection_values(connection, MHD_HEADER_KIND, http_last_forwarded,
                                                &header);
                if (header && forwarded_client(header, o->trusted_proxies, o->n_trusted_proxies,
                                               state->client) == 0)
                        return;
        }
        memcpy(state->client, conn->peer, sizeof(state->client));
}

/* The connection's own state, or NULL (when it could not be allocated: no deadline then). */
static struct http_conn *http_conn_of(struct MHD_Connection *connection)
{
        const union MHD_ConnectionInfo *info;

        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? info->socket_context : NULL;
}

static void http_conn_set_phase(struct http_server *server, struct http_conn *conn,
                                enum http_phase phase)
{
        uint64_t now = monotonic_ms();

        if (!conn)
                return;
        pthread_mutex_lock(&server->lock);
        conn->phase = phase;
        if (phase == HTTP_PHASE_HEAD)
                conn->deadline_ms = now + (uint64_t)server->options.head_timeout * 1000;
        else if (phase == HTTP_PHASE_BODY)
                conn->deadline_ms = now + (uint64_t)server->options.body_timeout * 1000;
        else
                conn->deadline_ms = 0;
        pthread_mutex_unlock(&server->lock);
}

/* The first call of the access handler: the head is complete, nothing of the body is read. */
static enum MHD_Result http_request_begin(struct http_server *server,
                                          struct MHD_Connection *connection, const char *url,
                                          const char *method, void **con_cls)
{
        struct http_request_state *state;
        const char *length, *why;
        uint64_t n;

        state = calloc(1, sizeof(*state));
        if (!state)
                return MHD_NO;
        state->body = BUF_INIT(server->options.max_body);
        state->connection = connection;
        *con_cls = state;

        why = http_framing_error(connection);
        if (why) {
                http_conn_set_phase(server, http_conn_of(connection), HTTP_PHASE_ANSWER);
                return http_queue_bad_framing(connection, method, url, why);
        }

        /* Refuse a declared oversized body before reading any of it (and before a "100
         * Continue" invites the client to send it). */
        length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && parse_u64(length, &n) >= 0 && n > server->options.max_body) {
                http_conn_set_phase(server, http_conn_of(connection), HTTP_PHASE_ANSWER);
                return http_queue_too_large(server, connection);
        }
        http_conn_set_phase(server, http_conn_of(connection), HTTP_PHASE_BODY);
        return MHD_YES;
}

/* A piece of the body: kept up to the cap, then counted and thrown away. */
static enum MHD_Result http_request_data(struct http_server *server,
                                         struct http_request_state *state, const char *url,
                                         const char *method, const char *data, size_t size)
{
        if (!state->too_large) {
                int r = buf_append(&state->body, data, size);

                if (r == -E2BIG) {
                        state->too_large = true;
                        buf_free(&state->body);
                } else if (r < 0)
                        return MHD_NO;
        }
        if (state->too_large) {
                /* Chunked: a response cannot be queued while the body is arriving. */
                state->discarded += size;
                if (state->discarded > HTTP_DISCARD_MAX) {
                        log_warning("%s %s: body far over the cap of %zu bytes, closing the "
                                    "connection",
                                    method, url, server->options.max_body);
                        return MHD_NO;
                }
        }
        return MHD_YES;
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
            .client = state->client,
            .authorization = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_AUTHORIZATION),
            .proof = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, HTTP_HEADER_PROOF),
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
                log_warning("%s %s from %s: handler gave no response, answering 500", method, url,
                            state->client);
        else if (response.status >= 500)
                log_warning("%s %s from %s: %u", method, url, state->client, response.status);
        else
                log_debug("%s %s from %s: %u", method, url, state->client, response.status);

        result = http_queue(connection, &response);
        free(response.body);
        return result;
}

/* The whole request is in (or a held one is resumed): the handler answers it. */
static enum MHD_Result http_request_end(struct http_server *server,
                                        struct MHD_Connection *connection,
                                        struct http_request_state *state, const char *url,
                                        const char *method)
{
        struct http_conn *conn;

        /* Reading is over: no deadline while the request is handled, or held by it. */
        conn = http_conn_of(connection);
        http_conn_set_phase(server, conn, HTTP_PHASE_ANSWER);
        if (state->too_large)
                return http_queue_too_large(server, connection);
        if (!state->held)
                http_find_client(server, connection, conn, state);
        return http_dispatch(server, state, connection, method, url);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *connection, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
        struct http_server *server = cls;
        struct http_request_state *state = *con_cls;
        enum MHD_Result result;

        (void)version;

        if (!state)
                return http_request_begin(server, connection, url, method, con_cls);
        if (*upload_data_size > 0) {
                result =
                    http_request_data(server, state, url, method, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return result;
        }
        return http_request_end(server, connection, state, url, method);
}

static void http_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
        struct http_request_state *state = *con_cls;

        (void)toe;

        /* Never state->waiting here: a suspended connection is not completed, and every one is
         * resumed before the daemon stops (http_server_stop()). A kept-alive connection now
         * waits for its next request head. */
        http_conn_set_phase(cls, http_conn_of(connection), HTTP_PHASE_HEAD);
        if (!state)
                return;
        buf_free(&state->body);
        free(state);
        *con_cls = NULL;
}

/* The peer's address as text; an IPv4-mapped IPv6 address as the IPv4 one. */
static void http_format_address(const struct sockaddr *sa, char *buf, size_t size)
{
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;

        buf[0] = '\0';
        if (!sa)
                return;
        if (sa->sa_family == AF_INET)
                (void)inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, size);
        else if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
                (void)inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], buf, size);
        else if (sa->sa_family == AF_INET6)
                (void)inet_ntop(AF_INET6, &a6->sin6_addr, buf, size);
}

/* Under the lock: whether peer has its limit of connections open already. Trusted proxies
 * have none (the total limit still holds): they carry every client behind them. */
static bool http_peer_at_limit(const struct http_server *server, const char *peer)
{
        const struct http_options *o = &server->options;
        unsigned n = 0;

        if (o->max_connections_per_address == 0 ||
            forwarded_is_trusted(o->trusted_proxies, o->n_trusted_proxies, peer))
                return false;
        for (const struct http_conn *c = server->conns; c; c = c->next)
                if (!c->cut && streq(c->peer, peer) && ++n >= o->max_connections_per_address)
                        return true;
        return false;
}

static void http_conn_started(struct http_server *server, struct MHD_Connection *connection,
                              void **socket_context)
{
        const union MHD_ConnectionInfo *info;
        struct http_conn *conn;

        conn = calloc(1, sizeof(*conn));
        if (!conn) {
                log_warning("Out of memory: a connection goes without a deadline.");
                return;
        }
        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn->fd = info ? info->connect_fd : -1;
        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        http_format_address(info ? info->client_addr : NULL, conn->peer, sizeof(conn->peer));

        pthread_mutex_lock(&server->lock);
        if (http_peer_at_limit(server, conn->peer) && conn->fd >= 0) {
                /* Closed by libmicrohttpd as soon as it reads the end of the stream. */
                (void)shutdown(conn->fd, SHUT_RDWR);
                conn->cut = true;
                log_debug("Connection from %s closed: %u connections from that address are open.",
                          conn->peer, server->options.max_connections_per_address);
        }
        conn->next = server->conns;
        if (server->conns)
                server->conns->prev = conn;
        server->conns = conn;
        pthread_mutex_unlock(&server->lock);
        *socket_context = conn;
        http_conn_set_phase(server, conn, HTTP_PHASE_HEAD);
}

static void http_notify_connection(void *cls, struct MHD_Connection *connection,
                                   void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
        struct http_server *server = cls;
        struct http_conn *conn = *socket_context;

        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                http_conn_started(server, connection, socket_context);
                return;
        }
        if (!conn)
                return;
        pthread_mutex_lock(&server->lock);
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                server->conns = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        pthread_mutex_unlock(&server->lock);
        free(conn);
        *socket_context = NULL;
}

/* Cuts off, under the lock, every connection past its deadline: shutdown() makes libmicrohttpd
 * see the end of the stream, which it handles like a client that went away. */
static void http_cut_expired(struct http_server *server, uint64_t now)
{
        for (struct http_conn *c = server->conns; c; c = c->next) {
                if (c->cut || c->deadline_ms == 0 || now < c->deadline_ms || c->fd < 0)
                        continue;
                (void)shutdown(c->fd, SHUT_RDWR);
                c->cut = true;
                log_warning("Connection from %s cut off: request %s not complete after %u s.",
                            c->peer, c->phase == HTTP_PHASE_HEAD ? "head" : "body",
                            c->phase == HTTP_PHASE_HEAD ? server->options.head_timeout
                                                        : server->options.body_timeout);
        }
}

static void *http_watchdog(void *userdata)
{
        struct http_server *server = userdata;

        pthread_mutex_lock(&server->lock);
        while (!server->watchdog_stop) {
                uint64_t now = monotonic_ms(), until = now + HTTP_WATCHDOG_PERIOD_MS;
                struct timespec ts = {
                    .tv_sec = (time_t)(until / 1000),
                    .tv_nsec = (long)(until % 1000) * 1000000L,
                };

                http_cut_expired(server, now);
                (void)pthread_cond_timedwait(&server->wake, &server->lock, &ts);
        }
        pthread_mutex_unlock(&server->lock);
        return NULL;
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

static int http_options_check(const struct http_options *o)
{
        if (o->max_body == 0 || o->max_body > HTTP_MAX_BODY_LIMIT)
                return -EINVAL;
        if (o->max_connections == 0 || o->head_timeout == 0 || o->body_timeout == 0)
                return -EINVAL;
        if (o->max_waiters > HTTP_MAX_WAITERS_LIMIT)
                return -EINVAL;
        return 0;
}

/* A mutex, a condition on CLOCK_MONOTONIC and the thread that waits on them: *initialized once
 * the first two exist (to be destroyed), *started once the thread runs (to be joined). */
static int http_thread_start(pthread_mutex_t *lock, pthread_cond_t *cond, bool *initialized,
                             pthread_t *thread, bool *started, void *(*fn)(void *), void *arg)
{
        pthread_condattr_t attr;
        int r;

        r = pthread_condattr_init(&attr);
        if (r != 0)
                return -r;
        r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(cond, &attr);
        (void)pthread_condattr_destroy(&attr);
        if (r != 0)
                return -r;
        r = pthread_mutex_init(lock, NULL);
        if (r != 0) {
                (void)pthread_cond_destroy(cond);
                return -r;
        }
        *initialized = true;
        r = pthread_create(thread, NULL, fn, arg);
        if (r != 0)
                return -r;
        *started = true;
        return 0;
}

/* The connections' lock and the watchdog thread. */
static int http_watchdog_start(struct http_server *server)
{
        return http_thread_start(&server->lock, &server->wake, &server->lock_initialized,
                                 &server->watchdog, &server->watchdog_started, http_watchdog,
                                 server);
}

/* The waiters' lock and the waker thread. */
static int http_waker_start(struct http_server *server)
{
        return http_thread_start(&server->waiters_lock, &server->waiters_cond,
                                 &server->waiters_initialized, &server->waker,
                                 &server->waker_started, http_waker, server);
}

static struct MHD_Daemon *http_start_daemon(struct http_server *server,
                                            const struct http_listen *listen, unsigned flags)
{
        const struct http_options *o = &server->options;

        /* The logger goes first, or the options before it log with MHD's own. A held request
         * keeps its connection open: they come on top of the limit. */
        return MHD_start_daemon(flags | MHD_ALLOW_SUSPEND_RESUME, listen->port, NULL, NULL,
                                http_access, server, MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
                                MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&listen->address,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                                MHD_OPTION_CONNECTION_LIMIT, o->max_connections + o->max_waiters,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
                                MHD_OPTION_NOTIFY_COMPLETED, http_completed, server,
                                MHD_OPTION_NOTIFY_CONNECTION, http_notify_connection, server,
                                MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL, MHD_OPTION_END);
}

int http_server_start(const struct http_listen *listen, const struct http_options *options,
                      http_handler_fn handler, void *userdata, struct http_server **ret_server)
{
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
        int r;

        if (!listen || !options || !handler || http_options_check(options) < 0)
                return -EINVAL;
        if (listen->address.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;

        server = calloc(1, sizeof(*server));
        if (!server)
                return -ENOMEM;
        server->handler = handler;
        server->userdata = userdata;
        server->options = *options;
        r = http_watchdog_start(server);
        if (r < 0)
                return r;
        r = http_waker_start(server);
        if (r < 0)
                return r;

        errno = 0;
        server->daemon = http_start_daemon(server, listen, flags);
        if (!server->daemon) {
                if (http_is_bind_errno(errno))
                        return -errno;
                return -EIO;
        }

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
         * as without a wait, or closed; none is held from then on. */
        if (server->waiters_initialized) {
                pthread_mutex_lock(&server->waiters_lock);
                server->stopping = true;
                pthread_cond_signal(&server->waiters_cond);
                pthread_mutex_unlock(&server->waiters_lock);
        }
        if (server->waker_started)
                (void)pthread_join(server->waker, NULL);
        /* Then the daemon: its close notifications empty the list the watchdog reads. */
        if (server->daemon)
                MHD_stop_daemon(server->daemon);
        if (server->watchdog_started) {
                pthread_mutex_lock(&server->lock);
                server->watchdog_stop = true;
                pthread_cond_signal(&server->wake);
                pthread_mutex_unlock(&server->lock);
                (void)pthread_join(server->watchdog, NULL);
        }
        if (server->waiters_initialized) {
                (void)pthread_mutex_destroy(&server->waiters_lock);
                (void)pthread_cond_destroy(&server->waiters_cond);
        }
        if (server->lock_initialized) {
                (void)pthread_mutex_destroy(&server->lock);
                (void)pthread_cond_destroy(&server->wake);
        }
        free(server);
        return NULL;
}
