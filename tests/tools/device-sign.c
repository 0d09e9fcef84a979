/* SPDX-License-Identifier: MIT */
/* device-sign: a device's signature for shell tests, with the agent's own key files and signer.
 *
 *   device-sign STATE_DIR CONTEXT < JSON > SIGNED   signs a compact JSON object for CONTEXT
 *                                                   (nixprov-enroll-v1, nixprov-report-v1)
 *   device-sign STATE_DIR --keys                    prints "SIGN_KEY BOX_KEY" (base64)
 *   device-sign STATE_DIR --proof METHOD TARGET MACHINE_ID TIME
 *                                                   prints an X-Nixprov-Proof value (proof.h)
 *
 * The keys are made in STATE_DIR (which must exist) on first use. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devicekey.h"
#include "proof.h"
#include "signedjson.h"
#include "util.h"

static int print_proof(const struct devicekey *key, char **argv)
{
        char value[PROOF_VALUE_MAX];
        uint64_t time;
        int r;

        if (parse_u64(argv[3], &time) < 0 || time > INT64_MAX) {
                fprintf(stderr, "device-sign: bad time '%s'\n", argv[3]);
                return 2;
        }
        r = proof_build(key->sign_secret, argv[0], argv[1], argv[2], (int64_t)time, value);
        if (r < 0) {
                fprintf(stderr, "device-sign: proof: %s\n", strerror(-r));
                return 1;
        }
        printf("%s\n", value);
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
        _cleanup_(devicekey_freep) struct devicekey *key = NULL;
        _cleanup_free_ char *json = NULL, *signed_body = NULL;
        char sign_b64[DEVICEKEY_PUBLIC_BASE64_MAX], box_b64[DEVICEKEY_PUBLIC_BASE64_MAX];
        size_t size, signed_size;
        int r;

        if (argc != 3 && !(argc == 7 && strcmp(argv[2], "--proof") == 0)) {
                fprintf(stderr, "Usage: device-sign STATE_DIR CONTEXT|--keys < JSON\n");
                return 2;
        }
        if (sodium_init() < 0)
                return 1;
        r = devicekey_load_or_create(argv[1], &key, NULL);
        if (r < 0) {
                fprintf(stderr, "device-sign: keys in %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        if (strcmp(argv[2], "--proof") == 0)
                return print_proof(key, argv + 3);
        if (strcmp(argv[2], "--keys") == 0) {
                printf("%s %s\n", devicekey_public_to_base64(key->sign_public, sign_b64),
                       devicekey_public_to_base64(key->box_public, box_b64));
                return fflush(stdout) == 0 ? 0 : 1;
        }
        r = read_fd_bounded(STDIN_FILENO, SIGNEDJSON_MAX, &json, &size);
        if (r < 0) {
                fprintf(stderr, "device-sign: reading standard input: %s\n", strerror(-r));
                return 1;
        }
        /* A shell's $(...) or echo leaves a newline: not part of the object. */
        while (size > 0 && (json[size - 1] == '\n' || json[size - 1] == '\r'))
                size--;
        r = signedjson_sign(argv[2], json, size, key->sign_secret, &signed_body, &signed_size);
        if (r < 0) {
                fprintf(stderr, "device-sign: signing: %s\n", strerror(-r));
                return 1;
        }
        fwrite(signed_body, 1, signed_size, stdout);
        return fflush(stdout) == 0 ? 0 : 1;
}
