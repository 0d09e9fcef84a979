/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "keyfile.h"
#include "util.h"

int keyfile_load_public(const char *spec, struct minisign_public_key *ret)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_file_bounded(spec, MINISIGN_FILE_MAX, &data, &size);
        if (r == -ENOENT) {
                /* Not a file: perhaps the key itself. */
                if (minisign_public_key_parse(spec, strlen(spec), ret) == 0)
                        return 0;
                return -ENOENT;
        }
        if (r < 0)
                return r;
        return minisign_public_key_parse(data, size, ret);
}
