/* SPDX-License-Identifier: MIT */
#pragma once

/* nixprov-agent: one file per phase or command, each exporting its entry point; main.c lists
 * the commands. */

/* Exit codes of nixprov-agent (DESIGN.md, README.md). */
#define AGENT_EXIT_OK 0        /* done, or nothing to do */
#define AGENT_EXIT_USAGE 2     /* usage or config error */
#define AGENT_EXIT_FETCH 3     /* fetch failed */
#define AGENT_EXIT_REFUSED 4   /* verification refused */
#define AGENT_EXIT_WRITE 5     /* write failed */
#define AGENT_EXIT_BUILDERS 6  /* builders unusable */
#define AGENT_EXIT_REBUILD 7   /* rebuild failed */
#define AGENT_EXIT_REPORT 8    /* report could not be spooled */

int cmd_fetch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_rebuild(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_builders(int argc, char **argv);
int cmd_id(int argc, char **argv);

#include <stdbool.h>

#include "trust.h"

/* Says what trust_decide() decided about the profile called name, in one line: on stdout for an
 * accepted profile (unless quiet), on stderr with the details of a refusal (which serial, which
 * key, which time, which machine). Returns the exit code: AGENT_EXIT_OK or AGENT_EXIT_REFUSED. */
int decision_log(const char *name, const struct trust_context *ctx,
                 const struct trust_result *result, int error, bool quiet);
