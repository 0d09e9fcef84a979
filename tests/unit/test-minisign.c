/* SPDX-License-Identifier: MIT */
/* common/minisign.c: hostile input first, then interoperability with files made by the real
 * minisign tool (tests/data/minisign/), then round trips and tampering. Two tests run scrypt with
 * minisign's real parameters (about 1 GiB and a few seconds each); every other encrypted key is
 * made here with tiny parameters, which the file format allows. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "minisign.h"
#include "util.h"

#define DATA_DIR TEST_DATA_DIR "/minisign/"

/* tests/data/minisign/minisign.pub, made by "minisign -G -W". */
#define PUB_COMMENT "untrusted comment: minisign public key 876AE9CA9991A3A1\n"
#define PUB_BASE64 "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197VhD"
/* The same key with "ED" as its algorithm, and cut or grown by one byte. */
#define PUB_BASE64_ED "RUSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197VhD"
#define PUB_BASE64_41 "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197Vg="
#define PUB_BASE64_43 "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197VhDAA=="

/* tests/data/minisign/message.txt.minisig, line by line, and variants of its lines. */
#define SIG_L1 "untrusted comment: signature from minisign secret key\n"
#define SIG_L2_B64                                                                                 \
        "RUSho5GZyulqh5hB4RNGlJUPLvsDnuZ9/tNNGop+T9IvBcqPPqA/bfJxdeCe4se0o9bi98AsmCySYA5+d588KP05" \
        "baJGVnZ0Sg4="
#define SIG_L2 SIG_L2_B64 "\n"
#define SIG_L3 "trusted comment: timestamp:1795481795\tfile:message.txt\thashed\n"
#define SIG_L4_B64                                                                                 \
        "1lC2mYJ6Zp7DMteVx8ZrohI9EzwQiKTyKDrVcPMwZU5V7UN+iK5XsXtRT4cOe/1ZdTG4S88rQYNKMLc6lIiJCw=="
#define SIG_L4 SIG_L4_B64 "\n"
#define SIG_L2_EX                                                                                  \
        "RXiho5GZyulqh5hB4RNGlJUPLvsDnuZ9/tNNGop+T9IvBcqPPqA/bfJxdeCe4se0o9bi98AsmCySYA5+d588KP05" \
        "baJGVnZ0Sg4=\n"
#define SIG_L2_73                                                                                  \
        "RUSho5GZyulqh5hB4RNGlJUPLvsDnuZ9/tNNGop+T9IvBcqPPqA/bfJxdeCe4se0o9bi98AsmCySYA5+d588KP05" \
        "baJGVnZ0Sg==\n"
#define SIG_L4_63                                                                                  \
        "1lC2mYJ6Zp7DMteVx8ZrohI9EzwQiKTyKDrVcPMwZU5V7UN+iK5XsXtRT4cOe/1ZdTG4S88rQYNKMLc6lIiJ\n"
#define SIG_VALID SIG_L1 SIG_L2 SIG_L3 SIG_L4

/* minisign's SeckeyStruct, as offsets, written down here independently of common/. */
#define SK_KDF_ALG 2
#define SK_CHK_ALG 4
#define SK_SALT 6
#define SK_OPSLIMIT 38
#define SK_MEMLIMIT 46
#define SK_KEYNUM_SK 54
#define SK_KEY 62
#define SK_CHECKSUM 126
#define SK_BYTES 158

static char *fixture(const char *name, size_t *ret_size)
{
        _cleanup_free_ char *path = NULL;
        char *data;

        assert_true(asprintf(&path, "%s%s", DATA_DIR, name) > 0);
        assert_int_equal(read_file_bounded(path, 1 << 20, &data, ret_size), 0);
        return data;
}

static void check_result(const char *name, int got, int expected)
{
        if (got != expected)
                fail_msg("%s: got %d (%s), expected %d (%s)", name, got, strerror(-got), expected,
                         strerror(-expected));
}

/* ---- Hostile input ---- */

struct parse_case {
        const char *name;
        const char *text;
        size_t size; /* 0: strlen(text) */
        int expected;
};

static const struct parse_case public_key_cases[] = {
    {"empty", "", 0, -EBADMSG},
    {"only a newline", "\n", 0, -EBADMSG},
    {"comment only", PUB_COMMENT, 0, -EBADMSG},
    {"comment without prefix", "comment: minisign public key\n" PUB_BASE64 "\n", 0, -EBADMSG},
    {"prefix in capitals", "Untrusted comment: x\n" PUB_BASE64 "\n", 0, -EBADMSG},
    {"trusted comment prefix", "trusted comment: x\n" PUB_BASE64 "\n", 0, -EBADMSG},
    {"key before comment", PUB_BASE64 "\n" PUB_COMMENT, 0, -EBADMSG},
    {"one byte short", PUB_COMMENT PUB_BASE64_41 "\n", 0, -EBADMSG},
    {"one byte long", PUB_COMMENT PUB_BASE64_43 "\n", 0, -EBADMSG},
    {"wrong algorithm ED", PUB_COMMENT PUB_BASE64_ED "\n", 0, -EBADMSG},
    {"bad base64 character",
     PUB_COMMENT "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197Vh*\n", 0, -EBADMSG},
    {"url-safe base64", PUB_COMMENT "RWSho5GZyulqh0sVN-JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197VhD\n", 0,
     -EBADMSG},
    {"truncated base64", PUB_COMMENT "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197Vh\n", 0,
     -EBADMSG},
    {"space before key", PUB_COMMENT " " PUB_BASE64 "\n", 0, -EBADMSG},
    {"space after key", PUB_COMMENT PUB_BASE64 " \n", 0, -EBADMSG},
    {"tab after key", PUB_COMMENT PUB_BASE64 "\t\n", 0, -EBADMSG},
    {"trailing garbage line", PUB_COMMENT PUB_BASE64 "\ngarbage\n", 0, -EBADMSG},
    {"trailing empty line", PUB_COMMENT PUB_BASE64 "\n\n", 0, -EBADMSG},
    {"two keys", PUB_BASE64 "\n" PUB_BASE64 "\n", 0, -EBADMSG},
    {"leading empty line", "\n" PUB_COMMENT PUB_BASE64 "\n", 0, -EBADMSG},
    {"bare CR line ends", "untrusted comment: x\r" PUB_BASE64 "\r", 0, -EBADMSG},
    {"CR inside the comment", "untrusted comment: a\rb\n" PUB_BASE64 "\n", 0, -EBADMSG},
    {"CR CR LF", PUB_COMMENT PUB_BASE64 "\r\r\n", 0, -EBADMSG},
    {"trailing CR without LF", PUB_COMMENT PUB_BASE64 "\r", 0, -EBADMSG},
    {"NUL in the comment", "untrusted comment: a\0b\n" PUB_BASE64 "\n",
     sizeof("untrusted comment: a\0b\n" PUB_BASE64 "\n") - 1, -EBADMSG},
    {"NUL after the key", PUB_COMMENT PUB_BASE64 "\n\0", sizeof(PUB_COMMENT PUB_BASE64) + 1,
     -EBADMSG},
    {"NUL instead of newline", PUB_COMMENT PUB_BASE64 "\0", sizeof(PUB_COMMENT PUB_BASE64),
     -EBADMSG},
    /* What must work. */
    {"as minisign writes it", PUB_COMMENT PUB_BASE64 "\n", 0, 0},
    {"no final newline", PUB_COMMENT PUB_BASE64, 0, 0},
    {"CRLF", "untrusted comment: minisign public key\r\n" PUB_BASE64 "\r\n", 0, 0},
    {"bare key (minisign -P)", PUB_BASE64, 0, 0},
    {"bare key and newline", PUB_BASE64 "\n", 0, 0},
    {"empty comment", "untrusted comment: \n" PUB_BASE64 "\n", 0, 0},
};

static const struct parse_case signature_cases[] = {
    {"empty", "", 0, -EBADMSG},
    {"untrusted comment only", SIG_L1, 0, -EBADMSG},
    {"no trusted comment", SIG_L1 SIG_L2, 0, -EBADMSG},
    {"no global signature", SIG_L1 SIG_L2 SIG_L3, 0, -EBADMSG},
    {"no untrusted comment", SIG_L2 SIG_L3 SIG_L4, 0, -EBADMSG},
    {"lines swapped", SIG_L1 SIG_L3 SIG_L2 SIG_L4, 0, -EBADMSG},
    {"untrusted comment without prefix", "signature\n" SIG_L2 SIG_L3 SIG_L4, 0, -EBADMSG},
    {"trusted comment without prefix", SIG_L1 SIG_L2 "timestamp:1\n" SIG_L4, 0, -EBADMSG},
    {"trusted prefix capitalised", SIG_L1 SIG_L2 "Trusted comment: x\n" SIG_L4, 0, -EBADMSG},
    {"trusted prefix without space", SIG_L1 SIG_L2 "trusted comment:x\n" SIG_L4, 0, -EBADMSG},
    {"untrusted prefix on line 3", SIG_L1 SIG_L2 "untrusted comment: x\n" SIG_L4, 0, -EBADMSG},
    {"signature one byte short", SIG_L1 SIG_L2_73 SIG_L3 SIG_L4, 0, -EBADMSG},
    {"global signature one byte short", SIG_L1 SIG_L2 SIG_L3 SIG_L4_63, 0, -EBADMSG},
    {"global signature in place of signature", SIG_L1 SIG_L4 SIG_L3 SIG_L4, 0, -EBADMSG},
    {"non-canonical base64 padding bits",
     SIG_L1 SIG_L2 SIG_L3 "1lC2mYJ6Zp7DMteVx8ZrohI9EzwQiKTyKDrVcPMwZU5V7UN+iK5XsXtRT4cOe/"
                          "1ZdTG4S88rQYNKMLc6lIiJCx==\n",
     0, -EBADMSG},
    {"missing padding",
     SIG_L1 SIG_L2 SIG_L3
     "1lC2mYJ6Zp7DMteVx8ZrohI9EzwQiKTyKDrVcPMwZU5V7UN+iK5XsXtRT4cOe/1ZdTG4S88rQYNKMLc6lIiJCw\n",
     0, -EBADMSG},
    {"space inside base64",
     SIG_L1
     "RUSho5GZyulqh5hB4RNGlJUPLvsDnuZ9/tNNGop+T9IvBcqPPqA/ bfJxdeCe4se0o9bi98AsmCySYA5+d588KP05"
     "baJGVnZ0Sg4=\n" SIG_L3 SIG_L4,
     0, -EBADMSG},
    {"trailing garbage line", SIG_VALID "garbage\n", 0, -EBADMSG},
    {"trailing empty line", SIG_VALID "\n", 0, -EBADMSG},
    {"two signatures", SIG_VALID SIG_VALID, 0, -EBADMSG},
    {"NUL in trusted comment", SIG_L1 SIG_L2 "trusted comment: a\0b\n" SIG_L4,
     sizeof(SIG_L1 SIG_L2 "trusted comment: a\0b\n" SIG_L4) - 1, -EBADMSG},
    {"NUL at the end", SIG_VALID "\0", sizeof(SIG_VALID), -EBADMSG},
    {"CR inside the trusted comment", SIG_L1 SIG_L2 "trusted comment: a\rb\n" SIG_L4, 0, -EBADMSG},
    {"unknown algorithm Ex", SIG_L1 SIG_L2_EX SIG_L3 SIG_L4, 0, -EOPNOTSUPP},
    /* What must work. */
    {"as minisign writes it", SIG_VALID, 0, 0},
    {"no final newline", SIG_L1 SIG_L2 SIG_L3 SIG_L4_B64, 0, 0},
    {"CRLF", "untrusted comment: x\r\n" SIG_L2_B64 "\r\ntrusted comment: y\r\n" SIG_L4_B64 "\r\n",
     0, 0},
    {"empty comments", "untrusted comment: \n" SIG_L2 "trusted comment: \n" SIG_L4, 0, 0},
};

static void test_public_key_parse_hostile(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(public_key_cases); i++) {
                const struct parse_case *c = &public_key_cases[i];
                struct minisign_public_key key;

                check_result(c->name,
                             minisign_public_key_parse(c->text, c->size ?: strlen(c->text), &key),
                             c->expected);
        }
}

static void test_signature_parse_hostile(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(signature_cases); i++) {
                const struct parse_case *c = &signature_cases[i];
                struct minisign_signature sig;

                check_result(c->name,
                             minisign_signature_parse(c->text, c->size ?: strlen(c->text), &sig),
                             c->expected);
        }
}

/* Comments at and past the limit, and files past MINISIGN_FILE_MAX. */
static void test_parse_limits(void **state)
{
        struct minisign_public_key key;
        struct minisign_signature sig;
        char comment[MINISIGN_COMMENT_MAX + 2];
        _cleanup_free_ char *text = NULL;

        (void)state;
        for (size_t n = MINISIGN_COMMENT_MAX; n <= MINISIGN_COMMENT_MAX + 1; n++) {
                int expected = n <= MINISIGN_COMMENT_MAX ? 0 : -E2BIG;

                memset(comment, 'c', n);
                comment[n] = '\0';

                free(text);
                assert_true(asprintf(&text, "untrusted comment: %s\n%s\n", comment, PUB_BASE64) >
                            0);
                check_result("public key comment",
                             minisign_public_key_parse(text, strlen(text), &key), expected);

                free(text);
                assert_true(asprintf(&text, "untrusted comment: %s\n%s%s%s", comment, SIG_L2,
                                     SIG_L3, SIG_L4) > 0);
                check_result("untrusted comment",
                             minisign_signature_parse(text, strlen(text), &sig), expected);

                free(text);
                assert_true(asprintf(&text, "%s%strusted comment: %s\n%s", SIG_L1, SIG_L2, comment,
                                     SIG_L4) > 0);
                check_result("trusted comment", minisign_signature_parse(text, strlen(text), &sig),
                             expected);
                if (expected == 0)
                        assert_int_equal(strlen(sig.trusted_comment), MINISIGN_COMMENT_MAX);
        }

        /* A file one byte too large, whatever is in it. */
        free(text);
        text = malloc(MINISIGN_FILE_MAX + 1);
        assert_non_null(text);
        memset(text, 'A', MINISIGN_FILE_MAX + 1);
        check_result("public key file too large",
                     minisign_public_key_parse(text, MINISIGN_FILE_MAX + 1, &key), -E2BIG);
        check_result("signature file too large",
                     minisign_signature_parse(text, MINISIGN_FILE_MAX + 1, &sig), -E2BIG);
        check_result("secret key file too large",
                     minisign_secret_key_is_encrypted(text, MINISIGN_FILE_MAX + 1), -E2BIG);
}

/* ---- Secret keys: made here, mutated byte by byte ---- */

static void base64_line_decode(const char *text, uint8_t blob[static SK_BYTES])
{
        const char *line = strchr(text, '\n') + 1;
        size_t n;

        assert_int_equal(sodium_base642bin(blob, SK_BYTES, line, strcspn(line, "\n"), NULL, &n,
                                           NULL, sodium_base64_VARIANT_ORIGINAL),
                         0);
        assert_int_equal(n, SK_BYTES);
}

static char *secret_text_from_blob(const uint8_t blob[static SK_BYTES])
{
        char b64[sodium_base64_ENCODED_LEN(SK_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        char *text;

        sodium_bin2base64(b64, sizeof(b64), blob, SK_BYTES, sodium_base64_VARIANT_ORIGINAL);
        assert_true(asprintf(&text, "untrusted comment: test key\n%s\n", b64) > 0);
        return text;
}

/* Encrypts an unencrypted key blob the way minisign does, with tiny scrypt parameters. */
static void encrypt_blob_cheaply(uint8_t blob[static SK_BYTES], const char *password)
{
        uint8_t stream[SK_BYTES - SK_KEYNUM_SK];
        const uint64_t opslimit = 32768, memlimit = 16777216;

        memcpy(blob + SK_KDF_ALG, "Sc", 2);
        randombytes_buf(blob + SK_SALT, 32);
        for (int i = 0; i < 8; i++) {
                blob[SK_OPSLIMIT + i] = (uint8_t)(opslimit >> (8 * i));
                blob[SK_MEMLIMIT + i] = (uint8_t)(memlimit >> (8 * i));
        }
        assert_int_equal(crypto_pwhash_scryptsalsa208sha256(stream, sizeof(stream), password,
                                                            strlen(password), blob + SK_SALT,
                                                            opslimit, memlimit),
                         0);
        for (size_t i = 0; i < sizeof(stream); i++)
                blob[SK_KEYNUM_SK + i] ^= stream[i];
}

static void generate_unencrypted(struct minisign_public_key *ret_public,
                                 struct minisign_secret_key **ret_secret,
                                 uint8_t blob[static SK_BYTES])
{
        _cleanup_free_ char *text = NULL;
        size_t size;

        assert_int_equal(minisign_generate(ret_public, ret_secret), 0);
        assert_int_equal(
            minisign_secret_key_format_with_comment(*ret_secret, NULL, NULL, &text, &size), 0);
        assert_int_equal(size, strlen(text));
        base64_line_decode(text, blob);
}

static const struct {
        const char *name;
        size_t offset;
        uint8_t xor ; /* 0: zero the 32 bytes at offset instead */
        int expected;
} secret_key_mutations[] = {
    {"signature algorithm", 0, 0x20, -EOPNOTSUPP},   /* "ed" */
    {"kdf algorithm", SK_KDF_ALG, 'X', -EOPNOTSUPP}, /* "X\0" */
    {"checksum algorithm", SK_CHK_ALG + 1, 0x01, -EOPNOTSUPP},
    {"key id", SK_KEYNUM_SK, 0x01, -EKEYREJECTED}, /* covered by the checksum */
    {"seed", SK_KEY, 0x01, -EKEYREJECTED},
    {"public half", SK_KEY + 63, 0x01, -EKEYREJECTED},
    {"checksum", SK_CHECKSUM + 5, 0x80, -EKEYREJECTED},
    /* What "minisign -G -W" writes: no checksum. */
    {"checksum zeroed", SK_CHECKSUM, 0, 0},
    /* Unused by an unencrypted key: salt and scrypt parameters. */
    {"salt", SK_SALT, 0x01, 0},
    {"opslimit", SK_OPSLIMIT + 7, 0xff, 0},
};

static void test_secret_key_hostile(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key public;
        uint8_t blob[SK_BYTES];
        static const char *const bad_texts[] = {
            "",
            "untrusted comment: x\n",
            "untrusted comment: x\nRWQAAEIy\n",
            "untrusted comment: x\n" PUB_BASE64 "\n",
            SIG_VALID,
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad_texts); i++) {
                struct minisign_secret_key *key = NULL;

                check_result(
                    bad_texts[i],
                    minisign_secret_key_parse(bad_texts[i], strlen(bad_texts[i]), NULL, &key),
                    -EBADMSG);
                check_result(bad_texts[i],
                             minisign_secret_key_is_encrypted(bad_texts[i], strlen(bad_texts[i])),
                             -EBADMSG);
                assert_null(key);
        }

        generate_unencrypted(&public, &secret, blob);
        for (size_t i = 0; i < ELEMENTSOF(secret_key_mutations); i++) {
                _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
                _cleanup_free_ char *text = NULL;
                uint8_t mutated[SK_BYTES];

                memcpy(mutated, blob, SK_BYTES);
                if (secret_key_mutations[i].xor == 0)
                        memset(mutated + secret_key_mutations[i].offset, 0, 32);
                else
                        mutated[secret_key_mutations[i].offset] ^= secret_key_mutations[i].xor ;
                text = secret_text_from_blob(mutated);
                check_result(secret_key_mutations[i].name,
                             minisign_secret_key_parse(text, strlen(text), NULL, &key),
                             secret_key_mutations[i].expected);
                if (secret_key_mutations[i].expected == 0)
                        assert_memory_equal(key->key, secret->key, MINISIGN_SECRET_KEY_BYTES);
                else
                        assert_null(key);
        }

        /* No checksum, and a public half that does not belong to the seed. */
        {
                _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
                _cleanup_free_ char *text = NULL;
                uint8_t mutated[SK_BYTES];

                memcpy(mutated, blob, SK_BYTES);
                memset(mutated + SK_CHECKSUM, 0, 32);
                mutated[SK_KEY + 40] ^= 0x04;
                text = secret_text_from_blob(mutated);
                check_result("no checksum, public half changed",
                             minisign_secret_key_parse(text, strlen(text), NULL, &key),
                             -EKEYREJECTED);
        }

        /* Encrypted, no password: refused before any key derivation, even with parameters that
         * would take hours. */
        {
                _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
                _cleanup_free_ char *text = NULL;
                uint8_t mutated[SK_BYTES];

                memcpy(mutated, blob, SK_BYTES);
                memcpy(mutated + SK_KDF_ALG, "Sc", 2);
                memset(mutated + SK_OPSLIMIT, 0xff, 16);
                text = secret_text_from_blob(mutated);
                assert_int_equal(minisign_secret_key_is_encrypted(text, strlen(text)), 1);
                check_result("encrypted, no password",
                             minisign_secret_key_parse(text, strlen(text), NULL, &key), -ENOKEY);
                check_result("scrypt parameters too large",
                             minisign_secret_key_parse(text, strlen(text), "pw", &key), -E2BIG);
                assert_null(key);
        }
}

/* Encrypted keys with tiny scrypt parameters: right, wrong and no password. */
static void test_secret_key_encrypted_cheap(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
        _cleanup_free_ char *text = NULL;
        struct minisign_public_key public;
        uint8_t blob[SK_BYTES];
        static const struct {
                const char *password;
                int expected;
        } attempts[] = {
            {NULL, -ENOKEY},
            {"", -EKEYREJECTED},
            {"correct horse battery stapl", -EKEYREJECTED},
            {"correct horse battery staple ", -EKEYREJECTED},
            {"Correct horse battery staple", -EKEYREJECTED},
            {"correct horse battery staple", 0},
        };

        (void)state;
        generate_unencrypted(&public, &secret, blob);
        encrypt_blob_cheaply(blob, "correct horse battery staple");
        text = secret_text_from_blob(blob);
        assert_int_equal(minisign_secret_key_is_encrypted(text, strlen(text)), 1);

        for (size_t i = 0; i < ELEMENTSOF(attempts); i++) {
                key = minisign_secret_key_free(key);
                check_result(
                    attempts[i].password ?: "(null)",
                    minisign_secret_key_parse(text, strlen(text), attempts[i].password, &key),
                    attempts[i].expected);
        }
        assert_non_null(key);
        assert_memory_equal(key->key_id, secret->key_id, MINISIGN_KEY_ID_BYTES);
        assert_memory_equal(key->key, secret->key, MINISIGN_SECRET_KEY_BYTES);
}

/* ---- Files made by the real minisign tool ---- */

static void test_minisign_fixtures(void **state)
{
        _cleanup_free_ char *pub_text = NULL, *other_pub_text = NULL, *message = NULL;
        _cleanup_free_ char *sig_text = NULL, *legacy_text = NULL, *sk_text = NULL;
        _cleanup_free_ char *formatted = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key pub, other_pub;
        struct minisign_signature sig, legacy;
        size_t pub_size, other_size, message_size, sig_size, legacy_size, sk_size;
        char id[MINISIGN_KEY_ID_STRING_MAX];

        (void)state;
        pub_text = fixture("minisign.pub", &pub_size);
        other_pub_text = fixture("encrypted.pub", &other_size);
        message = fixture("message.txt", &message_size);
        sig_text = fixture("message.txt.minisig", &sig_size);
        legacy_text = fixture("message.txt.legacy.minisig", &legacy_size);
        sk_text = fixture("unencrypted.key", &sk_size);

        assert_int_equal(minisign_public_key_parse(pub_text, pub_size, &pub), 0);
        assert_int_equal(minisign_public_key_parse(other_pub_text, other_size, &other_pub), 0);
        assert_string_equal(minisign_key_id_to_string(pub.key_id, id), "876AE9CA9991A3A1");

        /* We write public keys byte for byte as minisign does. */
        assert_int_equal(minisign_public_key_format(&pub, &formatted), 0);
        assert_string_equal(formatted, pub_text);

        assert_int_equal(minisign_signature_parse(sig_text, sig_size, &sig), 0);
        assert_true(sig.prehashed);
        assert_string_equal(sig.trusted_comment, "timestamp:1795481795\tfile:message.txt\thashed");
        assert_int_equal(minisign_verify(&pub, &sig, (const uint8_t *)message, message_size), 0);

        assert_int_equal(minisign_signature_parse(legacy_text, legacy_size, &legacy), 0);
        assert_false(legacy.prehashed);
        assert_string_equal(legacy.trusted_comment, "timestamp:1795481795\tfile:message.txt");
        assert_int_equal(minisign_verify(&pub, &legacy, (const uint8_t *)message, message_size), 0);

        /* Another key, another message, the other algorithm. */
        assert_int_equal(minisign_verify(&other_pub, &sig, (const uint8_t *)message, message_size),
                         -ENOKEY);
        assert_int_equal(minisign_verify(&pub, &sig, (const uint8_t *)message, message_size - 1),
                         -EKEYREJECTED);
        sig.prehashed = false;
        assert_int_equal(minisign_verify(&pub, &sig, (const uint8_t *)message, message_size),
                         -EKEYREJECTED);

        /* "minisign -G -W" writes no checksum; the key still parses and signs for pub. */
        assert_int_equal(minisign_secret_key_is_encrypted(sk_text, sk_size), 0);
        assert_int_equal(minisign_secret_key_parse(sk_text, sk_size, NULL, &secret), 0);
        assert_memory_equal(secret->key_id, pub.key_id, MINISIGN_KEY_ID_BYTES);
        assert_memory_equal(secret->key + 32, pub.key, MINISIGN_PUBLIC_KEY_BYTES);
        {
                _cleanup_free_ char *ours = NULL;
                struct minisign_signature s;

                assert_int_equal(minisign_sign(secret, (const uint8_t *)message, message_size, NULL,
                                               NULL, true, &ours),
                                 0);
                assert_int_equal(minisign_signature_parse(ours, strlen(ours), &s), 0);
                /* Ed25519 is deterministic: the same signature as minisign's. */
                assert_memory_equal(s.signature, sig.signature, MINISIGN_SIGNATURE_BYTES);
        }
}

/* The one test of minisign's own encrypted key: real scrypt parameters (~1 GiB, seconds). */
static void test_minisign_encrypted_fixture(void **state)
{
        _cleanup_free_ char *sk_text = NULL, *pub_text = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key pub;
        size_t sk_size, pub_size;

        (void)state;
        sk_text = fixture("encrypted.key", &sk_size);
        pub_text = fixture("encrypted.pub", &pub_size);
        assert_int_equal(minisign_public_key_parse(pub_text, pub_size, &pub), 0);

        assert_int_equal(minisign_secret_key_is_encrypted(sk_text, sk_size), 1);
        assert_int_equal(minisign_secret_key_parse(sk_text, sk_size, NULL, &secret), -ENOKEY);
        assert_int_equal(minisign_secret_key_parse(sk_text, sk_size, "fixture password", &secret),
                         0);
        assert_memory_equal(secret->key_id, pub.key_id, MINISIGN_KEY_ID_BYTES);
        assert_memory_equal(secret->key + 32, pub.key, MINISIGN_PUBLIC_KEY_BYTES);
}

/* The other real-parameter test: what we write is what minisign writes. */
static void test_secret_key_format_encrypted(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        _cleanup_free_ char *text = NULL;
        struct minisign_public_key public;
        uint8_t blob[SK_BYTES];
        uint64_t opslimit = 0, memlimit = 0;
        size_t size;

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);
        assert_int_equal(minisign_secret_key_format_with_comment(secret, "pw", NULL, &text, &size),
                         0);
        assert_int_equal(size, strlen(text));
        assert_true(strncmp(text, "untrusted comment: minisign encrypted secret key\n", 49) == 0);
        assert_int_equal(minisign_secret_key_is_encrypted(text, size), 1);
        base64_line_decode(text, blob);
        assert_memory_equal(blob, "EdScB2", 6);
        for (int i = 7; i >= 0; i--) {
                opslimit = (opslimit << 8) | blob[SK_OPSLIMIT + i];
                memlimit = (memlimit << 8) | blob[SK_MEMLIMIT + i];
        }
        assert_int_equal(opslimit, 33554432);
        assert_int_equal(memlimit, 1073741824);
        /* The key id and key are not there in the clear. */
        assert_memory_not_equal(blob + SK_KEYNUM_SK, secret->key_id, MINISIGN_KEY_ID_BYTES);
        assert_memory_not_equal(blob + SK_KEY, secret->key, MINISIGN_SECRET_KEY_BYTES);
}

/* ---- Round trips and tampering ---- */

static void test_secret_key_unencrypted_round_trip(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *parsed = NULL;
        _cleanup_free_ char *text = NULL, *commented = NULL, *pub_text = NULL;
        struct minisign_public_key public, public_parsed;
        size_t size;
        char long_comment[MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX + 2];

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);
        assert_int_equal(minisign_secret_key_format_with_comment(secret, NULL, NULL, &text, &size),
                         0);
        assert_int_equal(minisign_secret_key_is_encrypted(text, size), 0);
        /* Password ignored for an unencrypted key. */
        assert_int_equal(minisign_secret_key_parse(text, size, "ignored", &parsed), 0);
        assert_memory_equal(parsed->key_id, secret->key_id, MINISIGN_KEY_ID_BYTES);
        assert_memory_equal(parsed->key, secret->key, MINISIGN_SECRET_KEY_BYTES);

        assert_int_equal(
            minisign_secret_key_format_with_comment(secret, NULL, "ci key", &commented, &size), 0);
        assert_true(strncmp(commented, "untrusted comment: ci key\n", 26) == 0);
        check_result("comment with LF",
                     minisign_secret_key_format_with_comment(secret, NULL, "a\nb", &text, &size),
                     -EINVAL);
        memset(long_comment, 'x', sizeof(long_comment) - 1);
        long_comment[sizeof(long_comment) - 1] = '\0';
        check_result(
            "comment too long",
            minisign_secret_key_format_with_comment(secret, NULL, long_comment, &text, &size),
            -E2BIG);

        assert_int_equal(minisign_public_key_format(&public, &pub_text), 0);
        assert_int_equal(minisign_public_key_parse(pub_text, strlen(pub_text), &public_parsed), 0);
        assert_memory_equal(&public_parsed, &public, sizeof(public));
}

static const uint8_t test_message[] = "nixprov: 1\nserial: 7\nstrategy: binary-caches\n";

static void test_sign_verify_round_trip(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key public;
        static const struct {
                bool prehashed;
                const char *trusted;
                const char *untrusted;
        } cases[] = {
            {true, NULL, NULL},
            {false, NULL, NULL},
            {true, "", ""},
            {false, "serial:7\tmachine:x", "nixprov profile"},
            {true, "timestamp:1\tfile:profile.yaml\thashed", "signed by CI"},
        };

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL;
                struct minisign_signature sig;

                assert_int_equal(minisign_sign(secret, test_message, sizeof(test_message) - 1,
                                               cases[i].trusted, cases[i].untrusted,
                                               cases[i].prehashed, &text),
                                 0);
                assert_int_equal(minisign_signature_parse(text, strlen(text), &sig), 0);
                assert_int_equal(sig.prehashed, cases[i].prehashed);
                assert_memory_equal(sig.key_id, public.key_id, MINISIGN_KEY_ID_BYTES);
                assert_int_equal(
                    minisign_verify(&public, &sig, test_message, sizeof(test_message) - 1), 0);
                if (cases[i].trusted)
                        assert_string_equal(sig.trusted_comment, cases[i].trusted);
                else {
                        /* minisign's default, less the file name the library does not know. */
                        assert_true(strncmp(sig.trusted_comment, "timestamp:", 10) == 0);
                        assert_int_equal(strstr(sig.trusted_comment, "\thashed") != NULL,
                                         cases[i].prehashed);
                }
                if (!cases[i].untrusted)
                        assert_true(strncmp(text,
                                            "untrusted comment: signature from minisign secret "
                                            "key\n",
                                            54) == 0);
        }

        /* The empty message. */
        for (int prehashed = 0; prehashed <= 1; prehashed++) {
                _cleanup_free_ char *text = NULL;
                struct minisign_signature sig;

                assert_int_equal(minisign_sign(secret, NULL, 0, NULL, NULL, prehashed, &text), 0);
                assert_int_equal(minisign_signature_parse(text, strlen(text), &sig), 0);
                assert_int_equal(minisign_verify(&public, &sig, NULL, 0), 0);
                assert_int_equal(minisign_verify(&public, &sig, (const uint8_t *)"x", 1),
                                 -EKEYREJECTED);
        }
}

static void test_sign_refuses_bad_comments(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key public;
        char long_comment[MINISIGN_COMMENT_MAX + 2];
        char *text = NULL;

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);
        memset(long_comment, 'x', sizeof(long_comment) - 1);
        long_comment[sizeof(long_comment) - 1] = '\0';

        check_result("LF in trusted comment",
                     minisign_sign(secret, test_message, 1, "a\nb", NULL, true, &text), -EINVAL);
        check_result("CR in untrusted comment",
                     minisign_sign(secret, test_message, 1, NULL, "a\rb", true, &text), -EINVAL);
        check_result("trusted comment too long",
                     minisign_sign(secret, test_message, 1, long_comment, NULL, true, &text),
                     -E2BIG);
        long_comment[MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX + 1] = '\0';
        check_result("untrusted comment too long for minisign",
                     minisign_sign(secret, test_message, 1, NULL, long_comment, true, &text),
                     -E2BIG);
        assert_null(text);

        long_comment[MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX] = '\0';
        assert_int_equal(minisign_sign(secret, test_message, 1, NULL, long_comment, true, &text),
                         0);
        free(text);
}

/* Every single-bit change anywhere in a .minisig file is refused, except in the untrusted
 * comment's text, which nothing signs (as in minisign). Every change of the message too. */
static void test_tampering(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        struct minisign_public_key public;

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);

        for (int prehashed = 0; prehashed <= 1; prehashed++) {
                _cleanup_free_ char *text = NULL;
                struct minisign_signature sig;
                size_t size, untrusted_start, untrusted_end;
                unsigned parsed_but_rejected = 0;

                assert_int_equal(minisign_sign(secret, test_message, sizeof(test_message) - 1,
                                               "timestamp:1\tfile:profile.yaml", "free text",
                                               prehashed, &text),
                                 0);
                size = strlen(text);
                untrusted_start = strlen("untrusted comment: ");
                untrusted_end = (size_t)(strchr(text, '\n') - text);

                for (size_t i = 0; i < size; i++)
                        for (unsigned bit = 0; bit < 8; bit++) {
                                int r;

                                text[i] ^= (char)(1u << bit);
                                r = minisign_signature_parse(text, size, &sig);
                                if (r == 0)
                                        r = minisign_verify(&public, &sig, test_message,
                                                            sizeof(test_message) - 1);
                                text[i] ^= (char)(1u << bit);

                                if (i >= untrusted_start && i < untrusted_end) {
                                        /* Unsigned: either still one line and fine, or not a
                                         * line any more. */
                                        if (r != 0 && r != -EBADMSG)
                                                fail_msg("byte %zu bit %u: %d", i, bit, r);
                                        continue;
                                }
                                if (r == 0)
                                        fail_msg("%s: byte %zu ('%c') bit %u accepted",
                                                 prehashed ? "ED" : "Ed", i, text[i], bit);
                                if (r == -EKEYREJECTED || r == -ENOKEY)
                                        parsed_but_rejected++;
                        }
                /* Most flips of base64 still decode: the signature check did the refusing. */
                assert_true(parsed_but_rejected > 100);

                assert_int_equal(minisign_signature_parse(text, size, &sig), 0);
                for (size_t i = 0; i < sizeof(test_message) - 1; i++)
                        for (unsigned bit = 0; bit < 8; bit++) {
                                uint8_t m[sizeof(test_message)];

                                memcpy(m, test_message, sizeof(m));
                                m[i] ^= (uint8_t)(1u << bit);
                                check_result("message bit flip",
                                             minisign_verify(&public, &sig, m, sizeof(m) - 1),
                                             -EKEYREJECTED);
                        }
                check_result("message truncated",
                             minisign_verify(&public, &sig, test_message, sizeof(test_message) - 2),
                             -EKEYREJECTED);
                check_result("message extended",
                             minisign_verify(&public, &sig, test_message, sizeof(test_message)),
                             -EKEYREJECTED);
        }
}

static void test_wrong_key_and_changed_comment(void **state)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *other_secret = NULL;
        _cleanup_free_ char *text = NULL, *forged = NULL;
        struct minisign_public_key public, other;
        struct minisign_signature sig, changed;
        const char *tc;

        (void)state;
        assert_int_equal(minisign_generate(&public, &secret), 0);
        assert_int_equal(minisign_generate(&other, &other_secret), 0);
        assert_int_equal(minisign_sign(secret, test_message, sizeof(test_message) - 1, "serial:7",
                                       NULL, true, &text),
                         0);
        assert_int_equal(minisign_signature_parse(text, strlen(text), &sig), 0);

        check_result("other key",
                     minisign_verify(&other, &sig, test_message, sizeof(test_message) - 1),
                     -ENOKEY);
        /* Another key that claims the right id. */
        memcpy(other.key_id, public.key_id, MINISIGN_KEY_ID_BYTES);
        check_result("other key, same id",
                     minisign_verify(&other, &sig, test_message, sizeof(test_message) - 1),
                     -EKEYREJECTED);

        /* A trusted comment changed in the struct, and in the file. */
        changed = sig;
        strcpy(changed.trusted_comment, "serial:8");
        check_result("changed trusted comment (struct)",
                     minisign_verify(&public, &changed, test_message, sizeof(test_message) - 1),
                     -EKEYREJECTED);
        changed = sig;
        strcpy(changed.trusted_comment, "serial:7 ");
        check_result("trusted comment with a space added",
                     minisign_verify(&public, &changed, test_message, sizeof(test_message) - 1),
                     -EKEYREJECTED);
        tc = strstr(text, "serial:7");
        assert_non_null(tc);
        assert_true(asprintf(&forged, "%.*sserial:9%s", (int)(tc - text), text, tc + 8) > 0);
        assert_int_equal(minisign_signature_parse(forged, strlen(forged), &changed), 0);
        check_result("changed trusted comment (file)",
                     minisign_verify(&public, &changed, test_message, sizeof(test_message) - 1),
                     -EKEYREJECTED);

        /* The global signature of one file with the signature of another. */
        {
                _cleanup_free_ char *text2 = NULL;
                struct minisign_signature sig2;

                assert_int_equal(minisign_sign(secret, test_message, sizeof(test_message) - 1,
                                               "serial:8", NULL, true, &text2),
                                 0);
                assert_int_equal(minisign_signature_parse(text2, strlen(text2), &sig2), 0);
                memcpy(sig2.global_signature, sig.global_signature, MINISIGN_SIGNATURE_BYTES);
                check_result(
                    "global signature swapped",
                    minisign_verify(&public, &sig2, test_message, sizeof(test_message) - 1),
                    -EKEYREJECTED);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_public_key_parse_hostile),
            cmocka_unit_test(test_signature_parse_hostile),
            cmocka_unit_test(test_parse_limits),
            cmocka_unit_test(test_secret_key_hostile),
            cmocka_unit_test(test_secret_key_encrypted_cheap),
            cmocka_unit_test(test_minisign_fixtures),
            cmocka_unit_test(test_minisign_encrypted_fixture),
            cmocka_unit_test(test_secret_key_format_encrypted),
            cmocka_unit_test(test_secret_key_unencrypted_round_trip),
            cmocka_unit_test(test_sign_verify_round_trip),
            cmocka_unit_test(test_sign_refuses_bad_comments),
            cmocka_unit_test(test_tampering),
            cmocka_unit_test(test_wrong_key_and_changed_comment),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
