/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_schema.h"
#include "macro.h"

#define JSON_SCHEMA_STRUCT_MAX 4096 /* the largest struct a table fills */

static int json_schema_fail(char problem[static JSON_SCHEMA_PROBLEM_MAX], const char *format, ...)
    _printf_(2, 3);

static int json_schema_fail(char problem[static JSON_SCHEMA_PROBLEM_MAX], const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(problem, JSON_SCHEMA_PROBLEM_MAX, format, ap);
        va_end(ap);
        return -EBADMSG;
}

unsigned json_schema_depth(json_t *value, unsigned limit)
{
        unsigned deepest = 0;
        const char *key;
        json_t *v;
        size_t i;

        if (!json_is_object(value) && !json_is_array(value))
                return 0;
        if (limit == 0)
                return 1;
        if (json_is_object(value)) {
                json_object_foreach(value, key, v) {
                        unsigned d = json_schema_depth(v, limit - 1);

                        deepest = d > deepest ? d : deepest;
                }
        } else {
                json_array_foreach(value, i, v) {
                        unsigned d = json_schema_depth(v, limit - 1);

                        deepest = d > deepest ? d : deepest;
                }
        }
        return deepest + 1;
}

static int json_schema_string(const struct json_schema_field *f, json_t *v, const char *what,
                              char problem[static JSON_SCHEMA_PROBLEM_MAX])
{
        const char *s = json_string_value(v);

        if (!json_is_string(v))
                return json_schema_fail(problem, "field '%s' must be %s", f->key, what);
        if (strlen(s) != json_string_length(v))
                return json_schema_fail(problem, "field '%s' must not contain NUL", f->key);
        if (f->max_bytes && json_string_length(v) > f->max_bytes)
                return json_schema_fail(problem, "field '%s' is too long (max %zu bytes)", f->key,
                                        f->max_bytes);
        if (f->valid && !f->valid(s))
                return json_schema_fail(problem, "field '%s' must be %s", f->key,
                                        f->expected ?: "valid");
        return 0;
}

static int json_schema_integer(const struct json_schema_field *f, json_t *v, int64_t *ret,
                               char problem[static JSON_SCHEMA_PROBLEM_MAX])
{
        int64_t n = 0;

        if (json_is_integer(v))
                n = (int64_t)json_integer_value(v);

        if (json_is_integer(v) && n >= f->min && n <= f->max) {
                *ret = n;
                return 0;
        }
        if (f->max == INT64_MAX)
                return json_schema_fail(problem, "field '%s' must be an integer >= %" PRId64,
                                        f->key, f->min);
        return json_schema_fail(problem,
                                "field '%s' must be an integer from %" PRId64 " to %" PRId64,
                                f->key, f->min, f->max);
}

static int json_schema_array(const struct json_schema_field *f, json_t *v,
                             char problem[static JSON_SCHEMA_PROBLEM_MAX])
{
        json_t *item;
        size_t i;
        int r;

        if (!json_is_array(v))
                return json_schema_fail(problem, "field '%s' must be an array of strings", f->key);
        if (json_array_size(v) > (size_t)f->max)
                return json_schema_fail(
                    problem, "field '%s' has too many elements (max %" PRId64 ")", f->key, f->max);
        json_array_foreach(v, i, item) {
                r = json_schema_string(f, item, "an array of strings", problem);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Checks one member and stores it into out (the struct being filled). */
static int json_schema_member(const struct json_schema_field *f, json_t *v, uint8_t *out,
                              char problem[static JSON_SCHEMA_PROBLEM_MAX])
{
        const char *refusal;
        int64_t n = 0;
        int r;

        switch (f->type) {
        case JSON_SCHEMA_STRING:
                r = json_schema_string(f, v, "a string", problem);
                if (r >= 0)
                        *(const char **)(out + f->offset) = json_string_value(v);
                return r;
        case JSON_SCHEMA_INTEGER:
                r = json_schema_integer(f, v, &n, problem);
                if (r >= 0)
                        memcpy(out + f->offset, &n, sizeof(n));
                return r;
        case JSON_SCHEMA_BOOLEAN:
                if (!json_is_boolean(v))
                        return json_schema_fail(problem, "field '%s' must be true or false",
                                                f->key);
                *(bool *)(out + f->offset) = json_is_true(v);
                return 0;
        case JSON_SCHEMA_STRING_ARRAY:
                r = json_schema_array(f, v, problem);
                if (r >= 0)
                        *(json_t **)(out + f->offset) = v;
                return r;
        case JSON_SCHEMA_CUSTOM:
                refusal = f->parse ? f->parse(v, out + f->offset) : "cannot be checked";
                if (refusal)
                        return json_schema_fail(problem, "field '%s' %s", f->key, refusal);
                return 0;
        }
        return -EINVAL;
}

static const struct json_schema_field *json_schema_find(const struct json_schema_field *fields,
                                                        size_t n_fields, const char *key)
{
        for (size_t i = 0; i < n_fields; i++)
                if (streq(fields[i].key, key))
                        return &fields[i];
        return NULL;
}

int json_schema_parse(json_t *object, const struct json_schema_field *fields, size_t n_fields,
                      unsigned flags, void *ret, size_t ret_size,
                      char problem[static JSON_SCHEMA_PROBLEM_MAX])
{
        _cleanup_free_ uint8_t *out = NULL;
        const char *key;
        json_t *v;
        int r;

        if (!fields || !ret || !problem || ret_size == 0 || ret_size > JSON_SCHEMA_STRUCT_MAX)
                return -EINVAL;
        if (!json_is_object(object))
                return json_schema_fail(problem, "expected a JSON object");
        if (json_schema_depth(object, JSON_SCHEMA_DEPTH_MAX) > JSON_SCHEMA_DEPTH_MAX)
                return json_schema_fail(problem, "nested deeper than %d", JSON_SCHEMA_DEPTH_MAX);
        if (!(flags & JSON_SCHEMA_ALLOW_UNKNOWN))
                json_object_foreach(object, key, v) {
                        if (!json_schema_find(fields, n_fields, key))
                                return json_schema_fail(problem, "unknown field '%s'", key);
                }

        /* Filled in a copy, so that ret is untouched on a refusal. */
        out = calloc(1, ret_size);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n_fields; i++) {
                const struct json_schema_field *f = &fields[i];

                v = json_object_get(object, f->key);
                if (!v) {
                        if (f->required)
                                return json_schema_fail(problem, "missing field '%s'", f->key);
                        continue;
                }
                r = json_schema_member(f, v, out, problem);
                if (r < 0)
                        return r;
                if (f->has_present)
                        out[f->present_offset] = true;
        }
        memcpy(ret, out, ret_size);
        return 0;
}
