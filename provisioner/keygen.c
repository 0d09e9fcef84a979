/* SPDX-License-Identifier: MIT */
/* nixprov keygen: a minisign-compatible key pair for signing profiles. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "commands.h"
#include "fileio.h"
#include "log.h"
#include "minisign.h"
#include "password.h"

struct keygen_options {
        const char *public_key_path;
        const char *secret_key_path;
        const char *comment;
        const char *password_file;
        bool unencrypted;
        bool force;
};

static void keygen_help(FILE *f)
{
        fprintf(f,
                "Usage: nixprov keygen -p KEY.pub -s KEY.sec [OPTIONS]\n"
                "\n"
                "Makes an Ed25519 key pair for signing profiles, in minisign's formats: the\n"
                "minisign tool reads both files, and nixprov reads the ones minisign makes.\n"
                "\n"
                "  -p, --public-key FILE    where to write the public key (mode 0644)\n"
                "  -s, --secret-key FILE    where to write the secret key (mode 0600)\n"
                "  -W, --unencrypted        do not protect the secret key with a password\n"
                "  -f, --force              replace existing key files\n"
                "  -c, --comment TEXT       the secret key file's comment (one line)\n"
                "      --password-file FILE read the password from FILE (its only line)\n"
                "  -h, --help               show this help\n"
                "\n"
                "Without -W the password is asked twice, on the terminal with echo off, or read\n"
                "as two lines from standard input when that is not a terminal. Passwords are\n"
                "never taken from the command line or the environment. Encrypting the key uses\n"
                "scrypt with minisign's parameters: about 1 GiB of memory and a few seconds.\n"
                "\n"
                "Exit status: 0 key pair written, 1 failure (a key file exists, the passwords\n"
                "differ, not enough memory, I/O), 2 usage error.\n");
}

static int keygen_parse_argv(int argc, char **argv, struct keygen_options *ret)
{
        enum { ARG_PASSWORD_FILE = 0x100 };
        static const struct option options[] = {
            {"public-key", required_argument, NULL, 'p'},
            {"secret-key", required_argument, NULL, 's'},
            {"unencrypted", no_argument, NULL, 'W'},
            {"force", no_argument, NULL, 'f'},
            {"comment", required_argument, NULL, 'c'},
            {"password-file", required_argument, NULL, ARG_PASSWORD_FILE},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct keygen_options o = {};
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":p:s:Wfc:h", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        o.public_key_path = optarg;
                        break;
                case 's':
                        o.secret_key_path = optarg;
                        break;
                case 'W':
                        o.unencrypted = true;
                        break;
                case 'f':
                        o.force = true;
                        break;
                case 'c':
                        o.comment = optarg;
                        break;
                case ARG_PASSWORD_FILE:
                        o.password_file = optarg;
                        break;
                case 'h':
                        keygen_help(stdout);
                        return 0;
                case ':':
                        log_error("Option '%s' needs an argument.", argv[optind - 1]);
                        return -EINVAL;
                default:
                        log_error("Unknown option '%s'. Run 'nixprov keygen --help'.",
                                  argv[optind - 1]);
                        return -EINVAL;
                }

        if (optind < argc) {
                log_error("Unexpected argument '%s'.", argv[optind]);
                return -EINVAL;
        }
        if (!o.public_key_path || !o.secret_key_path) {
                log_error("Both -p KEY.pub and -s KEY.sec are needed. Run 'nixprov keygen "
                          "--help'.");
                return -EINVAL;
        }
        if (streq(o.public_key_path, o.secret_key_path)) {
                log_error("The public and the secret key cannot be the same file.");
                return -EINVAL;
        }
        if (o.comment && (strpbrk(o.comment, "\r\n") ||
                          strlen(o.comment) > MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX)) {
                log_error("The comment must be one line of at most %d bytes.",
                          MINISIGN_UNTRUSTED_COMMENT_WRITE_MAX);
                return -EINVAL;
        }
        if (o.unencrypted && o.password_file) {
                log_error("--password-file makes no sense with -W.");
                return -EINVAL;
        }
        *ret = o;
        return 1;
}

static int refuse_existing(const char *path)
{
        struct stat st;

        /* lstat(): a dangling symbolic link is in the way too. */
        if (lstat(path, &st) == 0)
                return log_error_errno(-EEXIST,
                                       "%s already exists. Use -f to replace the key pair.", path);
        if (errno != ENOENT)
                return log_error_errno(-errno, "Cannot check %s: %m", path);
        return 0;
}

static int keygen_password(const struct keygen_options *o, char **ret_password)
{
        _cleanup_password_ char *password = NULL, *again = NULL;
        int r;

        if (!o->password_file && isatty(STDIN_FILENO))
                log_info("Please enter a password to protect the secret key.");
        r = password_ask(o->password_file, "Password: ", &password);
        if (r < 0)
                return r;
        if (!o->password_file) {
                r = password_ask(NULL, "Password (one more time): ", &again);
                if (r < 0)
                        return r;
                if (!streq(password, again))
                        return log_error_errno(-EINVAL, "The passwords do not match.");
        }
        if (password[0] == '\0')
                return log_error_errno(-EINVAL, "The password is empty. Use -W for a secret key "
                                                "without a password.");
        *ret_password = TAKE_PTR(password);
        return 0;
}

static void erase_and_free(char **p)
{
        if (*p) {
                sodium_memzero(*p, strlen(*p));
                free(*p);
                *p = NULL;
        }
}

/* Writes the secret key (0600) and then the public key (0644); without -f, neither may
 * exist, and a secret key written without its public half is removed again. Logs. */
static int keygen_write(const struct keygen_options *o, const char *secret_text, size_t secret_size,
                        const char *public_text)
{
        enum write_file_flags flags;
        int r;

        /* Created with its final mode 0600 from the start; without -f, link() refuses to
         * replace anything that appeared since keygen() checked. */
        flags = o->force ? 0 : WRITE_FILE_EXCLUSIVE;
        r = write_file_atomic(o->secret_key_path, secret_text, secret_size, 0600, flags);
        if (r == -EEXIST)
                return log_error_errno(r, "%s already exists. Use -f to replace the key pair.",
                                       o->secret_key_path);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", o->secret_key_path);

        r = write_file_atomic(o->public_key_path, public_text, strlen(public_text), 0644, flags);
        if (r < 0) {
                log_error_errno(r, "Failed to write %s: %m", o->public_key_path);
                if (!o->force) {
                        /* Ours alone (created exclusively): leave no half of a pair behind. */
                        (void)unlink(o->secret_key_path);
                        log_error("Removed %s again.", o->secret_key_path);
                } else
                        log_error("%s was replaced already and does not match %s.",
                                  o->secret_key_path, o->public_key_path);
                return r;
        }

        return 0;
}

/* Where the keys are and what to do with them. */
static void keygen_print_summary(const struct keygen_options *o,
                                 const struct minisign_public_key *public, const char *public_text)
{
        char id[MINISIGN_KEY_ID_STRING_MAX];
        const char *public_base64;
        int public_base64_size;

        public_base64 = strchr(public_text, '\n') + 1;
        public_base64_size = (int)strcspn(public_base64, "\n");
        printf("The secret key was saved as %s - keep it secret.\n"
               "The public key was saved as %s - that one can be public.\n"
               "\n"
               "Key id:     %s\n"
               "Public key: %.*s\n"
               "\n"
               "Sign a profile:      nixprov sign -s %s profile.yaml\n"
               "Check a signature:   minisign -Vm profile.yaml -P %.*s\n"
               "Trust it on devices: list the public key in nixprov-agent's configuration.\n",
               o->secret_key_path, o->public_key_path,
               minisign_key_id_to_string(public->key_id, id), public_base64_size, public_base64,
               o->secret_key_path, public_base64_size, public_base64);
}

/* Makes and writes the key pair. Returns 0 or a negative errno, having logged why. */
static int keygen(const struct keygen_options *o)
{
        _cleanup_(minisign_secret_key_freep) struct minisign_secret_key *secret = NULL;
        _cleanup_(erase_and_free) char *secret_text = NULL;
        _cleanup_password_ char *password = NULL;
        _cleanup_free_ char *public_text = NULL;
        struct minisign_public_key public;
        size_t secret_size;
        int r;

        /* Before asking for any password; checked again, race-free, when writing. */
        if (!o->force) {
                r = refuse_existing(o->secret_key_path);
                if (r < 0)
                        return r;
                r = refuse_existing(o->public_key_path);
                if (r < 0)
                        return r;
        }

        if (!o->unencrypted) {
                r = keygen_password(o, &password);
                if (r < 0)
                        return r;
        }

        r = minisign_generate(&public, &secret);
        if (r < 0)
                return log_error_errno(r, "Failed to make a key pair: %m");

        if (password)
                log_info("Deriving a key from the password to encrypt the secret key...");
        r = minisign_secret_key_format_with_comment(secret, password, o->comment, &secret_text,
                                                    &secret_size);
        password = password_free(password);
        if (r == -ENOMEM)
                return log_error_errno(r, "Not enough memory to encrypt the secret key (scrypt "
                                          "needs about 1 GiB).");
        if (r < 0)
                return log_error_errno(r, "Failed to format the secret key: %m");
        r = minisign_public_key_format(&public, &public_text);
        if (r < 0)
                return log_error_errno(r, "Failed to format the public key: %m");

        r = keygen_write(o, secret_text, secret_size, public_text);
        if (r < 0)
                return r;
        keygen_print_summary(o, &public, public_text);
        return 0;
}

int cmd_keygen(int argc, char **argv)
{
        struct keygen_options o;
        int r;

        r = keygen_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;
        return keygen(&o) < 0 ? EXIT_FAIL : EXIT_OK;
}
