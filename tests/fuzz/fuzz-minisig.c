/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for common/minisign.c: the input is parsed as a signature, a public key and
 * a secret key (never with a password: no scrypt runs here; an encrypted key must stop at
 * -ENOKEY before any key derivation). Whatever parses is verified against a fixed message with
 * a fixed key or signature, and the invariants below abort() when broken. Seeds:
 * tests/fuzz/corpus/minisig/, made with the key in tests/data/minisign/unencrypted.key. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minisign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_message[] = "nixprov fuzz message\n";

/* tests/data/minisign/minisign.pub */
static const char fuzz_public_key[] = "untrusted comment: minisign public key 876AE9CA9991A3A1\n"
                                      "RWSho5GZyulqh0sVN+JzCOoE1M7TMDDVl6cjLEF25k1FHTWUPU197VhD\n";

/* minisign -S -t "fuzz seed" of fuzz_message with that key. */
static const char fuzz_signature[] =
    "untrusted comment: signature from minisign secret key\n"
    "RUSho5GZyulqh69zSX/Wd3BR7NNy2Tw/72NwOsUkijXgmGaeymB2FPvbs5bV+h9obD26J7NLA+K+EZMF8yQcZkyzHE"
    "xOR2wntwc=\n"
    "trusted comment: fuzz seed\n"
    "qoDnM4SRGEmVFe2uXt31P2TqkQMUabQHNCUTcsWFMs0WySKr8vS8Ce4ouOHh9KmiWLWBvpjjoTERaHM+RvFPDg=="
    "\n";

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static void fuzz_signature_input(const char *text, size_t size,
                                 const struct minisign_public_key *fixed_key)
{
        struct minisign_signature sig;
        int r;

        if (minisign_signature_parse(text, size, &sig) != 0)
                return;
        CHECK(strlen(sig.trusted_comment) <= MINISIGN_COMMENT_MAX);
        r = minisign_verify(fixed_key, &sig, fuzz_message, sizeof(fuzz_message) - 1);
        CHECK(r == 0 || r == -ENOKEY || r == -EKEYREJECTED);
        r = minisign_verify(fixed_key, &sig, (const uint8_t *)text, size);
        CHECK(r == -ENOKEY || r == -EKEYREJECTED);
}

static void fuzz_public_key_input(const char *text, size_t size,
                                  const struct minisign_signature *fixed_sig)
{
        struct minisign_public_key key, again;
        char *formatted = NULL;
        int r;

        if (minisign_public_key_parse(text, size, &key) != 0)
                return;
        r = minisign_verify(&key, fixed_sig, fuzz_message, sizeof(fuzz_message) - 1);
        CHECK(r == 0 || r == -ENOKEY || r == -EKEYREJECTED);

        /* What we write, we read back. */
        CHECK(minisign_public_key_format(&key, &formatted) == 0);
        CHECK(minisign_public_key_parse(formatted, strlen(formatted), &again) == 0);
        CHECK(memcmp(&key, &again, sizeof(key)) == 0);
        free(formatted);
}

static void fuzz_secret_key_input(const char *text, size_t size)
{
        struct minisign_secret_key *secret = NULL;
        struct minisign_public_key public;
        struct minisign_signature sig;
        char *signature = NULL;
        int encrypted, r;

        encrypted = minisign_secret_key_is_encrypted(text, size);
        r = minisign_secret_key_parse(text, size, NULL, &secret);
        if (encrypted == 1)
                CHECK(r == -ENOKEY);
        if (encrypted < 0)
                CHECK(r == encrypted);
        if (r != 0) {
                CHECK(!secret);
                return;
        }
        CHECK(encrypted == 0);

        /* A key that parses signs, and its public half verifies what it signed. */
        memcpy(public.key_id, secret->key_id, sizeof(public.key_id));
        memcpy(public.key, secret->key + MINISIGN_SECRET_KEY_BYTES - MINISIGN_PUBLIC_KEY_BYTES,
               sizeof(public.key));
        CHECK(minisign_sign(secret, fuzz_message, sizeof(fuzz_message) - 1, NULL, NULL, true,
                            &signature) == 0);
        CHECK(minisign_signature_parse(signature, strlen(signature), &sig) == 0);
        CHECK(minisign_verify(&public, &sig, fuzz_message, sizeof(fuzz_message) - 1) == 0);
        free(signature);
        secret = minisign_secret_key_free(secret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct minisign_public_key fixed_key;
        struct minisign_signature fixed_sig;
        const char *text = (const char *)data;

        CHECK(minisign_public_key_parse(fuzz_public_key, strlen(fuzz_public_key), &fixed_key) == 0);
        CHECK(minisign_signature_parse(fuzz_signature, strlen(fuzz_signature), &fixed_sig) == 0);
        CHECK(minisign_verify(&fixed_key, &fixed_sig, fuzz_message, sizeof(fuzz_message) - 1) == 0);

        fuzz_signature_input(text, size, &fixed_key);
        fuzz_public_key_input(text, size, &fixed_sig);
        fuzz_secret_key_input(text, size);
        return 0;
}
