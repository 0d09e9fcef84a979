/* SPDX-License-Identifier: MIT */
#pragma once

/* Loading the agent's configuration the way every command does: the file (or, when there is
 * none, the defaults), then the kernel command line over it. */

#include <stddef.h>

#include "agent_config.h"

/* Loads config_path (AGENT_CONFIG_PATH_DEFAULT when NULL; a missing file gives the defaults) and
 * applies the kernel command line read from cmdline_path (NULL or "-": none; a missing file is
 * no command line). Returns a negative errno with what is wrong (file:line:column) in
 * error_text; on success *ret belongs to the caller. */
int config_load(const char *config_path, const char *cmdline_path, struct agent_config **ret,
                char *error_text, size_t error_size);

/* What the agent keeps in its state directory, besides the state module's files. */
#define CONFIG_STATE_REPORTS "reports"        /* the report spool */
#define CONFIG_STATE_LAST_RUN "last-run.json" /* how the last run ended, for status */
#define CONFIG_STATE_RUN_LOCK "run.lock"      /* held by the run in progress (engine.c) */

/* ROOT/STATE-DIR/name, newly allocated; NULL when out of memory. */
char *config_state_path(const struct agent_config *c, const char *root, const char *name);

#include "fetch.h"

/* Fetch options from the configuration: its servers (in order), CA file, connect timeout and
 * deadline; the rest fetch_options_init()'s defaults. o borrows c's strings. */
void config_fetch_options(const struct agent_config *c, struct fetch_options *o);
