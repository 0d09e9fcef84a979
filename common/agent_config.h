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
 *
 * Parsed as strictly as the profile (same errors, file:line:column and key). The kernel command
 * line can override the server and the keys for an installer image: nixprov.url=URL (repeatable;
 * replaces server.urls), nixprov.key=BASE64 (repeatable; replaces trusted-keys),
 * nixprov.group=NAME (repeatable; replaces groups). */

#include <stddef.h>
#include <stdint.h>

#include "minisign.h"
#include "profile.h"

#define AGENT_CONFIG_PATH_DEFAULT "/etc/nixprov/agent.yaml"
#define AGENT_CONFIG_MAX_BYTES (64 * 1024)
#define AGENT_CONFIG_MAX_URLS 16
#define AGENT_CONFIG_MAX_KEYS 16
#define AGENT_CONFIG_MAX_GROUPS 64
#define AGENT_CONFIG_STATE_DIR_DEFAULT "/var/lib/nixprov"
#define AGENT_CONFIG_LOG_DIR_DEFAULT "/var/log/nixprov"
#define AGENT_CONFIG_REBUILD_COMMAND_DEFAULT "nixos-rebuild"
#define AGENT_CONFIG_CONNECT_TIMEOUT_DEFAULT 10
#define AGENT_CONFIG_DEADLINE_DEFAULT 900

struct agent_config {
        char **urls; /* http://, https:// or file:// base URLs */
        size_t n_urls;
        char *ca_file; /* NULL: the system CA store */
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
};

/* Parses data read from filename (named in errors). Keys may be base64 lines or paths of .pub
 * files, read here (relative to nothing: absolute paths only). Returns 0, or -EBADMSG / -E2BIG
 * with *ret_error filled like profile_parse(), or -ENOMEM. */
int agent_config_parse(const char *data, size_t size, const char *filename,
                       struct agent_config **ret, struct profile_error *ret_error);

/* An empty configuration with every default, for a device configured by the kernel command
 * line alone. */
int agent_config_new_default(struct agent_config **ret);

/* Applies nixprov.url=, nixprov.key= and nixprov.group= from a kernel command line (the text of
 * /proc/cmdline); other words are ignored. A value that does not parse is an error (-EINVAL,
 * with *ret_bad_word, when not NULL, set to a copy of the word), and c is left unchanged. */
int agent_config_apply_cmdline(struct agent_config *c, const char *cmdline, char **ret_bad_word);

struct agent_config *agent_config_free(struct agent_config *c);
DEFINE_POINTER_CLEANUP(agent_config, agent_config_free)
