/* SPDX-License-Identifier: MIT */
#pragma once

/* The HTTP glue of nixprov serve, over libmicrohttpd: a daemon on one address, request bodies
 * accumulated into a bounded buffer (413 past the cap), connection limits and timeouts, and a
 * single handler that turns a whole request into a whole response. Nothing here prints; errors
 * of libmicrohttpd are logged through log.h by the program layer's logger callback only. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "forwarded.h"
#include "macro.h"

struct MHD_Connection;

/* Limits of the daemon: a client that exceeds them is cut off, never queued forever. */
#define HTTP_MAX_CONNECTIONS_DEFAULT 2048            /* open connections in all */
#define HTTP_MAX_CONNECTIONS_PER_ADDRESS_DEFAULT 256 /* open connections from one address */
#define HTTP_MAX_CONNECTIONS_LIMIT 65536             /* the largest --max-connections accepted */
#define HTTP_HEAD_TIMEOUT_DEFAULT 10 /* seconds from connecting (or the last answer) to a head */
#define HTTP_BODY_TIMEOUT_DEFAULT 30 /* seconds from the head to the end of the body */
#define HTTP_TIMEOUT_LIMIT 3600      /* the largest --head-timeout and --body-timeout */
#define HTTP_CONNECTION_TIMEOUT 30   /* seconds of inactivity before a connection is closed */
#define HTTP_CONNECTION_MEMORY (64 * 1024) /* per connection, for the request line and headers */
#define HTTP_THREADS 4                     /* requests handled at once */
#define HTTP_MAX_BODY_DEFAULT (256 * 1024)
#define HTTP_MAX_BODY_LIMIT (64 * 1024 * 1024) /* the largest --max-body accepted */
#define HTTP_MAX_EXTRA_HEADERS 4
#define HTTP_MAX_TRUSTED_PROXIES 16
#define HTTP_ADDRESS_MAX FORWARDED_ADDRESS_MAX
#define HTTP_MAX_WAITERS_DEFAULT 1024  /* requests held at once (http_response_hold()) */
#define HTTP_MAX_WAITERS_LIMIT 1000000 /* the largest --max-waiters accepted */

/* The statuses and headers the handlers answer with, so that they need not include
 * <microhttpd.h>. */
enum {
        HTTP_STATUS_OK = 200,
        HTTP_STATUS_NOT_MODIFIED = 304,
        HTTP_STATUS_BAD_REQUEST = 400,
        HTTP_STATUS_UNAUTHORIZED = 401,
        HTTP_STATUS_FORBIDDEN = 403,
        HTTP_STATUS_NOT_FOUND = 404,
        HTTP_STATUS_METHOD_NOT_ALLOWED = 405,
        HTTP_STATUS_CONFLICT = 409,
        HTTP_STATUS_CONTENT_TOO_LARGE = 413,
        HTTP_STATUS_TOO_MANY_REQUESTS = 429,
        HTTP_STATUS_INTERNAL_SERVER_ERROR = 500,
        HTTP_STATUS_SERVICE_UNAVAILABLE = 503,
};
#define HTTP_HEADER_ALLOW "Allow"
#define HTTP_HEADER_CACHE_CONTROL "Cache-Control"
#define HTTP_HEADER_WWW_AUTHENTICATE "WWW-Authenticate"
#define HTTP_HEADER_PROOF "X-Nixprov-Proof"

#define HTTP_HEADER_ETAG "ETag"
#define HTTP_HEADER_IF_NONE_MATCH "If-None-Match"
#define HTTP_ETAG_MAX 128 /* an entity tag this server makes, quotes and NUL included */

/* Where to listen: "127.0.0.1:8470", "[::1]:8470"; port 0 lets the kernel choose. */
struct http_listen {
        struct sockaddr_storage address;
        socklen_t address_size;
        char host[64]; /* as written, without brackets */
        uint16_t port;
};

/* Parses ADDR:PORT with a numeric IPv4 address or a bracketed IPv6 one. Returns 0 or -EINVAL. */
int http_listen_parse(const char *s, struct http_listen *ret);

/* One whole request, valid for the duration of the handler call. */
struct http_request {
        const char *method;
        const char *path; /* percent-decoded by libmicrohttpd, without the query */
        const char *body; /* NUL-terminated (never NULL), body_size bytes before the NUL */
        size_t body_size;
        /* The client's address as text: the peer's, or, when the peer is a trusted proxy, the
         * right-most address of its X-Forwarded-For that is not a trusted proxy. */
        const char *client;
        const char *authorization; /* the Authorization header, or NULL */
        const char *proof;         /* the X-Nixprov-Proof header, or NULL */
        struct MHD_Connection *connection;
        bool may_wait; /* the handler may hold the request (http_response_hold()) */
        bool resumed;  /* the handler held it before: this is the call after the wait */
};

/* The handler's answer. body is owned by the response (malloc'd); header names and values must
 * be static strings. */
struct http_response {
        unsigned status;
        const char *content_type;
        char *body;
        size_t body_size;
        struct {
                const char *name;
                const char *value;
        } headers[HTTP_MAX_EXTRA_HEADERS];
        size_t n_headers;
        char etag[HTTP_ETAG_MAX]; /* sent as ETag when not empty (http_response_set_etag()) */
        unsigned hold_seconds;    /* http_response_hold()'s */
};

/* Fills response. A response left without a body when the handler returns becomes a 500 with a
 * JSON error. Called from the daemon's threads, several at once. */
typedef void (*http_handler_fn)(void *userdata, const struct http_request *request,
                                struct http_response *response);

/* Returns the value of a query parameter (percent-decoded), or NULL when absent. */
const char *http_request_query(const struct http_request *request, const char *key);

/* Returns the value of a request header, or NULL when absent. */
const char *http_request_header(const struct http_request *request, const char *name);

/* Whether an If-None-Match value (a comma-separated list of entity tags, W/ allowed, or "*")
 * names etag, compared weakly as RFC 9110 13.1.2 says. NULL matches nothing. */
bool http_etag_matches(const char *if_none_match, const char *etag);

/* Sets the response to 304 Not Modified, without a body. */
void http_response_set_not_modified(struct http_response *response);

/* Instead of answering: the request is suspended (it holds no thread) until
 * http_server_wake() or until seconds have passed since it was first held, and the handler is
 * then called again with resumed set, and may_wait false once the time is up. Only when
 * request->may_wait (the server holds at most its max_waiters requests, and none while it
 * stops). */
void http_response_hold(struct http_response *response, unsigned seconds);

/* Sends etag (a quoted entity tag, copied; at most HTTP_ETAG_MAX - 1 bytes) as ETag. Returns 0
 * or -E2BIG. */
int http_response_set_etag(struct http_response *response, const char *etag);

/* Sets the response to json (a reference is taken, not stolen), serialized compactly, as
 * application/json with the given status. Returns 0 or -ENOMEM (the response is then unset). */
int http_response_set_json(struct http_response *response, unsigned status, json_t *json);

/* Sets the response to {"error": MESSAGE} with the given status. Never fails: when out of memory
 * the response stays unset and becomes a plain 500. */
void http_response_set_error(struct http_response *response, unsigned status, const char *format,
                             ...) _printf_(3, 4);

/* Sets the response to data (taking ownership of it, malloc'd) with a content type. */
void http_response_set_data(struct http_response *response, unsigned status,
                            const char *content_type, char *data, size_t size);

/* Adds a header; static strings only. Returns 0 or -E2BIG past HTTP_MAX_EXTRA_HEADERS. */
int http_response_add_header(struct http_response *response, const char *name, const char *value);

struct http_server;

/* What nixprov serve's options set. */
struct http_options {
        size_t max_body;                      /* larger bodies are answered 413 */
        unsigned max_connections;             /* open connections in all */
        unsigned max_connections_per_address; /* 0: no limit */
        unsigned head_timeout; /* seconds a request head may take, whatever trickles in */
        unsigned body_timeout; /* seconds the body may take after the head */
        /* Requests held at once (http_response_hold()), 0: none; each keeps its connection,
         * on top of max_connections (the per-address limit still counts it). */
        unsigned max_waiters;
        /* Peers whose X-Forwarded-For is believed, as forwarded_address_normalize() writes
         * them. */
        char trusted_proxies[HTTP_MAX_TRUSTED_PROXIES][HTTP_ADDRESS_MAX];
        size_t n_trusted_proxies;
};
#define HTTP_OPTIONS_DEFAULT                                                                       \
        ((struct http_options){                                                                    \
            .max_body = HTTP_MAX_BODY_DEFAULT,                                                     \
            .max_connections = HTTP_MAX_CONNECTIONS_DEFAULT,                                       \
            .max_connections_per_address = HTTP_MAX_CONNECTIONS_PER_ADDRESS_DEFAULT,               \
            .head_timeout = HTTP_HEAD_TIMEOUT_DEFAULT,                                             \
            .body_timeout = HTTP_BODY_TIMEOUT_DEFAULT,                                             \
            .max_waiters = HTTP_MAX_WAITERS_DEFAULT,                                               \
        })

/* Starts a daemon listening on listen, with a thread pool, calling handler for every request
 * whose body is at most options->max_body bytes (larger ones are answered 413 without calling
 * it), and a watchdog thread that cuts off connections past their deadline: a request head
 * not complete head_timeout seconds after the connection opened (or after the previous answer
 * on it), a body not complete body_timeout seconds after its head. Waiting for the answer has
 * no deadline, and neither has a held request (http_response_hold()): at most max_waiters at
 * once, resumed by a waker thread; held ones cost no thread. Returns 0 and the server, -EINVAL
 * for bad arguments, or -EADDRINUSE/-EIO when the daemon cannot start. */
int http_server_start(const struct http_listen *listen, const struct http_options *options,
                      http_handler_fn handler, void *userdata, struct http_server **ret_server);

/* Resumes every held request: each handler is called again and decides whether it waits on. */
void http_server_wake(struct http_server *server);

/* The requests held now. */
unsigned http_server_waiters(struct http_server *server);

/* The port the daemon is bound to (the one the kernel chose, for port 0). */
uint16_t http_server_port(const struct http_server *server);

/* Resumes every held request (each is answered as without a wait), stops accepting, finishes
 * the requests being handled, closes every connection and frees the server. Accepts NULL;
 * returns NULL. */
struct http_server *http_server_stop(struct http_server *server);
DEFINE_POINTER_CLEANUP(http_server, http_server_stop)
