/* SPDX-License-Identifier: MIT */
#include "commands.h"
#include "log.h"

int cmd_check(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        log_error("'check' is not implemented yet.");
        return EXIT_FAIL;
}
