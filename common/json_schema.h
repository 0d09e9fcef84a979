/* SPDX-License-Identifier: MIT */
#pragma once

/* Table-driven validation of a JSON object (jansson) into a typed struct: the counterpart of
 * yaml_schema.h for JSON bodies. Each row names a key, its type, whether it is required, its
 * bounds, and where it goes (offsetof()). One refusal per call, naming the key:
 *
 *   missing field 'seq'
 *   field 'hostname' is too long (max 253 bytes)
 *   field 'seq' must be an integer >= 0
 *   unknown field 'colour'
 *
 * Strings and arrays are borrowed from the object (valid while it is). Nothing here prints. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define JSON_SCHEMA_PROBLEM_MAX 256
#define JSON_SCHEMA_DEPTH_MAX 16 /* arrays and objects inside the object, whatever their keys */

enum json_schema_type {
        JSON_SCHEMA_STRING,       /* const char *, at most max_bytes, NUL-free, valid() if set */
        JSON_SCHEMA_INTEGER,      /* int64_t in [min, max] */
        JSON_SCHEMA_BOOLEAN,      /* bool */
        JSON_SCHEMA_STRING_ARRAY, /* json_t * (borrowed), at most max elements, each a string as
                                   * JSON_SCHEMA_STRING checks it */
        JSON_SCHEMA_CUSTOM,       /* parse() decides */
};

struct json_schema_field {
        const char *key;
        enum json_schema_type type;
        bool required;
        int64_t min, max; /* INTEGER: bounds; STRING_ARRAY: max is the element limit */
        size_t max_bytes; /* STRING and array elements: the longest accepted */
        size_t offset;    /* of the destination in the struct */
        bool has_present; /* present_offset names a bool set when the key is there */
        size_t present_offset;
        bool (*valid)(const char *s); /* STRING and array elements */
        const char *expected;         /* said when valid() refuses: "32 lowercase hex digits" */
        /* CUSTOM: checks value and stores it at field; returns NULL or the refusal (a static
         * string, said after "field 'KEY' "). */
        const char *(*parse)(json_t *value, void *field);
};

#define JSON_SCHEMA_ALLOW_UNKNOWN (1u << 0) /* keys not in the table are ignored, not refused */

/* Validates object against the n_fields rows of fields, filling ret (a struct the offsets are
 * of) only on success. Returns 0, or -EBADMSG with problem[] the refusal, or -EINVAL for bad
 * arguments. */
int json_schema_parse(json_t *object, const struct json_schema_field *fields, size_t n_fields,
                      unsigned flags, void *ret, size_t ret_size,
                      char problem[static JSON_SCHEMA_PROBLEM_MAX]);

/* The depth of value: 0 for a scalar, 1 for an empty or flat array or object. Stops counting
 * past limit. */
unsigned json_schema_depth(json_t *value, unsigned limit);
