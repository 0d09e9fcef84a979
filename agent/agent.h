/* SPDX-License-Identifier: MIT */
#pragma once

/* nixprov-agent: one file per phase or command, each exporting its entry point; main.c lists
 * the commands. */

/* Exit codes of nixprov-agent (docs/design.md, README.md). */
#define AGENT_EXIT_OK 0         /* done, or nothing to do */
#define AGENT_EXIT_USAGE 2      /* usage or config error */
#define AGENT_EXIT_FETCH 3      /* fetch failed */
#define AGENT_EXIT_REFUSED 4    /* verification refused */
#define AGENT_EXIT_WRITE 5      /* write failed */
#define AGENT_EXIT_BUILDERS 6   /* builders unusable */
#define AGENT_EXIT_REBUILD 7    /* rebuild failed */
#define AGENT_EXIT_REPORT 8     /* report could not be spooled */
#define AGENT_EXIT_ENROLL 9     /* not admitted: revoked, still pending, or another key */
#define AGENT_EXIT_PREFLIGHT 10 /* the dry run failed, or the build would compile too much */
#define AGENT_EXIT_HEALTH 11    /* health checks failed (rolled back, or nothing to roll back to) */

int cmd_fetch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_rebuild(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_builders(int argc, char **argv);
int cmd_id(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
