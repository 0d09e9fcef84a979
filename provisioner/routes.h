/* SPDX-License-Identifier: MIT */
#pragma once

/* The endpoints of nixprov serve:
 *
 *   GET  /v1/machines/{id}/profile          the profile chosen for the machine (YAML), for
 *                                           approved machines only
 *   GET  /v1/machines/{id}/profile.minisig  its signature, from the same choice
 *
 * Both carry the same strong ETag (the pair's hash: service_get_profile_etag()); a request
 * whose If-None-Match names it is answered 304 Not Modified without a body, and a profile
 * request with ?wait=SECONDS (at most ROUTES_WAIT_MAX) as well is held until the pair chosen
 * for the machine changes (http_server_wake()) or the wait ends.
 *
 *   POST /v1/enroll                         a device's keys and facts (signed JSON)
 *   POST /v1/reports                        store a signed report (idempotent per machine_id,
 *                                           enrolled key, seq)
 *   GET  /v1/machines                       the fleet                      (operator)
 *   GET  /v1/machines/{id}                  one machine and its reports    (operator)
 *   GET  /metrics                           Prometheus text                (operator)
 *   GET  /healthz                           {"ok": true}
 *
 * A profile request for an enrolled machine needs the device's proof (proof.h), else 401.
 * The operator endpoints need "Authorization: Bearer TOKEN" with the operator's token
 * (operator_token.h), else 401 with a WWW-Authenticate header.
 *
 * Every error is answered as JSON {"error": "..."} with a 4xx or 5xx status. The routes only
 * map a method and path to a service (service.h) and its result to a status; they know neither
 * libmicrohttpd (http.h's) nor the database (store.h's). */

#include <stdbool.h>
#include <stdint.h>

#include "enrollment.h"
#include "http.h"
#include "service.h"
#include "store.h"

#define ROUTES_WAIT_MAX 3600

struct routes {
        const char *data_dir; /* holds machines/ID.yaml, groups/NAME.yaml, default.yaml */
        struct store *store;
        const struct enrollment_policy *policy; /* NULL: every enrollment waits for an operator */
        struct service_rate *pending_rate;      /* of a pending machine's reports; NULL: none */
        int64_t proof_window;           /* seconds a profile request's proof may be off the clock */
        int64_t enroll_window;          /* seconds an enrollment's time may be off the clock */
        const uint8_t *operator_digest; /* OPERATOR_TOKEN_DIGEST_BYTES; NULL: operator
                                           endpoints refuse everyone */
};

/* An http_handler_fn; userdata is a struct routes. */
void routes_handle(void *userdata, const struct http_request *request,
                   struct http_response *response);
