/* SPDX-License-Identifier: MIT */
/* The agent's configuration: a table of keys over yaml_schema.c, and the kernel command line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_config.h"
#include "keyfile.h"
#include "util.h"
#include "yaml_schema.h"

#define AGENT_CONFIG_MAX_DEPTH 4 /* server.urls is a list in a mapping in the document */

/* ---- values, shared by the file and the command line --------------------------------------- */

/* Each returns NULL when s is valid, or why it is not. */

static const char *url_problem(const char *s)
{
        static const char *const schemes[] = {"http://", "https://", "file://"};
        const char *rest = NULL;

        for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
                if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
                        rest = s + strlen(schemes[i]);
        if (!rest)
                return "expected http://, https:// or file://";
        if (*rest == '\0')
                return "nothing after the scheme";
        if (strlen(s) > AGENT_CONFIG_MAX_VALUE)
                return "too long";
        /* Printable ASCII only: white space would split it in a log line, and a URL is
         * percent-encoded anyway. */
        for (const char *c = s; *c; c++)
                if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
                        return "white space, a control character or non-ASCII";
        return NULL;
}

static bool has_control(const char *s)
{
        for (const char *c = s; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
                        return true;
        return false;
}

static const char *absolute_path_problem(const char *s)
{
        if (s[0] != '/')
                return "not an absolute path";
        if (strlen(s) > AGENT_CONFIG_MAX_VALUE)
                return "too long";
        if (has_control(s))
                return "a control character";
        return NULL;
}

static const char *command_problem(const char *s)
{
        if (*s == '\0')
                return "empty";
        if (strlen(s) > AGENT_CONFIG_MAX_VALUE)
                return "too long";
        if (yaml_schema_has_whitespace(s) || has_control(s))
                return "white space or a control character";
        /* "bin/nixos-rebuild" would depend on the agent's working directory. */
        if (s[0] != '/' && strchr(s, '/'))
                return "expected a program name or an absolute path";
        return NULL;
}

static const char *search_path_problem(const char *s)
{
        if (strlen(s) > AGENT_CONFIG_MAX_VALUE)
                return "too long";
        if (has_control(s))
                return "a control character";
        for (const char *entry = s;;) {
                const char *end = strchrnul(entry, ':');

                /* An empty entry means the working directory to execvp(). */
                if (end == entry)
                        return "an empty entry";
                if (entry[0] != '/')
                        return "an entry that is not an absolute path";
                if (*end == '\0')
                        return NULL;
                entry = end + 1;
        }
}

/* ---- the file -------------------------------------------------------------------------------- */

static int fail_invalid(struct yaml_schema_parser *p, const char *what, const char *value,
                        const char *problem)
{
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];

        return yaml_schema_fail_event(p, -EBADMSG, "invalid %s '%s': %s", what,
                                      yaml_schema_quote(value, buf), problem);
}

/* A string that problem() accepts: expected names it in type errors, noun in value errors. */
static int parse_checked_string(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                                void *base, const char *expected, const char *noun,
                                const char *(*problem)(const char *))
{
        const char *s = NULL, *why;
        int r;

        r = yaml_schema_expect_string(p, expected, &s);
        if (r < 0)
                return r;
        why = problem(s);
        if (why)
                return fail_invalid(p, noun, s, why);
        return yaml_schema_set_string(p, YAML_SCHEMA_TARGET(char *, base, f), s);
}

static int parse_absolute_path(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                               void *base)
{
        return parse_checked_string(p, f, base, "an absolute path", "path", absolute_path_problem);
}

static int parse_command(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                         void *base)
{
        return parse_checked_string(p, f, base, "a command", "command", command_problem);
}

static int parse_search_path(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                             void *base)
{
        return parse_checked_string(p, f, base, "a search path", "search path",
                                    search_path_problem);
}

static int check_url(struct yaml_schema_parser *p, char *item)
{
        const char *why = url_problem(item);

        return why ? fail_invalid(p, "URL", item, why) : 0;
}

static int check_group(struct yaml_schema_parser *p, char *item)
{
        if (!profile_group_name_valid(item))
                return yaml_schema_fail_value(
                    p, "invalid group name '%s' (expected [a-z0-9][a-z0-9._-]*)", item);
        return 0;
}

static int parse_urls(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a URL", check_url);
}

static int parse_groups(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a group name", check_group);
}

/* A key from a .pub file named by its absolute path. Only regular files are read: a FIFO or a
 * terminal would block the agent. */
static int load_key_file(struct yaml_schema_parser *p, const char *path,
                         struct minisign_public_key *ret)
{
        char buf[YAML_SCHEMA_QUOTE_MAX + 4];
        struct stat st;
        int r;

        if (strlen(path) > AGENT_CONFIG_MAX_VALUE || has_control(path))
                return fail_invalid(p, "key file", path, "not a usable path");
        if (stat(path, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                return yaml_schema_fail_event(p, -EBADMSG, "cannot read key file '%s': %s",
                                              yaml_schema_quote(path, buf), "not a regular file");
        else
                r = keyfile_load_public(path, ret);
        if (r == -ENOMEM)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        if (r == -EBADMSG || r == -E2BIG)
                return yaml_schema_fail_value(p, "'%s' is not a minisign public key file", path);
        if (r < 0)
                return yaml_schema_fail_event(p, -EBADMSG, "cannot read key file '%s': %s",
                                              yaml_schema_quote(path, buf), strerror(-r));
        return 0;
}

/* trusted-keys: a list of minisign public keys, each the base64 line of a .pub file or the
 * absolute path of one. */
static int parse_keys(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        struct agent_config *c = base;
        int r;

        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return yaml_schema_fail_type(p, "a list of public keys");

        for (size_t i = 0;; i++) {
                struct minisign_public_key key, *keys;
                const char *s = NULL;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        return 0;

                size_t saved = yaml_schema_path_push_index(p, i);

                if (i >= f->max)
                        return yaml_schema_fail_event(p, -E2BIG, "more than %llu keys",
                                                      (unsigned long long)f->max);
                r = yaml_schema_expect_string(p, "a public key", &s);
                if (r < 0)
                        return r;
                if (s[0] == '/') {
                        r = load_key_file(p, s, &key);
                        if (r < 0)
                                return r;
                } else if (minisign_public_key_parse(s, strlen(s), &key) < 0)
                        return yaml_schema_fail_value(
                            p,
                            "invalid public key '%s' (expected a minisign public key line or "
                            "the absolute path of a .pub file)",
                            s);

                keys = reallocarray(c->keys, c->n_keys + 1, sizeof(*keys));
                if (!keys)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                c->keys = keys;
                c->keys[c->n_keys++] = key;
                yaml_schema_path_restore(p, saved);
        }
}

static const struct yaml_schema_field server_fields[] = {
    {.key = "urls",
     .parse = parse_urls,
     .offset = offsetof(struct agent_config, urls),
     .count_offset = offsetof(struct agent_config, n_urls),
     .max = AGENT_CONFIG_MAX_URLS},
    {.key = "ca-file",
     .parse = parse_absolute_path,
     .offset = offsetof(struct agent_config, ca_file)},
    {.key = "connect-timeout",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct agent_config, connect_timeout),
     .min = 1,
     .max = 600},
    {.key = "deadline",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct agent_config, deadline),
     .min = 1,
     .max = 86400},
};
YAML_SCHEMA_DEFINE_TABLE(server_table, server_fields);

static const struct yaml_schema_field rebuild_fields[] = {
    {.key = "command",
     .parse = parse_command,
     .offset = offsetof(struct agent_config, rebuild_command)},
    {.key = "path",
     .parse = parse_search_path,
     .offset = offsetof(struct agent_config, rebuild_path)},
    {.key = "dry-run-command",
     .parse = parse_command,
     .offset = offsetof(struct agent_config, dry_run_command)},
};
YAML_SCHEMA_DEFINE_TABLE(rebuild_table, rebuild_fields);

static const struct yaml_schema_field health_fields[] = {
    {.key = "systemctl",
     .parse = parse_command,
     .offset = offsetof(struct agent_config, systemctl_command)},
};
YAML_SCHEMA_DEFINE_TABLE(health_table, health_fields);

static const struct yaml_schema_field rollback_fields[] = {
    {.key = "command",
     .parse = parse_command,
     .offset = offsetof(struct agent_config, rollback_command)},
};
YAML_SCHEMA_DEFINE_TABLE(rollback_table, rollback_fields);

static const struct yaml_schema_field reboot_fields[] = {
    {.key = "command",
     .parse = parse_command,
     .offset = offsetof(struct agent_config, reboot_command)},
};
YAML_SCHEMA_DEFINE_TABLE(reboot_table, reboot_fields);

static const struct yaml_schema_field enroll_fields[] = {
    {.key = "token-file",
     .parse = parse_absolute_path,
     .offset = offsetof(struct agent_config, enroll_token_file)},
    {.key = "wait",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct agent_config, enroll_wait),
     .min = 0,
     .max = AGENT_CONFIG_ENROLL_WAIT_MAX},
};
YAML_SCHEMA_DEFINE_TABLE(enroll_table, enroll_fields);

static const struct yaml_schema_field agent_config_fields[] = {
    {.key = "server", .parse = yaml_schema_parse_section, .offset = 0, .table = &server_table},
    {.key = "trusted-keys", .parse = parse_keys, .offset = 0, .max = AGENT_CONFIG_MAX_KEYS},
    {.key = "groups",
     .parse = parse_groups,
     .offset = offsetof(struct agent_config, groups),
     .count_offset = offsetof(struct agent_config, n_groups),
     .max = AGENT_CONFIG_MAX_GROUPS},
    {.key = "state-dir",
     .parse = parse_absolute_path,
     .offset = offsetof(struct agent_config, state_dir)},
    {.key = "log-dir",
     .parse = parse_absolute_path,
     .offset = offsetof(struct agent_config, log_dir)},
    {.key = "rebuild", .parse = yaml_schema_parse_section, .offset = 0, .table = &rebuild_table},
    {.key = "enroll", .parse = yaml_schema_parse_section, .offset = 0, .table = &enroll_table},
    {.key = "health", .parse = yaml_schema_parse_section, .offset = 0, .table = &health_table},
    {.key = "rollback", .parse = yaml_schema_parse_section, .offset = 0, .table = &rollback_table},
    {.key = "reboot", .parse = yaml_schema_parse_section, .offset = 0, .table = &reboot_table},
};
YAML_SCHEMA_DEFINE_TABLE(agent_config_table, agent_config_fields);

int agent_config_parse(const char *data, size_t size, const char *filename,
                       struct agent_config **ret, struct profile_error *ret_error)
{
        _cleanup_(agent_config_freep) struct agent_config *c = NULL;
        struct profile_error error = {};
        struct yaml_schema_parser p = {
            .data = data,
            .size = size,
            .filename = filename,
            .error = &error,
            .max_bytes = AGENT_CONFIG_MAX_BYTES,
            .max_depth = AGENT_CONFIG_MAX_DEPTH,
            .max_scalar = AGENT_CONFIG_MAX_VALUE,
        };
        int r;

        if (!data && size > 0)
                return -EINVAL;

        r = yaml_schema_check(&p);
        if (r < 0)
                goto fail;
        r = agent_config_new_default(&c);
        if (r < 0) {
                r = yaml_schema_fail_at(&p, r, 0, 0, "out of memory");
                goto fail;
        }
        r = yaml_schema_parse_document(&p, &agent_config_table, c, NULL);
        if (r < 0)
                goto fail;
        yaml_schema_done(&p);

        *ret = TAKE_PTR(c);
        return 0;

fail:
        yaml_schema_done(&p);
        if (ret_error)
                *ret_error = error;
        return r;
}

int agent_config_new_default(struct agent_config **ret)
{
        _cleanup_(agent_config_freep) struct agent_config *c = NULL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->connect_timeout = AGENT_CONFIG_CONNECT_TIMEOUT_DEFAULT;
        c->deadline = AGENT_CONFIG_DEADLINE_DEFAULT;
        c->enroll_wait = AGENT_CONFIG_ENROLL_WAIT_DEFAULT;
        c->state_dir = strdup(AGENT_CONFIG_STATE_DIR_DEFAULT);
        c->log_dir = strdup(AGENT_CONFIG_LOG_DIR_DEFAULT);
        c->rebuild_command = strdup(AGENT_CONFIG_REBUILD_COMMAND_DEFAULT);
        c->systemctl_command = strdup(AGENT_CONFIG_SYSTEMCTL_DEFAULT);
        c->reboot_command = strdup(AGENT_CONFIG_REBOOT_DEFAULT);
        if (!c->state_dir || !c->log_dir || !c->rebuild_command || !c->systemctl_command ||
            !c->reboot_command)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

struct agent_config *agent_config_free(struct agent_config *c)
{
        if (!c)
                return NULL;
        strv_free(c->urls, c->n_urls);
        free(c->ca_file);
        free(c->keys);
        strv_free(c->groups, c->n_groups);
        free(c->state_dir);
        free(c->log_dir);
        free(c->rebuild_command);
        free(c->rebuild_path);
        free(c->dry_run_command);
        free(c->systemctl_command);
        free(c->rollback_command);
        free(c->reboot_command);
        free(c->enroll_token_file);
        free(c);
        return NULL;
}

/* ---- the kernel command line ------------------------------------------------------------------
 */

/* The lists the command line gives, built aside so that the configuration changes only when
 * every word parsed. */
struct cmdline_lists {
        char **urls;
        size_t n_urls;
        bool have_urls;
        struct minisign_public_key *keys;
        size_t n_keys;
        bool have_keys;
        char **groups;
        size_t n_groups;
        bool have_groups;
};

static void cmdline_lists_done(struct cmdline_lists *l)
{
        strv_free(l->urls, l->n_urls);
        free(l->keys);
        strv_free(l->groups, l->n_groups);
}

static bool cmdline_is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int strv_push(char ***v, size_t *n, size_t max, const char *s)
{
        char **a;

        if (*n >= max)
                return -E2BIG;
        a = reallocarray(*v, *n + 1, sizeof(char *));
        if (!a)
                return -ENOMEM;
        *v = a;
        a[*n] = strdup(s);
        if (!a[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

/* One word, already unquoted: a nixprov.* parameter is checked and added to l; any other word
 * is left alone. */
static int cmdline_apply_word(struct cmdline_lists *l, const char *param, const char *value)
{
        if (streq(param, "nixprov.url")) {
                if (!value || url_problem(value))
                        return -EINVAL;
                l->have_urls = true;
                return strv_push(&l->urls, &l->n_urls, AGENT_CONFIG_MAX_URLS, value);
        }
        if (streq(param, "nixprov.key")) {
                struct minisign_public_key key, *keys;

                /* The base64 line only: nothing on the command line names a file. */
                if (!value || has_control(value) || strlen(value) > AGENT_CONFIG_MAX_VALUE ||
                    minisign_public_key_parse(value, strlen(value), &key) < 0)
                        return -EINVAL;
                l->have_keys = true;
                if (l->n_keys >= AGENT_CONFIG_MAX_KEYS)
                        return -E2BIG;
                keys = reallocarray(l->keys, l->n_keys + 1, sizeof(*keys));
                if (!keys)
                        return -ENOMEM;
                l->keys = keys;
                l->keys[l->n_keys++] = key;
                return 0;
        }
        if (streq(param, "nixprov.group")) {
                if (!value || !profile_group_name_valid(value))
                        return -EINVAL;
                l->have_groups = true;
                return strv_push(&l->groups, &l->n_groups, AGENT_CONFIG_MAX_GROUPS, value);
        }
        return 0;
}

/* Splits word (a modifiable copy of n bytes) into a parameter and a value the way the kernel's
 * next_arg() does: a leading double quote opens a quote that makes spaces part of the word, the
 * first '=' separates the value, and a value (or a word) that started with a quote loses it and
 * the closing quote at the word's end. *ret_value is NULL without '='. */
static void cmdline_unquote(char *word, size_t n, char **ret_param, char **ret_value)
{
        bool quoted = false;
        char *equals, *value = NULL;

        if (n > 0 && word[0] == '"') {
                word++;
                n--;
                quoted = true;
        }
        /* The kernel takes a leading '=' as part of the parameter's name. */
        equals = n > 1 ? memchr(word + 1, '=', n - 1) : NULL;
        if (equals) {
                *equals = '\0';
                value = equals + 1;
                if (*value == '"') {
                        value++;
                        if (n > 0 && word[n - 1] == '"')
                                word[n - 1] = '\0';
                }
        }
        if (quoted && n > 0 && word[n - 1] == '"')
                word[n - 1] = '\0';
        *ret_param = word;
        *ret_value = value;
}

int agent_config_apply_cmdline(struct agent_config *c, const char *cmdline, char **ret_bad_word)
{
        _cleanup_(cmdline_lists_done) struct cmdline_lists l = {};
        int r;

        if (!c || !cmdline)
                return -EINVAL;

        for (const char *s = cmdline;;) {
                _cleanup_free_ char *word = NULL;
                const char *start;
                bool in_quote = false;
                char *param, *value;
                size_t n;

                while (cmdline_is_space(*s))
                        s++;
                if (*s == '\0')
                        break;
                start = s;
                /* As next_arg(): a double quote anywhere toggles the quoting. */
                for (; *s && (in_quote || !cmdline_is_space(*s)); s++)
                        if (*s == '"')
                                in_quote = !in_quote;
                n = (size_t)(s - start);

                word = strndup(start, n);
                if (!word)
                        return -ENOMEM;
                cmdline_unquote(word, n, &param, &value);
                r = cmdline_apply_word(&l, param, value);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (ret_bad_word) {
                                char *bad = strndup(start, n);

                                if (!bad)
                                        return -ENOMEM;
                                *ret_bad_word = bad;
                        }
                        return r;
                }
        }

        /* Every word parsed: now swap in each list the command line gave. */
        if (l.have_urls) {
                strv_free(c->urls, c->n_urls);
                c->urls = TAKE_PTR(l.urls);
                c->n_urls = l.n_urls;
                l.n_urls = 0;
        }
        if (l.have_keys) {
                free(c->keys);
                c->keys = TAKE_PTR(l.keys);
                c->n_keys = l.n_keys;
                l.n_keys = 0;
        }
        if (l.have_groups) {
                strv_free(c->groups, c->n_groups);
                c->groups = TAKE_PTR(l.groups);
                c->n_groups = l.n_groups;
                l.n_groups = 0;
        }
        return 0;
}
