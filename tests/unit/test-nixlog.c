/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nixlog.h"
#include "util.h"

#define BUILD(id, machine)                                                                         \
        "@nix {\"action\":\"start\",\"fields\":[\"/nix/store/aaaa-x.drv\",\"" machine              \
        "\",1,1],\"id\":" #id ",\"level\":3,\"text\":\"building\",\"type\":105}\n"
#define SUBST(id)                                                                                  \
        "@nix {\"action\":\"start\",\"fields\":[\"/nix/store/aaaa-x\",\"http://127.0.0.1:1\"],"    \
        "\"id\":" #id ",\"level\":0,\"text\":\"\",\"type\":108}\n"

struct expect {
        uint64_t substituted, copied, built_local, built_remote, downloaded_bytes, copied_bytes;
        uint64_t lines, bad_lines, overlong_lines;
};

static void check_counts(const char *name, const struct nixlog_counts *c, const struct expect *e)
{
#define CHECK_FIELD(f)                                                                             \
        do {                                                                                       \
                if (c->f != e->f)                                                                  \
                        fail_msg("%s: " #f " = %llu, expected %llu", name,                         \
                                 (unsigned long long)c->f, (unsigned long long)e->f);              \
        } while (0)
        CHECK_FIELD(substituted);
        CHECK_FIELD(copied);
        CHECK_FIELD(built_local);
        CHECK_FIELD(built_remote);
        CHECK_FIELD(downloaded_bytes);
        CHECK_FIELD(copied_bytes);
        CHECK_FIELD(lines);
        CHECK_FIELD(bad_lines);
        CHECK_FIELD(overlong_lines);
#undef CHECK_FIELD
}

/* Each input fed whole, then byte by byte, must give the same counts. */
static void test_table(void **state)
{
        static const struct {
                const char *name;
                const char *input;
                struct expect e;
        } cases[] = {
            /* hostile first */
            {"truncated JSON",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":105,\"fie\n",
             {.lines = 1, .bad_lines = 1}},
            {"not an object",
             "@nix [105]\n@nix 105\n@nix \"start\"\n@nix null\n",
             {.lines = 4, .bad_lines = 4}},
            {"empty JSON", "@nix \n@nix {}\n", {.lines = 2, .bad_lines = 2}},
            {"result 105 is Progress, not a Build",
             "@nix {\"action\":\"result\",\"fields\":[1,3,0,0],\"id\":9,\"type\":105}\n",
             {.lines = 1}},
            {"result 108 is not a Substitute",
             "@nix {\"action\":\"result\",\"fields\":[\"x\"],\"id\":9,\"type\":108}\n",
             {.lines = 1}},
            {"start with type as a string",
             "@nix {\"action\":\"start\",\"fields\":[\"a\",\"\"],\"id\":1,\"type\":\"105\"}\n",
             {.lines = 1, .bad_lines = 1}},
            {"build without fields",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":105}\n",
             {.lines = 1, .bad_lines = 1}},
            {"build with a numeric machine",
             "@nix {\"action\":\"start\",\"fields\":[\"a\",7],\"id\":1,\"type\":105}\n",
             {.lines = 1, .bad_lines = 1}},
            {"start without id",
             "@nix {\"action\":\"start\",\"type\":108}\n",
             {.lines = 1, .bad_lines = 1}},
            {"negative id",
             "@nix {\"action\":\"start\",\"id\":-1,\"type\":108}\n",
             {.lines = 1, .bad_lines = 1}},
            {"duplicate keys",
             "@nix {\"action\":\"start\",\"action\":\"stop\",\"id\":1,\"type\":108}\n",
             {.lines = 1, .bad_lines = 1}},
            {"NUL escape",
             "@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"a\\u0000b\"}\n",
             {.lines = 1, .bad_lines = 1}},
            {"integer too big for JSON",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":101}\n"
             "@nix {\"action\":\"result\",\"fields\":[18446744073709551616,0,0,0],\"id\":1,"
             "\"type\":105}\n",
             {.lines = 2, .bad_lines = 1}},
            {"progress done as a float or string or negative",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":101}\n"
             "@nix {\"action\":\"result\",\"fields\":[1.5,0,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[\"7\",0,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[-7,0,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[],\"id\":1,\"type\":105}\n",
             {.lines = 5, .bad_lines = 4}},
            {"huge progress values saturate",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":101}\n"
             "@nix {\"action\":\"start\",\"id\":2,\"type\":101}\n"
             "@nix {\"action\":\"start\",\"id\":3,\"type\":101}\n"
             "@nix {\"action\":\"result\",\"fields\":[9223372036854775807],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[9223372036854775807],\"id\":2,\"type\":105}\n"
             "@nix "
             "{\"action\":\"result\",\"fields\":[9223372036854775807],\"id\":3,\"type\":105}\n",
             {.downloaded_bytes = UINT64_MAX, .lines = 6}},
            {"progress of an unknown activity",
             "@nix {\"action\":\"result\",\"fields\":[100,0,0,0],\"id\":5,\"type\":105}\n",
             {.lines = 1}},
            {"progress after stop is not counted",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":101}\n"
             "@nix {\"action\":\"result\",\"fields\":[10,20,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"stop\",\"id\":1}\n"
             "@nix {\"action\":\"result\",\"fields\":[20,20,0,0],\"id\":1,\"type\":105}\n",
             {.downloaded_bytes = 10, .lines = 4}},
            {"the last done value counts, even when lower",
             "@nix {\"action\":\"start\",\"id\":1,\"type\":100}\n"
             "@nix {\"action\":\"result\",\"fields\":[10,20,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[30,40,0,0],\"id\":1,\"type\":105}\n"
             "@nix {\"action\":\"result\",\"fields\":[25,40,0,0],\"id\":1,\"type\":105}\n",
             {.copied = 1, .copied_bytes = 25, .lines = 4}},
            {"CR LF line ends", SUBST(1) "\r\n", {.substituted = 1, .lines = 2}},
            {"not @nix",
             "@nixx {\"action\":\"start\",\"id\":1,\"type\":108}\n"
             " @nix {\"action\":\"start\",\"id\":1,\"type\":108}\n",
             {.lines = 2}},
            {"unknown action and type",
             "@nix {\"action\":\"future\",\"id\":1}\n"
             "@nix {\"action\":\"start\",\"id\":1,\"type\":999}\n",
             {.lines = 2}},
            {"no trailing newline",
             SUBST(1) SUBST(2) "@nix {\"action\":\"start\",\"id\":3,"
                               "\"type\":108}",
             {.substituted = 3, .lines = 3}},
            {"builds",
             BUILD(1, "") BUILD(2, "ssh://nix@b1") BUILD(3, "ssh://nix@b2")
                 BUILD(4, "ssh://nix@b1"),
             {.built_local = 1, .built_remote = 3, .lines = 4}},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                for (int bytewise = 0; bytewise <= 1; bytewise++) {
                        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
                        const char *in = cases[i].input;
                        size_t n = strlen(in);

                        assert_non_null(nl);
                        if (bytewise)
                                for (size_t k = 0; k < n; k++)
                                        assert_int_equal(nixlog_feed(nl, in + k, 1), 0);
                        else
                                assert_int_equal(nixlog_feed(nl, in, n), 0);
                        assert_int_equal(nixlog_finish(nl), 0);
                        check_counts(cases[i].name, nixlog_counts(nl), &cases[i].e);
                }
        }
}

static void test_overlong(void **state)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
        _cleanup_free_ char *big = malloc(NIXLOG_LINE_MAX + 100);
        const struct nixlog_counts *c;
        (void)state;

        assert_non_null(nl);
        assert_non_null(big);
        /* An overlong "@nix" line that would count a build if it were read. */
        memset(big, ' ', NIXLOG_LINE_MAX + 100);
        memcpy(big, BUILD(1, ""), strlen(BUILD(1, "")) - 1);
        assert_int_equal(nixlog_feed(nl, big, NIXLOG_LINE_MAX + 100), 0);
        assert_int_equal(nixlog_feed(nl, big, 1000), 0);
        assert_int_equal(nixlog_feed(nl, "\n" SUBST(2), strlen(SUBST(2)) + 1), 0);
        /* Exactly NIXLOG_LINE_MAX bytes is still a line. */
        memset(big, 'x', NIXLOG_LINE_MAX);
        big[NIXLOG_LINE_MAX] = '\n';
        assert_int_equal(nixlog_feed(nl, big, NIXLOG_LINE_MAX + 1), 0);
        /* An overlong line at the end of the stream, without its newline. */
        assert_int_equal(nixlog_feed(nl, big, NIXLOG_LINE_MAX), 0);
        assert_int_equal(nixlog_feed(nl, big, 1), 0);
        assert_int_equal(nixlog_finish(nl), 0);
        c = nixlog_counts(nl);
        assert_int_equal(c->lines, 4);
        assert_int_equal(c->overlong_lines, 2);
        assert_int_equal(c->built_local, 0);
        assert_int_equal(c->substituted, 1);
        assert_true(strlen(nixlog_tail(nl)) <= NIXLOG_TAIL_MAX);
}

static void test_transfer_cap(void **state)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
        char line[256];
        (void)state;

        assert_non_null(nl);
        /* One more concurrent transfer than tracked: its bytes are not counted. */
        for (unsigned id = 1; id <= NIXLOG_TRANSFERS_MAX + 1; id++) {
                int n = snprintf(line, sizeof(line),
                                 "@nix {\"action\":\"start\",\"id\":%u,\"type\":101}\n"
                                 "@nix {\"action\":\"result\",\"fields\":[2,2,0,0],\"id\":%u,"
                                 "\"type\":105}\n",
                                 id, id);
                assert_int_equal(nixlog_feed(nl, line, (size_t)n), 0);
        }
        assert_int_equal(nixlog_counts(nl)->downloaded_bytes, 2 * NIXLOG_TRANSFERS_MAX);
        assert_int_equal(nixlog_counts(nl)->untracked_transfers, 1);
        /* Stopped transfers free their places, in any order; the bytes stay counted. */
        for (unsigned id = NIXLOG_TRANSFERS_MAX; id >= 1; id -= 2) {
                int n = snprintf(line, sizeof(line), "@nix {\"action\":\"stop\",\"id\":%u}\n", id);
                assert_int_equal(nixlog_feed(nl, line, (size_t)n), 0);
        }
        for (unsigned id = 1; id <= NIXLOG_TRANSFERS_MAX; id += 2) {
                /* Still tracked after the others left: progress still lands. */
                int n = snprintf(line, sizeof(line),
                                 "@nix {\"action\":\"result\",\"fields\":[3,3,0,0],\"id\":%u,"
                                 "\"type\":105}\n",
                                 id);
                assert_int_equal(nixlog_feed(nl, line, (size_t)n), 0);
        }
        assert_int_equal(nixlog_counts(nl)->downloaded_bytes,
                         2 * NIXLOG_TRANSFERS_MAX + NIXLOG_TRANSFERS_MAX / 2);
        assert_int_equal(nixlog_counts(nl)->bad_lines, 0);
}

static void test_machines(void **state)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
        const char *const *names;
        char line[256];
        size_t n;
        (void)state;

        assert_non_null(nl);
        for (unsigned i = 0; i < NIXLOG_MACHINES_MAX + 3; i++) {
                int k = snprintf(line, sizeof(line),
                                 "@nix {\"action\":\"start\",\"fields\":[\"d.drv\","
                                 "\"ssh://b%u\\u001b[31m\",1,1],\"id\":%u,\"type\":105}\n",
                                 i % (NIXLOG_MACHINES_MAX + 2), i);
                assert_int_equal(nixlog_feed(nl, line, (size_t)k), 0);
        }
        names = nixlog_machines(nl, &n);
        assert_int_equal(n, NIXLOG_MACHINES_MAX);
        assert_string_equal(names[0], "ssh://b0");
        assert_string_equal(names[1], "ssh://b1");
        assert_int_equal(nixlog_counts(nl)->built_remote, NIXLOG_MACHINES_MAX + 3);
        /* b16 and b17 unnamed; b0 again is known. */
        assert_int_equal(nixlog_counts(nl)->machines_unnamed, 2);
}

static void test_errors_and_tail(void **state)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
        static const char input[] =
            "@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"warning: slow\"}\n"
            "@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"\\u001b[31;1merror:\\u001b[0m "
            "first\"}\n"
            "@nix {\"action\":\"result\",\"fields\":[\"builder says \\u001b]0;title\\u0007hi\"],"
            "\"id\":3,\"type\":101}\n"
            "@nix {\"action\":\"msg\",\"level\":5,\"msg\":\"chatty, not in the tail\"}\n"
            "\x1b[1merror:\x1b[0m from nixos-rebuild\r\n";
        const char *tail;
        (void)state;

        assert_non_null(nl);
        assert_null(nixlog_last_error(nl));
        assert_string_equal(nixlog_tail(nl), "");
        assert_int_equal(nixlog_feed(nl, input, sizeof(input) - 1), 0);
        assert_string_equal(nixlog_last_error(nl), "error: from nixos-rebuild");
        tail = nixlog_tail(nl);
        assert_string_equal(tail, "warning: slow\nerror: first\nbuilder says hi\n"
                                  "error: from nixos-rebuild\n");

        /* A long message is cut; the tail keeps its bound and starts at a line. */
        for (int i = 0; i < 1000; i++) {
                char line[128];
                int n = snprintf(line, sizeof(line), "plain line %d\n", i);

                assert_int_equal(nixlog_feed(nl, line, (size_t)n), 0);
        }
        tail = nixlog_tail(nl);
        assert_true(strlen(tail) <= NIXLOG_TAIL_MAX);
        assert_true(strncmp(tail, "plain line ", 11) == 0);
        assert_non_null(strstr(tail, "plain line 999\n"));
}

static void test_strip_escapes(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"\x1b", ""},
            {"\x1b[", ""},
            {"\x1b[31", ""},
            {"a\x1b[31;1mb\x1b[0mc", "abc"},
            {"a\x1b(Bb", "ab"},
            {"a\x1b]0;title\x07"
             "b\x1b]2;t\x1b\\c\x1b]unterminated",
             "abc"},
            {"tab\tnew\nline\r\x7f\x01", "tab\tnew\nline"},
            {"caf\xc3\xa9", "caf\xc3\xa9"},
        };
        char small[4];
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char out[64];

                nixlog_strip_escapes(cases[i].in, strlen(cases[i].in), out, sizeof(out));
                assert_string_equal(out, cases[i].out);
        }
        assert_int_equal(nixlog_strip_escapes("abcdef", 6, small, sizeof(small)), 3);
        assert_string_equal(small, "abc");
}

static struct nixlog *feed_fixture(const char *name, size_t chunk)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = nixlog_new();
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t size;

        assert_non_null(nl);
        assert_true(asprintf(&path, "%s/nixlog/%s", TEST_DATA_DIR, name) > 0);
        assert_int_equal(read_file_bounded(path, 1024 * 1024, &data, &size), 0);
        for (size_t off = 0; off < size; off += chunk)
                assert_int_equal(
                    nixlog_feed(nl, data + off, size - off < chunk ? size - off : chunk), 0);
        assert_int_equal(nixlog_finish(nl), 0);
        return TAKE_PTR(nl);
}

/* Logs of real nix-build 2.8 runs of tests/data/nix/closure.nix (three derivations). */
static void test_real_logs(void **state)
{
        static const size_t chunks[] = {1, 7, 4096, 1 << 20};
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
                _cleanup_(nixlog_freep) struct nixlog *local =
                    feed_fixture("build-local.log", chunks[i]);
                _cleanup_(nixlog_freep) struct nixlog *subst =
                    feed_fixture("substitute.log", chunks[i]);
                _cleanup_(nixlog_freep) struct nixlog *failed =
                    feed_fixture("build-fail.log", chunks[i]);
                /* Lots of result-105 (Progress) records: none counts as a build. */
                check_counts("build-local.log", nixlog_counts(local),
                             &(struct expect){.built_local = 3, .lines = 56});
                assert_null(nixlog_last_error(local));

                /* Three substitutions over HTTP: three narinfo and three nar downloads,
                 * 21 + 597 + 502 + 549 + 152 + 200 + 236 bytes, and the nix-cache-info. */
                check_counts(
                    "substitute.log", nixlog_counts(subst),
                    &(struct expect){.substituted = 3,
                                     .copied = 3,
                                     .downloaded_bytes = 21 + 597 + 502 + 549 + 152 + 200 + 236,
                                     .lines = 189});

                /* A build that failed was still started, and counts. */
                check_counts("build-fail.log", nixlog_counts(failed),
                             &(struct expect){.built_local = 1, .lines = 29});
                assert_string_equal(
                    nixlog_last_error(failed),
                    "error: builder for "
                    "'/nix/store/xnn5adrwh84asqrfdj4fcs4dw7mjv9l2-nixprov-demo-fail.drv'"
                    " failed with exit code 1");
                assert_non_null(
                    strstr(nixlog_tail(failed), "fixture about to fail\nsecond line\n"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),           cmocka_unit_test(test_overlong),
            cmocka_unit_test(test_transfer_cap),    cmocka_unit_test(test_machines),
            cmocka_unit_test(test_errors_and_tail), cmocka_unit_test(test_strip_escapes),
            cmocka_unit_test(test_real_logs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
