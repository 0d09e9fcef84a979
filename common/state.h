/* SPDX-License-Identifier: MIT */
#pragma once

/* What the agent remembers between runs, in its state directory (/var/lib/nixprov, 0700):
 * the serial of the last applied profile and the trusted time it was applied at. The trust
 * rules read it (rollback, clock floor); only a successful apply writes it. */

#include <stdbool.h>
#include <stdint.h>

#define STATE_APPLIED_FILE "applied"
#define STATE_FILE_MAX 4096

struct agent_state {
        bool have_applied;
        uint64_t applied_serial;
        int64_t applied_time; /* seconds since the epoch */
};

/* Loads DIR/applied. A missing file (or directory) is a device that never applied a profile:
 * returns 0 with have_applied false. A file that exists but does not parse returns -EBADMSG:
 * never treat a damaged state as "nothing applied", or a rollback would slip through. */
int state_load(const char *state_dir, struct agent_state *ret);

/* Writes DIR/applied atomically (0600). The directory must exist. */
int state_save(const char *state_dir, const struct agent_state *state);
