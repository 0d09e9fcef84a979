/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "machine_id.h"
#include "macro.h"
#include "report_body.h"

/* A phase name is not checked against the agent's current list: a report from a newer agent
 * must not be lost for naming a phase this server does not know yet. */
static bool report_body_phase_is_valid(const char *s)
{
        if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
                return false;
        for (size_t n = 1; s[n]; n++) {
                if (n >= REPORT_BODY_PHASE_MAX)
                        return false;
                if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
                      s[n] == '-'))
                        return false;
        }
        return true;
}

static bool report_body_status_is_valid(const char *s)
{
        static const char *const statuses[] = {"started", "progress", "ok", "failed"};

        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                if (streq(s, statuses[i]))
                        return true;
        return false;
}

/* Checks an optional member; returns NULL when fine, else what is wrong with it. */
static const char *report_body_check_counts(json_t *counts)
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

static const char *report_body_check_timings(json_t *timings)
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

static const char *report_body_check_log_tail(json_t *log_tail)
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
static const char *report_body_check(json_t *json, struct report_body *report)
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
        if (!json_is_string(v) || !report_body_phase_is_valid(json_string_value(v)))
                return "field 'phase' must be a phase name like 'fetch' ([a-z][a-z0-9_-]{0,31})";
        report->phase = json_string_value(v);

        v = json_object_get(json, "status");
        if (!v)
                return "missing field 'status'";
        if (!json_is_string(v) || !report_body_status_is_valid(json_string_value(v)))
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
        if (v && (problem = report_body_check_counts(v)))
                return problem;
        v = json_object_get(json, "timings");
        if (v && (problem = report_body_check_timings(v)))
                return problem;
        v = json_object_get(json, "log_tail");
        if (v && (problem = report_body_check_log_tail(v)))
                return problem;
        return NULL;
}

int report_body_parse(json_t *json, struct report_body *ret, const char **ret_problem)
{
        struct report_body report = {};
        const char *problem;

        if (!ret || !ret_problem)
                return -EINVAL;
        problem = report_body_check(json, &report);
        if (problem) {
                *ret_problem = problem;
                return -EBADMSG;
        }
        *ret = report;
        return 0;
}
