/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for what POST /v1/enroll and POST /v1/reports read from the network before
 * anything is stored: the signature's place (signedjson_split), the JSON, the enrollment's
 * members (enrollment_request_parse) and the signature check with the key the body carries; and
 * the same bytes as an enrollment policy file. Nothing may crash, leak or hang; a request that
 * parses must hold exactly what the protocol allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enrollment.h"
#include "signedjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const struct enrollment_request *r)
{
        size_t i;
        json_t *mac;

        if (strlen(r->machine_id) != 32 || strlen(r->hostname) < 1 ||
            strlen(r->hostname) > ENROLLMENT_HOSTNAME_MAX || strlen(r->system) < 1 ||
            strlen(r->system) > ENROLLMENT_SYSTEM_MAX || r->cpus < 1 || r->memory < 0 ||
            r->time < 0 || json_array_size(r->macs) > ENROLLMENT_MACS_MAX ||
            !json_is_object(r->facts))
                abort();
        json_array_foreach(r->macs, i, mac)
                if (!enrollment_mac_is_valid(json_string_value(mac)))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *body = (const char *)data;
        uint8_t signature[crypto_sign_BYTES];
        struct enrollment_request request;
        struct enrollment_policy *policy = NULL;
        struct profile_error error;
        char problem[ENROLLMENT_PROBLEM_MAX];
        json_t *json;
        size_t n;
        int r;

        if (sodium_init() < 0)
                abort();

        r = signedjson_split(body, size, &n, signature);
        if (r == 0 && (n >= size || body[0] != '{'))
                abort();

        json = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
        if (json) {
                memset(problem, 'X', sizeof(problem));
                r = enrollment_request_parse(json, &request, problem);
                if (r == 0) {
                        check_request(&request);
                        (void)signedjson_verify(SIGNEDJSON_CONTEXT_ENROLL, body, size,
                                                request.sign_key);
                        (void)signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size,
                                                request.sign_key);
                        enrollment_request_done(&request);
                } else if (r == -EBADMSG && (!memchr(problem, 0, sizeof(problem)) || !*problem))
                        abort();
                json_decref(json);
        }

        memset(&error, 'X', sizeof(error));
        r = enrollment_policy_parse(body, size, "fuzz.yaml", &policy, &error);
        if (r < 0) {
                if (policy || !memchr(error.message, 0, sizeof(error.message)))
                        abort();
        } else {
                for (size_t i = 0; i < policy->n_machine_ids; i++)
                        if (strlen(policy->machine_ids[i]) != 32)
                                abort();
                for (size_t i = 0; i < policy->n_macs; i++)
                        if (!enrollment_mac_is_valid(policy->macs[i]))
                                abort();
                enrollment_policy_free(policy);
        }
        return 0;
}
