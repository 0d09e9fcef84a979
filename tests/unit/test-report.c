/* SPDX-License-Identifier: MIT */
/* Unit tests for agent/report.c, spool.c and delivery.c: the JSON of a report, and the spool
 * without a server (a file:// mirror, to which nothing can be POSTed, stands in for an unreachable
 * one; delivery to the real server is in tests/integration/test-report.sh). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "delivery.h"
#include "fetch.h"
#include "fileio.h"
#include "macro.h"
#include "report.h"
#include "util.h"

#define MACHINE "0123456789abcdef0123456789abcdef"

static char tmpdir[] = "/tmp/test-report-XXXXXX";

static int setup(void **state)
{
        (void)state;
        return fetch_global_init() < 0 || !mkdtemp(tmpdir) ? -1 : 0;
}

static int teardown(void **state)
{
        char cmd[sizeof(tmpdir) + 16];

        (void)state;
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        fetch_global_cleanup();
        return system(cmd) == 0 ? 0 : -1;
}

/* A fresh spool directory path (not created) for one test. */
static char *new_spool_dir(const char *name)
{
        char *p;

        assert_true(asprintf(&p, "%s/%s/spool", tmpdir, name) > 0);
        return p;
}

static char *spool_file(const char *dir, const char *name)
{
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* Runs a shell command made of format and one path. */
static void run(const char *format, const char *path)
{
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, format, path) > 0);
        assert_int_equal(system(cmd), 0);
}

static json_t *load_json(const char *text)
{
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

        assert_non_null(j);
        return j;
}

static json_t *load_spooled(const char *dir, uint64_t seq)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t size;

        assert_true(asprintf(&path, "%s/%020llu.json", dir, (unsigned long long)seq) > 0);
        assert_int_equal(read_file_bounded(path, REPORT_BODY_MAX, &data, &size), 0);
        return load_json(data);
}

static unsigned count_reports(const char *dir)
{
        unsigned n = 0;
        struct dirent *de;
        DIR *d = opendir(dir);

        assert_non_null(d);
        while ((de = readdir(d)))
                if (strlen(de->d_name) == 25 && strstr(de->d_name, ".json"))
                        n++;
        closedir(d);
        return n;
}

static void test_names(void **state)
{
        (void)state;
        assert_int_equal(report_phase_from_string("bogus"), -EINVAL);
        assert_int_equal(report_phase_from_string(""), -EINVAL);
        assert_int_equal(report_phase_from_string(NULL), -EINVAL);
        assert_int_equal(report_status_from_string("done"), -EINVAL);
        assert_null(report_phase_to_string(_REPORT_PHASE_MAX));
        assert_null(report_status_to_string((enum report_status) - 1));
        for (int i = 0; i < _REPORT_PHASE_MAX; i++)
                assert_int_equal(report_phase_from_string(report_phase_to_string(i)), i);
        for (int i = 0; i < _REPORT_STATUS_MAX; i++)
                assert_int_equal(report_status_from_string(report_status_to_string(i)), i);
        assert_string_equal(report_phase_to_string(REPORT_PHASE_BUILDERS), "builders");
        assert_string_equal(report_status_to_string(REPORT_STATUS_PROGRESS), "progress");
}

static void test_json_refusals(void **state)
{
        struct report_timing timings[REPORT_TIMINGS_MAX + 1] = {};
        static const struct {
                struct report report;
                const char *machine_id;
                uint64_t seq;
                int64_t time;
                int expected;
        } cases[] = {
            {{}, "0123456789ABCDEF0123456789ABCDEF", 1, 0, -EINVAL}, /* not lowercase */
            {{}, "0123456789abcdef", 1, 0, -EINVAL},
            {{}, "", 1, 0, -EINVAL},
            {{.phase = _REPORT_PHASE_MAX}, MACHINE, 1, 0, -EINVAL},
            {{.status = _REPORT_STATUS_MAX}, MACHINE, 1, 0, -EINVAL},
            {{}, MACHINE, 1, -1, -EINVAL},
            {{}, MACHINE, (uint64_t)INT64_MAX + 1, 0, -EOVERFLOW},
            {{.has_serial = true, .serial = UINT64_MAX}, MACHINE, 1, 0, -EOVERFLOW},
            {{.n_timings = 1}, MACHINE, 1, 0, -EINVAL}, /* timings NULL */
        };
        struct report r = {.timings = timings, .n_timings = REPORT_TIMINGS_MAX + 1};
        char *json = (char *)"untouched";

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(report_to_json(&cases[i].report, cases[i].machine_id, cases[i].seq,
                                                cases[i].time, &json, NULL),
                                 cases[i].expected);
                assert_string_equal(json, "untouched");
        }
        assert_int_equal(report_to_json(&r, MACHINE, 1, 0, &json, NULL), -EINVAL);
        timings[0].phase = (enum report_phase)99;
        r.n_timings = 1;
        assert_int_equal(report_to_json(&r, MACHINE, 1, 0, &json, NULL), -EINVAL);
        assert_int_equal(report_to_json(NULL, MACHINE, 1, 0, &json, NULL), -EINVAL);
        assert_string_equal(json, "untouched");
}

static void test_json_shape(void **state)
{
        const struct nixlog_counts counts = {
            .substituted = 12,
            .copied = 99,
            .built_local = 3,
            .built_remote = 4,
            .downloaded_bytes = 123456789,
        };
        const struct report_timing timings[] = {
            {REPORT_PHASE_FETCH, 120},
            {REPORT_PHASE_REBUILD, 600000},
        };
        const struct report r = {
            .phase = REPORT_PHASE_REBUILD,
            .status = REPORT_STATUS_FAILED,
            .has_serial = true,
            .serial = 7,
            .message = "rebuild failed",
            .error = "builder for '/nix/store/x.drv' failed",
            .counts = &counts,
            .timings = timings,
            .n_timings = ELEMENTSOF(timings),
            .log_tail = "line 1\nline 2\n",
        };
        _cleanup_free_ char *text = NULL;
        json_t *j, *c, *t;
        size_t size;

        (void)state;
        assert_int_equal(report_to_json(&r, MACHINE, 42, 1700000000, &text, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_null(strchr(text, '\n')); /* compact: one line */
        j = load_json(text);
        assert_int_equal(json_object_size(j), 11);
        assert_string_equal(json_string_value(json_object_get(j, "machine_id")), MACHINE);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), 42);
        assert_int_equal(json_integer_value(json_object_get(j, "time")), 1700000000);
        assert_string_equal(json_string_value(json_object_get(j, "phase")), "rebuild");
        assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
        assert_int_equal(json_integer_value(json_object_get(j, "serial")), 7);
        assert_string_equal(json_string_value(json_object_get(j, "message")), "rebuild failed");
        assert_string_equal(json_string_value(json_object_get(j, "error")),
                            "builder for '/nix/store/x.drv' failed");
        assert_string_equal(json_string_value(json_object_get(j, "log_tail")), "line 1\nline 2\n");
        c = json_object_get(j, "counts");
        assert_int_equal(json_object_size(c), 4);
        assert_int_equal(json_integer_value(json_object_get(c, "substituted")), 12);
        assert_int_equal(json_integer_value(json_object_get(c, "built")), 3);
        assert_int_equal(json_integer_value(json_object_get(c, "built_remote")), 4);
        assert_int_equal(json_integer_value(json_object_get(c, "downloaded_bytes")), 123456789);
        t = json_object_get(j, "timings");
        assert_int_equal(json_object_size(t), 2);
        assert_int_equal(json_integer_value(json_object_get(t, "fetch")), 120);
        assert_int_equal(json_integer_value(json_object_get(t, "rebuild")), 600000);
        json_decref(j);
}

static void test_json_preflight(void **state)
{
        const struct dryrun_summary pre = {.to_build = 3,
                                           .to_fetch = 12,
                                           .download_bytes = 37193400,
                                           .unpacked_bytes = UINT64_MAX,
                                           .have_build = true,
                                           .have_fetch = true};
        const struct report r = {
            .phase = REPORT_PHASE_PREFLIGHT, .status = REPORT_STATUS_OK, .preflight = &pre};
        _cleanup_free_ char *text = NULL;

        (void)state;
        assert_string_equal(report_phase_to_string(REPORT_PHASE_PREFLIGHT), "preflight");
        assert_int_equal(report_to_json(&r, MACHINE, 1, 5, &text, NULL), 0);
        /* A saturated size is sent as the largest JSON integer the server takes. */
        assert_string_equal(text, "{\"machine_id\":\"" MACHINE "\",\"seq\":1,\"time\":5,"
                                  "\"phase\":\"preflight\",\"status\":\"ok\",\"preflight\":"
                                  "{\"to_build\":3,\"to_fetch\":12,\"download_bytes\":37193400,"
                                  "\"unpacked_bytes\":9223372036854775807}}");
}

/* An update's outcome, systems and health checks, as the health and confirm phases send them. */
static void test_json_update(void **state)
{
        const struct report_check checks[] = {
            {"unit sshd.service", true, 1, NULL},
            {"tcp 8080", false, 5, "Connection refused"},
        };
        const struct report r = {
            .phase = REPORT_PHASE_HEALTH,
            .status = REPORT_STATUS_FAILED,
            .outcome = "rolled-back",
            .system = "/nix/store/b-new",
            .previous_system = "/nix/store/a-old",
            .checks = checks,
            .n_checks = ELEMENTSOF(checks),
        };
        struct report bad = r;
        _cleanup_free_ char *text = NULL;
        char *untouched = (char *)"untouched";
        json_t *j, *c;

        (void)state;
        assert_int_equal(report_to_json(&r, MACHINE, 1, 1, &text, NULL), 0);
        j = load_json(text);
        assert_string_equal(json_string_value(json_object_get(j, "phase")), "health");
        assert_string_equal(json_string_value(json_object_get(j, "outcome")), "rolled-back");
        assert_string_equal(json_string_value(json_object_get(j, "system")), "/nix/store/b-new");
        assert_string_equal(json_string_value(json_object_get(j, "previous_system")),
                            "/nix/store/a-old");
        c = json_object_get(j, "checks");
        assert_int_equal(json_array_size(c), 2);
        assert_true(json_is_true(json_object_get(json_array_get(c, 0), "ok")));
        assert_null(json_object_get(json_array_get(c, 0), "error"));
        assert_int_equal(json_integer_value(json_object_get(json_array_get(c, 1), "attempts")), 5);
        assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "error")),
                            "Connection refused");
        json_decref(j);
        bad.n_checks = REPORT_CHECKS_MAX + 1;
        assert_int_equal(report_to_json(&bad, MACHINE, 1, 1, &untouched, NULL), -EINVAL);
        assert_string_equal(untouched, "untouched");
}

static void test_json_minimal(void **state)
{
        const struct report r = {.phase = REPORT_PHASE_IDENTIFY, .status = REPORT_STATUS_STARTED};
        _cleanup_free_ char *text = NULL;

        (void)state;
        assert_int_equal(report_to_json(&r, MACHINE, 1, 5, &text, NULL), 0);
        assert_string_equal(text, "{\"machine_id\":\"" MACHINE "\",\"seq\":1,\"time\":5,"
                                  "\"phase\":\"identify\",\"status\":\"started\"}");
}

static void test_json_bounds_and_utf8(void **state)
{
        _cleanup_free_ char *tail = NULL, *message = NULL, *text = NULL;
        struct report r = {.phase = REPORT_PHASE_REBUILD, .status = REPORT_STATUS_PROGRESS};
        const char *v;
        size_t n = 3 * REPORT_LOG_TAIL_MAX;
        json_t *j;

        (void)state;
        /* A tail of 'a's, "é" (2 bytes) straddling the cut, and an ending to find. */
        tail = malloc(n + 1);
        assert_non_null(tail);
        memset(tail, 'a', n);
        memcpy(tail + n - REPORT_LOG_TAIL_MAX - 1, "\xc3\xa9", 2);
        memcpy(tail + n - 4, "END\n", 4);
        tail[n] = '\0';
        message = malloc(REPORT_MESSAGE_MAX + 100);
        assert_non_null(message);
        memset(message, 'm', REPORT_MESSAGE_MAX + 99);
        memcpy(message + REPORT_MESSAGE_MAX - 1, "\xc3\xa9", 2); /* cut in the middle */
        message[REPORT_MESSAGE_MAX + 99] = '\0';
        r.log_tail = tail;
        r.message = message;
        r.error = "bad \xff byte, overlong \xc0\xaf, surrogate \xed\xa0\x80, ok \xe2\x82\xac";

        assert_int_equal(report_to_json(&r, MACHINE, 1, 0, &text, NULL), 0);
        j = load_json(text);
        v = json_string_value(json_object_get(j, "log_tail"));
        /* Cut to the last REPORT_LOG_TAIL_MAX bytes; the half character at the cut is skipped. */
        assert_int_equal(strlen(v), REPORT_LOG_TAIL_MAX - 1);
        assert_string_equal(v + strlen(v) - 4, "END\n");
        assert_int_equal(v[0], 'a');
        v = json_string_value(json_object_get(j, "message"));
        assert_int_equal(strlen(v), REPORT_MESSAGE_MAX - 1);
        v = json_string_value(json_object_get(j, "error"));
        assert_string_equal(v, "bad \xef\xbf\xbd byte, overlong \xef\xbf\xbd\xef\xbf\xbd, "
                               "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd, ok \xe2\x82\xac");
        json_decref(j);
}

static void test_open_refusals(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("open"), *seq = NULL;
        struct report_spool *s = NULL;

        (void)state;
        assert_int_equal(report_open(dir, "xyz", NULL, NULL, &s), -EINVAL);
        assert_int_equal(report_open(dir, MACHINE, NULL, "v1/reports", &s), -EINVAL);
        assert_int_equal(report_open("", MACHINE, NULL, NULL, &s), -EINVAL);
        assert_null(s);

        /* A seq file that holds no number: the spool refuses to guess one. */
        assert_int_equal(mkdir_parents(dir, 0700), 0);
        seq = spool_file(dir, "seq");
        assert_int_equal(write_file_atomic(seq, "12x\n", 4, 0600, 0), 0);
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), -EBADMSG);
        assert_int_equal(write_file_atomic(seq, "0\n", 2, 0600, 0), 0);
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), -EBADMSG);
        assert_int_equal(write_file_atomic(seq, "", 0, 0600, 0), 0);
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), -EBADMSG);
        assert_null(s);
        assert_int_equal(write_file_atomic(seq, "5\n", 2, 0600, 0), 0);
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);
        s = report_close(s);
        assert_null(s);
}

static void test_spool_seq_never_reused(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("seq"), *seq_path = NULL, *data = NULL,
                            *tmp_left = NULL, *first = NULL;
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        const struct report r = {.phase = REPORT_PHASE_FETCH, .status = REPORT_STATUS_STARTED};
        struct stat st;
        uint64_t seq;
        unsigned pending;
        size_t size;
        json_t *j;

        (void)state;
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        for (uint64_t i = 1; i <= 3; i++) {
                assert_int_equal(report_emit(s, &r, &seq), 0);
                assert_int_equal(seq, i);
        }
        first = spool_file(dir, "00000000000000000001.json");
        assert_int_equal(stat(first, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        j = load_spooled(dir, 2);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), 2);
        assert_string_equal(json_string_value(json_object_get(j, "machine_id")), MACHINE);
        json_decref(j);
        seq_path = spool_file(dir, "seq");
        assert_int_equal(read_file_bounded(seq_path, 64, &data, &size), 0);
        /* The first emit reserved a block of numbers: the file says where the next block starts. */
        assert_string_equal(data, "65\n");
        assert_int_equal(REPORT_SEQ_BLOCK, 64);
        assert_int_equal(stat(seq_path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(report_stats(s)->spooled, 3);

        /* No server: flush sends nothing, and says why. */
        assert_int_equal(report_flush(s, 0, NULL, &pending), -ENOMEDIUM);
        assert_int_equal(pending, 3);

        /* Delivered (deleted) reports, a restart: the sequence goes on. */
        s = report_close(s);
        run("rm -f '%s'/*.json", dir);
        assert_int_equal(count_reports(dir), 0);
        /* A leftover of an interrupted write is removed at open. */
        tmp_left = spool_file(dir, ".00000000000000000009.json" FILEIO_TEMPORARY_MARK "0badf00d");
        assert_int_equal(write_file_atomic(tmp_left, "{", 1, 0600, 0), 0);
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);
        assert_int_equal(access(tmp_left, F_OK), -1);
        assert_int_equal(report_emit(s, &r, &seq), 0);
        assert_int_equal(seq, 4);

        /* The seq file lost, a report still spooled: the sequence goes on above it. */
        assert_int_equal(unlink(seq_path), 0);
        assert_int_equal(report_emit(s, &r, &seq), 0);
        assert_int_equal(seq, 5);
        /* A seq file behind the spool (restored from a backup) does not win either. */
        assert_int_equal(write_file_atomic(seq_path, "2\n", 2, 0600, 0), 0);
        assert_int_equal(report_emit(s, &r, &seq), 0);
        assert_int_equal(seq, 6);
        assert_int_equal(report_pending(s, &pending), 0);
        assert_int_equal(pending, 3);
}

static unsigned attempts_seen;

static void count_attempt(const struct fetch_error *attempt, int error, void *userdata)
{
        (void)attempt;
        (void)error;
        (void)userdata;
        attempts_seen++;
}

static void test_emit_spools_when_sending_fails(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("down"), *mirror = NULL;
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        const struct report r = {.phase = REPORT_PHASE_REBUILD, .status = REPORT_STATUS_PROGRESS};
        struct fetch_options o;
        char *mirrors[1];
        unsigned sent = 99, pending = 99;
        uint64_t seq;

        (void)state;
        /* Loopback port 1: nothing listens; refused at once. */
        assert_true(asprintf(&mirror, "http://127.0.0.1:1") > 0);
        mirrors[0] = mirror;
        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.on_attempt = count_attempt;
        assert_int_equal(report_open(dir, MACHINE, &o, NULL, &s), 0);
        report_set_emit_deadline(s, 300);

        attempts_seen = 0;
        assert_int_equal(report_emit(s, &r, &seq), 0);
        assert_int_equal(seq, 1);
        assert_true(attempts_seen >= 1);
        assert_int_equal(report_stats(s)->send_failures, 1);
        assert_int_equal(report_last_error(s)->http_status, 0);
        assert_string_equal(report_last_error(s)->url, "http://127.0.0.1:1/v1/reports");

        /* After a failure, emits only spool: no attempt at all until the next flush. */
        attempts_seen = 0;
        for (int i = 0; i < 4; i++)
                assert_int_equal(report_emit(s, &r, &seq), 0);
        assert_int_equal(seq, 5);
        assert_int_equal(attempts_seen, 0);
        assert_int_equal(report_stats(s)->send_failures, 1);
        assert_int_equal(count_reports(dir), 5);

        /* An explicit flush tries again, keeps everything, and says how much is left. */
        assert_int_equal(report_flush(s, 300, &sent, &pending), -ECONNREFUSED);
        assert_int_equal(sent, 0);
        assert_int_equal(pending, 5);
        assert_true(attempts_seen >= 1);
        assert_int_equal(report_stats(s)->sent, 0);
}

static void test_corrupt_file_moved_aside(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("corrupt"), *bad = NULL, *path = NULL;
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        const struct report r = {.phase = REPORT_PHASE_WRITE, .status = REPORT_STATUS_OK};
        /* file:// cannot take a POST: a send that fails at once, without a network. */
        char mirror[] = "file:///nonexistent", *mirrors[] = {mirror};
        const struct report_outcome *o;
        struct fetch_options fo;
        unsigned sent, pending;
        uint64_t seq;

        (void)state;
        fetch_options_init(&fo);
        fo.mirrors = mirrors;
        fo.n_mirrors = 1;
        assert_int_equal(report_open(dir, MACHINE, &fo, NULL, &s), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(report_emit(s, &r, &seq), 0);
        /* Truncated, another seq's report under this name, a status that is not a string and a
         * negative seq. */
        path = spool_file(dir, "00000000000000000001.json");
        assert_int_equal(truncate(path, 10), 0);
        free(path);
        path = spool_file(dir, "00000000000000000002.json");
        assert_int_equal(write_file_atomic(path, "{\"seq\":7,\"status\":\"ok\"}", 24, 0600, 0), 0);
        free(path);
        path = spool_file(dir, "00000000000000000003.json");
        assert_int_equal(write_file_atomic(path, "{\"seq\":3,\"status\":1}", 20, 0600, 0), 0);
        free(path);
        path = spool_file(dir, "00000000000000000004.json");
        assert_int_equal(write_file_atomic(path, "{\"seq\":-4,\"status\":\"ok\"}", 24, 0600, 0), 0);

        assert_int_equal(report_flush(s, 1000, &sent, &pending), -EPROTONOSUPPORT);
        assert_int_equal(sent, 0);
        assert_int_equal(pending, 1);
        assert_int_equal(report_stats(s)->bad, 4);
        /* Recorded for the caller to log, each with why, and cleared on request. */
        o = report_outcome(s);
        assert_int_equal(o->n_events, 4);
        assert_int_equal(o->events_lost, 0);
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(o->events[i].kind, REPORT_EVENT_MOVED_ASIDE);
                assert_int_equal(o->events[i].seq, i + 1);
                assert_string_equal(o->events[i].why, "is not a report of its sequence number "
                                                      "(truncated or corrupt)");
        }
        report_clear_events(s);
        assert_int_equal(report_outcome(s)->n_events, 0);
        assert_int_equal(report_stats(s)->bad, 4);
        bad = spool_file(dir, "bad/00000000000000000001.json");
        for (char c = '1'; c <= '4'; c++) {
                bad[strlen(bad) - 6] = c;
                assert_int_equal(access(bad, F_OK), 0);
        }
        assert_int_equal(access(path, F_OK), -1);
        path[strlen(path) - 6] = '5'; /* the good one stays */
        assert_int_equal(access(path, F_OK), 0);
}

static int fake_sign(const char *body, size_t size, char **ret_body, size_t *ret_size,
                     void *userdata)
{
        json_t *j = json_loadb(body, size, 0, NULL);
        char *dump;

        if (!j)
                return -EBADMSG;
        json_object_set_new(j, "signature", json_string((const char *)userdata));
        dump = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!dump)
                return -ENOMEM;
        *ret_body = dump;
        *ret_size = strlen(dump);
        return 0;
}

static void test_signer_hook(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("sign");
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        const struct report r = {.phase = REPORT_PHASE_DONE, .status = REPORT_STATUS_OK};
        uint64_t seq;
        json_t *j;

        (void)state;
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);
        report_set_signer(s, fake_sign, (void *)"c2lnbmF0dXJl");
        assert_int_equal(report_emit(s, &r, &seq), 0);
        j = load_spooled(dir, seq);
        assert_string_equal(json_string_value(json_object_get(j, "signature")), "c2lnbmF0dXJl");
        json_decref(j);
}

/* Writes a spooled report of seq with status directly, without fsync: fast enough for
 * REPORT_SPOOL_MAX of them. */
static void put_report(const char *dir, uint64_t seq, const char *status)
{
        char path[512];
        FILE *f;

        (void)snprintf(path, sizeof(path), "%s/%020llu.json", dir, (unsigned long long)seq);
        f = fopen(path, "we");
        assert_non_null(f);
        fprintf(f,
                "{\"machine_id\":\"%s\",\"seq\":%llu,\"time\":1,\"phase\":\"rebuild\","
                "\"status\":\"%s\"}",
                MACHINE, (unsigned long long)seq, status);
        assert_int_equal(fclose(f), 0);
}

static bool spooled(const char *dir, uint64_t seq)
{
        char path[512];

        (void)snprintf(path, sizeof(path), "%s/%020llu.json", dir, (unsigned long long)seq);
        return access(path, F_OK) == 0;
}

static void test_spool_bound(void **state)
{
        _cleanup_free_ char *dir = new_spool_dir("bound");
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        const struct report progress = {.phase = REPORT_PHASE_REBUILD,
                                        .status = REPORT_STATUS_PROGRESS};
        const struct report final = {.phase = REPORT_PHASE_REBUILD, .status = REPORT_STATUS_OK};
        const struct report_outcome *o;
        uint64_t seq;

        (void)state;
        assert_int_equal(mkdir_parents(dir, 0700), 0);
        /* A full spool: finals first, then a "started", then progress reports. */
        for (uint64_t i = 1; i <= REPORT_SPOOL_MAX; i++)
                put_report(dir, i, i <= 2 ? "failed" : i == 3 ? "started" : "progress");
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);

        /* The oldest progress reports go first; finals and "started" stay. */
        assert_int_equal(report_emit(s, &final, &seq), 0);
        assert_int_equal(seq, REPORT_SPOOL_MAX + 1);
        assert_false(spooled(dir, 4));
        assert_true(spooled(dir, 1) && spooled(dir, 2) && spooled(dir, 3) && spooled(dir, 5));
        assert_int_equal(report_emit(s, &progress, &seq), 0);
        assert_false(spooled(dir, 5));
        assert_int_equal(report_stats(s)->dropped, 2);
        assert_int_equal(count_reports(dir), REPORT_SPOOL_MAX);
        o = report_outcome(s);
        assert_int_equal(o->n_events, 2);
        assert_int_equal(o->events[0].kind, REPORT_EVENT_DROPPED);
        assert_int_equal(o->events[0].seq, 4);
        assert_string_equal(o->events[0].why, "progress");
        assert_int_equal(o->events[1].kind, REPORT_EVENT_DROPPED);
        assert_int_equal(o->events[1].seq, 5);
        s = report_close(s);

        /* Only finals and one "started": the "started" goes; then nothing can. */
        run("rm -rf '%s'", dir);
        assert_int_equal(mkdir_parents(dir, 0700), 0);
        for (uint64_t i = 1; i <= REPORT_SPOOL_MAX; i++)
                put_report(dir, i, i == 2 ? "started" : "ok");
        assert_int_equal(report_open(dir, MACHINE, NULL, NULL, &s), 0);
        assert_int_equal(report_emit(s, &final, &seq), 0);
        assert_false(spooled(dir, 2));
        assert_true(spooled(dir, seq));
        report_clear_events(s);
        assert_int_equal(report_emit(s, &final, &seq), -ENOSPC);
        assert_int_equal(count_reports(dir), REPORT_SPOOL_MAX);
        o = report_outcome(s);
        assert_int_equal(o->n_events, 1);
        assert_int_equal(o->events[0].kind, REPORT_EVENT_NOT_SPOOLED);
        assert_int_equal(o->events[0].seq, REPORT_SPOOL_MAX + 2);
        /* A new progress report is the one dropped: spooled and gone, but no error. */
        assert_int_equal(report_emit(s, &progress, &seq), 0);
        assert_false(spooled(dir, seq));
        assert_int_equal(count_reports(dir), REPORT_SPOOL_MAX);
        /* Its seq was used up all the same. */
        assert_int_equal(report_emit(s, &progress, &seq), 0);
        assert_int_equal(seq, REPORT_SPOOL_MAX + 4);
}

static void test_delivery_verdict(void **state)
{
        static const struct {
                int r;
                long http_status;
                enum delivery_verdict verdict;
        } cases[] = {
            /* Refused for good: to bad/. */
            {-EACCES, 400, DELIVERY_REFUSED},
            {-EACCES, 401, DELIVERY_REFUSED},
            {-EACCES, 409, DELIVERY_REFUSED},
            {-E2BIG, 413, DELIVERY_REFUSED},
            {-E2BIG, 0, DELIVERY_REFUSED},
            /* Kept: not enrolled yet or revoked, or the server is not there now. */
            {-EACCES, 403, DELIVERY_STOP},
            {-EACCES, 422, DELIVERY_STOP},
            {-ENOENT, 404, DELIVERY_STOP},
            {-EREMOTEIO, 503, DELIVERY_STOP},
            {-EAGAIN, 429, DELIVERY_STOP},
            {-ECONNREFUSED, 0, DELIVERY_STOP},
            {-ETIMEDOUT, 0, DELIVERY_STOP},
            {-EPROTONOSUPPORT, 0, DELIVERY_STOP},
            {0, 200, DELIVERY_DELIVERED},
            {0, 201, DELIVERY_DELIVERED},
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct fetch_error e = {.http_status = cases[i].http_status};

                assert_int_equal(delivery_verdict(cases[i].r, &e), cases[i].verdict);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_delivery_verdict),
            cmocka_unit_test(test_json_refusals),
            cmocka_unit_test(test_json_shape),
            cmocka_unit_test(test_json_preflight),
            cmocka_unit_test(test_json_update),
            cmocka_unit_test(test_json_minimal),
            cmocka_unit_test(test_json_bounds_and_utf8),
            cmocka_unit_test(test_open_refusals),
            cmocka_unit_test(test_spool_seq_never_reused),
            cmocka_unit_test(test_emit_spools_when_sending_fails),
            cmocka_unit_test(test_corrupt_file_moved_aside),
            cmocka_unit_test(test_signer_hook),
            cmocka_unit_test(test_spool_bound),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
