/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devicekey.h"
#include "fileio.h"
#include "util.h"

#define HEADER_PREFIX "nixprov device key: "

static void sodium_freep(void *p)
{
        sodium_free(*(void **)p);
}
#define _cleanup_sodium_free_ _cleanup_(sodium_freep)

struct devicekey *devicekey_free(struct devicekey *k)
{
        sodium_free(k); /* wipes; accepts NULL */
        return NULL;
}

char *devicekey_public_to_base64(const uint8_t key[static 32],
                                 char out[static DEVICEKEY_PUBLIC_BASE64_MAX])
{
        sodium_bin2base64(out, DEVICEKEY_PUBLIC_BASE64_MAX, key, 32,
                          sodium_base64_VARIANT_ORIGINAL);
        return out;
}

/* Parses "HEADER\nBASE64\n" (the last newline optional) into out, which must be exactly size
 * bytes once decoded. text may be secret: nothing is copied out of it but into out. */
static int key_text_parse(const char *text, size_t len, const char *header, uint8_t *out,
                          size_t size)
{
        size_t header_len = strlen(header), got;
        const char *b64;
        size_t b64_len;
        int r;

        if (len < header_len + 1 || memcmp(text, header, header_len) != 0 ||
            text[header_len] != '\n')
                return -EBADMSG;
        b64 = text + header_len + 1;
        b64_len = len - header_len - 1;
        if (b64_len > 0 && b64[b64_len - 1] == '\n')
                b64_len--;
        r = base64_decode_strict(b64, b64_len, out, size, &got);
        if (r < 0 || got != size)
                return -EBADMSG;
        return 0;
}

/* Reads a key file into sodium_malloc() memory and decodes it into out (size bytes). */
static int key_file_read(const char *path, const char *header, uint8_t *out, size_t size)
{
        _cleanup_sodium_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;
        int r;

        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        text = sodium_malloc(DEVICEKEY_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        r = read_fd_into(fd, text, DEVICEKEY_FILE_MAX, &len);
        if (r < 0) /* text is wiped when freed */
                return r == -E2BIG ? -EBADMSG : r;
        return key_text_parse(text, len, header, out, size);
}

/* Writes HEADER\nBASE64\n of data to path with mode; the text is built in sodium memory. */
static int key_file_write(const char *path, const char *header, const uint8_t *data, size_t size,
                          mode_t mode, enum write_file_flags flags)
{
        _cleanup_sodium_free_ char *text = NULL;
        size_t header_len = strlen(header),
               b64_max = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
        size_t total = header_len + 1 + b64_max + 1;
        size_t len;

        text = sodium_malloc(total);
        if (!text)
                return -ENOMEM;
        memcpy(text, header, header_len);
        text[header_len] = '\n';
        sodium_bin2base64(text + header_len + 1, b64_max, data, size,
                          sodium_base64_VARIANT_ORIGINAL);
        len = strlen(text);
        text[len++] = '\n';
        return write_file_atomic(path, text, len, mode, flags);
}

struct pair {
        const char *secret_file, *public_file;
        const char *secret_header, *public_header;
};

static const struct pair sign_pair = {
    DEVICEKEY_SIGN_SECRET_FILE,
    DEVICEKEY_SIGN_PUBLIC_FILE,
    HEADER_PREFIX "ed25519 secret",
    HEADER_PREFIX "ed25519 public",
};
static const struct pair box_pair = {
    DEVICEKEY_BOX_SECRET_FILE,
    DEVICEKEY_BOX_PUBLIC_FILE,
    HEADER_PREFIX "x25519 secret",
    HEADER_PREFIX "x25519 public",
};

static int public_from_secret(bool sign, const uint8_t *secret, uint8_t *public)
{
        if (sign)
                return crypto_sign_ed25519_sk_to_pk(public, secret) < 0 ? -EIO : 0;
        return crypto_scalarmult_base(public, secret) < 0 ? -EIO : 0;
}

/* Loads one pair, creating it when neither file exists. */
static int pair_load_or_create(const char *dir, const struct pair *pair, bool sign, uint8_t *secret,
                               size_t secret_size, uint8_t *public, size_t public_size,
                               bool *created)
{
        _cleanup_free_ char *secret_path = NULL, *public_path = NULL;
        uint8_t on_disk[32];
        int r;

        if (asprintf(&secret_path, "%s/%s", dir, pair->secret_file) < 0) {
                secret_path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&public_path, "%s/%s", dir, pair->public_file) < 0) {
                public_path = NULL;
                return -ENOMEM;
        }

        r = key_file_read(secret_path, pair->secret_header, secret, secret_size);
        if (r == -ENOENT) {
                /* A public key without its secret one: the device's identity was lost. Making a
                 * new one silently would look like another device to the server. */
                if (access(public_path, F_OK) == 0)
                        return -EEXIST;
                if (sign)
                        r = crypto_sign_keypair(public, secret) < 0 ? -EIO : 0;
                else
                        r = crypto_box_keypair(public, secret) < 0 ? -EIO : 0;
                if (r < 0)
                        return r;
                r = key_file_write(secret_path, pair->secret_header, secret, secret_size, 0600,
                                   WRITE_FILE_EXCLUSIVE);
                if (r == -EEXIST) /* another process made it first: use that one */
                        r = key_file_read(secret_path, pair->secret_header, secret, secret_size);
                else if (r >= 0)
                        *created = true;
        }
        if (r < 0)
                return r;
        r = public_from_secret(sign, secret, public);
        if (r < 0)
                return r;

        r = key_file_read(public_path, pair->public_header, on_disk, public_size);
        if (r >= 0 && sodium_memcmp(on_disk, public, public_size) == 0)
                return 0;
        /* Missing, damaged or not the secret key's: the secret key decides. */
        return key_file_write(public_path, pair->public_header, public, public_size, 0644, 0);
}

int devicekey_load_or_create(const char *state_dir, struct devicekey **ret, bool *ret_created)
{
        struct devicekey *k;
        bool created = false;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        k = sodium_malloc(sizeof(*k));
        if (!k)
                return -ENOMEM;
        r = pair_load_or_create(state_dir, &sign_pair, true, k->sign_secret, sizeof(k->sign_secret),
                                k->sign_public, sizeof(k->sign_public), &created);
        if (r >= 0)
                r = pair_load_or_create(state_dir, &box_pair, false, k->box_secret,
                                        sizeof(k->box_secret), k->box_public, sizeof(k->box_public),
                                        &created);
        if (r < 0) {
                devicekey_free(k);
                return r;
        }
        *ret = k;
        if (ret_created)
                *ret_created = created;
        return 0;
}

int devicekey_box_public_parse(const char *text, size_t size, uint8_t ret_key[static 32])
{
        uint8_t key[32];
        size_t got;

        if (key_text_parse(text, size, box_pair.public_header, key, sizeof(key)) == 0) {
                memcpy(ret_key, key, sizeof(key));
                return 0;
        }
        if (size > 0 && text[size - 1] == '\n')
                size--;
        if (base64_decode_strict(text, size, key, sizeof(key), &got) < 0 || got != sizeof(key))
                return -EBADMSG;
        memcpy(ret_key, key, sizeof(key));
        return 0;
}

int devicekey_open_sealed(const struct devicekey *k, const uint8_t *sealed, size_t sealed_size,
                          uint8_t **ret_plain, size_t *ret_size)
{
        uint8_t *plain;
        size_t size;

        if (sealed_size < crypto_box_SEALBYTES)
                return -EBADMSG;
        size = sealed_size - crypto_box_SEALBYTES;
        plain = sodium_malloc(size + 1);
        if (!plain)
                return -ENOMEM;
        if (crypto_box_seal_open(plain, sealed, sealed_size, k->box_public, k->box_secret) != 0) {
                sodium_free(plain);
                return -EBADMSG;
        }
        plain[size] = '\0';
        *ret_plain = plain;
        *ret_size = size;
        return 0;
}
