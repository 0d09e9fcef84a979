/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "report_body.h"

#define M1 "0123456789abcdef0123456789abcdef"
#define OK_HEAD                                                                                    \
        "{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"fetch\",\"status\":\"ok\",\"time\":1"
#define WITH(extra) OK_HEAD "," extra "}"

static json_t *load(const char *text)
{
        json_t *json = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);

        assert_non_null(json);
        return json;
}

/* Every refusal, with its exact message; nothing is written to ret. */
static void test_refusals(void **state)
{
        static const struct {
                const char *json;
                const char *problem;
        } cases[] = {
            {"[]", "a report must be a JSON object"},
            {"{\"seq\":3,\"phase\":\"fetch\",\"status\":\"ok\",\"time\":1}",
             "missing field 'machine_id'"},
            {"{\"machine_id\":1,\"seq\":3,\"phase\":\"fetch\",\"status\":\"ok\",\"time\":1}",
             "field 'machine_id' must be a string"},
            {"{\"machine_id\":\"0123456789ABCDEF0123456789ABCDEF\",\"seq\":3,\"phase\":\"fetch\","
             "\"status\":\"ok\",\"time\":1}",
             "field 'machine_id' must be 32 lowercase hexadecimal digits"},
            {"{\"machine_id\":\"" M1 "\",\"phase\":\"fetch\",\"status\":\"ok\",\"time\":1}",
             "missing field 'seq'"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":-1,\"phase\":\"fetch\",\"status\":\"ok\","
             "\"time\":1}",
             "field 'seq' must be an integer >= 0"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3.5,\"phase\":\"fetch\",\"status\":\"ok\","
             "\"time\":1}",
             "field 'seq' must be an integer >= 0"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"status\":\"ok\",\"time\":1}",
             "missing field 'phase'"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"Fe tch\",\"status\":\"ok\","
             "\"time\":1}",
             "field 'phase' must be a phase name like 'fetch' ([a-z][a-z0-9_-]{0,30})"},
            /* 32 characters: one too many (REPORT_BODY_PHASE_MAX counts the NUL) */
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"a0123456789abcdef0123456789abcde\","
             "\"status\":\"ok\",\"time\":1}",
             "field 'phase' must be a phase name like 'fetch' ([a-z][a-z0-9_-]{0,30})"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"fetch\",\"time\":1}",
             "missing field 'status'"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"fetch\",\"status\":\"maybe\","
             "\"time\":1}",
             "field 'status' must be one of started, progress, ok, failed"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"fetch\",\"status\":\"ok\"}",
             "missing field 'time'"},
            {"{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":\"fetch\",\"status\":\"ok\","
             "\"time\":\"now\"}",
             "field 'time' must be an integer >= 0"},
            {WITH("\"serial\":-1"), "field 'serial' must be an integer >= 0"},
            {WITH("\"serial\":\"7\""), "field 'serial' must be an integer >= 0"},
            {WITH("\"message\":5"), "field 'message' must be a string"},
            {WITH("\"message\":\"a\\u0000b\""), "field 'message' must not contain NUL"},
            {WITH("\"error\":{}"), "field 'error' must be a string"},
            {WITH("\"counts\":[1]"), "field 'counts' must be an object"},
            {WITH("\"counts\":{\"built\":-1}"), "field 'counts' must hold non-negative integers"},
            {WITH("\"timings\":3"), "field 'timings' must be an object"},
            {WITH("\"timings\":{\"fetch\":\"1s\"}"),
             "field 'timings' must hold non-negative numbers"},
            {WITH("\"log_tail\":{}"), "field 'log_tail' must be a string or an array of strings"},
            {WITH("\"log_tail\":[1,2]"),
             "field 'log_tail' must be a string or an array of strings"},
            {WITH("\"x\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"), "nested deeper than 16"},
            {WITH("\"outcome\":\"Rolled back\""),
             "field 'outcome' must be an outcome like 'rolled-back' ([a-z][a-z0-9_-]{0,31})"},
            {WITH("\"outcome\":1"), "field 'outcome' must be a string"},
            {WITH("\"system\":[]"), "field 'system' must be a string"},
            {WITH("\"previous_system\":7"), "field 'previous_system' must be a string"},
            {WITH("\"checks\":{}"), "field 'checks' must be an array of checks"},
            {WITH("\"checks\":[{\"name\":\"tcp 22\"}]"),
             "field 'checks' must hold objects with a string name and a boolean ok"},
            {WITH("\"checks\":[{\"name\":\"tcp 22\",\"ok\":true,\"attempts\":-1}]"),
             "field 'checks' must hold non-negative attempts"},
            {WITH("\"checks\":[{\"name\":\"tcp 22\",\"ok\":false,\"error\":5}]"),
             "field 'checks' must hold string errors"},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct report_body report = {.phase = "untouched"};
                char problem[REPORT_BODY_PROBLEM_MAX] = "";
                json_t *json = load(cases[i].json);

                assert_int_equal(report_body_parse(json, &report, problem), -EBADMSG);
                assert_string_equal(problem, cases[i].problem);
                assert_string_equal(report.phase, "untouched");
                assert_null(report.machine_id);
                json_decref(json);
        }
}

static void test_accepted(void **state)
{
        struct report_body report;
        char problem[REPORT_BODY_PROBLEM_MAX];
        json_t *json;
        (void)state;

        json = load(WITH("\"serial\":7,\"message\":\"m\",\"counts\":{\"built\":2},"
                         "\"timings\":{\"fetch\":0.5},\"log_tail\":[\"a\"],\"newer\":{\"x\":1}"));
        assert_int_equal(report_body_parse(json, &report, problem), 0);
        assert_string_equal(report.machine_id, M1);
        assert_int_equal(report.seq, 3);
        assert_string_equal(report.phase, "fetch");
        assert_string_equal(report.status, "ok");
        assert_int_equal(report.time, 1);
        assert_true(report.has_serial);
        assert_int_equal(report.serial, 7);
        json_decref(json);

        json = load(OK_HEAD "}");
        assert_int_equal(report_body_parse(json, &report, problem), 0);
        assert_false(report.has_serial);
        assert_null(report.outcome);
        json_decref(json);

        json = load(WITH("\"outcome\":\"rolled-back\",\"system\":\"/nix/store/a-x\","
                         "\"previous_system\":\"/nix/store/b-y\",\"checks\":[{\"name\":\"tcp "
                         "22\",\"ok\":false,\"attempts\":3,\"error\":\"refused\",\"new\":1}]"));
        assert_int_equal(report_body_parse(json, &report, problem), 0);
        assert_string_equal(report.outcome, "rolled-back");
        json_decref(json);

        /* the longest phase name: 31 characters */
        json = load("{\"machine_id\":\"" M1 "\",\"seq\":3,\"phase\":"
                    "\"a0123456789abcdef0123456789abcd\",\"status\":\"ok\",\"time\":1}");
        assert_int_equal(report_body_parse(json, &report, problem), 0);
        assert_int_equal(strlen(report.phase), REPORT_BODY_PHASE_MAX - 1);
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
