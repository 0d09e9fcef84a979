/* SPDX-License-Identifier: MIT */
#pragma once

/* The endpoints of nixprov serve:
 *
 *   GET  /v1/machines/{id}/profile          the profile chosen for the machine (YAML), for
 *                                           approved machines only
 *   GET  /v1/machines/{id}/profile.minisig  its signature, from the same choice
 *   POST /v1/enroll                         a device's keys and facts (signed JSON)
 *   POST /v1/reports                        store a signed report (idempotent per machine_id,
 *                                           enrolled key, seq)
 *   GET  /v1/machines                       the fleet
 *   GET  /v1/machines/{id}                  one machine and its reports
 *   GET  /metrics                           Prometheus text
 *   GET  /healthz                           {"ok": true}
 *
 * Every error is answered as JSON {"error": "..."} with a 4xx or 5xx status. */

#include <stdbool.h>

#include "enrollment.h"
#include "http.h"
#include "store.h"

#define ROUTES_PROFILE_MAX (1024 * 1024)
#define ROUTES_SIGNATURE_MAX (8 * 1024)
#define ROUTES_GROUPS_MAX 32 /* names in ?groups= */

struct routes {
        const char *data_dir; /* holds machines/ID.yaml, groups/NAME.yaml, default.yaml */
        struct store *store;
        const struct enrollment_policy *policy; /* NULL: every enrollment waits for an operator */
};

/* An http_handler_fn; userdata is a struct routes. */
void routes_handle(void *userdata, const struct http_request *request,
                   struct http_response *response);

/* True for a group name: [a-z0-9][a-z0-9._-]{0,63}. */
bool routes_group_name_is_valid(const char *s);
