/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "machine_id.h"
#include "operator_token.h"
#include "proof.h"
#include "routes.h"
#include "service.h"
#include "util.h"

/* What a service's errno means to a client (service.h). */
static unsigned routes_status(int r)
{
        static const struct {
                int error;
                unsigned status;
        } statuses[] = {
            {-EINVAL, HTTP_STATUS_BAD_REQUEST},
            {-EBADMSG, HTTP_STATUS_BAD_REQUEST},
            {-ENOMSG, HTTP_STATUS_UNAUTHORIZED},
            {-EKEYREJECTED, HTTP_STATUS_UNAUTHORIZED},
            {-EPERM, HTTP_STATUS_FORBIDDEN},
            {-ENOENT, HTTP_STATUS_NOT_FOUND},
            {-EEXIST, HTTP_STATUS_CONFLICT},
            {-E2BIG, HTTP_STATUS_CONTENT_TOO_LARGE},
            {-EBUSY, HTTP_STATUS_SERVICE_UNAVAILABLE},
            {-EAGAIN, HTTP_STATUS_TOO_MANY_REQUESTS},
            {-EUSERS, HTTP_STATUS_SERVICE_UNAVAILABLE},
        };

        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                if (statuses[i].error == r)
                        return statuses[i].status;
        return HTTP_STATUS_INTERNAL_SERVER_ERROR;
}

static void routes_fail(struct http_response *response, int r, const char *reason)
{
        http_response_set_error(response, routes_status(r), "%s", reason);
}

static bool routes_method_is(const struct http_request *request, const char *method)
{
        /* libmicrohttpd answers HEAD with the headers of the GET response. */
        if (streq(method, "GET") && streq(request->method, "HEAD"))
                return true;
        return streq(request->method, method);
}

static void routes_method_not_allowed(const struct http_request *request,
                                      struct http_response *response, const char *allow)
{
        http_response_set_error(response, HTTP_STATUS_METHOD_NOT_ALLOWED,
                                "method %s not allowed here (allowed: %s)", request->method, allow);
        (void)http_response_add_header(response, HTTP_HEADER_ALLOW, allow);
}

/* Answers json (stolen), or 500 when it could not be made. */
static void routes_json(struct http_response *response, unsigned status, json_t *json)
{
        if (!json || http_response_set_json(response, status, json) < 0)
                http_response_set_error(response, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory");
        json_decref(json);
}

static json_t *routes_text(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *routes_optional(struct store_optional v)
{
        return v.is_set ? json_integer(v.value) : json_null();
}

/* Written by the enrollment service from validated facts; anything else shows as null. */
static json_t *routes_facts(const char *facts)
{
        json_t *v = facts ? json_loads(facts, JSON_REJECT_DUPLICATES, NULL) : NULL;

        return v ?: json_null();
}

/* The latest update: {"running_serial", "serial", "outcome", "error"}. */
static json_t *routes_update(const struct store_machine *m)
{
        return json_pack("{s:o, s:o, s:o, s:o}", "running_serial",
                         routes_optional(m->running_serial), "serial",
                         routes_optional(m->update_serial), "outcome",
                         routes_text(m->update_outcome), "error", routes_text(m->update_error));
}

static json_t *routes_machine_json(const struct store_machine *m)
{
        return json_pack(
            "{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
            "s:o}",
            "machine_id", m->machine_id, "state", store_state_to_string(m->state), "first_seen",
            (json_int_t)m->first_seen, "last_seen", (json_int_t)m->last_seen, "phase",
            routes_text(m->phase), "status", routes_text(m->status), "serial",
            routes_optional(m->serial), "reports", (json_int_t)m->reports, "reports_trimmed",
            (json_int_t)m->reports_trimmed, "hostname", routes_text(m->hostname), "sign_key",
            routes_text(m->sign_key), "box_key", routes_text(m->box_key), "enrolled_at",
            routes_optional(m->enrolled_at), "decided_at", routes_optional(m->decided_at),
            "decided_by", routes_text(m->decided_by), "conflict_at",
            routes_optional(m->conflict_at), "facts", routes_facts(m->facts), "update",
            routes_update(m));
}

/* The cursor of the page after history's: its last report's id, or null. */
static json_t *routes_report_cursor(const struct store_history *history)
{
        char id[32];

        if (!history->more || history->n_entries == 0)
                return json_null();
        (void)snprintf(id, sizeof(id), "%lld",
                       (long long)history->entries[history->n_entries - 1].id);
        return json_string(id);
}

/* The machine with its reports (stored JSON, parsed again); NULL when out of memory or a stored
 * report is not JSON. */
static json_t *routes_machine_with_history(const struct store_machine *m,
                                           const struct store_history *history)
{
        json_t *machine = routes_machine_json(m), *reports = json_array();

        for (size_t i = 0; machine && reports && i < history->n_entries; i++)
                if (json_array_append_new(reports, json_loadb(history->entries[i].body,
                                                              history->entries[i].body_size,
                                                              JSON_REJECT_DUPLICATES, NULL)) < 0)
                        goto fail;
        if (!machine || !reports ||
            json_object_set_new(machine, "reports_total", json_integer(history->total)) < 0 ||
            json_object_set_new(machine, "truncated", json_boolean(history->more)) < 0 ||
            json_object_set_new(machine, "next", routes_report_cursor(history)) < 0 ||
            json_object_set_new(machine, "reports", reports) < 0)
                goto fail;
        return machine;
fail:
        json_decref(reports);
        json_decref(machine);
        return NULL;
}

/* ?limit=N&cursor=C of a listing: limit from 1 (above the largest: the largest), cursor the
 * "next" of the page before (a machine id, or a report's id). Returns false after answering 400. */
static bool routes_page(const struct http_request *request, struct http_response *response,
                        bool of_reports, struct store_page *ret_page)
{
        const char *limit = http_request_query(request, "limit");
        const char *cursor = http_request_query(request, "cursor");
        struct store_page page = {};
        uint64_t v;

        if (limit && (parse_u64(limit, &v) < 0 || v == 0)) {
                http_response_set_error(
                    response, HTTP_STATUS_BAD_REQUEST,
                    "invalid limit '%.32s': expected a number from 1 (at "
                    "most %d are answered)",
                    limit, of_reports ? STORE_PAGE_REPORTS_MAX : STORE_PAGE_MACHINES_MAX);
                return false;
        }
        if (limit)
                page.limit = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
        if (cursor && of_reports && (parse_u64(cursor, &v) < 0 || v > INT64_MAX)) {
                http_response_set_error(response, HTTP_STATUS_BAD_REQUEST,
                                        "invalid cursor: expected the \"next\" of the page before");
                return false;
        }
        if (cursor && of_reports)
                page.after_report = (int64_t)v;
        if (cursor && !of_reports && !machine_id_is_canonical(cursor)) {
                http_response_set_error(response, HTTP_STATUS_BAD_REQUEST,
                                        "invalid cursor: expected the \"next\" of the page before");
                return false;
        }
        if (cursor && !of_reports)
                page.after_machine = cursor;
        *ret_page = page;
        return true;
}

/* The operator endpoints: true when the request carries the operator's token, else answers 401
 * with the reason. The token is never logged nor repeated. */
static bool routes_operator_allowed(const struct routes *routes, const struct http_request *request,
                                    struct http_response *response)
{
        int r = -EKEYREJECTED;

        if (routes->operator_digest)
                r = operator_token_check(routes->operator_digest, request->authorization);
        if (r == 0)
                return true;
        http_response_set_error(response, HTTP_STATUS_UNAUTHORIZED, "%s",
                                r == -ENOMSG
                                    ? "operator endpoint: send 'Authorization: Bearer TOKEN' "
                                      "with the operator token of nixprov serve"
                                    : "the bearer token is not the operator token");
        (void)http_response_add_header(response, HTTP_HEADER_WWW_AUTHENTICATE,
                                       r == -ENOMSG ? "Bearer realm=\"nixprov\""
                                                    : "Bearer realm=\"nixprov\", "
                                                      "error=\"invalid_token\"");
        return false;
}

static void routes_healthz(_unused_ const struct routes *routes,
                           _unused_ const struct http_request *request,
                           struct http_response *response)
{
        routes_json(response, HTTP_STATUS_OK, json_pack("{s:b}", "ok", 1));
}

static void routes_post_enroll(const struct routes *routes, const struct http_request *request,
                               struct http_response *response)
{
        char reason[SERVICE_REASON_MAX], machine_id[STORE_MACHINE_ID_MAX];
        enum store_state state;
        int r;

        r = service_enroll(routes->store, routes->policy, request->body, request->body_size,
                           (int64_t)time(NULL), routes->enroll_window, machine_id, &state, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        routes_json(response, HTTP_STATUS_OK,
                    json_pack("{s:s, s:s}", "machine_id", machine_id, "state",
                              store_state_to_string(state)));
}

static void routes_post_report(const struct routes *routes, const struct http_request *request,
                               struct http_response *response)
{
        char reason[SERVICE_REASON_MAX];
        bool duplicate = false;
        int r;

        r = service_add_report(routes->store, routes->pending_rate, request->body,
                               request->body_size, (int64_t)time(NULL), &duplicate, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        routes_json(response, HTTP_STATUS_OK,
                    json_pack("{s:b, s:b}", "stored", 1, "duplicate", duplicate));
}

static void routes_list_machines(const struct routes *routes, const struct http_request *request,
                                 struct http_response *response)
{
        struct store_machine_list list = {};
        char reason[SERVICE_REASON_MAX];
        struct store_page page;
        json_t *machines, *next;
        int r;

        if (!routes_page(request, response, false, &page))
                return;
        r = service_list_machines(routes->store, &page, &list, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        machines = json_array();
        for (size_t i = 0; machines && i < list.n_machines; i++)
                if (json_array_append_new(machines, routes_machine_json(&list.machines[i])) < 0) {
                        json_decref(machines);
                        machines = NULL;
                }
        next = list.more && list.n_machines > 0
                   ? json_string(list.machines[list.n_machines - 1].machine_id)
                   : json_null();
        store_machine_list_done(&list);
        routes_json(response, HTTP_STATUS_OK,
                    machines && next ? json_pack("{s:o, s:o}", "machines", machines, "next", next)
                                     : NULL);
}

static void routes_get_machine(const struct routes *routes, const struct http_request *request,
                               struct http_response *response, const char *machine_id)
{
        struct store_machine machine = {};
        struct store_history history = {};
        char reason[SERVICE_REASON_MAX];
        struct store_page page;
        json_t *json;
        int r;

        if (!routes_page(request, response, true, &page))
                return;
        r = service_get_machine(routes->store, machine_id, &page, &machine, &history, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        json = routes_machine_with_history(&machine, &history);
        store_machine_done(&machine);
        store_history_done(&history);
        if (!json) {
                http_response_set_error(response, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "failed to read the machine");
                return;
        }
        routes_json(response, HTTP_STATUS_OK, json);
}

/* A profile request of an enrolled machine must carry its device's proof: true when it may go
 * on, else answers 401 with the reason. */
static bool routes_proof_allowed(const struct routes *routes, const struct http_request *request,
                                 struct http_response *response, const char *machine_id)
{
        char reason[SERVICE_REASON_MAX], target[PROOF_TARGET_MAX + 1];
        const char *groups = http_request_query(request, "groups");
        int n, r;

        n = snprintf(target, sizeof(target), "%s%s%s", request->path, groups ? "?groups=" : "",
                     groups ?: "");
        if (n < 0 || (size_t)n >= sizeof(target)) {
                http_response_set_error(response, HTTP_STATUS_BAD_REQUEST, "request too long");
                return false;
        }
        r = service_check_proof(routes->store, machine_id, request->method, target, request->proof,
                                (int64_t)time(NULL), routes->proof_window, reason);
        if (r == 0)
                return true;
        routes_fail(response, r, reason);
        if (r == -ENOMSG || r == -EKEYREJECTED)
                (void)http_response_add_header(response, HTTP_HEADER_WWW_AUTHENTICATE,
                                               "Nixprov-Proof");
        return false;
}

/* ?wait=SECONDS of a profile request: *ret 0 when absent. -EINVAL when not a number of
 * seconds from 0 to ROUTES_WAIT_MAX. */
static int routes_wait_seconds(const struct http_request *request, unsigned *ret)
{
        const char *s = http_request_query(request, "wait");
        uint64_t v = 0;

        if (s && (parse_u64(s, &v) < 0 || v > ROUTES_WAIT_MAX))
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

/* The client has the pair already: 304, or, with ?wait= on the profile, held until the pair
 * changes or the wait ends (then 304). */
static void routes_not_modified(const struct http_request *request, struct http_response *response,
                                const char *etag, unsigned wait, enum service_profile_file file)
{
        if (wait > 0 && file == SERVICE_PROFILE_YAML) {
                if (request->may_wait) {
                        if (!request->resumed)
                                service_count(SERVICE_COUNTER_WAITS);
                        http_response_hold(response, wait);
                        return;
                }
                if (!request->resumed)
                        service_count(SERVICE_COUNTER_WAIT_REFUSED);
        }
        service_count(SERVICE_COUNTER_NOT_MODIFIED);
        http_response_set_not_modified(response);
        (void)http_response_set_etag(response, etag);
        (void)http_response_add_header(response, HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

static void routes_profile(const struct routes *routes, const struct http_request *request,
                           struct http_response *response, const char *machine_id,
                           enum service_profile_file file)
{
        char reason[SERVICE_REASON_MAX], etag[SERVICE_ETAG_MAX], *data;
        const char *source;
        unsigned wait;
        size_t size;
        int r;

        /* The proof was checked when the request came: a held one is not checked again at the
         * end of its wait, which may be longer than the proof's window. */
        if (!request->resumed && !routes_proof_allowed(routes, request, response, machine_id))
                return;
        if (routes_wait_seconds(request, &wait) < 0) {
                http_response_set_error(response, HTTP_STATUS_BAD_REQUEST,
                                        "invalid wait: expected seconds from 0 to %d",
                                        ROUTES_WAIT_MAX);
                return;
        }
        r = service_get_profile_etag(routes->store, routes->data_dir, machine_id,
                                     http_request_query(request, "groups"), file, &data, &size,
                                     &source, etag, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        if (http_etag_matches(http_request_header(request, HTTP_HEADER_IF_NONE_MATCH), etag)) {
                free(data);
                routes_not_modified(request, response, etag, wait, file);
                return;
        }
        http_response_set_data(response, HTTP_STATUS_OK,
                               file == SERVICE_PROFILE_YAML ? "application/yaml"
                                                            : "text/plain; charset=utf-8",
                               data, size);
        (void)http_response_set_etag(response, etag);
        (void)http_response_add_header(response, "X-Nixprov-Source", source);
        (void)http_response_add_header(response, HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

static void routes_metrics(const struct routes *routes, _unused_ const struct http_request *request,
                           struct http_response *response)
{
        char reason[SERVICE_REASON_MAX], *text;
        size_t size;
        int r;

        r = service_metrics(routes->store, &text, &size, reason);
        if (r < 0) {
                routes_fail(response, r, reason);
                return;
        }
        http_response_set_data(response, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8",
                               text, size);
}

/* /v1/machines/{id}[/profile|/profile.minisig] */
static void routes_machine(const struct routes *routes, const struct http_request *request,
                           struct http_response *response, const char *rest)
{
        char machine_id[STORE_MACHINE_ID_MAX];
        const char *slash = strchr(rest, '/'), *suffix;
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

        suffix = rest + n;
        if (!streq(suffix, "") && !streq(suffix, "/profile") &&
            !streq(suffix, "/profile.minisig")) {
                http_response_set_error(response, HTTP_STATUS_NOT_FOUND, "no such endpoint");
                return;
        }
        if (n < sizeof(machine_id)) {
                memcpy(machine_id, rest, n);
                machine_id[n] = '\0';
        }
        if (n >= sizeof(machine_id) || !machine_id_is_canonical(machine_id)) {
                http_response_set_error(response, HTTP_STATUS_BAD_REQUEST,
                                        "invalid machine id: expected 32 lowercase "
                                        "hexadecimal digits");
                return;
        }
        if (!routes_method_is(request, "GET")) {
                routes_method_not_allowed(request, response, "GET, HEAD");
                return;
        }

        if (streq(suffix, "")) {
                if (routes_operator_allowed(routes, request, response))
                        routes_get_machine(routes, request, response, machine_id);
        } else if (streq(suffix, "/profile"))
                routes_profile(routes, request, response, machine_id, SERVICE_PROFILE_YAML);
        else
                routes_profile(routes, request, response, machine_id, SERVICE_PROFILE_SIGNATURE);
}

/* The endpoints with a fixed path; /v1/machines/{id}... is routes_machine()'s. */
static const struct {
        const char *path;
        const char *method; /* GET also answers HEAD */
        void (*handle)(const struct routes *routes, const struct http_request *request,
                       struct http_response *response);
        bool operator; /* needs the operator's token */
} routes_fixed[] = {
    {"/healthz", "GET", routes_healthz, false},
    {"/metrics", "GET", routes_metrics, true},
    {"/v1/reports", "POST", routes_post_report, false},
    {"/v1/enroll", "POST", routes_post_enroll, false},
    {"/v1/machines", "GET", routes_list_machines, true},
};

void routes_handle(void *userdata, const struct http_request *request,
                   struct http_response *response)
{
        const struct routes *routes = userdata;
        const char *path = request->path;

        for (size_t i = 0; i < ELEMENTSOF(routes_fixed); i++) {
                if (!streq(path, routes_fixed[i].path))
                        continue;
                if (!routes_method_is(request, routes_fixed[i].method))
                        routes_method_not_allowed(request, response,
                                                  streq(routes_fixed[i].method, "GET")
                                                      ? "GET, HEAD"
                                                      : routes_fixed[i].method);
                else if (!routes_fixed[i].operator||
                          routes_operator_allowed(routes, request, response))
                        routes_fixed[i].handle(routes, request, response);
                return;
        }
        if (strncmp(path, "/v1/machines/", strlen("/v1/machines/")) == 0) {
                routes_machine(routes, request, response, path + strlen("/v1/machines/"));
                return;
        }

        http_response_set_error(response, HTTP_STATUS_NOT_FOUND, "no such endpoint");
}
