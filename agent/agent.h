/* SPDX-License-Identifier: MIT */
#pragma once

/* nixprov-agent: one file per phase or command, each exporting its entry point; main.c lists
 * the commands. */

/* Exit codes of nixprov-agent (docs/design.md, README.md). */
#define AGENT_EXIT_OK 0        /* done, or nothing to do */
#define AGENT_EXIT_USAGE 2     /* usage or config error */
#define AGENT_EXIT_FETCH 3     /* fetch failed */
#define AGENT_EXIT_REFUSED 4   /* verification refused */
#define AGENT_EXIT_WRITE 5     /* write failed */
#define AGENT_EXIT_BUILDERS 6  /* builders unusable */
#define AGENT_EXIT_REBUILD 7   /* rebuild failed */
#define AGENT_EXIT_REPORT 8    /* report could not be spooled */
#define AGENT_EXIT_ENROLL 9    /* not admitted: revoked, still pending, or another key */

int cmd_fetch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_rebuild(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_builders(int argc, char **argv);
int cmd_id(int argc, char **argv);
int cmd_enroll(int argc, char **argv);

#include <stdbool.h>

#include "agent_config.h"
#include "devicekey.h"
#include "enroll.h"
#include "fetch.h"
#include "identify.h"
#include "trust.h"

/* identify() with the failure logged; returns AGENT_EXIT_OK or AGENT_EXIT_USAGE. */
int agent_identify(const char *root, const char *machine_id_override, struct identity *ret);

/* Loads this device's keys from ROOT/STATE-DIR, making them (and the directory, 0700) on first
 * use. Logs what went wrong; returns AGENT_EXIT_OK or an exit code. */
int agent_device_keys(const struct agent_config *config, const char *root,
                      struct devicekey **ret_key);

/* Makes the signed enrollment request of the device id with key, with the proof of the image's
 * enrollment token when the configuration names one (ROOT/enroll.token-file). Returns
 * AGENT_EXIT_OK with the body, or an exit code with what went wrong in error. */
int agent_enroll_request(const struct agent_config *config, const char *root,
                         const struct identity *id, const struct devicekey *key, char **ret_body,
                         size_t *ret_size, char *error, size_t error_size);

/* Identifies the device under root, loads its keys and enrolls once with the servers of o (no
 * waiting while pending, unless wait_ms), as 'nixprov-agent enroll' does. Logs what went wrong;
 * returns AGENT_EXIT_OK with the server's answer in *ret_state, AGENT_EXIT_FETCH when the server
 * cannot be reached, or another exit code. */
int agent_enroll(const struct agent_config *config, const char *root,
                 const char *machine_id_override, const struct fetch_options *o, uint64_t wait_ms,
                 enum enroll_state *ret_state);

/* Says what trust_decide() decided about the profile called name, in one line: on stdout for an
 * accepted profile (unless quiet), on stderr with the details of a refusal (which serial, which
 * key, which time, which machine). Returns the exit code: AGENT_EXIT_OK or AGENT_EXIT_REFUSED. */
int decision_log(const char *name, const struct trust_context *ctx,
                 const struct trust_result *result, int error, bool quiet);
