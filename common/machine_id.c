/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "fileio.h"
#include "machine_id.h"
#include "util.h"

bool machine_id_is_canonical(const char *s)
{
        size_t n = 0;

        if (!s)
                return false;
        for (; s[n]; n++)
                if (n >= 32 || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
                        return false;
        return n == 32;
}

int machine_id_normalize(const char *s, char ret[static MACHINE_ID_STRING_MAX])
{
        static const char digits[] = "0123456789abcdef";
        char id[MACHINE_ID_STRING_MAX];
        size_t len = strlen(s), n = 0;
        bool dashed, nonzero = false;

        if (len > 0 && s[len - 1] == '\n')
                len--;
        if (len != 32 && len != 36)
                return -EINVAL;
        dashed = len == 36;

        for (size_t i = 0; i < len; i++) {
                int v;

                if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
                        if (s[i] != '-')
                                return -EINVAL;
                        continue;
                }
                v = hex_digit_value(s[i]);
                if (v < 0)
                        return -EINVAL;
                nonzero = nonzero || v != 0;
                id[n++] = digits[v];
        }
        if (n != 32 || !nonzero)
                return -EINVAL;
        id[32] = '\0';
        memcpy(ret, id, sizeof(id));
        return 0;
}

int machine_id_read(const char *root, char ret[static MACHINE_ID_STRING_MAX])
{
        static const char *const sources[] = {"/etc/machine-id", "/sys/class/dmi/id/product_uuid"};

        for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
                _cleanup_free_ char *path = path_join_root(root, sources[i]), *data = NULL;
                int r;

                if (!path)
                        return -ENOMEM;
                r = read_file_bounded(path, 128, &data, NULL);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r == -E2BIG ? -EINVAL : r;
                /* systemd leaves the file empty or "uninitialized" until first boot commits it. */
                if (data[0] == '\0' || streq(data, "\n") || streq(data, "uninitialized\n"))
                        continue;
                return machine_id_normalize(data, ret);
        }
        return -ENOENT;
}
