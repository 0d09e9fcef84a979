/* SPDX-License-Identifier: MIT */
/* A report's wire format (report.h): names, bounds, and the JSON body. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "machine_id.h"
#include "report.h"
#include "util.h"

static const char *const phase_names[_REPORT_PHASE_MAX] = {
    [REPORT_PHASE_IDENTIFY] = "identify",   [REPORT_PHASE_ENROLL] = "enroll",
    [REPORT_PHASE_FETCH] = "fetch",         [REPORT_PHASE_VERIFY] = "verify",
    [REPORT_PHASE_PLAN] = "plan",           [REPORT_PHASE_BUILDERS] = "builders",
    [REPORT_PHASE_WRITE] = "write",         [REPORT_PHASE_REBUILD] = "rebuild",
    [REPORT_PHASE_REPORT] = "report",       [REPORT_PHASE_DONE] = "done",
    [REPORT_PHASE_PREFLIGHT] = "preflight", [REPORT_PHASE_HEALTH] = "health",
    [REPORT_PHASE_CONFIRM] = "confirm",
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

static int set_preflight(json_t *o, const struct dryrun_summary *p)
{
        json_t *c = json_object();
        int k;

        if ((k = set(o, "preflight", c)) < 0 ||
            (k = set(c, "to_build", json_u64(p->to_build))) < 0 ||
            (k = set(c, "to_fetch", json_u64(p->to_fetch))) < 0 ||
            (k = set(c, "download_bytes", json_u64(p->download_bytes))) < 0 ||
            (k = set(c, "unpacked_bytes", json_u64(p->unpacked_bytes))) < 0)
                return k;
        return 0;
}

/* The update's outcome, systems and health checks. */
static int set_update(json_t *o, const struct report *r)
{
        json_t *checks;
        int k;

        if (r->outcome && (k = set(o, "outcome", json_string(r->outcome))) < 0)
                return k;
        if (r->system &&
            (k = set(o, "system", json_text(r->system, REPORT_MESSAGE_MAX, false))) < 0)
                return k;
        if (r->previous_system &&
            (k = set(o, "previous_system",
                     json_text(r->previous_system, REPORT_MESSAGE_MAX, false))) < 0)
                return k;
        if (r->n_checks == 0)
                return 0;
        if (r->n_checks > REPORT_CHECKS_MAX || !r->checks)
                return -EINVAL;
        if ((k = set(o, "checks", checks = json_array())) < 0)
                return k;
        for (size_t i = 0; i < r->n_checks; i++) {
                const struct report_check *c = &r->checks[i];
                json_t *item = json_object();

                if (!item || json_array_append_new(checks, item) < 0)
                        return -ENOMEM;
                if ((k = set(item, "name", json_text(c->name ?: "", 200, false))) < 0 ||
                    (k = set(item, "ok", json_boolean(c->ok))) < 0 ||
                    (k = set(item, "attempts", json_integer(c->attempts))) < 0)
                        return k;
                if (c->error && (k = set(item, "error", json_text(c->error, 200, false))) < 0)
                        return k;
        }
        return 0;
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
        if (r->preflight && (k = set_preflight(o, r->preflight)) < 0)
                return k;
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
        if ((k = set_update(o, r)) < 0)
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
