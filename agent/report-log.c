/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "log.h"
#include "report-log.h"

static void log_event(const char *dir, const struct report_event *e)
{
        char name[SPOOL_NAME_MAX];

        spool_file_name(e->seq, name);
        switch (e->kind) {
        case REPORT_EVENT_MOVED_ASIDE:
                log_warning("Spooled report %s/%s %s: moved to %s/bad/%s.", dir, name,
                            e->why ? e->why : "is unusable", dir, name);
                break;
        case REPORT_EVENT_REFUSED:
                log_warning("The server refused report %" PRIu64 " for good (%s).", e->seq,
                            e->detail);
                break;
        case REPORT_EVENT_DROPPED:
                log_warning("Report spool %s is full (%d reports): dropped %s report %s, "
                            "the oldest of its kind.",
                            dir, REPORT_SPOOL_MAX, e->why ? e->why : "a", name);
                break;
        case REPORT_EVENT_NOT_SPOOLED:
                log_error("Report spool %s is full of final reports (%d): report %" PRIu64
                          " is not spooled.",
                          dir, REPORT_SPOOL_MAX, e->seq);
                break;
        case REPORT_EVENT_BAD_DIR_FAILED:
                (void)log_error_errno(e->error, "Failed to create %s/bad: %m", dir);
                break;
        case REPORT_EVENT_MOVE_FAILED:
                (void)log_error_errno(e->error, "Failed to move %s/%s aside: %m", dir, name);
                break;
        case REPORT_EVENT_REMOVE_FAILED:
                (void)log_error_errno(e->error, "Failed to remove delivered report %s/%s: %m", dir,
                                      name);
                break;
        }
}

void report_log_events(struct report_spool *s)
{
        const struct report_outcome *o;

        if (!s)
                return;
        o = report_outcome(s);
        for (size_t i = 0; i < o->n_events; i++)
                log_event(report_spool_dir(s), &o->events[i]);
        if (o->events_lost > 0)
                log_warning("%u more events of the report spool %s are not shown.", o->events_lost,
                            report_spool_dir(s));
        report_clear_events(s);
}
