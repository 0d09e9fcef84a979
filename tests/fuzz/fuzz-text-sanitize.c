/* SPDX-License-Identifier: MIT */
/* Fuzzes text_sanitize(), which every byte a device sends goes through before a terminal or a
 * log shows it: the output is valid UTF-8 without an unsafe code point, never longer than the
 * input, NUL-terminated within its buffer, and the same when made in place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Not assert(): the replay build may define NDEBUG. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

#define FUZZ_TEXT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char out[FUZZ_TEXT_MAX + 1], in_place[FUZZ_TEXT_MAX + 1], small[8];
        size_t n, i = 0;

        if (size > FUZZ_TEXT_MAX)
                return 0;
        n = text_sanitize((const char *)data, size, out, sizeof(out));
        CHECK(n <= size && out[n] == '\0' && strlen(out) == n);
        while (i < n) {
                uint32_t cp;
                size_t len = utf8_next(out + i, n - i, &cp);

                CHECK(len > 0 && !codepoint_is_unsafe(cp));
                i += len;
        }
        memcpy(in_place, data, size);
        CHECK(text_sanitize(in_place, size, in_place, size + 1) == n);
        CHECK(memcmp(in_place, out, n + 1) == 0);
        /* A small buffer holds a prefix of the whole answer, cut at a character. */
        n = text_sanitize((const char *)data, size, small, sizeof(small));
        CHECK(n < sizeof(small) && memcmp(small, out, n) == 0 && small[n] == '\0');
        return 0;
}
