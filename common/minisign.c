/* SPDX-License-Identifier: MIT */
/* minisign-compatible keys and signatures. The byte layouts are minisign's (src/minisign.h
 * upstream: PubkeyStruct, SeckeyStruct, SigStruct); they are written out with explicit offsets
 * here rather than as packed structs. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "minisign.h"
#include "util.h"

#define SIG_ALG "Ed"        /* legacy: the message itself is signed */
#define SIG_ALG_HASHED "ED" /* BLAKE2b-512(message) is signed */
#define KDF_ALG_SCRYPT "Sc" /* scrypt (xsalsa208/sha256) */
#define KDF_ALG_NONE "\0\0" /* unencrypted secret key (minisign -W) */
#define CHK_ALG "B2"        /* BLAKE2b-256 checksum of the secret key */
#define ALG_BYTES 2

#define COMMENT_PREFIX "untrusted comment: "
#define TRUSTED_COMMENT_PREFIX "trusted comment: "
#define DEFAULT_SIGNATURE_COMMENT "signature from minisign secret key"
#define DEFAULT_ENCRYPTED_KEY_COMMENT "minisign encrypted secret key"
#define DEFAULT_UNENCRYPTED_KEY_COMMENT "minisign unencrypted secret key"

#define PREHASH_BYTES crypto_generichash_BYTES_MAX /* 64: BLAKE2b-512 */
#define CHECKSUM_BYTES crypto_generichash_BYTES    /* 32: BLAKE2b-256 */
#define SALT_BYTES crypto_pwhash_scryptsalsa208sha256_SALTBYTES

/* PubkeyStruct: sig_alg[2] keynum[8] pk[32] */
#define PUBLIC_BLOB_KEY_ID ALG_BYTES
#define PUBLIC_BLOB_KEY (PUBLIC_BLOB_KEY_ID + MINISIGN_KEY_ID_BYTES)
#define PUBLIC_BLOB_BYTES (PUBLIC_BLOB_KEY + MINISIGN_PUBLIC_KEY_BYTES)

/* SigStruct: sig_alg[2] keynum[8] sig[64] */
#define SIGNATURE_BLOB_KEY_ID ALG_BYTES
#define SIGNATURE_BLOB_SIG (SIGNATURE_BLOB_KEY_ID + MINISIGN_KEY_ID_BYTES)
#define SIGNATURE_BLOB_BYTES (SIGNATURE_BLOB_SIG + MINISIGN_SIGNATURE_BYTES)

/* SeckeyStruct: sig_alg[2] kdf_alg[2] chk_alg[2] kdf_salt[32] kdf_opslimit_le[8]
 * kdf_memlimit_le[8], then KeynumSK (keynum[8] sk[64] chk[32]), which is what the scrypt
 * stream is xor'ed with. */
#define SECRET_BLOB_KDF_ALG 2
#define SECRET_BLOB_CHK_ALG 4
#define SECRET_BLOB_SALT 6
#define SECRET_BLOB_OPSLIMIT (SECRET_BLOB_SALT + SALT_BYTES)
#define SECRET_BLOB_MEMLIMIT (SECRET_BLOB_OPSLIMIT + 8)
#define SECRET_BLOB_KEYNUM_SK (SECRET_BLOB_MEMLIMIT + 8)
#define SECRET_BLOB_KEY_ID SECRET_BLOB_KEYNUM_SK
#define SECRET_BLOB_KEY (SECRET_BLOB_KEY_ID + MINISIGN_KEY_ID_BYTES)
#define SECRET_BLOB_CHECKSUM (SECRET_BLOB_KEY + MINISIGN_SECRET_KEY_BYTES)
#define SECRET_BLOB_BYTES (SECRET_BLOB_CHECKSUM + CHECKSUM_BYTES)
#define KEYNUM_SK_BYTES (SECRET_BLOB_BYTES - SECRET_BLOB_KEYNUM_SK)

/* Characters of the base64 (with padding) of n bytes, without the NUL byte. */
#define BASE64_CHARS(n) (sodium_base64_ENCODED_LEN((n), sodium_base64_VARIANT_ORIGINAL) - 1)

static inline void sodium_freep(void *p)
{
        sodium_free(*(void **)p);
}
#define _cleanup_sodium_free_ _cleanup_(sodium_freep)

static int sodium_setup(void)
{
        /* Idempotent and thread-safe; picks the fastest implementations. */
        return sodium_init() < 0 ? -EIO : 0;
}

static uint64_t le64_load(const uint8_t *p)
{
        uint64_t v = 0;

        for (size_t i = 8; i > 0; i--)
                v = (v << 8) | p[i - 1];
        return v;
}

static void le64_store(uint8_t *p, uint64_t v)
{
        for (size_t i = 0; i < 8; i++, v >>= 8)
                p[i] = (uint8_t)v;
}

char *minisign_key_id_to_string(const uint8_t key_id[static MINISIGN_KEY_ID_BYTES],
                                char buf[static MINISIGN_KEY_ID_STRING_MAX])
{
        snprintf(buf, MINISIGN_KEY_ID_STRING_MAX, "%016" PRIX64, le64_load(key_id));
        return buf;
}

/* ---- Reading: lines, comments, base64 ---- */

struct line {
        const char *text;
        size_t size; /* without the line ending */
};

/* Splits text into at most max_lines lines, each ending in "\n" or "\r\n" except perhaps the
 * last. NUL bytes, a CR anywhere else, and more lines than max_lines are -EBADMSG. */
static int split_lines(const char *text, size_t size, struct line *lines, size_t max_lines,
                       size_t *ret_count)
{
        const char *p = text, *end = text + size;
        size_t count = 0;

        if (size > MINISIGN_FILE_MAX)
                return -E2BIG;
        if (size > 0 && memchr(text, '\0', size))
                return -EBADMSG;

        while (p < end) {
                const char *newline = memchr(p, '\n', (size_t)(end - p));
                size_t n = (size_t)((newline ? newline : end) - p);

                if (newline && n > 0 && p[n - 1] == '\r')
                        n--;
                if (n > 0 && memchr(p, '\r', n))
                        return -EBADMSG;
                if (count == max_lines)
                        return -EBADMSG;
                lines[count++] = (struct line){.text = p, .size = n};
                p = newline ? newline + 1 : end;
        }
        *ret_count = count;
        return 0;
}

/* Checks that line starts with prefix and returns the text after it. */
static int parse_comment_line(const struct line *line, const char *prefix, struct line *ret_comment)
{
        size_t n = strlen(prefix);

        if (line->size < n || memcmp(line->text, prefix, n) != 0)
                return -EBADMSG;
        if (line->size - n > MINISIGN_COMMENT_MAX)
                return -E2BIG;
        *ret_comment = (struct line){.text = line->text + n, .size = line->size - n};
        return 0;
}

/* Decodes a line that must be exactly the padded base64 of size bytes: every byte of the line
 * matters (base64_decode_strict() explains why the alphabet is checked by hand). */
static int decode_base64_line(const struct line *line, uint8_t *out, size_t size)
{
        size_t decoded;

        if (line->size != BASE64_CHARS(size))
                return -EBADMSG;
        if (base64_decode_strict(line->text, line->size, out, size, &decoded) < 0 ||
            decoded != size)
                return -EBADMSG;
        return 0;
}

/* ---- Writing ---- */

/* A comment we write must be one line: no CR or LF (and, being a C string, no NUL). */
static int check_comment(const char *comment, size_t max)
{
        if (strpbrk(comment, "\r\n"))
                return -EINVAL;
        if (strlen(comment) > max)
                return -E2BIG;
        return 0;
}

/* Formats "PREFIX COMMENT\nBASE64(blob)\n" into one allocation of exactly the right size, so
 * that no partial copy of a secret blob is left behind by a realloc(). */
static int format_comment_and_blob(const char *prefix, const char *comment, const uint8_t *blob,
                                   size_t blob_size, char **ret_text, size_t *ret_size)
{
        size_t head = strlen(prefix) + strlen(comment) + 1;
        size_t size = head + BASE64_CHARS(blob_size) + 1;
        char *text;

        text = malloc(size + 1);
        if (!text)
                return -ENOMEM;
        snprintf(text, head + 1, "%s%s\n", prefix, comment);
        sodium_bin2base64(text + head, BASE64_CHARS(blob_size) + 1, blob, blob_size,
                          sodium_base64_VARIANT_ORIGINAL);
        text[size - 1] = '\n';
        text[size] = '\0';

        *ret_text = text;
        if (ret_size)
                *ret_size = size;
        return 0;
}

/* ---- Key pairs ---- */

int minisign_generate(struct minisign_public_key *ret_public,
                      struct minisign_secret_key **ret_secret)
{
        struct minisign_secret_key *secret;
        struct minisign_public_key public;
        int r;

        if (!ret_public || !ret_secret)
                return -EINVAL;
        r = sodium_setup();
        if (r < 0)
                return r;

        secret = sodium_malloc(sizeof(*secret));
        if (!secret)
                return -ENOMEM;
        randombytes_buf(secret->key_id, sizeof(secret->key_id));
        if (crypto_sign_ed25519_keypair(public.key, secret->key) != 0) {
                sodium_free(secret);
                return -EIO;
        }
        memcpy(public.key_id, secret->key_id, sizeof(public.key_id));

        *ret_public = public;
        *ret_secret = secret;
        return 0;
}

struct minisign_secret_key *minisign_secret_key_free(struct minisign_secret_key *key)
{
        /* sodium_free() wipes the pages before it unmaps them. */
        sodium_free(key);
        return NULL;
}

int minisign_public_key_parse(const char *text, size_t size, struct minisign_public_key *ret)
{
        struct line lines[2], comment, *base64;
        uint8_t blob[PUBLIC_BLOB_BYTES];
        size_t count;
        int r;

        if (!text || !ret)
                return -EINVAL;
        r = split_lines(text, size, lines, ELEMENTSOF(lines), &count);
        if (r < 0)
                return r;
        if (count == 2) {
                r = parse_comment_line(&lines[0], COMMENT_PREFIX, &comment);
                if (r < 0)
                        return r;
                base64 = &lines[1];
        } else if (count == 1)
                base64 = &lines[0];
        else
                return -EBADMSG;

        r = decode_base64_line(base64, blob, sizeof(blob));
        if (r < 0)
                return r;
        if (memcmp(blob, SIG_ALG, ALG_BYTES) != 0)
                return -EBADMSG;

        memcpy(ret->key_id, blob + PUBLIC_BLOB_KEY_ID, MINISIGN_KEY_ID_BYTES);
        memcpy(ret->key, blob + PUBLIC_BLOB_KEY, MINISIGN_PUBLIC_KEY_BYTES);
        return 0;
}

int minisign_public_key_format(const struct minisign_public_key *key, char **ret_text)
{
        char comment[64], id[MINISIGN_KEY_ID_STRING_MAX];
        uint8_t blob[PUBLIC_BLOB_BYTES];

        if (!key || !ret_text)
                return -EINVAL;
        memcpy(blob, SIG_ALG, ALG_BYTES);
        memcpy(blob + PUBLIC_BLOB_KEY_ID, key->key_id, MINISIGN_KEY_ID_BYTES);
        memcpy(blob + PUBLIC_BLOB_KEY, key->key, MINISIGN_PUBLIC_KEY_BYTES);
        snprintf(comment, sizeof(comment), "minisign public key %s",
                 minisign_key_id_to_string(key->key_id, id));
        return format_comment_and_blob(COMMENT_PREFIX, comment, blob, sizeof(blob), ret_text, NULL);
}

/* BLAKE2b-256(sig_alg || keynum || sk), minisign's seckey_compute_chk(). */
static void secret_blob_checksum(const uint8_t *blob, uint8_t out[static CHECKSUM_BYTES])
{
        crypto_generichash_state state;

        crypto_generichash_init(&state, NULL, 0, CHECKSUM_BYTES);
        crypto_generichash_update(&state, blob, ALG_BYTES);
        crypto_generichash_update(&state, blob + SECRET_BLOB_KEY_ID, MINISIGN_KEY_ID_BYTES);
        crypto_generichash_update(&state, blob + SECRET_BLOB_KEY, MINISIGN_SECRET_KEY_BYTES);
        crypto_generichash_final(&state, out, CHECKSUM_BYTES);
        sodium_memzero(&state, sizeof(state));
}

/* The scrypt stream for KeynumSK, xor'ed into the blob in place (encrypts and decrypts). */
static int secret_blob_xor_stream(uint8_t *blob, const char *password)
{
        _cleanup_sodium_free_ uint8_t *stream = NULL;

        stream = sodium_malloc(KEYNUM_SK_BYTES);
        if (!stream)
                return -ENOMEM;
        /* Fails only when the memory for the parameters cannot be had (or they are absurd,
         * which the caller has ruled out). */
        if (crypto_pwhash_scryptsalsa208sha256(stream, KEYNUM_SK_BYTES, password, strlen(password),
                                               blob + SECRET_BLOB_SALT,
                                               le64_load(blob + SECRET_BLOB_OPSLIMIT),
                                               (size_t)le64_load(blob + SECRET_BLOB_MEMLIMIT)) != 0)
                return -ENOMEM;
        for (size_t i = 0; i < KEYNUM_SK_BYTES; i++)
                blob[SECRET_BLOB_KEYNUM_SK + i] ^= stream[i];
        return 0;
}

/* Decodes a secret key file into blob (SECRET_BLOB_BYTES of locked memory) and checks its
 * algorithms. Returns 1 when the key is encrypted, 0 when not, or a negative errno. */
static int secret_key_decode(const char *text, size_t size, uint8_t *blob)
{
        struct line lines[2], comment;
        size_t count;
        int r;

        if (!text)
                return -EINVAL;
        r = split_lines(text, size, lines, ELEMENTSOF(lines), &count);
        if (r < 0)
                return r;
        if (count != 2)
                return -EBADMSG;
        r = parse_comment_line(&lines[0], COMMENT_PREFIX, &comment);
        if (r < 0)
                return r;
        r = decode_base64_line(&lines[1], blob, SECRET_BLOB_BYTES);
        if (r < 0)
                return r;

        if (memcmp(blob, SIG_ALG, ALG_BYTES) != 0 ||
            memcmp(blob + SECRET_BLOB_CHK_ALG, CHK_ALG, ALG_BYTES) != 0)
                return -EOPNOTSUPP;
        if (memcmp(blob + SECRET_BLOB_KDF_ALG, KDF_ALG_SCRYPT, ALG_BYTES) == 0)
                return 1;
        if (memcmp(blob + SECRET_BLOB_KDF_ALG, KDF_ALG_NONE, ALG_BYTES) == 0)
                return 0;
        return -EOPNOTSUPP;
}

int minisign_secret_key_is_encrypted(const char *text, size_t size)
{
        _cleanup_sodium_free_ uint8_t *blob = NULL;
        int r;

        r = sodium_setup();
        if (r < 0)
                return r;
        blob = sodium_malloc(SECRET_BLOB_BYTES);
        if (!blob)
                return -ENOMEM;
        r = secret_key_decode(text, size, blob);
        if (r < 0)
                return r;
        return r > 0;
}

int minisign_secret_key_parse(const char *text, size_t size, const char *password,
                              struct minisign_secret_key **ret)
{
        _cleanup_sodium_free_ uint8_t *blob = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
        uint8_t checksum[CHECKSUM_BYTES], derived_public[MINISIGN_PUBLIC_KEY_BYTES];
        uint8_t expanded[crypto_sign_ed25519_SECRETKEYBYTES];
        bool encrypted;
        int r;

        if (!ret)
                return -EINVAL;
        r = sodium_setup();
        if (r < 0)
                return r;
        blob = sodium_malloc(SECRET_BLOB_BYTES);
        if (!blob)
                return -ENOMEM;
        r = secret_key_decode(text, size, blob);
        if (r < 0)
                return r;
        encrypted = r > 0;

        if (encrypted) {
                /* Before any key derivation: the parameters come from the file. */
                if (!password)
                        return -ENOKEY;
                if (le64_load(blob + SECRET_BLOB_OPSLIMIT) > MINISIGN_KDF_OPSLIMIT_MAX ||
                    le64_load(blob + SECRET_BLOB_MEMLIMIT) > MINISIGN_KDF_MEMLIMIT_MAX)
                        return -E2BIG;
                r = secret_blob_xor_stream(blob, password);
                if (r < 0)
                        return r;
        }

        secret_blob_checksum(blob, checksum);
        /* "minisign -G -W" leaves the checksum of an unencrypted key all zeros. */
        if (sodium_memcmp(checksum, blob + SECRET_BLOB_CHECKSUM, CHECKSUM_BYTES) != 0 &&
            (encrypted || !sodium_is_zero(blob + SECRET_BLOB_CHECKSUM, CHECKSUM_BYTES))) {
                sodium_memzero(checksum, sizeof(checksum));
                return -EKEYREJECTED;
        }
        sodium_memzero(checksum, sizeof(checksum));

        key = sodium_malloc(sizeof(*key));
        if (!key)
                return -ENOMEM;
        memcpy(key->key_id, blob + SECRET_BLOB_KEY_ID, MINISIGN_KEY_ID_BYTES);
        memcpy(key->key, blob + SECRET_BLOB_KEY, MINISIGN_SECRET_KEY_BYTES);

        /* The public half must be the one of the seed, or every signature would be bad. */
        crypto_sign_ed25519_seed_keypair(derived_public, expanded, key->key);
        sodium_memzero(expanded, sizeof(expanded));
        if (sodium_memcmp(derived_public,
                          key->key + MINISIGN_SECRET_KEY_BYTES - MINISIGN_PUBLIC_KEY_BYTES,
                          MINISIGN_PUBLIC_KEY_BYTES) != 0)
                return -EKEYREJECTED;

        *ret = TAKE_PTR(key);
        return 0;
}

int minisign_secret_key_format_with_comment(const struct minisign_secret_key *key,
                                            const char *password, const char *comment,
                                            char **ret_text, size_t *ret_size)
{
        _cleanup_sodium_free_ uint8_t *blob = NULL;
        int r;

        if (!key || !ret_text)
                return -EINVAL;
        if (!comment)
                comment =
                    password ? DEFAULT_ENCRYPTED_KEY_COMMENT : DEFAULT_UNENCRYPTED_KEY_COMMENT;
        r = check_comment(comment, MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX);
        if (r < 0)
                return r;
        r = sodium_setup();
        if (r < 0)
                return r;

        blob = sodium_malloc(SECRET_BLOB_BYTES);
        if (!blob)
                return -ENOMEM;
        memset(blob, 0, SECRET_BLOB_BYTES);
        memcpy(blob, SIG_ALG, ALG_BYTES);
        memcpy(blob + SECRET_BLOB_KDF_ALG, password ? KDF_ALG_SCRYPT : KDF_ALG_NONE, ALG_BYTES);
        memcpy(blob + SECRET_BLOB_CHK_ALG, CHK_ALG, ALG_BYTES);
        memcpy(blob + SECRET_BLOB_KEY_ID, key->key_id, MINISIGN_KEY_ID_BYTES);
        memcpy(blob + SECRET_BLOB_KEY, key->key, MINISIGN_SECRET_KEY_BYTES);
        /* Unlike "minisign -G -W", write the checksum of an unencrypted key too: minisign
         * ignores it there, and it lets us tell a corrupted key. */
        secret_blob_checksum(blob, blob + SECRET_BLOB_CHECKSUM);

        if (password) {
                randombytes_buf(blob + SECRET_BLOB_SALT, SALT_BYTES);
                le64_store(blob + SECRET_BLOB_OPSLIMIT, MINISIGN_KDF_OPSLIMIT);
                le64_store(blob + SECRET_BLOB_MEMLIMIT, MINISIGN_KDF_MEMLIMIT);
                r = secret_blob_xor_stream(blob, password);
                if (r < 0)
                        return r;
        }

        return format_comment_and_blob(COMMENT_PREFIX, comment, blob, SECRET_BLOB_BYTES, ret_text,
                                       ret_size);
}

/* ---- Signatures ---- */

/* What the signature covers: BLAKE2b-512(message) for "ED", the message itself for "Ed". */
static void signed_bytes(bool prehashed, const uint8_t *message, size_t size,
                         uint8_t hash[static PREHASH_BYTES], const uint8_t **ret_data,
                         size_t *ret_size)
{
        static const uint8_t empty[1];

        if (!message)
                message = empty;
        if (prehashed) {
                crypto_generichash(hash, PREHASH_BYTES, message, size, NULL, 0);
                *ret_data = hash;
                *ret_size = PREHASH_BYTES;
        } else {
                *ret_data = message;
                *ret_size = size;
        }
}

int minisign_sign(const struct minisign_secret_key *key, const uint8_t *message, size_t size,
                  const char *trusted_comment, const char *untrusted_comment, bool prehashed,
                  char **ret_text)
{
        uint8_t hash[PREHASH_BYTES], blob[SIGNATURE_BLOB_BYTES];
        uint8_t global_input[MINISIGN_SIGNATURE_BYTES + MINISIGN_COMMENT_MAX];
        uint8_t global_signature[MINISIGN_SIGNATURE_BYTES];
        char default_trusted_comment[64];
        char sig_base64[BASE64_CHARS(SIGNATURE_BLOB_BYTES) + 1];
        char global_base64[BASE64_CHARS(MINISIGN_SIGNATURE_BYTES) + 1];
        const uint8_t *data;
        size_t data_size, trusted_size;
        char *text;
        int r;

        if (!key || (!message && size > 0) || !ret_text)
                return -EINVAL;
        if (!untrusted_comment)
                untrusted_comment = DEFAULT_SIGNATURE_COMMENT;
        if (!trusted_comment) {
                snprintf(default_trusted_comment, sizeof(default_trusted_comment),
                         "timestamp:%lu%s", (unsigned long)time(NULL), prehashed ? "\thashed" : "");
                trusted_comment = default_trusted_comment;
        }
        r = check_comment(untrusted_comment, MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX);
        if (r < 0)
                return r;
        r = check_comment(trusted_comment, MINISIGN_COMMENT_MAX);
        if (r < 0)
                return r;
        r = sodium_setup();
        if (r < 0)
                return r;

        memcpy(blob, prehashed ? SIG_ALG_HASHED : SIG_ALG, ALG_BYTES);
        memcpy(blob + SIGNATURE_BLOB_KEY_ID, key->key_id, MINISIGN_KEY_ID_BYTES);
        signed_bytes(prehashed, message, size, hash, &data, &data_size);
        if (crypto_sign_ed25519_detached(blob + SIGNATURE_BLOB_SIG, NULL, data, data_size,
                                         key->key) != 0)
                return -EIO;

        /* The global signature covers the signature and the trusted comment. */
        trusted_size = strlen(trusted_comment);
        memcpy(global_input, blob + SIGNATURE_BLOB_SIG, MINISIGN_SIGNATURE_BYTES);
        memcpy(global_input + MINISIGN_SIGNATURE_BYTES, trusted_comment, trusted_size);
        if (crypto_sign_ed25519_detached(global_signature, NULL, global_input,
                                         MINISIGN_SIGNATURE_BYTES + trusted_size, key->key) != 0)
                return -EIO;

        sodium_bin2base64(sig_base64, sizeof(sig_base64), blob, sizeof(blob),
                          sodium_base64_VARIANT_ORIGINAL);
        sodium_bin2base64(global_base64, sizeof(global_base64), global_signature,
                          sizeof(global_signature), sodium_base64_VARIANT_ORIGINAL);
        if (asprintf(&text, "%s%s\n%s\n%s%s\n%s\n", COMMENT_PREFIX, untrusted_comment, sig_base64,
                     TRUSTED_COMMENT_PREFIX, trusted_comment, global_base64) < 0)
                return -ENOMEM;

        *ret_text = text;
        return 0;
}

int minisign_signature_parse(const char *text, size_t size, struct minisign_signature *ret)
{
        struct minisign_signature sig = {};
        struct line lines[4], comment, trusted;
        uint8_t blob[SIGNATURE_BLOB_BYTES];
        size_t count;
        int r;

        if (!text || !ret)
                return -EINVAL;
        r = split_lines(text, size, lines, ELEMENTSOF(lines), &count);
        if (r < 0)
                return r;
        if (count != 4)
                return -EBADMSG;
        r = parse_comment_line(&lines[0], COMMENT_PREFIX, &comment);
        if (r < 0)
                return r;
        r = decode_base64_line(&lines[1], blob, sizeof(blob));
        if (r < 0)
                return r;
        r = parse_comment_line(&lines[2], TRUSTED_COMMENT_PREFIX, &trusted);
        if (r < 0)
                return r;
        r = decode_base64_line(&lines[3], sig.global_signature, sizeof(sig.global_signature));
        if (r < 0)
                return r;

        if (memcmp(blob, SIG_ALG_HASHED, ALG_BYTES) == 0)
                sig.prehashed = true;
        else if (memcmp(blob, SIG_ALG, ALG_BYTES) == 0)
                sig.prehashed = false;
        else
                return -EOPNOTSUPP;
        memcpy(sig.key_id, blob + SIGNATURE_BLOB_KEY_ID, MINISIGN_KEY_ID_BYTES);
        memcpy(sig.signature, blob + SIGNATURE_BLOB_SIG, MINISIGN_SIGNATURE_BYTES);
        memcpy(sig.trusted_comment, trusted.text, trusted.size);
        sig.trusted_comment[trusted.size] = '\0';

        *ret = sig;
        return 0;
}

int minisign_verify(const struct minisign_public_key *key, const struct minisign_signature *sig,
                    const uint8_t *message, size_t size)
{
        uint8_t hash[PREHASH_BYTES];
        uint8_t global_input[MINISIGN_SIGNATURE_BYTES + MINISIGN_COMMENT_MAX];
        const uint8_t *data;
        size_t data_size, trusted_size;
        int r;

        if (!key || !sig || (!message && size > 0))
                return -EINVAL;
        trusted_size = strnlen(sig->trusted_comment, sizeof(sig->trusted_comment));
        if (trusted_size > MINISIGN_COMMENT_MAX)
                return -EINVAL;
        r = sodium_setup();
        if (r < 0)
                return r;

        if (memcmp(key->key_id, sig->key_id, MINISIGN_KEY_ID_BYTES) != 0)
                return -ENOKEY;

        signed_bytes(sig->prehashed, message, size, hash, &data, &data_size);
        if (crypto_sign_ed25519_verify_detached(sig->signature, data, data_size, key->key) != 0)
                return -EKEYREJECTED;

        memcpy(global_input, sig->signature, MINISIGN_SIGNATURE_BYTES);
        memcpy(global_input + MINISIGN_SIGNATURE_BYTES, sig->trusted_comment, trusted_size);
        if (crypto_sign_ed25519_verify_detached(sig->global_signature, global_input,
                                                MINISIGN_SIGNATURE_BYTES + trusted_size,
                                                key->key) != 0)
                return -EKEYREJECTED;
        return 0;
}
