/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>

#include "log.h"
#include "service.h"
#include "util.h"

/* Process-wide: one server per process. */
static atomic_uint_fast64_t service_counters[_SERVICE_COUNTER_MAX];
static unsigned (*_Atomic service_waiters_fn)(void *userdata);
static void *_Atomic service_waiters_userdata;

void service_count(enum service_counter counter)
{
        if (counter >= 0 && counter < _SERVICE_COUNTER_MAX)
                atomic_fetch_add(&service_counters[counter], 1);
}

void service_set_waiters_fn(unsigned (*fn)(void *userdata), void *userdata)
{
        service_waiters_userdata = userdata;
        service_waiters_fn = fn;
}

static int service_metrics_profiles(struct buf *text)
{
        unsigned (*fn)(void *userdata) = service_waiters_fn;

        return buf_printf(
            text,
            "# HELP nixprov_profile_not_modified_total Profile requests answered 304 Not "
            "Modified.\n# TYPE nixprov_profile_not_modified_total counter\n"
            "nixprov_profile_not_modified_total %llu\n"
            "# HELP nixprov_profile_waits_total Profile requests held (?wait=) until a change "
            "or the wait's end.\n# TYPE nixprov_profile_waits_total counter\n"
            "nixprov_profile_waits_total %llu\n"
            "# HELP nixprov_profile_waits_refused_total Profile requests with ?wait= answered at "
            "once because --max-waiters were waiting.\n"
            "# TYPE nixprov_profile_waits_refused_total counter\n"
            "nixprov_profile_waits_refused_total %llu\n"
            "# HELP nixprov_profile_waiters Profile requests waiting now.\n"
            "# TYPE nixprov_profile_waiters gauge\nnixprov_profile_waiters %u\n",
            (unsigned long long)atomic_load(&service_counters[SERVICE_COUNTER_NOT_MODIFIED]),
            (unsigned long long)atomic_load(&service_counters[SERVICE_COUNTER_WAITS]),
            (unsigned long long)atomic_load(&service_counters[SERVICE_COUNTER_WAIT_REFUSED]),
            fn ? fn(service_waiters_userdata) : 0);
}

static int service_metrics_counts(struct buf *text, const char *metric, const char *label,
                                  const struct store_count *counts, size_t n_counts)
{
        int r = 0;

        /* Names come from the store: statuses validated at insertion, states its own set;
         * nothing to escape. */
        for (size_t i = 0; i < n_counts && r >= 0; i++)
                r = buf_printf(text, "%s{%s=\"%s\"} %lld\n", metric, label, counts[i].name,
                               (long long)counts[i].count);
        return r;
}

static int service_metrics_format(const struct store_stats *stats, struct buf *text)
{
        int r;

        r = buf_puts(text, "# HELP nixprov_machines Machines known to the server, by the status "
                           "of their latest report.\n# TYPE nixprov_machines gauge\n");
        if (r >= 0)
                r = service_metrics_counts(text, "nixprov_machines", "status", stats->by_status,
                                           stats->n_by_status);
        if (r >= 0)
                r = buf_puts(text, "# HELP nixprov_machines_enrollment Machines known to the "
                                   "server, by enrollment state.\n"
                                   "# TYPE nixprov_machines_enrollment gauge\n");
        if (r >= 0)
                r = service_metrics_counts(text, "nixprov_machines_enrollment", "state",
                                           stats->by_state, stats->n_by_state);
        if (r >= 0)
                r = buf_puts(text, "# HELP nixprov_machines_update Machines by how their latest "
                                   "update ended (applied, rolled-back, failed, pending-reboot, "
                                   "confirmed; none).\n"
                                   "# TYPE nixprov_machines_update gauge\n");
        if (r >= 0)
                r = service_metrics_counts(text, "nixprov_machines_update", "outcome",
                                           stats->by_update, stats->n_by_update);
        if (r >= 0)
                r = buf_printf(text,
                               "# HELP nixprov_reports_total Reports stored.\n"
                               "# TYPE nixprov_reports_total counter\n"
                               "nixprov_reports_total %lld\n",
                               (long long)stats->reports);
        if (r >= 0)
                r = buf_printf(text,
                               "# HELP nixprov_enrollments_refused_total Enrollments refused "
                               "since the server started, by reason.\n"
                               "# TYPE nixprov_enrollments_refused_total counter\n"
                               "nixprov_enrollments_refused_total{reason=\"pending-max\"} %llu\n",
                               (unsigned long long)service_enrollment_refused_pending());
        if (r >= 0)
                r = service_metrics_profiles(text);
        return r;
}

int service_metrics(struct store *store, char **ret_text, size_t *ret_size,
                    char reason[static SERVICE_REASON_MAX])
{
        struct buf text = BUF_INIT(SERVICE_METRICS_MAX);
        struct store_stats stats;
        char *data;
        size_t size;
        int r;

        r = store_stats(store, &stats);
        if (r < 0) {
                log_error_errno(r, "Failed to count machines and reports: %m");
                return service_fail(reason, service_store_errno(r), "failed to read the metrics");
        }
        r = service_metrics_format(&stats, &text);
        if (r < 0) {
                buf_free(&text);
                return service_fail(reason, -EIO, "failed to format the metrics");
        }
        data = buf_steal(&text, &size);
        if (!data)
                return service_fail(reason, -ENOMEM, "out of memory");
        *ret_text = data;
        *ret_size = size;
        return 0;
}
