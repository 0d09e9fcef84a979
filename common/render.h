/* SPDX-License-Identifier: MIT */
#pragma once

/* Renders a plan (plan.h) into the bytes of the files the agent writes, and into the NIX_CONFIG
 * text of the first build. Nothing here touches a file: the caller writes what it gets (see
 * docs/design.md, "Files on the device", for the paths and modes).
 *
 * Every function returns 0 with *ret_text a NUL-terminated string that belongs to the caller,
 * -E2BIG when the text would pass RENDER_MAX_BYTES, -EINVAL when a value cannot be written
 * (plan_build() refuses those already), or -ENOMEM. */

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"

#define RENDER_MAX_BYTES (1024 * 1024)

#define RENDER_NIX_CONF_FILE "/etc/nix/nixprov.conf"
#define RENDER_SECRETS_FILE "/etc/nix/nixprov-secrets.conf"
#define RENDER_MACHINES_FILE PLAN_MACHINES_FILE
#define RENDER_NIXOS_MODULE_FILE "/etc/nixos/nixprov/default.nix"
#define RENDER_SSH_CONFIG_FILE "/etc/nixprov/ssh_config"
#define RENDER_SSH_ALIAS_FORMAT "nixprov-builder-%zu" /* plan_builder.index */
#define RENDER_SSH_HOST_MAX 255                       /* bytes of a builder's host name */

/* /etc/nix/nixprov.conf: a header comment naming the profile serial, then "name = value" for
 * each setting in plan order, then "!include /etc/nix/nixprov-secrets.conf" when a cache has an
 * auth token. "!include" (unlike "include") is silently skipped when the file is missing, so
 * the settings still load before the secrets are written, or after they are removed. */
int render_nix_conf(const struct plan *plan, uint64_t serial, char **ret_text);

/* The value of NIX_CONFIG for the first build: the same settings, one "name = value" per line,
 * no comment, no include (the secrets stay in their 0600 file and never enter an environment).
 * NIX_CONFIG and not --option: nixos-rebuild keeps only the last --option pair it is given. */
int render_nix_config_env(const struct plan *plan, char **ret_text);

/* /etc/nix/nixprov-machines, Nix's machines format: one line per builder with all eight fields
 * separated by single spaces: URI, systems (comma-separated), SSH identity file or "-",
 * max-jobs, speed-factor, supported features (comma-separated) or "-", mandatory features or
 * "-", and the base64 of the pinned host key line ("ssh-ed25519 AAAA..."), which Nix decodes
 * into the known-hosts file it gives ssh. An empty plan gives an empty file. */
int render_machines(const struct plan *plan, char **ret_text);

/* /etc/nixprov/ssh_config: an ssh configuration with one Host alias per builder on a port other
 * than 22 (Nix before 2.31 takes no port in an ssh:// URI: it hands "host:port" to ssh as a host
 * name). For builders[N] on host H, port P:
 *
 *   Host nixprov-builder-N
 *     HostName H
 *     Port P
 *     HostKeyAlias nixprov-builder-N     ssh looks the pinned key up under the alias, which is
 *     IdentityFile PATH                  the name in the known_hosts file Nix writes; when set
 *
 * and render_machines() and render_nixos_module() name the alias (with the URI's query) in
 * place of "H:P". After the header comment the file is empty when no builder needs an alias.
 * The first build reads it through NIX_SSHOPTS="-F FILE"; the NixOS module keeps the same
 * blocks in programs.ssh.extraConfig. */
int render_ssh_config(const struct plan *plan, uint64_t serial, char **ret_text);

/* Whether some builder of plan needs a Host alias (render_ssh_config()). */
bool render_plan_has_ssh_aliases(const struct plan *plan);

/* /etc/nixos/nixprov/default.nix: a NixOS module that keeps the same settings through every
 * later rebuild:
 *
 *   { lib, ... }: {
 *     nix.settings = { ... };            booleans, integers, lists and strings as Nix types
 *     nix.distributedBuilds = true;      with builders:
 *     nix.buildMachines = [ { ... } ];
 *     nix.extraOptions = "!include /etc/nix/nixprov-secrets.conf";   with an auth token
 *   }
 *
 * Types: "true"/"false" become booleans; decimal numbers that fit become integers; the
 * settings Nix treats as lists (a table in render.c, and every extra-*) become lists of
 * strings; everything else, "auto" included, is a string.
 *
 * Priorities: a scalar setting is written with lib.mkDefault, so a value the device's own
 * configuration sets explicitly wins instead of failing the rebuild with "conflicting
 * definition values" on a headless machine; a list is written at normal priority, so it is
 * concatenated with the device's own list (substituters, keys) instead of replacing it or being
 * replaced by it. Both beat the NixOS option defaults.
 *
 * The builders go into nix.buildMachines (NixOS writes /etc/nix/machines, which Nix reads by
 * default), so "builders" is left out of nix.settings when the plan has builders. hostName is
 * the URI's host with its port and query, if any: NixOS joins protocol://sshUser@hostName
 * verbatim into the machines line, so the result is the URI of the profile; a builder on a port
 * other than 22 is named by its alias instead, and the Host blocks of render_ssh_config() go
 * into programs.ssh.extraConfig (as lib.concatMapStrings over its lines). */
int render_nixos_module(const struct plan *plan, uint64_t serial, char **ret_text);
