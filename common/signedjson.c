/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "signedjson.h"
#include "util.h"

#define SIGNEDJSON_MEMBER ",\"signature\":\""

static bool signedjson_context_is_valid(const char *context)
{
        return context && *context && !strchr(context, '\n');
}

/* CONTEXT "\n" M, where M is message_size bytes of body followed by '}'. */
static int signedjson_message(const char *context, const char *body, size_t message_size,
                              uint8_t **ret_message, size_t *ret_size)
{
        size_t context_size = strlen(context), size;
        uint8_t *message;

        if (message_size > SIGNEDJSON_MAX)
                return -E2BIG;
        size = context_size + 1 + message_size + 1;
        message = malloc(size);
        if (!message)
                return -ENOMEM;
        memcpy(message, context, context_size);
        message[context_size] = '\n';
        memcpy(message + context_size + 1, body, message_size);
        message[size - 1] = '}';
        *ret_message = message;
        *ret_size = size;
        return 0;
}

int signedjson_sign(const char *context, const char *json, size_t size,
                    const uint8_t secret_key[static crypto_sign_SECRETKEYBYTES], char **ret_body,
                    size_t *ret_size)
{
        _cleanup_free_ uint8_t *message = NULL;
        uint8_t signature[crypto_sign_BYTES];
        char signature_base64[SIGNEDJSON_SIGNATURE_BASE64 + 1];
        size_t message_size, body_size;
        char *body;
        int r;

        if (!signedjson_context_is_valid(context) || !json || size < 3 || json[0] != '{' ||
            json[size - 1] != '}')
                return -EINVAL;
        if (size > SIGNEDJSON_MAX)
                return -E2BIG;

        r = signedjson_message(context, json, size - 1, &message, &message_size);
        if (r < 0)
                return r;
        if (crypto_sign_detached(signature, NULL, message, message_size, secret_key) != 0)
                return -EIO;
        (void)sodium_bin2base64(signature_base64, sizeof(signature_base64), signature,
                                sizeof(signature), sodium_base64_VARIANT_ORIGINAL);

        body_size = size - 1 + SIGNEDJSON_SUFFIX_SIZE;
        body = malloc(body_size + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body, json, size - 1);
        memcpy(body + size - 1, SIGNEDJSON_MEMBER, strlen(SIGNEDJSON_MEMBER));
        memcpy(body + size - 1 + strlen(SIGNEDJSON_MEMBER), signature_base64,
               SIGNEDJSON_SIGNATURE_BASE64);
        memcpy(body + body_size - 2, "\"}", 3); /* with the NUL */
        *ret_body = body;
        *ret_size = body_size;
        return 0;
}

int signedjson_split(const char *body, size_t size, size_t *ret_message_size,
                     uint8_t ret_signature[static crypto_sign_BYTES])
{
        const char *member, *signature_base64;
        uint8_t signature[crypto_sign_BYTES];
        size_t n;

        if (!body)
                return -EINVAL;
        if (size > SIGNEDJSON_MAX + SIGNEDJSON_SUFFIX_SIZE)
                return -E2BIG;
        /* At least "{" and one member before the signature: {"a":1,"signature":"..."} */
        member = size >= SIGNEDJSON_SUFFIX_SIZE + 2 ? body + size - SIGNEDJSON_SUFFIX_SIZE : NULL;
        if (!member || body[0] != '{' || body[size - 2] != '"' || body[size - 1] != '}' ||
            memcmp(member, SIGNEDJSON_MEMBER, strlen(SIGNEDJSON_MEMBER)) != 0) {
                /* A "signature" member of another shape is a malformed one, not a missing one:
                 * the difference tells an old agent from a broken one. */
                if (memmem(body, size, SIGNEDJSON_MEMBER, strlen(SIGNEDJSON_MEMBER)))
                        return -EBADMSG;
                return -ENOMSG;
        }
        signature_base64 = member + strlen(SIGNEDJSON_MEMBER);
        if (base64_decode_strict(signature_base64, SIGNEDJSON_SIGNATURE_BASE64, signature,
                                 sizeof(signature), &n) < 0 ||
            n != sizeof(signature))
                return -EBADMSG;
        memcpy(ret_signature, signature, sizeof(signature));
        *ret_message_size = (size_t)(member - body);
        return 0;
}

int signedjson_verify(const char *context, const char *body, size_t size,
                      const uint8_t public_key[static crypto_sign_PUBLICKEYBYTES])
{
        _cleanup_free_ uint8_t *message = NULL;
        uint8_t signature[crypto_sign_BYTES];
        size_t message_size, n;
        int r;

        if (!signedjson_context_is_valid(context))
                return -EINVAL;
        r = signedjson_split(body, size, &n, signature);
        if (r < 0)
                return r;
        r = signedjson_message(context, body, n, &message, &message_size);
        if (r < 0)
                return r;
        if (crypto_sign_verify_detached(signature, message, message_size, public_key) != 0)
                return -EKEYREJECTED;
        return 0;
}
