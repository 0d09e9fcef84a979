/* SPDX-License-Identifier: MIT */
#pragma once

/* The device's proof on a profile request: the header
 *
 *   X-Nixprov-Proof: v1 MACHINE-ID UNIXTIME BASE64SIG
 *
 * where MACHINE-ID is 32 lowercase hex digits, UNIXTIME the device's clock in decimal seconds
 * (no sign, no leading zero) and BASE64SIG the standard padded base64 of an Ed25519 signature
 * by the device's signing key over
 *
 *   "nixprov-proof-v1\n" METHOD "\n" TARGET "\n" MACHINE-ID "\n" UNIXTIME
 *
 * TARGET is the path and query as the server decodes them (percent-escapes decoded), e.g.
 * "/v1/machines/ID/profile?groups=edge,web". One space between the fields, nothing else. The
 * server checks it against the machine's enrolled key and its own clock. Pure functions: no
 * I/O, no printing. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define PROOF_HEADER "X-Nixprov-Proof"
#define PROOF_CONTEXT "nixprov-proof-v1"
#define PROOF_WINDOW_DEFAULT 300 /* seconds either side of the server's clock */
#define PROOF_WINDOW_MAX 86400
#define PROOF_VALUE_MAX 160 /* "v1 " 32 " " 19 " " 88, with the NUL */
#define PROOF_TARGET_MAX 2048
#define PROOF_METHOD_MAX 16

struct proof {
        char machine_id[33];
        int64_t time;
        uint8_t signature[crypto_sign_BYTES];
};

/* The header's value for a request, signed with sign_secret (crypto_sign's 64-byte secret key)
 * at time, into value. Returns 0, or -EINVAL for a machine id that is not canonical, a negative
 * time, an empty method or target, or one longer than the limits above. */
int proof_build(const uint8_t sign_secret[static crypto_sign_SECRETKEYBYTES], const char *method,
                const char *target, const char *machine_id, int64_t time,
                char value[static PROOF_VALUE_MAX]);

/* Parses a header's value (size bytes, no NUL needed). Returns 0, or -EBADMSG for anything but
 * the exact form above. */
int proof_parse(const char *value, size_t size, struct proof *ret);

/* Checks a parsed proof for a request to target by method for machine_id, at the server's time
 * now: -EXDEV when it names another machine, -ETIME when its time is more than window seconds
 * from now, -EKEYREJECTED when the signature does not verify with sign_public, -EINVAL for
 * arguments past the limits; else 0. */
int proof_verify(const struct proof *proof,
                 const uint8_t sign_public[static crypto_sign_PUBLICKEYBYTES], const char *method,
                 const char *target, const char *machine_id, int64_t now, int64_t window);
