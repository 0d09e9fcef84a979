/* SPDX-License-Identifier: MIT */
#pragma once

/* What the agent remembers between runs, in its state directory (/var/lib/nixprov, 0700):
 * the serial of the last applied profile and the trusted time it was applied at. The trust
 * rules read it (rollback, clock floor); only a successful apply writes it. */

#include <stdbool.h>
#include <stdint.h>

#define STATE_APPLIED_FILE "applied"
#define STATE_ETAG_FILE "profile.etag"
#define STATE_ETAG_MAX 192 /* NUL included */
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

/* DIR/profile.etag: the ETag the server gave the profile of the applied serial, so that the next
 * fetch can ask If-None-Match. "serial N" and "etag VALUE" (printable ASCII without spaces).
 * state_load_etag() returns 0 with the tag in etag and its serial, -ENOENT when there is none,
 * or -EBADMSG when the file is damaged (the caller fetches as without it). */
int state_load_etag(const char *state_dir, uint64_t *ret_serial, char etag[static STATE_ETAG_MAX]);

/* Writes DIR/profile.etag atomically (0600). -EINVAL: etag empty, too long or not printable. */
int state_save_etag(const char *state_dir, uint64_t serial, const char *etag);
