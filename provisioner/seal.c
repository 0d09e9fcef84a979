/* SPDX-License-Identifier: MIT */
/* nixprov seal: turns a secret into a {sealed: BASE64} value for one device's profile. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "commands.h"
#include "devicekey.h"
#include "log.h"
#include "machine_id.h"
#include "profile.h"
#include "store.h"
#include "util.h"

/* The largest secret whose sealed box a profile accepts. */
#define SEAL_MAX_SECRET (PROFILE_MAX_SEALED - crypto_box_SEALBYTES)

static void seal_help(void)
{
        printf("Usage: nixprov seal --to BOXKEY [--file FILE]\n"
               "       nixprov seal --machine ID --db FILE [--file FILE]\n\n"
               "Seals a secret (a Cachix auth token, a builder's SSH private key) to one device\n"
               "with crypto_box_seal and prints it as {sealed: BASE64}, ready to paste into that\n"
               "device's profile. Only the device, with the secret half of its box key, can open\n"
               "it. The secret is read from standard input (or FILE), never from the command\n"
               "line; one trailing newline is removed. At most %d bytes.\n\n"
               "Options:\n"
               "  -t, --to BOXKEY    the device's box public key: the base64 'box-key' that\n"
               "                     'nixprov-agent id' prints, or its device-box.pub file\n"
               "  -m, --machine ID   seal to the box key machine ID enrolled with, read from the\n"
               "                     server's database (--db); the machine must be approved,\n"
               "                     with the keys it had when it was approved\n"
               "      --accept-changed-keys  seal to a machine whose keys changed since it was\n"
               "                     approved (after 'nixprov fleet reset')\n"
               "      --db FILE      the database of nixprov serve (its --db, or DATA/nixprov.db)\n"
               "  -f, --file FILE    read the secret from FILE instead of standard input\n"
               "  -h, --help         show this help\n\n"
               "Exit codes: 0 sealed, 1 the secret or the database cannot be read, 2 usage error\n"
               "(a bad key, an empty or too large secret), 4 refused: the machine is not\n"
               "approved (unknown, unenrolled, pending or revoked), or its keys changed since.\n",
               (int)SEAL_MAX_SECRET);
}

static void sodium_freep(void *p)
{
        sodium_free(*(void **)p);
}

/* The keys the machine holds must be those it had when it was approved: after a reset, whoever
 * enrolled first under its id may be approved by a policy that names the id or a MAC. */
static int machine_check_approved_keys(const struct store_trust *trust, const char *machine_id,
                                       bool accept_changed_keys)
{
        bool same = trust->has_approved_keys && streq(trust->approved_sign_key, trust->sign_key) &&
                    streq(trust->approved_box_key, trust->box_key);

        if (same)
                return 0;
        if (accept_changed_keys) {
                log_warning("Machine %s holds other keys than when it was approved; sealing to "
                            "them anyway (--accept-changed-keys).",
                            machine_id);
                return 0;
        }
        return log_error_errno(-EPERM,
                               "Machine %s holds other keys than when it was approved (reset and "
                               "enrolled again, maybe by another device): confirm them with "
                               "'nixprov fleet approve %s', or pass --accept-changed-keys.",
                               machine_id, machine_id);
}

/* The box key an approved machine enrolled with. Logs; returns 0, -EPERM (not approved), or
 * another negative errno. */
static int machine_box_key(const char *db, const char *machine_id, bool accept_changed_keys,
                           uint8_t key[static crypto_box_PUBLICKEYBYTES])
{
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_trust trust;
        size_t n;
        int r;

        /* store_open() would make a new database for a mistyped path. */
        if (access(db, F_OK) < 0)
                return log_error_errno(-errno, "Cannot use database %s: %m", db);
        r = store_open(db, &store);
        if (r < 0)
                return log_error_errno(r, "Failed to open database %s: %m", db);
        r = store_get_trust(store, machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && trust.state == STORE_STATE_UNENROLLED))
                return log_error_errno(-EPERM,
                                       "Machine %s has not enrolled: there is no box key to seal "
                                       "to.",
                                       machine_id);
        if (r < 0)
                return log_error_errno(r, "Failed to read machine %s: %m", machine_id);
        if (trust.state == STORE_STATE_PENDING)
                return log_error_errno(-EPERM,
                                       "Machine %s is pending: approve it first ('nixprov fleet "
                                       "approve %s') - an unapproved enrollment may be an "
                                       "impostor's key.",
                                       machine_id, machine_id);
        if (trust.state == STORE_STATE_REVOKED)
                return log_error_errno(-EPERM, "Machine %s is revoked: nothing is sealed to it.",
                                       machine_id);
        r = machine_check_approved_keys(&trust, machine_id, accept_changed_keys);
        if (r < 0)
                return r;
        if (base64_decode_strict(trust.box_key, strlen(trust.box_key), key,
                                 crypto_box_PUBLICKEYBYTES, &n) < 0 ||
            n != crypto_box_PUBLICKEYBYTES)
                return log_error_errno(-EBADMSG, "The box key of machine %s in %s is not a key.",
                                       machine_id, db);
        return 0;
}

static int parse_to(const char *spec, uint8_t key[static crypto_box_PUBLICKEYBYTES])
{
        _cleanup_free_ char *data = NULL;
        size_t size;

        if (read_file_bounded(spec, DEVICEKEY_FILE_MAX, &data, &size) >= 0)
                return devicekey_box_public_parse(data, size, key);
        return devicekey_box_public_parse(spec, strlen(spec), key);
}

struct seal_options {
        const char *to_spec;
        const char *file; /* NULL: standard input */
        const char *machine_id;
        const char *db;
        bool accept_changed_keys;
};

/* Returns 1 to seal, 0 after --help, or -EINVAL for a usage error (logged). */
static int seal_parse_argv(int argc, char **argv, struct seal_options *ret)
{
        static const struct option options[] = {
            {"to", required_argument, NULL, 't'},
            {"file", required_argument, NULL, 'f'},
            {"machine", required_argument, NULL, 'm'},
            {"db", required_argument, NULL, 'd'},
            {"accept-changed-keys", no_argument, NULL, 'A'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct seal_options o = {};
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "t:f:m:h", options, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        o.machine_id = optarg;
                        break;
                case 'd':
                        o.db = optarg;
                        break;
                case 'A':
                        o.accept_changed_keys = true;
                        break;
                case 't':
                        o.to_spec = optarg;
                        break;
                case 'f':
                        o.file = optarg;
                        break;
                case 'h':
                        seal_help();
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind != argc) {
                /* A secret on the command line would be in ps, the shell history, /proc. */
                log_error("Unexpected argument: the secret is read from standard input or --file, "
                          "never from the command line. Run 'nixprov seal --help'.");
                return -EINVAL;
        }
        if (!o.to_spec == !o.machine_id) {
                log_error("Either --to BOXKEY (the device's box key, from 'nixprov-agent id') or "
                          "--machine ID --db FILE (its enrolled key) is required.");
                return -EINVAL;
        }
        if (o.machine_id && !o.db) {
                log_error("--machine needs --db FILE, the database of nixprov serve.");
                return -EINVAL;
        }
        if (o.machine_id && !machine_id_is_canonical(o.machine_id)) {
                log_error("Invalid machine id '%s': expected 32 lowercase hexadecimal digits.",
                          o.machine_id);
                return -EINVAL;
        }
        *ret = o;
        return 1;
}

/* The secret from file (NULL: standard input) into locked memory *ret (SEAL_MAX_SECRET + 1
 * bytes, the caller's to sodium_free()), without one trailing newline. Logs; returns 0,
 * -E2BIG (too large), -ENODATA (empty), or another negative errno. */
static int seal_read_secret(const char *file, uint8_t **ret, size_t *ret_size)
{
        __attribute__((cleanup(sodium_freep))) uint8_t *secret = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size = 0;
        int r;

        fd = file ? open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY) : STDIN_FILENO;
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open %s: %m", file);
        secret = sodium_malloc(SEAL_MAX_SECRET + 1);
        if (!secret)
                return log_oom();
        r = read_fd_into(fd, secret, SEAL_MAX_SECRET, &size);
        if (!file)
                fd = -EBADF; /* stdin is not ours to close */
        if (r == -E2BIG) {
                sodium_memzero(secret, SEAL_MAX_SECRET + 1);
                return log_error_errno(r, "The secret is larger than %d bytes.",
                                       (int)SEAL_MAX_SECRET);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read the secret from %s: %m",
                                       file ?: "standard input");
        if (size > 0 && secret[size - 1] == '\n')
                size--;
        if (size == 0)
                return log_error_errno(-ENODATA, "The secret is empty.");
        *ret = TAKE_PTR(secret);
        *ret_size = size;
        return 0;
}

/* Prints {sealed: BASE64} of secret sealed to the box key to. Logs; returns 0 or -errno. */
static int seal_print(const uint8_t *secret, size_t size,
                      const uint8_t to[static crypto_box_PUBLICKEYBYTES])
{
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *b64 = NULL;
        size_t b64_size;

        sealed = malloc(size + crypto_box_SEALBYTES);
        b64_size =
            sodium_base64_ENCODED_LEN(size + crypto_box_SEALBYTES, sodium_base64_VARIANT_ORIGINAL);
        b64 = malloc(b64_size);
        if (!sealed || !b64)
                return log_oom();
        if (crypto_box_seal(sealed, secret, size, to) != 0)
                return log_error_errno(-EIO, "Failed to seal the secret.");
        sodium_bin2base64(b64, b64_size, sealed, size + crypto_box_SEALBYTES,
                          sodium_base64_VARIANT_ORIGINAL);
        printf("{sealed: %s}\n", b64);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

int cmd_seal(int argc, char **argv)
{
        __attribute__((cleanup(sodium_freep))) uint8_t *secret = NULL;
        uint8_t to[crypto_box_PUBLICKEYBYTES];
        struct seal_options o;
        size_t size = 0;
        int r;

        r = seal_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r == 0 ? EXIT_OK : EXIT_USAGE;
        if (sodium_init() < 0) {
                log_error("Failed to initialize libsodium.");
                return EXIT_FAIL;
        }
        if (o.machine_id) {
                r = machine_box_key(o.db, o.machine_id, o.accept_changed_keys, to);
                if (r == -EPERM)
                        return EXIT_REFUSED;
                if (r < 0)
                        return EXIT_FAIL;
        } else if (parse_to(o.to_spec, to) < 0) {
                log_error("--to: not a box public key (the base64 of 32 bytes, as "
                          "'nixprov-agent id' prints it, or a device-box.pub file).");
                return EXIT_USAGE;
        }

        r = seal_read_secret(o.file, &secret, &size);
        if (r == -E2BIG || r == -ENODATA)
                return EXIT_USAGE;
        if (r < 0)
                return EXIT_FAIL;
        return seal_print(secret, size, to) < 0 ? EXIT_FAIL : EXIT_OK;
}
