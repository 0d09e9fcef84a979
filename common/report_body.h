/* SPDX-License-Identifier: MIT */
#pragma once

/* The body of a report as the server takes it (POST /v1/reports): a JSON object
 *
 *   {"machine_id": 32 lowercase hex, "seq": integer >= 0, "phase": [a-z][a-z0-9_-]{0,31},
 *    "status": "started" | "progress" | "ok" | "failed", "time": seconds >= 0,
 *    "serial": integer >= 0 (optional), "message": string, "error": string,
 *    "counts": {"substituted", "built", "built_remote", "downloaded_bytes": integers >= 0},
 *    "timings": {NAME: number >= 0, ...}, "log_tail": string or [string, ...],
 *    "signature": ... (signedjson.h; not checked here)}
 *
 * Members not named here are kept (the body is stored as received) but not checked. No
 * printing; reachable by a fuzzer. */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define REPORT_BODY_PHASE_MAX 32

/* A validated report; the strings are borrowed from the JSON object it was parsed from. */
struct report_body {
        const char *machine_id;
        uint64_t seq;
        int64_t time;
        const char *phase;
        const char *status;
        bool has_serial;
        uint64_t serial;
};

/* Validates json (an object parsed with JSON_REJECT_DUPLICATES) into *ret. Returns 0, or
 * -EBADMSG with *ret_problem a message for the client naming the member. ret is set only on
 * success. */
int report_body_parse(json_t *json, struct report_body *ret, const char **ret_problem);
