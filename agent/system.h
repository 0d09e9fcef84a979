/* SPDX-License-Identifier: MIT */
#pragma once

/* The NixOS system under the root: the store path its system profile, /run/booted-system or
 * /run/current-system points to, and switching the profile to a given store path (a rollback).
 * Never logs. */

#include <stdbool.h>
#include <stddef.h>

#include "agent_config.h"

#define SYSTEM_PROFILE "/nix/var/nix/profiles/system"
#define SYSTEM_BOOTED "/run/booted-system"
#define SYSTEM_STORE_DIR "/nix/store/"

/* Follows ROOT/LINK (absolute link targets outside the store are taken under the root again)
 * to the store path it ends at: /nix/store/HASH-NAME, newly allocated. Returns 0, -ENOENT when
 * there is no such link, -ELOOP (more than 16 links), -EBADMSG (it ends outside the store). */
int system_resolve(const char *root, const char *link, char **ret_store_path);

/* Whether the files kernel and initrd of two systems differ (a missing one counts as empty). */
bool system_boot_files_differ(const char *root, const char *a, const char *b);

/* Makes store_path the system under root: with rollback.command of the configuration,
 * COMMAND ROOT/nix/var/nix/profiles/system STORE-PATH ACTION; else nix-env -p
 * ROOT/nix/var/nix/profiles/system --set STORE-PATH (substituters empty) and
 * STORE-PATH/bin/switch-to-configuration ACTION (switch, or boot: the default at the next boot).
 * Programs are run as the rebuild runs its command (rebuild.h), each within timeout_sec. Returns
 * 0 or -EPROTO with what failed in error. */
int system_switch(const struct agent_config *c, const char *root, const char *store_path,
                  const char *action, unsigned timeout_sec, char *error, size_t size);

/* Runs the configuration's reboot command. Returns 0 or -EPROTO with error. */
int system_reboot(const struct agent_config *c, char *error, size_t size);
