/* SPDX-License-Identifier: MIT */
#pragma once

/* minisign-compatible keys and signatures (Ed25519, libsodium).
 *
 * Formats, as the minisign tool writes them:
 *   public key   "untrusted comment: ...\n" base64("Ed" || key_id[8] || pk[32]) "\n"
 *   secret key   "untrusted comment: ...\n" base64("Ed" || kdf "Sc"|"\0\0" || "B2" ||
 *                salt[32] || opslimit_le64 || memlimit_le64 ||
 *                (key_id[8] || sk[64] || checksum[32]) xor'ed with the scrypt stream) "\n"
 *   signature    "untrusted comment: ...\n" base64(alg "ED"|"Ed" || key_id[8] || sig[64]) "\n"
 *                "trusted comment: ...\n" base64(global_sig[64]) "\n"
 * "ED" signs BLAKE2b-512(message) (prehashed, the default); "Ed" (legacy) signs the message.
 * The global signature covers sig[64] || trusted comment.
 *
 * Every parser here takes untrusted bytes and is fuzzed (tests/fuzz/fuzz-minisig.c). Nothing
 * here prints, reads a terminal or touches the file system. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define MINISIGN_KEY_ID_BYTES 8
#define MINISIGN_PUBLIC_KEY_BYTES 32
#define MINISIGN_SECRET_KEY_BYTES 64
#define MINISIGN_SIGNATURE_BYTES 64
#define MINISIGN_COMMENT_MAX 1024 /* bytes of a comment line's text, as minisign allows */
#define MINISIGN_FILE_MAX 8192    /* larger key or signature files are refused (-E2BIG) */
/* The longest untrusted comment written (keys and signatures): minisign reads that line with a
 * 1024-byte fgets(), so "untrusted comment: " + text + "\n" must fit in 1023 bytes. Parsing
 * still accepts up to MINISIGN_COMMENT_MAX. */
#define MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX 1003
/* The scrypt parameters written (minisign's, libsodium's "sensitive": ~1 GiB and a second or
 * more per derivation), and the largest ones accepted from a secret key file (-E2BIG above). */
#define MINISIGN_KDF_OPSLIMIT 33554432ULL
#define MINISIGN_KDF_MEMLIMIT 1073741824ULL
#define MINISIGN_KDF_OPSLIMIT_MAX (4 * MINISIGN_KDF_OPSLIMIT)
#define MINISIGN_KDF_MEMLIMIT_MAX (2 * MINISIGN_KDF_MEMLIMIT)

struct minisign_public_key {
        uint8_t key_id[MINISIGN_KEY_ID_BYTES];
        uint8_t key[MINISIGN_PUBLIC_KEY_BYTES];
};

/* Allocated with sodium_malloc (guarded, locked); free with minisign_secret_key_free(), which
 * wipes it. */
struct minisign_secret_key {
        uint8_t key_id[MINISIGN_KEY_ID_BYTES];
        uint8_t key[MINISIGN_SECRET_KEY_BYTES]; /* libsodium's seed || public key layout */
};

struct minisign_signature {
        bool prehashed; /* "ED" (true) or legacy "Ed" (false) */
        uint8_t key_id[MINISIGN_KEY_ID_BYTES];
        uint8_t signature[MINISIGN_SIGNATURE_BYTES];
        char trusted_comment[MINISIGN_COMMENT_MAX + 1];
        uint8_t global_signature[MINISIGN_SIGNATURE_BYTES];
};

/* The key id as minisign prints it: 16 uppercase hex digits of the little-endian number. */
#define MINISIGN_KEY_ID_STRING_MAX 17
char *minisign_key_id_to_string(const uint8_t key_id[static MINISIGN_KEY_ID_BYTES],
                                char buf[static MINISIGN_KEY_ID_STRING_MAX]);

/* Makes a new key pair. *ret_secret belongs to the caller. Returns 0 or -ENOMEM. */
int minisign_generate(struct minisign_public_key *ret_public,
                      struct minisign_secret_key **ret_secret);

struct minisign_secret_key *minisign_secret_key_free(struct minisign_secret_key *key);
DEFINE_POINTER_CLEANUP(minisign_secret_key, minisign_secret_key_free)

/* Parses a public key: a whole .pub file (comment line, then the base64 line) or the bare
 * base64 line as given to "minisign -P". Returns 0, -E2BIG, or -EBADMSG when malformed (an
 * algorithm other than "Ed" included). */
int minisign_public_key_parse(const char *text, size_t size, struct minisign_public_key *ret);

/* Formats a public key file ("untrusted comment: minisign public key ID\nBASE64\n"). The
 * string belongs to the caller. */
int minisign_public_key_format(const struct minisign_public_key *key, char **ret_text);

/* Returns true when the secret key file in text is encrypted (needs a password), false when it
 * was written unencrypted (minisign -W), or a negative errno when it is not a secret key. */
int minisign_secret_key_is_encrypted(const char *text, size_t size);

/* Parses a secret key file. password is NULL for an unencrypted key (and ignored for one).
 * Returns 0, -E2BIG (file too large, or scrypt parameters above the _MAX ones), -EBADMSG
 * (malformed), -ENOKEY (encrypted but no password given; returned before any key derivation),
 * -EKEYREJECTED (wrong password or corrupted: the checksum does not match, or the public half
 * does not belong to the seed), -EOPNOTSUPP (unknown algorithm), or -ENOMEM (also when scrypt
 * cannot get its memory). The checksum of an unencrypted key may be all zeros: "minisign -G -W"
 * writes none. *ret belongs to the caller. */
int minisign_secret_key_parse(const char *text, size_t size, const char *password,
                              struct minisign_secret_key **ret);

/* Formats a secret key file, encrypted with scrypt (minisign's parameters) when password is
 * not NULL, unencrypted otherwise, with the file's untrusted comment (what "minisign -G -c"
 * sets): a single line of at most MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX bytes (-EINVAL, -E2BIG
 * otherwise); NULL picks the default. The text belongs to the caller, who should wipe it.
 * Returns 0, -ENOMEM (also when scrypt cannot get its memory), -EINVAL or -E2BIG. */
int minisign_secret_key_format_with_comment(const struct minisign_secret_key *key,
                                            const char *password, const char *comment,
                                            char **ret_text, size_t *ret_size);

/* Signs message. trusted_comment and untrusted_comment must be single lines (no CR or LF) of at
 * most MINISIGN_COMMENT_MAX and MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX bytes (-EINVAL, -E2BIG
 * otherwise); NULL picks minisign's defaults: "signature from minisign secret key" and
 * "timestamp:NOW" followed by "\thashed" when prehashed (minisign puts "\tfile:NAME" between
 * them; the library does not know the file name, so callers signing a file pass that comment
 * themselves). prehashed selects "ED" (true, the default everywhere) or legacy "Ed". Returns
 * the .minisig text, which belongs to the caller. */
int minisign_sign(const struct minisign_secret_key *key, const uint8_t *message, size_t size,
                  const char *trusted_comment, const char *untrusted_comment, bool prehashed,
                  char **ret_text);

/* Parses a .minisig file. Returns 0, -E2BIG, -EBADMSG (malformed) or -EOPNOTSUPP (unknown
 * algorithm). */
int minisign_signature_parse(const char *text, size_t size, struct minisign_signature *ret);

/* Verifies sig over message with key: the key id must match (-ENOKEY otherwise), the signature
 * over the message must verify (-EKEYREJECTED), and the global signature over the signature and
 * trusted comment must verify (-EKEYREJECTED). Returns 0 only when all three hold. */
int minisign_verify(const struct minisign_public_key *key, const struct minisign_signature *sig,
                    const uint8_t *message, size_t size);
