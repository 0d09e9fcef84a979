/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's own configuration (/etc/nixprov/agent.yaml), baked into the device's image: where
 * to fetch from, which keys to trust, which groups the device is in, where its state and logs
 * live, and which command rebuilds it. The profile never sets any of these.
 *
 *   server:
 *     urls: [https://prov.example.org, https://mirror.example.org]  # mirrors, in order
 *     ca-file: /etc/nixprov/ca.pem      # optional: pin the server's CA
 *     connect-timeout: 10               # seconds, per attempt
 *     deadline: 900                     # seconds, for the whole fetch with retries
 *   trusted-keys:                       # minisign public keys: base64 lines or .pub paths
 *     - RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3
 *   groups: [edge]
 *   state-dir: /var/lib/nixprov
 *   log-dir: /var/log/nixprov
 *   rebuild:
 *     command: nixos-rebuild            # run as COMMAND ACTION [--flake REF] --log-format ...
 *     path: /run/current-system/sw/bin:/usr/bin:/bin
 *     dry-run-command: nixos-rebuild    # the pre-flight: CMD dry-build [--flake REF]; default:
 * command enroll: token-file: /etc/nixprov/enroll-token   # optional: an enrollment token baked
 * into the image wait: 3600                        # seconds to wait for an operator's approval
 *   health:
 *     systemctl: systemctl              # run as SYSTEMCTL is-active --quiet UNIT
 *   rollback:
 *     command: /usr/local/bin/rollback  # run as COMMAND PROFILE STORE-PATH; default: built in
 *   reboot:
 *     command: reboot                   # run with no argument when a rollback needs a reboot
 *
 * Parsed as strictly as the profile (same errors, file:line:column and key; see profile.h and
 * yaml_schema.h): unknown and duplicate keys, wrong types, null values, aliases, anchors and tags
 * are refused, and so is an empty document. Every key is optional. In detail:
 *  - urls: at most AGENT_CONFIG_MAX_URLS, each http://, https:// or file:// followed by
 *    something, in printable ASCII (no white space, no control character). The list may be
 *    empty or missing: the command line may give the URLs, and the agent checks that some URL
 *    is left once it is applied.
 *  - connect-timeout: 1..600; deadline: 1..86400.
 *  - trusted-keys: at most AGENT_CONFIG_MAX_KEYS; each the base64 line of a minisign public key
 *    or the absolute path of a minisign .pub file (a regular file, read while parsing). A key
 *    that does not parse or a file that cannot be read is an error at the key's line.
 *  - groups: at most AGENT_CONFIG_MAX_GROUPS names like a profile's (profile_group_name_valid()).
 *  - ca-file, state-dir, log-dir: absolute paths without control characters.
 *  - rebuild.command: a program name (looked up in rebuild.path) or an absolute path, without
 *    white space; rebuild.dry-run-command likewise. rebuild.path: absolute directories
 *    separated by ':', none empty.
 *  - health.systemctl, rollback.command, reboot.command: like rebuild.command (and looked up
 *    in rebuild.path).
 *  - enroll.token-file: an absolute path (read by the enroll phase, not here); enroll.wait:
 *    0..AGENT_CONFIG_ENROLL_WAIT_MAX (0: ask once, do not wait).
 *  - No value is longer than AGENT_CONFIG_MAX_VALUE bytes (-E2BIG).
 *
 * The kernel command line can override the server and the keys for an installer image:
 * nixprov.url=URL (repeatable; replaces server.urls), nixprov.key=BASE64 (repeatable; replaces
 * trusted-keys), nixprov.group=NAME (repeatable; replaces groups). */

#include <stddef.h>
#include <stdint.h>

#include "minisign.h"
#include "profile.h"

#define AGENT_CONFIG_PATH_DEFAULT "/etc/nixprov/agent.yaml"
#define AGENT_CONFIG_MAX_BYTES (64 * 1024)
#define AGENT_CONFIG_MAX_URLS 16
#define AGENT_CONFIG_MAX_KEYS 16
#define AGENT_CONFIG_MAX_GROUPS 64
#define AGENT_CONFIG_MAX_VALUE 4096 /* bytes of one value: a URL, a path, a key */
#define AGENT_CONFIG_STATE_DIR_DEFAULT "/var/lib/nixprov"
#define AGENT_CONFIG_LOG_DIR_DEFAULT "/var/log/nixprov"
#define AGENT_CONFIG_REBUILD_COMMAND_DEFAULT "nixos-rebuild"
#define AGENT_CONFIG_SYSTEMCTL_DEFAULT "systemctl"
#define AGENT_CONFIG_REBOOT_DEFAULT "reboot"
#define AGENT_CONFIG_CONNECT_TIMEOUT_DEFAULT 10
#define AGENT_CONFIG_DEADLINE_DEFAULT 900
#define AGENT_CONFIG_ENROLL_WAIT_DEFAULT 3600
#define AGENT_CONFIG_ENROLL_WAIT_MAX (7 * 86400)

struct agent_config {
        char **urls; /* http://, https:// or file:// base URLs */
        size_t n_urls;
        char *ca_file;            /* NULL: the system CA store */
        uint64_t connect_timeout; /* seconds */
        uint64_t deadline;        /* seconds */

        struct minisign_public_key *keys;
        size_t n_keys;

        char **groups;
        size_t n_groups;

        char *state_dir; /* absolute; on the device (the agent puts --root in front) */
        char *log_dir;

        char *rebuild_command; /* a program name or an absolute path */
        char *rebuild_path;    /* NULL: the rebuild module's default PATH */
        char *dry_run_command; /* the pre-flight's, run as CMD dry-build; NULL: rebuild_command */

        char *systemctl_command; /* health checks of units */
        char *rollback_command;  /* NULL: nix-env -p PROFILE --set PATH, then its switch */
        char *reboot_command;

        char *enroll_token_file; /* NULL: no enrollment token */
        uint64_t enroll_wait;    /* seconds to wait for approval */
};

/* Parses data (size bytes, at most AGENT_CONFIG_MAX_BYTES) read from filename (named in errors;
 * may be NULL). Keys may be base64 lines or paths of .pub files, read here (relative to nothing:
 * absolute paths only). Values not given keep the defaults of agent_config_new_default(). On
 * success *ret belongs to the caller. Returns 0, or -EBADMSG / -E2BIG / -ENOMEM with *ret_error
 * (when not NULL) filled like profile_parse(), or -EINVAL (data NULL with a non-zero size). */
int agent_config_parse(const char *data, size_t size, const char *filename,
                       struct agent_config **ret, struct profile_error *ret_error);

/* An empty configuration with every default, for a device configured by the kernel command
 * line alone: no URL, key or group; AGENT_CONFIG_*_DEFAULT for the rest, ca_file and
 * rebuild_path NULL. *ret belongs to the caller. Returns 0 or -ENOMEM. */
int agent_config_new_default(struct agent_config **ret);

/* Applies nixprov.url=, nixprov.key= and nixprov.group= from a kernel command line (the text of
 * /proc/cmdline); other words are ignored. Words are split on white space and unquoted as the
 * kernel does: nixprov.x="a b" and "nixprov.x=a b" are one word each, of value "a b". Each
 * parameter given at least once replaces the whole list of the configuration with the values it
 * is given, in order. A value that does not parse (or a parameter without '=') is an error
 * (-EINVAL), and so is one value more than the list's limit (-E2BIG); then *ret_bad_word, when
 * not NULL, is set to a copy of the word as written (the caller frees it), and c is left
 * unchanged. Returns 0, -EINVAL, -E2BIG or -ENOMEM. */
int agent_config_apply_cmdline(struct agent_config *c, const char *cmdline, char **ret_bad_word);

/* Frees c and everything it holds. Accepts NULL; returns NULL. */
struct agent_config *agent_config_free(struct agent_config *c);
DEFINE_POINTER_CLEANUP(agent_config, agent_config_free)
