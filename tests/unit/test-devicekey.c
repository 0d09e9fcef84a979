/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devicekey.h"
#include "fileio.h"
#include "util.h"

static char dir[] = "/tmp/nixprov-test-devicekey-XXXXXX";

static char *path_of(const char *name)
{
        char *p = NULL;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static mode_t mode_of(const char *name)
{
        _cleanup_free_ char *p = path_of(name);
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        return st.st_mode & 07777;
}

static ino_t inode_of(const char *name)
{
        _cleanup_free_ char *p = path_of(name);
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        return st.st_ino;
}

static void put(const char *name, const char *text)
{
        _cleanup_free_ char *p = path_of(name);

        (void)unlink(p);
        assert_int_equal(write_file_atomic(p, text, strlen(text), 0600, 0), 0);
}

static void remove_all(void)
{
        static const char *const names[] = {DEVICEKEY_SIGN_SECRET_FILE, DEVICEKEY_SIGN_PUBLIC_FILE,
                                            DEVICEKEY_BOX_SECRET_FILE, DEVICEKEY_BOX_PUBLIC_FILE};

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *p = path_of(names[i]);
                (void)unlink(p);
        }
}

static void test_damaged_files_are_refused(void **state)
{
        static const char *const damaged[] = {
            "",
            "nixprov device key: ed25519 secret\n",
            "nixprov device key: x25519 secret\nAAAA\n",
            "nixprov device key: ed25519 secret\nnot base64!\n",
            "nixprov device key: ed25519 secret\n"
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", /* 32 bytes, not 64 */
            "some other file\nAAAA\n",
        };
        (void)state;

        for (size_t i = 0; i < ELEMENTSOF(damaged); i++) {
                struct devicekey *k = NULL;

                remove_all();
                put(DEVICEKEY_SIGN_SECRET_FILE, damaged[i]);
                if (devicekey_load_or_create(dir, &k, NULL) != -EBADMSG)
                        fail_msg("case %zu was accepted", i);
                assert_null(k);
        }
}

static void test_public_without_secret_is_refused(void **state)
{
        struct devicekey *k = NULL;
        bool created = false;
        (void)state;

        remove_all();
        assert_int_equal(devicekey_load_or_create(dir, &k, &created), 0);
        k = devicekey_free(k);
        _cleanup_free_ char *p = path_of(DEVICEKEY_BOX_SECRET_FILE);
        assert_int_equal(unlink(p), 0);
        assert_int_equal(devicekey_load_or_create(dir, &k, NULL), -EEXIST);
        assert_null(k);
}

static void test_create_then_load(void **state)
{
        _cleanup_(devicekey_freep) struct devicekey *a = NULL, *b = NULL, *c = NULL;
        bool created = false;
        ino_t sign_inode, box_inode;
        (void)state;

        remove_all();
        assert_int_equal(devicekey_load_or_create(dir, &a, &created), 0);
        assert_true(created);
        assert_int_equal(mode_of(DEVICEKEY_SIGN_SECRET_FILE), 0600);
        assert_int_equal(mode_of(DEVICEKEY_BOX_SECRET_FILE), 0600);
        assert_int_equal(mode_of(DEVICEKEY_SIGN_PUBLIC_FILE), 0644);
        assert_int_equal(mode_of(DEVICEKEY_BOX_PUBLIC_FILE), 0644);
        sign_inode = inode_of(DEVICEKEY_SIGN_SECRET_FILE);
        box_inode = inode_of(DEVICEKEY_BOX_SECRET_FILE);

        /* Loaded again: the same keys, the secret files untouched. */
        assert_int_equal(devicekey_load_or_create(dir, &b, &created), 0);
        assert_false(created);
        assert_memory_equal(a, b, sizeof(*a));
        assert_int_equal(inode_of(DEVICEKEY_SIGN_SECRET_FILE), sign_inode);
        assert_int_equal(inode_of(DEVICEKEY_BOX_SECRET_FILE), box_inode);

        /* A lost or wrong public file is written again from the secret key. */
        _cleanup_free_ char *pub = path_of(DEVICEKEY_SIGN_PUBLIC_FILE);
        assert_int_equal(unlink(pub), 0);
        put(DEVICEKEY_BOX_PUBLIC_FILE, "nixprov device key: x25519 public\n"
                                       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        assert_int_equal(devicekey_load_or_create(dir, &c, &created), 0);
        assert_false(created);
        assert_memory_equal(a, c, sizeof(*a));
        assert_int_equal(mode_of(DEVICEKEY_SIGN_PUBLIC_FILE), 0644);
        assert_int_equal(mode_of(DEVICEKEY_BOX_PUBLIC_FILE), 0644);

        /* The keys are pairs. */
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
        assert_int_equal(crypto_sign_ed25519_sk_to_pk(pk, a->sign_secret), 0);
        assert_memory_equal(pk, a->sign_public, sizeof(pk));
        assert_int_equal(crypto_sign_detached(sig, NULL, (const uint8_t *)"x", 1, a->sign_secret),
                         0);
        assert_int_equal(crypto_sign_verify_detached(sig, (const uint8_t *)"x", 1, a->sign_public),
                         0);
}

static void test_open_sealed(void **state)
{
        _cleanup_(devicekey_freep) struct devicekey *k = NULL;
        static const char secret[] = "eyJhbGciOiJIUzI1NiJ9.token";
        uint8_t sealed[sizeof(secret) - 1 + crypto_box_SEALBYTES];
        uint8_t other_pk[crypto_box_PUBLICKEYBYTES], other_sk[crypto_box_SECRETKEYBYTES];
        uint8_t *plain = NULL;
        size_t size = 0;
        char b64[DEVICEKEY_PUBLIC_BASE64_MAX];
        uint8_t parsed[32];
        (void)state;

        remove_all();
        assert_int_equal(devicekey_load_or_create(dir, &k, NULL), 0);

        /* The box key as "nixprov-agent id" prints it, and as the .pub file holds it. */
        devicekey_public_to_base64(k->box_public, b64);
        assert_int_equal(devicekey_box_public_parse(b64, strlen(b64), parsed), 0);
        assert_memory_equal(parsed, k->box_public, 32);
        _cleanup_free_ char *pub_path = path_of(DEVICEKEY_BOX_PUBLIC_FILE), *pub = NULL;
        size_t pub_size;
        assert_int_equal(read_file_bounded(pub_path, 1024, &pub, &pub_size), 0);
        assert_int_equal(devicekey_box_public_parse(pub, pub_size, parsed), 0);
        assert_memory_equal(parsed, k->box_public, 32);
        assert_int_equal(devicekey_box_public_parse("AAAA", 4, parsed), -EBADMSG);
        assert_int_equal(devicekey_box_public_parse("not a key", 9, parsed), -EBADMSG);

        assert_int_equal(
            crypto_box_seal(sealed, (const uint8_t *)secret, sizeof(secret) - 1, k->box_public), 0);
        assert_int_equal(devicekey_open_sealed(k, sealed, sizeof(sealed), &plain, &size), 0);
        assert_int_equal(size, sizeof(secret) - 1);
        assert_string_equal((char *)plain, secret);
        sodium_free(plain);

        /* Changed anywhere: refused. */
        for (size_t i = 0; i < sizeof(sealed); i += 7) {
                plain = NULL;
                sealed[i] ^= 0x01;
                assert_int_equal(devicekey_open_sealed(k, sealed, sizeof(sealed), &plain, &size),
                                 -EBADMSG);
                assert_null(plain);
                sealed[i] ^= 0x01;
        }
        assert_int_equal(devicekey_open_sealed(k, sealed, crypto_box_SEALBYTES - 1, &plain, &size),
                         -EBADMSG);

        /* Sealed to another device: refused. */
        assert_int_equal(crypto_box_keypair(other_pk, other_sk), 0);
        assert_int_equal(
            crypto_box_seal(sealed, (const uint8_t *)secret, sizeof(secret) - 1, other_pk), 0);
        assert_int_equal(devicekey_open_sealed(k, sealed, sizeof(sealed), &plain, &size), -EBADMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_damaged_files_are_refused),
            cmocka_unit_test(test_public_without_secret_is_refused),
            cmocka_unit_test(test_create_then_load),
            cmocka_unit_test(test_open_sealed),
        };
        int r;

        if (!mkdtemp(dir))
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
        return r;
}
