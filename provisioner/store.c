/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-sqlite.h"
#include "store.h"
#include "util.h"

const char *store_state_to_string(enum store_state state)
{
        static const char *const names[] = {
            [STORE_STATE_UNENROLLED] = "unenrolled",
            [STORE_STATE_PENDING] = "pending",
            [STORE_STATE_APPROVED] = "approved",
            [STORE_STATE_REVOKED] = "revoked",
        };

        if ((size_t)state >= ELEMENTSOF(names))
                return NULL;
        return names[state];
}

int store_state_from_string(const char *s, enum store_state *ret_state)
{
        for (enum store_state i = 0; i <= STORE_STATE_REVOKED; i++)
                if (s && streq(s, store_state_to_string(i))) {
                        *ret_state = i;
                        return 0;
                }
        return -EBADMSG;
}

void store_machine_done(struct store_machine *machine)
{
        if (!machine)
                return;
        free(machine->phase);
        free(machine->status);
        free(machine->hostname);
        free(machine->sign_key);
        free(machine->box_key);
        free(machine->decided_by);
        free(machine->facts);
        free(machine->update_outcome);
        free(machine->update_error);
        *machine = (struct store_machine){};
}

void store_machine_list_done(struct store_machine_list *list)
{
        if (!list)
                return;
        for (size_t i = 0; i < list->n_machines; i++)
                store_machine_done(&list->machines[i]);
        free(list->machines);
        *list = (struct store_machine_list){};
}

void store_history_done(struct store_history *history)
{
        if (!history)
                return;
        for (size_t i = 0; i < history->n_entries; i++)
                free(history->entries[i].body);
        free(history->entries);
        *history = (struct store_history){};
}

int store_open(const char *location, struct store **ret_store)
{
        if (!location || !*location || !ret_store)
                return -EINVAL;
        /* The only implementation today; a URL scheme will choose another. */
        return store_sqlite_open(location, ret_store);
}

void store_id_list_done(struct store_id_list *list)
{
        if (!list)
                return;
        free(list->ids);
        *list = (struct store_id_list){};
}

int store_purge_pending(struct store *store, int64_t before, bool dry_run,
                        struct store_id_list *ret_ids)
{
        if (!store || !ret_ids)
                return -EINVAL;
        return store->ops->purge_pending(store, before, dry_run, ret_ids);
}

int store_set_limits(struct store *store, const struct store_limits *limits)
{
        if (!store || !limits || limits->history_reports < 1 || limits->history_bytes < 1 ||
            limits->pending_reports < 0 || limits->pending_machines < 0)
                return -EINVAL;
        store->limits = *limits;
        return 0;
}

struct store *store_close(struct store *store)
{
        if (store)
                store->ops->close(store);
        return NULL;
}

int store_get_trust(struct store *store, const char *machine_id, struct store_trust *ret_trust)
{
        if (!store || !machine_id || !ret_trust)
                return -EINVAL;
        return store->ops->get_trust(store, machine_id, ret_trust);
}

int store_enroll(struct store *store, const struct store_enrollment *enrollment, int64_t now,
                 enum store_state *ret_state)
{
        if (!store || !enrollment || !enrollment->machine_id || !enrollment->hostname ||
            !enrollment->facts || !enrollment->sign_key || !enrollment->box_key ||
            !*enrollment->sign_key || !*enrollment->box_key)
                return -EINVAL;
        return store->ops->enroll(store, enrollment, now, ret_state);
}

int store_add_report(struct store *store, const struct store_report *report, int64_t received,
                     bool *ret_duplicate)
{
        if (!store || !report || !report->machine_id || !report->phase || !report->status ||
            !report->body || !report->sign_key || !*report->sign_key || report->seq > INT64_MAX ||
            (report->has_serial && report->serial > INT64_MAX))
                return -EINVAL;
        return store->ops->add_report(store, report, received, ret_duplicate);
}

int store_decide(struct store *store, const char *machine_id, enum store_decision decision,
                 int64_t now, enum store_state *ret_previous)
{
        if (!store || !machine_id || (unsigned)decision > STORE_DECISION_RESET)
                return -EINVAL;
        return store->ops->decide(store, machine_id, decision, now, ret_previous);
}

/* The page asked for, with its limit between 1 and max. */
static struct store_page store_page_bounded(const struct store_page *page, size_t default_limit,
                                            size_t max)
{
        struct store_page p = page ? *page : (struct store_page){};

        if (p.limit == 0)
                p.limit = default_limit;
        if (p.limit > max)
                p.limit = max;
        if (p.after_report < 0)
                p.after_report = 0;
        return p;
}

int store_list_machines(struct store *store, const struct store_page *page,
                        struct store_machine_list *ret_list)
{
        struct store_page p;

        if (!store || !ret_list)
                return -EINVAL;
        p = store_page_bounded(page, STORE_PAGE_MACHINES_DEFAULT, STORE_PAGE_MACHINES_MAX);
        return store->ops->list_machines(store, &p, ret_list);
}

int store_get_machine(struct store *store, const char *machine_id, const struct store_page *page,
                      struct store_machine *ret_machine, struct store_history *ret_history)
{
        struct store_page p;

        if (!store || !machine_id || !ret_machine || !ret_history)
                return -EINVAL;
        p = store_page_bounded(page, STORE_PAGE_REPORTS_DEFAULT, STORE_PAGE_REPORTS_MAX);
        return store->ops->get_machine(store, machine_id, &p, ret_machine, ret_history);
}

int store_stats(struct store *store, struct store_stats *ret_stats)
{
        if (!store || !ret_stats)
                return -EINVAL;
        return store->ops->stats(store, ret_stats);
}
