/* SPDX-License-Identifier: MIT */
/* nixprov-agent: provisions this device from a signed profile. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"

static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *description;
} commands[] = {
    {"run", cmd_run, "provision this device: fetch, verify, write, rebuild, report"},
    {"watch", cmd_watch, "keep a long-poll open and run as 'run' for each new profile"},
    {"status", cmd_status, "show where this device stands: serial, last run, pending reports"},
    {"fetch", cmd_fetch, "download a file from the mirrors, with retries, deadline and cap"},
    {"verify", cmd_verify, "decide whether a profile would be applied, applying nothing"},
    {"rebuild", cmd_rebuild, "run a command as the rebuild phase runs nixos-rebuild"},
    {"report", cmd_report, "emit one report (spooled first, then sent); marks interventions"},
    {"flush", cmd_flush, "deliver the spooled reports to the server"},
    {"builders", cmd_builders, "probe the applied profile's remote builders over SSH"},
    {"enroll", cmd_enroll, "enroll with the server and show whether it admits this device"},
    {"id", cmd_id, "show the machine id and the public keys (made on first use)"},
};

static void show_usage(FILE *f)
{
        fprintf(f, "Usage: nixprov-agent COMMAND [OPTIONS...]\n\n"
                   "Provisions this NixOS machine from a signed nixprov profile.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].description);
        fprintf(
            f,
            "\nRun 'nixprov-agent COMMAND --help' for a command's options.\n"
            "Exit codes: 0 done or nothing to do, 2 usage or config error, 3 fetch failed,\n"
            "4 verification refused, 5 write failed, 6 builders unusable, 7 rebuild "
            "failed,\n8 report could not be spooled, 9 not admitted by the server (revoked, still\n"
            "pending, or enrolled with another key).\n");
}

int main(int argc, char **argv)
{
        log_setup("nixprov-agent", LOG_LEVEL_INFO);

        if (argc < 2) {
                show_usage(stderr);
                return AGENT_EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                show_usage(stdout);
                return AGENT_EXIT_OK;
        }
        if (streq(argv[1], "--version")) {
                printf("nixprov-agent %s\n", NIXPROV_VERSION);
                return AGENT_EXIT_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].fn(argc - 1, argv + 1);

        log_error("Unknown command '%s'. Run 'nixprov-agent --help' for the list.", argv[1]);
        return AGENT_EXIT_USAGE;
}
