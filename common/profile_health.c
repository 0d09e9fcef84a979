/* SPDX-License-Identifier: MIT */
/* The profile's health: section (profile_health.h): its table of keys and the checks of its
 * values, parsed by yaml_schema.c's machinery as part of the profile. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile_health.h"
#include "util.h"
#include "yaml_schema.h"

#define UNIT_NAME_MAX 255

static int check_unit(struct yaml_schema_parser *p, char *item)
{
        if (item[0] == '-' || !string_is_safe(item, UNIT_NAME_MAX + 1, ":_.@-\\"))
                return yaml_schema_fail_value(
                    p, "invalid unit name '%s' (expected [A-Za-z0-9:_.@\\-]+)", item);
        return 0;
}

/* A decimal number without sign or leading zero in 0..max. */
static bool decimal_in(const char *s, size_t n, unsigned long max)
{
        unsigned long v = 0;

        if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned long)(s[i] - '0');
        }
        return v <= max;
}

static bool ipv4_valid(const char *s, size_t n)
{
        size_t start = 0, dots = 0;

        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.')
                        continue;
                if (i - start > 3 || !decimal_in(s + start, i - start, 255))
                        return false;
                dots += i < n;
                start = i + 1;
        }
        return dots == 3;
}

static int check_tcp(struct yaml_schema_parser *p, char *item)
{
        const char *colon = strrchr(item, ':');
        const char *port = colon ? colon + 1 : item;

        if (!decimal_in(port, strlen(port), 65535) || streq(port, "0") ||
            (colon && !ipv4_valid(item, (size_t)(colon - item))))
                return yaml_schema_fail_value(
                    p, "invalid port '%s' (expected PORT or IPV4:PORT, PORT 1..65535)", item);
        return 0;
}

static bool url_valid(const char *s)
{
        const char *rest, *path;

        if (strlen(s) > PROFILE_HEALTH_URL_MAX)
                return false;
        if (strncmp(s, "http://", 7) == 0)
                rest = s + strlen("http://");
        else if (strncmp(s, "https://", 8) == 0)
                rest = s + strlen("https://");
        else
                return false;
        path = strchrnul(rest, '/');
        if (path == rest)
                return false;
        for (const char *c = rest; c < path; c++)
                if (!(c[0] >= 'a' && c[0] <= 'z') && !(c[0] >= 'A' && c[0] <= 'Z') &&
                    !(c[0] >= '0' && c[0] <= '9') && !strchr(".-:[]", c[0]))
                        return false;
        return *path == '\0' || streq(path, "/") || string_is_safe(path, SIZE_MAX, "/._~%?=&+:@-");
}

static int check_url(struct yaml_schema_parser *p, char *item)
{
        if (!url_valid(item))
                return yaml_schema_fail_value(p,
                                              "invalid URL '%s' (expected http:// or https://, a "
                                              "host, an optional port and path)",
                                              item);
        return 0;
}

static int check_arg(struct yaml_schema_parser *p, char *item)
{
        if (item[0] == '\0')
                return yaml_schema_fail_event(p, -EBADMSG, "empty argument");
        return 0;
}

static int parse_units(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a unit name", check_unit);
}

static int parse_tcp(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a port", check_tcp);
}

static int parse_http(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a URL", check_url);
}

static int parse_argv(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "an argument", check_arg);
}

static const struct yaml_schema_field command_fields[] = {
    {.key = "argv",
     .parse = parse_argv,
     .offset = offsetof(struct profile_health_command, argv),
     .count_offset = offsetof(struct profile_health_command, n_argv),
     .max = PROFILE_HEALTH_MAX_ARGS,
     .flags = YAML_SCHEMA_FIELD_REQUIRED | YAML_SCHEMA_FIELD_NONEMPTY},
    {.key = "timeout",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile_health_command, timeout),
     .min = 1,
     .max = 3600},
};
YAML_SCHEMA_DEFINE_TABLE(command_table, command_fields);

static void command_init(void *element, yaml_mark_t mark)
{
        (void)mark;
        *(struct profile_health_command *)element =
            (struct profile_health_command){.timeout = PROFILE_HEALTH_COMMAND_TIMEOUT_DEFAULT};
}

static int command_check(struct yaml_schema_parser *p, void *items, size_t index,
                         const yaml_mark_t *marks)
{
        const struct profile_health_command *c = &((struct profile_health_command *)items)[index];
        const char *program = c->argv[0];

        if (program[0] != '/' && strchr(program, '/')) {
                yaml_schema_path_push_key(p, "argv", 4);
                yaml_schema_path_push_index(p, 0);
                return yaml_schema_fail_mark(p, -EBADMSG, marks[0],
                                             "expected a program name or an absolute path");
        }
        return 0;
}

static int parse_commands(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                          void *base)
{
        static const struct yaml_schema_list list = {
            .what = "commands",
            .max = PROFILE_HEALTH_MAX_CHECKS,
            .element_size = sizeof(struct profile_health_command),
            .table = &command_table,
            .init = command_init,
            .check = command_check,
        };
        struct profile_health *h = base;
        void *items = h->commands;
        int r;

        (void)f;
        r = yaml_schema_parse_list(p, &list, &items, &h->n_commands);
        h->commands = items; /* also on failure: the caller frees what was parsed */
        return r;
}

static const struct yaml_schema_field health_fields[] = {
    {.key = "deadline",
     .parse = yaml_schema_parse_uint,
     .offset = offsetof(struct profile_health, deadline),
     .min = 1,
     .max = 3600},
    {.key = "units",
     .parse = parse_units,
     .offset = offsetof(struct profile_health, units),
     .count_offset = offsetof(struct profile_health, n_units),
     .max = PROFILE_HEALTH_MAX_CHECKS},
    {.key = "tcp",
     .parse = parse_tcp,
     .offset = offsetof(struct profile_health, tcp),
     .count_offset = offsetof(struct profile_health, n_tcp),
     .max = PROFILE_HEALTH_MAX_CHECKS},
    {.key = "http",
     .parse = parse_http,
     .offset = offsetof(struct profile_health, http),
     .count_offset = offsetof(struct profile_health, n_http),
     .max = PROFILE_HEALTH_MAX_CHECKS},
    {.key = "commands", .parse = parse_commands, .offset = 0},
    {.key = "server",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct profile_health, server)},
};
YAML_SCHEMA_DEFINE_TABLE(health_table, health_fields);

int profile_health_parse(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                         void *base)
{
        struct yaml_schema_field section = *f;

        section.table = &health_table;
        return yaml_schema_parse_section(p, &section, base);
}

void profile_health_init(struct profile_health *h)
{
        *h = (struct profile_health){.deadline = PROFILE_HEALTH_DEADLINE_DEFAULT};
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void profile_health_done(struct profile_health *h)
{
        strv_free(h->units, h->n_units);
        strv_free(h->tcp, h->n_tcp);
        strv_free(h->http, h->n_http);
        for (size_t i = 0; i < h->n_commands; i++)
                strv_free(h->commands[i].argv, h->commands[i].n_argv);
        free(h->commands);
        profile_health_init(h);
}

size_t profile_health_n_checks(const struct profile_health *h)
{
        return h->n_units + h->n_tcp + h->n_http + h->n_commands + (h->server ? 1 : 0);
}

void profile_health_tcp_address(const char *item, char address[static 16], uint16_t *port)
{
        const char *colon = strrchr(item, ':');
        size_t n = colon ? (size_t)(colon - item) : 0;

        if (colon)
                snprintf(address, 16, "%.*s", (int)n, item);
        else
                snprintf(address, 16, "127.0.0.1");
        *port = (uint16_t)strtoul(colon ? colon + 1 : item, NULL, 10);
}
