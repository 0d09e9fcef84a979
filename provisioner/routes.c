/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <microhttpd.h>

#include "enrollment.h"
#include "log.h"
#include "machine_id.h"
#include "routes.h"
#include "signedjson.h"
#include "util.h"

#define ROUTES_PHASE_MAX 32

enum routes_file {
        ROUTES_FILE_PROFILE,
        ROUTES_FILE_SIGNATURE,
};

bool routes_group_name_is_valid(const char *s)
{
        if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t n = 1; s[n]; n++) {
                if (n >= 64)
                        return false;
                if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '.' ||
                      s[n] == '_' || s[n] == '-'))
                        return false;
        }
        return true;
}

/* A phase name is not checked against the agent's current list: a report from a newer agent
 * must not be lost for naming a phase this server does not know yet. */
static bool routes_phase_is_valid(const char *s)
{
        if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
                return false;
        for (size_t n = 1; s[n]; n++) {
                if (n >= ROUTES_PHASE_MAX)
                        return false;
                if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
                      s[n] == '-'))
                        return false;
        }
        return true;
}

static bool routes_status_is_valid(const char *s)
{
        static const char *const statuses[] = {"started", "progress", "ok", "failed"};

        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                if (streq(s, statuses[i]))
                        return true;
        return false;
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
        http_response_set_error(response, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "method %s not allowed here (allowed: %s)", request->method, allow);
        (void)http_response_add_header(response, MHD_HTTP_HEADER_ALLOW, allow);
}

static void routes_json(struct http_response *response, unsigned status, json_t *json)
{
        if (!json || http_response_set_json(response, status, json) < 0)
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        json_decref(json);
}

static void routes_healthz(_unused_ const struct routes *routes,
                           _unused_ const struct http_request *request,
                           struct http_response *response)
{
        routes_json(response, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

/* Which profile a machine gets: its own file, else the first of its groups that has one, else
 * the default. Returns 0 with the path of the profile (without ".minisig"), -ENOENT when there
 * is none, -EINVAL for a bad group list, or another negative errno. */
static int routes_choose_profile(const struct routes *routes, const char *machine_id,
                                 const char *groups, char **ret_path, const char **ret_source)
{
        _cleanup_free_ char *path = NULL, *list = NULL;
        struct stat st;

        if (asprintf(&path, "%s/machines/%s.yaml", routes->data_dir, machine_id) < 0)
                return -ENOMEM;
        if (stat(path, &st) == 0) {
                *ret_source = "machine";
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        if (errno != ENOENT)
                return -errno;
        free(TAKE_PTR(path));

        if (groups && *groups) {
                char *names[ROUTES_GROUPS_MAX];
                size_t n_names = 0;

                list = strdup(groups);
                if (!list)
                        return -ENOMEM;
                /* Every name is validated before any file is looked at. */
                for (char *p = list;;) {
                        char *comma = strchr(p, ',');

                        if (comma)
                                *comma = '\0';
                        if (n_names >= ROUTES_GROUPS_MAX || !routes_group_name_is_valid(p))
                                return -EINVAL;
                        names[n_names++] = p;
                        if (!comma)
                                break;
                        p = comma + 1;
                }

                for (size_t i = 0; i < n_names; i++) {
                        if (asprintf(&path, "%s/groups/%s.yaml", routes->data_dir, names[i]) < 0)
                                return -ENOMEM;
                        if (stat(path, &st) == 0) {
                                *ret_source = "group";
                                *ret_path = TAKE_PTR(path);
                                return 0;
                        }
                        if (errno != ENOENT)
                                return -errno;
                        free(TAKE_PTR(path));
                }
        }

        if (asprintf(&path, "%s/default.yaml", routes->data_dir) < 0)
                return -ENOMEM;
        if (stat(path, &st) == 0) {
                *ret_source = "default";
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        return errno == ENOENT ? -ENOENT : -errno;
}

/* Answers 403 (or 5xx) and returns false unless the machine is approved: a profile may carry
 * what only an approved device should see (its sealed secrets, the fleet's settings). */
static bool routes_machine_is_approved(const struct routes *routes, struct http_response *response,
                                       const char *machine_id)
{
        struct store_trust trust;
        int r;

        r = store_get_trust(routes->store, machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && trust.state == STORE_STATE_UNENROLLED)) {
                http_response_set_error(response, MHD_HTTP_FORBIDDEN,
                                        "machine %s is not enrolled: it must POST /v1/enroll first",
                                        machine_id);
                return false;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", machine_id);
                http_response_set_error(response,
                                        r == -EBUSY ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                    : MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to read the machine's state");
                return false;
        }
        if (trust.state == STORE_STATE_PENDING) {
                http_response_set_error(response, MHD_HTTP_FORBIDDEN,
                                        "machine %s is waiting for an operator's approval "
                                        "('nixprov fleet approve %s')",
                                        machine_id, machine_id);
                return false;
        }
        if (trust.state == STORE_STATE_REVOKED) {
                http_response_set_error(response, MHD_HTTP_FORBIDDEN, "machine %s is revoked",
                                        machine_id);
                return false;
        }
        return true;
}

static void routes_profile(const struct routes *routes, const struct http_request *request,
                           struct http_response *response, const char *machine_id,
                           enum routes_file file)
{
        _cleanup_free_ char *path = NULL, *signature_path = NULL, *data = NULL;
        const char *source = NULL, *read_path;
        size_t size;
        int r;

        if (!routes_machine_is_approved(routes, response, machine_id))
                return;
        r = routes_choose_profile(routes, machine_id, http_request_query(request, "groups"), &path,
                                  &source);
        if (r == -EINVAL) {
                http_response_set_error(
                    response, MHD_HTTP_BAD_REQUEST,
                    "invalid groups: expected at most %d comma-separated names matching "
                    "[a-z0-9][a-z0-9._-]{0,63}",
                    ROUTES_GROUPS_MAX);
                return;
        }
        if (r == -ENOENT) {
                http_response_set_error(response, MHD_HTTP_NOT_FOUND, "no profile for machine %s",
                                        machine_id);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to look up the profile of %s: %m", machine_id);
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to look up the profile");
                return;
        }

        read_path = path;
        if (file == ROUTES_FILE_SIGNATURE) {
                if (asprintf(&signature_path, "%s.minisig", path) < 0) {
                        http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                                "out of memory");
                        return;
                }
                read_path = signature_path;
        }
        r = read_file_bounded(
            read_path, file == ROUTES_FILE_PROFILE ? ROUTES_PROFILE_MAX : ROUTES_SIGNATURE_MAX,
            &data, &size);
        if (r == -ENOENT) {
                http_response_set_error(
                    response, MHD_HTTP_NOT_FOUND, "no %s for machine %s (%s profile)",
                    file == ROUTES_FILE_PROFILE ? "profile" : "signature", machine_id, source);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read %s: %m", read_path);
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to read the %s",
                                        file == ROUTES_FILE_PROFILE ? "profile" : "signature");
                return;
        }

        http_response_set_data(response, MHD_HTTP_OK,
                               file == ROUTES_FILE_PROFILE ? "application/yaml"
                                                           : "text/plain; charset=utf-8",
                               TAKE_PTR(data), size);
        (void)http_response_add_header(response, "X-Nixprov-Source", source);
        (void)http_response_add_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

/* Checks an optional member; returns NULL when fine, else what is wrong with it. */
static const char *routes_check_counts(json_t *counts)
{
        static const char *const keys[] = {"substituted", "built", "built_remote",
                                           "downloaded_bytes"};

        if (!json_is_object(counts))
                return "field 'counts' must be an object";
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(counts, keys[i]);

                if (v && (!json_is_integer(v) || json_integer_value(v) < 0))
                        return "fields of 'counts' must be non-negative integers";
        }
        return NULL;
}

static const char *routes_check_timings(json_t *timings)
{
        const char *key;
        json_t *v;

        if (!json_is_object(timings))
                return "field 'timings' must be an object";
        json_object_foreach(timings, key,
                            v) if (!json_is_number(v) ||
                                   json_number_value(v) <
                                       0) return "fields of 'timings' must be non-negative numbers";
        return NULL;
}

static const char *routes_check_log_tail(json_t *log_tail)
{
        size_t i;
        json_t *v;

        if (json_is_string(log_tail))
                return NULL;
        if (!json_is_array(log_tail))
                return "field 'log_tail' must be a string or an array of strings";
        json_array_foreach(log_tail, i, v) if (
            !json_is_string(v)) return "field 'log_tail' must be a string or an array of strings";
        return NULL;
}

/* Validates a report's members and fills report from them (borrowing json's strings). Returns
 * NULL, or a message for the client. */
static const char *routes_parse_report(json_t *json, struct store_report *report)
{
        json_t *v;
        const char *problem;

        if (!json_is_object(json))
                return "a report must be a JSON object";

        v = json_object_get(json, "machine_id");
        if (!v)
                return "missing field 'machine_id'";
        if (!json_is_string(v) || !machine_id_is_canonical(json_string_value(v)))
                return "field 'machine_id' must be 32 lowercase hexadecimal digits";
        report->machine_id = json_string_value(v);

        v = json_object_get(json, "seq");
        if (!v)
                return "missing field 'seq'";
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return "field 'seq' must be a non-negative integer";
        report->seq = (uint64_t)json_integer_value(v);

        v = json_object_get(json, "phase");
        if (!v)
                return "missing field 'phase'";
        if (!json_is_string(v) || !routes_phase_is_valid(json_string_value(v)))
                return "field 'phase' must be a phase name like 'fetch' ([a-z][a-z0-9_-]{0,31})";
        report->phase = json_string_value(v);

        v = json_object_get(json, "status");
        if (!v)
                return "missing field 'status'";
        if (!json_is_string(v) || !routes_status_is_valid(json_string_value(v)))
                return "field 'status' must be one of started, progress, ok, failed";
        report->status = json_string_value(v);

        v = json_object_get(json, "time");
        if (!v)
                return "missing field 'time'";
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return "field 'time' must be a non-negative integer (seconds since the epoch)";
        report->time = json_integer_value(v);

        v = json_object_get(json, "serial");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                        return "field 'serial' must be a non-negative integer";
                report->has_serial = true;
                report->serial = (uint64_t)json_integer_value(v);
        }

        v = json_object_get(json, "message");
        if (v && !json_is_string(v))
                return "field 'message' must be a string";
        v = json_object_get(json, "error");
        if (v && !json_is_string(v))
                return "field 'error' must be a string";
        v = json_object_get(json, "counts");
        if (v && (problem = routes_check_counts(v)))
                return problem;
        v = json_object_get(json, "timings");
        if (v && (problem = routes_check_timings(v)))
                return problem;
        v = json_object_get(json, "log_tail");
        if (v && (problem = routes_check_log_tail(v)))
                return problem;
        return NULL;
}

static void routes_store_failed(struct http_response *response, int r, const char *what)
{
        http_response_set_error(
            response, r == -EBUSY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR,
            "failed to store the %s", what);
}

/* A --max-body above what a signature may cover. */
static void routes_signed_too_large(struct http_response *response)
{
        http_response_set_error(response, MHD_HTTP_CONTENT_TOO_LARGE,
                                "signed body too large (at most %d bytes)", SIGNEDJSON_MAX);
}

/* Parses a body as JSON, answering 400 when it is not. */
static json_t *routes_parse_json(const struct http_request *request, struct http_response *response)
{
        json_error_t error;
        json_t *json;

        json = json_loadb(request->body, request->body_size, JSON_REJECT_DUPLICATES, &error);
        if (!json)
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "malformed JSON at line %d, column %d: %s", error.line,
                                        error.column, error.text);
        return json;
}

/* A signed body (signedjson.h) parsed as JSON, the signature not checked yet (the key depends on
 * what the body says). what ("enrollment", "reports") names it in the 401 of an unsigned one.
 * NULL with the answer set when the body is unsigned, malformed or too large. */
static json_t *routes_parse_signed_json(const struct http_request *request,
                                        struct http_response *response, const char *what)
{
        uint8_t signature[crypto_sign_BYTES];
        size_t n;
        int r;

        r = signedjson_split(request->body, request->body_size, &n, signature);
        if (r == -ENOMSG) {
                http_response_set_error(response, MHD_HTTP_UNAUTHORIZED,
                                        "%s must be signed by the device key", what);
                return NULL;
        }
        if (r == -E2BIG) {
                routes_signed_too_large(response);
                return NULL;
        }
        if (r < 0) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "malformed signature member: expected "
                                        "\"signature\":\"BASE64\" (64 bytes) as the last member");
                return NULL;
        }
        return routes_parse_json(request, response);
}

static void routes_post_enroll(const struct routes *routes, const struct http_request *request,
                               struct http_response *response)
{
        struct enrollment_request enrollment = {};
        struct store_enrollment record;
        struct store_trust before;
        bool known;
        _cleanup_free_ char *facts = NULL;
        enum store_state state;
        const char *problem = NULL;
        json_t *json;
        int r;

        /* The size cap is http.c's (413); then the signature's place, before any parsing. */
        json = routes_parse_signed_json(request, response, "enrollment");
        if (!json)
                return;
        r = enrollment_request_parse(json, &enrollment, &problem);
        if (r == -EBADMSG) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST, "%s", problem);
                goto out;
        }
        if (r < 0) {
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
                goto out;
        }

        /* Proof of possession: signed by the key it asks the server to trust. */
        r = signedjson_verify(SIGNEDJSON_CONTEXT_ENROLL, request->body, request->body_size,
                              enrollment.sign_key);
        if (r == -EKEYREJECTED) {
                http_response_set_error(response, MHD_HTTP_UNAUTHORIZED,
                                        "signature does not verify with the enclosed sign_key");
                goto out;
        }
        if (r < 0) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "malformed signature member");
                goto out;
        }

        facts = json_dumps(enrollment.facts, JSON_COMPACT | JSON_SORT_KEYS);
        if (!facts) {
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
                goto out;
        }
        record = (struct store_enrollment){
            .machine_id = enrollment.machine_id,
            .hostname = enrollment.hostname,
            .facts = facts,
            .sign_key = enrollment.sign_key_base64,
            .box_key = enrollment.box_key_base64,
            .decided_by = enrollment_policy_match(routes->policy, &enrollment),
        };
        known = store_get_trust(routes->store, enrollment.machine_id, &before) >= 0 &&
                before.has_keys;
        /* With refuse-unmatched, only devices a rule approves reach the database; one already
         * enrolled (approved by an operator before, or revoked) is still answered its state. */
        if (!record.decided_by && !known && routes->policy && routes->policy->refuse_unmatched) {
                log_info("Machine %s (%s) refused: no rule of the enrollment policy approves it.",
                         enrollment.machine_id, enrollment.hostname);
                http_response_set_error(response, MHD_HTTP_FORBIDDEN,
                                        "machine %s is not approved by the enrollment policy, "
                                        "which refuses the others (refuse-unmatched)",
                                        enrollment.machine_id);
                goto out;
        }
        r = store_enroll(routes->store, &record, (int64_t)time(NULL), &state);
        if (r == -EKEYREJECTED) {
                log_warning("Machine %s tried to enroll with another device key than the one it "
                            "enrolled with; refused.",
                            enrollment.machine_id);
                http_response_set_error(
                    response, MHD_HTTP_CONFLICT,
                    "machine %s is enrolled with another device key (a cloned or reinstalled "
                    "disk?): an operator can allow the new key with 'nixprov fleet reset %s'",
                    enrollment.machine_id, enrollment.machine_id);
                goto out;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to store the enrollment of %s: %m",
                                enrollment.machine_id);
                routes_store_failed(response, r, "enrollment");
                goto out;
        }
        /* Said once, when the machine or its state is new: a pending device asks again and
         * again while it waits. */
        if ((!known || before.state != state) && state == STORE_STATE_PENDING)
                log_info("Machine %s (%s) enrolled: pending; 'nixprov fleet approve %s' on this "
                         "host admits it.",
                         enrollment.machine_id, enrollment.hostname, enrollment.machine_id);
        else if (!known || before.state != state)
                log_info("Machine %s (%s) enrolled: %s%s%s.", enrollment.machine_id,
                         enrollment.hostname, store_state_to_string(state),
                         record.decided_by ? " by " : "", record.decided_by ?: "");
        else
                log_debug("Machine %s enrolled again: %s.", enrollment.machine_id,
                          store_state_to_string(state));
        routes_json(response, MHD_HTTP_OK,
                    json_pack("{s:s, s:s}", "machine_id", enrollment.machine_id, "state",
                              store_state_to_string(state)));
out:
        enrollment_request_done(&enrollment);
        json_decref(json);
}

static void routes_post_report(const struct routes *routes, const struct http_request *request,
                               struct http_response *response)
{
        struct store_report report = {};
        uint8_t sign_key[crypto_sign_PUBLICKEYBYTES];
        struct store_trust trust;
        const char *problem;
        json_t *json;
        bool duplicate;
        size_t n;
        int r;

        json = routes_parse_signed_json(request, response, "reports");
        if (!json)
                return;
        problem = routes_parse_report(json, &report);
        if (problem) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST, "%s", problem);
                goto out;
        }

        r = store_get_trust(routes->store, report.machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && !trust.has_keys)) {
                http_response_set_error(response, MHD_HTTP_FORBIDDEN, "machine %s is not enrolled",
                                        report.machine_id);
                goto out;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", report.machine_id);
                routes_store_failed(response, r, "report");
                goto out;
        }
        if (trust.state == STORE_STATE_REVOKED) {
                http_response_set_error(response, MHD_HTTP_FORBIDDEN, "machine %s is revoked",
                                        report.machine_id);
                goto out;
        }
        if (base64_decode_strict(trust.sign_key, strlen(trust.sign_key), sign_key, sizeof(sign_key),
                                 &n) < 0 ||
            n != sizeof(sign_key)) {
                log_error("The enrolled sign_key of machine %s is not a key.", report.machine_id);
                routes_store_failed(response, -EBADMSG, "report");
                goto out;
        }
        r = signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, request->body, request->body_size,
                              sign_key);
        if (r == -EKEYREJECTED) {
                http_response_set_error(response, MHD_HTTP_UNAUTHORIZED,
                                        "report signature does not verify with the key machine %s "
                                        "enrolled",
                                        report.machine_id);
                goto out;
        }
        if (r < 0) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "malformed signature member");
                goto out;
        }

        /* Stored as received, signature and all: anyone can check it again later. */
        report.sign_key = trust.sign_key;
        report.body = request->body;
        report.body_size = request->body_size;
        r = store_add_report(routes->store, &report, (int64_t)time(NULL), &duplicate);
        if (r == -EEXIST) {
                http_response_set_error(response, MHD_HTTP_CONFLICT,
                                        "report %llu of machine %s was already stored with other "
                                        "content",
                                        (unsigned long long)report.seq, report.machine_id);
                goto out;
        }
        if (r == -EPERM) {
                /* Revoked or reset between the look and the store. */
                http_response_set_error(response, MHD_HTTP_FORBIDDEN, "machine %s is not enrolled",
                                        report.machine_id);
                goto out;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to store report %s/%llu: %m", report.machine_id,
                                (unsigned long long)report.seq);
                routes_store_failed(response, r, "report");
                goto out;
        }
        routes_json(response, MHD_HTTP_OK,
                    json_pack("{s:b, s:b}", "stored", 1, "duplicate", duplicate));
out:
        json_decref(json);
}

static void routes_list_machines(const struct routes *routes,
                                 _unused_ const struct http_request *request,
                                 struct http_response *response)
{
        json_t *machines;
        int r;

        r = store_list_machines(routes->store, &machines);
        if (r < 0) {
                log_error_errno(r, "Failed to list machines: %m");
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to list machines");
                return;
        }
        routes_json(response, MHD_HTTP_OK, machines);
}

static void routes_get_machine(const struct routes *routes, struct http_response *response,
                               const char *machine_id)
{
        json_t *machine;
        int r;

        r = store_get_machine(routes->store, machine_id, &machine);
        if (r == -ENOENT) {
                http_response_set_error(response, MHD_HTTP_NOT_FOUND, "unknown machine %s",
                                        machine_id);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read machine %s: %m", machine_id);
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to read the machine");
                return;
        }
        routes_json(response, MHD_HTTP_OK, machine);
}

static void routes_metrics(const struct routes *routes, _unused_ const struct http_request *request,
                           struct http_response *response)
{
        struct buf text = BUF_INIT(1024 * 1024);
        json_t *stats, *by_status, *count;
        const char *status;
        char *data;
        size_t size;
        int r;

        r = store_stats(routes->store, &stats);
        if (r < 0) {
                log_error_errno(r, "Failed to count machines and reports: %m");
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to read the metrics");
                return;
        }
        by_status = json_object_get(stats, "by_status");
        r = buf_puts(&text, "# HELP nixprov_machines Machines known to the server, by the status "
                            "of their latest report.\n# TYPE nixprov_machines gauge\n");
        /* Statuses come from the store, validated at insertion: nothing to escape. */
        json_object_foreach(by_status, status, count) if (r >= 0) r =
            buf_printf(&text, "nixprov_machines{status=\"%s\"} %lld\n", status,
                       (long long)json_integer_value(count));
        if (r >= 0)
                r = buf_puts(&text, "# HELP nixprov_machines_enrollment Machines known to the "
                                    "server, by enrollment state.\n"
                                    "# TYPE nixprov_machines_enrollment gauge\n");
        /* States come from the store's own fixed set. */
        json_object_foreach(json_object_get(stats, "by_state"), status, count) if (r >= 0) r =
            buf_printf(&text, "nixprov_machines_enrollment{state=\"%s\"} %lld\n", status,
                       (long long)json_integer_value(count));
        if (r >= 0)
                r = buf_printf(&text,
                               "# HELP nixprov_reports_total Reports stored.\n"
                               "# TYPE nixprov_reports_total counter\n"
                               "nixprov_reports_total %lld\n",
                               (long long)json_integer_value(json_object_get(stats, "reports")));
        json_decref(stats);
        if (r < 0) {
                buf_free(&text);
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                        "failed to format the metrics");
                return;
        }
        data = buf_steal(&text, &size);
        if (!data) {
                http_response_set_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
                return;
        }
        http_response_set_data(response, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                               data, size);
}

/* /v1/machines/{id}[/profile|/profile.minisig] */
static void routes_machine(const struct routes *routes, const struct http_request *request,
                           struct http_response *response, const char *rest)
{
        char machine_id[33];
        const char *slash = strchr(rest, '/'), *suffix;
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

        suffix = rest + n;
        if (!streq(suffix, "") && !streq(suffix, "/profile") &&
            !streq(suffix, "/profile.minisig")) {
                http_response_set_error(response, MHD_HTTP_NOT_FOUND, "no such endpoint");
                return;
        }
        if (n != 32) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "invalid machine id: expected 32 lowercase "
                                        "hexadecimal digits");
                return;
        }
        memcpy(machine_id, rest, 32);
        machine_id[32] = '\0';
        if (!machine_id_is_canonical(machine_id)) {
                http_response_set_error(response, MHD_HTTP_BAD_REQUEST,
                                        "invalid machine id: expected 32 lowercase "
                                        "hexadecimal digits");
                return;
        }
        if (!routes_method_is(request, "GET")) {
                routes_method_not_allowed(request, response, "GET, HEAD");
                return;
        }

        if (streq(suffix, ""))
                routes_get_machine(routes, response, machine_id);
        else if (streq(suffix, "/profile"))
                routes_profile(routes, request, response, machine_id, ROUTES_FILE_PROFILE);
        else
                routes_profile(routes, request, response, machine_id, ROUTES_FILE_SIGNATURE);
}

/* The endpoints with a fixed path; /v1/machines/{id}... is routes_machine()'s. */
static const struct {
        const char *path;
        const char *method; /* GET also answers HEAD */
        void (*handle)(const struct routes *routes, const struct http_request *request,
                       struct http_response *response);
} routes_fixed[] = {
        {"/healthz", "GET", routes_healthz},
        {"/metrics", "GET", routes_metrics},
        {"/v1/reports", "POST", routes_post_report},
        {"/v1/enroll", "POST", routes_post_enroll},
        {"/v1/machines", "GET", routes_list_machines},
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
                else
                        routes_fixed[i].handle(routes, request, response);
                return;
        }
        if (strncmp(path, "/v1/machines/", strlen("/v1/machines/")) == 0) {
                routes_machine(routes, request, response, path + strlen("/v1/machines/"));
                return;
        }

        http_response_set_error(response, MHD_HTTP_NOT_FOUND, "no such endpoint");
}
