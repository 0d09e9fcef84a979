/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nixlog.h"

#define NIXLOG_PREFIX "@nix "
#define NIXLOG_PREFIX_LEN (sizeof(NIXLOG_PREFIX) - 1)

/* Open addressing with linear probing, at most half full. */
#define NIXLOG_TRANSFER_SLOTS (2 * NIXLOG_TRANSFERS_MAX)

struct transfer {
        uint64_t id;
        uint64_t done;
        int type;
        bool used;
};

struct nixlog {
        struct nixlog_counts counts;

        /* The line being assembled; skipping: the current line is overlong, drop to its end. */
        char *line;
        size_t line_size;
        bool skipping;

        struct transfer *transfers;
        size_t n_transfers;

        char machines[NIXLOG_MACHINES_MAX][NIXLOG_MACHINE_NAME_MAX];
        const char *machine_names[NIXLOG_MACHINES_MAX];
        size_t n_machines;

        char last_error[NIXLOG_ERROR_MAX + 1];
        bool has_error;

        /* Twice the tail and a line, so appending moves memory only now and then. */
        char tail[2 * NIXLOG_TAIL_MAX + 2];
        size_t tail_size;
};

struct nixlog *nixlog_new(void)
{
        struct nixlog *nl = calloc(1, sizeof(*nl));

        if (!nl)
                return NULL;
        nl->line = malloc(NIXLOG_LINE_MAX + 1);
        nl->transfers = calloc(NIXLOG_TRANSFER_SLOTS, sizeof(struct transfer));
        if (!nl->line || !nl->transfers)
                return nixlog_free(nl);
        return nl;
}

struct nixlog *nixlog_free(struct nixlog *nl)
{
        if (!nl)
                return NULL;
        free(nl->line);
        free(nl->transfers);
        free(nl);
        return NULL;
}

size_t nixlog_strip_escapes(const char *src, size_t size, char *dst, size_t dst_size)
{
        size_t n = 0;

        if (dst_size == 0)
                return 0;
        for (size_t i = 0; i < size;) {
                unsigned char c = (unsigned char)src[i++];

                if (c == 0x1b) {
                        if (i < size && src[i] == '[') {
                                /* CSI: parameter and intermediate bytes, then one final byte. */
                                i++;
                                while (i < size && (unsigned char)src[i] >= 0x20 &&
                                       (unsigned char)src[i] <= 0x3f)
                                        i++;
                                if (i < size && (unsigned char)src[i] >= 0x40 &&
                                    (unsigned char)src[i] <= 0x7e)
                                        i++;
                        } else if (i < size && src[i] == ']') {
                                /* OSC (a window title...): up to BEL or ESC \. */
                                while (i < size && src[i] != '\a' && src[i] != 0x1b)
                                        i++;
                                if (i < size && src[i] == '\a')
                                        i++;
                        } else {
                                /* ESC, intermediate bytes, one final byte. */
                                while (i < size && (unsigned char)src[i] >= 0x20 &&
                                       (unsigned char)src[i] <= 0x2f)
                                        i++;
                                if (i < size && (unsigned char)src[i] >= 0x30 &&
                                    (unsigned char)src[i] <= 0x7e)
                                        i++;
                        }
                        continue;
                }
                if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                        continue;
                if (n + 1 >= dst_size)
                        break;
                dst[n++] = (char)c;
        }
        dst[n] = '\0';
        return n;
}

static void tail_append(struct nixlog *nl, const char *s, size_t size)
{
        char clean[NIXLOG_TAIL_MAX + 1];
        size_t n;

        /* Only the end of a long text can stay in the tail. */
        if (size > NIXLOG_TAIL_MAX) {
                s += size - NIXLOG_TAIL_MAX;
                size = NIXLOG_TAIL_MAX;
        }
        n = nixlog_strip_escapes(s, size, clean, sizeof(clean));
        while (n > 0 && clean[n - 1] == '\n')
                n--;

        if (nl->tail_size + n + 1 >= sizeof(nl->tail)) {
                size_t keep = nl->tail_size < NIXLOG_TAIL_MAX ? nl->tail_size : NIXLOG_TAIL_MAX;

                memmove(nl->tail, nl->tail + nl->tail_size - keep, keep);
                nl->tail_size = keep;
        }
        memcpy(nl->tail + nl->tail_size, clean, n);
        nl->tail_size += n;
        nl->tail[nl->tail_size++] = '\n';
        nl->tail[nl->tail_size] = '\0';
}

static void set_last_error(struct nixlog *nl, const char *s, size_t size)
{
        size_t n = nixlog_strip_escapes(s, size, nl->last_error, sizeof(nl->last_error));

        while (n > 0 && (nl->last_error[n - 1] == '\n' || nl->last_error[n - 1] == ' '))
                nl->last_error[--n] = '\0';
        nl->has_error = n > 0;
}

static size_t transfer_hash(uint64_t id)
{
        return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (NIXLOG_TRANSFER_SLOTS - 1);
}

static struct transfer *transfer_find(struct nixlog *nl, uint64_t id)
{
        for (size_t i = transfer_hash(id);; i = (i + 1) & (NIXLOG_TRANSFER_SLOTS - 1)) {
                if (!nl->transfers[i].used)
                        return NULL;
                if (nl->transfers[i].id == id)
                        return &nl->transfers[i];
        }
}

static void transfer_add(struct nixlog *nl, uint64_t id, int type)
{
        size_t i;

        if (transfer_find(nl, id))
                return; /* a repeated start: keep what it has done */
        if (nl->n_transfers >= NIXLOG_TRANSFERS_MAX) {
                nl->counts.untracked_transfers++;
                return;
        }
        for (i = transfer_hash(id); nl->transfers[i].used;
             i = (i + 1) & (NIXLOG_TRANSFER_SLOTS - 1))
                ;
        nl->transfers[i] = (struct transfer){.id = id, .type = type, .used = true};
        nl->n_transfers++;
}

static void transfer_remove(struct nixlog *nl, uint64_t id)
{
        struct transfer *t = transfer_find(nl, id);
        size_t i, j;

        if (!t)
                return;
        /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
        i = (size_t)(t - nl->transfers);
        nl->transfers[i].used = false;
        nl->n_transfers--;
        for (j = i;;) {
                size_t k;

                j = (j + 1) & (NIXLOG_TRANSFER_SLOTS - 1);
                if (!nl->transfers[j].used)
                        break;
                k = transfer_hash(nl->transfers[j].id);
                /* Leave entry j where it is when its home k lies cyclically in (i, j]. */
                if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                        continue;
                nl->transfers[i] = nl->transfers[j];
                nl->transfers[j].used = false;
                i = j;
        }
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void transfer_progress(struct nixlog *nl, uint64_t id, uint64_t done)
{
        struct transfer *t = transfer_find(nl, id);
        uint64_t *total;

        if (!t)
                return;
        total = t->type == NIXLOG_ACT_FILE_TRANSFER ? &nl->counts.downloaded_bytes
                                                    : &nl->counts.copied_bytes;
        /* The total holds each transfer's last value: replace this one's. */
        if (done >= t->done)
                *total = add_saturating(*total, done - t->done);
        else
                *total -= *total < t->done - done ? *total : t->done - done;
        t->done = done;
}

static void machine_remember(struct nixlog *nl, const char *name, size_t size)
{
        char clean[NIXLOG_MACHINE_NAME_MAX];

        (void)nixlog_strip_escapes(name, size, clean, sizeof(clean));
        for (size_t i = 0; i < nl->n_machines; i++)
                if (streq(nl->machines[i], clean))
                        return;
        if (nl->n_machines >= NIXLOG_MACHINES_MAX) {
                nl->counts.machines_unnamed++;
                return;
        }
        memcpy(nl->machines[nl->n_machines], clean, sizeof(clean));
        nl->machine_names[nl->n_machines] = nl->machines[nl->n_machines];
        nl->n_machines++;
}

/* A non-negative JSON integer. */
static bool json_get_u64(const json_t *v, uint64_t *ret)
{
        json_int_t i;

        if (!json_is_integer(v))
                return false;
        i = json_integer_value(v);
        if (i < 0)
                return false;
        *ret = (uint64_t)i;
        return true;
}

static bool handle_start(struct nixlog *nl, json_t *record, uint64_t id)
{
        json_t *fields = json_object_get(record, "fields"), *machine;
        uint64_t type;

        if (!json_get_u64(json_object_get(record, "type"), &type))
                return false;
        switch (type) {
        case NIXLOG_ACT_SUBSTITUTE:
                nl->counts.substituted++;
                return true;
        case NIXLOG_ACT_BUILD:
                /* fields: [drv path, machine ("" for this one), round, rounds] */
                machine = json_array_get(fields, 1);
                if (!json_is_string(json_array_get(fields, 0)) || !json_is_string(machine))
                        return false;
                if (json_string_length(machine) == 0) {
                        nl->counts.built_local++;
                } else {
                        nl->counts.built_remote++;
                        machine_remember(nl, json_string_value(machine),
                                         json_string_length(machine));
                }
                return true;
        case NIXLOG_ACT_COPY_PATH:
                nl->counts.copied++;
                transfer_add(nl, id, (int)type);
                return true;
        case NIXLOG_ACT_FILE_TRANSFER:
                transfer_add(nl, id, (int)type);
                return true;
        default:
                return true;
        }
}

static bool handle_result(struct nixlog *nl, json_t *record, uint64_t id)
{
        json_t *fields = json_object_get(record, "fields"), *line;
        uint64_t type, done;

        if (!json_get_u64(json_object_get(record, "type"), &type))
                return false;
        switch (type) {
        case NIXLOG_RES_PROGRESS:
                /* fields: [done, expected, running, failed] */
                if (!json_get_u64(json_array_get(fields, 0), &done))
                        return false;
                transfer_progress(nl, id, done);
                return true;
        case NIXLOG_RES_BUILD_LOG_LINE:
                line = json_array_get(fields, 0);
                if (!json_is_string(line))
                        return false;
                tail_append(nl, json_string_value(line), json_string_length(line));
                return true;
        default:
                return true;
        }
}

static bool handle_msg(struct nixlog *nl, json_t *record)
{
        json_t *msg = json_object_get(record, "msg");
        uint64_t level;

        if (!json_get_u64(json_object_get(record, "level"), &level) || !json_is_string(msg))
                return false;
        /* Levels: 0 error, 1 warn, 2 notice, 3 info, then talkative, chatty, debug, vomit. */
        if (level == 0)
                set_last_error(nl, json_string_value(msg), json_string_length(msg));
        if (level <= 3)
                tail_append(nl, json_string_value(msg), json_string_length(msg));
        return true;
}

static bool handle_json(struct nixlog *nl, const char *text, size_t size)
{
        json_t *record;
        const char *action;
        uint64_t id = 0;
        bool ok = false, has_id;

        /* No JSON_ALLOW_NUL: a "\u0000" makes the line bad instead of cutting strings. */
        record = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(record))
                goto out;
        action = json_string_value(json_object_get(record, "action"));
        if (!action)
                goto out;
        has_id = json_get_u64(json_object_get(record, "id"), &id);

        if (streq(action, "start"))
                ok = has_id && handle_start(nl, record, id);
        else if (streq(action, "stop")) {
                ok = has_id;
                if (ok)
                        transfer_remove(nl, id);
        } else if (streq(action, "result"))
                ok = has_id && handle_result(nl, record, id);
        else if (streq(action, "msg"))
                ok = handle_msg(nl, record);
        else
                ok = true; /* an action of a newer Nix: nothing to count */
out:
        json_decref(record);
        return ok;
}

static void handle_line(struct nixlog *nl, const char *line, size_t size)
{
        char start[8];
        size_t n;

        nl->counts.lines++;
        if (size > 0 && line[size - 1] == '\r')
                size--;
        if (size >= NIXLOG_PREFIX_LEN && memcmp(line, NIXLOG_PREFIX, NIXLOG_PREFIX_LEN) == 0) {
                if (handle_json(nl, line + NIXLOG_PREFIX_LEN, size - NIXLOG_PREFIX_LEN))
                        nl->counts.json_lines++;
                else
                        nl->counts.bad_lines++;
                return;
        }
        /* nixos-rebuild's own words; its failures begin with "error:" like Nix's. */
        tail_append(nl, line, size);
        n = nixlog_strip_escapes(line, size < 64 ? size : 64, start, sizeof(start));
        if (n >= 6 && memcmp(start, "error:", 6) == 0)
                set_last_error(nl, line, size);
}

int nixlog_feed(struct nixlog *nl, const void *data, size_t size)
{
        const char *p = data, *end = p + size;

        while (p < end) {
                const char *nl_pos = memchr(p, '\n', (size_t)(end - p));
                size_t chunk = (size_t)((nl_pos ? nl_pos : end) - p);

                if (nl->skipping) {
                        /* The rest of an overlong line: drop it. */
                } else if (nl->line_size + chunk > NIXLOG_LINE_MAX) {
                        nl->skipping = true;
                        nl->line_size = 0;
                } else if (nl_pos && nl->line_size == 0) {
                        handle_line(nl, p, chunk); /* a whole line in the chunk: no copy */
                } else {
                        memcpy(nl->line + nl->line_size, p, chunk);
                        nl->line_size += chunk;
                        if (nl_pos) {
                                handle_line(nl, nl->line, nl->line_size);
                                nl->line_size = 0;
                        }
                }
                if (!nl_pos)
                        break;
                if (nl->skipping) {
                        nl->counts.lines++;
                        nl->counts.overlong_lines++;
                        nl->skipping = false;
                }
                p = nl_pos + 1;
        }
        return 0;
}

int nixlog_finish(struct nixlog *nl)
{
        if (nl->skipping) {
                nl->counts.lines++;
                nl->counts.overlong_lines++;
                nl->skipping = false;
        } else if (nl->line_size > 0) {
                handle_line(nl, nl->line, nl->line_size);
        }
        nl->line_size = 0;
        return 0;
}

const struct nixlog_counts *nixlog_counts(const struct nixlog *nl)
{
        return &nl->counts;
}

const char *nixlog_last_error(const struct nixlog *nl)
{
        return nl->has_error ? nl->last_error : NULL;
}

const char *const *nixlog_machines(const struct nixlog *nl, size_t *ret_n)
{
        *ret_n = nl->n_machines;
        return nl->machine_names;
}

const char *nixlog_tail(const struct nixlog *nl)
{
        const char *start;

        if (nl->tail_size <= NIXLOG_TAIL_MAX)
                return nl->tail_size ? nl->tail : "";
        start = nl->tail + nl->tail_size - NIXLOG_TAIL_MAX;
        /* Start at a line, unless the cut fell in a line that fills the whole tail. */
        if (start[-1] != '\n') {
                const char *eol = memchr(start, '\n', NIXLOG_TAIL_MAX);

                if (eol && eol[1] != '\0')
                        start = eol + 1;
        }
        return start;
}
