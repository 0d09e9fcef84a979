/* SPDX-License-Identifier: MIT */
/* Strict schema parsing over libyaml's event stream, read twice (see yaml_schema.h).
 *
 * Pass 1 (check_structure) walks every event of the stream and enforces the rules that hold for
 * any document whatever its keys: valid YAML, one non-empty document, no aliases, anchors or
 * tags, bounded nesting and scalar sizes, no control characters in any scalar. Doing this over
 * the whole stream first means a limit cannot be dodged by hiding the offending node behind a
 * schema error, and the schema pass only ever sees clean, shallow input.
 *
 * Pass 2 (yaml_schema_parse_document) is a recursive descent over the same events: each mapping
 * of a schema is a table of keys, and each key has a small parser for its value. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util.h"
#include "yaml_schema.h"

/* ---- errors ---------------------------------------------------------------------------- */

static void copy_string(char *dst, size_t size, const char *src)
{
        snprintf(dst, size, "%s", src ? src : "");
}

int yaml_schema_fail_at(struct yaml_schema_parser *p, int r, unsigned line, unsigned column,
                        const char *format, ...)
{
        va_list ap;

        if (!p->error)
                return r;
        copy_string(p->error->file, sizeof(p->error->file), p->filename);
        p->error->line = line;
        p->error->column = column;
        copy_string(p->error->key, sizeof(p->error->key), p->path);
        va_start(ap, format);
        vsnprintf(p->error->message, sizeof(p->error->message), format, ap);
        va_end(ap);
        return r;
}

/* The line and column of a byte offset, counted as libyaml does (code points, and \r\n, \r or
 * \n ending a line). */
static void offset_location(const char *data, size_t size, size_t offset, unsigned *ret_line,
                            unsigned *ret_column)
{
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset && i < size; i++) {
                unsigned char c = (unsigned char)data[i];

                if (c == '\n' || (c == '\r' && (i + 1 >= size || data[i + 1] != '\n'))) {
                        line++;
                        column = 1;
                } else if (c != '\r' && (c & 0xc0) != 0x80)
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

static int fail_yaml(struct yaml_schema_parser *p)
{
        const char *problem = p->yaml.problem ? p->yaml.problem : "syntax error";
        unsigned line, column;

        switch (p->yaml.error) {
        case YAML_MEMORY_ERROR:
                return yaml_schema_fail_at(p, -ENOMEM, 0, 0, "out of memory");
        case YAML_READER_ERROR:
                offset_location(p->data, p->size, p->yaml.problem_offset, &line, &column);
                return yaml_schema_fail_at(p, -EBADMSG, line, column, "invalid YAML: %s", problem);
        default:
                if (p->yaml.context)
                        return yaml_schema_fail_mark(p, -EBADMSG, p->yaml.problem_mark,
                                                     "invalid YAML: %s %s", problem,
                                                     p->yaml.context);
                return yaml_schema_fail_mark(p, -EBADMSG, p->yaml.problem_mark, "invalid YAML: %s",
                                             problem);
        }
}

/* ---- text -------------------------------------------------------------------------------- */

/* Control characters (C0, DEL, C1) and the Unicode line separators: none belongs in a value
 * that ends up in nix.conf, a machines file or a terminal. */
static bool codepoint_forbidden(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

const char *yaml_schema_quote(const char *s, char buf[static YAML_SCHEMA_QUOTE_MAX + 4])
{
        size_t n = strlen(s), i = 0;

        if (n <= YAML_SCHEMA_QUOTE_MAX)
                return s;
        while (i < YAML_SCHEMA_QUOTE_MAX) {
                uint32_t cp;
                size_t len = utf8_next(s + i, n - i, &cp);

                if (len == 0 || i + len > YAML_SCHEMA_QUOTE_MAX)
                        break;
                i += len;
        }
        memcpy(buf, s, i);
        memcpy(buf + i, "...", 4);
        return buf;
}

bool yaml_schema_lower_name_valid(const char *s, size_t max, const char *extra)
{
        size_t n = strlen(s);

        if (n == 0 || n > max || !yaml_schema_is_lower_alnum(s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!yaml_schema_is_lower_alnum(s[i]) && !yaml_schema_char_in(s[i], extra))
                        return false;
        return true;
}

bool yaml_schema_has_whitespace(const char *s)
{
        return strpbrk(s, " \t\r\n\f\v") != NULL;
}

int yaml_schema_base64_decode(const char *s, uint8_t *out, size_t max, size_t *ret_size)
{
        return base64_decode_strict(s, strlen(s), out, max, ret_size);
}

/* ---- key paths ----------------------------------------------------------------------------- */

void yaml_schema_path_restore(struct yaml_schema_parser *p, size_t len)
{
        p->path_len = len;
        p->path[len] = '\0';
}

/* Appends text, replacing what a terminal might act on; stops (on a character boundary) when
 * the buffer is full. */
static void path_append(struct yaml_schema_parser *p, const char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_next(s + i, n - i, &cp);
                bool replace = len == 0 || codepoint_forbidden(cp);
                size_t out_len = replace ? 1 : len;

                if (p->path_len + out_len >= sizeof(p->path))
                        break;
                memcpy(p->path + p->path_len, replace ? "?" : s + i, out_len);
                p->path_len += out_len;
                i += len ?: 1;
        }
        p->path[p->path_len] = '\0';
}

size_t yaml_schema_path_push_key(struct yaml_schema_parser *p, const char *key, size_t n)
{
        size_t saved = p->path_len;

        if (saved > 0)
                path_append(p, ".", 1);
        path_append(p, key, n);
        return saved;
}

size_t yaml_schema_path_push_index(struct yaml_schema_parser *p, size_t index)
{
        size_t saved = p->path_len;
        char s[32];
        int n = snprintf(s, sizeof(s), "[%zu]", index);

        path_append(p, s, (size_t)n);
        return saved;
}

/* ---- events ------------------------------------------------------------------------------ */

void yaml_schema_done(struct yaml_schema_parser *p)
{
        if (p->have_event)
                yaml_event_delete(&p->event);
        p->have_event = false;
        if (p->yaml_initialized)
                yaml_parser_delete(&p->yaml);
        p->yaml_initialized = false;
}

static int parser_start(struct yaml_schema_parser *p)
{
        yaml_schema_done(p);
        if (!yaml_parser_initialize(&p->yaml))
                return yaml_schema_fail_at(p, -ENOMEM, 0, 0, "out of memory");
        p->yaml_initialized = true;
        yaml_parser_set_encoding(&p->yaml, YAML_UTF8_ENCODING);
        yaml_parser_set_input_string(&p->yaml, (const unsigned char *)p->data, p->size);
        yaml_schema_path_restore(p, 0);
        return 0;
}

int yaml_schema_next(struct yaml_schema_parser *p)
{
        if (p->have_event)
                yaml_event_delete(&p->event);
        p->have_event = false;
        if (!yaml_parser_parse(&p->yaml, &p->event))
                return fail_yaml(p);
        p->have_event = true;
        return 0;
}

const char *yaml_schema_event_kind(const yaml_event_t *e)
{
        switch (e->type) {
        case YAML_MAPPING_START_EVENT:
                return "a mapping";
        case YAML_SEQUENCE_START_EVENT:
                return "a list";
        case YAML_SCALAR_EVENT:
                return "a scalar";
        default:
                return "nothing";
        }
}

bool yaml_schema_scalar_is_null(const yaml_event_t *e)
{
        const char *s = yaml_schema_scalar_text(e);

        return yaml_schema_scalar_is_plain(e) &&
               (streq(s, "") || streq(s, "~") || streq(s, "null") || streq(s, "Null") ||
                streq(s, "NULL"));
}

/* ---- pass 1: structure ------------------------------------------------------------------- */

/* Refuses raw bytes that are not UTF-8 text before libyaml sees them: libyaml reports those
 * by byte offset only, and NUL would cut strings short further on. */
static int check_bytes(struct yaml_schema_parser *p)
{
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < p->size;) {
                unsigned char c = (unsigned char)p->data[i];
                uint32_t cp;
                size_t len;

                if (c == '\0')
                        return yaml_schema_fail_at(p, -EBADMSG, line, column,
                                                   "NUL bytes are not allowed");
                len = utf8_next(p->data + i, p->size - i, &cp);
                if (len == 0)
                        return yaml_schema_fail_at(p, -EBADMSG, line, column, "invalid UTF-8");
                if (codepoint_forbidden(cp) && cp != '\t' && cp != '\n' && cp != '\r')
                        return yaml_schema_fail_at(p, -EBADMSG, line, column,
                                                   "control character U+%04X is not allowed",
                                                   (unsigned)cp);
                if (c == '\n' || (c == '\r' && (i + 1 >= p->size || p->data[i + 1] != '\n'))) {
                        line++;
                        column = 1;
                } else if (c != '\r')
                        column++;
                i += len;
        }
        return 0;
}

static int check_scalar(struct yaml_schema_parser *p)
{
        const char *s = yaml_schema_scalar_text(&p->event);
        size_t n = p->event.data.scalar.length;

        if (n > p->max_scalar)
                return yaml_schema_fail_event(p, -E2BIG, "value longer than %zu bytes",
                                              p->max_scalar);
        /* Escapes in quoted scalars ("\n", "\0", "\x1b") make what the raw bytes did not have. */
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_next(s + i, n - i, &cp);

                if (len == 0)
                        return yaml_schema_fail_event(p, -EBADMSG, "invalid UTF-8");
                if (codepoint_forbidden(cp))
                        return yaml_schema_fail_event(
                            p, -EBADMSG, "control character U+%04X is not allowed", (unsigned)cp);
                i += len;
        }
        return 0;
}

static int check_node_properties(struct yaml_schema_parser *p, const yaml_char_t *anchor,
                                 const yaml_char_t *tag)
{
        if (anchor)
                return yaml_schema_fail_event(p, -EBADMSG, "aliases and anchors are not allowed");
        if (tag)
                return yaml_schema_fail_event(p, -EBADMSG, "tags are not allowed");
        return 0;
}

struct frame {
        bool mapping;
        bool want_value; /* mappings: the next node is the value of the key in the path */
        size_t index;    /* lists: of the next item */
        size_t path_len; /* of the collection's own path */
};

/* Sets the path for a node about to start inside parent. */
static void node_enter(struct yaml_schema_parser *p, struct frame *parent)
{
        if (!parent)
                return;
        if (parent->mapping) {
                if (!parent->want_value) {
                        yaml_schema_path_restore(p, parent->path_len);
                        if (yaml_schema_is_scalar(&p->event))
                                yaml_schema_path_push_key(p, yaml_schema_scalar_text(&p->event),
                                                          p->event.data.scalar.length);
                        else
                                yaml_schema_path_push_key(p, "?", 1);
                }
        } else {
                yaml_schema_path_restore(p, parent->path_len);
                yaml_schema_path_push_index(p, parent->index);
        }
}

/* A node inside parent has ended. A key leaves its name in the path for its value. */
static void node_leave(struct yaml_schema_parser *p, struct frame *parent)
{
        if (!parent)
                return;
        if (parent->mapping) {
                if (parent->want_value)
                        yaml_schema_path_restore(p, parent->path_len);
                parent->want_value = !parent->want_value;
        } else {
                yaml_schema_path_restore(p, parent->path_len);
                parent->index++;
        }
}

static void note_version(struct yaml_schema_parser *p, struct frame *stack, size_t depth)
{
        uint64_t v;

        if (!p->version_key || depth != 1 || !stack[0].want_value ||
            !streq(p->path, p->version_key) || p->version_seen)
                return;
        if (!yaml_schema_scalar_is_plain(&p->event) ||
            parse_u64(yaml_schema_scalar_text(&p->event), &v) < 0)
                return;
        p->version_seen = true;
        p->version = v;
        p->version_mark = p->event.start_mark;
}

/* A scalar inside stack[depth - 1] (none when depth is 0). */
static int structure_scalar(struct yaml_schema_parser *p, struct frame *stack, size_t depth)
{
        struct frame *parent = depth > 0 ? &stack[depth - 1] : NULL;
        int r;

        node_enter(p, parent);
        r = check_node_properties(p, p->event.data.scalar.anchor, p->event.data.scalar.tag);
        if (r < 0)
                return r;
        r = check_scalar(p);
        if (r < 0)
                return r;
        note_version(p, stack, depth);
        node_leave(p, parent);
        return 0;
}

/* A list or mapping starts inside stack[*depth - 1]: pushes its frame. */
static int structure_collection_start(struct yaml_schema_parser *p, struct frame *stack,
                                      size_t *depth)
{
        bool mapping = p->event.type == YAML_MAPPING_START_EVENT;
        int r;

        node_enter(p, *depth > 0 ? &stack[*depth - 1] : NULL);
        r = mapping ? check_node_properties(p, p->event.data.mapping_start.anchor,
                                            p->event.data.mapping_start.tag)
                    : check_node_properties(p, p->event.data.sequence_start.anchor,
                                            p->event.data.sequence_start.tag);
        if (r < 0)
                return r;
        if (*depth >= p->max_depth || *depth >= YAML_SCHEMA_DEPTH_MAX)
                return yaml_schema_fail_event(p, -E2BIG, "nesting deeper than %u levels",
                                              p->max_depth);
        stack[(*depth)++] = (struct frame){.mapping = mapping, .path_len = p->path_len};
        return 0;
}

static int check_structure(struct yaml_schema_parser *p)
{
        struct frame stack[YAML_SCHEMA_DEPTH_MAX];
        size_t depth = 0;
        unsigned documents = 0;
        int r;

        r = parser_start(p);
        if (r < 0)
                return r;

        for (;;) {
                struct frame *parent = depth > 0 ? &stack[depth - 1] : NULL;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;

                switch (p->event.type) {
                case YAML_STREAM_END_EVENT:
                        if (documents == 0)
                                return yaml_schema_fail_at(p, -EBADMSG, 1, 1, "empty document");
                        return 0;

                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1)
                                return yaml_schema_fail_event(p, -EBADMSG,
                                                              "more than one document");
                        break;

                case YAML_ALIAS_EVENT:
                        node_enter(p, parent);
                        return yaml_schema_fail_event(p, -EBADMSG,
                                                      "aliases and anchors are not allowed");

                case YAML_SCALAR_EVENT:
                        r = structure_scalar(p, stack, depth);
                        if (r < 0)
                                return r;
                        break;

                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        r = structure_collection_start(p, stack, &depth);
                        if (r < 0)
                                return r;
                        break;

                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth == 0) /* libyaml never does this; be safe anyway */
                                return yaml_schema_fail_event(p, -EBADMSG,
                                                              "invalid YAML: unbalanced end");
                        depth--;
                        yaml_schema_path_restore(p, stack[depth].path_len);
                        node_leave(p, depth > 0 ? &stack[depth - 1] : NULL);
                        break;

                default:
                        break;
                }
        }
}

/* "1 MiB", "64 KiB" or "1000 bytes", for the size limit's message. */
static void format_size(size_t size, char *buf, size_t n)
{
        if (size >= 1024 * 1024 && size % (1024 * 1024) == 0)
                snprintf(buf, n, "%zu MiB", size / (1024 * 1024));
        else if (size >= 1024 && size % 1024 == 0)
                snprintf(buf, n, "%zu KiB", size / 1024);
        else
                snprintf(buf, n, "%zu bytes", size);
}

int yaml_schema_check(struct yaml_schema_parser *p)
{
        if (!p->data && p->size > 0)
                return yaml_schema_fail_at(p, -EINVAL, 0, 0, "no data");
        if (p->size > p->max_bytes) {
                char limit[32];

                format_size(p->max_bytes, limit, sizeof(limit));
                return yaml_schema_fail_at(p, -E2BIG, 0, 0, "larger than %s (%zu bytes)", limit,
                                           p->max_bytes);
        }
        if (!p->data)
                p->data = "";
        /* A UTF-8 byte order mark, as some editors write it: libyaml would count it as a column
         * and misread the indentation of the first line. */
        if (p->size >= 3 && memcmp(p->data, "\xef\xbb\xbf", 3) == 0) {
                p->data += 3;
                p->size -= 3;
        }
        p->version_seen = false;

        int r = check_bytes(p);
        if (r < 0)
                return r;
        return check_structure(p);
}

/* ---- pass 2: values ---------------------------------------------------------------------- */

int yaml_schema_fail_type(struct yaml_schema_parser *p, const char *expected)
{
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

        if (!yaml_schema_is_scalar(&p->event))
                return yaml_schema_fail_event(p, -EBADMSG, "expected %s, got %s", expected,
                                              yaml_schema_event_kind(&p->event));
        if (yaml_schema_scalar_is_null(&p->event))
                return yaml_schema_fail_event(p, -EBADMSG, "expected %s, got nothing", expected);
        if (!yaml_schema_scalar_is_plain(&p->event))
                return yaml_schema_fail_event(p, -EBADMSG, "expected %s, got a quoted string",
                                              expected);
        return yaml_schema_fail_event(p, -EBADMSG, "expected %s, got '%s'", expected,
                                      yaml_schema_quote(yaml_schema_scalar_text(&p->event), buf));
}

int yaml_schema_expect_string(struct yaml_schema_parser *p, const char *what, const char **ret)
{
        if (!yaml_schema_is_scalar(&p->event) || yaml_schema_scalar_is_null(&p->event))
                return yaml_schema_fail_type(p, what);
        *ret = yaml_schema_scalar_text(&p->event);
        return 0;
}

int yaml_schema_set_string(struct yaml_schema_parser *p, char **target, const char *s)
{
        char *copy = strdup(s);

        if (!copy)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        free(*target);
        *target = copy;
        return 0;
}

int yaml_schema_fail_value(struct yaml_schema_parser *p, const char *format, const char *value)
{
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

        return yaml_schema_fail_event(p, -EBADMSG, format, yaml_schema_quote(value, buf));
}

int yaml_schema_parse_uint(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                           void *base)
{
        uint64_t v;
        int r;

        if (!yaml_schema_is_scalar(&p->event) || !yaml_schema_scalar_is_plain(&p->event))
                return yaml_schema_fail_type(p, "an unsigned integer");
        r = parse_u64(yaml_schema_scalar_text(&p->event), &v);
        if (r == -ERANGE)
                return yaml_schema_fail_value(p, "value '%s' is out of range",
                                              yaml_schema_scalar_text(&p->event));
        if (r < 0)
                return yaml_schema_fail_type(p, "an unsigned integer");
        if (v < f->min || v > f->max)
                return yaml_schema_fail_event(p, -EBADMSG, "value %llu is out of range %llu..%llu",
                                              (unsigned long long)v, (unsigned long long)f->min,
                                              (unsigned long long)f->max);
        *(uint64_t *)((char *)base + f->offset) = v;
        return 0;
}

int yaml_schema_parse_bool(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                           void *base)
{
        bool *target = (bool *)((char *)base + f->offset);

        if (yaml_schema_is_scalar(&p->event) && yaml_schema_scalar_is_plain(&p->event)) {
                if (streq(yaml_schema_scalar_text(&p->event), "true")) {
                        *target = true;
                        return 0;
                }
                if (streq(yaml_schema_scalar_text(&p->event), "false")) {
                        *target = false;
                        return 0;
                }
        }
        return yaml_schema_fail_type(p, "true or false");
}

int yaml_schema_parse_section(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                              void *base)
{
        return yaml_schema_parse_mapping(p, f->table, (char *)base + f->offset, NULL);
}

/* ---- lists of strings ---- */

int yaml_schema_parse_string_list(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                                  void *base, const char *what, yaml_schema_item_check_t check)
{
        char ***items = (char ***)((char *)base + f->offset);
        size_t *n_items = (size_t *)((char *)base + f->count_offset);
        size_t allocated = 0;
        int r;

        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return yaml_schema_fail_type(p, "a list");
        yaml_mark_t start = p->event.start_mark;

        for (size_t i = 0;; i++) {
                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        break;

                size_t saved = yaml_schema_path_push_index(p, i);
                const char *s = NULL;
                char *copy;

                if (i >= f->max)
                        return yaml_schema_fail_event(p, -E2BIG, "more than %llu items",
                                                      (unsigned long long)f->max);
                r = yaml_schema_expect_string(p, what, &s);
                if (r < 0)
                        return r;
                copy = strdup(s);
                if (!copy)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                r = check(p, copy);
                if (r < 0) {
                        free(copy);
                        return r;
                }
                if (*n_items >= allocated) {
                        size_t grow = allocated ? allocated * 2 : 8;
                        char **a = reallocarray(*items, grow, sizeof(char *));

                        if (!a) {
                                free(copy);
                                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                        }
                        *items = a;
                        allocated = grow;
                }
                (*items)[(*n_items)++] = copy;
                yaml_schema_path_restore(p, saved);
        }
        if ((f->flags & YAML_SCHEMA_FIELD_NONEMPTY) && *n_items == 0)
                return yaml_schema_fail_mark(p, -EBADMSG, start, "the list must not be empty");
        return 0;
}

/* ---- mappings ---- */

int yaml_schema_parse_mapping(struct yaml_schema_parser *p, const struct yaml_schema_table *t,
                              void *base, yaml_mark_t *ret_marks)
{
        unsigned seen_line[YAML_SCHEMA_FIELDS_MAX] = {};
        yaml_mark_t start = p->event.start_mark;
        int r;

        if (p->event.type != YAML_MAPPING_START_EVENT)
                return yaml_schema_fail_type(p, "a mapping");

        for (;;) {
                const struct yaml_schema_field *f = NULL;
                size_t index = 0, saved;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_MAPPING_END_EVENT)
                        break;
                if (!yaml_schema_is_scalar(&p->event))
                        return yaml_schema_fail_type(p, "a key");

                const char *key = yaml_schema_scalar_text(&p->event);
                saved = yaml_schema_path_push_key(p, key, strlen(key));
                for (index = 0; index < t->n_fields; index++)
                        if (streq(t->fields[index].key, key)) {
                                f = &t->fields[index];
                                break;
                        }
                if (!f)
                        return yaml_schema_fail_value(p, "unknown key '%s'", key);
                if (seen_line[index] > 0) {
                        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

                        return yaml_schema_fail_event(
                            p, -EBADMSG, "duplicate key '%s' (first at line %u)",
                            yaml_schema_quote(key, buf), seen_line[index]);
                }
                seen_line[index] = (unsigned)p->event.start_mark.line + 1;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (ret_marks)
                        ret_marks[index] = p->event.start_mark;
                r = f->parse(p, f, base);
                if (r < 0)
                        return r;
                yaml_schema_path_restore(p, saved);
        }

        for (size_t i = 0; i < t->n_fields; i++)
                if ((t->fields[i].flags & YAML_SCHEMA_FIELD_REQUIRED) && seen_line[i] == 0) {
                        const char *key = t->fields[i].key;

                        yaml_schema_path_push_key(p, key, strlen(key));
                        return yaml_schema_fail_mark(p, -EBADMSG, start,
                                                     "missing required key '%s'", key);
                }
        return 0;
}

int yaml_schema_parse_document(struct yaml_schema_parser *p, const struct yaml_schema_table *t,
                               void *base, yaml_mark_t *ret_start)
{
        yaml_mark_t start;
        int r;

        r = parser_start(p);
        if (r < 0)
                return r;
        /* Pass 1 accepted this stream: it starts with exactly one document. */
        do {
                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
        } while (p->event.type == YAML_STREAM_START_EVENT ||
                 p->event.type == YAML_DOCUMENT_START_EVENT);

        if (yaml_schema_is_scalar(&p->event) && yaml_schema_scalar_is_null(&p->event))
                return yaml_schema_fail_event(p, -EBADMSG, "empty document");
        if (p->event.type != YAML_MAPPING_START_EVENT)
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "expected a mapping at the top of the document, "
                                              "got %s",
                                              yaml_schema_event_kind(&p->event));
        start = p->event.start_mark;

        r = yaml_schema_parse_mapping(p, t, base, NULL);
        if (r < 0)
                return r;
        if (ret_start)
                *ret_start = start;
        return 0;
}

int yaml_schema_parse_list(struct yaml_schema_parser *p, const struct yaml_schema_list *l,
                           void **items, size_t *n_items)
{
        int r;

        if (p->event.type != YAML_SEQUENCE_START_EVENT) {
                char what[64];

                (void)snprintf(what, sizeof(what), "a list of %s", l->what);
                return yaml_schema_fail_type(p, what);
        }
        for (size_t i = 0;; i++) {
                yaml_mark_t marks[YAML_SCHEMA_FIELDS_MAX];
                char *element;
                void *grown;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        return 0;

                size_t saved = yaml_schema_path_push_index(p, i);
                yaml_mark_t mark = p->event.start_mark;

                if (i >= l->max)
                        return yaml_schema_fail_event(p, -E2BIG, "more than %zu %s", l->max,
                                                      l->what);
                grown = reallocarray(*items, *n_items + 1, l->element_size);
                if (!grown)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                *items = grown;
                element = (char *)grown + *n_items * l->element_size;
                (*n_items)++;
                memset(element, 0, l->element_size);
                if (l->init)
                        l->init(element, mark);

                r = yaml_schema_parse_mapping(p, l->table, element, marks);
                if (r < 0)
                        return r;
                if (l->check) {
                        r = l->check(p, *items, *n_items - 1, marks);
                        if (r < 0)
                                return r;
                }
                yaml_schema_path_restore(p, saved);
        }
}
