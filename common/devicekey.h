/* SPDX-License-Identifier: MIT */
#pragma once

/* The device's own keys, made on the device on its first run and never leaving it: an Ed25519
 * signing key pair (crypto_sign, for reports and enrollment) and an X25519 box key pair
 * (crypto_box, to which operators seal secrets with crypto_box_seal). No printing.
 *
 * Files, in the agent's state directory (0700):
 *
 *   device-sign.key   0600   "nixprov device key: ed25519 secret\n" BASE64(64-byte secret key) "\n"
 *   device-sign.pub   0644   "nixprov device key: ed25519 public\n" BASE64(32-byte public key) "\n"
 *   device-box.key    0600   "nixprov device key: x25519 secret\n"  BASE64(32-byte secret key) "\n"
 *   device-box.pub    0644   "nixprov device key: x25519 public\n"  BASE64(32-byte public key) "\n"
 *
 * BASE64 is standard base64 with padding. A secret file is created with its final mode
 * (write_file_atomic() with WRITE_FILE_EXCLUSIVE: O_EXCL|O_NOFOLLOW, linked into place) and is
 * never replaced; the public halves are derived from the secret ones on every load, and a missing
 * or different .pub file is (re)written from them. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "macro.h"

#define DEVICEKEY_SIGN_SECRET_FILE "device-sign.key"
#define DEVICEKEY_SIGN_PUBLIC_FILE "device-sign.pub"
#define DEVICEKEY_BOX_SECRET_FILE "device-box.key"
#define DEVICEKEY_BOX_PUBLIC_FILE "device-box.pub"
#define DEVICEKEY_FILE_MAX 1024
/* The base64 text of a 32-byte public key, with its NUL. */
#define DEVICEKEY_PUBLIC_BASE64_MAX 45

/* Lives in sodium_malloc() memory (guarded, locked where the system allows); freed and wiped
 * with devicekey_free(). */
struct devicekey {
        uint8_t sign_public[crypto_sign_PUBLICKEYBYTES];
        uint8_t sign_secret[crypto_sign_SECRETKEYBYTES];
        uint8_t box_public[crypto_box_PUBLICKEYBYTES];
        uint8_t box_secret[crypto_box_SECRETKEYBYTES];
};

/* Loads the device keys from state_dir, creating each pair that is missing (the directory must
 * exist). *ret belongs to the caller (devicekey_free()); *ret_created (may be NULL) says whether
 * a pair was made now. Returns 0, -EBADMSG (a key file that is not one), -EEXIST (a public file
 * without its secret one: the secret key was lost, refuse to make another silently), or a
 * negative errno from the file system or libsodium (-EIO). */
int devicekey_load_or_create(const char *state_dir, struct devicekey **ret, bool *ret_created);

/* Wipes and frees k. Accepts NULL; returns NULL. */
struct devicekey *devicekey_free(struct devicekey *k);
DEFINE_POINTER_CLEANUP(devicekey, devicekey_free)

/* Base64 (standard, padded) of a 32-byte public key into out. Returns out. */
char *devicekey_public_to_base64(const uint8_t key[static 32],
                                 char out[static DEVICEKEY_PUBLIC_BASE64_MAX]);

/* Parses a box public key as "nixprov-agent id" prints it: the base64 of 32 bytes, or a whole
 * device-box.pub file. Returns 0 or -EBADMSG. */
int devicekey_box_public_parse(const char *text, size_t size, uint8_t ret_key[static 32]);

/* Opens a crypto_box_seal() box sealed to this device's box key. On success *ret_plain is
 * sodium_malloc() memory of *ret_size + 1 bytes (a NUL after the plaintext) that the caller wipes
 * and frees with sodium_free(). Returns 0, -EBADMSG (sealed to another key, or changed), or
 * -ENOMEM. */
int devicekey_open_sealed(const struct devicekey *k, const uint8_t *sealed, size_t sealed_size,
                          uint8_t **ret_plain, size_t *ret_size);
