/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "state.h"
#include "util.h"

/* The file is two lines, "serial N" and "applied-at N", in this order. */
int state_load(const char *state_dir, struct agent_state *ret)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        struct agent_state s = {.have_applied = true};
        char *line, *save = NULL;
        unsigned seen = 0;
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", state_dir, STATE_APPLIED_FILE) < 0)
                return -ENOMEM;
        r = read_file_bounded(path, STATE_FILE_MAX, &data, &size);
        if (r == -ENOENT || r == -ENOTDIR) {
                *ret = (struct agent_state){};
                return 0;
        }
        if (r < 0)
                return r;
        if (strlen(data) != size)
                return -EBADMSG;

        for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *value = strchr(line, ' ');
                uint64_t v;

                if (!value)
                        return -EBADMSG;
                *value++ = '\0';
                if (parse_u64(value, &v) < 0)
                        return -EBADMSG;
                if (seen == 0 && streq(line, "serial"))
                        s.applied_serial = v;
                else if (seen == 1 && streq(line, "applied-at") && v <= INT64_MAX)
                        s.applied_time = (int64_t)v;
                else
                        return -EBADMSG;
                seen++;
        }
        if (seen != 2)
                return -EBADMSG;
        *ret = s;
        return 0;
}

int state_save(const char *state_dir, const struct agent_state *state)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        int n;

        if (!state->have_applied || state->applied_time < 0)
                return -EINVAL;
        if (asprintf(&path, "%s/%s", state_dir, STATE_APPLIED_FILE) < 0)
                return -ENOMEM;
        n = asprintf(&text, "serial %" PRIu64 "\napplied-at %" PRId64 "\n", state->applied_serial,
                     state->applied_time);
        if (n < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, (size_t)n, 0600, 0);
}
