/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

static void test_parse_u64(void **state)
{
        static const struct {
                const char *input;
                int error;
                uint64_t value;
        } cases[] = {
            /* hostile first */
            {"", -EINVAL, 0},
            {"-1", -EINVAL, 0},
            {"+1", -EINVAL, 0},
            {" 1", -EINVAL, 0},
            {"1 ", -EINVAL, 0},
            {"01", -EINVAL, 0},
            {"0x10", -EINVAL, 0},
            {"1e3", -EINVAL, 0},
            {"18446744073709551616", -ERANGE, 0},
            {"99999999999999999999999", -ERANGE, 0},
            {"0", 0, 0},
            {"7", 0, 7},
            {"18446744073709551615", 0, UINT64_MAX},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 12345;
                int r = parse_u64(cases[i].input, &v);

                assert_int_equal(r, cases[i].error);
                if (r == 0)
                        assert_true(v == cases[i].value);
                else
                        assert_true(v == 12345); /* untouched on failure */
        }
}

static void test_parse_rfc3339(void **state)
{
        static const struct {
                const char *input;
                int error;
                int64_t value;
        } cases[] = {
            {"", -EINVAL, 0},
            {"2027-01-31", -EINVAL, 0},
            {"2027-01-31T00:00:00", -EINVAL, 0},       /* no offset */
            {"2027-01-31T00:00:00+01:00", -EINVAL, 0}, /* only UTC */
            {"2027-13-01T00:00:00Z", -EINVAL, 0},
            {"2027-02-29T00:00:00Z", -EINVAL, 0}, /* not a leap year */
            {"2027-01-32T00:00:00Z", -EINVAL, 0},
            {"2027-01-31T24:00:00Z", -EINVAL, 0},
            {"2027-01-31T00:60:00Z", -EINVAL, 0},
            {"1969-12-31T23:59:59Z", -EINVAL, 0},
            {"2027-01-31T00:00:00Zjunk", -EINVAL, 0},
            {"2027-01-31T00:00:00.Z", -EINVAL, 0},
            {"2027-01-31 00:00:00Z", -EINVAL, 0},
            {"1970-01-01T00:00:00Z", 0, 0},
            {"2027-01-31T00:00:00Z", 0, 1801353600},
            {"2028-02-29T12:34:56Z", 0, 1835440496},
            {"2027-01-31T00:00:00.123456Z", 0, 1801353600},
            {"2099-12-31T23:59:59z", 0, 4102444799},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int64_t t = -1;
                int r = parse_rfc3339_utc(cases[i].input, &t);

                if (r != cases[i].error)
                        fail_msg("'%s': got %d, want %d", cases[i].input, r, cases[i].error);
                if (r == 0) {
                        char buf[RFC3339_MAX];

                        assert_int_equal(t, cases[i].value);
                        /* and back, when there was no fraction to drop */
                        if (!strchr(cases[i].input, '.') && !strchr(cases[i].input, 'z'))
                                assert_string_equal(format_rfc3339_utc(t, buf), cases[i].input);
                }
        }
}

static void test_read_file_bounded(void **state)
{
        char path[] = "/tmp/nixprov-test-util-XXXXXX";
        _cleanup_close_ int fd = mkstemp(path);
        char *data = NULL;
        size_t size = 0;
        (void)state;

        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "0123456789", 10), 0);

        /* over the cap: refused, nothing returned */
        assert_int_equal(read_file_bounded(path, 9, &data, &size), -E2BIG);
        assert_null(data);
        /* exactly at the cap */
        assert_int_equal(read_file_bounded(path, 10, &data, &size), 0);
        assert_int_equal(size, 10);
        assert_string_equal(data, "0123456789");
        free(data);
        data = NULL;

        assert_int_equal(read_file_bounded("/nonexistent/nixprov", 10, &data, &size), -ENOENT);
        unlink(path);

        /* an empty file is an empty, terminated string */
        fd = safe_close(fd);
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(read_file_bounded(path, 10, &data, &size), 0);
        assert_int_equal(size, 0);
        assert_string_equal(data, "");
        free(data);
        unlink(path);
}

static void test_buf_limit(void **state)
{
        struct buf b = BUF_INIT(8);
        char *s;
        size_t n;
        (void)state;

        assert_int_equal(buf_puts(&b, "12345"), 0);
        assert_int_equal(buf_puts(&b, "6789"), -E2BIG); /* would pass 8: refused whole */
        assert_string_equal(b.data, "12345");
        assert_int_equal(buf_printf(&b, "%d", 678), 0);
        assert_int_equal(b.size, 8);
        assert_int_equal(buf_append(&b, "x", 1), -E2BIG);
        s = buf_steal(&b, &n);
        assert_string_equal(s, "12345678");
        assert_int_equal(n, 8);
        assert_null(b.data);
        assert_int_equal(b.max, 8);
        free(s);
}

static void test_string_is_safe(void **state)
{
        (void)state;
        assert_false(string_is_safe("", 10, NULL));
        assert_false(string_is_safe(NULL, 10, NULL));
        assert_false(string_is_safe("a/b", 10, "-"));
        assert_false(string_is_safe("abcdefghijk", 10, NULL));
        assert_false(string_is_safe("a\nb", 10, "-"));
        assert_true(string_is_safe("edge-1.x_y", 64, "._-"));
}

static void test_utf8_next(void **state)
{
        static const struct {
                const char *bytes;
                size_t n;
                size_t len;
                uint32_t codepoint;
        } cases[] = {
            /* Hostile first: none of these is a character. */
            {"", 0, 0, 0},
            {"\x80", 1, 0, 0},             /* a continuation byte alone */
            {"\xc0\xaf", 2, 0, 0},         /* overlong '/' */
            {"\xc1\xbf", 2, 0, 0},         /* overlong */
            {"\xe0\x80\xaf", 3, 0, 0},     /* overlong '/' in three bytes */
            {"\xf0\x80\x80\xaf", 4, 0, 0}, /* overlong '/' in four bytes */
            {"\xed\xa0\x80", 3, 0, 0},     /* a surrogate, U+D800 */
            {"\xf4\x90\x80\x80", 4, 0, 0}, /* above U+10FFFF */
            {"\xf8\x88\x80\x80\x80", 5, 0, 0},
            {"\xc3", 1, 0, 0},     /* cut short */
            {"\xe2\x82", 2, 0, 0}, /* cut short */
            {"\xc3(", 2, 0, 0},    /* not a continuation */
            {"\xc3\xa9", 1, 0, 0}, /* n bounds the read */
            /* Valid. */
            {"A", 1, 1, 'A'},
            {"\x7f", 1, 1, 0x7f},
            {"\xc3\xa9", 2, 2, 0xe9},
            {"\xe2\x82\xac!", 4, 3, 0x20ac},
            {"\xef\xbf\xbd", 3, 3, 0xfffd},
            {"\xf0\x9f\x98\x80", 4, 4, 0x1f600},
            {"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint32_t cp = UINT32_MAX;

                assert_int_equal(utf8_next(cases[i].bytes, cases[i].n, &cp), cases[i].len);
                assert_int_equal(cp, cases[i].len ? cases[i].codepoint : UINT32_MAX);
                assert_int_equal(utf8_next(cases[i].bytes, cases[i].n, NULL), cases[i].len);
        }
}

static void test_text_sanitize(void **state)
{
        static const struct {
                const char *in;
                size_t n;
                const char *out;
        } cases[] = {
            {"edge-1", 6, "edge-1"},
            {"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15,
             "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"},
            {"a\x1b[2Jb\tc\nd\re\x7f", 13, "a?[2Jb?c?d?e?"},
            {"a\0b", 3, "a?b"},
            /* C1: CSI (U+009B) and NEL (U+0085), as UTF-8. */
            {"\xc2\x9b"
             "31m\xc2\x85x",
             8, "?31m?x"},
            /* Bidi overrides and isolates: RLO, PDF, LRI, PDI; ALM. */
            {"\xe2\x80\xaegnp.exe\xe2\x80\xac", 13, "?gnp.exe?"},
            {"\xe2\x81\xa6x\xe2\x81\xa9\xd8\x9c", 9, "?x??"},
            /* Zero-width space, LRM, line and paragraph separators, BOM, word joiner. */
            {"\xe2\x80\x8b\xe2\x80\x8e\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\xe2\x81\xa0", 18,
             "??????"},
            /* Invalid UTF-8, byte by byte: a stray continuation, an overlong '/', a surrogate,
             * a raw C1 byte and a cut sequence. */
            {"\x80\xc0\xaf\xed\xa0\x80\x9b\xe2\x82", 9, "?????????"},
            /* Not a C1 control: U+00A0 and U+2030 stay. */
            {"\xc2\xa0\xe2\x80\xb0", 5, "\xc2\xa0\xe2\x80\xb0"},
        };
        char out[64], in_place[64];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(text_sanitize(cases[i].in, cases[i].n, out, sizeof(out)),
                                 strlen(cases[i].out));
                assert_string_equal(out, cases[i].out);
                memcpy(in_place, cases[i].in, cases[i].n);
                in_place[cases[i].n] = '\0';
                (void)text_sanitize(in_place, cases[i].n, in_place, cases[i].n + 1);
                assert_string_equal(in_place, cases[i].out);
        }
        /* A character that does not fit is left out whole. */
        assert_int_equal(text_sanitize("ab\xe2\x82\xac", 5, out, 4), 2);
        assert_string_equal(out, "ab");
        assert_int_equal(text_sanitize("ab\x1b", 3, out, 3), 2);
        assert_string_equal(out, "ab");
        assert_int_equal(text_sanitize("ab", 2, out, 1), 0);
        assert_string_equal(out, "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_u64),         cmocka_unit_test(test_parse_rfc3339),
            cmocka_unit_test(test_read_file_bounded), cmocka_unit_test(test_buf_limit),
            cmocka_unit_test(test_string_is_safe),    cmocka_unit_test(test_utf8_next),
            cmocka_unit_test(test_text_sanitize),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
