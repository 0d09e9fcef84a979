/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "machine_id.h"
#include "proof.h"
#include "util.h"

#define PROOF_SIGNATURE_BASE64 88 /* 64 bytes, padded */
#define PROOF_TIME_DIGITS_MAX 19
#define PROOF_MESSAGE_MAX                                                                          \
        (sizeof(PROOF_CONTEXT) + PROOF_METHOD_MAX + PROOF_TARGET_MAX + 33 +                        \
         PROOF_TIME_DIGITS_MAX + 8)

/* The signed bytes; returns their length, or -EINVAL past the limits. */
static int proof_message(const char *method, const char *target, const char *machine_id,
                         int64_t time, char out[static PROOF_MESSAGE_MAX])
{
        size_t method_size = strlen(method), target_size = strlen(target);
        int n;

        if (method_size == 0 || method_size >= PROOF_METHOD_MAX || target_size == 0 ||
            target_size > PROOF_TARGET_MAX || time < 0 || !machine_id_is_canonical(machine_id))
                return -EINVAL;
        n = snprintf(out, PROOF_MESSAGE_MAX, "%s\n%s\n%s\n%s\n%" PRId64, PROOF_CONTEXT, method,
                     target, machine_id, time);
        if (n < 0 || (size_t)n >= PROOF_MESSAGE_MAX)
                return -EINVAL;
        return n;
}

int proof_build(const uint8_t sign_secret[static crypto_sign_SECRETKEYBYTES], const char *method,
                const char *target, const char *machine_id, int64_t time,
                char value[static PROOF_VALUE_MAX])
{
        char message[PROOF_MESSAGE_MAX], signature_b64[PROOF_SIGNATURE_BASE64 + 1];
        uint8_t signature[crypto_sign_BYTES];
        int n;

        n = proof_message(method, target, machine_id, time, message);
        if (n < 0)
                return n;
        if (sodium_init() < 0 || crypto_sign_detached(signature, NULL, (const uint8_t *)message,
                                                      (size_t)n, sign_secret) != 0)
                return -EIO;
        sodium_bin2base64(signature_b64, sizeof(signature_b64), signature, sizeof(signature),
                          sodium_base64_VARIANT_ORIGINAL);
        n = snprintf(value, PROOF_VALUE_MAX, "v1 %s %" PRId64 " %s", machine_id, time,
                     signature_b64);
        return n > 0 && n < PROOF_VALUE_MAX ? 0 : -EINVAL;
}

/* A decimal number without sign or leading zero, at most INT64_MAX. */
static int proof_parse_time(const char *s, size_t size, int64_t *ret)
{
        uint64_t v = 0;

        if (size == 0 || size > PROOF_TIME_DIGITS_MAX || (s[0] == '0' && size > 1))
                return -EBADMSG;
        for (size_t i = 0; i < size; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > INT64_MAX)
                return -EBADMSG;
        *ret = (int64_t)v;
        return 0;
}

int proof_parse(const char *value, size_t size, struct proof *ret)
{
        struct proof p = {};
        const char *time_start, *time_end;
        size_t n;

        if (!value || size < 3 + 32 + 1 + 1 + 1 + PROOF_SIGNATURE_BASE64 ||
            size >= PROOF_VALUE_MAX || memcmp(value, "v1 ", 3) != 0 || value[35] != ' ')
                return -EBADMSG;
        memcpy(p.machine_id, value + 3, 32);
        p.machine_id[32] = '\0';
        if (memchr(p.machine_id, '\0', 32) || !machine_id_is_canonical(p.machine_id))
                return -EBADMSG;
        time_start = value + 36;
        time_end = memchr(time_start, ' ', size - 36);
        if (!time_end || proof_parse_time(time_start, (size_t)(time_end - time_start), &p.time) < 0)
                return -EBADMSG;
        n = size - (size_t)(time_end + 1 - value);
        if (n != PROOF_SIGNATURE_BASE64 ||
            base64_decode_strict(time_end + 1, n, p.signature, sizeof(p.signature), &n) < 0 ||
            n != sizeof(p.signature))
                return -EBADMSG;
        *ret = p;
        return 0;
}

int proof_verify(const struct proof *proof,
                 const uint8_t sign_public[static crypto_sign_PUBLICKEYBYTES], const char *method,
                 const char *target, const char *machine_id, int64_t now, int64_t window)
{
        char message[PROOF_MESSAGE_MAX];
        int n;

        if (window < 0 || window > PROOF_WINDOW_MAX)
                return -EINVAL;
        if (!streq(proof->machine_id, machine_id))
                return -EXDEV;
        n = proof_message(method, target, machine_id, proof->time, message);
        if (n < 0)
                return n;
        if (proof->time > now + window || proof->time < now - window)
                return -ETIME;
        if (sodium_init() < 0)
                return -EIO;
        if (crypto_sign_verify_detached(proof->signature, (const uint8_t *)message, (size_t)n,
                                        sign_public) != 0)
                return -EKEYREJECTED;
        return 0;
}
