/* SPDX-License-Identifier: MIT */
/* nixprov sign: minisign-compatible signatures of profiles (FILE.minisig). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "fileio.h"
#include "log.h"
#include "minisign.h"
#include "password.h"
#include "util.h"

/* The largest file signed. Profiles are at most 1 MiB; this leaves room for anything else an
 * operator signs, while the whole file is held in memory. */
#define SIGN_FILE_MAX (64 * 1024 * 1024)

struct sign_options {
        const char *secret_key_path;
        const char *trusted_comment;
        const char *untrusted_comment;
        const char *signature_path;
        const char *password_file;
        bool legacy;
        char **files;
        int n_files;
};

static void sign_help(FILE *f)
{
        fprintf(f,
                "Usage: nixprov sign -s KEY.sec [OPTIONS] FILE...\n"
                "\n"
                "Signs each FILE with a minisign-compatible signature, written atomically to\n"
                "FILE.minisig (mode 0644). 'minisign -V' and nixprov-agent verify it.\n"
                "\n"
                "  -s, --secret-key FILE       the secret key (from 'nixprov keygen' or\n"
                "                              'minisign -G')\n"
                "  -t, --trusted-comment TEXT  the signed comment (default:\n"
                "                              timestamp:NOW<TAB>file:NAME<TAB>hashed)\n"
                "  -c, --comment TEXT          the unsigned comment (default: signature from\n"
                "                              minisign secret key)\n"
                "  -l, --legacy                legacy \"Ed\" signature of the file itself rather\n"
                "                              than of its BLAKE2b-512 hash\n"
                "  -x, --signature FILE        write the signature there (one FILE only)\n"
                "      --password-file FILE    read the key's password from FILE (its only line)\n"
                "  -h, --help                  show this help\n"
                "\n"
                "The password of an encrypted key is asked on the terminal with echo off, or\n"
                "read as one line from standard input when that is not a terminal; never from\n"
                "the command line or the environment. Files of up to %d MiB are signed.\n"
                "\n"
                "Exit status: 0 every FILE signed, 1 failure (a wrong password, an unreadable\n"
                "key or file, I/O), 2 usage error.\n",
                SIGN_FILE_MAX / (1024 * 1024));
}

static bool comment_ok(const char *comment, size_t max)
{
        return !strpbrk(comment, "\r\n") && strlen(comment) <= max;
}

/* What the options must say together. Logs; returns 0 or -EINVAL. */
static int sign_check_options(const struct sign_options *o)
{
        if (!o->secret_key_path) {
                log_error("No secret key: give -s KEY.sec. Run 'nixprov sign --help'.");
                return -EINVAL;
        }
        if (o->n_files == 0) {
                log_error("No file to sign. Run 'nixprov sign --help'.");
                return -EINVAL;
        }
        if (o->signature_path && o->n_files > 1) {
                log_error("-x names the signature of one file; %d files were given.", o->n_files);
                return -EINVAL;
        }
        if (o->signature_path && streq(o->signature_path, o->files[0])) {
                log_error("The signature would overwrite the file it signs.");
                return -EINVAL;
        }
        if (o->trusted_comment && !comment_ok(o->trusted_comment, MINISIGN_COMMENT_MAX)) {
                log_error("The trusted comment must be one line of at most %d bytes.",
                          MINISIGN_COMMENT_MAX);
                return -EINVAL;
        }
        if (o->untrusted_comment &&
            !comment_ok(o->untrusted_comment, MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX)) {
                log_error("The comment must be one line of at most %d bytes.",
                          MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX);
                return -EINVAL;
        }
        return 0;
}

static int sign_parse_argv(int argc, char **argv, struct sign_options *ret)
{
        enum { ARG_PASSWORD_FILE = 0x100 };
        static const struct option options[] = {
            {"secret-key", required_argument, NULL, 's'},
            {"trusted-comment", required_argument, NULL, 't'},
            {"comment", required_argument, NULL, 'c'},
            {"legacy", no_argument, NULL, 'l'},
            {"signature", required_argument, NULL, 'x'},
            {"password-file", required_argument, NULL, ARG_PASSWORD_FILE},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct sign_options o = {};
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":s:t:c:lx:h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        o.secret_key_path = optarg;
                        break;
                case 't':
                        /* As minisign: an empty trusted comment means the default one. */
                        o.trusted_comment = *optarg ? optarg : NULL;
                        break;
                case 'c':
                        o.untrusted_comment = *optarg ? optarg : NULL;
                        break;
                case 'l':
                        o.legacy = true;
                        break;
                case 'x':
                        o.signature_path = optarg;
                        break;
                case ARG_PASSWORD_FILE:
                        o.password_file = optarg;
                        break;
                case 'h':
                        sign_help(stdout);
                        return 0;
                case ':':
                        log_error("Option '%s' needs an argument.", argv[optind - 1]);
                        return -EINVAL;
                default:
                        log_error("Unknown option '%s'. Run 'nixprov sign --help'.",
                                  argv[optind - 1]);
                        return -EINVAL;
                }

        o.files = argv + optind;
        o.n_files = argc - optind;
        r = sign_check_options(&o);
        if (r < 0)
                return r;
        *ret = o;
        return 1;
}

/* Reads and decrypts the secret key. Returns 0 or a negative errno, having logged why. */
static int load_secret_key(const struct sign_options *o, struct minisign_secret_key **ret)
{
        _cleanup_password_ char *text = NULL, *password = NULL;
        size_t size;
        int r;

        r = password_read_secret_file(o->secret_key_path, MINISIGN_FILE_MAX, &text, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "%s is too large to be a secret key.",
                                       o->secret_key_path);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", o->secret_key_path);

        r = minisign_secret_key_is_encrypted(text, size);
        if (r == -EOPNOTSUPP)
                return log_error_errno(r, "%s uses an algorithm nixprov does not know.",
                                       o->secret_key_path);
        if (r < 0)
                return log_error_errno(r, "%s is not a minisign secret key.", o->secret_key_path);
        if (r > 0) {
                r = password_ask(o->password_file, "Password: ", &password);
                if (r < 0)
                        return r;
        }

        r = minisign_secret_key_parse(text, size, password, ret);
        switch (r) {
        case 0:
                return 0;
        case -EKEYREJECTED:
                return log_error_errno(r, "Wrong password for %s (or the key file is damaged).",
                                       o->secret_key_path);
        case -ENOMEM:
                return log_error_errno(r,
                                       "Not enough memory to decrypt %s (scrypt needs about "
                                       "1 GiB).",
                                       o->secret_key_path);
        case -E2BIG:
                return log_error_errno(r, "%s asks for more scrypt work than nixprov allows.",
                                       o->secret_key_path);
        default:
                return log_error_errno(r, "Failed to load %s: %m", o->secret_key_path);
        }
}

static const char *file_basename(const char *path)
{
        const char *slash = strrchr(path, '/');

        return slash ? slash + 1 : path;
}

/* Signs one file. Returns 0 or a negative errno, having logged why. */
static int sign_file(const struct sign_options *o, const struct minisign_secret_key *key,
                     const char *path, const char *signature_path)
{
        _cleanup_free_ char *data = NULL, *default_comment = NULL, *text = NULL;
        _cleanup_free_ char *default_signature_path = NULL;
        const char *trusted_comment = o->trusted_comment;
        size_t size;
        int r;

        r = read_file_bounded(path, SIGN_FILE_MAX, &data, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "%s is larger than %d MiB.", path,
                                       SIGN_FILE_MAX / (1024 * 1024));
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);

        if (!trusted_comment) {
                /* minisign's default trusted comment. */
                if (asprintf(&default_comment, "timestamp:%lu\tfile:%s%s",
                             (unsigned long)time(NULL), file_basename(path),
                             o->legacy ? "" : "\thashed") < 0)
                        return log_error_errno(-ENOMEM, "Out of memory.");
                if (!comment_ok(default_comment, MINISIGN_COMMENT_MAX))
                        return log_error_errno(-EINVAL,
                                               "The name of %s does not fit in a trusted comment; "
                                               "give one with -t.",
                                               path);
                trusted_comment = default_comment;
        }

        r = minisign_sign(key, (const uint8_t *)data, size, trusted_comment, o->untrusted_comment,
                          !o->legacy, &text);
        if (r < 0)
                return log_error_errno(r, "Failed to sign %s: %m", path);

        if (!signature_path) {
                if (asprintf(&default_signature_path, "%s.minisig", path) < 0)
                        return log_error_errno(-ENOMEM, "Out of memory.");
                signature_path = default_signature_path;
        }
        r = write_file_atomic(signature_path, text, strlen(text), 0644, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", signature_path);
        return 0;
}

int cmd_sign(int argc, char **argv)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *key = NULL;
        struct sign_options o;
        int r;

        r = sign_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;

        if (load_secret_key(&o, &key) < 0)
                return EXIT_FAIL;
        for (int i = 0; i < o.n_files; i++)
                if (sign_file(&o, key, o.files[i], o.signature_path) < 0)
                        return EXIT_FAIL;
        return EXIT_OK;
}
