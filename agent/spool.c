/* SPDX-License-Identifier: MIT */
/* The report spool (spool.h): the directory, its sequence numbers and locks, trimming, bad/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "devicekey.h"
#include "fileio.h"
#include "json_schema.h"
#include "machine_id.h"
#include "signedjson.h"
#include "spool.h"
#include "util.h"

#define SPOOL_SEQ_FILE "seq"
#define SPOOL_SEQ_LOCK "seq.lock"
#define SPOOL_SEND_LOCK "send.lock"
#define SPOOL_BAD_DIR "bad"
#define SPOOL_SEQ_DIGITS 20
#define SPOOL_NAME_SUFFIX ".json"
/* A listing of more files than this is refused (-E2BIG): the spool never holds more than
 * REPORT_SPOOL_MAX + 1 unless someone put files there by hand. */
#define SPOOL_LIST_MAX (4 * REPORT_SPOOL_MAX)
#define SPOOL_SEQ_FILE_MAX 64

_Static_assert(SPOOL_NAME_MAX == SPOOL_SEQ_DIGITS + sizeof(SPOOL_NAME_SUFFIX),
               "a spool file name is the zero-padded seq and .json");

/* jansson.h defines json_decrefp() for its json_auto_t. */
#define _cleanup_json_ _cleanup_(json_decrefp)

struct spool {
        char *dir;
        int dir_fd;
        char machine_id[33];
        report_sign_fn sign;
        void *sign_userdata;
        /* Sequence numbers reserved in the seq file for this handle: [next, end). */
        uint64_t reserved_next;
        uint64_t reserved_end;
        struct report_outcome *outcome; /* borrowed */
};

void report_outcome_add(struct report_outcome *o, enum report_event_kind kind, uint64_t seq,
                        int error, const char *why, const char *detail)
{
        struct report_event *e;

        if (o->n_events >= REPORT_EVENTS_MAX) {
                o->events_lost++;
                return;
        }
        e = &o->events[o->n_events++];
        *e = (struct report_event){.kind = kind, .seq = seq, .error = error, .why = why};
        if (detail)
                (void)snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

void report_outcome_clear_events(struct report_outcome *o)
{
        o->n_events = 0;
        o->events_lost = 0;
}

void spool_file_name(uint64_t seq, char name[static SPOOL_NAME_MAX])
{
        (void)snprintf(name, SPOOL_NAME_MAX, "%020" PRIu64 SPOOL_NAME_SUFFIX, seq);
}

static char *spool_path(const struct spool *s, const char *name)
{
        char *p;

        return asprintf(&p, "%s/%s", s->dir, name) < 0 ? NULL : p;
}

/* "NNNNNNNNNNNNNNNNNNNN.json" (exactly) -> seq; temporary files and the rest do not match. */
static bool spool_name_parse(const char *name, uint64_t *ret_seq)
{
        uint64_t v = 0;

        if (strlen(name) != SPOOL_NAME_MAX - 1 ||
            !streq(name + SPOOL_SEQ_DIGITS, SPOOL_NAME_SUFFIX))
                return false;
        for (size_t i = 0; i < SPOOL_SEQ_DIGITS; i++) {
                unsigned d = (unsigned)(name[i] - '0');

                if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret_seq = v;
        return true;
}

static int lock_file(const struct spool *s, const char *name, bool wait, int *ret_fd)
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

int spool_lock_delivery(struct spool *s, bool wait, int *ret_fd)
{
        return lock_file(s, SPOOL_SEND_LOCK, wait, ret_fd);
}

static int compare_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static int seqs_push(uint64_t **seqs, size_t *n, size_t *allocated, uint64_t seq)
{
        if (*n >= SPOOL_LIST_MAX)
                return -E2BIG;
        if (*n == *allocated) {
                size_t k = *allocated ? *allocated * 2 : 64;
                uint64_t *p = reallocarray(*seqs, k, sizeof(**seqs));

                if (!p)
                        return -ENOMEM;
                *seqs = p;
                *allocated = k;
        }
        (*seqs)[(*n)++] = seq;
        return 0;
}

/* The seqs of the spooled reports, ascending. When remove_temporary, leftovers of interrupted
 * atomic writes (is_temporary_name()) are removed; only under the seq lock, when no one writes. */
static int list_seqs(const struct spool *s, bool remove_temporary, uint64_t **ret_seqs,
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
        for (errno = 0; r == 0 && (de = readdir(d)); errno = 0) {
                uint64_t seq;

                if (remove_temporary && is_temporary_name(de->d_name))
                        (void)unlinkat(s->dir_fd, de->d_name, 0);
                else if (spool_name_parse(de->d_name, &seq))
                        r = seqs_push(&seqs, &n, &allocated, seq);
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

int spool_list(struct spool *s, uint64_t **ret_seqs, size_t *ret_n)
{
        return list_seqs(s, false, ret_seqs, ret_n);
}

int spool_pending(struct spool *s, unsigned *ret_pending)
{
        _cleanup_free_ uint64_t *seqs = NULL;
        size_t n;
        int r;

        r = list_seqs(s, false, &seqs, &n);
        if (r < 0)
                return r;
        *ret_pending = (unsigned)n;
        return 0;
}

/* The next seq from SPOOL/seq: 0 when the file is missing. */
static int seq_file_read(const struct spool *s, uint64_t *ret_next)
{
        _cleanup_free_ char *path = spool_path(s, SPOOL_SEQ_FILE), *data = NULL;
        size_t size;
        uint64_t v;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, SPOOL_SEQ_FILE_MAX, &data, &size);
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

static int seq_file_write(const struct spool *s, uint64_t next)
{
        _cleanup_free_ char *path = spool_path(s, SPOOL_SEQ_FILE);
        char text[32];
        int n;

        if (!path)
                return -ENOMEM;
        n = snprintf(text, sizeof(text), "%" PRIu64 "\n", next);
        return write_file_atomic(path, text, (size_t)n, 0600, 0);
}

static int fsync_dir(const struct spool *s)
{
        return fsync(s->dir_fd) < 0 ? -errno : 0;
}

int spool_move_aside(struct spool *s, uint64_t seq, const char *why)
{
        char name[SPOOL_NAME_MAX], target[SPOOL_NAME_MAX + sizeof(SPOOL_BAD_DIR)];

        spool_file_name(seq, name);
        (void)snprintf(target, sizeof(target), SPOOL_BAD_DIR "/%s", name);
        if (mkdirat(s->dir_fd, SPOOL_BAD_DIR, 0700) < 0 && errno != EEXIST) {
                int r = -errno;

                report_outcome_add(s->outcome, REPORT_EVENT_BAD_DIR_FAILED, seq, r, NULL, NULL);
                return r;
        }
        if (renameat(s->dir_fd, name, s->dir_fd, target) < 0) {
                int r = -errno;

                if (r == -ENOENT) /* delivered or dropped by another process meanwhile */
                        return 0;
                report_outcome_add(s->outcome, REPORT_EVENT_MOVE_FAILED, seq, r, NULL, NULL);
                return r;
        }
        (void)fsync_dir(s);
        s->outcome->stats.bad++;
        report_outcome_add(s->outcome, REPORT_EVENT_MOVED_ASIDE, seq, 0, why, NULL);
        return 0;
}

int spool_remove(struct spool *s, uint64_t seq)
{
        char name[SPOOL_NAME_MAX];

        spool_file_name(seq, name);
        if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT) {
                int r = -errno;

                report_outcome_add(s->outcome, REPORT_EVENT_REMOVE_FAILED, seq, r, NULL, NULL);
                return r;
        }
        return fsync_dir(s);
}

/* What the spool itself reads of a spooled report; the rest is the server's to check. */
struct spooled_head {
        int64_t seq;
        const char *status;
};

static const struct json_schema_field spooled_fields[] = {
    {.key = "seq",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .max = INT64_MAX,
     .offset = offsetof(struct spooled_head, seq)},
    {.key = "status",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .offset = offsetof(struct spooled_head, status)},
};

/* Reads a spooled report, parsed too when ret_json. Returns 0, -ENOENT (gone meanwhile),
 * -EBADMSG (not a report of that seq: to be moved aside, with *ret_why), or another negative
 * errno (also moved aside: an unreadable file would block the queue forever). */
static int read_report(const struct spool *s, uint64_t seq, char **ret_body, size_t *ret_size,
                       json_t **ret_json, const char **ret_why)
{
        _cleanup_free_ char *path = NULL, *body = NULL;
        char name[SPOOL_NAME_MAX], problem[JSON_SCHEMA_PROBLEM_MAX];
        struct spooled_head head;
        json_t *json;
        size_t size;
        int r;

        spool_file_name(seq, name);
        path = spool_path(s, name);
        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, REPORT_BODY_MAX, &body, &size);
        if (r == -ENOENT || r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_why = r == -E2BIG ? "is larger than a report can be" : "cannot be read";
                return r == -E2BIG ? -EBADMSG : r;
        }
        json = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json ||
            json_schema_parse(json, spooled_fields, ELEMENTSOF(spooled_fields),
                              JSON_SCHEMA_ALLOW_UNKNOWN, &head, sizeof(head), problem) < 0 ||
            (uint64_t)head.seq != seq) {
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

int spool_read(struct spool *s, uint64_t seq, char **ret_body, size_t *ret_size)
{
        const char *why = NULL;
        int r;

        r = read_report(s, seq, ret_body, ret_size, NULL, &why);
        if (r >= 0 || r == -ENOENT || r == -ENOMEM)
                return r;
        r = spool_move_aside(s, seq, why);
        return r < 0 ? r : -EBADMSG;
}

int spool_open(const char *dir, const char *machine_id, struct report_outcome *outcome,
               struct spool **ret)
{
        _cleanup_(spool_freep) struct spool *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        uint64_t next;
        size_t n;
        int r;

        if (!dir || !*dir || !machine_id_is_canonical(machine_id) || !outcome || !ret)
                return -EINVAL;
        r = mkdir_parents(dir, 0700);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->dir_fd = -EBADF;
        s->outcome = outcome;
        s->dir = strdup(dir);
        if (!s->dir)
                return -ENOMEM;
        memcpy(s->machine_id, machine_id, sizeof(s->machine_id));
        s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (s->dir_fd < 0)
                return -errno;

        /* Under the seq lock no one is writing: leftovers of a crash can go, and a bad seq file
         * is found now rather than at the first emit. */
        r = lock_file(s, SPOOL_SEQ_LOCK, true, &lock);
        if (r < 0)
                return r;
        r = seq_file_read(s, &next);
        if (r < 0)
                return r;
        r = list_seqs(s, true, &seqs, &n);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

/* Gives back the numbers of this handle's block it did not use, so that runs one after the other
 * number their reports without gaps. Safe whether or not the write reaches the disk: the file
 * then says either the block's end or the first unused number, and nothing above that was
 * handed out. */
static void seq_give_back(struct spool *s)
{
        _cleanup_close_ int lock = -EBADF;
        uint64_t next;

        if (s->reserved_next >= s->reserved_end)
                return;
        if (lock_file(s, SPOOL_SEQ_LOCK, true, &lock) < 0)
                return;
        if (seq_file_read(s, &next) < 0 || next != s->reserved_end)
                return; /* another handle reserved after us: leave the gap */
        (void)seq_file_write(s, s->reserved_next);
}

struct spool *spool_close(struct spool *s)
{
        if (!s)
                return NULL;
        if (s->dir_fd >= 0)
                seq_give_back(s);
        safe_close(s->dir_fd);
        free(s->dir);
        free(s);
        return NULL;
}

const char *spool_dir(const struct spool *s)
{
        return s->dir;
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

void spool_set_signer(struct spool *s, report_sign_fn sign, void *userdata)
{
        s->sign = sign;
        s->sign_userdata = userdata;
}

/* Drops one spooled report seqs[i] if its status is droppable; a file that is not a report
 * goes to bad/. Returns 1 when the report is gone, 0 when it stays, or a negative errno. */
static int trim_one(struct spool *s, uint64_t *seqs, size_t i, const char *droppable)
{
        _cleanup_json_ json_t *json = NULL;
        char name[SPOOL_NAME_MAX];
        const char *why = NULL;
        int r;

        r = read_report(s, seqs[i], NULL, NULL, &json, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (r != -ENOENT && spool_move_aside(s, seqs[i], why) < 0)
                        return 0;
                seqs[i] = 0;
                return 1;
        }
        if (!streq(json_string_value(json_object_get(json, "status")), droppable))
                return 0;
        spool_file_name(seqs[i], name);
        if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        (void)fsync_dir(s);
        s->outcome->stats.dropped++;
        report_outcome_add(s->outcome, REPORT_EVENT_DROPPED, seqs[i], 0, droppable, NULL);
        seqs[i] = 0;
        return 1;
}

/* Called with the seq lock held, after the newest report was spooled: drops the oldest
 * reports of status "progress", then "started", until at most REPORT_SPOOL_MAX are left.
 * Returns 0, or -ENOSPC when only final reports are left over the limit. */
static int spool_trim(struct spool *s, uint64_t *seqs, size_t n)
{
        static const char *const droppable[] = {"progress", "started"};
        size_t over = n > REPORT_SPOOL_MAX ? n - REPORT_SPOOL_MAX : 0;

        for (size_t t = 0; t < ELEMENTSOF(droppable) && over > 0; t++)
                for (size_t i = 0; i < n && over > 0; i++) {
                        int r;

                        if (seqs[i] == 0) /* already gone */
                                continue;
                        r = trim_one(s, seqs, i, droppable[t]);
                        if (r < 0)
                                return r;
                        over -= (size_t)r;
                }
        return over > 0 ? -ENOSPC : 0;
}

/* The seq the next report gets, under the seq lock, given the spooled seqs[n]. */
static int seq_next(struct spool *s, const uint64_t *seqs, size_t n, uint64_t *ret_seq)
{
        uint64_t seq;
        int r;

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
        *ret_seq = seq;
        return 0;
}

/* The body of report r under seq, signed when the spool has a signer. */
static int report_body(struct spool *s, const struct report *report, uint64_t seq, char **ret_body,
                       size_t *ret_size)
{
        _cleanup_free_ char *json = NULL, *signed_json = NULL;
        struct timespec ts;
        size_t size, signed_size = 0;
        int r;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        r = report_to_json(report, s->machine_id, seq, ts.tv_sec < 0 ? 0 : (int64_t)ts.tv_sec,
                           &json, &size);
        if (r < 0)
                return r;
        if (!s->sign) {
                *ret_body = TAKE_PTR(json);
                *ret_size = size;
                return 0;
        }
        r = s->sign(json, size, &signed_json, &signed_size, s->sign_userdata);
        if (r < 0)
                return r;
        if (!signed_json || signed_size > REPORT_BODY_MAX)
                return -E2BIG;
        *ret_body = TAKE_PTR(signed_json);
        *ret_size = signed_size;
        return 0;
}

/* Makes room after report seq was written as the spool's n+1st file: trims, and when only final
 * reports are left takes seq back out (-ENOSPC). */
static int spool_make_room(struct spool *s, uint64_t **seqs, size_t n, uint64_t seq)
{
        uint64_t *p;
        char name[SPOOL_NAME_MAX];
        int r;

        p = reallocarray(*seqs, n + 1, sizeof(**seqs));
        if (!p)
                return -ENOMEM;
        *seqs = p;
        p[n++] = seq;
        r = spool_trim(s, p, n);
        if (r != -ENOSPC)
                return r;
        /* Only final reports are left: this one cannot be kept either. */
        spool_file_name(seq, name);
        (void)unlinkat(s->dir_fd, name, 0);
        (void)fsync_dir(s);
        s->outcome->stats.spooled--;
        report_outcome_add(s->outcome, REPORT_EVENT_NOT_SPOOLED, seq, 0, NULL, NULL);
        return r;
}

int spool_append(struct spool *s, const struct report *report, uint64_t *ret_seq)
{
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        _cleanup_free_ char *json = NULL, *path = NULL;
        char name[SPOOL_NAME_MAX];
        uint64_t seq;
        size_t size = 0, n;
        int r;

        if (!s || !report)
                return -EINVAL;
        r = lock_file(s, SPOOL_SEQ_LOCK, true, &lock);
        if (r < 0)
                return r;
        r = list_seqs(s, false, &seqs, &n);
        if (r < 0)
                return r;
        r = seq_next(s, seqs, n, &seq);
        if (r < 0)
                return r;
        r = report_body(s, report, seq, &json, &size);
        if (r < 0)
                return r;

        /* The seq is used up first: a crash after this leaves a gap, never a reused number. A
         * block is reserved at once, so a run writes the seq file once, not once a report. */
        if (seq >= s->reserved_end || seq < s->reserved_next) {
                r = seq_file_write(s, seq + REPORT_SEQ_BLOCK);
                if (r < 0)
                        return r;
                s->reserved_end = seq + REPORT_SEQ_BLOCK;
        }
        s->reserved_next = seq + 1;
        spool_file_name(seq, name);
        path = spool_path(s, name);
        if (!path)
                return -ENOMEM;
        r = write_file_atomic(path, json, size, 0600, WRITE_FILE_EXCLUSIVE);
        if (r < 0)
                return r;
        s->outcome->stats.spooled++;
        if (n + 1 > REPORT_SPOOL_MAX) {
                r = spool_make_room(s, &seqs, n, seq);
                if (r < 0)
                        return r;
        }
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}
