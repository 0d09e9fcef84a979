/* SPDX-License-Identifier: MIT */
/* The profile parser: libyaml's event stream, read twice.
 *
 * Pass 1 (check_structure) walks every event of the stream and enforces the rules that hold for
 * any document whatever its keys: valid YAML, one non-empty document, no aliases, anchors or
 * tags, bounded nesting and scalar sizes, no control characters in any scalar. Doing this over
 * the whole stream first means a limit cannot be dodged by hiding the offending node behind a
 * schema error, and the schema pass only ever sees clean, shallow input.
 *
 * Pass 2 (parse_document) is a recursive descent over the same events: each mapping of the
 * schema is a table of keys, and each key has a small parser for its value. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <yaml.h>

#include "profile.h"
#include "util.h"

#define NAME_MAX_LEN 64        /* setting names, systems, features, groups */
#define CACHE_NAME_MAX_LEN 63  /* a DNS label: NAME.cachix.org */
#define HOST_KEY_BLOB_MAX 4096 /* decoded SSH public key blob (RSA 16384 fits) */
#define SECRET_PATH_MAX 4096
#define QUOTE_MAX 48  /* bytes of a value quoted in a message */
#define FIELDS_MAX 16 /* keys of one schema mapping */

struct parser {
        yaml_parser_t yaml;
        bool yaml_initialized;
        yaml_event_t event; /* the current event, valid when have_event */
        bool have_event;

        const char *data;
        size_t size;
        const char *filename;
        struct profile_error *error;

        /* The key path of the node being looked at, as shown in errors. */
        char path[PROFILE_ERROR_KEY_MAX];
        size_t path_len;

        /* Pass 1 notes the top-level "nixprov" value, so that a profile of another schema is
         * refused as such rather than for the first key this parser does not know. */
        bool schema_seen;
        uint64_t schema;
        yaml_mark_t schema_mark;
};

struct field;
typedef int (*field_parser_t)(struct parser *p, const struct field *f, void *base);

enum {
        FIELD_REQUIRED = 1 << 0,
        FIELD_NONEMPTY = 1 << 1,     /* lists: at least one item */
        FIELD_PATH_ALLOWED = 1 << 2, /* secrets: an absolute path instead of {sealed: ...} */
};

struct table {
        const struct field *fields;
        size_t n_fields;
};

/* One key of a schema mapping. The value's parser finds its target at base + offset. */
struct field {
        const char *key;
        field_parser_t parse;
        size_t offset;
        size_t count_offset; /* lists: the size_t that counts the items */
        uint64_t min, max;   /* numbers: the range; lists: the most items */
        unsigned flags;
        const struct table *table; /* sections: the keys of the nested mapping */
};

/* parse_mapping() keeps one slot per key of a table. */
#define DEFINE_TABLE(name, f)                                                                      \
        _Static_assert(ELEMENTSOF(f) <= FIELDS_MAX, "too many keys in " #f);                       \
        static const struct table name = {(f), ELEMENTSOF(f)}

/* ---- errors ---------------------------------------------------------------------------- */

static void copy_string(char *dst, size_t size, const char *src)
{
        snprintf(dst, size, "%s", src ? src : "");
}

static int fail_at(struct parser *p, int r, unsigned line, unsigned column, const char *format, ...)
    _printf_(5, 6);
static int fail_at(struct parser *p, int r, unsigned line, unsigned column, const char *format, ...)
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

/* libyaml's marks count from 0; people count from 1. */
#define fail_mark(p, r, mark, ...)                                                                 \
        fail_at((p), (r), (unsigned)(mark).line + 1, (unsigned)(mark).column + 1, __VA_ARGS__)
#define fail_event(p, r, ...) fail_mark((p), (r), (p)->event.start_mark, __VA_ARGS__)

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

static int fail_yaml(struct parser *p)
{
        const char *problem = p->yaml.problem ? p->yaml.problem : "syntax error";
        unsigned line, column;

        switch (p->yaml.error) {
        case YAML_MEMORY_ERROR:
                return fail_at(p, -ENOMEM, 0, 0, "out of memory");
        case YAML_READER_ERROR:
                offset_location(p->data, p->size, p->yaml.problem_offset, &line, &column);
                return fail_at(p, -EBADMSG, line, column, "invalid YAML: %s", problem);
        default:
                if (p->yaml.context)
                        return fail_mark(p, -EBADMSG, p->yaml.problem_mark, "invalid YAML: %s %s",
                                         problem, p->yaml.context);
                return fail_mark(p, -EBADMSG, p->yaml.problem_mark, "invalid YAML: %s", problem);
        }
}

/* ---- text -------------------------------------------------------------------------------- */

/* The length of the UTF-8 sequence at s (n bytes left), or 0 when it is not valid UTF-8. */
static size_t utf8_decode(const char *s, size_t n, uint32_t *ret_cp)
{
        const unsigned char *u = (const unsigned char *)s;
        uint32_t cp, min;
        size_t len;

        if (u[0] < 0x80) {
                *ret_cp = u[0];
                return 1;
        }
        if ((u[0] & 0xe0) == 0xc0) {
                len = 2, cp = u[0] & 0x1f, min = 0x80;
        } else if ((u[0] & 0xf0) == 0xe0) {
                len = 3, cp = u[0] & 0x0f, min = 0x800;
        } else if ((u[0] & 0xf8) == 0xf0) {
                len = 4, cp = u[0] & 0x07, min = 0x10000;
        } else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((u[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (u[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return len;
}

/* Control characters (C0, DEL, C1) and the Unicode line separators: none belongs in a value
 * that ends up in nix.conf, a machines file or a terminal. */
static bool codepoint_forbidden(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

/* Copies at most QUOTE_MAX bytes of s for a message, cut on a character boundary. */
static const char *quote(const char *s, char buf[static QUOTE_MAX + 4])
{
        size_t n = strlen(s), i = 0;

        if (n <= QUOTE_MAX)
                return s;
        while (i < QUOTE_MAX) {
                uint32_t cp;
                size_t len = utf8_decode(s + i, n - i, &cp);

                if (len == 0 || i + len > QUOTE_MAX)
                        break;
                i += len;
        }
        memcpy(buf, s, i);
        memcpy(buf + i, "...", 4);
        return buf;
}

static bool char_in(char c, const char *set)
{
        return c != '\0' && strchr(set, c);
}

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9][a-z0-9EXTRA]*, at most max bytes. */
static bool lower_name_valid(const char *s, size_t max, const char *extra)
{
        size_t n = strlen(s);

        if (n == 0 || n > max || !is_lower_alnum(s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_lower_alnum(s[i]) && !char_in(s[i], extra))
                        return false;
        return true;
}

static bool has_whitespace(const char *s)
{
        return strpbrk(s, " \t\r\n\f\v") != NULL;
}

/* Strict standard base64 (padding required, no white space) into out (at most max bytes). */
static int base64_decode(const char *s, uint8_t *out, size_t max, size_t *ret_size)
{
        return base64_decode_strict(s, strlen(s), out, max, ret_size);
}

/* ---- key paths ----------------------------------------------------------------------------- */

static void path_restore(struct parser *p, size_t len)
{
        p->path_len = len;
        p->path[len] = '\0';
}

/* Appends text, replacing what a terminal might act on; stops (on a character boundary) when
 * the buffer is full. */
static void path_append(struct parser *p, const char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(s + i, n - i, &cp);
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

static size_t path_push_key(struct parser *p, const char *key, size_t n)
{
        size_t saved = p->path_len;

        if (saved > 0)
                path_append(p, ".", 1);
        path_append(p, key, n);
        return saved;
}

static size_t path_push_index(struct parser *p, size_t index)
{
        size_t saved = p->path_len;
        char s[32];
        int n = snprintf(s, sizeof(s), "[%zu]", index);

        path_append(p, s, (size_t)n);
        return saved;
}

/* ---- events ------------------------------------------------------------------------------ */

static void parser_done(struct parser *p)
{
        if (p->have_event)
                yaml_event_delete(&p->event);
        p->have_event = false;
        if (p->yaml_initialized)
                yaml_parser_delete(&p->yaml);
        p->yaml_initialized = false;
}

static int parser_start(struct parser *p)
{
        parser_done(p);
        if (!yaml_parser_initialize(&p->yaml))
                return fail_at(p, -ENOMEM, 0, 0, "out of memory");
        p->yaml_initialized = true;
        yaml_parser_set_encoding(&p->yaml, YAML_UTF8_ENCODING);
        yaml_parser_set_input_string(&p->yaml, (const unsigned char *)p->data, p->size);
        path_restore(p, 0);
        return 0;
}

static int next_event(struct parser *p)
{
        if (p->have_event)
                yaml_event_delete(&p->event);
        p->have_event = false;
        if (!yaml_parser_parse(&p->yaml, &p->event))
                return fail_yaml(p);
        p->have_event = true;
        return 0;
}

static const char *event_kind(const yaml_event_t *e)
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

static bool event_is_scalar(const yaml_event_t *e)
{
        return e->type == YAML_SCALAR_EVENT;
}

static const char *scalar_text(const yaml_event_t *e)
{
        return (const char *)e->data.scalar.value;
}

static bool scalar_is_plain(const yaml_event_t *e)
{
        return e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty value, "~" or "null": YAML's null, which no key of the schema takes. */
static bool scalar_is_null(const yaml_event_t *e)
{
        const char *s = scalar_text(e);

        return scalar_is_plain(e) && (streq(s, "") || streq(s, "~") || streq(s, "null") ||
                                      streq(s, "Null") || streq(s, "NULL"));
}

/* ---- pass 1: structure ------------------------------------------------------------------- */

/* Refuses raw bytes that are not UTF-8 text before libyaml sees them: libyaml reports those
 * by byte offset only, and NUL would cut strings short further on. */
static int check_bytes(struct parser *p)
{
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < p->size;) {
                unsigned char c = (unsigned char)p->data[i];
                uint32_t cp;
                size_t len;

                if (c == '\0')
                        return fail_at(p, -EBADMSG, line, column, "NUL bytes are not allowed");
                len = utf8_decode(p->data + i, p->size - i, &cp);
                if (len == 0)
                        return fail_at(p, -EBADMSG, line, column, "invalid UTF-8");
                if (codepoint_forbidden(cp) && cp != '\t' && cp != '\n' && cp != '\r')
                        return fail_at(p, -EBADMSG, line, column,
                                       "control character U+%04X is not allowed", (unsigned)cp);
                if (c == '\n' || (c == '\r' && (i + 1 >= p->size || p->data[i + 1] != '\n'))) {
                        line++;
                        column = 1;
                } else if (c != '\r')
                        column++;
                i += len;
        }
        return 0;
}

static int check_scalar(struct parser *p)
{
        const char *s = scalar_text(&p->event);
        size_t n = p->event.data.scalar.length;

        if (n > PROFILE_MAX_SCALAR)
                return fail_event(p, -E2BIG, "value longer than %d bytes", PROFILE_MAX_SCALAR);
        /* Escapes in quoted scalars ("\n", "\0", "\x1b") make what the raw bytes did not have. */
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(s + i, n - i, &cp);

                if (len == 0)
                        return fail_event(p, -EBADMSG, "invalid UTF-8");
                if (codepoint_forbidden(cp))
                        return fail_event(p, -EBADMSG, "control character U+%04X is not allowed",
                                          (unsigned)cp);
                i += len;
        }
        return 0;
}

static int check_node_properties(struct parser *p, const yaml_char_t *anchor,
                                 const yaml_char_t *tag)
{
        if (anchor)
                return fail_event(p, -EBADMSG, "aliases and anchors are not allowed");
        if (tag)
                return fail_event(p, -EBADMSG, "tags are not allowed");
        return 0;
}

struct frame {
        bool mapping;
        bool want_value; /* mappings: the next node is the value of the key in the path */
        size_t index;    /* lists: of the next item */
        size_t path_len; /* of the collection's own path */
};

/* Sets the path for a node about to start inside parent. */
static void node_enter(struct parser *p, struct frame *parent)
{
        if (!parent)
                return;
        if (parent->mapping) {
                if (!parent->want_value) {
                        path_restore(p, parent->path_len);
                        if (event_is_scalar(&p->event))
                                path_push_key(p, scalar_text(&p->event),
                                              p->event.data.scalar.length);
                        else
                                path_push_key(p, "?", 1);
                }
        } else {
                path_restore(p, parent->path_len);
                path_push_index(p, parent->index);
        }
}

/* A node inside parent has ended. A key leaves its name in the path for its value. */
static void node_leave(struct parser *p, struct frame *parent)
{
        if (!parent)
                return;
        if (parent->mapping) {
                if (parent->want_value)
                        path_restore(p, parent->path_len);
                parent->want_value = !parent->want_value;
        } else {
                path_restore(p, parent->path_len);
                parent->index++;
        }
}

static void note_schema(struct parser *p, struct frame *stack, size_t depth)
{
        uint64_t v;

        if (depth != 1 || !stack[0].want_value || !streq(p->path, "nixprov") || p->schema_seen)
                return;
        if (!scalar_is_plain(&p->event) || parse_u64(scalar_text(&p->event), &v) < 0)
                return;
        p->schema_seen = true;
        p->schema = v;
        p->schema_mark = p->event.start_mark;
}

static int check_structure(struct parser *p)
{
        struct frame stack[PROFILE_MAX_DEPTH];
        size_t depth = 0;
        unsigned documents = 0;
        int r;

        r = parser_start(p);
        if (r < 0)
                return r;

        for (;;) {
                struct frame *parent = depth > 0 ? &stack[depth - 1] : NULL;

                r = next_event(p);
                if (r < 0)
                        return r;

                switch (p->event.type) {
                case YAML_STREAM_END_EVENT:
                        if (documents == 0)
                                return fail_at(p, -EBADMSG, 1, 1, "empty document");
                        return 0;

                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1)
                                return fail_event(p, -EBADMSG, "more than one document");
                        break;

                case YAML_ALIAS_EVENT:
                        node_enter(p, parent);
                        return fail_event(p, -EBADMSG, "aliases and anchors are not allowed");

                case YAML_SCALAR_EVENT:
                        node_enter(p, parent);
                        r = check_node_properties(p, p->event.data.scalar.anchor,
                                                  p->event.data.scalar.tag);
                        if (r < 0)
                                return r;
                        r = check_scalar(p);
                        if (r < 0)
                                return r;
                        note_schema(p, stack, depth);
                        node_leave(p, parent);
                        break;

                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT: {
                        bool mapping = p->event.type == YAML_MAPPING_START_EVENT;

                        node_enter(p, parent);
                        r = mapping ? check_node_properties(p, p->event.data.mapping_start.anchor,
                                                            p->event.data.mapping_start.tag)
                                    : check_node_properties(p, p->event.data.sequence_start.anchor,
                                                            p->event.data.sequence_start.tag);
                        if (r < 0)
                                return r;
                        if (depth >= PROFILE_MAX_DEPTH)
                                return fail_event(p, -E2BIG, "nesting deeper than %d levels",
                                                  PROFILE_MAX_DEPTH);
                        stack[depth++] =
                            (struct frame){.mapping = mapping, .path_len = p->path_len};
                        break;
                }

                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth == 0) /* libyaml never does this; be safe anyway */
                                return fail_event(p, -EBADMSG, "invalid YAML: unbalanced end");
                        depth--;
                        path_restore(p, stack[depth].path_len);
                        node_leave(p, depth > 0 ? &stack[depth - 1] : NULL);
                        break;

                default:
                        break;
                }
        }
}

/* ---- pass 2: the schema -------------------------------------------------------------------- */

static struct profile_location location_of(yaml_mark_t mark)
{
        return (struct profile_location){(unsigned)mark.line + 1, (unsigned)mark.column + 1};
}

static int fail_type(struct parser *p, const char *expected)
{
        char buf[QUOTE_MAX + 4];

        if (!event_is_scalar(&p->event))
                return fail_event(p, -EBADMSG, "expected %s, got %s", expected,
                                  event_kind(&p->event));
        if (scalar_is_null(&p->event))
                return fail_event(p, -EBADMSG, "expected %s, got nothing", expected);
        if (!scalar_is_plain(&p->event))
                return fail_event(p, -EBADMSG, "expected %s, got a quoted string", expected);
        return fail_event(p, -EBADMSG, "expected %s, got '%s'", expected,
                          quote(scalar_text(&p->event), buf));
}

/* The text of a scalar that is not null: any style, since every scalar is a string. */
static int expect_string(struct parser *p, const char *what, const char **ret)
{
        if (!event_is_scalar(&p->event) || scalar_is_null(&p->event))
                return fail_type(p, what);
        *ret = scalar_text(&p->event);
        return 0;
}

static int set_string(struct parser *p, char **target, const char *s)
{
        char *copy = strdup(s);

        if (!copy)
                return fail_event(p, -ENOMEM, "out of memory");
        free(*target);
        *target = copy;
        return 0;
}

static int fail_value(struct parser *p, const char *format, const char *value) _printf_(2, 0);
static int fail_value(struct parser *p, const char *format, const char *value)
{
        char buf[QUOTE_MAX + 4];

        return fail_event(p, -EBADMSG, format, quote(value, buf));
}

static int parse_mapping(struct parser *p, const struct table *t, void *base,
                         yaml_mark_t *ret_marks);

static int parse_uint(struct parser *p, const struct field *f, void *base)
{
        uint64_t v;
        int r;

        if (!event_is_scalar(&p->event) || !scalar_is_plain(&p->event))
                return fail_type(p, "an unsigned integer");
        r = parse_u64(scalar_text(&p->event), &v);
        if (r == -ERANGE)
                return fail_value(p, "value '%s' is out of range", scalar_text(&p->event));
        if (r < 0)
                return fail_type(p, "an unsigned integer");
        if (v < f->min || v > f->max)
                return fail_event(p, -EBADMSG, "value %llu is out of range %llu..%llu",
                                  (unsigned long long)v, (unsigned long long)f->min,
                                  (unsigned long long)f->max);
        *(uint64_t *)((char *)base + f->offset) = v;
        return 0;
}

static int parse_schema(struct parser *p, const struct field *f, void *base)
{
        uint64_t *schema = (uint64_t *)((char *)base + f->offset);
        int r;

        r = parse_uint(p, f, base);
        if (r < 0)
                return r;
        if (*schema != PROFILE_SCHEMA)
                return fail_event(p, -EPROTONOSUPPORT,
                                  "unsupported schema %llu (this nixprov reads schema %d)",
                                  (unsigned long long)*schema, PROFILE_SCHEMA);
        return 0;
}

static int parse_bool(struct parser *p, const struct field *f, void *base)
{
        bool *target = (bool *)((char *)base + f->offset);

        if (event_is_scalar(&p->event) && scalar_is_plain(&p->event)) {
                if (streq(scalar_text(&p->event), "true")) {
                        *target = true;
                        return 0;
                }
                if (streq(scalar_text(&p->event), "false")) {
                        *target = false;
                        return 0;
                }
        }
        return fail_type(p, "true or false");
}

static int parse_time(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL;
        int64_t t;
        int r;

        r = expect_string(p, "a time like 2027-01-31T00:00:00Z", &s);
        if (r < 0)
                return r;
        if (parse_rfc3339_utc(s, &t) < 0)
                return fail_value(p, "expected a UTC time like 2027-01-31T00:00:00Z, got '%s'", s);
        *(int64_t *)((char *)base + f->offset) = t;
        return 0;
}

static int parse_strategy(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = expect_string(p, "a strategy", &s);
        if (r < 0)
                return r;
        for (int i = 0; i < _PROFILE_STRATEGY_MAX; i++)
                if (streq(s, profile_strategy_to_string(i))) {
                        *(enum profile_strategy *)((char *)base + f->offset) = i;
                        return 0;
                }
        return fail_value(p,
                          "unknown strategy '%s' (expected binary-caches, source or "
                          "remote-builders)",
                          s);
}

static int parse_action(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = expect_string(p, "an action", &s);
        if (r < 0)
                return r;
        for (int i = 0; i < _PROFILE_REBUILD_ACTION_MAX; i++)
                if (streq(s, profile_rebuild_action_to_string(i))) {
                        *(enum profile_rebuild_action *)((char *)base + f->offset) = i;
                        return 0;
                }
        return fail_value(p, "unknown action '%s' (expected switch, boot or test)", s);
}

static int parse_flake(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = expect_string(p, "a flake reference", &s);
        if (r < 0)
                return r;
        if (has_whitespace(s))
                return fail_value(p, "invalid flake reference '%s': white space", s);
        return set_string(p, (char **)((char *)base + f->offset), s);
}

/* A nested mapping of the schema: its keys come from f->table, its fields live in base. */
static int parse_section(struct parser *p, const struct field *f, void *base)
{
        return parse_mapping(p, f->table, (char *)base + f->offset, NULL);
}

/* ---- lists of strings ---- */

/* Checks (and may rewrite, at most as long as it was) one item of a list of strings. */
typedef int (*item_check_t)(struct parser *p, char *item);

static int parse_string_list(struct parser *p, const struct field *f, void *base, const char *what,
                             item_check_t check)
{
        char ***items = (char ***)((char *)base + f->offset);
        size_t *n_items = (size_t *)((char *)base + f->count_offset);
        size_t allocated = 0;
        int r;

        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return fail_type(p, "a list");
        yaml_mark_t start = p->event.start_mark;

        for (size_t i = 0;; i++) {
                r = next_event(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        break;

                size_t saved = path_push_index(p, i);
                const char *s = NULL;
                char *copy;

                if (i >= f->max)
                        return fail_event(p, -E2BIG, "more than %llu items",
                                          (unsigned long long)f->max);
                r = expect_string(p, what, &s);
                if (r < 0)
                        return r;
                copy = strdup(s);
                if (!copy)
                        return fail_event(p, -ENOMEM, "out of memory");
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
                                return fail_event(p, -ENOMEM, "out of memory");
                        }
                        *items = a;
                        allocated = grow;
                }
                (*items)[(*n_items)++] = copy;
                path_restore(p, saved);
        }
        if ((f->flags & FIELD_NONEMPTY) && *n_items == 0)
                return fail_mark(p, -EBADMSG, start, "the list must not be empty");
        return 0;
}

/* 32 hexadecimal digits, or the UUID form 8-4-4-4-12 (DMI product UUIDs); stored as 32
 * lowercase hexadecimal digits, the form of /etc/machine-id. */
static int check_machine_id(struct parser *p, char *item)
{
        size_t n = strlen(item), j = 0;
        char out[33];

        if (n != 32 && n != 36)
                goto invalid;
        for (size_t i = 0; i < n; i++) {
                char c = item[i];

                if (n == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
                        if (c != '-')
                                goto invalid;
                        continue;
                }
                if (c >= 'A' && c <= 'F')
                        c = (char)(c - 'A' + 'a');
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        goto invalid;
                out[j++] = c;
        }
        out[j] = '\0';
        memcpy(item, out, j + 1);
        return 0;

invalid:
        return fail_value(p, "invalid machine id '%s' (expected 32 hexadecimal digits)", item);
}

static int check_group(struct parser *p, char *item)
{
        if (!lower_name_valid(item, NAME_MAX_LEN, "._-"))
                return fail_value(p, "invalid group name '%s' (expected [a-z0-9][a-z0-9._-]*)",
                                  item);
        return 0;
}

/* Systems (x86_64-linux) and features (big-parallel): the machines file separates them with
 * commas and its fields with spaces, so neither may appear. */
static int check_name(struct parser *p, char *item)
{
        size_t n = strlen(item);

        if (n > NAME_MAX_LEN || !is_alnum(item[0]))
                goto invalid;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(item[i]) && !char_in(item[i], "._+-"))
                        goto invalid;
        return 0;

invalid:
        return fail_value(p, "invalid name '%s' (expected [A-Za-z0-9][A-Za-z0-9._+-]*)", item);
}

static int parse_machines(struct parser *p, const struct field *f, void *base)
{
        return parse_string_list(p, f, base, "a machine id", check_machine_id);
}

static int parse_groups(struct parser *p, const struct field *f, void *base)
{
        return parse_string_list(p, f, base, "a group name", check_group);
}

static int parse_names(struct parser *p, const struct field *f, void *base)
{
        return parse_string_list(p, f, base, "a name", check_name);
}

/* ---- nix.settings ---- */

static bool setting_name_valid(const char *name)
{
        /* "include" is a directive in nix.conf, not a setting. */
        return lower_name_valid(name, NAME_MAX_LEN, "-") && !streq(name, "include");
}

static bool is_count_or(const char *s, const char *word1, const char *word2)
{
        uint64_t v;

        return parse_u64(s, &v) == 0 || (word1 && streq(s, word1)) || (word2 && streq(s, word2));
}

/* A list is joined with single spaces, as nix.conf wants it; an item may not hold a space of
 * its own, or it would become two. */
static int parse_setting_list(struct parser *p, char **ret_value)
{
        struct buf b = BUF_INIT((size_t)PROFILE_MAX_SETTING_ITEMS * (PROFILE_MAX_SCALAR + 1));
        int r;

        for (size_t i = 0;; i++) {
                r = next_event(p);
                if (r < 0)
                        goto out;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        break;

                size_t saved = path_push_index(p, i);
                const char *s = NULL;

                if (i >= PROFILE_MAX_SETTING_ITEMS) {
                        r = fail_event(p, -E2BIG, "more than %d items", PROFILE_MAX_SETTING_ITEMS);
                        goto out;
                }
                r = expect_string(p, "a scalar", &s);
                if (r < 0)
                        goto out;
                if (*s == '\0' || has_whitespace(s)) {
                        r = fail_event(p, -EBADMSG,
                                       "a list item must be non-empty and hold no "
                                       "white space");
                        goto out;
                }
                r = i > 0 ? buf_puts(&b, " ") : 0;
                if (r >= 0)
                        r = buf_puts(&b, s);
                if (r < 0) {
                        r = fail_event(p, r, "setting too long");
                        goto out;
                }
                path_restore(p, saved);
        }
        *ret_value = buf_steal(&b, NULL);
        if (!*ret_value)
                return fail_event(p, -ENOMEM, "out of memory");
        return 0;
out:
        buf_free(&b);
        return r;
}

static int parse_setting_value(struct parser *p, const char *name, char **ret_value)
{
        _cleanup_free_ char *value = NULL;
        int r;

        bool single = streq(name, "max-jobs") || streq(name, "cores");

        if (p->event.type == YAML_SEQUENCE_START_EVENT && !single) {
                r = parse_setting_list(p, &value);
                if (r < 0)
                        return r;
        } else {
                const char *s = NULL;

                r = expect_string(p, single ? "a scalar" : "a scalar or a list of scalars", &s);
                if (r < 0)
                        return r;
                if (streq(name, "max-jobs") && !is_count_or(s, "auto", "fit"))
                        return fail_value(p,
                                          "expected an unsigned integer, 'auto' or 'fit', got "
                                          "'%s'",
                                          s);
                if (streq(name, "cores") && !is_count_or(s, "fit", NULL))
                        return fail_value(p, "expected an unsigned integer or 'fit', got '%s'", s);
                value = strdup(s);
                if (!value)
                        return fail_event(p, -ENOMEM, "out of memory");
        }
        *ret_value = TAKE_PTR(value);
        return 0;
}

static int parse_settings(struct parser *p, const struct field *f, void *base)
{
        struct profile *profile = base;
        int r;

        (void)f;
        if (p->event.type != YAML_MAPPING_START_EVENT)
                return fail_type(p, "a mapping of settings");

        for (;;) {
                r = next_event(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (!event_is_scalar(&p->event))
                        return fail_type(p, "a setting name");

                const char *name = scalar_text(&p->event);
                yaml_mark_t mark = p->event.start_mark;
                size_t saved = path_push_key(p, name, strlen(name));
                _cleanup_free_ char *name_copy = NULL;
                struct profile_setting *s;

                if (!setting_name_valid(name))
                        return fail_value(p, "invalid setting name '%s' (expected [a-z0-9-]+)",
                                          name);
                for (size_t i = 0; i < profile->n_settings; i++)
                        if (streq(profile->settings[i].name, name)) {
                                char buf[QUOTE_MAX + 4];

                                return fail_event(
                                    p, -EBADMSG, "duplicate key '%s' (first at line %u)",
                                    quote(name, buf), profile->settings[i].location.line);
                        }
                if (profile->n_settings >= PROFILE_MAX_SETTINGS)
                        return fail_event(p, -E2BIG, "more than %d settings", PROFILE_MAX_SETTINGS);
                name_copy = strdup(name);
                if (!name_copy)
                        return fail_event(p, -ENOMEM, "out of memory");

                s = reallocarray(profile->settings, profile->n_settings + 1, sizeof(*s));
                if (!s)
                        return fail_event(p, -ENOMEM, "out of memory");
                profile->settings = s;
                s = &profile->settings[profile->n_settings];
                *s = (struct profile_setting){
                    .location = location_of(mark),
                };

                r = next_event(p);
                if (r < 0)
                        return r;
                r = parse_setting_value(p, name_copy, &s->value);
                if (r < 0)
                        return r;
                s->name = TAKE_PTR(name_copy);
                profile->n_settings++;
                path_restore(p, saved);
        }
}

/* ---- secrets ---- */

static int parse_sealed(struct parser *p, const struct field *f, void *base)
{
        struct profile_secret *secret = base;
        _cleanup_free_ uint8_t *sealed = NULL;
        const char *s = NULL;
        size_t size;
        int r;

        (void)f;
        r = expect_string(p, "base64", &s);
        if (r < 0)
                return r;
        sealed = malloc(PROFILE_MAX_SEALED);
        if (!sealed)
                return fail_event(p, -ENOMEM, "out of memory");
        r = base64_decode(s, sealed, PROFILE_MAX_SEALED, &size);
        if (r == -E2BIG)
                return fail_event(p, -E2BIG, "sealed value larger than %d bytes",
                                  PROFILE_MAX_SEALED);
        if (r < 0)
                return fail_event(p, -EBADMSG, "invalid base64");
        if (size < crypto_box_SEALBYTES + 1)
                return fail_event(p, -EBADMSG,
                                  "sealed value too short (%zu bytes, a sealed box has at least "
                                  "%d)",
                                  size, crypto_box_SEALBYTES + 1);
        free(secret->sealed);
        secret->sealed = TAKE_PTR(sealed);
        secret->sealed_size = size;
        secret->kind = PROFILE_SECRET_SEALED;
        return 0;
}

static const struct field sealed_fields[] = {
    {.key = "sealed", .parse = parse_sealed, .offset = 0, .flags = FIELD_REQUIRED},
};
DEFINE_TABLE(sealed_table, sealed_fields);

static int parse_secret(struct parser *p, const struct field *f, void *base)
{
        struct profile_secret *secret = (struct profile_secret *)((char *)base + f->offset);
        bool path_allowed = f->flags & FIELD_PATH_ALLOWED;
        const char *what =
            path_allowed ? "{sealed: BASE64} or an absolute path" : "{sealed: BASE64}";
        int r;

        secret->location = location_of(p->event.start_mark);
        if (p->event.type == YAML_MAPPING_START_EVENT)
                return parse_mapping(p, &sealed_table, secret, NULL);

        if (!path_allowed || !event_is_scalar(&p->event) || scalar_is_null(&p->event))
                return fail_type(p, what);

        const char *s = scalar_text(&p->event);
        if (s[0] != '/' || strlen(s) > SECRET_PATH_MAX || has_whitespace(s))
                return fail_value(p, "expected {sealed: BASE64} or an absolute path, got '%s'", s);
        r = set_string(p, &secret->path, s);
        if (r < 0)
                return r;
        secret->kind = PROFILE_SECRET_PATH;
        return 0;
}

/* ---- builders ---- */

/* ssh://[user@]host[:port][?query] or ssh-ng://...: one field of the machines file, so no
 * white space, and nothing the files it is written to would read as syntax. */
static int parse_builder_uri(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL, *rest;
        int r;

        r = expect_string(p, "a URI", &s);
        if (r < 0)
                return r;
        if (strncmp(s, "ssh://", 6) == 0)
                rest = s + 6;
        else if (strncmp(s, "ssh-ng://", 9) == 0)
                rest = s + 9;
        else
                return fail_value(p, "expected a URI starting with ssh:// or ssh-ng://, got '%s'",
                                  s);
        if (!is_alnum(rest[0]) && rest[0] != '[')
                return fail_value(p, "invalid builder URI '%s': no host", s);
        for (const char *c = rest; *c; c++)
                if (!is_alnum(*c) && !char_in(*c, "@.-_:/?=&%+~[]"))
                        return fail_value(p, "invalid character in builder URI '%s'", s);
        return set_string(p, (char **)((char *)base + f->offset), s);
}

static const char *const host_key_types[] = {
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
};

/* "TYPE BASE64", as in a .pub file without the comment. The blob must be an SSH public key of
 * that type: a length-prefixed type name first (and for Ed25519, the 32-byte key). */
static int parse_host_key(struct parser *p, const struct field *f, void *base)
{
        _cleanup_free_ uint8_t *blob = NULL;
        const char *s = NULL, *space, *type = NULL;
        size_t type_len, size;
        int r;

        r = expect_string(p, "a host key", &s);
        if (r < 0)
                return r;
        space = strchr(s, ' ');
        if (!space)
                return fail_value(p,
                                  "expected 'TYPE BASE64' (like 'ssh-ed25519 AAAA...'), got "
                                  "'%s'",
                                  s);
        type_len = (size_t)(space - s);
        for (size_t i = 0; i < ELEMENTSOF(host_key_types); i++)
                if (strlen(host_key_types[i]) == type_len &&
                    memcmp(s, host_key_types[i], type_len) == 0)
                        type = host_key_types[i];
        if (!type)
                return fail_value(p, "unsupported host key type in '%s'", s);

        blob = malloc(HOST_KEY_BLOB_MAX);
        if (!blob)
                return fail_event(p, -ENOMEM, "out of memory");
        if (strchr(space + 1, ' '))
                return fail_event(p, -EBADMSG, "expected 'TYPE BASE64' without a comment");
        if (base64_decode(space + 1, blob, HOST_KEY_BLOB_MAX, &size) < 0)
                return fail_event(p, -EBADMSG, "invalid host key: the key is not valid base64");
        if (size < 4 + type_len ||
            (((uint32_t)blob[0] << 24) | ((uint32_t)blob[1] << 16) | ((uint32_t)blob[2] << 8) |
             blob[3]) != type_len ||
            memcmp(blob + 4, type, type_len) != 0)
                return fail_event(p, -EBADMSG, "invalid host key: the key is not of type %s", type);
        if (streq(type, "ssh-ed25519") &&
            (size != 4 + type_len + 4 + 32 || memcmp(blob + 4 + type_len, "\0\0\0\x20", 4) != 0))
                return fail_event(p, -EBADMSG, "invalid host key: not an Ed25519 public key");
        return set_string(p, (char **)((char *)base + f->offset), s);
}

static const struct field builder_fields[] = {
    {.key = "uri",
     .parse = parse_builder_uri,
     .offset = offsetof(struct profile_builder, uri),
     .flags = FIELD_REQUIRED},
    {.key = "systems",
     .parse = parse_names,
     .offset = offsetof(struct profile_builder, systems),
     .count_offset = offsetof(struct profile_builder, n_systems),
     .max = PROFILE_MAX_NAMES,
     .flags = FIELD_REQUIRED | FIELD_NONEMPTY},
    {.key = "max-jobs",
     .parse = parse_uint,
     .offset = offsetof(struct profile_builder, max_jobs),
     .min = 0,
     .max = 1024},
    {.key = "speed-factor",
     .parse = parse_uint,
     .offset = offsetof(struct profile_builder, speed_factor),
     .min = 1,
     .max = 1000},
    {.key = "supported-features",
     .parse = parse_names,
     .offset = offsetof(struct profile_builder, supported_features),
     .count_offset = offsetof(struct profile_builder, n_supported_features),
     .max = PROFILE_MAX_NAMES},
    {.key = "mandatory-features",
     .parse = parse_names,
     .offset = offsetof(struct profile_builder, mandatory_features),
     .count_offset = offsetof(struct profile_builder, n_mandatory_features),
     .max = PROFILE_MAX_NAMES},
    {.key = "host-key",
     .parse = parse_host_key,
     .offset = offsetof(struct profile_builder, host_key),
     .flags = FIELD_REQUIRED},
    {.key = "identity",
     .parse = parse_secret,
     .offset = offsetof(struct profile_builder, identity),
     .flags = FIELD_PATH_ALLOWED},
    {.key = "required", .parse = parse_bool, .offset = offsetof(struct profile_builder, required)},
};
DEFINE_TABLE(builder_table, builder_fields);
#define BUILDER_FIELD_URI 0

static int parse_builders(struct parser *p, const struct field *f, void *base)
{
        struct profile *profile = base;
        int r;

        (void)f;
        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return fail_type(p, "a list of builders");

        for (size_t i = 0;; i++) {
                yaml_mark_t marks[ELEMENTSOF(builder_fields)];
                struct profile_builder *b;

                r = next_event(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        return 0;

                size_t saved = path_push_index(p, i);
                yaml_mark_t mark = p->event.start_mark;

                if (i >= PROFILE_MAX_BUILDERS)
                        return fail_event(p, -E2BIG, "more than %d builders", PROFILE_MAX_BUILDERS);
                b = reallocarray(profile->builders, profile->n_builders + 1, sizeof(*b));
                if (!b)
                        return fail_event(p, -ENOMEM, "out of memory");
                profile->builders = b;
                b = &profile->builders[profile->n_builders++];
                *b = (struct profile_builder){
                    .max_jobs = 1,
                    .speed_factor = 1,
                    .required = true,
                    .location = location_of(mark),
                };

                r = parse_mapping(p, &builder_table, b, marks);
                if (r < 0)
                        return r;
                for (size_t j = 0; j + 1 < profile->n_builders; j++)
                        if (streq(profile->builders[j].uri, b->uri)) {
                                char buf[QUOTE_MAX + 4];

                                path_push_key(p, "uri", 3);
                                return fail_mark(p, -EBADMSG, marks[BUILDER_FIELD_URI],
                                                 "duplicate builder '%s' (first at line %u)",
                                                 quote(b->uri, buf),
                                                 profile->builders[j].location.line);
                        }
                path_restore(p, saved);
        }
}

/* ---- cachix ---- */

static int parse_cache_name(struct parser *p, const struct field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = expect_string(p, "a cache name", &s);
        if (r < 0)
                return r;
        if (!lower_name_valid(s, CACHE_NAME_MAX_LEN, "-"))
                return fail_value(p, "invalid cache name '%s' (expected [a-z0-9][a-z0-9-]*)", s);
        return set_string(p, (char **)((char *)base + f->offset), s);
}

#define CACHIX_KEY_SUFFIX ".cachix.org-1:"

/* NAME.cachix.org-1:BASE64 of a 32-byte Ed25519 key, as cachix prints it. */
static int parse_cache_key(struct parser *p, const struct field *f, void *base)
{
        uint8_t key[64];
        char name[CACHE_NAME_MAX_LEN + 1];
        const char *s = NULL, *suffix;
        size_t size, name_len;
        int r;

        r = expect_string(p, "a public key", &s);
        if (r < 0)
                return r;
        suffix = strstr(s, CACHIX_KEY_SUFFIX);
        if (!suffix)
                return fail_value(p, "expected a key like NAME.cachix.org-1:BASE64, got '%s'", s);
        name_len = (size_t)(suffix - s);
        if (name_len == 0 || name_len > CACHE_NAME_MAX_LEN)
                return fail_value(p, "invalid cache name in public key '%s'", s);
        memcpy(name, s, name_len);
        name[name_len] = '\0';
        if (!lower_name_valid(name, CACHE_NAME_MAX_LEN, "-"))
                return fail_value(p, "invalid cache name in public key '%s'", s);
        if (base64_decode(suffix + strlen(CACHIX_KEY_SUFFIX), key, sizeof(key), &size) < 0 ||
            size != 32)
                return fail_event(p, -EBADMSG,
                                  "invalid public key: expected the base64 of 32 bytes after "
                                  "'%s'",
                                  CACHIX_KEY_SUFFIX);
        return set_string(p, (char **)((char *)base + f->offset), s);
}

static const struct field cache_fields[] = {
    {.key = "name",
     .parse = parse_cache_name,
     .offset = offsetof(struct profile_cache, name),
     .flags = FIELD_REQUIRED},
    {.key = "public-key",
     .parse = parse_cache_key,
     .offset = offsetof(struct profile_cache, public_key),
     .flags = FIELD_REQUIRED},
    {.key = "auth-token",
     .parse = parse_secret,
     .offset = offsetof(struct profile_cache, auth_token)},
};
DEFINE_TABLE(cache_table, cache_fields);
#define CACHE_FIELD_NAME 0
#define CACHE_FIELD_PUBLIC_KEY 1

static int parse_caches(struct parser *p, const struct field *f, void *base)
{
        struct profile *profile = base;
        int r;

        (void)f;
        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return fail_type(p, "a list of caches");

        for (size_t i = 0;; i++) {
                yaml_mark_t marks[ELEMENTSOF(cache_fields)];
                struct profile_cache *c;
                char buf[QUOTE_MAX + 4];

                r = next_event(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        return 0;

                size_t saved = path_push_index(p, i);
                yaml_mark_t mark = p->event.start_mark;

                if (i >= PROFILE_MAX_CACHES)
                        return fail_event(p, -E2BIG, "more than %d caches", PROFILE_MAX_CACHES);
                c = reallocarray(profile->caches, profile->n_caches + 1, sizeof(*c));
                if (!c)
                        return fail_event(p, -ENOMEM, "out of memory");
                profile->caches = c;
                c = &profile->caches[profile->n_caches++];
                *c = (struct profile_cache){
                    .location = location_of(mark),
                };

                r = parse_mapping(p, &cache_table, c, marks);
                if (r < 0)
                        return r;
                /* The key must be the cache's own: NAME.cachix.org-1:... */
                if (strncmp(c->public_key, c->name, strlen(c->name)) != 0 ||
                    strncmp(c->public_key + strlen(c->name), CACHIX_KEY_SUFFIX,
                            strlen(CACHIX_KEY_SUFFIX)) != 0) {
                        path_push_key(p, "public-key", 10);
                        return fail_mark(p, -EBADMSG, marks[CACHE_FIELD_PUBLIC_KEY],
                                         "the public key is not for cache '%s'",
                                         quote(c->name, buf));
                }
                for (size_t j = 0; j + 1 < profile->n_caches; j++)
                        if (streq(profile->caches[j].name, c->name)) {
                                path_push_key(p, "name", 4);
                                return fail_mark(p, -EBADMSG, marks[CACHE_FIELD_NAME],
                                                 "duplicate cache '%s' (first at line %u)",
                                                 quote(c->name, buf),
                                                 profile->caches[j].location.line);
                        }
                path_restore(p, saved);
        }
}

/* ---- the document ---- */

static const struct field nix_fields[] = {
    {.key = "settings", .parse = parse_settings, .offset = 0},
};
DEFINE_TABLE(nix_table, nix_fields);

static const struct field rebuild_fields[] = {
    {.key = "flake", .parse = parse_flake, .offset = offsetof(struct profile, rebuild.flake)},
    {.key = "action", .parse = parse_action, .offset = offsetof(struct profile, rebuild.action)},
    {.key = "timeout",
     .parse = parse_uint,
     .offset = offsetof(struct profile, rebuild.timeout),
     .min = 1,
     .max = 604800},
};
DEFINE_TABLE(rebuild_table, rebuild_fields);

static const struct field report_fields[] = {
    {.key = "interval",
     .parse = parse_uint,
     .offset = offsetof(struct profile, report.interval),
     .min = 1,
     .max = 86400},
};
DEFINE_TABLE(report_table, report_fields);

static const struct field profile_fields[] = {
    {.key = "nixprov",
     .parse = parse_schema,
     .offset = offsetof(struct profile, schema),
     .max = UINT64_MAX,
     .flags = FIELD_REQUIRED},
    {.key = "serial",
     .parse = parse_uint,
     .offset = offsetof(struct profile, serial),
     .max = UINT64_MAX,
     .flags = FIELD_REQUIRED},
    {.key = "expires",
     .parse = parse_time,
     .offset = offsetof(struct profile, expires),
     .flags = FIELD_REQUIRED},
    {.key = "machines",
     .parse = parse_machines,
     .offset = offsetof(struct profile, machines),
     .count_offset = offsetof(struct profile, n_machines),
     .max = PROFILE_MAX_MACHINES,
     .flags = FIELD_NONEMPTY},
    {.key = "groups",
     .parse = parse_groups,
     .offset = offsetof(struct profile, groups),
     .count_offset = offsetof(struct profile, n_groups),
     .max = PROFILE_MAX_GROUPS,
     .flags = FIELD_NONEMPTY},
    {.key = "strategy",
     .parse = parse_strategy,
     .offset = offsetof(struct profile, strategy),
     .flags = FIELD_REQUIRED},
    {.key = "nix", .parse = parse_section, .offset = 0, .table = &nix_table},
    {.key = "builders", .parse = parse_builders, .offset = 0},
    {.key = "cachix", .parse = parse_caches, .offset = 0},
    {.key = "rebuild", .parse = parse_section, .offset = 0, .table = &rebuild_table},
    {.key = "report", .parse = parse_section, .offset = 0, .table = &report_table},
};
DEFINE_TABLE(profile_table, profile_fields);

/* Parses the mapping that starts at the current event into base, with the keys of t. Leaves
 * the mapping's end as the current event. ret_marks (when not NULL) receives where each
 * field's value started, for checks that span fields. */
static int parse_mapping(struct parser *p, const struct table *t, void *base,
                         yaml_mark_t *ret_marks)
{
        unsigned seen_line[FIELDS_MAX] = {};
        yaml_mark_t start = p->event.start_mark;
        int r;

        if (p->event.type != YAML_MAPPING_START_EVENT)
                return fail_type(p, "a mapping");

        for (;;) {
                const struct field *f = NULL;
                size_t index = 0, saved;

                r = next_event(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_MAPPING_END_EVENT)
                        break;
                if (!event_is_scalar(&p->event))
                        return fail_type(p, "a key");

                const char *key = scalar_text(&p->event);
                saved = path_push_key(p, key, strlen(key));
                for (index = 0; index < t->n_fields; index++)
                        if (streq(t->fields[index].key, key)) {
                                f = &t->fields[index];
                                break;
                        }
                if (!f)
                        return fail_value(p, "unknown key '%s'", key);
                if (seen_line[index] > 0) {
                        char buf[QUOTE_MAX + 4];

                        return fail_event(p, -EBADMSG, "duplicate key '%s' (first at line %u)",
                                          quote(key, buf), seen_line[index]);
                }
                seen_line[index] = (unsigned)p->event.start_mark.line + 1;

                r = next_event(p);
                if (r < 0)
                        return r;
                if (ret_marks)
                        ret_marks[index] = p->event.start_mark;
                r = f->parse(p, f, base);
                if (r < 0)
                        return r;
                path_restore(p, saved);
        }

        for (size_t i = 0; i < t->n_fields; i++)
                if ((t->fields[i].flags & FIELD_REQUIRED) && seen_line[i] == 0) {
                        const char *key = t->fields[i].key;

                        path_push_key(p, key, strlen(key));
                        return fail_mark(p, -EBADMSG, start, "missing required key '%s'", key);
                }
        return 0;
}

static int parse_document(struct parser *p, struct profile *profile)
{
        yaml_mark_t start;
        int r;

        r = parser_start(p);
        if (r < 0)
                return r;
        /* Pass 1 accepted this stream: it starts with exactly one document. */
        do {
                r = next_event(p);
                if (r < 0)
                        return r;
        } while (p->event.type == YAML_STREAM_START_EVENT ||
                 p->event.type == YAML_DOCUMENT_START_EVENT);

        if (event_is_scalar(&p->event) && scalar_is_null(&p->event))
                return fail_event(p, -EBADMSG, "empty document");
        if (p->event.type != YAML_MAPPING_START_EVENT)
                return fail_event(p, -EBADMSG,
                                  "expected a mapping at the top of the document, "
                                  "got %s",
                                  event_kind(&p->event));
        start = p->event.start_mark;

        r = parse_mapping(p, &profile_table, profile, NULL);
        if (r < 0)
                return r;
        if (!profile->machines && !profile->groups)
                return fail_mark(p, -EBADMSG, start, "missing required key 'machines' or 'groups'");
        return 0;
}

/* ---- the API ------------------------------------------------------------------------------- */

int profile_parse(const char *data, size_t size, const char *filename, struct profile **ret,
                  struct profile_error *ret_error)
{
        _cleanup_(profile_freep) struct profile *profile = NULL;
        struct profile_error error = {};
        struct parser p = {
            .data = data,
            .size = size,
            .filename = filename,
            .error = &error,
        };
        int r;

        if (!data && size > 0)
                return -EINVAL;
        if (size > PROFILE_MAX_BYTES) {
                r = fail_at(&p, -E2BIG, 0, 0, "larger than 1 MiB (%d bytes)", PROFILE_MAX_BYTES);
                goto fail;
        }
        if (!data)
                p.data = "";
        /* A UTF-8 byte order mark, as some editors write it: libyaml would count it as a column
         * and misread the indentation of the first line. */
        if (p.size >= 3 && memcmp(p.data, "\xef\xbb\xbf", 3) == 0) {
                p.data += 3;
                p.size -= 3;
        }

        r = check_bytes(&p);
        if (r < 0)
                goto fail;
        r = check_structure(&p);
        if (r < 0)
                goto fail;
        if (p.schema_seen && p.schema != PROFILE_SCHEMA) {
                path_restore(&p, 0);
                path_push_key(&p, "nixprov", 7);
                r = fail_mark(&p, -EPROTONOSUPPORT, p.schema_mark,
                              "unsupported schema %llu (this nixprov reads schema %d)",
                              (unsigned long long)p.schema, PROFILE_SCHEMA);
                goto fail;
        }

        profile = calloc(1, sizeof(*profile));
        if (!profile) {
                r = fail_at(&p, -ENOMEM, 0, 0, "out of memory");
                goto fail;
        }
        profile->rebuild.action = PROFILE_REBUILD_SWITCH;
        profile->rebuild.timeout = 7200;
        profile->report.interval = 30;

        r = parse_document(&p, profile);
        if (r < 0)
                goto fail;
        parser_done(&p);

        *ret = TAKE_PTR(profile);
        return 0;

fail:
        parser_done(&p);
        if (ret_error)
                *ret_error = error;
        return r;
}

char *profile_error_format(const struct profile_error *error, char *buf, size_t size)
{
        size_t n = 0;

        if (!buf || size == 0)
                return buf;
        buf[0] = '\0';

#define APPEND(...)                                                                                \
        do {                                                                                       \
                if (n < size) {                                                                    \
                        int _k = snprintf(buf + n, size - n, __VA_ARGS__);                         \
                        n = _k < 0 ? size : n + (size_t)_k;                                        \
                }                                                                                  \
        } while (0)

        if (error->file[0])
                APPEND("%.*s", (int)sizeof(error->file), error->file);
        if (error->line > 0)
                APPEND("%s%u:%u", error->file[0] ? ":" : "", error->line, error->column);
        if (error->file[0] || error->line > 0)
                APPEND(": ");
        if (error->key[0])
                APPEND("%.*s: ", (int)sizeof(error->key), error->key);
        APPEND("%.*s", (int)sizeof(error->message), error->message);
#undef APPEND
        return buf;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void secret_done(struct profile_secret *s)
{
        if (s->sealed)
                sodium_memzero(s->sealed, s->sealed_size);
        free(s->sealed);
        free(s->path);
}

struct profile *profile_free(struct profile *p)
{
        if (!p)
                return NULL;
        strv_free(p->machines, p->n_machines);
        strv_free(p->groups, p->n_groups);
        for (size_t i = 0; i < p->n_settings; i++) {
                free(p->settings[i].name);
                free(p->settings[i].value);
        }
        free(p->settings);
        for (size_t i = 0; i < p->n_builders; i++) {
                struct profile_builder *b = &p->builders[i];

                free(b->uri);
                strv_free(b->systems, b->n_systems);
                strv_free(b->supported_features, b->n_supported_features);
                strv_free(b->mandatory_features, b->n_mandatory_features);
                free(b->host_key);
                secret_done(&b->identity);
        }
        free(p->builders);
        for (size_t i = 0; i < p->n_caches; i++) {
                free(p->caches[i].name);
                free(p->caches[i].public_key);
                secret_done(&p->caches[i].auth_token);
        }
        free(p->caches);
        free(p->rebuild.flake);
        free(p);
        return NULL;
}

static const char *const strategy_names[_PROFILE_STRATEGY_MAX] = {
    [PROFILE_STRATEGY_BINARY_CACHES] = "binary-caches",
    [PROFILE_STRATEGY_SOURCE] = "source",
    [PROFILE_STRATEGY_REMOTE_BUILDERS] = "remote-builders",
};

static const char *const action_names[_PROFILE_REBUILD_ACTION_MAX] = {
    [PROFILE_REBUILD_SWITCH] = "switch",
    [PROFILE_REBUILD_BOOT] = "boot",
    [PROFILE_REBUILD_TEST] = "test",
};

const char *profile_strategy_to_string(enum profile_strategy s)
{
        if ((unsigned)s >= _PROFILE_STRATEGY_MAX)
                return NULL;
        return strategy_names[s];
}

const char *profile_rebuild_action_to_string(enum profile_rebuild_action a)
{
        if ((unsigned)a >= _PROFILE_REBUILD_ACTION_MAX)
                return NULL;
        return action_names[a];
}

const struct profile_setting *profile_find_setting(const struct profile *p, const char *name)
{
        if (!p || !name)
                return NULL;
        for (size_t i = 0; i < p->n_settings; i++)
                if (streq(p->settings[i].name, name))
                        return &p->settings[i];
        return NULL;
}
