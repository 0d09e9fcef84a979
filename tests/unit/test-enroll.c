/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "devicekey.h"
#include "enroll.h"
#include "fileio.h"
#include "identify.h"
#include "signedjson.h"
#include "util.h"

static char dir[] = "/tmp/nixprov-test-enroll-XXXXXX";
static struct devicekey *key;

static int setup(void **state)
{
        (void)state;
        if (!mkdtemp(dir))
                return -1;
        return devicekey_load_or_create(dir, &key, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        (void)state;
        key = devicekey_free(key);
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static struct identity test_identity(void)
{
        struct identity id = {
            .machine_id = "0123456789abcdef0123456789abcdef",
            .hostname = "edge-1",
            .system = "x86_64-linux",
            .cpus = 4,
            .memory_bytes = UINT64_C(8) << 30,
            .macs = {"52:54:00:12:34:56", "52:54:00:ab:cd:ef"},
            .n_macs = 2,
        };
        return id;
}

static void test_request(void **state)
{
        struct identity id = test_identity();
        uint8_t token_key[32], proof[32], message[96], decoded[32];
        _cleanup_free_ char *body = NULL, *plain = NULL;
        char sign[DEVICEKEY_PUBLIC_BASE64_MAX], box[DEVICEKEY_PUBLIC_BASE64_MAX];
        json_t *json, *macs;
        size_t size, n;

        (void)state;
        assert_int_equal(enroll_request(&id, key, NULL, 1700000000, &plain, &size), 0);
        json = json_loads(plain, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(json);
        assert_null(json_object_get(json, "token_proof"));
        json_decref(json);

        memset(token_key, 7, sizeof(token_key));
        assert_int_equal(enroll_request(&id, key, token_key, 1700000000, &body, &size), 0);
        assert_int_equal(size, strlen(body));
        /* Signed by the key it carries, for enrollment only. */
        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_ENROLL, body, size, key->sign_public),
                         0);
        assert_int_equal(signedjson_verify(SIGNEDJSON_CONTEXT_REPORT, body, size, key->sign_public),
                         -EKEYREJECTED);

        json = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(json);
        assert_string_equal(json_string_value(json_object_get(json, "machine_id")), id.machine_id);
        assert_string_equal(json_string_value(json_object_get(json, "hostname")), "edge-1");
        assert_string_equal(json_string_value(json_object_get(json, "system")), "x86_64-linux");
        assert_int_equal(json_integer_value(json_object_get(json, "cpus")), 4);
        assert_int_equal(json_integer_value(json_object_get(json, "memory")), INT64_C(8) << 30);
        assert_int_equal(json_integer_value(json_object_get(json, "time")), 1700000000);
        macs = json_object_get(json, "macs");
        assert_int_equal(json_array_size(macs), 2);
        assert_string_equal(json_string_value(json_array_get(macs, 1)), "52:54:00:ab:cd:ef");
        assert_string_equal(json_string_value(json_object_get(json, "sign_key")),
                            devicekey_public_to_base64(key->sign_public, sign));
        assert_string_equal(json_string_value(json_object_get(json, "box_key")),
                            devicekey_public_to_base64(key->box_public, box));

        /* token_proof = BLAKE2b-256(machine_id || sign_key || box_key) keyed with the token's. */
        memcpy(message, id.machine_id, 32);
        memcpy(message + 32, key->sign_public, 32);
        memcpy(message + 64, key->box_public, 32);
        crypto_generichash(proof, sizeof(proof), message, sizeof(message), token_key,
                           sizeof(token_key));
        const char *p = json_string_value(json_object_get(json, "token_proof"));
        assert_non_null(p);
        assert_int_equal(base64_decode_strict(p, strlen(p), decoded, sizeof(decoded), &n), 0);
        assert_int_equal(n, 32);
        assert_memory_equal(decoded, proof, 32);
        json_decref(json);
}

static void test_request_refuses(void **state)
{
        struct identity id = test_identity();
        char *body = NULL;
        size_t size;

        (void)state;
        id.machine_id[5] = '\0';
        assert_int_equal(enroll_request(&id, key, NULL, 0, &body, &size), -EINVAL);
        assert_int_equal(enroll_request(NULL, key, NULL, 0, &body, &size), -EINVAL);
        assert_null(body);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_request),
            cmocka_unit_test(test_request_refuses),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
