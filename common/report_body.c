/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "json_schema.h"
#include "machine_id.h"
#include "macro.h"
#include "report_body.h"

/* A phase name is not checked against the agent's current list: a report from a newer agent
 * must not be lost for naming a phase this server does not know yet. */
static bool report_body_phase_is_valid(const char *s)
{
        if (!(s[0] >= 'a' && s[0] <= 'z'))
                return false;
        for (size_t n = 1; s[n]; n++) {
                if (n >= REPORT_BODY_PHASE_MAX - 1) /* room for the NUL */
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

static const char *report_body_check_counts(json_t *counts, _unused_ void *field)
{
        static const char *const keys[] = {"substituted", "built", "built_remote",
                                           "downloaded_bytes"};

        if (!json_is_object(counts))
                return "must be an object";
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(counts, keys[i]);

                if (v && (!json_is_integer(v) || json_integer_value(v) < 0))
                        return "must hold non-negative integers";
        }
        return NULL;
}

static const char *report_body_check_timings(json_t *timings, _unused_ void *field)
{
        const char *key;
        json_t *v;

        if (!json_is_object(timings))
                return "must be an object";
        json_object_foreach(timings, key, v) {
                if (!json_is_number(v) || json_number_value(v) < 0)
                        return "must hold non-negative numbers";
        }
        return NULL;
}

static const char *report_body_check_log_tail(json_t *log_tail, _unused_ void *field)
{
        size_t i;
        json_t *v;

        if (json_is_string(log_tail))
                return NULL;
        if (!json_is_array(log_tail))
                return "must be a string or an array of strings";
        json_array_foreach(log_tail, i, v) {
                if (!json_is_string(v))
                        return "must be a string or an array of strings";
        }
        return NULL;
}

/* An update's outcome: a token like a phase name, so that a newer agent's outcome is kept, and
 * safe in a metric's label. */
static bool report_body_outcome_is_valid(const char *s)
{
        return report_body_phase_is_valid(s);
}

/* [{"name": string, "ok": bool, "attempts": integer >= 0, "error": string}, ...]: the health
 * checks; other members of an item are a newer agent's. */
static const char *report_body_check_checks(json_t *checks, _unused_ void *field)
{
        size_t i;
        json_t *c;

        if (!json_is_array(checks))
                return "must be an array of checks";
        json_array_foreach(checks, i, c) {
                json_t *name = json_object_get(c, "name"), *ok = json_object_get(c, "ok");
                json_t *attempts = json_object_get(c, "attempts"),
                       *error = json_object_get(c, "error");

                if (!json_is_object(c) || !json_is_string(name) || !json_is_boolean(ok))
                        return "must hold objects with a string name and a boolean ok";
                if (attempts && (!json_is_integer(attempts) || json_integer_value(attempts) < 0))
                        return "must hold non-negative attempts";
                if (error && !json_is_string(error))
                        return "must hold string errors";
        }
        return NULL;
}

/* Optional strings the server does not keep apart from the body: checked for their type. */
struct report_body_unused {
        const char *message;
        const char *error;
        const char *system;
        const char *previous_system;
};

struct report_body_fields {
        struct report_body report;
        struct report_body_unused unused;
};

#define RB(field) offsetof(struct report_body_fields, report.field)

static const struct json_schema_field report_body_fields[] = {
    {.key = "machine_id",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .offset = RB(machine_id),
     .valid = machine_id_is_canonical,
     .expected = "32 lowercase hexadecimal digits"},
    {.key = "seq",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .max = INT64_MAX,
     .offset = RB(seq)},
    {.key = "phase",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .offset = RB(phase),
     .valid = report_body_phase_is_valid,
     .expected = "a phase name like 'fetch' ([a-z][a-z0-9_-]{0,30})"},
    {.key = "status",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .offset = RB(status),
     .valid = report_body_status_is_valid,
     .expected = "one of started, progress, ok, failed"},
    {.key = "time",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .max = INT64_MAX,
     .offset = RB(time)},
    {.key = "serial",
     .type = JSON_SCHEMA_INTEGER,
     .max = INT64_MAX,
     .offset = RB(serial),
     .has_present = true,
     .present_offset = RB(has_serial)},
    {.key = "message",
     .type = JSON_SCHEMA_STRING,
     .offset = offsetof(struct report_body_fields, unused.message)},
    {.key = "error",
     .type = JSON_SCHEMA_STRING,
     .offset = offsetof(struct report_body_fields, unused.error)},
    {.key = "counts", .type = JSON_SCHEMA_CUSTOM, .parse = report_body_check_counts},
    {.key = "timings", .type = JSON_SCHEMA_CUSTOM, .parse = report_body_check_timings},
    {.key = "log_tail", .type = JSON_SCHEMA_CUSTOM, .parse = report_body_check_log_tail},
    {.key = "outcome",
     .type = JSON_SCHEMA_STRING,
     .offset = RB(outcome),
     .valid = report_body_outcome_is_valid,
     .expected = "an outcome like 'rolled-back' ([a-z][a-z0-9_-]{0,31})"},
    {.key = "system",
     .type = JSON_SCHEMA_STRING,
     .offset = offsetof(struct report_body_fields, unused.system)},
    {.key = "previous_system",
     .type = JSON_SCHEMA_STRING,
     .offset = offsetof(struct report_body_fields, unused.previous_system)},
    {.key = "checks", .type = JSON_SCHEMA_CUSTOM, .parse = report_body_check_checks},
};

int report_body_parse(json_t *json, struct report_body *ret,
                      char problem[static REPORT_BODY_PROBLEM_MAX])
{
        struct report_body_fields fields;
        int r;

        if (!ret || !problem)
                return -EINVAL;
        if (!json_is_object(json)) {
                (void)snprintf(problem, REPORT_BODY_PROBLEM_MAX, "a report must be a JSON object");
                return -EBADMSG;
        }
        /* Members it does not name are a newer agent's: kept in the body, not refused. */
        r = json_schema_parse(json, report_body_fields, ELEMENTSOF(report_body_fields),
                              JSON_SCHEMA_ALLOW_UNKNOWN, &fields, sizeof(fields), problem);
        if (r < 0)
                return r;
        *ret = fields.report;
        return 0;
}
