/* SPDX-License-Identifier: MIT */
/* Fuzzes the parser of Nix's internal-json log. The first byte picks the chunk size the rest is
 * fed in, so lines split across chunks are exercised too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixlog.h"

/* Not assert(): the replay build may define NDEBUG. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(nixlog_freep) struct nixlog *nl = NULL;
        const struct nixlog_counts *c;
        const char *const *machines;
        const char *error;
        size_t chunk, n;

        if (size == 0)
                return 0;
        chunk = (size_t)data[0] * 17 + 1;
        data++;
        size--;

        nl = nixlog_new();
        if (!nl)
                return 0;
        for (size_t off = 0; off < size; off += chunk)
                (void)nixlog_feed(nl, data + off, size - off < chunk ? size - off : chunk);
        (void)nixlog_finish(nl);

        c = nixlog_counts(nl);
        CHECK(c->json_lines + c->bad_lines <= c->lines);
        CHECK(c->overlong_lines <= c->lines);
        CHECK(c->built_local + c->built_remote + c->substituted + c->copied <= c->json_lines);
        CHECK(strlen(nixlog_tail(nl)) <= NIXLOG_TAIL_MAX);
        error = nixlog_last_error(nl);
        CHECK(!error || (strlen(error) <= NIXLOG_ERROR_MAX && !strchr(error, '\x1b')));
        machines = nixlog_machines(nl, &n);
        CHECK(n <= NIXLOG_MACHINES_MAX);
        for (size_t i = 0; i < n; i++)
                CHECK(strlen(machines[i]) < NIXLOG_MACHINE_NAME_MAX);
        return 0;
}
