/* SPDX-License-Identifier: MIT */
#pragma once

/* The services of nixprov serve: the rules behind each endpoint, between the routes (which
 * know HTTP) and the store (which knows the database). A service returns 0, or a negative errno
 * with reason[] set to a message for the client; the routes map the errno to a status:
 *
 *   -EINVAL, -EBADMSG  the request is malformed            400
 *   -ENOMSG            it is not signed                    401
 *   -EKEYREJECTED      its signature does not verify       401
 *   -EPERM             the machine may not do this         403
 *   -ENOENT            no such machine or profile          404
 *   -EEXIST            it conflicts with what is stored    409
 *   -E2BIG             it is too large                     413
 *   -EAGAIN            too many from this machine for now  429
 *   -EBUSY             the database is busy                503
 *   -EUSERS            too many machines are pending       503
 *   anything else      the server failed                   500
 *
 * A database error is never -ENOENT or -EPERM: what the store could not read is not known to
 * be absent. The services log what an operator should see (an enrollment, a conflict, a failed
 * database); nothing here knows libmicrohttpd. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "enrollment.h"
#include "macro.h"
#include "store.h"

#define SERVICE_REASON_MAX 512
#define SERVICE_PROFILE_MAX (1024 * 1024)
#define SERVICE_SIGNATURE_MAX (8 * 1024)
#define SERVICE_GROUPS_MAX 32 /* names in ?groups= */
#define SERVICE_METRICS_MAX (1024 * 1024)

/* Formats reason and returns r (negative). */
int service_fail(char reason[static SERVICE_REASON_MAX], int r, const char *format, ...)
    _printf_(3, 4);

/* The errno of a failed store operation as a service answers it: -EBUSY stays (503), the rest
 * becomes -EIO (500), so that no database error reads as "not found" or "forbidden". */
int service_store_errno(int r);

/* A signed body (signedjson.h) parsed as JSON, the signature not checked yet (the key depends on
 * what the body says); what ("enrollment", "reports") names it in the refusal of an unsigned
 * one. Returns 0 with a new reference, -ENOMSG (unsigned), -E2BIG, or -EBADMSG. */
int service_parse_signed(const char *body, size_t body_size, const char *what, json_t **ret_json,
                         char reason[static SERVICE_REASON_MAX]);

/* POST /v1/enroll: validates the signed body, checks the signature with the key it carries,
 * refuses a time more than window seconds from now (-EINVAL) or not newer than the machine's
 * last accepted enrollment (-EEXIST, nothing changed), applies the policy (NULL: every
 * enrollment waits for an operator) and records it at time now. Returns 0 with the machine's id (33
 * bytes) and state, or a negative errno and reason. */
int service_enroll(struct store *store, const struct enrollment_policy *policy, const char *body,
                   size_t body_size, int64_t now, int64_t window,
                   char ret_machine_id[static STORE_MACHINE_ID_MAX], enum store_state *ret_state,
                   char reason[static SERVICE_REASON_MAX]);

#define SERVICE_RATE_SLOTS 4096
#define SERVICE_PENDING_RATE_DEFAULT 12 /* reports a minute a pending machine may send */

/* Reports a minute per machine: a table of SERVICE_RATE_SLOTS counters, a machine's slot chosen
 * by a keyed hash of its id (another machine in the slot starts it over), each counting the
 * reports of the current minute. Safe to share between threads. */
struct service_rate;

int service_rate_new(int64_t per_minute, struct service_rate **ret);
struct service_rate *service_rate_free(struct service_rate *rate);
DEFINE_POINTER_CLEANUP(service_rate, service_rate_free)

/* Takes one report of machine_id at time now: true when it is within the rate. */
bool service_rate_take(struct service_rate *rate, const char *machine_id, int64_t now);

/* POST /v1/reports: validates the signed report, checks it against the key the machine
 * enrolled, and stores it as received at time now. A pending machine's reports past
 * pending_rate (NULL: no limit) are refused with -EAGAIN before anything is written. Returns 0
 * with *ret_duplicate, or a negative errno and reason. */
int service_add_report(struct store *store, struct service_rate *pending_rate, const char *body,
                       size_t body_size, int64_t now, bool *ret_duplicate,
                       char reason[static SERVICE_REASON_MAX]);

enum service_profile_file {
        SERVICE_PROFILE_YAML,
        SERVICE_PROFILE_SIGNATURE,
};

/* GET /v1/machines/ID/profile[.minisig]: for an approved machine only, the file chosen from
 * data_dir (its own, else its first group's from groups, a comma-separated list or NULL, else
 * the default). Returns 0 with the malloc'd file, its size and where it came from ("machine",
 * "group", "default"), or a negative errno and reason. */
int service_get_profile(struct store *store, const char *data_dir, const char *machine_id,
                        const char *groups, enum service_profile_file file, char **ret_data,
                        size_t *ret_size, const char **ret_source,
                        char reason[static SERVICE_REASON_MAX]);

/* Enrollments refused since the server started because --pending-max machines were pending. */
uint64_t service_enrollment_refused_pending(void);

/* The device's proof on a request for machine_id's profile (proof.h): header is the
 * X-Nixprov-Proof value (NULL: none), target the decoded path and query it signs. A machine
 * without an enrolled key passes (the profile's own rules refuse it); an enrolled one needs a
 * valid proof whose time is within window seconds of now. Returns 0, -ENOMSG (no proof, or a
 * malformed one), -EKEYREJECTED (another machine's, stale, or a signature that does not
 * verify), or a store error, each with reason. */
int service_check_proof(struct store *store, const char *machine_id, const char *method,
                        const char *target, const char *header, int64_t now, int64_t window,
                        char reason[static SERVICE_REASON_MAX]);

/* The ETag of a profile answer: BLAKE2b-128 of the profile and its signature, in hex and
 * quoted, so that both change together (the same tag for the profile and its .minisig). */
#define SERVICE_ETAG_MAX 40

/* service_get_profile() with the ETag of the pair the answer belongs to, computed from the
 * bytes answered and the other file as read right after (a profile published in between gives
 * a tag that names neither pair: it is fetched again). */
int service_get_profile_etag(struct store *store, const char *data_dir, const char *machine_id,
                             const char *groups, enum service_profile_file file, char **ret_data,
                             size_t *ret_size, const char **ret_source,
                             char *ret_etag /* SERVICE_ETAG_MAX, or NULL */,
                             char reason[static SERVICE_REASON_MAX]);

/* What the profile routes count, for /metrics. */
enum service_counter {
        SERVICE_COUNTER_NOT_MODIFIED, /* profile answers 304 Not Modified */
        SERVICE_COUNTER_WAITS,        /* requests held until a change or the wait's end */
        SERVICE_COUNTER_WAIT_REFUSED, /* ... answered at once: --max-waiters were waiting */
        _SERVICE_COUNTER_MAX,
};
void service_count(enum service_counter counter);

/* The number of requests waiting now, for /metrics (set by serve; NULL: 0). */
void service_set_waiters_fn(unsigned (*fn)(void *userdata), void *userdata);

/* Noticing that a profile was published: inotify on data_dir, data_dir/machines and
 * data_dir/groups (made later: watched from then on). changed(userdata) is called from the
 * watch's own thread once the files have been quiet for SERVICE_WATCH_SETTLE_MS after a change
 * (a profile and then its signature), at most SERVICE_WATCH_SETTLE_MAX_MS after the first. */
#define SERVICE_WATCH_SETTLE_MS 100
#define SERVICE_WATCH_SETTLE_MAX_MS 1000
struct service_watch;
int service_watch_start(const char *data_dir, void (*changed)(void *userdata), void *userdata,
                        struct service_watch **ret);
struct service_watch *service_watch_stop(struct service_watch *w);
DEFINE_POINTER_CLEANUP(service_watch, service_watch_stop)

/* GET /metrics: the store's counts as Prometheus text (malloc'd). Returns 0 or a negative errno
 * and reason. */
int service_metrics(struct store *store, char **ret_text, size_t *ret_size,
                    char reason[static SERVICE_REASON_MAX]);

/* GET /v1/machines and /v1/machines/ID: the store's answers, with its errors mapped as above. */
int service_list_machines(struct store *store, const struct store_page *page,
                          struct store_machine_list *ret_list,
                          char reason[static SERVICE_REASON_MAX]);
int service_get_machine(struct store *store, const char *machine_id, const struct store_page *page,
                        struct store_machine *ret_machine, struct store_history *ret_history,
                        char reason[static SERVICE_REASON_MAX]);
