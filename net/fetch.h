/* SPDX-License-Identifier: MIT */
#pragma once

/* The HTTP client of both programs (libcurl): downloads a file from, or POSTs a body to, an
 * ordered list of mirrors (http://, https:// or file://) with retries, exponential backoff with
 * full jitter, an overall deadline and a hard size cap. libcurl stays inside fetch.c: callers
 * see negative errnos and a struct fetch_error. It never logs (on_attempt lets a caller). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FETCH_CONNECT_TIMEOUT_MS_DEFAULT UINT64_C(10000)
#define FETCH_STALL_TIMEOUT_MS_DEFAULT UINT64_C(30000)
#define FETCH_DEADLINE_MS_DEFAULT UINT64_C(300000)
#define FETCH_BACKOFF_INITIAL_MS_DEFAULT UINT64_C(500)
#define FETCH_BACKOFF_MAX_MS_DEFAULT UINT64_C(30000)
/* A profile is at most 1 MiB (docs/design.md); its signature is far smaller. */
#define FETCH_MAX_SIZE_DEFAULT ((size_t)1024 * 1024)
/* Redirects are followed to http:// and https:// only, at most this many. */
#define FETCH_MAX_REDIRECTS 3
/* The longest URL built from a mirror and a path. */
#define FETCH_URL_MAX 2048
/* Extra request headers: at most this many, each at most FETCH_HEADER_MAX bytes. */
#define FETCH_HEADERS_MAX 8
#define FETCH_HEADER_MAX 1024
/* The start of an HTTP error answer's body kept in struct fetch_error (NUL included). */
#define FETCH_ANSWER_MAX 512
/* The longest entity tag kept from an answer, quotes and W/ included (NUL included). */
#define FETCH_ETAG_MAX 192
/* fetch_get()'s answer to a request with if_none_match that the server answered 304. */
#define FETCH_NOT_MODIFIED 1

struct fetch_error;

/* Called after every failed attempt (error < 0) with the state of that attempt; for logging. */
typedef void (*fetch_attempt_fn)(const struct fetch_error *attempt, int error, void *userdata);

struct fetch_options {
        char *const *mirrors; /* base URLs tried in order: http(s):// or file:// */
        size_t n_mirrors;
        const char *ca_file;         /* NULL: the system CA store */
        uint64_t connect_timeout_ms; /* per attempt */
        uint64_t stall_timeout_ms;   /* abort a transfer below 1 byte/s for this long (curl
                                        counts whole seconds: rounded up; it averages the
                                        speed over ~5 s, so a stall after a burst of bytes
                                        is noticed a few seconds later) */
        uint64_t deadline_ms;        /* overall, across all attempts and sleeps */
        uint64_t backoff_initial_ms; /* doubled per round, full jitter */
        uint64_t backoff_max_ms;
        size_t max_size;        /* hard cap on a body (received, and sent by a POST) */
        bool endpoint_optional; /* HTTP 404, 405, 410 and 501 rule the mirror out
                                   instead of being retried: an endpoint a static
                                   mirror does not have */
        unsigned max_attempts;  /* 0: retry until the deadline; else at most this many
                                   attempts in all */
        bool no_redirects;      /* a redirect is not followed: an error (-EPROTO) */
        /* Extra request headers, "Name: value", NULL-terminated (NULL: none): at most
         * FETCH_HEADERS_MAX, each at most FETCH_HEADER_MAX bytes, printable ASCII with a ':'.
         * Borrowed; they may hold a secret (a bearer token): they never reach a struct
         * fetch_error, and the client's copies are wiped. */
        const char *const *headers;
        const char *user_agent; /* NULL: "nixprov-agent/VERSION" */
        /* An entity tag ("..." or W/"...", as an answer's ETag gave it) sent as If-None-Match
         * by fetch_get() (NULL: none). An HTTP 304 then ends the call with FETCH_NOT_MODIFIED
         * and no body; without it a 304 is an error (-EPROTO) like any other 3xx. */
        const char *if_none_match;
        /* When set, a transfer in progress is aborted (-ECANCELED) within about a second of
         * *cancel becoming non-zero, and no further attempt is made (a signal handler sets
         * it). */
        const volatile int *cancel;
        fetch_attempt_fn on_attempt; /* optional */
        void *userdata;
};

struct fetch_error {
        char url[FETCH_URL_MAX];       /* the URL of the last attempt ("" when none was made) */
        long http_status;              /* of the last attempt; 0 when there was no HTTP answer */
        char message[256];             /* what went wrong: "HTTP 503", curl's message, ... */
        char answer[FETCH_ANSWER_MAX]; /* the start of the body of the last HTTP error answer,
                                          control bytes and non-ASCII as '?' ("" when none) */
        char etag[FETCH_ETAG_MAX];     /* the ETag of the last answer, when it had a valid one
                                          ("" when none) */
        bool not_modified;             /* the last answer was the 304 if_none_match asked for */
        unsigned attempts;             /* attempts made, over all mirrors and rounds */
        bool deadline_reached;         /* gave up because the overall deadline was reached */
};

/* Sets every field of o to its default: no mirrors, the system CA store, the timeouts above,
 * FETCH_MAX_SIZE_DEFAULT. */
void fetch_options_init(struct fetch_options *o);

/* Initializes and releases libcurl's global state; call once from main(), before any thread.
 * fetch_global_init() returns 0, or -EIO when libcurl cannot be initialized, or -ENOTSUP when
 * the libcurl at run time lacks http, https or file. */
int fetch_global_init(void);
void fetch_global_cleanup(void);

/* The sleep before retry round round+1 (round counts from 0): a uniformly spread value in
 * [0, min(backoff_max_ms, backoff_initial_ms * 2^round)] chosen by random (any 32-bit value).
 * A pure function, so it can be tested. */
uint64_t fetch_backoff_ms(const struct fetch_options *o, unsigned round, uint32_t random);

/* Joins a mirror base URL and a path with exactly one '/' between them, into a newly allocated
 * string. Returns 0, -EPROTONOSUPPORT when mirror is not http://, https:// or file://,
 * -EINVAL when path is empty, holds a byte outside [A-Za-z0-9/._~%?=&+:@-] or a ".." segment,
 * -E2BIG when the URL would be longer than FETCH_URL_MAX, or -ENOMEM. */
int fetch_url_join(const char *mirror, const char *path, char **ret_url);

/* Whether s is an entity tag as RFC 9110 writes it: "..." or W/"..." with the bytes 0x21,
 * 0x23-0x7e between the quotes, shorter than FETCH_ETAG_MAX. */
bool fetch_etag_valid(const char *s);

/* Downloads path from the mirrors: one round tries every mirror once in order; rounds are
 * separated by fetch_backoff_ms() sleeps and repeat until a complete body arrives or the
 * deadline would be passed. Transient failures (refused or reset connections, timeouts,
 * stalls, truncated bodies, HTTP 5xx, 429 and 404) are retried in later rounds; a body over the
 * cap, a refusal (other 4xx) or a redirect to another protocol rules that mirror out for the
 * rest of the call. TLS peer verification is always on.
 *
 * On success returns 0 and hands the caller the body (NUL-terminated, the NUL not counted)
 * in *ret_data and *ret_size. A partial body is never returned. With o->if_none_match, an HTTP
 * 304 returns FETCH_NOT_MODIFIED (positive) with *ret_data NULL and *ret_size 0. On failure returns
 * the error of the last attempt: -ECONNREFUSED (or another connect errno), -ETIMEDOUT (timeout,
 * stall, or the deadline cut the attempt short), -ECONNRESET, -EPROTO (truncated or malformed
 * answer), -EREMOTEIO (HTTP 5xx), -EAGAIN (HTTP 429), -ENOENT (HTTP 404/410, or a missing
 * file:// file), -EACCES (other HTTP 4xx), -E2BIG (body over the cap), -EKEYREJECTED (TLS
 * verification), -EHOSTUNREACH (name resolution), -ELOOP (too many redirects), -ECANCELED
 * (o->cancel was set); or before any
 * network use -EPROTONOSUPPORT (a mirror of another protocol) or -EINVAL (bad options,
 * headers or path). ret_error, when not NULL, is always filled in (on success it describes the
 * attempt that succeeded). */
int fetch_get(const struct fetch_options *o, const char *path, char **ret_data, size_t *ret_size,
              struct fetch_error *ret_error);

/* POSTs body (Content-Type: application/json) to path with the same mirrors, retries and
 * errors as fetch_get(); file:// mirrors are skipped (-EPROTONOSUPPORT when no other mirror is
 * left). A body larger than max_size fails with -E2BIG. The server must accept a repeated
 * request (a report carries its own id). On success the response body (possibly empty) goes
 * to *ret_response and *ret_response_size, which may both be NULL to drop it. */
int fetch_post_json(const struct fetch_options *o, const char *path, const char *body,
                    size_t body_size, char **ret_response, size_t *ret_response_size,
                    struct fetch_error *ret_error);
