/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json_schema.h"
#include "macro.h"

struct thing {
        const char *name;
        int64_t count;
        bool enabled;
        bool has_enabled;
        json_t *tags;
};

static bool lower_only(const char *s)
{
        for (; *s; s++)
                if (*s < 'a' || *s > 'z')
                        return false;
        return true;
}

static const struct json_schema_field thing_fields[] = {
    {.key = "name",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .max_bytes = 8,
     .offset = offsetof(struct thing, name),
     .valid = lower_only,
     .expected = "lowercase letters"},
    {.key = "count",
     .type = JSON_SCHEMA_INTEGER,
     .min = 1,
     .max = 10,
     .offset = offsetof(struct thing, count)},
    {.key = "enabled",
     .type = JSON_SCHEMA_BOOLEAN,
     .offset = offsetof(struct thing, enabled),
     .has_present = true,
     .present_offset = offsetof(struct thing, has_enabled)},
    {.key = "tags",
     .type = JSON_SCHEMA_STRING_ARRAY,
     .max = 2,
     .max_bytes = 3,
     .offset = offsetof(struct thing, tags)},
};

static void test_refusals(void **state)
{
        static const struct {
                const char *json;
                const char *problem;
        } cases[] = {
            {"[]", "expected a JSON object"},
            {"{}", "missing field 'name'"},
            {"{\"name\":\"abc\",\"colour\":1}", "unknown field 'colour'"},
            {"{\"name\":7}", "field 'name' must be a string"},
            {"{\"name\":\"abcdefghi\"}", "field 'name' is too long (max 8 bytes)"},
            {"{\"name\":\"Abc\"}", "field 'name' must be lowercase letters"},
            {"{\"name\":\"a\\u0000b\"}", "field 'name' must not contain NUL"},
            {"{\"name\":\"abc\",\"count\":0}", "field 'count' must be an integer from 1 to 10"},
            {"{\"name\":\"abc\",\"count\":11}", "field 'count' must be an integer from 1 to 10"},
            {"{\"name\":\"abc\",\"count\":true}", "field 'count' must be an integer from 1 to 10"},
            {"{\"name\":\"abc\",\"enabled\":1}", "field 'enabled' must be true or false"},
            {"{\"name\":\"abc\",\"tags\":\"a\"}", "field 'tags' must be an array of strings"},
            {"{\"name\":\"abc\",\"tags\":[\"a\",\"b\",\"c\"]}",
             "field 'tags' has too many elements (max 2)"},
            {"{\"name\":\"abc\",\"tags\":[1]}", "field 'tags' must be an array of strings"},
            {"{\"name\":\"abc\",\"tags\":[\"abcd\"]}", "field 'tags' is too long (max 3 bytes)"},
            {"{\"name\":\"abc\",\"tags\":[[[[[[[[[[[[[[[[[\"a\"]]]]]]]]]]]]]]]]]}",
             "nested deeper than 16"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct thing thing = {.name = "untouched"};
                char problem[JSON_SCHEMA_PROBLEM_MAX] = "";
                json_t *json = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL);

                assert_non_null(json);
                assert_int_equal(json_schema_parse(json, thing_fields, ELEMENTSOF(thing_fields), 0,
                                                   &thing, sizeof(thing), problem),
                                 -EBADMSG);
                assert_string_equal(problem, cases[i].problem);
                assert_string_equal(thing.name, "untouched");
                json_decref(json);
        }
}

static void test_accepted(void **state)
{
        struct thing thing;
        char problem[JSON_SCHEMA_PROBLEM_MAX];
        json_t *json;
        (void)state;

        json = json_loads("{\"name\":\"abc\",\"count\":10,\"enabled\":false,\"tags\":[\"x\"]}", 0,
                          NULL);
        assert_int_equal(json_schema_parse(json, thing_fields, ELEMENTSOF(thing_fields), 0, &thing,
                                           sizeof(thing), problem),
                         0);
        assert_string_equal(thing.name, "abc");
        assert_int_equal(thing.count, 10);
        assert_false(thing.enabled);
        assert_true(thing.has_enabled);
        assert_int_equal(json_array_size(thing.tags), 1);
        json_decref(json);

        /* Unknown keys only when asked; optional ones absent stay zero. */
        json = json_loads("{\"name\":\"abc\",\"newer\":1}", 0, NULL);
        assert_int_equal(json_schema_parse(json, thing_fields, ELEMENTSOF(thing_fields),
                                           JSON_SCHEMA_ALLOW_UNKNOWN, &thing, sizeof(thing),
                                           problem),
                         0);
        assert_false(thing.has_enabled);
        assert_int_equal(thing.count, 0);
        assert_null(thing.tags);
        assert_int_equal(json_schema_parse(json, thing_fields, ELEMENTSOF(thing_fields), 0, NULL,
                                           sizeof(thing), problem),
                         -EINVAL);
        json_decref(json);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_accepted),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
