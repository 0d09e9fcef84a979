/* SPDX-License-Identifier: MIT */
/* Fuzzes the parser of a builder's URI (builders[].uri of a profile): what it hands to libssh
 * and into the command run on the builder must stay within what builder_uri.h promises. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builder_uri.h"

/* Not assert(): the replay build may define NDEBUG. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

#define FUZZ_URI_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool bounded(const char *s, size_t size)
{
        return memchr(s, '\0', size) != NULL;
}

static bool program_is_plain(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || strchr("._/+-", *s)))
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct builder_uri u, untouched;
        char uri[FUZZ_URI_MAX + 1];
        int r;

        if (size > FUZZ_URI_MAX)
                return 0;
        memcpy(uri, data, size);
        uri[size] = '\0';

        memset(&u, 'X', sizeof(u));
        untouched = u;
        r = builders_parse_uri(uri, &u);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -E2BIG);
                CHECK(memcmp(&u, &untouched, sizeof(u)) == 0);
                return 0;
        }
        CHECK(r == 0);
        CHECK(strncmp(uri, "ssh://", 6) == 0 || strncmp(uri, "ssh-ng://", 9) == 0);
        CHECK(bounded(u.user, sizeof(u.user)) && u.user[0] && !strchr(u.user, '@') &&
              !strchr(u.user, '/') && !strchr(u.user, '?'));
        CHECK(bounded(u.host, sizeof(u.host)) && u.host[0] && !strchr(u.host, '/') &&
              !strchr(u.host, '?') && !strchr(u.host, '@'));
        CHECK(u.port >= 1 && u.port <= 65535);
        CHECK(bounded(u.program, sizeof(u.program)) && program_is_plain(u.program));
        return 0;
}
