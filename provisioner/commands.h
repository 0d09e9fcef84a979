/* SPDX-License-Identifier: MIT */
#pragma once

/* One file per subcommand, each exporting cmd_NAME(); main.c lists them. */

/* Exit codes of nixprov (documented in README.md). */
#define EXIT_OK 0
#define EXIT_FAIL 1    /* an operation failed (I/O, a file that cannot be read or written) */
#define EXIT_USAGE 2   /* bad command line */
#define EXIT_REFUSED 4 /* a signature or profile was refused (verify, check) */

int cmd_keygen(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_fleet(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_purge(int argc, char **argv);
