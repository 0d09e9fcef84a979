/* SPDX-License-Identifier: MIT */
/* The profile parser: the profile's tables of keys and the checks of its values. The generic
 * machinery (two passes over libyaml's events, errors with file:line:column and key path, the
 * field parsers for numbers, booleans, sections and lists of strings) is yaml_schema.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <yaml.h>

#include "machine_id.h"
#include "profile.h"
#include "util.h"
#include "yaml_schema.h"

#define NAME_MAX_LEN 64        /* setting names, systems, features, groups */
#define CACHE_NAME_MAX_LEN 63  /* a DNS label: NAME.cachix.org */
#define HOST_KEY_BLOB_MAX 4096 /* decoded SSH public key blob (RSA 16384 fits) */
#define SECRET_PATH_MAX 4096

enum {
        FIELD_PATH_ALLOWED = YAML_SCHEMA_FIELD_USER, /* secrets: an absolute path instead of
                                                      * {sealed: ...} */
};

/* ---- values ------------------------------------------------------------------------------- */

static int parse_schema(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        uint64_t *schema = (uint64_t *)((char *)base + f->offset);
        int r;

        r = yaml_schema_parse_uint(p, f, base);
        if (r < 0)
                return r;
        if (*schema != PROFILE_SCHEMA)
                return yaml_schema_fail_event(
                    p, -EPROTONOSUPPORT, "unsupported schema %llu (this nixprov reads schema %d)",
                    (unsigned long long)*schema, PROFILE_SCHEMA);
        return 0;
}

static int parse_time(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        const char *s = NULL;
        int64_t t;
        int r;

        r = yaml_schema_expect_string(p, "a time like 2027-01-31T00:00:00Z", &s);
        if (r < 0)
                return r;
        if (parse_rfc3339_utc(s, &t) < 0)
                return yaml_schema_fail_value(
                    p, "expected a UTC time like 2027-01-31T00:00:00Z, got '%s'", s);
        *(int64_t *)((char *)base + f->offset) = t;
        return 0;
}

static int parse_strategy(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        const char *s = NULL;
        int r;

        r = yaml_schema_expect_string(p, "a strategy", &s);
        if (r < 0)
                return r;
        for (int i = 0; i < _PROFILE_STRATEGY_MAX; i++)
                if (streq(s, profile_strategy_to_string(i))) {
                        *(enum profile_strategy *)((char *)base + f->offset) = i;
                        return 0;
                }
        return yaml_schema_fail_value(p,
                                      "unknown strategy '%s' (expected binary-caches, source or "
                                      "remote-builders)",
                                      s);
}

static int parse_action(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = yaml_schema_expect_string(p, "an action", &s);
        if (r < 0)
                return r;
        for (int i = 0; i < _PROFILE_REBUILD_ACTION_MAX; i++)
                if (streq(s, profile_rebuild_action_to_string(i))) {
                        *(enum profile_rebuild_action *)((char *)base + f->offset) = i;
                        return 0;
                }
        return yaml_schema_fail_value(p, "unknown action '%s' (expected switch, boot or test)", s);
}

static int parse_flake(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        const char *s = NULL;
        int r;

        r = yaml_schema_expect_string(p, "a flake reference", &s);
        if (r < 0)
                return r;
        if (yaml_schema_has_whitespace(s))
                return yaml_schema_fail_value(p, "invalid flake reference '%s': white space", s);
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

/* ---- lists of strings ---- */

/* A machine id as machine_id_normalize() takes it (the newline it allows at the end of a file
 * never gets here: scalars with control characters are refused before), stored as 32
 * lowercase hexadecimal digits, the form of /etc/machine-id. */
static int check_machine_id(struct yaml_schema_parser *p, char *item)
{
        char id[MACHINE_ID_STRING_MAX];

        if (machine_id_normalize(item, id) < 0)
                return yaml_schema_fail_value(
                    p, "invalid machine id '%s' (expected 32 hexadecimal digits)", item);
        memcpy(item, id, sizeof(id));
        return 0;
}

static int check_group(struct yaml_schema_parser *p, char *item)
{
        if (!profile_group_name_valid(item))
                return yaml_schema_fail_value(
                    p, "invalid group name '%s' (expected [a-z0-9][a-z0-9._-]*)", item);
        return 0;
}

/* Systems (x86_64-linux) and features (big-parallel): the machines file separates them with
 * commas and its fields with spaces, so neither may appear. */
static int check_name(struct yaml_schema_parser *p, char *item)
{
        size_t n = strlen(item);

        if (n > NAME_MAX_LEN || !yaml_schema_is_alnum(item[0]))
                goto invalid;
        for (size_t i = 1; i < n; i++)
                if (!yaml_schema_is_alnum(item[i]) && !yaml_schema_char_in(item[i], "._+-"))
                        goto invalid;
        return 0;

invalid:
        return yaml_schema_fail_value(p, "invalid name '%s' (expected [A-Za-z0-9][A-Za-z0-9._+-]*)",
                                      item);
}

static int parse_machines(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a machine id", check_machine_id);
}

static int parse_groups(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a group name", check_group);
}

static int parse_names(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a name", check_name);
}

/* ---- nix.settings ---- */

static bool setting_name_valid(const char *name)
{
        /* "include" is a directive in nix.conf, not a setting. */
        return yaml_schema_lower_name_valid(name, NAME_MAX_LEN, "-") && !streq(name, "include");
}

static bool is_count_or(const char *s, const char *word1, const char *word2)
{
        uint64_t v;

        return parse_u64(s, &v) == 0 || (word1 && streq(s, word1)) || (word2 && streq(s, word2));
}

/* A list is joined with single spaces, as nix.conf wants it; an item may not hold a space of
 * its own, or it would become two. */
static int parse_setting_list(struct yaml_schema_parser *p, char **ret_value)
{
        struct buf b = BUF_INIT((size_t)PROFILE_MAX_SETTING_ITEMS * (PROFILE_MAX_SCALAR + 1));
        int r;

        for (size_t i = 0;; i++) {
                r = yaml_schema_next(p);
                if (r < 0)
                        goto out;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        break;

                size_t saved = yaml_schema_path_push_index(p, i);
                const char *s = NULL;

                if (i >= PROFILE_MAX_SETTING_ITEMS) {
                        r = yaml_schema_fail_event(p, -E2BIG, "more than %d items",
                                                   PROFILE_MAX_SETTING_ITEMS);
                        goto out;
                }
                r = yaml_schema_expect_string(p, "a scalar", &s);
                if (r < 0)
                        goto out;
                if (*s == '\0' || yaml_schema_has_whitespace(s)) {
                        r = yaml_schema_fail_event(p, -EBADMSG,
                                                   "a list item must be non-empty and hold no "
                                                   "white space");
                        goto out;
                }
                r = i > 0 ? buf_puts(&b, " ") : 0;
                if (r >= 0)
                        r = buf_puts(&b, s);
                if (r < 0) {
                        r = yaml_schema_fail_event(p, r, "setting too long");
                        goto out;
                }
                yaml_schema_path_restore(p, saved);
        }
        *ret_value = buf_steal(&b, NULL);
        if (!*ret_value)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        return 0;
out:
        buf_free(&b);
        return r;
}

static int parse_setting_value(struct yaml_schema_parser *p, const char *name, char **ret_value)
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

                r = yaml_schema_expect_string(
                    p, single ? "a scalar" : "a scalar or a list of scalars", &s);
                if (r < 0)
                        return r;
                if (streq(name, "max-jobs") && !is_count_or(s, "auto", "fit"))
                        return yaml_schema_fail_value(
                            p,
                            "expected an unsigned integer, 'auto' or 'fit', got "
                            "'%s'",
                            s);
                if (streq(name, "cores") && !is_count_or(s, "fit", NULL))
                        return yaml_schema_fail_value(
                            p, "expected an unsigned integer or 'fit', got '%s'", s);
                value = strdup(s);
                if (!value)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        }
        *ret_value = TAKE_PTR(value);
        return 0;
}

static int parse_settings(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        struct profile *profile = base;
        int r;

        (void)f;
        if (p->event.type != YAML_MAPPING_START_EVENT)
                return yaml_schema_fail_type(p, "a mapping of settings");

        for (;;) {
                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (!yaml_schema_is_scalar(&p->event))
                        return yaml_schema_fail_type(p, "a setting name");

                const char *name = yaml_schema_scalar_text(&p->event);
                yaml_mark_t mark = p->event.start_mark;
                size_t saved = yaml_schema_path_push_key(p, name, strlen(name));
                _cleanup_free_ char *name_copy = NULL;
                struct profile_setting *s;

                if (!setting_name_valid(name))
                        return yaml_schema_fail_value(
                            p, "invalid setting name '%s' (expected [a-z0-9-]+)", name);
                for (size_t i = 0; i < profile->n_settings; i++)
                        if (streq(profile->settings[i].name, name)) {
                                char buf[YAML_SCHEMA_QUOTE_MAX + 4];

                                return yaml_schema_fail_event(
                                    p, -EBADMSG, "duplicate key '%s' (first at line %u)",
                                    yaml_schema_quote(name, buf),
                                    profile->settings[i].location.line);
                        }
                if (profile->n_settings >= PROFILE_MAX_SETTINGS)
                        return yaml_schema_fail_event(p, -E2BIG, "more than %d settings",
                                                      PROFILE_MAX_SETTINGS);
                name_copy = strdup(name);
                if (!name_copy)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");

                s = reallocarray(profile->settings, profile->n_settings + 1, sizeof(*s));
                if (!s)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                profile->settings = s;
                s = &profile->settings[profile->n_settings];
                *s = (struct profile_setting){
                    .location = yaml_schema_location(mark),
                };

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                r = parse_setting_value(p, name_copy, &s->value);
                if (r < 0)
                        return r;
                s->name = TAKE_PTR(name_copy);
                profile->n_settings++;
                yaml_schema_path_restore(p, saved);
        }
}

/* ---- secrets ---- */

static int parse_sealed(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        struct profile_secret *secret = base;
        _cleanup_free_ uint8_t *sealed = NULL;
        const char *s = NULL;
        size_t size;
        int r;

        (void)f;
        r = yaml_schema_expect_string(p, "base64", &s);
        if (r < 0)
                return r;
        sealed = malloc(PROFILE_MAX_SEALED);
        if (!sealed)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        r = yaml_schema_base64_decode(s, sealed, PROFILE_MAX_SEALED, &size);
        if (r == -E2BIG)
                return yaml_schema_fail_event(p, -E2BIG, "sealed value larger than %d bytes",
                                              PROFILE_MAX_SEALED);
        if (r < 0)
                return yaml_schema_fail_event(p, -EBADMSG, "invalid base64");
        if (size < crypto_box_SEALBYTES + 1)
                return yaml_schema_fail_event(
                    p, -EBADMSG,
                    "sealed value too short (%zu bytes, a sealed box has at least "
                    "%d)",
                    size, crypto_box_SEALBYTES + 1);
        free(secret->sealed);
        secret->sealed = TAKE_PTR(sealed);
        secret->sealed_size = size;
        secret->kind = PROFILE_SECRET_SEALED;
        return 0;
}

static const struct yaml_schema_field sealed_fields[] = {
    {.key = "sealed", .parse = parse_sealed, .offset = 0, .flags = YAML_SCHEMA_FIELD_REQUIRED},
};
YAML_SCHEMA_DEFINE_TABLE(sealed_table, sealed_fields);

static int parse_secret(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        struct profile_secret *secret = (struct profile_secret *)((char *)base + f->offset);
        bool path_allowed = f->flags & FIELD_PATH_ALLOWED;
        const char *what =
            path_allowed ? "{sealed: BASE64} or an absolute path" : "{sealed: BASE64}";
        int r;

        secret->location = yaml_schema_location(p->event.start_mark);
        if (p->event.type == YAML_MAPPING_START_EVENT)
                return yaml_schema_parse_mapping(p, &sealed_table, secret, NULL);

        if (!path_allowed || !yaml_schema_is_scalar(&p->event) ||
            yaml_schema_scalar_is_null(&p->event))
                return yaml_schema_fail_type(p, what);

        const char *s = yaml_schema_scalar_text(&p->event);
        if (s[0] != '/' || strlen(s) > SECRET_PATH_MAX || yaml_schema_has_whitespace(s))
                return yaml_schema_fail_value(
                    p, "expected {sealed: BASE64} or an absolute path, got '%s'", s);
        r = yaml_schema_set_string(p, &secret->path, s);
        if (r < 0)
                return r;
        secret->kind = PROFILE_SECRET_PATH;
        return 0;
}

/* ---- builders ---- */

/* ssh://[user@]host[:port][?query] or ssh-ng://...: one field of the machines file, so no
 * white space, and nothing the files it is written to would read as syntax. */
static int parse_builder_uri(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                             void *base)
{
        const char *s = NULL, *rest;
        int r;

        r = yaml_schema_expect_string(p, "a URI", &s);
        if (r < 0)
                return r;
        if (strncmp(s, "ssh://", 6) == 0)
                rest = s + 6;
        else if (strncmp(s, "ssh-ng://", 9) == 0)
                rest = s + 9;
        else
                return yaml_schema_fail_value(
                    p, "expected a URI starting with ssh:// or ssh-ng://, got '%s'", s);
        if (!yaml_schema_is_alnum(rest[0]) && rest[0] != '[')
                return yaml_schema_fail_value(p, "invalid builder URI '%s': no host", s);
        for (const char *c = rest; *c; c++)
                if (!yaml_schema_is_alnum(*c) && !yaml_schema_char_in(*c, "@.-_:/?=&%+~[]"))
                        return yaml_schema_fail_value(p, "invalid character in builder URI '%s'",
                                                      s);
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

static const char *const host_key_types[] = {
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
};

/* "TYPE BASE64", as in a .pub file without the comment. The blob must be an SSH public key of
 * that type: a length-prefixed type name first (and for Ed25519, the 32-byte key). */
static int parse_host_key(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        _cleanup_free_ uint8_t *blob = NULL;
        const char *s = NULL, *space, *type = NULL;
        size_t type_len, size;
        int r;

        r = yaml_schema_expect_string(p, "a host key", &s);
        if (r < 0)
                return r;
        space = strchr(s, ' ');
        if (!space)
                return yaml_schema_fail_value(
                    p,
                    "expected 'TYPE BASE64' (like 'ssh-ed25519 AAAA...'), got "
                    "'%s'",
                    s);
        type_len = (size_t)(space - s);
        for (size_t i = 0; i < ELEMENTSOF(host_key_types); i++)
                if (strlen(host_key_types[i]) == type_len &&
                    memcmp(s, host_key_types[i], type_len) == 0)
                        type = host_key_types[i];
        if (!type)
                return yaml_schema_fail_value(p, "unsupported host key type in '%s'", s);

        blob = malloc(HOST_KEY_BLOB_MAX);
        if (!blob)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        if (strchr(space + 1, ' '))
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "expected 'TYPE BASE64' without a comment");
        if (yaml_schema_base64_decode(space + 1, blob, HOST_KEY_BLOB_MAX, &size) < 0)
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "invalid host key: the key is not valid base64");
        if (size < 4 + type_len ||
            (((uint32_t)blob[0] << 24) | ((uint32_t)blob[1] << 16) | ((uint32_t)blob[2] << 8) |
             blob[3]) != type_len ||
            memcmp(blob + 4, type, type_len) != 0)
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "invalid host key: the key is not of type %s", type);
        if (streq(type, "ssh-ed25519") &&
            (size != 4 + type_len + 4 + 32 || memcmp(blob + 4 + type_len, "\0\0\0\x20", 4) != 0))
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "invalid host key: not an Ed25519 public key");
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

static const struct yaml_schema_field builder_fields[] = {
    {.key = "uri",
     .parse = parse_builder_uri,
     .offset = offsetof(struct profile_builder, uri),
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "systems",
     .parse = parse_names,
     .offset = offsetof(struct profile_builder, systems),
     .count_offset = offsetof(struct profile_builder, n_systems),
     .max = PROFILE_MAX_NAMES,
     .flags = YAML_SCHEMA_FIELD_REQUIRED | YAML_SCHEMA_FIELD_NONEMPTY},
    {.key = "max-jobs",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile_builder, max_jobs),
     .min = 0,
     .max = 1024},
    {.key = "speed-factor",
     .parse = yaml_schema_parse_uint,
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
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "identity",
     .parse = parse_secret,
     .offset = offsetof(struct profile_builder, identity),
     .flags = FIELD_PATH_ALLOWED},
    {.key = "required",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct profile_builder, required)},
};
YAML_SCHEMA_DEFINE_TABLE(builder_table, builder_fields);
#define BUILDER_FIELD_URI 0

static void builder_init(void *element, yaml_mark_t mark)
{
        *(struct profile_builder *)element = (struct profile_builder){
            .max_jobs = 1,
            .speed_factor = 1,
            .required = true,
            .location = yaml_schema_location(mark),
        };
}

static int builder_check(struct yaml_schema_parser *p, void *items, size_t index,
                         const yaml_mark_t *marks)
{
        const struct profile_builder *builders = items, *b = &builders[index];
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

        for (size_t j = 0; j < index; j++)
                if (streq(builders[j].uri, b->uri)) {
                        yaml_schema_path_push_key(p, "uri", 3);
                        return yaml_schema_fail_mark(p, -EBADMSG, marks[BUILDER_FIELD_URI],
                                                     "duplicate builder '%s' (first at line %u)",
                                                     yaml_schema_quote(b->uri, buf),
                                                     builders[j].location.line);
                }
        return 0;
}

static int parse_builders(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        static const struct yaml_schema_list list = {
            .what = "builders",
            .max = PROFILE_MAX_BUILDERS,
            .element_size = sizeof(struct profile_builder),
            .table = &builder_table,
            .init = builder_init,
            .check = builder_check,
        };
        struct profile *profile = base;

        void *items = profile->builders;
        int r;

        (void)f;
        r = yaml_schema_parse_list(p, &list, &items, &profile->n_builders);
        profile->builders = items; /* also on failure: the caller frees what was parsed */
        return r;
}

/* ---- cachix ---- */

static int parse_cache_name(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                            void *base)
{
        const char *s = NULL;
        int r;

        r = yaml_schema_expect_string(p, "a cache name", &s);
        if (r < 0)
                return r;
        if (!yaml_schema_lower_name_valid(s, CACHE_NAME_MAX_LEN, "-"))
                return yaml_schema_fail_value(
                    p, "invalid cache name '%s' (expected [a-z0-9][a-z0-9-]*)", s);
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

#define CACHIX_KEY_SUFFIX ".cachix.org-1:"

/* NAME.cachix.org-1:BASE64 of a 32-byte Ed25519 key, as cachix prints it. */
static int parse_cache_key(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                           void *base)
{
        uint8_t key[64];
        char name[CACHE_NAME_MAX_LEN + 1];
        const char *s = NULL, *suffix;
        size_t size, name_len;
        int r;

        r = yaml_schema_expect_string(p, "a public key", &s);
        if (r < 0)
                return r;
        suffix = strstr(s, CACHIX_KEY_SUFFIX);
        if (!suffix)
                return yaml_schema_fail_value(
                    p, "expected a key like NAME.cachix.org-1:BASE64, got '%s'", s);
        name_len = (size_t)(suffix - s);
        if (name_len == 0 || name_len > CACHE_NAME_MAX_LEN)
                return yaml_schema_fail_value(p, "invalid cache name in public key '%s'", s);
        memcpy(name, s, name_len);
        name[name_len] = '\0';
        if (!yaml_schema_lower_name_valid(name, CACHE_NAME_MAX_LEN, "-"))
                return yaml_schema_fail_value(p, "invalid cache name in public key '%s'", s);
        if (yaml_schema_base64_decode(suffix + strlen(CACHIX_KEY_SUFFIX), key, sizeof(key), &size) <
                0 ||
            size != 32)
                return yaml_schema_fail_event(
                    p, -EBADMSG,
                    "invalid public key: expected the base64 of 32 bytes after "
                    "'%s'",
                    CACHIX_KEY_SUFFIX);
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

/* The netrc "machine" a token is for: a host name or IPv4 address, no port, no white space. */
static int parse_cache_host(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                            void *base)
{
        const char *s = NULL;
        int r;

        r = yaml_schema_expect_string(p, "a host name", &s);
        if (r < 0)
                return r;
        if (!string_is_safe(s, PROFILE_CACHE_HOST_MAX, ".-") || s[0] == '.' || s[0] == '-')
                return yaml_schema_fail_value(
                    p, "invalid host '%s' (expected a host name or IPv4 address, no port)", s);
        return yaml_schema_set_string(p, (char **)((char *)base + f->offset), s);
}

static const struct yaml_schema_field cache_fields[] = {
    {.key = "name",
     .parse = parse_cache_name,
     .offset = offsetof(struct profile_cache, name),
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "public-key",
     .parse = parse_cache_key,
     .offset = offsetof(struct profile_cache, public_key),
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "auth-token",
     .parse = parse_secret,
     .offset = offsetof(struct profile_cache, auth_token)},
    {.key = "host", .parse = parse_cache_host, .offset = offsetof(struct profile_cache, host)},
};
YAML_SCHEMA_DEFINE_TABLE(cache_table, cache_fields);
#define CACHE_FIELD_NAME 0
#define CACHE_FIELD_PUBLIC_KEY 1
#define CACHE_FIELD_HOST 3

static void cache_init(void *element, yaml_mark_t mark)
{
        ((struct profile_cache *)element)->location = yaml_schema_location(mark);
}

static int cache_check(struct yaml_schema_parser *p, void *items, size_t index,
                       const yaml_mark_t *marks)
{
        const struct profile_cache *caches = items, *c = &caches[index];
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

        /* The key must be the cache's own: NAME.cachix.org-1:... */
        if (strncmp(c->public_key, c->name, strlen(c->name)) != 0 ||
            strncmp(c->public_key + strlen(c->name), CACHIX_KEY_SUFFIX,
                    strlen(CACHIX_KEY_SUFFIX)) != 0) {
                yaml_schema_path_push_key(p, "public-key", 10);
                return yaml_schema_fail_mark(p, -EBADMSG, marks[CACHE_FIELD_PUBLIC_KEY],
                                             "the public key is not for cache '%s'",
                                             yaml_schema_quote(c->name, buf));
        }
        if (c->host && c->auth_token.kind != PROFILE_SECRET_SEALED) {
                yaml_schema_path_push_key(p, "host", 4);
                return yaml_schema_fail_mark(p, -EBADMSG, marks[CACHE_FIELD_HOST],
                                             "a host is only for an auth-token");
        }
        for (size_t j = 0; j < index; j++)
                if (streq(caches[j].name, c->name)) {
                        yaml_schema_path_push_key(p, "name", 4);
                        return yaml_schema_fail_mark(p, -EBADMSG, marks[CACHE_FIELD_NAME],
                                                     "duplicate cache '%s' (first at line %u)",
                                                     yaml_schema_quote(c->name, buf),
                                                     caches[j].location.line);
                }
        return 0;
}

static int parse_caches(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        static const struct yaml_schema_list list = {
            .what = "caches",
            .max = PROFILE_MAX_CACHES,
            .element_size = sizeof(struct profile_cache),
            .table = &cache_table,
            .init = cache_init,
            .check = cache_check,
        };
        struct profile *profile = base;

        void *items = profile->caches;
        int r;

        (void)f;
        r = yaml_schema_parse_list(p, &list, &items, &profile->n_caches);
        profile->caches = items; /* also on failure: the caller frees what was parsed */
        return r;
}

/* ---- the document ---- */

static const struct yaml_schema_field nix_fields[] = {
    {.key = "settings", .parse = parse_settings, .offset = 0},
    {.key = "fallback-local",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct profile, fallback_local)},
    {.key = "local-builds",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct profile, local_builds)},
};
YAML_SCHEMA_DEFINE_TABLE(nix_table, nix_fields);

static const struct yaml_schema_field rebuild_fields[] = {
    {.key = "flake", .parse = parse_flake, .offset = offsetof(struct profile, rebuild.flake)},
    {.key = "action", .parse = parse_action, .offset = offsetof(struct profile, rebuild.action)},
    {.key = "timeout",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile, rebuild.timeout),
     .min = 1,
     .max = 604800},
    {.key = "max-local-builds",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile, rebuild.max_local_builds),
     .min = 0,
     .max = 1000000},
    {.key = "allow-reboot",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct profile, rebuild.allow_reboot)},
};
YAML_SCHEMA_DEFINE_TABLE(rebuild_table, rebuild_fields);

static const struct yaml_schema_field report_fields[] = {
    {.key = "interval",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile, report.interval),
     .min = 1,
     .max = 86400},
};
YAML_SCHEMA_DEFINE_TABLE(report_table, report_fields);

static const struct yaml_schema_field profile_fields[] = {
    {.key = "nixprov",
     .parse = parse_schema,
     .offset = offsetof(struct profile, schema),
     .max = UINT64_MAX,
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "serial",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile, serial),
     .max = UINT64_MAX,
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "expires",
     .parse = parse_time,
     .offset = offsetof(struct profile, expires),
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "machines",
     .parse = parse_machines,
     .offset = offsetof(struct profile, machines),
     .count_offset = offsetof(struct profile, n_machines),
     .max = PROFILE_MAX_MACHINES,
     .flags = YAML_SCHEMA_FIELD_NONEMPTY},
    {.key = "groups",
     .parse = parse_groups,
     .offset = offsetof(struct profile, groups),
     .count_offset = offsetof(struct profile, n_groups),
     .max = PROFILE_MAX_GROUPS,
     .flags = YAML_SCHEMA_FIELD_NONEMPTY},
    {.key = "strategy",
     .parse = parse_strategy,
     .offset = offsetof(struct profile, strategy),
     .flags = YAML_SCHEMA_FIELD_REQUIRED},
    {.key = "nix", .parse = yaml_schema_parse_section, .offset = 0, .table = &nix_table},
    {.key = "builders", .parse = parse_builders, .offset = 0},
    {.key = "cachix", .parse = parse_caches, .offset = 0},
    {.key = "rebuild", .parse = yaml_schema_parse_section, .offset = 0, .table = &rebuild_table},
    {.key = "report", .parse = yaml_schema_parse_section, .offset = 0, .table = &report_table},
    {.key = "health", .parse = profile_health_parse, .offset = offsetof(struct profile, health)},
};
YAML_SCHEMA_DEFINE_TABLE(profile_table, profile_fields);

/* ---- the API ------------------------------------------------------------------------------- */

int profile_parse(const char *data, size_t size, const char *filename, struct profile **ret,
                  struct profile_error *ret_error)
{
        _cleanup_(profile_freep) struct profile *profile = NULL;
        struct profile_error error = {};
        struct yaml_schema_parser p = {
            .data = data,
            .size = size,
            .filename = filename,
            .error = &error,
            .max_bytes = PROFILE_MAX_BYTES,
            .max_depth = PROFILE_MAX_DEPTH,
            .max_scalar = PROFILE_MAX_SCALAR,
            /* Noted by the first pass, so that a profile of another schema is refused as such
             * rather than for the first key this parser does not know. */
            .version_key = "nixprov",
        };
        yaml_mark_t start;
        int r;

        if (!data && size > 0)
                return -EINVAL;

        r = yaml_schema_check(&p);
        if (r < 0)
                goto fail;
        if (p.version_seen && p.version != PROFILE_SCHEMA) {
                yaml_schema_path_restore(&p, 0);
                yaml_schema_path_push_key(&p, "nixprov", 7);
                r = yaml_schema_fail_mark(&p, -EPROTONOSUPPORT, p.version_mark,
                                          "unsupported schema %llu (this nixprov reads schema %d)",
                                          (unsigned long long)p.version, PROFILE_SCHEMA);
                goto fail;
        }

        profile = calloc(1, sizeof(*profile));
        if (!profile) {
                r = yaml_schema_fail_at(&p, -ENOMEM, 0, 0, "out of memory");
                goto fail;
        }
        profile->rebuild.action = PROFILE_REBUILD_SWITCH;
        profile->rebuild.timeout = 7200;
        profile->rebuild.max_local_builds = PROFILE_NO_LIMIT;
        profile->report.interval = 30;
        profile_health_init(&profile->health);

        r = yaml_schema_parse_document(&p, &profile_table, profile, &start);
        if (r < 0)
                goto fail;
        if (!profile->machines && !profile->groups) {
                r = yaml_schema_fail_mark(&p, -EBADMSG, start,
                                          "missing required key 'machines' or 'groups'");
                goto fail;
        }
        yaml_schema_done(&p);

        *ret = TAKE_PTR(profile);
        return 0;

fail:
        yaml_schema_done(&p);
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
                free(p->caches[i].host);
                secret_done(&p->caches[i].auth_token);
        }
        free(p->caches);
        free(p->rebuild.flake);
        profile_health_done(&p->health);
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
                if (p->settings[i].name && streq(p->settings[i].name, name))
                        return &p->settings[i];
        return NULL;
}

bool profile_group_name_valid(const char *name)
{
        return name && yaml_schema_lower_name_valid(name, PROFILE_GROUP_NAME_MAX, "._-");
}
