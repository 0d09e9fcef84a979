/* SPDX-License-Identifier: MIT */
#pragma once

/* The profile's health: section, what the agent checks after it switched to the new system:
 *
 *   health:
 *     deadline: 60                        # seconds for every check to pass (1..3600, default 60)
 *     units: [sshd.service, nginx.service]   # systemd units that must be active
 *     tcp: [22, "127.0.0.1:8080"]         # ports that must accept: PORT (on 127.0.0.1) or
 * IPV4:PORT http: ["http://127.0.0.1:8080/healthz"]   # must answer 2xx (http:// or https://)
 *     commands:                           # must exit 0; argv, no shell
 *       - argv: [/run/current-system/sw/bin/test, -e, /run/booted-system]
 *         timeout: 10                     # seconds per attempt (1..3600, default 30)
 *     server: true                        # the device must reach its provisioning server again
 *
 * Parsed with the rest of the profile (profile.c), as strictly. In detail: at most
 * PROFILE_HEALTH_MAX_CHECKS items in each list; unit names [A-Za-z0-9:_.@\-]+ (at most 255
 * bytes, not starting with '-'); an IPv4 address as four decimal numbers; ports 1..65535; URLs
 * http:// or https://, a host of [A-Za-z0-9.-] or an [IPv6] literal, an optional port, and a
 * path of [A-Za-z0-9/._~%?=&+:@-], at most PROFILE_HEALTH_URL_MAX bytes; argv of at most
 * PROFILE_HEALTH_MAX_ARGS non-empty items, argv[0] a program name or an absolute path. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROFILE_HEALTH_MAX_CHECKS 32
#define PROFILE_HEALTH_MAX_ARGS 64
#define PROFILE_HEALTH_URL_MAX 2048
#define PROFILE_HEALTH_DEADLINE_DEFAULT 60
#define PROFILE_HEALTH_COMMAND_TIMEOUT_DEFAULT 30

struct profile_health_command {
        char **argv;
        size_t n_argv;
        uint64_t timeout; /* seconds per attempt */
};

struct profile_health {
        uint64_t deadline; /* seconds */
        char **units;
        size_t n_units;
        char **tcp; /* "PORT" or "IPV4:PORT", as checked */
        size_t n_tcp;
        char **http;
        size_t n_http;
        struct profile_health_command *commands;
        size_t n_commands;
        bool server;
};

struct yaml_schema_parser;
struct yaml_schema_field;

/* The field parser of the health: section (profile.c's table), into the struct profile_health
 * at base + f->offset. */
int profile_health_parse(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                         void *base);
/* The defaults of a profile without health: (no check, the default deadline). */
void profile_health_init(struct profile_health *h);
/* Frees what h holds. */
void profile_health_done(struct profile_health *h);
/* The number of checks (units, ports, URLs, commands, and the server). */
size_t profile_health_n_checks(const struct profile_health *h);
/* Splits a checked tcp item into its address (127.0.0.1 for a bare port) and port. */
void profile_health_tcp_address(const char *item, char address[static 16], uint16_t *port);
