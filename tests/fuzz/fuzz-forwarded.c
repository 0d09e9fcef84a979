/* SPDX-License-Identifier: MIT */
/* Fuzzes the reading of an X-Forwarded-For header (anyone's bytes, passed on by a proxy): the
 * client it names is a normalized address that is not a trusted proxy, and the answer does not
 * depend on anything left of that address. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forwarded.h"

/* Not assert(): the replay build may define NDEBUG. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

#define FUZZ_HEADER_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char trusted[][FORWARDED_ADDRESS_MAX] = {"127.0.0.1", "10.0.0.2", "::1"};
        char header[FUZZ_HEADER_MAX + 1], client[FORWARDED_ADDRESS_MAX],
            again[FORWARDED_ADDRESS_MAX];
        const char *comma;
        int r;

        if (size > FUZZ_HEADER_MAX)
                return 0;
        memcpy(header, data, size);
        header[size] = '\0';

        r = forwarded_client(header, trusted, 3, client);
        CHECK(r == 0 || r == -EINVAL || r == -ENOENT);
        if (r < 0)
                return 0;
        CHECK(strlen(client) < FORWARDED_ADDRESS_MAX);
        CHECK(!forwarded_is_trusted(trusted, 3, client));
        /* The normal form is a fixed point. */
        CHECK(forwarded_address_normalize(client, again) == 0);
        CHECK(strcmp(client, again) == 0);
        /* What is left of the client's own item does not matter: drop the first item. */
        comma = strchr(header, ',');
        if (comma && forwarded_client(comma + 1, trusted, 3, again) == 0)
                CHECK(strcmp(client, again) == 0);
        return 0;
}
