/* SPDX-License-Identifier: MIT */
#pragma once

/* The body of a report as the server takes it (POST /v1/reports): a JSON object
 *
 *   {"machine_id": 32 lowercase hex, "seq": integer >= 0, "phase": [a-z][a-z0-9_-]{0,31},
 *    "status": "started" | "progress" | "ok" | "failed", "time": seconds >= 0,
 *    "serial": integer >= 0 (optional), "message": string, "error": string,
 *    "counts": {"substituted", "built", "built_remote", "downloaded_bytes": integers >= 0},
 *    "timings": {NAME: number >= 0, ...}, "log_tail": string or [string, ...],
 *    "outcome": [a-z][a-z0-9_-]{0,31} (how an update ended: applied, rolled-back, failed,
 *    pending-reboot, confirmed, not-retried), "system", "previous_system": strings,
 *    "checks": [{"name": string, "ok": boolean, "attempts": integer >= 0, "error": string}],
 *    "signature": ... (signedjson.h; not checked here)}
 *
 * Members not named here are kept (the body is stored as received) but not checked; nesting
 * is bounded by JSON_SCHEMA_DEPTH_MAX. No printing; reachable by a fuzzer (fuzz-report). */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define REPORT_BODY_PHASE_MAX 32
#define REPORT_BODY_PROBLEM_MAX 256 /* JSON_SCHEMA_PROBLEM_MAX */

/* A validated report; the strings are borrowed from the JSON object it was parsed from. */
struct report_body {
        const char *machine_id;
        int64_t seq; /* >= 0 */
        int64_t time;
        const char *phase;
        const char *status;
        bool has_serial;
        int64_t serial;      /* >= 0 */
        const char *outcome; /* NULL when the report has none */
};

/* Validates json (an object parsed with JSON_REJECT_DUPLICATES) into *ret (json_schema.h).
 * Returns 0, or -EBADMSG with problem[] a message for the client naming the member, or -ENOMEM.
 * ret is set only on success. */
int report_body_parse(json_t *json, struct report_body *ret,
                      char problem[static REPORT_BODY_PROBLEM_MAX]);
