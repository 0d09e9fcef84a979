#!/bin/sh
# SPDX-License-Identifier: MIT
# Stands in for nixos-rebuild in the tests: runs the real nix-build on a tiny closure with the
# environment the agent gives it, and Nix's internal-json log, as nixos-rebuild would.
# Usage: rebuild-standin.sh CLOSURE NONCE [NIX-BUILD ARGS...]
set -eu
closure=$1
nonce=$2
shift 2
# This host, not the profile: single-user Nix as root, without nixbld users or a sandbox.
NIX_CONFIG="${NIX_CONFIG:-}
build-users-group =
sandbox = false"
export NIX_CONFIG
echo "building the system configuration..."
exec nix-build --no-out-link "$closure" --argstr nonce "$nonce" --log-format internal-json "$@"
