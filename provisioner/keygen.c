/* SPDX-License-Identifier: MIT */
#include "commands.h"
#include "log.h"

int cmd_keygen(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        log_error("'keygen' is not implemented yet.");
        return EXIT_FAIL;
}
