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

/* How the last update the agent tried went, in DIR/update (0600), for the rollback rules, the
 * confirmation after a reboot and `nixprov-agent status`: the serial tried, its outcome
 * (switching, applied, rolled-back, failed, pending-reboot, confirmed), when, the system before
 * it and the one it switched to (store paths, "" when none), the booted system when it switched,
 * the serial applied before it, and the cause of a rollback (one line). */
#define STATE_UPDATE_FILE "update"
#define STATE_UPDATE_PATH_MAX 512
#define STATE_UPDATE_CAUSE_MAX 1024

struct update_state {
        bool have; /* the file exists */
        uint64_t serial;
        char outcome[32];
        int64_t time;
        bool have_previous_serial;
        uint64_t previous_serial;
        int64_t previous_time;
        char previous[STATE_UPDATE_PATH_MAX];
        char system[STATE_UPDATE_PATH_MAX];
        char booted[STATE_UPDATE_PATH_MAX];
        char cause[STATE_UPDATE_CAUSE_MAX];
};

/* Loads DIR/update: 0 with have false when there is none, -EBADMSG when it does not parse. */
int state_update_load(const char *state_dir, struct update_state *ret);
/* Writes DIR/update atomically (0600); control characters of the cause become spaces. */
int state_update_save(const char *state_dir, const struct update_state *u);

/* DIR/profile.etag: the ETag the server gave the profile of the applied serial, so that the next
 * fetch can ask If-None-Match. "serial N" and "etag VALUE" (printable ASCII without spaces).
 * state_load_etag() returns 0 with the tag in etag and its serial, -ENOENT when there is none,
 * or -EBADMSG when the file is damaged (the caller fetches as without it). */
int state_load_etag(const char *state_dir, uint64_t *ret_serial, char etag[static STATE_ETAG_MAX]);

/* Writes DIR/profile.etag atomically (0600). -EINVAL: etag empty, too long or not printable. */
int state_save_etag(const char *state_dir, uint64_t serial, const char *etag);
