/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "forwarded.h"
#include "macro.h"

int forwarded_address_normalize(const char *s, char ret[FORWARDED_ADDRESS_MAX])
{
        struct in6_addr a6;
        struct in_addr a4;

        if (!s)
                return -EINVAL;
        if (inet_pton(AF_INET, s, &a4) == 1)
                return inet_ntop(AF_INET, &a4, ret, FORWARDED_ADDRESS_MAX) ? 0 : -EINVAL;
        if (inet_pton(AF_INET6, s, &a6) != 1)
                return -EINVAL;
        if (IN6_IS_ADDR_V4MAPPED(&a6))
                return inet_ntop(AF_INET, &a6.s6_addr[12], ret, FORWARDED_ADDRESS_MAX) ? 0
                                                                                       : -EINVAL;
        return inet_ntop(AF_INET6, &a6, ret, FORWARDED_ADDRESS_MAX) ? 0 : -EINVAL;
}

bool forwarded_is_trusted(const char (*trusted)[FORWARDED_ADDRESS_MAX], size_t n,
                          const char *address)
{
        for (size_t i = 0; i < n; i++)
                if (streq(trusted[i], address))
                        return true;
        return false;
}

static bool forwarded_is_blank(char c)
{
        return c == ' ' || c == '\t';
}

int forwarded_client(const char *header, const char (*trusted)[FORWARDED_ADDRESS_MAX], size_t n,
                     char ret[FORWARDED_ADDRESS_MAX])
{
        const char *end;

        if (!header)
                return -EINVAL;
        /* From the right: each item [start, end), end at the NUL or at a comma. */
        end = header + strlen(header);
        for (;;) {
                const char *start = end, *item_end = end;
                char item[FORWARDED_ADDRESS_MAX];
                size_t size;

                while (start > header && start[-1] != ',')
                        start--;
                while (start < item_end && forwarded_is_blank(*start))
                        start++;
                while (item_end > start && forwarded_is_blank(item_end[-1]))
                        item_end--;
                size = (size_t)(item_end - start);
                if (size == 0 || size >= sizeof(item))
                        return -EINVAL;
                memcpy(item, start, size);
                item[size] = '\0';
                if (forwarded_address_normalize(item, ret) < 0)
                        return -EINVAL;
                if (!forwarded_is_trusted(trusted, n, ret))
                        return 0;
                while (start > header && start[-1] != ',')
                        start--;
                if (start == header)
                        return -ENOENT;
                end = start - 1; /* the comma before this item */
        }
}
