/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fileio.h"
#include "log.h"
#include "machine_id.h"
#include "devicekey.h"
#include "report.h"
#include "signedjson.h"
#include "util.h"

#define REPORT_SEQ_FILE "seq"
#define REPORT_SEQ_LOCK "seq.lock"
#define REPORT_SEND_LOCK "send.lock"
#define REPORT_BAD_DIR "bad"
#define REPORT_SEQ_DIGITS 20
#define REPORT_NAME_SUFFIX ".json"
/* "NNNNNNNNNNNNNNNNNNNN.json" */
#define REPORT_NAME_MAX (REPORT_SEQ_DIGITS + sizeof(REPORT_NAME_SUFFIX))
/* A listing of more files than this is refused (-E2BIG): the spool never holds more than
 * REPORT_SPOOL_MAX + 1 unless someone put files there by hand. */
#define REPORT_LIST_MAX (4 * REPORT_SPOOL_MAX)
#define REPORT_SEQ_FILE_MAX 64
#define REPORT_PATH_MAX 256

static const char *const phase_names[_REPORT_PHASE_MAX] = {
        [REPORT_PHASE_IDENTIFY] = "identify",
        [REPORT_PHASE_ENROLL] = "enroll",
        [REPORT_PHASE_FETCH] = "fetch",
        [REPORT_PHASE_VERIFY] = "verify",
        [REPORT_PHASE_PLAN] = "plan",
        [REPORT_PHASE_BUILDERS] = "builders",
        [REPORT_PHASE_WRITE] = "write",
        [REPORT_PHASE_REBUILD] = "rebuild",
        [REPORT_PHASE_REPORT] = "report",
        [REPORT_PHASE_DONE] = "done",
};

static const char *const status_names[_REPORT_STATUS_MAX] = {
        [REPORT_STATUS_STARTED] = "started",
        [REPORT_STATUS_PROGRESS] = "progress",
        [REPORT_STATUS_OK] = "ok",
        [REPORT_STATUS_FAILED] = "failed",
};

const char *report_phase_to_string(enum report_phase phase)
{
        return (unsigned)phase < _REPORT_PHASE_MAX ? phase_names[phase] : NULL;
}

int report_phase_from_string(const char *s)
{
        for (size_t i = 0; s && i < _REPORT_PHASE_MAX; i++)
                if (streq(s, phase_names[i]))
                        return (int)i;
        return -EINVAL;
}

const char *report_status_to_string(enum report_status status)
{
        return (unsigned)status < _REPORT_STATUS_MAX ? status_names[status] : NULL;
}

int report_status_from_string(const char *s)
{
        for (size_t i = 0; s && i < _REPORT_STATUS_MAX; i++)
                if (streq(s, status_names[i]))
                        return (int)i;
        return -EINVAL;
}

/* A JSON string of at most max bytes of s: its start, or with keep_end its end (beginning at a
 * character). Invalid UTF-8 becomes U+FFFD, so a cut or a binary byte never loses the report. */
static json_t *json_text(const char *s, size_t max, bool keep_end)
{
        const unsigned char *p = (const unsigned char *)s;
        struct buf b = BUF_INIT(3 * max + 1);
        size_t n = strlen(s);
        json_t *json;

        if (n > max) {
                if (keep_end) {
                        p += n - max;
                        n = max;
                        while (n > 0 && (*p & 0xc0) == 0x80) {
                                p++;
                                n--;
                        }
                } else {
                        n = max;
                        while (n > 0 && (p[n] & 0xc0) == 0x80)
                                n--;
                }
        }
        for (size_t i = 0; i < n;) {
                size_t len = utf8_next((const char *)p + i, n - i, NULL);

                if (len == 0) {
                        if (buf_append(&b, "\xef\xbf\xbd", 3) < 0)
                                goto fail;
                        i++;
                } else {
                        if (buf_append(&b, p + i, len) < 0)
                                goto fail;
                        i += len;
                }
        }
        json = json_stringn(b.data ? b.data : "", b.size);
        buf_free(&b);
        return json;
fail:
        buf_free(&b);
        return NULL;
}

static json_t *json_u64(uint64_t v)
{
        return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* jansson.h defines json_decrefp() for its json_auto_t. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* json_object_set_new() steals value even on failure; NULL (out of memory) fails. */
static int set(json_t *object, const char *key, json_t *value)
{
        if (!value)
                return -ENOMEM;
        return json_object_set_new(object, key, value) < 0 ? -ENOMEM : 0;
}

int report_to_json(const struct report *r, const char *machine_id, uint64_t seq, int64_t time,
                   char **ret_json, size_t *ret_size)
{
        _cleanup_json_ json_t *o = NULL;
        _cleanup_free_ char *dump = NULL;
        const char *phase, *status;
        size_t size;
        int k;

        if (!r || !ret_json || !machine_id_is_canonical(machine_id) || time < 0)
                return -EINVAL;
        phase = report_phase_to_string(r->phase);
        status = report_status_to_string(r->status);
        if (!phase || !status || r->n_timings > REPORT_TIMINGS_MAX ||
            (r->n_timings > 0 && !r->timings))
                return -EINVAL;
        if (seq > (uint64_t)INT64_MAX || (r->has_serial && r->serial > (uint64_t)INT64_MAX))
                return -EOVERFLOW;

        o = json_object();
        if (!o)
                return -ENOMEM;
        if ((k = set(o, "machine_id", json_string(machine_id))) < 0 ||
            (k = set(o, "seq", json_u64(seq))) < 0 ||
            (k = set(o, "time", json_integer((json_int_t)time))) < 0 ||
            (k = set(o, "phase", json_string(phase))) < 0 ||
            (k = set(o, "status", json_string(status))) < 0)
                return k;
        if (r->has_serial && (k = set(o, "serial", json_u64(r->serial))) < 0)
                return k;
        if (r->message &&
            (k = set(o, "message", json_text(r->message, REPORT_MESSAGE_MAX, false))) < 0)
                return k;
        if (r->error && (k = set(o, "error", json_text(r->error, REPORT_ERROR_MAX, false))) < 0)
                return k;
        if (r->counts) {
                json_t *c = json_object();

                if ((k = set(o, "counts", c)) < 0 ||
                    (k = set(c, "substituted", json_u64(r->counts->substituted))) < 0 ||
                    (k = set(c, "built", json_u64(r->counts->built_local))) < 0 ||
                    (k = set(c, "built_remote", json_u64(r->counts->built_remote))) < 0 ||
                    (k = set(c, "downloaded_bytes", json_u64(r->counts->downloaded_bytes))) < 0)
                        return k;
        }
        if (r->n_timings > 0) {
                json_t *t = json_object();

                if ((k = set(o, "timings", t)) < 0)
                        return k;
                for (size_t i = 0; i < r->n_timings; i++) {
                        const char *name = report_phase_to_string(r->timings[i].phase);

                        if (!name)
                                return -EINVAL;
                        if ((k = set(t, name, json_u64(r->timings[i].ms))) < 0)
                                return k;
                }
        }
        if (r->log_tail &&
            (k = set(o, "log_tail", json_text(r->log_tail, REPORT_LOG_TAIL_MAX, true))) < 0)
                return k;

        dump = json_dumps(o, JSON_COMPACT);
        if (!dump)
                return -ENOMEM;
        size = strlen(dump);
        if (size > REPORT_BODY_MAX)
                return -E2BIG;
        if (ret_size)
                *ret_size = size;
        *ret_json = TAKE_PTR(dump);
        return 0;
}

struct report_spool {
        char *dir;
        int dir_fd;
        char machine_id[33];
        const struct fetch_options *send_options;
        char *path;
        uint64_t emit_deadline_ms;
        report_sign_fn sign;
        void *sign_userdata;
        bool send_failed; /* since the last report_flush(): emits only spool */
        bool spool_only;  /* report_set_send_on_emit(false) */
        /* Sequence numbers reserved in the seq file for this handle: [next, end). */
        uint64_t reserved_next;
        uint64_t reserved_end;
        struct report_stats stats;
        struct fetch_error last_error;
};

static char *spool_path(const struct report_spool *s, const char *name)
{
        char *p;

        return asprintf(&p, "%s/%s", s->dir, name) < 0 ? NULL : p;
}

static void report_name(uint64_t seq, char name[static REPORT_NAME_MAX])
{
        (void)snprintf(name, REPORT_NAME_MAX, "%020" PRIu64 REPORT_NAME_SUFFIX, seq);
}

/* "NNNNNNNNNNNNNNNNNNNN.json" (exactly) -> seq; temporary files and the rest do not match. */
static bool report_name_parse(const char *name, uint64_t *ret_seq)
{
        uint64_t v = 0;

        if (strlen(name) != REPORT_NAME_MAX - 1 ||
            !streq(name + REPORT_SEQ_DIGITS, REPORT_NAME_SUFFIX))
                return false;
        for (size_t i = 0; i < REPORT_SEQ_DIGITS; i++) {
                unsigned d = (unsigned)(name[i] - '0');

                if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret_seq = v;
        return true;
}

static int lock_file(const struct report_spool *s, const char *name, bool wait, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;

        fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
                if (errno == EINTR)
                        continue;
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int compare_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* The seqs of the spooled reports, ascending. When remove_temporary, leftovers of interrupted
 * atomic writes ("*.tmp-XXXXXXXX") are removed; only under the seq lock, when no one writes. */
static int spool_list(const struct report_spool *s, bool remove_temporary, uint64_t **ret_seqs,
                      size_t *ret_n)
{
        _cleanup_free_ uint64_t *seqs = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;
        int fd, r = 0;

        fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        for (errno = 0; (de = readdir(d)); errno = 0) {
                uint64_t seq;

                if (remove_temporary && strstr(de->d_name, ".tmp-") && de->d_name[0] != '.') {
                        (void)unlinkat(s->dir_fd, de->d_name, 0);
                        continue;
                }
                if (!report_name_parse(de->d_name, &seq))
                        continue;
                if (n >= REPORT_LIST_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 64;
                        uint64_t *p = reallocarray(seqs, k, sizeof(*seqs));

                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        seqs = p;
                        allocated = k;
                }
                seqs[n++] = seq;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);
        if (r < 0)
                return r;
        if (n > 0)
                qsort(seqs, n, sizeof(*seqs), compare_u64);
        *ret_seqs = TAKE_PTR(seqs);
        *ret_n = n;
        return 0;
}

/* The next seq from SPOOL/seq: 0 when the file is missing. */
static int seq_file_read(const struct report_spool *s, uint64_t *ret_next)
{
        _cleanup_free_ char *path = spool_path(s, REPORT_SEQ_FILE), *data = NULL;
        size_t size;
        uint64_t v;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, REPORT_SEQ_FILE_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret_next = 0;
                return 0;
        }
        if (r == -E2BIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        if (size > 0 && data[size - 1] == '\n')
                data[--size] = '\0';
        if (strlen(data) != size || parse_u64(data, &v) < 0 || v == 0)
                return -EBADMSG;
        *ret_next = v;
        return 0;
}

static int seq_file_write(const struct report_spool *s, uint64_t next)
{
        _cleanup_free_ char *path = spool_path(s, REPORT_SEQ_FILE);
        char text[32];
        int n;

        if (!path)
                return -ENOMEM;
        n = snprintf(text, sizeof(text), "%" PRIu64 "\n", next);
        return write_file_atomic(path, text, (size_t)n, 0600, 0);
}

static int fsync_dir(const struct report_spool *s)
{
        return fsync(s->dir_fd) < 0 ? -errno : 0;
}

/* Moves a spooled file that can never be delivered to bad/, so it never blocks the queue. */
static int spool_move_aside(struct report_spool *s, uint64_t seq, const char *why)
{
        char name[REPORT_NAME_MAX], target[REPORT_NAME_MAX + sizeof(REPORT_BAD_DIR)];

        report_name(seq, name);
        (void)snprintf(target, sizeof(target), REPORT_BAD_DIR "/%s", name);
        if (mkdirat(s->dir_fd, REPORT_BAD_DIR, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Failed to create %s/" REPORT_BAD_DIR ": %m",
                                       s->dir);
        if (renameat(s->dir_fd, name, s->dir_fd, target) < 0) {
                if (errno == ENOENT) /* delivered or dropped by another process meanwhile */
                        return 0;
                return log_error_errno(-errno, "Failed to move %s/%s aside: %m", s->dir, name);
        }
        (void)fsync_dir(s);
        s->stats.bad++;
        log_warning("Spooled report %s/%s %s: moved to %s/%s.", s->dir, name, why, s->dir, target);
        return 0;
}

/* Reads a spooled report. Returns 0, -ENOENT (gone meanwhile), -EBADMSG (not a report of that
 * seq: to be moved aside, with *ret_why), or another negative errno (also moved aside: an
 * unreadable file would block the queue forever). */
static int spool_read(const struct report_spool *s, uint64_t seq, char **ret_body, size_t *ret_size,
                      json_t **ret_json, const char **ret_why)
{
        _cleanup_free_ char *path = NULL, *body = NULL;
        char name[REPORT_NAME_MAX];
        json_t *json, *v;
        size_t size;
        int r;

        report_name(seq, name);
        path = spool_path(s, name);
        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, REPORT_BODY_MAX, &body, &size);
        if (r == -ENOENT || r == -ENOMEM)
                return r;
        if (r == -E2BIG) {
                *ret_why = "is larger than a report can be";
                return -EBADMSG;
        }
        if (r < 0) {
                *ret_why = "cannot be read";
                return r;
        }
        json = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
        v = json_object_get(json, "seq");
        if (!json_is_object(json) || !json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) != seq ||
            !json_is_string(json_object_get(json, "status"))) {
                json_decref(json);
                *ret_why = "is not a report of its sequence number (truncated or corrupt)";
                return -EBADMSG;
        }
        if (ret_json)
                *ret_json = json;
        else
                json_decref(json);
        if (ret_body) {
                *ret_body = TAKE_PTR(body);
                *ret_size = size;
        }
        return 0;
}

int report_open(const char *spool_dir, const char *machine_id,
                const struct fetch_options *send_options, const char *report_path,
                struct report_spool **ret)
{
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        uint64_t next;
        size_t n;
        int r;

        if (!spool_dir || !*spool_dir || !machine_id_is_canonical(machine_id) || !ret)
                return -EINVAL;
        if (!report_path)
                report_path = REPORT_PATH_DEFAULT;
        if (report_path[0] != '/' || strlen(report_path) > REPORT_PATH_MAX)
                return -EINVAL;

        r = mkdir_parents(spool_dir, 0700);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->dir_fd = -EBADF;
        s->dir = strdup(spool_dir);
        s->path = strdup(report_path);
        if (!s->dir || !s->path)
                return -ENOMEM;
        memcpy(s->machine_id, machine_id, sizeof(s->machine_id));
        s->send_options = send_options;
        s->emit_deadline_ms = REPORT_EMIT_DEADLINE_MS_DEFAULT;
        s->dir_fd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (s->dir_fd < 0)
                return -errno;

        /* Under the seq lock no one is writing: leftovers of a crash can go, and a bad seq file
         * is found now rather than at the first emit. */
        r = lock_file(s, REPORT_SEQ_LOCK, true, &lock);
        if (r < 0)
                return r;
        r = seq_file_read(s, &next);
        if (r < 0)
                return r;
        r = spool_list(s, true, &seqs, &n);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

/* Gives back the numbers of this handle's block it did not use, so that runs one after the other
 * number their reports without gaps. Safe whether or not the write reaches the disk: the file
 * then says either the block's end or the first unused number, and nothing above that was
 * handed out. */
static void seq_give_back(struct report_spool *s)
{
        _cleanup_close_ int lock = -EBADF;
        uint64_t next;

        if (s->reserved_next >= s->reserved_end)
                return;
        if (lock_file(s, REPORT_SEQ_LOCK, true, &lock) < 0)
                return;
        if (seq_file_read(s, &next) < 0 || next != s->reserved_end)
                return; /* another handle reserved after us: leave the gap */
        (void)seq_file_write(s, s->reserved_next);
}

struct report_spool *report_close(struct report_spool *s)
{
        if (!s)
                return NULL;
        seq_give_back(s);
        safe_close(s->dir_fd);
        free(s->dir);
        free(s->path);
        free(s);
        return NULL;
}

void report_set_send_on_emit(struct report_spool *s, bool send)
{
        s->spool_only = !send;
}

void report_set_emit_deadline(struct report_spool *s, uint64_t deadline_ms)
{
        s->emit_deadline_ms = deadline_ms ? deadline_ms : REPORT_EMIT_DEADLINE_MS_DEFAULT;
}

int report_sign_device(const char *body, size_t size, char **ret_body, size_t *ret_size,
                       void *userdata)
{
        const struct devicekey *key = userdata;

        if (!key)
                return -EINVAL;
        return signedjson_sign(SIGNEDJSON_CONTEXT_REPORT, body, size, key->sign_secret, ret_body,
                               ret_size);
}

void report_set_signer(struct report_spool *s, report_sign_fn sign, void *userdata)
{
        s->sign = sign;
        s->sign_userdata = userdata;
}

const struct fetch_error *report_last_error(const struct report_spool *s)
{
        return &s->last_error;
}

const struct report_stats *report_stats(const struct report_spool *s)
{
        return &s->stats;
}

int report_pending(struct report_spool *s, unsigned *ret_pending)
{
        _cleanup_free_ uint64_t *seqs = NULL;
        size_t n;
        int r;

        r = spool_list(s, false, &seqs, &n);
        if (r < 0)
                return r;
        *ret_pending = (unsigned)n;
        return 0;
}

/* Called with the seq lock held, after the report newest was spooled: drops the oldest
 * reports of status "progress", then "started", until at most REPORT_SPOOL_MAX are left.
 * Returns 0, or -ENOSPC when only final reports are left over the limit. */
static int spool_trim(struct report_spool *s, uint64_t *seqs, size_t n)
{
        static const char *const droppable[] = {"progress", "started"};
        size_t over = n > REPORT_SPOOL_MAX ? n - REPORT_SPOOL_MAX : 0;

        for (size_t t = 0; t < ELEMENTSOF(droppable) && over > 0; t++)
                for (size_t i = 0; i < n && over > 0; i++) {
                        _cleanup_json_ json_t *json = NULL;
                        char name[REPORT_NAME_MAX];
                        const char *why = NULL;
                        int r;

                        if (seqs[i] == 0) /* already gone */
                                continue;
                        r = spool_read(s, seqs[i], NULL, NULL, &json, &why);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                if (r != -ENOENT && spool_move_aside(s, seqs[i], why) < 0)
                                        continue;
                                seqs[i] = 0;
                                over--;
                                continue;
                        }
                        if (!streq(json_string_value(json_object_get(json, "status")),
                                   droppable[t]))
                                continue;
                        report_name(seqs[i], name);
                        if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
                                return -errno;
                        (void)fsync_dir(s);
                        seqs[i] = 0;
                        over--;
                        s->stats.dropped++;
                        log_warning("Report spool %s is full (%d reports): dropped %s report %s, "
                                    "the oldest of its kind.",
                                    s->dir, REPORT_SPOOL_MAX, droppable[t], name);
                }
        return over > 0 ? -ENOSPC : 0;
}

/* Whether a failed send means the report can never be accepted (then it goes to bad/). */
static bool send_error_is_permanent(int r, const struct fetch_error *e)
{
        /* 400: malformed; 401: unsigned, or signed by a key the server does not hold for this
         * machine; 409: the server has another report under this number. 403 (not enrolled
         * yet, or revoked) is not final: the reports wait for the operator. */
        return r == -E2BIG ||
               (r == -EACCES && (e->http_status == 400 || e->http_status == 401 ||
                                 e->http_status == 409));
}

/* Delivers the spool in seq order within deadline_ms. With wait false, returns -EBUSY at once
 * when another process is delivering. */
static int spool_deliver(struct report_spool *s, uint64_t deadline_ms, bool wait,
                         unsigned *ret_sent)
{
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        struct fetch_options o;
        uint64_t deadline;
        unsigned sent = 0;
        size_t n;
        int r;

        *ret_sent = 0;
        s->last_error = (struct fetch_error){};
        if (!s->send_options)
                return -ENOMEDIUM;
        o = *s->send_options;
        /* A static mirror among the servers takes no reports: asked once, not until the
         * deadline. */
        o.endpoint_optional = true;
        if (deadline_ms == 0)
                deadline_ms = o.deadline_ms;
        deadline = monotonic_ms() + deadline_ms;

        r = lock_file(s, REPORT_SEND_LOCK, wait, &lock);
        if (r < 0)
                return r;
        r = spool_list(s, false, &seqs, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *body = NULL, *response = NULL;
                _cleanup_json_ json_t *answer = NULL;
                char name[REPORT_NAME_MAX];
                const char *why = NULL;
                struct fetch_error e;
                uint64_t now;
                size_t size, response_size;

                r = spool_read(s, seqs[i], &body, &size, NULL, &why);
                if (r == -ENOENT)
                        continue;
                if (r == -ENOMEM)
                        goto out;
                if (r < 0) {
                        r = spool_move_aside(s, seqs[i], why);
                        if (r < 0)
                                goto out;
                        continue;
                }

                now = monotonic_ms();
                if (now >= deadline) {
                        s->last_error = (struct fetch_error){.deadline_reached = true};
                        (void)snprintf(
                            s->last_error.message, sizeof(s->last_error.message),
                            "the deadline passed before report %" PRIu64 " could be sent", seqs[i]);
                        r = -ETIMEDOUT;
                        goto out;
                }
                o.deadline_ms = deadline - now;
                r = fetch_post_json(&o, s->path, body, size, &response, &response_size, &e);
                if (r < 0) {
                        if (send_error_is_permanent(r, &e)) {
                                log_warning("The server refused report %" PRIu64 " for good "
                                            "(%s: %s).",
                                            seqs[i], e.url, e.message);
                                r = spool_move_aside(s, seqs[i], "was refused by the server");
                                if (r < 0)
                                        goto out;
                                continue;
                        }
                        s->last_error = e;
                        goto out;
                }

                answer = json_loadb(response, response_size, 0, NULL);
                if (json_is_true(json_object_get(answer, "duplicate")))
                        s->stats.duplicates++;
                report_name(seqs[i], name);
                if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT) {
                        r = log_error_errno(-errno, "Failed to remove delivered report %s/%s: %m",
                                            s->dir, name);
                        goto out;
                }
                r = fsync_dir(s);
                if (r < 0)
                        goto out;
                sent++;
                s->stats.sent++;
        }
        r = 0;
out:
        *ret_sent = sent;
        return r;
}

int report_emit(struct report_spool *s, const struct report *report, uint64_t *ret_seq)
{
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        _cleanup_free_ char *json = NULL, *path = NULL;
        char name[REPORT_NAME_MAX];
        struct timespec ts;
        uint64_t seq;
        unsigned sent;
        size_t size, n;
        int r;

        if (!s || !report)
                return -EINVAL;

        r = lock_file(s, REPORT_SEQ_LOCK, true, &lock);
        if (r < 0)
                return r;
        r = spool_list(s, false, &seqs, &n);
        if (r < 0)
                return r;
        if (s->reserved_next < s->reserved_end) {
                /* Inside the block this handle reserved, the next number is ours alone. */
                seq = s->reserved_next;
        } else {
                /* The seq file says which seq is next (after any block reserved by another
                 * handle); a spooled report above it (the file lost) still wins, so a seq is
                 * never handed out twice. */
                r = seq_file_read(s, &seq);
                if (r < 0)
                        return r;
        }
        if (n > 0 && seqs[n - 1] >= seq)
                seq = seqs[n - 1] + 1;
        if (seq == 0)
                seq = 1;
        if (seq >= (uint64_t)INT64_MAX)
                return -EOVERFLOW;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        r = report_to_json(report, s->machine_id, seq, ts.tv_sec < 0 ? 0 : (int64_t)ts.tv_sec,
                           &json, &size);
        if (r < 0)
                return r;
        if (s->sign) {
                _cleanup_free_ char *signed_json = NULL;
                size_t signed_size = 0;

                r = s->sign(json, size, &signed_json, &signed_size, s->sign_userdata);
                if (r < 0)
                        return r;
                if (!signed_json || signed_size > REPORT_BODY_MAX)
                        return -E2BIG;
                free(json);
                json = TAKE_PTR(signed_json);
                size = signed_size;
        }

        /* The seq is used up first: a crash after this leaves a gap, never a reused number. A
         * block is reserved at once, so a run writes the seq file once, not once a report. */
        if (seq >= s->reserved_end || seq < s->reserved_next) {
                r = seq_file_write(s, seq + REPORT_SEQ_BLOCK);
                if (r < 0)
                        return r;
                s->reserved_end = seq + REPORT_SEQ_BLOCK;
        }
        s->reserved_next = seq + 1;
        report_name(seq, name);
        path = spool_path(s, name);
        if (!path)
                return -ENOMEM;
        r = write_file_atomic(path, json, size, 0600, WRITE_FILE_EXCLUSIVE);
        if (r < 0)
                return r;
        s->stats.spooled++;

        if (n + 1 > REPORT_SPOOL_MAX) {
                uint64_t *p = reallocarray(seqs, n + 1, sizeof(*seqs));

                if (!p)
                        return -ENOMEM;
                seqs = p;
                seqs[n++] = seq;
                r = spool_trim(s, seqs, n);
                if (r == -ENOSPC) {
                        /* Only final reports are left: this one cannot be kept either. */
                        (void)unlinkat(s->dir_fd, name, 0);
                        (void)fsync_dir(s);
                        s->stats.spooled--;
                        log_error("Report spool %s is full of final reports (%d): report %" PRIu64
                                  " is not spooled.",
                                  s->dir, REPORT_SPOOL_MAX, seq);
                        return r;
                }
                if (r < 0)
                        return r;
        }
        lock = safe_close(lock);

        if (ret_seq)
                *ret_seq = seq;

        if (s->send_options && !s->send_failed && !s->spool_only) {
                r = spool_deliver(s, s->emit_deadline_ms, false, &sent);
                if (r < 0 && r != -EBUSY) {
                        s->send_failed = true;
                        s->stats.send_failures++;
                }
        }
        return 0;
}

int report_flush(struct report_spool *s, uint64_t deadline_ms, unsigned *ret_sent,
                 unsigned *ret_pending)
{
        unsigned sent = 0, pending = 0;
        int r, k;

        s->send_failed = false;
        r = spool_deliver(s, deadline_ms, true, &sent);
        if (r < 0 && r != -ENOMEDIUM)
                s->stats.send_failures++;
        k = report_pending(s, &pending);
        if (r >= 0 && k < 0)
                r = k;
        if (r < 0 && r != -ENOMEDIUM)
                s->send_failed = true;
        if (ret_sent)
                *ret_sent = sent;
        if (ret_pending)
                *ret_pending = pending;
        return r;
}
