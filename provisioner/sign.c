/* SPDX-License-Identifier: MIT */
#include "commands.h"
#include "log.h"

int cmd_sign(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        log_error("'sign' is not implemented yet.");
        return EXIT_FAIL;
}
