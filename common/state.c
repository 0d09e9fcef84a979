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

static bool state_etag_printable(const char *etag)
{
        size_t n = strnlen(etag, STATE_ETAG_MAX);

        if (n == 0 || n >= STATE_ETAG_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)etag[i] <= ' ' || (unsigned char)etag[i] >= 0x7f)
                        return false;
        return true;
}

int state_load_etag(const char *state_dir, uint64_t *ret_serial, char etag[static STATE_ETAG_MAX])
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        char *value, *end;
        uint64_t serial;
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", state_dir, STATE_ETAG_FILE) < 0)
                return -ENOMEM;
        r = read_file_bounded(path, STATE_FILE_MAX, &data, &size);
        if (r == -ENOTDIR)
                return -ENOENT;
        if (r < 0)
                return r;
        if (strlen(data) != size || strncmp(data, "serial ", 7) != 0 ||
            !(value = strstr(data, "\netag ")) || !(end = strchr(value + 6, '\n')) ||
            end[1] != '\0')
                return -EBADMSG;
        *value = '\0';
        *end = '\0';
        if (parse_u64(data + 7, &serial) < 0 || !state_etag_printable(value + 6))
                return -EBADMSG;
        memcpy(etag, value + 6, strlen(value + 6) + 1);
        *ret_serial = serial;
        return 0;
}

int state_save_etag(const char *state_dir, uint64_t serial, const char *etag)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        int n;

        if (!etag || !state_etag_printable(etag))
                return -EINVAL;
        if (asprintf(&path, "%s/%s", state_dir, STATE_ETAG_FILE) < 0)
                return -ENOMEM;
        n = asprintf(&text, "serial %" PRIu64 "\netag %s\n", serial, etag);
        if (n < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, (size_t)n, 0600, 0);
}
