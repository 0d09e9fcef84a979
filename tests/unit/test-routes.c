/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enrollment.h"
#include "http.h"
#include "machine_id.h"
#include "operator_token.h"
#include "profile.h"
#include "proof.h"
#include "routes.h"
#include "signedjson.h"
#include "util.h"

#define M1 "0123456789abcdef0123456789abcdef"
#define M2 "fedcba9876543210fedcba9876543210"
#define M3 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define M1_PROFILE "/v1/machines/" M1 "/profile"
#define MAC "52:54:00:12:34:56"
#define TOKEN "correct horse battery staple"

/* A device: its keys, as the agent makes them. */
struct device {
        uint8_t sign_public[crypto_sign_PUBLICKEYBYTES], sign_secret[crypto_sign_SECRETKEYBYTES];
        uint8_t box_public[crypto_box_PUBLICKEYBYTES], box_secret[crypto_box_SECRETKEYBYTES];
        char sign_b64[64], box_b64[64];
};

static void device_init(struct device *d)
{
        crypto_sign_keypair(d->sign_public, d->sign_secret);
        crypto_box_keypair(d->box_public, d->box_secret);
        sodium_bin2base64(d->sign_b64, sizeof(d->sign_b64), d->sign_public, 32,
                          sodium_base64_VARIANT_ORIGINAL);
        sodium_bin2base64(d->box_b64, sizeof(d->box_b64), d->box_public, 32,
                          sodium_base64_VARIANT_ORIGINAL);
}

struct fixture {
        char dir[64];
        struct store *store;
        struct routes routes;
        struct http_response response;
        json_t *answer;
        uint8_t operator_digest[OPERATOR_TOKEN_DIGEST_BYTES];
        const char *authorization;   /* sent with every request() */
        char proof[PROOF_VALUE_MAX]; /* X-Nixprov-Proof of every request() ("": none) */
};

#define OPERATOR_TOKEN "unit-test-operator-token"
#define OPERATOR_AUTHORIZATION "Bearer " OPERATOR_TOKEN

static struct fixture *fixture_new(void)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char *db, *profile;
        FILE *file;

        assert_non_null(f);
        strcpy(f->dir, "/tmp/nixprov-test-routes-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_true(asprintf(&db, "%s/nixprov.db", f->dir) > 0);
        assert_int_equal(store_open(db, &f->store), 0);
        free(db);
        assert_true(asprintf(&profile, "%s/default.yaml", f->dir) > 0);
        file = fopen(profile, "w");
        assert_non_null(file);
        fputs("profile: default\n", file);
        fclose(file);
        free(profile);
        operator_token_digest(OPERATOR_TOKEN, strlen(OPERATOR_TOKEN), f->operator_digest);
        f->routes = (struct routes){.data_dir = f->dir,
                                    .store = f->store,
                                    .proof_window = PROOF_WINDOW_DEFAULT,
                                    .enroll_window = ENROLLMENT_WINDOW_DEFAULT,
                                    .operator_digest = f->operator_digest};
        f->authorization = OPERATOR_AUTHORIZATION;
        return f;
}

static void fixture_reset_response(struct fixture *f)
{
        free(f->response.body);
        f->response = (struct http_response){};
        json_decref(f->answer);
        f->answer = NULL;
}

static void fixture_free(struct fixture *f)
{
        char cmd[128];

        fixture_reset_response(f);
        store_close(f->store);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
}

/* Sends a request; returns the status, with the JSON answer in f->answer. */
static unsigned request(struct fixture *f, const char *method, const char *path, const char *body,
                        size_t size)
{
        struct http_request request = {.method = method,
                                       .path = path,
                                       .body = body ?: "",
                                       .body_size = body ? size : 0,
                                       .authorization = f->authorization,
                                       .proof = f->proof[0] ? f->proof : NULL};

        fixture_reset_response(f);
        routes_handle(&f->routes, &request, &f->response);
        assert_non_null(f->response.body);
        f->answer = json_loadb(f->response.body, f->response.body_size, 0, NULL);
        return f->response.status;
}

static unsigned post_signed(struct fixture *f, const char *path, const char *context,
                            const struct device *d, const char *json)
{
        char *body;
        size_t size;
        unsigned status;

        assert_int_equal(signedjson_sign(context, json, strlen(json), d->sign_secret, &body, &size),
                         0);
        status = request(f, "POST", path, body, size);
        free(body);
        return status;
}

static const char *error_of(struct fixture *f)
{
        const char *e = json_string_value(json_object_get(f->answer, "error"));

        assert_non_null(e);
        return e;
}

/* The devices' clock: now, and never the same second twice (a re-enrollment after a reset in
 * the same second would be a replay). */
static long long device_time(void)
{
        static long long last;
        long long now = (long long)time(NULL);

        last = now > last ? now : last + 1;
        return last;
}

/* The enrollment JSON of device d as machine_id, with extra members (may be ""). */
static char *enrollment(const char *machine_id, const struct device *d, const char *extra)
{
        char *json;

        assert_true(asprintf(&json,
                             "{\"machine_id\":\"%s\",\"hostname\":\"edge-1\",\"macs\":[\"%s\"],"
                             "\"system\":\"x86_64-linux\",\"cpus\":4,\"memory\":8589934592,"
                             "\"sign_key\":\"%s\",\"box_key\":\"%s\",\"time\":%lld%s}",
                             machine_id, "02:00:00:00:00:01", d->sign_b64, d->box_b64,
                             device_time(), extra) > 0);
        return json;
}

static unsigned enroll(struct fixture *f, const char *machine_id, const struct device *d,
                       const char *extra)
{
        char *json = enrollment(machine_id, d, extra);
        unsigned status = post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, d, json);

        free(json);
        return status;
}

static const char *state_of(struct fixture *f)
{
        return json_string_value(json_object_get(f->answer, "state"));
}

static char *report_json(const char *machine_id, unsigned seq, const char *status)
{
        char *json;

        assert_true(asprintf(&json,
                             "{\"machine_id\":\"%s\",\"seq\":%u,\"phase\":\"fetch\","
                             "\"status\":\"%s\",\"time\":1800000000}",
                             machine_id, seq, status) > 0);
        return json;
}

static unsigned report(struct fixture *f, const char *machine_id, const struct device *d,
                       unsigned seq, const char *status)
{
        char *json = report_json(machine_id, seq, status);
        unsigned code = post_signed(f, "/v1/reports", SIGNEDJSON_CONTEXT_REPORT, d, json);

        free(json);
        return code;
}

static json_t *machine_row(struct fixture *f, const char *machine_id)
{
        char path[64];

        snprintf(path, sizeof(path), "/v1/machines/%s", machine_id);
        assert_int_equal(request(f, "GET", path, NULL, 0), 200);
        return f->answer;
}

static void test_machine_ids(void **state)
{
        static const struct {
                const char *id;
                bool valid;
        } cases[] = {
            {"", false},
            {"../../../../../../etc/passwd", false},
            {"0123456789ABCDEF0123456789ABCDEF", false},
            {"0123456789abcdef0123456789abcde", false},
            {"0123456789abcdef0123456789abcdef0", false},
            {"0123456789abcdef0123456789abcdeg", false},
            {"0123456789abcdef0123456789abcde/", false},
            {"0123456789abcdef0123456789abcde.", false},
            {"0123456789abcdef0123456789abcdef", true},
            {"ffffffffffffffffffffffffffffffff", true},
        };
        (void)state;

        assert_false(machine_id_is_canonical(NULL));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(machine_id_is_canonical(cases[i].id), cases[i].valid);
}

static void test_group_names(void **state)
{
        static const struct {
                const char *name;
                bool valid;
        } cases[] = {
            {"", false},
            {"..", false},
            {".hidden", false},
            {"-flag", false},
            {"_x", false},
            {"a/b", false},
            {"../secret", false},
            {"Web", false},
            {"web server", false},
            {"web%2f", false},
            {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, /* 65 */
            {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},   /* 64 */
            {"web", true},
            {"0", true},
            {"site-a.rack_2", true},
        };
        (void)state;

        assert_false(profile_group_name_valid(NULL));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(profile_group_name_valid(cases[i].name), cases[i].valid);
}

static void test_listen_addresses(void **state)
{
        static const struct {
                const char *listen;
                int r;
                uint16_t port;
        } cases[] = {
            {"", -EINVAL, 0},
            {"127.0.0.1", -EINVAL, 0},
            {"localhost:8470", -EINVAL, 0},
            {"127.0.0.1:", -EINVAL, 0},
            {"127.0.0.1:65536", -EINVAL, 0},
            {"127.0.0.1:-1", -EINVAL, 0},
            {"127.0.0.1:08470", -EINVAL, 0},
            {"127.0.0.1:84 70", -EINVAL, 0},
            {"::1:8470", -EINVAL, 0},
            {"[::1]8470", -EINVAL, 0},
            {"[127.0.0.1]:8470", -EINVAL, 0},
            {":8470", -EINVAL, 0},
            {"127.0.0.1:0", 0, 0},
            {"127.0.0.1:8470", 0, 8470},
            {"0.0.0.0:65535", 0, 65535},
            {"[::1]:8470", 0, 8470},
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct http_listen listen = {.port = 1};

                assert_int_equal(http_listen_parse(cases[i].listen, &listen), cases[i].r);
                if (cases[i].r == 0)
                        assert_int_equal(listen.port, cases[i].port);
                else
                        assert_int_equal(listen.port, 1); /* untouched on failure */
        }
}

static void test_enroll_refusals(void **state)
{
        struct fixture *f = fixture_new();
        struct device d, other;
        char *json, *body, *bad;
        size_t size;
        (void)state;

        device_init(&d);
        device_init(&other);

        /* Unsigned: 401, before anything is parsed. */
        json = enrollment(M1, &d, "");
        assert_int_equal(request(f, "POST", "/v1/enroll", json, strlen(json)), 401);
        assert_string_equal(error_of(f), "enrollment must be signed by the device key");

        /* A signature member that is not 64 bytes of base64: 400. */
        assert_int_equal(signedjson_sign(SIGNEDJSON_CONTEXT_ENROLL, json, strlen(json),
                                         d.sign_secret, &body, &size),
                         0);
        bad = strdup(body);
        bad[size - 4] = '!';
        assert_int_equal(request(f, "POST", "/v1/enroll", bad, size), 400);
        assert_non_null(strstr(error_of(f), "malformed signature"));
        free(bad);

        /* Signed by another key than the one it carries: 401. */
        assert_int_equal(post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, &other, json),
                         401);
        assert_string_equal(error_of(f), "signature does not verify with the enclosed sign_key");
        /* Signed for reports: 401 too. */
        assert_int_equal(post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_REPORT, &d, json), 401);
        free(body);
        free(json);

        /* Each field: 400 naming it. */
        static const struct {
                const char *json;
                const char *field;
        } bad_fields[] = {
            {"{\"machine_id\":\"0123456789ABCDEF0123456789ABCDEF\"}", "'machine_id'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"\"}", "'hostname'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"a\\nb\"}", "'hostname'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[\"52:54:00:12:34:5G\"]}",
             "'macs'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[\"52:54:00:AB:34:56\"]}",
             "'macs'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":{}}", "'macs'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":5}", "'system'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":\"s\","
             "\"cpus\":0}",
             "'cpus'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":\"s\","
             "\"cpus\":1,\"memory\":-1}",
             "'memory'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":\"s\","
             "\"cpus\":1,\"memory\":0,\"sign_key\":\"AAAA\"}",
             "'sign_key'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":\"s\","
             "\"cpus\":1,\"memory\":0,\"sign_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
             "\"}",
             "'box_key'"},
            {"{\"machine_id\":\"" M1 "\",\"hostname\":\"h\",\"macs\":[],\"system\":\"s\","
             "\"cpus\":1,\"memory\":0,\"sign_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
             "\","
             "\"box_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
             "'time'"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_fields); i++) {
                assert_int_equal(
                    post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, &d, bad_fields[i].json),
                    400);
                assert_non_null(strstr(error_of(f), bad_fields[i].field));
        }
        json = enrollment(M1, &d, ",\"token_proof\":\"AAAA\"");
        assert_int_equal(post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, &d, json), 400);
        assert_non_null(strstr(error_of(f), "'token_proof'"));
        free(json);
        json = enrollment(M1, &d, ",\"hostname\":\"twice\"");
        assert_int_equal(post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, &d, json), 400);
        assert_non_null(strstr(error_of(f), "malformed JSON"));
        free(json);

        /* Past what a signature may cover (with a --max-body above it): 413. */
        body = calloc(1, SIGNEDJSON_MAX + 200);
        memset(body, ' ', SIGNEDJSON_MAX + 199);
        assert_int_equal(request(f, "POST", "/v1/enroll", body, SIGNEDJSON_MAX + 199), 413);
        assert_int_equal(request(f, "POST", "/v1/reports", body, SIGNEDJSON_MAX + 199), 413);
        free(body);

        assert_int_equal(request(f, "GET", "/v1/enroll", NULL, 0), 405);
        /* Nothing was stored. */
        assert_int_equal(request(f, "GET", "/v1/machines", NULL, 0), 200);
        assert_int_equal(json_array_size(json_object_get(f->answer, "machines")), 0);
        assert_true(json_is_null(json_object_get(f->answer, "next")));
        fixture_free(f);
}

static void test_enroll_states(void **state)
{
        struct fixture *f = fixture_new();
        struct device d, clone;
        json_t *m;
        (void)state;

        device_init(&d);
        device_init(&clone);

        /* Without a policy: pending, with its keys and facts. */
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_string_equal(state_of(f), "pending");
        assert_string_equal(json_string_value(json_object_get(f->answer, "machine_id")), M1);
        m = machine_row(f, M1);
        assert_string_equal(json_string_value(json_object_get(m, "state")), "pending");
        assert_string_equal(json_string_value(json_object_get(m, "hostname")), "edge-1");
        assert_string_equal(json_string_value(json_object_get(m, "sign_key")), d.sign_b64);
        assert_string_equal(json_string_value(json_object_get(m, "box_key")), d.box_b64);
        assert_true(json_is_integer(json_object_get(m, "enrolled_at")));
        assert_true(json_is_null(json_object_get(m, "decided_by")));
        assert_true(json_is_null(json_object_get(m, "conflict_at")));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "facts"), "cpus")),
                         4);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "facts"), "memory")),
                         8589934592LL);

        /* The same keys again: still pending. */
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_string_equal(state_of(f), "pending");

        /* Other keys under the same id: 409, noted, nothing else changes. */
        assert_int_equal(enroll(f, M1, &clone, ""), 409);
        assert_string_equal(error_of(f),
                            "machine " M1 " is enrolled with another device key (a cloned or "
                            "reinstalled disk?): an operator can allow the new key with "
                            "'nixprov fleet reset " M1 "'");
        m = machine_row(f, M1);
        assert_true(json_is_integer(json_object_get(m, "conflict_at")));
        assert_string_equal(json_string_value(json_object_get(m, "sign_key")), d.sign_b64);
        assert_string_equal(json_string_value(json_object_get(m, "state")), "pending");

        /* Approved by an operator, then revoked: the answer says so with a 200. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_APPROVE, 5, NULL), 0);
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_string_equal(state_of(f), "approved");
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_REVOKE, 6, NULL), 0);
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_string_equal(state_of(f), "revoked");

        /* Reset: the next enrollment is taken as new, with the new key. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_RESET, 7, NULL), 0);
        assert_int_equal(enroll(f, M1, &clone, ""), 200);
        assert_string_equal(state_of(f), "pending");
        m = machine_row(f, M1);
        assert_string_equal(json_string_value(json_object_get(m, "sign_key")), clone.sign_b64);
        assert_true(json_is_null(json_object_get(m, "conflict_at")));
        fixture_free(f);
}

static void test_enroll_policy(void **state)
{
        struct fixture *f = fixture_new();
        struct device d1, d2, d3, d4;
        char *ids[] = {(char *)M1}, *macs[] = {(char *)MAC};
        uint8_t token_key[32], proof[32];
        char proof_b64[64], extra[128];
        struct enrollment_policy policy = {
            .machine_ids = ids,
            .n_machine_ids = 1,
            .macs = macs,
            .n_macs = 1,
            .token_keys = token_key,
            .n_token_keys = 1,
        };
        char *json;
        json_t *m;
        (void)state;

        device_init(&d1);
        device_init(&d2);
        device_init(&d3);
        device_init(&d4);
        enrollment_token_key((const uint8_t *)TOKEN, strlen(TOKEN), token_key);
        f->routes.policy = &policy;

        assert_int_equal(enroll(f, M1, &d1, ""), 200);
        assert_string_equal(state_of(f), "approved");
        m = machine_row(f, M1);
        assert_string_equal(json_string_value(json_object_get(m, "decided_by")),
                            "policy:machine-id");

        /* By MAC: the device lists it among others. */
        assert_true(asprintf(&json,
                             "{\"machine_id\":\"%s\",\"hostname\":\"h\",\"macs\":"
                             "[\"02:00:00:00:00:09\",\"%s\"],\"system\":\"aarch64-linux\","
                             "\"cpus\":1,\"memory\":0,\"sign_key\":\"%s\",\"box_key\":\"%s\","
                             "\"time\":%lld}",
                             M2, MAC, d2.sign_b64, d2.box_b64, device_time()) > 0);
        assert_int_equal(post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, &d2, json), 200);
        assert_string_equal(state_of(f), "approved");
        free(json);
        m = machine_row(f, M2);
        assert_string_equal(json_string_value(json_object_get(m, "decided_by")), "policy:mac");

        /* A wrong token proof: pending. */
        enrollment_token_key((const uint8_t *)"wrong", 5, proof);
        enrollment_token_proof(proof, M3, d3.sign_public, d3.box_public, proof);
        sodium_bin2base64(proof_b64, sizeof(proof_b64), proof, 32, sodium_base64_VARIANT_ORIGINAL);
        snprintf(extra, sizeof(extra), ",\"token_proof\":\"%s\"", proof_b64);
        assert_int_equal(enroll(f, M3, &d3, extra), 200);
        assert_string_equal(state_of(f), "pending");
        /* A proof made for other keys (replayed by an impostor): pending. */
        enrollment_token_proof(token_key, M3, d4.sign_public, d4.box_public, proof);
        sodium_bin2base64(proof_b64, sizeof(proof_b64), proof, 32, sodium_base64_VARIANT_ORIGINAL);
        snprintf(extra, sizeof(extra), ",\"token_proof\":\"%s\"", proof_b64);
        assert_int_equal(enroll(f, M3, &d3, extra), 200);
        assert_string_equal(state_of(f), "pending");
        /* The right proof, from the same (pending) device: approved now. */
        enrollment_token_proof(token_key, M3, d3.sign_public, d3.box_public, proof);
        sodium_bin2base64(proof_b64, sizeof(proof_b64), proof, 32, sodium_base64_VARIANT_ORIGINAL);
        snprintf(extra, sizeof(extra), ",\"token_proof\":\"%s\"", proof_b64);
        assert_int_equal(enroll(f, M3, &d3, extra), 200);
        assert_string_equal(state_of(f), "approved");
        m = machine_row(f, M3);
        assert_string_equal(json_string_value(json_object_get(m, "decided_by")), "policy:token");

        /* The policy never undoes a revocation. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_REVOKE, 9, NULL), 0);
        assert_int_equal(enroll(f, M1, &d1, ""), 200);
        assert_string_equal(state_of(f), "revoked");
        fixture_free(f);
}

static void test_reports(void **state)
{
        struct fixture *f = fixture_new();
        struct device d, other, reinstalled;
        char *json, *body, *bad;
        size_t size;
        json_t *m, *reports;
        (void)state;

        device_init(&d);
        device_init(&other);
        device_init(&reinstalled);

        /* Unsigned: 401. */
        json = report_json(M1, 1, "ok");
        assert_int_equal(request(f, "POST", "/v1/reports", json, strlen(json)), 401);
        assert_string_equal(error_of(f), "reports must be signed by the device key");
        /* Malformed signature member: 400. */
        assert_int_equal(signedjson_sign(SIGNEDJSON_CONTEXT_REPORT, json, strlen(json),
                                         d.sign_secret, &body, &size),
                         0);
        bad = strdup(body);
        bad[size - 3] = 'A'; /* the last base64 character of "==" padding */
        assert_int_equal(request(f, "POST", "/v1/reports", bad, size), 400);
        free(bad);
        free(body);
        free(json);
        /* Invalid report, signed: 400 as before. */
        assert_int_equal(report(f, M1, &d, 1, "maybe"), 400);
        assert_non_null(strstr(error_of(f), "'status'"));
        /* Unknown: 403. */
        assert_int_equal(report(f, M1, &d, 1, "ok"), 403);
        assert_string_equal(error_of(f), "machine " M1 " is not enrolled");

        /* Pending: stored. */
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_int_equal(report(f, M1, &d, 1, "started"), 200);
        assert_false(json_is_true(json_object_get(f->answer, "duplicate")));
        assert_int_equal(report(f, M1, &d, 1, "started"), 200);
        assert_true(json_is_true(json_object_get(f->answer, "duplicate")));
        /* Same seq, other content: 409. */
        assert_int_equal(report(f, M1, &d, 1, "failed"), 409);
        assert_string_equal(error_of(f),
                            "report 1 of machine " M1 " was already stored with other content");
        /* Signed by another key: 401. */
        assert_int_equal(report(f, M1, &other, 2, "ok"), 401);
        assert_string_equal(error_of(f), "report signature does not verify with the key machine " M1
                                         " enrolled");
        /* Signed for enrollment: 401. */
        json = report_json(M1, 2, "ok");
        assert_int_equal(post_signed(f, "/v1/reports", SIGNEDJSON_CONTEXT_ENROLL, &d, json), 401);
        free(json);

        /* Approved: stored; seq 3 before seq 2, and the latest is the last stored. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_APPROVE, 1, NULL), 0);
        assert_int_equal(report(f, M1, &d, 3, "progress"), 200);
        assert_int_equal(report(f, M1, &d, 2, "ok"), 200);
        m = machine_row(f, M1);
        assert_string_equal(json_string_value(json_object_get(m, "status")), "ok");

        /* Revoked: 403, nothing stored. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_REVOKE, 2, NULL), 0);
        assert_int_equal(report(f, M1, &d, 4, "ok"), 403);
        assert_string_equal(error_of(f), "machine " M1 " is revoked");

        /* Reset and re-enrolled with new keys: seq 1 again is a new report. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_RESET, 3, NULL), 0);
        assert_int_equal(report(f, M1, &d, 5, "ok"), 403);
        assert_string_equal(error_of(f), "machine " M1 " is not enrolled");
        assert_int_equal(enroll(f, M1, &reinstalled, ""), 200);
        assert_int_equal(report(f, M1, &reinstalled, 1, "failed"), 200);
        assert_false(json_is_true(json_object_get(f->answer, "duplicate")));
        /* The old key is not the machine's any more. */
        assert_int_equal(report(f, M1, &d, 6, "ok"), 401);

        m = machine_row(f, M1);
        reports = json_object_get(m, "reports");
        assert_int_equal(json_array_size(reports), 4);
        assert_string_equal(json_string_value(json_object_get(m, "status")), "failed");
        /* Stored as received, signature included. */
        assert_true(json_is_string(json_object_get(json_array_get(reports, 0), "signature")));
        fixture_free(f);
}

static const char *header_of(const struct fixture *f, const char *name);

/* Signs the next request()s as device d of machine_id would, for method and target, at time. */
static void sign_as(struct fixture *f, const struct device *d, const char *machine_id,
                    const char *method, const char *target, int64_t time)
{
        assert_int_equal(proof_build(d->sign_secret, method, target, machine_id, time, f->proof),
                         0);
}

static void test_profile_by_state(void **state)
{
        struct fixture *f = fixture_new();
        struct device d;
        (void)state;

        device_init(&d);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 403);
        assert_string_equal(error_of(f),
                            "machine " M1 " is not enrolled: it must POST /v1/enroll first");
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile.minisig", NULL, 0), 403);

        assert_int_equal(enroll(f, M1, &d, ""), 200);
        sign_as(f, &d, M1, "GET", "/v1/machines/" M1 "/profile", time(NULL));
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 403);
        assert_string_equal(error_of(f), "machine " M1 " is waiting for an operator's approval "
                                         "('nixprov fleet approve " M1 "')");

        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_APPROVE, 1, NULL), 0);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 200);
        assert_memory_equal(f->response.body, "profile: default\n", 17);

        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_REVOKE, 2, NULL), 0);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 403);
        assert_string_equal(error_of(f), "machine " M1 " is revoked");

        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_RESET, 3, NULL), 0);
        f->proof[0] = '\0';
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 403);
        assert_non_null(strstr(error_of(f), "is not enrolled"));
        fixture_free(f);
}

/* An enrolled machine's profile requests need its device's proof: fresh, for this request and
 * machine, signed by its enrolled key. */
static void test_profile_proof(void **state)
{
        struct fixture *f = fixture_new();
        struct device d, other;
        int64_t now = time(NULL);
        char reason[256];
        (void)state;

        device_init(&d);
        device_init(&other);
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_int_equal(enroll(f, M2, &other, ""), 200);
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_APPROVE, 1, NULL), 0);

        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        assert_string_equal(error_of(f), "machine " M1 " is enrolled: its requests must carry "
                                         "X-Nixprov-Proof, signed by its device key");
        assert_string_equal(header_of(f, "WWW-Authenticate"), "Nixprov-Proof");
        strcpy(f->proof, "v1 " M1 " 1 AAAA");
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        assert_string_equal(
            error_of(f), "malformed X-Nixprov-Proof: expected 'v1 MACHINE-ID UNIXTIME BASE64SIG'");
        sign_as(f, &d, M1, "GET", M1_PROFILE, now - 301);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        snprintf(reason, sizeof(reason),
                 "the proof's time %lld is more than 300 s from the server's clock (",
                 (long long)(now - 301));
        assert_memory_equal(error_of(f), reason, strlen(reason));
        sign_as(f, &d, M1, "GET", M1_PROFILE, now + 301);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        sign_as(f, &other, M1, "GET", M1_PROFILE, now);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        assert_string_equal(error_of(f), "the proof does not verify with the enrolled key of "
                                         "machine " M1 " (for GET " M1_PROFILE ")");
        sign_as(f, &d, M1, "GET", "/v1/machines/" M1 "/profile.minisig", now);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        sign_as(f, &other, M2, "GET", M1_PROFILE, now);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        assert_string_equal(error_of(f), "the proof is for machine " M2 ", not " M1);
        /* The pending M2 is refused for its state only once its proof is good. */
        f->proof[0] = '\0';
        assert_int_equal(request(f, "GET", "/v1/machines/" M2 "/profile", NULL, 0), 401);

        sign_as(f, &d, M1, "GET", M1_PROFILE, now - 299);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 200);
        f->routes.proof_window = 0;
        sign_as(f, &d, M1, "GET", M1_PROFILE, now - 2);
        assert_int_equal(request(f, "GET", M1_PROFILE, NULL, 0), 401);
        fixture_free(f);
}

/* A store whose every operation fails with one error, as a database that is down would. */
struct failing_store {
        struct store base;
        int error;
};

static int failing_error(struct store *store)
{
        return ((struct failing_store *)store)->error;
}

static void failing_close(_unused_ struct store *store)
{
}

static int failing_get_trust(struct store *s, _unused_ const char *id,
                             _unused_ struct store_trust *ret)
{
        return failing_error(s);
}

static int failing_enroll(struct store *s, _unused_ const struct store_enrollment *e,
                          _unused_ int64_t now, _unused_ enum store_state *ret)
{
        return failing_error(s);
}

static int failing_add_report(struct store *s, _unused_ const struct store_report *r,
                              _unused_ int64_t received, _unused_ bool *ret)
{
        return failing_error(s);
}

static int failing_decide(struct store *s, _unused_ const char *id, _unused_ enum store_decision d,
                          _unused_ int64_t now, _unused_ enum store_state *ret)
{
        return failing_error(s);
}

static int failing_list(struct store *s, _unused_ const struct store_page *page,
                        _unused_ struct store_machine_list *ret)
{
        return failing_error(s);
}

static int failing_get_machine(struct store *s, _unused_ const char *id,
                               _unused_ const struct store_page *page,
                               _unused_ struct store_machine *m, _unused_ struct store_history *h)
{
        return failing_error(s);
}

static int failing_stats(struct store *s, _unused_ struct store_stats *ret)
{
        return failing_error(s);
}

static const struct store_ops failing_ops = {
    .name = "failing",
    .close = failing_close,
    .get_trust = failing_get_trust,
    .enroll = failing_enroll,
    .add_report = failing_add_report,
    .decide = failing_decide,
    .list_machines = failing_list,
    .get_machine = failing_get_machine,
    .stats = failing_stats,
};

/* A database that cannot answer is never "not enrolled" or "unknown": 503 when it is busy, 500
 * when it failed, for every endpoint that reads it. */
static void test_database_errors(void **state)
{
        static const struct {
                int error;
                unsigned status;
        } errors[] = {{-EBUSY, 503}, {-EIO, 500}, {-EBADMSG, 500}, {-ENOMEM, 500}};
        struct fixture *f = fixture_new();
        struct store *real = f->store;
        struct failing_store failing = {.base.ops = &failing_ops};
        struct device d;
        (void)state;

        device_init(&d);
        f->routes.store = &failing.base;
        for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
                failing.error = errors[i].error;
                assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0),
                                 errors[i].status);
                assert_string_equal(error_of(f), "failed to read the machine's state");
                assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile.minisig", NULL, 0),
                                 errors[i].status);
                assert_int_equal(enroll(f, M1, &d, ""), errors[i].status);
                assert_string_equal(error_of(f), "failed to read the machine's state");
                assert_int_equal(report(f, M1, &d, 1, "ok"), errors[i].status);
                assert_string_equal(error_of(f), "failed to store the report");
                assert_int_equal(request(f, "GET", "/v1/machines", NULL, 0), errors[i].status);
                assert_string_equal(error_of(f), "failed to list machines");
                assert_int_equal(request(f, "GET", "/v1/machines/" M1, NULL, 0), errors[i].status);
                assert_string_equal(error_of(f), "failed to read the machine");
                assert_int_equal(request(f, "GET", "/metrics", NULL, 0), errors[i].status);
                assert_string_equal(error_of(f), "failed to read the metrics");
        }
        /* Nothing reached the real database. */
        f->routes.store = real;
        assert_int_equal(request(f, "GET", "/v1/machines", NULL, 0), 200);
        assert_int_equal(json_array_size(json_object_get(f->answer, "machines")), 0);
        assert_true(json_is_null(json_object_get(f->answer, "next")));
        fixture_free(f);
}

/* An enrolled device whose report meets a database locked by another process (nixprov fleet
 * approve, a backup) is told to come back (503), not that it is unknown. */
static void test_locked_database(void **state)
{
        struct fixture *f = fixture_new();
        struct device d;
        sqlite3 *db;
        char *path;
        (void)state;

        device_init(&d);
        assert_int_equal(enroll(f, M1, &d, ""), 200);
        assert_true(asprintf(&path, "%s/nixprov.db", f->dir) > 0);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        free(path);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

        assert_int_equal(report(f, M1, &d, 1, "ok"), 503);
        assert_string_equal(error_of(f), "failed to store the report");
        assert_int_equal(enroll(f, M1, &d, ""), 503);
        assert_string_equal(error_of(f), "failed to store the enrollment");

        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        /* Nothing was stored while locked; the same report is new now. */
        assert_int_equal(report(f, M1, &d, 1, "ok"), 200);
        assert_false(json_is_true(json_object_get(f->answer, "duplicate")));
        fixture_free(f);
}

static const char *header_of(const struct fixture *f, const char *name)
{
        for (size_t i = 0; i < f->response.n_headers; i++)
                if (streq(f->response.headers[i].name, name))
                        return f->response.headers[i].value;
        return NULL;
}

static unsigned enroll_at(struct fixture *f, const struct device *d, long long t)
{
        char *json;
        unsigned status;

        assert_true(asprintf(&json,
                             "{\"machine_id\":\"" M1 "\",\"hostname\":\"h%lld\",\"macs\":[],"
                             "\"system\":\"x86_64-linux\",\"cpus\":1,\"memory\":0,"
                             "\"sign_key\":\"%s\",\"box_key\":\"%s\",\"time\":%lld}",
                             t, d->sign_b64, d->box_b64, t) > 0);
        status = post_signed(f, "/v1/enroll", SIGNEDJSON_CONTEXT_ENROLL, d, json);
        free(json);
        return status;
}

/* An enrollment's time: within the window of the server's clock, newer than the last one. */
static void test_enroll_freshness(void **state)
{
        struct fixture *f = fixture_new();
        long long now = (long long)time(NULL);
        char expected[256];
        struct device d, other;
        (void)state;

        device_init(&d);
        device_init(&other);
        assert_int_equal(enroll_at(f, &d, now - 301), 400);
        assert_memory_equal(error_of(f), "enrollment time ", 16);
        assert_non_null(strstr(error_of(f), " is more than 300 s from the server's clock ("));
        assert_non_null(strstr(error_of(f), "): a replay, or the device's clock is wrong"));
        assert_int_equal(enroll_at(f, &d, now + 301), 400);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1, NULL, 0), 404);

        assert_int_equal(enroll_at(f, &d, now - 10), 200);
        assert_int_equal(enroll_at(f, &d, now - 10), 200); /* the device asking again */
        assert_int_equal(enroll_at(f, &d, now - 5), 200);
        assert_int_equal(enroll_at(f, &d, now - 10), 409);
        snprintf(expected, sizeof(expected),
                 "enrollment time %lld is not newer than the last accepted enrollment of "
                 "machine " M1 " (%lld): a replay; nothing changed",
                 now - 10, now - 5);
        assert_string_equal(error_of(f), expected);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1, NULL, 0), 200);
        snprintf(expected, sizeof(expected), "h%lld", now - 5);
        assert_string_equal(json_string_value(json_object_get(f->answer, "hostname")), expected);
        /* Another key in the same second is a conflict, not a replay. */
        assert_int_equal(enroll_at(f, &other, now - 5), 409);
        assert_non_null(strstr(error_of(f), "is enrolled with another device key"));
        /* After a reset, the last enrollment replayed is refused; a newer one is taken. */
        assert_int_equal(store_decide(f->store, M1, STORE_DECISION_RESET, 1, NULL), 0);
        assert_int_equal(enroll_at(f, &d, now - 5), 409);
        assert_int_equal(enroll_at(f, &other, now - 4), 200);
        fixture_free(f);
}

/* Every operator endpoint needs the operator's bearer token; the device endpoints do not. */
static void test_operator_auth(void **state)
{
        static const char *const paths[] = {"/v1/machines", "/v1/machines/" M1, "/metrics"};
        static const struct {
                const char *authorization;
                const char *error;
                const char *challenge;
        } refused[] = {
            {NULL,
             "operator endpoint: send 'Authorization: Bearer TOKEN' with the operator token of "
             "nixprov serve",
             "Bearer realm=\"nixprov\""},
            {"Basic " OPERATOR_TOKEN,
             "operator endpoint: send 'Authorization: Bearer TOKEN' with the operator token of "
             "nixprov serve",
             "Bearer realm=\"nixprov\""},
            {"Bearer ",
             "operator endpoint: send 'Authorization: Bearer TOKEN' with the operator "
             "token of nixprov serve",
             "Bearer realm=\"nixprov\""},
            {"Bearer " OPERATOR_TOKEN "x", "the bearer token is not the operator token",
             "Bearer realm=\"nixprov\", error=\"invalid_token\""},
            {"Bearer unit-test-operator-toke", "the bearer token is not the operator token",
             "Bearer realm=\"nixprov\", error=\"invalid_token\""},
        };
        struct fixture *f = fixture_new();
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                for (size_t j = 0; j < ELEMENTSOF(refused); j++) {
                        f->authorization = refused[j].authorization;
                        assert_int_equal(request(f, "GET", paths[i], NULL, 0), 401);
                        assert_string_equal(error_of(f), refused[j].error);
                        assert_string_equal(header_of(f, "WWW-Authenticate"), refused[j].challenge);
                }
                f->authorization = "bearer  " OPERATOR_TOKEN; /* the scheme is case-blind */
                assert_int_equal(request(f, "GET", paths[i], NULL, 0),
                                 streq(paths[i], "/v1/machines/" M1) ? 404 : 200);
        }
        /* Without a configured token, nobody is an operator. */
        f->routes.operator_digest = NULL;
        f->authorization = OPERATOR_AUTHORIZATION;
        assert_int_equal(request(f, "GET", "/v1/machines", NULL, 0), 401);
        /* The device endpoints and /healthz need no token. */
        f->authorization = NULL;
        assert_int_equal(request(f, "GET", "/healthz", NULL, 0), 200);
        assert_int_equal(request(f, "GET", "/v1/machines/" M1 "/profile", NULL, 0), 403);
        fixture_free(f);
}

static void test_etag_matches(void **state)
{
        const char *tag = "\"0123abcd\"";

        (void)state;
        assert_true(http_etag_matches("\"0123abcd\"", tag));
        assert_true(http_etag_matches("W/\"0123abcd\"", tag));
        assert_true(http_etag_matches("\"x\", \"0123abcd\"", tag));
        assert_true(http_etag_matches(" ,\t\"x\",W/\"0123abcd\" ", tag));
        assert_true(http_etag_matches("*", tag));
        assert_true(http_etag_matches("\"0123abcd\"", "W/\"0123abcd\""));
        assert_false(http_etag_matches(NULL, tag));
        assert_false(http_etag_matches("", tag));
        assert_false(http_etag_matches("\"0123abc\"", tag));
        assert_false(http_etag_matches("\"0123abcde\"", tag));
        assert_false(http_etag_matches("0123abcd", tag));
        assert_false(http_etag_matches("\"0123abcd", tag));
        assert_false(http_etag_matches("garbage, \"0123abcd\"", tag));
        assert_false(http_etag_matches("\"x\"", "not-a-tag"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_enroll_refusals),  cmocka_unit_test(test_enroll_states),
            cmocka_unit_test(test_enroll_policy),    cmocka_unit_test(test_reports),
            cmocka_unit_test(test_profile_by_state), cmocka_unit_test(test_machine_ids),
            cmocka_unit_test(test_group_names),      cmocka_unit_test(test_listen_addresses),
            cmocka_unit_test(test_database_errors),  cmocka_unit_test(test_locked_database),
            cmocka_unit_test(test_operator_auth),    cmocka_unit_test(test_profile_proof),
            cmocka_unit_test(test_enroll_freshness), cmocka_unit_test(test_etag_matches),
            cmocka_unit_test(test_enroll_refusals),  cmocka_unit_test(test_enroll_states),
            cmocka_unit_test(test_enroll_policy),    cmocka_unit_test(test_reports),
            cmocka_unit_test(test_profile_by_state), cmocka_unit_test(test_machine_ids),
            cmocka_unit_test(test_group_names),      cmocka_unit_test(test_listen_addresses),
            cmocka_unit_test(test_database_errors),  cmocka_unit_test(test_locked_database),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
