/* SPDX-License-Identifier: MIT */
#pragma once

/* Signed JSON: how a device signs what it sends the server (its enrollment and its reports) with
 * its Ed25519 key, so that the body stays one plain JSON object and is stored and resent byte
 * for byte.
 *
 * The signer takes a compact JSON object M (its last byte '}', at least one member, no member
 * named "signature") and sends
 *
 *   M without its final '}'  +  ,"signature":"BASE64"}
 *
 * where BASE64 (standard, padded, 88 characters) is the detached Ed25519 signature of
 * CONTEXT "\n" M. The receiver finds the signature at the fixed place at the end, rebuilds M,
 * and checks the signature before it parses anything. The context names what is signed
 * ("nixprov-report-v1", "nixprov-enroll-v1"), so a signature over one kind of message can never
 * pass for another. Because the splice is at the very end and base64 holds no '"', the suffix
 * can only be the top-level object's last member; a body that is valid JSON with a duplicate
 * "signature" member is the parser's to refuse (JSON_REJECT_DUPLICATES). No printing. */

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define SIGNEDJSON_CONTEXT_REPORT "nixprov-report-v1"
#define SIGNEDJSON_CONTEXT_ENROLL "nixprov-enroll-v1"
/* ,"signature":"  +  88 base64 characters  +  "}  */
#define SIGNEDJSON_SIGNATURE_BASE64 88
#define SIGNEDJSON_SUFFIX_SIZE (sizeof(",\"signature\":\"") - 1 + SIGNEDJSON_SIGNATURE_BASE64 + 2)
/* The largest message signed or checked. */
#define SIGNEDJSON_MAX (1024 * 1024)

/* Signs the compact JSON object json (size bytes) for context with secret_key (a crypto_sign
 * secret key). Returns 0 with the signed body (malloc'd, NUL-terminated, *ret_size bytes without
 * the NUL), -EINVAL (not an object ending in '}', an empty object, or a context that is empty or
 * holds a newline), -E2BIG (over SIGNEDJSON_MAX), or -ENOMEM. */
int signedjson_sign(const char *context, const char *json, size_t size,
                    const uint8_t secret_key[static crypto_sign_SECRETKEYBYTES], char **ret_body,
                    size_t *ret_size);

/* Splits a signed body: *ret_message_size is the size of M without its closing '}' (M is
 * body[0 .. *ret_message_size) followed by "}"), and the signature is decoded into
 * ret_signature. Returns 0, -ENOMSG (the body does not end with a signature member: unsigned),
 * -EBADMSG (a signature member at the end that is not 64 bytes of strict base64), or -E2BIG. */
int signedjson_split(const char *body, size_t size, size_t *ret_message_size,
                     uint8_t ret_signature[static crypto_sign_BYTES]);

/* Checks that body is signed for context by public_key. Returns 0, -ENOMSG (unsigned),
 * -EBADMSG (a malformed signature member), -EKEYREJECTED (a well-formed signature that does not
 * verify: another key, or a changed body), -E2BIG, -EINVAL, or -ENOMEM. */
int signedjson_verify(const char *context, const char *body, size_t size,
                      const uint8_t public_key[static crypto_sign_PUBLICKEYBYTES]);
