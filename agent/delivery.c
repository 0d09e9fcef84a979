/* SPDX-License-Identifier: MIT */
/* Report delivery (delivery.h): the handle, and sending the spool to the server. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "delivery.h"
#include "util.h"

struct report_spool {
        struct spool *spool;
        const struct fetch_options *send_options;
        char *path;
        uint64_t emit_deadline_ms;
        bool send_failed; /* since the last report_flush(): emits only spool */
        bool spool_only;  /* report_set_send_on_emit(false) */
        struct fetch_error last_error;
        struct report_outcome outcome;
};

enum delivery_verdict delivery_verdict(int r, const struct fetch_error *e)
{
        if (r >= 0)
                return DELIVERY_DELIVERED;
        /* 403 (not enrolled yet, or revoked) is not final: the reports wait for the operator.
         * 404, 405, 410 and 501 never get here as such: fetch rules such a mirror out. */
        if (r == -E2BIG || (r == -EACCES && (e->http_status == 400 || e->http_status == 401 ||
                                             e->http_status == 409)))
                return DELIVERY_REFUSED;
        return DELIVERY_STOP;
}

int report_open(const char *spool_dir, const char *machine_id,
                const struct fetch_options *send_options, const char *report_path,
                struct report_spool **ret)
{
        _cleanup_(report_spool_freep) struct report_spool *s = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (!report_path)
                report_path = REPORT_PATH_DEFAULT;
        if (report_path[0] != '/' || strlen(report_path) > REPORT_PATH_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->path = strdup(report_path);
        if (!s->path)
                return -ENOMEM;
        s->send_options = send_options;
        s->emit_deadline_ms = REPORT_EMIT_DEADLINE_MS_DEFAULT;
        r = spool_open(spool_dir, machine_id, &s->outcome, &s->spool);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

struct report_spool *report_close(struct report_spool *s)
{
        if (!s)
                return NULL;
        spool_close(s->spool);
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

void report_set_signer(struct report_spool *s, report_sign_fn sign, void *userdata)
{
        spool_set_signer(s->spool, sign, userdata);
}

const struct fetch_error *report_last_error(const struct report_spool *s)
{
        return &s->last_error;
}

const struct report_stats *report_stats(const struct report_spool *s)
{
        return &s->outcome.stats;
}

const struct report_outcome *report_outcome(const struct report_spool *s)
{
        return &s->outcome;
}

void report_clear_events(struct report_spool *s)
{
        report_outcome_clear_events(&s->outcome);
}

const char *report_spool_dir(const struct report_spool *s)
{
        return spool_dir(s->spool);
}

int report_pending(struct report_spool *s, unsigned *ret_pending)
{
        return spool_pending(s->spool, ret_pending);
}

/* POSTs spooled report seq, with what is left of the deadline. Returns 0 when it is delivered
 * and removed, 1 when it is gone from the queue otherwise (moved to bad/, or gone meanwhile),
 * or the error that stops delivery. */
static int deliver_one(struct report_spool *s, struct fetch_options *o, uint64_t deadline,
                       uint64_t seq)
{
        _cleanup_free_ char *body = NULL, *response = NULL;
        struct fetch_error e;
        json_t *answer;
        size_t size, response_size;
        uint64_t now;
        int r;

        r = spool_read(s->spool, seq, &body, &size);
        if (r == -ENOENT || r == -EBADMSG)
                return 1;
        if (r < 0)
                return r;
        now = monotonic_ms();
        if (now >= deadline) {
                s->last_error = (struct fetch_error){.deadline_reached = true};
                (void)snprintf(s->last_error.message, sizeof(s->last_error.message),
                               "the deadline passed before report %" PRIu64 " could be sent", seq);
                return -ETIMEDOUT;
        }
        o->deadline_ms = deadline - now;
        r = fetch_post_json(o, s->path, body, size, &response, &response_size, &e);
        switch (delivery_verdict(r, &e)) {
        case DELIVERY_DELIVERED:
                break;
        case DELIVERY_REFUSED: {
                char detail[REPORT_EVENT_DETAIL_MAX];

                (void)snprintf(detail, sizeof(detail), "%s: %s", e.url, e.message);
                report_outcome_add(&s->outcome, REPORT_EVENT_REFUSED, seq, r, NULL, detail);
                r = spool_move_aside(s->spool, seq, "was refused by the server");
                return r < 0 ? r : 1;
        }
        case DELIVERY_STOP:
                s->last_error = e;
                return r;
        }
        answer = json_loadb(response, response_size, 0, NULL);
        if (json_is_true(json_object_get(answer, "duplicate")))
                s->outcome.stats.duplicates++;
        json_decref(answer);
        r = spool_remove(s->spool, seq);
        if (r < 0)
                return r;
        s->outcome.stats.sent++;
        return 0;
}

/* Delivers the spool in seq order within deadline_ms. With wait false, returns -EBUSY at once
 * when another process is delivering. */
static int deliver(struct report_spool *s, uint64_t deadline_ms, bool wait, unsigned *ret_sent)
{
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ uint64_t *seqs = NULL;
        struct fetch_options o;
        uint64_t deadline;
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

        r = spool_lock_delivery(s->spool, wait, &lock);
        if (r < 0)
                return r;
        r = spool_list(s->spool, &seqs, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = deliver_one(s, &o, deadline, seqs[i]);
                if (r < 0)
                        return r;
                if (r == 0)
                        (*ret_sent)++;
        }
        return 0;
}

int report_emit(struct report_spool *s, const struct report *report, uint64_t *ret_seq)
{
        unsigned sent;
        int r;

        if (!s || !report)
                return -EINVAL;
        r = spool_append(s->spool, report, ret_seq);
        if (r < 0)
                return r;
        if (s->send_options && !s->send_failed && !s->spool_only) {
                r = deliver(s, s->emit_deadline_ms, false, &sent);
                if (r < 0 && r != -EBUSY) {
                        s->send_failed = true;
                        s->outcome.stats.send_failures++;
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
        r = deliver(s, deadline_ms, true, &sent);
        if (r < 0 && r != -ENOMEDIUM)
                s->outcome.stats.send_failures++;
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
