/* SPDX-License-Identifier: MIT */
/* Fuzzes the parser of a Nix dry run's output (what the pre-flight reads from the command). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "dryrun.h"

/* Not assert(): the replay build may define NDEBUG. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dryrun_summary s;
        int r = dryrun_parse((const char *)data, size, &s);

        CHECK(r == 0 || r == -EBADMSG);
        CHECK(s.have_build || s.to_build == 0);
        CHECK(s.have_fetch || (s.to_fetch == 0 && s.download_bytes == 0 && s.unpacked_bytes == 0));
        return 0;
}
