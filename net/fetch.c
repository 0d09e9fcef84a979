/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/param.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "macro.h"
#include "util.h"

/* CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR appeared in 7.85.0. */
#if LIBCURL_VERSION_NUM < 0x075500
#error "libcurl 7.85.0 or later is required"
#endif

#define STATUS_LINE_MAX 128
#define USER_AGENT_DEFAULT "nixprov-agent/" NIXPROV_VERSION

enum mirror_kind {
        MIRROR_HTTP,
        MIRROR_FILE,
};

struct request {
        bool post;
        const char *body;
        size_t body_size;
};

/* The state of one transfer, shared with the libcurl callbacks. */
struct transfer {
        CURL *curl;
        struct buf body;
        char status_line[STATUS_LINE_MAX];
        char answer[FETCH_ANSWER_MAX]; /* the start of an error answer's body */
        char etag[FETCH_ETAG_MAX];     /* the last answer's valid ETag, or "" */
        const volatile int *cancel;
        size_t answer_size;
        bool over_cap;   /* the body reached the cap: aborted */
        bool http_error; /* a non-2xx status: aborted before reading its body */
        bool out_of_memory;
};

void fetch_options_init(struct fetch_options *o)
{
        *o = (struct fetch_options){
            .connect_timeout_ms = FETCH_CONNECT_TIMEOUT_MS_DEFAULT,
            .stall_timeout_ms = FETCH_STALL_TIMEOUT_MS_DEFAULT,
            .deadline_ms = FETCH_DEADLINE_MS_DEFAULT,
            .backoff_initial_ms = FETCH_BACKOFF_INITIAL_MS_DEFAULT,
            .backoff_max_ms = FETCH_BACKOFF_MAX_MS_DEFAULT,
            .max_size = FETCH_MAX_SIZE_DEFAULT,
        };
}

int fetch_global_init(void)
{
        static const char *const needed[] = {"http", "https", "file"};
        const curl_version_info_data *info;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;

        info = curl_version_info(CURLVERSION_NOW);
        for (size_t i = 0; i < ELEMENTSOF(needed); i++) {
                bool found = false;

                for (const char *const *p = info->protocols; p && *p; p++)
                        if (streq(*p, needed[i]))
                                found = true;
                if (!found) {
                        curl_global_cleanup();
                        return -ENOTSUP;
                }
        }
        return 0;
}

void fetch_global_cleanup(void)
{
        curl_global_cleanup();
}

uint64_t fetch_backoff_ms(const struct fetch_options *o, unsigned round, uint32_t random)
{
        uint64_t cap = o->backoff_initial_ms;

        for (unsigned i = 0; i < round && cap != 0 && cap < o->backoff_max_ms; i++)
                cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
        if (cap > o->backoff_max_ms)
                cap = o->backoff_max_ms;
        if (cap == UINT64_MAX)
                cap--;

        /* Scale random from [0, 2^32) to [0, cap + 1): every value in [0, cap] is reachable. */
        return (uint64_t)(((unsigned __int128)random * (cap + 1)) >> 32);
}

static int mirror_kind(const char *mirror)
{
        if (strncasecmp(mirror, "http://", 7) == 0 || strncasecmp(mirror, "https://", 8) == 0)
                return MIRROR_HTTP;
        if (strncasecmp(mirror, "file://", 7) == 0)
                return MIRROR_FILE;
        return -EPROTONOSUPPORT;
}

static bool path_has_dotdot_segment(const char *path)
{
        const char *p = path;

        for (;;) {
                size_t n = strcspn(p, "/?");

                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return true;
                if (p[n] != '/')
                        return false;
                p += n + 1;
        }
}

int fetch_url_join(const char *mirror, const char *path, char **ret_url)
{
        size_t scheme_len, mirror_len;
        char *url;
        int r;

        if (!mirror || !path)
                return -EINVAL;
        r = mirror_kind(mirror);
        if (r < 0)
                return r;
        for (const char *p = mirror; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
                        return -EINVAL;

        while (*path == '/')
                path++;
        if (strnlen(path, FETCH_URL_MAX) >= FETCH_URL_MAX)
                return -E2BIG;
        if (!string_is_safe(path, FETCH_URL_MAX, "/._~%?=&+:@-") || path_has_dotdot_segment(path))
                return -EINVAL;

        /* Drop the mirror's trailing slashes, but not those of "file://" itself: "file:///" is
         * the root directory. */
        scheme_len = strstr(mirror, "://") - mirror + 3;
        mirror_len = strlen(mirror);
        while (mirror_len > scheme_len && mirror[mirror_len - 1] == '/')
                mirror_len--;
        if (mirror_len + 1 + strlen(path) >= FETCH_URL_MAX)
                return -E2BIG;

        if (asprintf(&url, "%.*s/%s", (int)mirror_len, mirror, path) < 0)
                return -ENOMEM;
        *ret_url = url;
        return 0;
}

/* Copies text from the network or from libcurl into dst, replacing control bytes and
 * non-ASCII, so a hostile server cannot put escape sequences into a log. */
static void copy_printable(char *dst, size_t dst_size, const char *src, size_t src_size)
{
        size_t n = 0;

        for (size_t i = 0; i < src_size && src[i] && n + 1 < dst_size; i++) {
                unsigned char c = (unsigned char)src[i];

                dst[n++] = c >= ' ' && c < 0x7f ? (char)c : '?';
        }
        dst[n] = '\0';
}

static long clamp_long(uint64_t v)
{
        return v > LONG_MAX ? LONG_MAX : (long)v;
}

bool fetch_etag_valid(const char *s)
{
        size_t n;

        if (!s)
                return false;
        if (strncmp(s, "W/", 2) == 0)
                s += 2;
        n = strnlen(s, FETCH_ETAG_MAX);
        if (n < 2 || n + 2 >= FETCH_ETAG_MAX || s[0] != '"' || s[n - 1] != '"')
                return false;
        for (size_t i = 1; i + 1 < n; i++)
                if ((unsigned char)s[i] < 0x21 || s[i] == '"' || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

/* "ETag: value" (any case, the value trimmed): kept when it is a valid entity tag. */
static void header_etag(struct transfer *t, const char *data, size_t n)
{
        char value[FETCH_ETAG_MAX];
        size_t start = 5, end = n;

        if (n < 5 || strncasecmp(data, "ETag:", 5) != 0)
                return;
        while (start < end && (data[start] == ' ' || data[start] == '\t'))
                start++;
        while (end > start && strchr(" \t\r\n", data[end - 1]))
                end--;
        if (end - start >= sizeof(value))
                return;
        memcpy(value, data + start, end - start);
        value[end - start] = '\0';
        if (fetch_etag_valid(value))
                memcpy(t->etag, value, end - start + 1);
}

static size_t header_cb(char *data, size_t size, size_t n_items, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * n_items;

        /* Every response (a redirect, a 100 Continue) starts with a status line: keep the
         * last one, and only that response's ETag. */
        if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
                t->etag[0] = '\0';
                while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
                        n--;
                copy_printable(t->status_line, sizeof(t->status_line), data, n);
        } else
                header_etag(t, data, n);
        return size * n_items;
}

static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        const struct transfer *t = userdata;

        (void)dltotal;
        (void)dlnow;
        (void)ultotal;
        (void)ulnow;
        return t->cancel && *t->cancel ? 1 : 0; /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

static size_t write_cb(char *data, size_t size, size_t n_items, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * n_items;
        long status = 0;
        int r;

        /* An error's body must not count against the cap of a good one: only its start is
         * kept (a server says there why it refused), then the transfer is cut short. */
        (void)curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 0 && (status < 200 || status >= 300)) {
                size_t room = sizeof(t->answer) - 1 - t->answer_size;

                t->http_error = true;
                memcpy(t->answer + t->answer_size, data, MIN(n, room));
                t->answer_size += MIN(n, room);
                return n <= room ? n : 0;
        }

        r = buf_append(&t->body, data, n);
        if (r == -E2BIG) {
                t->over_cap = true;
                return 0; /* a short count makes libcurl abort with CURLE_WRITE_ERROR */
        }
        if (r < 0) {
                t->out_of_memory = true;
                return 0;
        }
        return n;
}

static int errno_from_curl(CURLcode code, long os_errno)
{
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return os_errno > 0 && os_errno < 4096 ? -(int)os_errno : -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
                return -ECONNRESET;
        case CURLE_PARTIAL_FILE:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_BAD_CONTENT_ENCODING:
        case CURLE_SSL_CONNECT_ERROR:
                return -EPROTO;
        case CURLE_FILESIZE_EXCEEDED:
                return -E2BIG;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                return -EKEYREJECTED;
        case CURLE_SSL_CACERT_BADFILE:
                return -ENOKEY;
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EPROTONOSUPPORT;
        case CURLE_TOO_MANY_REDIRECTS:
                return -ELOOP;
        case CURLE_FILE_COULDNT_READ_FILE:
                return -ENOENT;
        case CURLE_REMOTE_ACCESS_DENIED:
        case CURLE_LOGIN_DENIED:
                return -EACCES;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        default:
                return -EIO;
        }
}

static int errno_from_http_status(long status)
{
        if (status >= 200 && status < 300 && status != 206)
                return 0;
        if (status == 404 || status == 410)
                return -ENOENT; /* not published yet, perhaps: retried */
        if (status == 408)
                return -ETIMEDOUT;
        if (status == 413)
                return -E2BIG;
        if (status == 429)
                return -EAGAIN;
        if (status >= 400 && status < 500)
                return -EACCES;
        if (status >= 500 && status < 600)
                return -EREMOTEIO;
        return -EPROTO; /* 1xx, 206, a redirect not followed, nonsense */
}

/* What a web server that is not a nixprov server answers a request for a nixprov endpoint. */
static bool endpoint_missing(long http_status)
{
        return http_status == 404 || http_status == 405 || http_status == 410 || http_status == 501;
}

/* Errors after which a mirror is not asked again during this call: retrying cannot help. */
static bool error_rules_out_mirror(int error)
{
        return error == -E2BIG || error == -EACCES || error == -EPROTONOSUPPORT ||
               error == -ELOOP || error == -EINVAL || error == -ENOKEY || error == -ECANCELED;
}

static void set_http_message(struct fetch_error *e, const struct transfer *t)
{
        const char *reason = "";

        /* "HTTP/1.1 503 Service Unavailable": the reason phrase follows the code. */
        if (t->status_line[0]) {
                const char *p = strchr(t->status_line, ' ');

                if (p)
                        p = strchr(p + 1, ' ');
                if (p)
                        reason = p;
        }
        (void)snprintf(e->message, sizeof(e->message), "HTTP %ld%s", e->http_status, reason);
}

static int attempt_setup(CURL *curl, const struct fetch_options *o, const struct request *req,
                         const char *url, enum mirror_kind kind, uint64_t remaining_ms,
                         struct curl_slist *headers, struct transfer *t, char *errbuf)
{
        uint64_t connect_ms = MIN(o->connect_timeout_ms, remaining_ms);
        uint64_t stall_s = (o->stall_timeout_ms + 999) / 1000;
        CURLcode c = CURLE_OK;

#define SET(option, value)                                                                         \
        do {                                                                                       \
                if (c == CURLE_OK)                                                                 \
                        c = curl_easy_setopt(curl, option, value);                                 \
        } while (0)

        SET(CURLOPT_URL, url);
        SET(CURLOPT_ERRORBUFFER, errbuf);
        SET(CURLOPT_NOSIGNAL, 1L);
        if (o->cancel) {
                SET(CURLOPT_NOPROGRESS, 0L);
                SET(CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
                SET(CURLOPT_XFERINFODATA, t);
        } else
                SET(CURLOPT_NOPROGRESS, 1L);
        /* Only the protocol of the mirror; redirects from http(s) to http(s), and never from
         * https down to http: a pinned CA means nothing on a plain connection. */
        SET(CURLOPT_PROTOCOLS_STR, kind == MIRROR_FILE ? "file" : "http,https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR,
            strncasecmp(url, "https:", 6) == 0 ? "https" : "http,https");
        SET(CURLOPT_FOLLOWLOCATION, kind == MIRROR_HTTP && !o->no_redirects ? 1L : 0L);
        SET(CURLOPT_MAXREDIRS, (long)FETCH_MAX_REDIRECTS);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        if (o->ca_file) {
                /* A pinned CA replaces the system store rather than adding to it. */
                SET(CURLOPT_CAINFO, o->ca_file);
                SET(CURLOPT_CAPATH, (char *)NULL);
        }
        SET(CURLOPT_CONNECTTIMEOUT_MS, clamp_long(connect_ms ? connect_ms : 1));
        SET(CURLOPT_TIMEOUT_MS, clamp_long(remaining_ms ? remaining_ms : 1));
        SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
        SET(CURLOPT_LOW_SPEED_TIME, clamp_long(stall_s ? stall_s : 1));
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MIN(o->max_size, (size_t)INT64_MAX));
        /* No CURLOPT_ACCEPT_ENCODING: the cap applies to the bytes as they arrive, and no
         * compressed bomb can expand behind it. */
        SET(CURLOPT_USERAGENT, o->user_agent ? o->user_agent : USER_AGENT_DEFAULT);
        SET(CURLOPT_WRITEFUNCTION, write_cb);
        SET(CURLOPT_WRITEDATA, t);
        SET(CURLOPT_HEADERFUNCTION, header_cb);
        SET(CURLOPT_HEADERDATA, t);
        if (req->post) {
                SET(CURLOPT_POST, 1L);
                SET(CURLOPT_POSTFIELDS, req->body ? req->body : ""); /* never stdin */
                SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_size);
                SET(CURLOPT_POSTREDIR, (long)(CURL_REDIR_POST_301 | CURL_REDIR_POST_302));
        }
        if (headers)
                SET(CURLOPT_HTTPHEADER, headers);
#undef SET

        return c == CURLE_OK ? 0 : errno_from_curl(c, 0);
}

/* Frees a header list, wiping the client's copies first: a header may carry a bearer token. */
static void headers_free(struct curl_slist *headers)
{
        for (struct curl_slist *h = headers; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data));
        curl_slist_free_all(headers);
}

/* The request's headers: a POST's content type, then the caller's (checked by options_check()).
 * *ret_headers is NULL when there are none. */
static int headers_build(const struct fetch_options *o, const struct request *req,
                         struct curl_slist **ret_headers)
{
        struct curl_slist *headers = NULL, *next;

        if (req->post) {
                headers = curl_slist_append(NULL, "Content-Type: application/json");
                /* No "Expect: 100-continue" round trip. */
                if (!headers || !curl_slist_append(headers, "Expect:"))
                        goto fail;
        }
        for (const char *const *h = o->headers; h && *h; h++) {
                next = curl_slist_append(headers, *h);
                if (!next)
                        goto fail;
                headers = next;
        }
        if (!req->post && o->if_none_match) {
                char line[FETCH_ETAG_MAX + 32];

                (void)snprintf(line, sizeof(line), "If-None-Match: %s", o->if_none_match);
                next = curl_slist_append(headers, line);
                if (!next)
                        goto fail;
                headers = next;
        }
        *ret_headers = headers;
        return 0;
fail:
        headers_free(headers);
        return -ENOMEM;
}

/* What the finished transfer t (libcurl's code, with the mirror's kind) comes to: 0, or the
 * error, with e's message saying why. */
static int attempt_outcome(const struct fetch_options *o, const struct transfer *t, CURLcode code,
                           enum mirror_kind kind, long os_errno, const char *errbuf,
                           struct fetch_error *e)
{
        int r;

        if (t->over_cap || code == CURLE_FILESIZE_EXCEEDED) {
                (void)snprintf(e->message, sizeof(e->message),
                               "the body is larger than the cap of %zu bytes", o->max_size);
                return -E2BIG;
        }
        if (t->out_of_memory) {
                (void)snprintf(e->message, sizeof(e->message), "out of memory");
                return -ENOMEM;
        }
        if (code == CURLE_OK && kind == MIRROR_HTTP && e->http_status == 304 && o->if_none_match &&
            !t->http_error) {
                e->not_modified = true;
                return 0;
        }
        if (t->http_error || (code == CURLE_OK && kind == MIRROR_HTTP)) {
                r = errno_from_http_status(e->http_status);
                if (r < 0) {
                        set_http_message(e, t);
                        copy_printable(e->answer, sizeof(e->answer), t->answer, t->answer_size);
                }
                return r;
        }
        r = errno_from_curl(code, os_errno);
        if (r < 0)
                copy_printable(e->message, sizeof(e->message),
                               errbuf[0] ? errbuf : curl_easy_strerror(code), CURL_ERROR_SIZE);
        return r;
}

/* One attempt at one URL. On success hands the body over in *ret_body. Fills e with what
 * happened. */
static int attempt(const struct fetch_options *o, const struct request *req, const char *url,
                   enum mirror_kind kind, uint64_t remaining_ms, struct buf *ret_body,
                   struct fetch_error *e)
{
        struct transfer t = {.body = BUF_INIT(o->max_size), .cancel = o->cancel};
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        long os_errno = 0;
        CURLcode code;
        int r;

        e->attempts++;
        e->http_status = 0;
        e->message[0] = '\0';
        e->answer[0] = '\0';
        e->etag[0] = '\0';
        e->not_modified = false;
        copy_printable(e->url, sizeof(e->url), url, strlen(url));

        t.curl = curl_easy_init();
        if (!t.curl) {
                r = -ENOMEM;
                goto out;
        }
        r = headers_build(o, req, &headers);
        if (r < 0)
                goto out;
        r = attempt_setup(t.curl, o, req, url, kind, remaining_ms, headers, &t, errbuf);
        if (r < 0) {
                (void)snprintf(e->message, sizeof(e->message), "cannot set up libcurl");
                goto out;
        }

        code = curl_easy_perform(t.curl);
        (void)curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &e->http_status);
        (void)curl_easy_getinfo(t.curl, CURLINFO_OS_ERRNO, &os_errno);
        r = attempt_outcome(o, &t, code, kind, os_errno, errbuf, e);
        memcpy(e->etag, t.etag, sizeof(e->etag));
        if (r >= 0) {
                *ret_body = t.body;
                t.body = BUF_INIT(o->max_size);
        }

out:
        buf_free(&t.body);
        headers_free(headers);
        if (t.curl)
                curl_easy_cleanup(t.curl);
        return r;
}

static bool header_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A header the caller adds: "Name: value" in printable ASCII (no CR or LF that would start
 * another one), with a name of token characters. */
static bool header_valid(const char *h)
{
        size_t n = strnlen(h, FETCH_HEADER_MAX + 1), name;

        if (n == 0 || n > FETCH_HEADER_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)h[i] < ' ' || (unsigned char)h[i] >= 0x7f)
                        return false;
        name = strcspn(h, ":");
        if (name == 0 || name == n)
                return false;
        for (size_t i = 0; i < name; i++)
                if (!header_name_char(h[i]))
                        return false;
        return true;
}

static int options_check(const struct fetch_options *o)
{
        size_t n = 0;

        if (!o || !o->mirrors || o->n_mirrors == 0 || o->deadline_ms == 0 || o->max_size == 0 ||
            o->stall_timeout_ms == 0 || o->connect_timeout_ms == 0)
                return -EINVAL;
        for (const char *const *h = o->headers; h && *h; h++)
                if (++n > FETCH_HEADERS_MAX || !header_valid(*h))
                        return -EINVAL;
        if (o->user_agent && !string_is_safe(o->user_agent, FETCH_HEADER_MAX, "/._-+"))
                return -EINVAL;
        if (o->ca_file && access(o->ca_file, R_OK) < 0)
                return negative_errno();
        return 0;
}

/* The mirrors of one call: each one's URL, and whether it is ruled out for the rest of it. */
struct mirrors {
        char **urls;
        bool *ruled_out;
        size_t n;
};

static void mirrors_done(struct mirrors *m)
{
        for (size_t i = 0; m->urls && i < m->n; i++)
                free(m->urls[i]);
        free(m->urls);
        free(m->ruled_out);
        *m = (struct mirrors){};
}

/* Checks the options and builds every URL before anything goes on the network. */
static int mirrors_prepare(const struct fetch_options *o, const char *path,
                           const struct request *req, struct mirrors *m, struct fetch_error *e)
{
        int r;

        r = options_check(o);
        if (r < 0) {
                (void)snprintf(e->message, sizeof(e->message), "invalid fetch options");
                return r;
        }
        if (req->post && req->body_size > o->max_size) {
                (void)snprintf(e->message, sizeof(e->message),
                               "the request body is larger than the cap of %zu bytes", o->max_size);
                return -E2BIG;
        }
        m->n = o->n_mirrors;
        m->urls = calloc(m->n, sizeof(char *));
        m->ruled_out = calloc(m->n, sizeof(bool));
        if (!m->urls || !m->ruled_out)
                return -ENOMEM;
        for (size_t i = 0; i < m->n; i++) {
                r = fetch_url_join(o->mirrors[i], path, &m->urls[i]);
                if (r < 0) {
                        copy_printable(e->url, sizeof(e->url), o->mirrors[i] ? o->mirrors[i] : "",
                                       SIZE_MAX);
                        (void)snprintf(e->message, sizeof(e->message), "%s",
                                       r == -EPROTONOSUPPORT
                                           ? "not an http://, https:// or file:// URL"
                                           : "invalid mirror URL or path");
                        return r;
                }
                if (req->post && mirror_kind(m->urls[i]) == MIRROR_FILE)
                        m->ruled_out[i] = true;
        }
        return 0;
}

static bool attempts_used_up(const struct fetch_options *o, const struct fetch_error *e)
{
        return o->max_attempts > 0 && e->attempts >= o->max_attempts;
}

/* The least time left worth starting another attempt with. */
#define FETCH_ATTEMPT_MIN_MS 200

/* One round: every mirror not ruled out, once, in order. Returns 0 with *ret_body, 1 when a
 * later round may still succeed, or the error to give up with (*last_error, the last
 * attempt's). */
static int request_round(const struct fetch_options *o, const struct request *req,
                         struct mirrors *m, uint64_t deadline, int *last_error,
                         struct buf *ret_body, struct fetch_error *e)
{
        bool any_left = false;

        for (size_t i = 0; i < m->n; i++) {
                uint64_t now;
                int r;

                if (m->ruled_out[i])
                        continue;
                if (o->cancel && *o->cancel)
                        return -ECANCELED;
                if (attempts_used_up(o, e))
                        return *last_error;
                now = monotonic_ms();
                /* An attempt with only a few milliseconds left can only time out, and its
                 * "timed out" would hide why the attempts before it failed. */
                if (now >= deadline || (e->attempts > 0 && deadline - now < FETCH_ATTEMPT_MIN_MS)) {
                        e->deadline_reached = true;
                        return *last_error;
                }
                r = attempt(o, req, m->urls[i], (enum mirror_kind)mirror_kind(m->urls[i]),
                            deadline - now, ret_body, e);
                if (r >= 0)
                        return 0;
                *last_error = r;
                if (o->on_attempt)
                        o->on_attempt(e, r, o->userdata);
                if (r == -ENOMEM)
                        return r;
                if (error_rules_out_mirror(r) ||
                    (o->endpoint_optional && endpoint_missing(e->http_status)))
                        m->ruled_out[i] = true;
                else
                        any_left = true;
        }
        if (!any_left && e->attempts == 0) {
                (void)snprintf(e->message, sizeof(e->message),
                               "no http:// or https:// mirror to send to");
                return -EPROTONOSUPPORT;
        }
        return any_left ? 1 : *last_error;
}

/* Rounds over the mirrors, with backoff sleeps between them, until a body arrives, the
 * attempts are used up or the deadline would be passed. */
static int request_rounds(const struct fetch_options *o, const struct request *req,
                          struct mirrors *m, struct buf *ret_body, struct fetch_error *e)
{
        uint64_t start = monotonic_ms();
        uint64_t deadline = start + MIN(o->deadline_ms, UINT64_MAX - start);
        int last_error = -ETIMEDOUT;

        for (unsigned round = 0;; round++) {
                uint64_t now, sleep_ms;
                int r;

                r = request_round(o, req, m, deadline, &last_error, ret_body, e);
                if (r <= 0)
                        return r;
                if (attempts_used_up(o, e))
                        return last_error;
                /* Sleeping past the deadline only to give up then would waste the time. */
                now = monotonic_ms();
                sleep_ms = fetch_backoff_ms(o, round, randombytes_random());
                if (now >= deadline || sleep_ms + FETCH_ATTEMPT_MIN_MS >= deadline - now) {
                        e->deadline_reached = true;
                        return last_error;
                }
                /* In slices, so that a cancellation is seen within 100 ms. */
                for (uint64_t until = now + sleep_ms; monotonic_ms() < until;) {
                        if (o->cancel && *o->cancel)
                                return -ECANCELED;
                        sleep_until_monotonic_ms(MIN(until, monotonic_ms() + 100));
                }
        }
}

static int fetch_request(const struct fetch_options *o, const char *path, const struct request *req,
                         char **ret_data, size_t *ret_size, struct fetch_error *ret_error)
{
        struct fetch_error e = {};
        struct mirrors m = {};
        struct buf body;
        int r;

        r = mirrors_prepare(o, path, req, &m, &e);
        if (r >= 0)
                r = request_rounds(o, req, &m, &body, &e);
        if (r >= 0 && e.not_modified) {
                buf_free(&body);
                r = FETCH_NOT_MODIFIED;
                if (ret_data) {
                        *ret_data = NULL;
                        *ret_size = 0;
                }
        } else if (r >= 0) {
                r = 0;
                if (ret_data) {
                        *ret_data = buf_steal(&body, ret_size);
                        if (!*ret_data)
                                r = -ENOMEM;
                } else
                        buf_free(&body);
        }
        mirrors_done(&m);
        if (ret_error)
                *ret_error = e;
        return r;
}

int fetch_get(const struct fetch_options *o, const char *path, char **ret_data, size_t *ret_size,
              struct fetch_error *ret_error)
{
        const struct request req = {.post = false};

        if (!ret_data) {
                if (ret_error)
                        *ret_error = (struct fetch_error){};
                return -EINVAL;
        }
        return fetch_request(o, path, &req, ret_data, ret_size, ret_error);
}

int fetch_post_json(const struct fetch_options *o, const char *path, const char *body,
                    size_t body_size, char **ret_response, size_t *ret_response_size,
                    struct fetch_error *ret_error)
{
        const struct request req = {.post = true, .body = body, .body_size = body_size};

        if (!body && body_size > 0) {
                if (ret_error)
                        *ret_error = (struct fetch_error){};
                return -EINVAL;
        }
        return fetch_request(o, path, &req, ret_response, ret_response_size, ret_error);
}
