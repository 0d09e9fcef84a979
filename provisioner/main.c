/* SPDX-License-Identifier: MIT */
/* nixprov: the operator's tool and provisioning server. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"

static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *description;
} commands[] = {
    {"keygen", cmd_keygen, "make a signing key pair (minisign format)"},
    {"sign", cmd_sign, "sign a profile: writes FILE.minisig"},
    {"verify", cmd_verify, "check a profile's signature and schema"},
    {"check", cmd_check, "check profiles against the schema, reporting every error"},
    {"seal", cmd_seal, "seal a secret to one device: prints {sealed: BASE64}"},
    {"serve", cmd_serve, "serve profiles, take enrollments and store signed reports"},
    {"fleet", cmd_fleet, "show the fleet; approve, revoke or reset a machine's enrollment"},
    {"purge", cmd_purge, "delete the machines pending for longer than a duration"},
};

static void show_usage(FILE *f)
{
        fprintf(f, "Usage: nixprov COMMAND [OPTIONS...]\n\n"
                   "The operator's tool and provisioning server for nixprov-agent: makes keys,\n"
                   "signs and checks profiles, serves them, and shows the fleet's reports.\n\n"
                   "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].description);
        fprintf(f, "\nRun 'nixprov COMMAND --help' for a command's options.\n"
                   "Exit codes: 0 success, 1 failure, 2 usage error, 4 refused (signature or "
                   "profile).\n");
}

int main(int argc, char **argv)
{
        log_setup("nixprov", LOG_LEVEL_INFO);

        if (argc < 2) {
                show_usage(stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                show_usage(stdout);
                return EXIT_OK;
        }
        if (streq(argv[1], "--version")) {
                printf("nixprov %s\n", NIXPROV_VERSION);
                return EXIT_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].fn(argc - 1, argv + 1);

        log_error("Unknown command '%s'. Run 'nixprov --help' for the list.", argv[1]);
        return EXIT_USAGE;
}
