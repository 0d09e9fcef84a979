/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the report body POST /v1/reports takes (report_body_parse), after the
 * JSON parse the server does. Nothing may crash, leak or hang; a report that parses must hold
 * exactly what the protocol allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "machine_id.h"
#include "report_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char problem[REPORT_BODY_PROBLEM_MAX];
        struct report_body report;
        json_t *json;

        json = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json)
                return 0;
        if (report_body_parse(json, &report, problem) == 0) {
                if (!machine_id_is_canonical(report.machine_id) || report.seq < 0 ||
                    report.time < 0 || (report.has_serial && report.serial < 0) ||
                    !report.phase[0] || strlen(report.phase) >= REPORT_BODY_PHASE_MAX ||
                    !report.status)
                        abort();
        } else if (!memchr(problem, '\0', sizeof(problem)))
                abort();
        json_decref(json);
        return 0;
}
