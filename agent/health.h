/* SPDX-License-Identifier: MIT */
#pragma once

/* The health checks of a profile's health: section, run after a switch: every check is tried,
 * those that fail are tried again after a backoff (HEALTH_BACKOFF_INITIAL_MS doubling to
 * HEALTH_BACKOFF_MAX_MS) until all pass or the deadline has passed. Each check's outcome (ok,
 * attempts, the last error) is kept for the report.
 *
 *  - unit U:     SYSTEMCTL is-active --quiet U exits 0
 *  - tcp A:P:    a TCP connection to A:P is accepted (within HEALTH_CONNECT_TIMEOUT_MS)
 *  - http URL:   a GET answers 2xx (net/fetch: one attempt per round, redirects to http(s))
 *  - command:    argv exits 0 within its timeout (no shell; the rebuild's clean environment,
 *                stdin /dev/null, its own process group killed at the timeout)
 *  - server:     GET SERVER/healthz answers 2xx from one of the configured http(s) servers
 *
 * Never logs; the caller reports. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "profile_health.h"

#define HEALTH_CHECKS_MAX (4 * PROFILE_HEALTH_MAX_CHECKS + 1)
#define HEALTH_NAME_MAX 256
#define HEALTH_ERROR_MAX 256
#define HEALTH_BACKOFF_INITIAL_MS 250
#define HEALTH_BACKOFF_MAX_MS 5000
#define HEALTH_CONNECT_TIMEOUT_MS 2000
#define HEALTH_UNIT_TIMEOUT_SEC 10

struct health_check {
        char name[HEALTH_NAME_MAX];
        bool ok;
        unsigned attempts;
        char error[HEALTH_ERROR_MAX]; /* of the last attempt; "" when ok */
};

struct health_result {
        struct health_check checks[HEALTH_CHECKS_MAX];
        size_t n_checks;
        size_t n_failed;
        uint64_t duration_ms;
};

struct health_options {
        const struct profile_health *health;
        const char *systemctl;              /* a program name or an absolute path */
        const char *path;                   /* PATH for the programs; NULL: the rebuild's */
        const struct fetch_options *server; /* for server: true (its http(s) mirrors) */
};

/* Runs the checks. Returns 0 when every check passed, -ETIMEDOUT when some still failed at the
 * deadline (ret says which), -ENOMEM. ret is always filled in as far as it got. */
int health_run(const struct health_options *o, struct health_result *ret);

/* "tcp 127.0.0.1:22 (connection refused, 5 attempts)" for the first failed check, into buf. */
char *health_first_failure(const struct health_result *r, char *buf, size_t size);
