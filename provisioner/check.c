/* SPDX-License-Identifier: MIT */
/* nixprov check: validates profiles against the schema (no signature is looked at). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "profile.h"
#include "util.h"

static void show_usage(FILE *f)
{
        fprintf(f,
                "Usage: nixprov check [--quiet] FILE...\n\n"
                "Checks profiles against the schema (schema %d) and reports every invalid\n"
                "file as FILE:LINE:COLUMN: KEY: MESSAGE. FILE '-' reads standard input.\n"
                "Signatures are not checked: see 'nixprov verify'.\n\n"
                "Options:\n"
                "  -q, --quiet  print nothing for valid files\n"
                "  -h, --help   show this help\n\n"
                "Exit codes: 0 all valid, 1 a file could not be read, 2 usage error,\n"
                "4 a profile is invalid.\n",
                PROFILE_SCHEMA);
}

/* Returns EXIT_OK, EXIT_REFUSED or EXIT_FAIL for one file, after saying why. */
static int check_one(const char *path, bool quiet)
{
        _cleanup_(profile_freep) struct profile *profile = NULL;
        _cleanup_free_ char *data = NULL;
        struct profile_error error = {};
        char line[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX + PROFILE_ERROR_MESSAGE_MAX + 32];
        bool from_stdin = streq(path, "-");
        size_t size;
        int r;

        if (from_stdin)
                r = read_fd_bounded(STDIN_FILENO, PROFILE_MAX_BYTES, &data, &size);
        else
                r = read_file_bounded(path, PROFILE_MAX_BYTES, &data, &size);
        if (r == -E2BIG) {
                fprintf(stderr, "%s: larger than 1 MiB (%d bytes), the limit for a profile\n", path,
                        PROFILE_MAX_BYTES);
                return EXIT_REFUSED;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to read %s: %m", path);
                return EXIT_FAIL;
        }

        r = profile_parse(data, size, path, &profile, &error);
        if (r == -ENOMEM) {
                log_error_errno(r, "Failed to check %s: %m", path);
                return EXIT_FAIL;
        }
        if (r < 0) {
                fprintf(stderr, "%s\n", profile_error_format(&error, line, sizeof(line)));
                return EXIT_REFUSED;
        }

        if (!quiet) {
                char expires[RFC3339_MAX];

                printf("%s: ok (serial %llu, strategy %s, expires %s)\n", path,
                       (unsigned long long)profile->serial,
                       profile_strategy_to_string(profile->strategy),
                       format_rfc3339_utc(profile->expires, expires));
        }
        return EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
        static const struct option options[] = {
            {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        bool quiet = false, refused = false, failed = false;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "qh", options, NULL)) >= 0)
                switch (c) {
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        show_usage(stdout);
                        return EXIT_OK;
                default:
                        show_usage(stderr);
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                log_error("No profile given. Run 'nixprov check --help' for usage.");
                return EXIT_USAGE;
        }

        for (int i = optind; i < argc; i++) {
                int r = check_one(argv[i], quiet);

                if (r == EXIT_FAIL)
                        failed = true;
                else if (r == EXIT_REFUSED)
                        refused = true;
        }
        if (fflush(stdout) != 0) {
                log_error_errno(negative_errno(), "Failed to write the results: %m");
                return EXIT_FAIL;
        }
        return failed ? EXIT_FAIL : refused ? EXIT_REFUSED : EXIT_OK;
}
