/* SPDX-License-Identifier: MIT */
#include "agent.h"
#include "log.h"

int cmd_verify(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        log_error("'verify' is not implemented yet.");
        return AGENT_EXIT_USAGE;
}
