/* SPDX-License-Identifier: MIT */
#pragma once

/* Strict schema parsing over libyaml's event API: the machinery shared by the profile
 * (profile.c) and the agent's configuration (agent_config.c). Internal to common/.
 *
 * A document is read twice. yaml_schema_check() walks every event and enforces the rules that
 * hold whatever the keys: UTF-8 text (a leading byte order mark is skipped) without NUL bytes or
 * raw control characters other than tab, CR and LF; valid YAML; exactly one non-empty document;
 * no aliases, anchors or tags; nesting of at most max_depth; scalars of at most max_scalar bytes
 * and without a control character (C0, DEL, C1) or U+2028/U+2029, raw or escaped. Then
 * yaml_schema_parse_document() descends the same events with one table of keys per mapping:
 * unknown, duplicate and missing required keys are refused, and each key's parser checks its
 * value. Parsing stops at the first error, recorded in a struct profile_error (file, line,
 * column, key path, message) - the type is the profile's, and generic.
 *
 * A schema module fills a struct yaml_schema_parser, calls yaml_schema_check() then
 * yaml_schema_parse_document() with its top-level table, and yaml_schema_done() in every case.
 * Every function returning int returns 0 or a negative errno, having filled the error record
 * (when the parser has one): -EBADMSG (malformed or a schema violation), -E2BIG (a limit),
 * -ENOMEM. Field parsers are called with the key's value as the current event and must leave
 * the value's last event (a scalar, or the end of a collection) current. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "macro.h"
#include "profile.h" /* struct profile_error, struct profile_location */

#define YAML_SCHEMA_DEPTH_MAX 32  /* the largest max_depth a parser may ask for */
#define YAML_SCHEMA_FIELDS_MAX 16 /* keys of one table */
#define YAML_SCHEMA_QUOTE_MAX 48  /* bytes of a value quoted in a message */

struct yaml_schema_parser {
        /* Set by the caller. */
        const char *data; /* need not be NUL-terminated; NULL only with size 0 */
        size_t size;
        const char *filename;        /* named in errors; may be NULL */
        struct profile_error *error; /* filled on failure; may be NULL */
        size_t max_bytes;            /* of the whole document (-E2BIG) */
        unsigned max_depth;          /* nested mappings and lists, at most YAML_SCHEMA_DEPTH_MAX */
        size_t max_scalar;           /* bytes of one scalar (-E2BIG) */
        /* When not NULL, yaml_schema_check() notes the first plain unsigned integer value of
         * this top-level key (version_seen, version, version_mark), so that a document of
         * another schema version can be refused as such before any schema error. */
        const char *version_key;

        /* Set by yaml_schema_check(). */
        bool version_seen;
        uint64_t version;
        yaml_mark_t version_mark;

        /* The parser's own. */
        yaml_parser_t yaml;
        bool yaml_initialized;
        yaml_event_t event; /* the current event, valid when have_event */
        bool have_event;
        /* The key path of the node being looked at, as shown in errors. */
        char path[PROFILE_ERROR_KEY_MAX];
        size_t path_len;
};

struct yaml_schema_field;
typedef int (*yaml_schema_field_parser_t)(struct yaml_schema_parser *p,
                                          const struct yaml_schema_field *f, void *base);

enum {
        YAML_SCHEMA_FIELD_REQUIRED = 1 << 0,
        YAML_SCHEMA_FIELD_NONEMPTY = 1 << 1, /* lists: at least one item */
        YAML_SCHEMA_FIELD_USER = 1 << 8,     /* the first flag a schema module may define */
};

struct yaml_schema_table {
        const struct yaml_schema_field *fields;
        size_t n_fields;
};

/* One key of a schema mapping. The value's parser finds its target at base + offset. */
struct yaml_schema_field {
        const char *key;
        yaml_schema_field_parser_t parse;
        size_t offset;
        size_t count_offset; /* lists: the size_t that counts the items */
        uint64_t min, max;   /* numbers: the range; lists: the most items */
        unsigned flags;
        const struct yaml_schema_table *table; /* sections: the keys of the nested mapping */
};

/* yaml_schema_parse_mapping() keeps one slot per key of a table. */
#define YAML_SCHEMA_DEFINE_TABLE(name, f)                                                          \
        _Static_assert(ELEMENTSOF(f) <= YAML_SCHEMA_FIELDS_MAX, "too many keys in " #f);           \
        static const struct yaml_schema_table name = {(f), ELEMENTSOF(f)}

/* The target of field f in base. */
#define YAML_SCHEMA_TARGET(type, base, f) ((type *)((char *)(base) + (f)->offset))

/* ---- the document ---- */

/* Size limit, byte order mark, raw bytes, then pass 1 over the whole stream (see above). */
int yaml_schema_check(struct yaml_schema_parser *p);

/* Pass 2: the single document must be a mapping, parsed into base with the keys of t. The
 * mapping's start is returned in *ret_start (when not NULL), for checks over the whole
 * document. */
int yaml_schema_parse_document(struct yaml_schema_parser *p, const struct yaml_schema_table *t,
                               void *base, yaml_mark_t *ret_start);

/* Frees libyaml's state. Safe to call more than once. */
void yaml_schema_done(struct yaml_schema_parser *p);

/* ---- errors ---- */

/* Fills the error record with the current key path and returns r. */
int yaml_schema_fail_at(struct yaml_schema_parser *p, int r, unsigned line, unsigned column,
                        const char *format, ...) _printf_(5, 6);

/* libyaml's marks count from 0; people count from 1. */
#define yaml_schema_fail_mark(p, r, mark, ...)                                                     \
        yaml_schema_fail_at((p), (r), (unsigned)(mark).line + 1, (unsigned)(mark).column + 1,      \
                            __VA_ARGS__)
#define yaml_schema_fail_event(p, r, ...)                                                          \
        yaml_schema_fail_mark((p), (r), (p)->event.start_mark, __VA_ARGS__)

/* -EBADMSG at the current event: format has one %s, filled with value cut by
 * yaml_schema_quote(). */
int yaml_schema_fail_value(struct yaml_schema_parser *p, const char *format, const char *value)
    _printf_(2, 0);

/* -EBADMSG at the current event: "expected WHAT, got ..." naming what the event is. */
int yaml_schema_fail_type(struct yaml_schema_parser *p, const char *expected);

/* s itself, or its first YAML_SCHEMA_QUOTE_MAX bytes (cut on a character boundary) and "..."
 * in buf. */
const char *yaml_schema_quote(const char *s, char buf[static YAML_SCHEMA_QUOTE_MAX + 4]);

/* ---- key paths ---- */

/* Append ".key" or "[index]" to the path; return the length to restore afterwards. */
size_t yaml_schema_path_push_key(struct yaml_schema_parser *p, const char *key, size_t n);
size_t yaml_schema_path_push_index(struct yaml_schema_parser *p, size_t index);
void yaml_schema_path_restore(struct yaml_schema_parser *p, size_t len);

/* ---- events ---- */

/* Makes the next event current. */
int yaml_schema_next(struct yaml_schema_parser *p);

/* "a mapping", "a list", "a scalar" or "nothing". */
const char *yaml_schema_event_kind(const yaml_event_t *e);

static inline bool yaml_schema_is_scalar(const yaml_event_t *e)
{
        return e->type == YAML_SCALAR_EVENT;
}

static inline const char *yaml_schema_scalar_text(const yaml_event_t *e)
{
        return (const char *)e->data.scalar.value;
}

static inline bool yaml_schema_scalar_is_plain(const yaml_event_t *e)
{
        return e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty value, "~" or "null": YAML's null, which no key of a schema takes. */
bool yaml_schema_scalar_is_null(const yaml_event_t *e);

static inline struct profile_location yaml_schema_location(yaml_mark_t mark)
{
        return (struct profile_location){(unsigned)mark.line + 1, (unsigned)mark.column + 1};
}

/* ---- values ---- */

/* The text of the current scalar when it is not null (any style: every scalar is a string);
 * what names the expected value in the error otherwise. */
int yaml_schema_expect_string(struct yaml_schema_parser *p, const char *what, const char **ret);

/* Replaces *target (freed) with a copy of s. */
int yaml_schema_set_string(struct yaml_schema_parser *p, char **target, const char *s);

/* ---- field parsers, for tables ---- */

/* A plain decimal unsigned integer in f->min..f->max, into a uint64_t. */
int yaml_schema_parse_uint(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                           void *base);
/* Plain true or false, into a bool. */
int yaml_schema_parse_bool(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                           void *base);
/* A nested mapping: its keys come from f->table, its fields live in base + f->offset. */
int yaml_schema_parse_section(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                              void *base);

/* Parses the mapping that starts at the current event into base, with the keys of t. Leaves
 * the mapping's end as the current event. ret_marks (when not NULL, one slot per key of t)
 * receives where each field's value started, for checks that span fields. */
int yaml_schema_parse_mapping(struct yaml_schema_parser *p, const struct yaml_schema_table *t,
                              void *base, yaml_mark_t *ret_marks);

/* A list of mappings, each parsed with table into a new element of a growing array. */
struct yaml_schema_list {
        const char
            *what;  /* plural noun for errors: "a list of builders", "more than 64 builders" */
        size_t max; /* elements at most (-E2BIG past it) */
        size_t element_size;
        const struct yaml_schema_table *table;
        /* Sets an element's defaults (it is zeroed first) before its keys are parsed; may be NULL.
         */
        void (*init)(void *element, yaml_mark_t mark);
        /* Checks element index (items holds it and the ones before) after its keys are parsed,
         * with where each key's value started (table order); returns 0 or fails through p. May be
         * NULL. */
        int (*check)(struct yaml_schema_parser *p, void *items, size_t index,
                     const yaml_mark_t *marks);
};

/* Parses the list that starts at the current event into *items / *n_items (the array is grown
 * with reallocarray; the caller frees it and what its elements own, also on failure). */
int yaml_schema_parse_list(struct yaml_schema_parser *p, const struct yaml_schema_list *l,
                           void **items, size_t *n_items);

/* Checks (and may rewrite, at most as long as it was) one item of a list of strings; the item
 * is the current event. */
typedef int (*yaml_schema_item_check_t)(struct yaml_schema_parser *p, char *item);

/* A list of at most f->max strings (at least one with YAML_SCHEMA_FIELD_NONEMPTY), appended to
 * the char ** at f->offset counted by the size_t at f->count_offset. what names an item in
 * type errors. */
int yaml_schema_parse_string_list(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                                  void *base, const char *what, yaml_schema_item_check_t check);

/* ---- text ---- */

static inline bool yaml_schema_char_in(char c, const char *set)
{
        for (; c != '\0' && *set; set++)
                if (*set == c)
                        return true;
        return false;
}

static inline bool yaml_schema_is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static inline bool yaml_schema_is_alnum(char c)
{
        return yaml_schema_is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9][a-z0-9EXTRA]*, at most max bytes. */
bool yaml_schema_lower_name_valid(const char *s, size_t max, const char *extra);

/* Space, tab, CR, LF, FF or VT. */
bool yaml_schema_has_whitespace(const char *s);

/* Strict standard base64 (padding required, no white space) of a string into out (at most max
 * bytes): base64_decode_strict() of util.h. */
int yaml_schema_base64_decode(const char *s, uint8_t *out, size_t max, size_t *ret_size);
