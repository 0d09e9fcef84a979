/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent context: what every command shares. The options that mean the same in every command
 * (-c/--config, -r/--root, --cmdline, -m/--machine-id), and what they lead to, loaded on first
 * use: the configuration, the identity, the state directory, the device keys, the fetch options
 * and the report spool. A command is: parse (context_parse_option() for the shared options),
 * open what it needs from the context, call modules, print.
 *
 * Every function returns 0 or a negative errno and, on failure, leaves one line saying what went
 * wrong in c->error for the command to log; none logs or exits. */

#include <getopt.h>
#include <stdbool.h>

#include "agent_config.h"
#include "devicekey.h"
#include "fetch.h"
#include "identify.h"
#include "report-log.h"

#define CONTEXT_ERROR_MAX 1024
#define CONTEXT_CMDLINE_DEFAULT "/proc/cmdline"

/* getopt_long() values of the shared options without a short form. */
enum {
        CONTEXT_ARG_CMDLINE = 0x1000,
};

/* For a command's getopt_long() tables: the shared options (with_machine_id: -m too). */
#define CONTEXT_SHORT_OPTIONS "c:r:"
#define CONTEXT_SHORT_OPTIONS_MACHINE_ID "c:r:m:"
#define CONTEXT_LONG_OPTIONS                                                                       \
        {"config", required_argument, NULL, 'c'}, {"root", required_argument, NULL, 'r'},          \
        {                                                                                          \
                "cmdline", required_argument, NULL, CONTEXT_ARG_CMDLINE                            \
        }
#define CONTEXT_LONG_OPTION_MACHINE_ID                                                             \
        {                                                                                          \
                "machine-id", required_argument, NULL, 'm'                                         \
        }

struct agent_context {
        /* The shared options (borrowed from argv). */
        const char *config_path;  /* NULL: AGENT_CONFIG_PATH_DEFAULT; a missing file: defaults */
        const char *root;         /* "/" */
        const char *cmdline_path; /* CONTEXT_CMDLINE_DEFAULT; "-": none */
        const char *machine_id;   /* NULL: ROOT/etc/machine-id, else DMI's product UUID */

        /* Loaded on first use, owned by the context; NULL (false) until then. */
        struct agent_config *config;
        struct identity identity;
        bool have_identity;
        char *state_dir; /* ROOT/STATE-DIR, made (0700) */
        struct devicekey *key;
        bool key_created; /* made by this process: the device's very first run */
        struct fetch_options fetch;
        bool have_fetch;
        struct report_spool *spool;

        char error[CONTEXT_ERROR_MAX]; /* what the last failure was */
};

/* The defaults of every shared option; nothing loaded. */
void context_init(struct agent_context *c);

/* Frees what the context loaded (the spool closed, the keys wiped). */
void context_done(struct agent_context *c);

/* Handles opt (a getopt_long() value) when it is a shared option. Returns 1 when it was, 0 when
 * it is the command's own. */
int context_parse_option(struct agent_context *c, int opt, const char *arg);

/* The configuration file (or the defaults) with the kernel command line over it. -errno (-EINVAL:
 * malformed, with file:line:column in c->error). */
int context_config(struct agent_context *c, const struct agent_config **ret);

/* identify() of the device under the root, with --machine-id. -ENOENT: no machine id anywhere,
 * -EINVAL: malformed. */
int context_identity(struct agent_context *c, const struct identity **ret);

/* ROOT/STATE-DIR, made 0700 (it holds the device's keys). */
int context_state_dir(struct agent_context *c, const char **ret);

/* The device keys, loaded from the state directory or made there on first use (key_created).
 * The context keeps ownership. -EBADMSG: a damaged key file; -EEXIST: a public key without its
 * secret key (no new identity is made silently). */
int context_keys(struct agent_context *c, struct devicekey **ret);

/* Why context_keys() failed, for a message: "a key file is damaged" ... */
const char *context_keys_strerror(int error);

/* The fetch options of the configuration (servers in order, CA file, timeouts); the caller may
 * change them: they are the context's. */
int context_fetch_options(struct agent_context *c, struct fetch_options **ret);

/* Opens the report spool dir (NULL: ROOT/STATE-DIR/reports) for the machine id, sending with
 * send (NULL: spool only), signed by the device keys when signed is true. The context keeps
 * ownership. -EBADMSG: the spool's sequence file is damaged. */
int context_spool(struct agent_context *c, const char *dir, const struct fetch_options *send,
                  bool sign, struct report_spool **ret);

/* From now on, the spool's reports are signed with the device keys (context_keys() first). */
void context_sign_reports(struct agent_context *c);
