/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "state.h"
#include "util.h"

/* DIR/NAME as text: 0 with *ret_data (NUL-terminated, no NUL inside), -ENOENT when there is
 * none (also when DIR is not a directory), -EBADMSG, or another negative errno. */
static int state_read(const char *state_dir, const char *name, char **ret_data)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", state_dir, name) < 0)
                return -ENOMEM;
        r = read_file_bounded(path, STATE_FILE_MAX, &data, &size);
        if (r == -ENOTDIR)
                return -ENOENT;
        if (r < 0)
                return r;
        if (strlen(data) != size)
                return -EBADMSG;
        *ret_data = TAKE_PTR(data);
        return 0;
}

/* The file is two lines, "serial N" and "applied-at N", in this order. */
int state_load(const char *state_dir, struct agent_state *ret)
{
        _cleanup_free_ char *data = NULL;
        struct agent_state s = {.have_applied = true};
        char *line, *save = NULL;
        unsigned seen = 0;
        int r;

        r = state_read(state_dir, STATE_APPLIED_FILE, &data);
        if (r == -ENOENT) {
                *ret = (struct agent_state){};
                return 0;
        }
        if (r < 0)
                return r;

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

/* DIR/update: one "KEY VALUE" line each, VALUE to the end of the line ("-": empty). */
static int update_set(struct update_state *u, const char *key, const char *value)
{
        struct {
                const char *key;
                char *text;
                size_t size;
        } texts[] = {
            {"outcome", u->outcome, sizeof(u->outcome)},
            {"previous", u->previous, sizeof(u->previous)},
            {"system", u->system, sizeof(u->system)},
            {"booted", u->booted, sizeof(u->booted)},
            {"cause", u->cause, sizeof(u->cause)},
        };
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                if (streq(key, texts[i].key)) {
                        if (strlen(value) >= texts[i].size)
                                return -EBADMSG;
                        strcpy(texts[i].text, streq(value, "-") ? "" : value);
                        return 0;
                }
        if (streq(key, "previous-serial") && streq(value, "-"))
                return 0;
        if (parse_u64(value, &v) < 0)
                return -EBADMSG;
        if (streq(key, "serial"))
                u->serial = v;
        else if (streq(key, "time") && v <= INT64_MAX)
                u->time = (int64_t)v;
        else if (streq(key, "previous-time") && v <= INT64_MAX)
                u->previous_time = (int64_t)v;
        else if (streq(key, "previous-serial")) {
                u->previous_serial = v;
                u->have_previous_serial = true;
        } else
                return -EBADMSG;
        return 0;
}

int state_update_load(const char *state_dir, struct update_state *ret)
{
        _cleanup_free_ char *data = NULL;
        struct update_state u = {.have = true};
        char *line, *save = NULL;
        int r;

        r = state_read(state_dir, STATE_UPDATE_FILE, &data);
        if (r == -ENOENT) {
                *ret = (struct update_state){};
                return 0;
        }
        if (r < 0)
                return r;
        for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *value = strchr(line, ' ');

                if (!value)
                        return -EBADMSG;
                *value++ = '\0';
                r = update_set(&u, line, value);
                if (r < 0)
                        return r;
        }
        if (!u.outcome[0])
                return -EBADMSG;
        *ret = u;
        return 0;
}

static const char *or_dash(const char *s)
{
        return s[0] ? s : "-";
}

int state_update_save(const char *state_dir, const struct update_state *u)
{
        _cleanup_free_ char *path = NULL, *text = NULL, *previous_serial = NULL;
        char cause[STATE_UPDATE_CAUSE_MAX];
        int n;

        if (!u->outcome[0] || strchr(u->outcome, ' ') || u->time < 0)
                return -EINVAL;
        snprintf(cause, sizeof(cause), "%s", u->cause);
        for (char *c = cause; *c; c++)
                if ((unsigned char)*c < ' ' || *c == 0x7f)
                        *c = ' ';
        if (u->have_previous_serial ? asprintf(&previous_serial, "%" PRIu64, u->previous_serial) < 0
                                    : !(previous_serial = strdup("-")))
                return -ENOMEM;
        if (asprintf(&path, "%s/%s", state_dir, STATE_UPDATE_FILE) < 0)
                return -ENOMEM;
        n = asprintf(&text,
                     "serial %" PRIu64 "\noutcome %s\ntime %" PRId64 "\nprevious-serial %s\n"
                     "previous-time %" PRId64 "\nprevious %s\nsystem %s\nbooted %s\ncause %s\n",
                     u->serial, u->outcome, u->time, previous_serial,
                     u->previous_time < 0 ? 0 : u->previous_time, or_dash(u->previous),
                     or_dash(u->system), or_dash(u->booted), or_dash(cause));
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
        _cleanup_free_ char *data = NULL;
        char *value, *end;
        uint64_t serial;
        int r;

        r = state_read(state_dir, STATE_ETAG_FILE, &data);
        if (r < 0)
                return r;
        if (strncmp(data, "serial ", 7) != 0 || !(value = strstr(data, "\netag ")) ||
            !(end = strchr(value + 6, '\n')) || end[1] != '\0')
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
