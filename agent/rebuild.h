/* SPDX-License-Identifier: MIT */
#pragma once

/* The rebuild phase: runs the rebuild command (nixos-rebuild, or a test's stand-in) headlessly
 * with the profile's Nix settings in NIX_CONFIG, reads its internal-json log, and enforces a
 * timeout.
 *
 * The child gets: stdin from /dev/null; stdout and stderr into one pipe read by the agent (every
 * byte appended to the log file and fed to the nixlog parser); a session and process group of
 * its own, killed as a whole at the timeout (SIGTERM, then SIGKILL after a grace period) and
 * when the command exits (leftovers of its group are killed); a clean environment (PATH,
 * HOME=/root, LANG=C.UTF-8 and NIX_CONFIG, nothing inherited from the agent, so nothing secret
 * in the agent's environment can reach it); "/" as working directory, umask 022, default
 * signal dispositions and an empty signal mask; no other descriptor of the agent. */

#include <stdbool.h>
#include <stdint.h>

#include "nixlog.h"

/* The child's PATH unless the caller gives one: NixOS's system profile first. */
#define REBUILD_PATH_DEFAULT                                                                       \
        "/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:"                            \
        "/usr/sbin:/usr/bin:/sbin:/bin"
#define REBUILD_HOME "/root"
#define REBUILD_LANG "C.UTF-8"
/* Bounds of what goes into the child's argv and environment. */
#define REBUILD_ARGS_MAX 256
#define REBUILD_NIX_CONFIG_MAX (64 * 1024)
#define REBUILD_KILL_GRACE_SEC_DEFAULT 10
/* After the command exits, how long its output pipe may stay open (held by a process that left
 * its group) before the agent stops reading. */
#define REBUILD_DRAIN_MS 2000

/* Called at most every progress_interval_sec seconds while the command runs. */
typedef void rebuild_progress_fn(const struct nixlog_counts *counts, uint64_t elapsed_ms,
                                 void *userdata);

struct rebuild_options {
        char *const *argv;      /* NULL-terminated; argv[0] without a '/' is looked up in path */
        const char *nix_config; /* NIX_CONFIG for the child; NULL: not set */
        /* An ssh configuration for Nix's ssh (NIX_SSHOPTS="-F FILE": the builders' Host
         * aliases); an absolute path without white space; NULL: NIX_SSHOPTS not set. */
        const char *ssh_config;
        const char *path;        /* the child's PATH; NULL: REBUILD_PATH_DEFAULT */
        uint64_t timeout_sec;    /* 0: no timeout */
        uint64_t kill_grace_sec; /* SIGTERM to SIGKILL; 0: REBUILD_KILL_GRACE_SEC_DEFAULT */
        /* Created new (O_EXCL|O_NOFOLLOW), mode 0640: one per attempt; NULL: no log file. Its
         * directory must exist. */
        const char *log_path;
        rebuild_progress_fn *on_progress;
        uint64_t progress_interval_sec; /* 0: never call on_progress */
        void *userdata;
};

struct rebuild_result {
        bool started;     /* the command was executed */
        bool exec_failed; /* it could not be executed; exec_errno says why */
        int exec_errno;
        bool exited; /* it exited (exit_status), or was killed (signal) */
        int exit_status;
        int signal;
        bool timed_out; /* the timeout passed and the group was killed */
        bool killed;    /* SIGKILL was needed (the grace period passed too) */
        uint64_t duration_ms;
        int log_errno; /* first error writing the log file (it was then abandoned), or 0 */
        struct nixlog_counts counts;
        size_t n_machines;
        char machines[NIXLOG_MACHINES_MAX][NIXLOG_MACHINE_NAME_MAX];
        char last_error[NIXLOG_ERROR_MAX + 1]; /* "" when none */
        char tail[NIXLOG_TAIL_MAX + 1];        /* readable tail of the log; "" when none */
};

/* Runs o->argv and waits for it (or for the timeout). result is always initialized and filled
 * in as far as the run got. Returns 0 when the command exited with status 0; -EPROTO when it
 * exited with another status or was killed by a signal not of ours; -ETIME when the timeout
 * passed (it was killed as a group); when it could not be executed, the negative errno of that
 * (-ENOENT: not found in PATH, -EACCES ...) with result->exec_failed; -EEXIST when the log
 * file exists; -EINVAL or -E2BIG for bad options; another negative errno when setting up
 * failed. */
int rebuild_run(const struct rebuild_options *o, struct rebuild_result *result);

/* Builds the default command: nixos-rebuild ACTION [--flake REF] --log-format internal-json.
 * action: switch, boot or test; flake may be NULL; a flake that is empty or starts with '-' is
 * refused. *ret_argv is NULL-terminated, freed with rebuild_argv_free(). Returns 0, -EINVAL
 * or -ENOMEM. */
int rebuild_default_argv(const char *action, const char *flake, char ***ret_argv);
char **rebuild_argv_free(char **argv);

/* Builds the child's whole environment (see above); nix_config may be NULL; path NULL is
 * REBUILD_PATH_DEFAULT; ssh_config, when not NULL, adds NIX_SSHOPTS=-F SSH_CONFIG. Returns 0,
 * -EINVAL (empty PATH, or an ssh_config not absolute or with white space: Nix splits
 * NIX_SSHOPTS on it), -E2BIG (NIX_CONFIG over REBUILD_NIX_CONFIG_MAX) or -ENOMEM. Freed with
 * rebuild_argv_free(). */
int rebuild_environment(const char *nix_config, const char *path, const char *ssh_config,
                        char ***ret_envp);

/* Finds program in the colon-separated path as execvp() would (a name with a '/' is taken as
 * it is): the first executable regular file. Returns 0, -ENOENT, -EACCES (found, but none
 * executable) or -ENOMEM. */
int rebuild_find_program(const char *program, const char *path, char **ret_file);

/* The log file name for an attempt that does not exist yet:
 * DIR/rebuild-SERIAL-YYYYMMDDTHHMMSSZ.log, or with -2, -3 ... before ".log" for another attempt in
 * the same second. Returns 0, -EEXIST (REBUILD_LOG_SAME_SECOND_MAX attempts in one second) or
 * -ENOMEM. */
#define REBUILD_LOG_SAME_SECOND_MAX 100
int rebuild_log_path(const char *dir, uint64_t serial, int64_t now, char **ret_path);
