#!/bin/sh
# SPDX-License-Identifier: MIT
# Stands in for nixos-rebuild with a real "system": builds tests/data/nix/system.nix with the
# real nix-build, sets the system profile under the root to it with the real nix-env, and runs
# its bin/switch-to-configuration, as nixos-rebuild does. The profile chooses the system by its
# flake reference's fragment, VARIANT.NONCE[.KERNEL] (VARIANT ok or broken):
#   rebuild: {flake: "path:/nowhere#broken.n2"}
# Usage: system-standin.sh ROOT PORT ACTION [--flake REF] --log-format internal-json
set -eu
root=$1
port=$2
action=$3
shift 3
fragment=ok.default
while [ $# -gt 0 ]; do
  case "$1" in
    --flake) fragment=${2#*#}; shift 2 ;;
    *) shift ;;
  esac
done
variant=${fragment%%.*}
rest=${fragment#*.}
nonce=${rest%%.*}
kernel=kernel-1
[ "$rest" = "$nonce" ] || kernel=${rest#*.}
case "$variant" in
  ok) broken=false ;;
  broken) broken=true ;;
  *) echo "system-standin: unknown variant '$variant'" >&2; exit 2 ;;
esac
# This host, not the profile: single-user Nix as root, without nixbld users or a sandbox, and
# never a substituter off this machine.
NIX_CONFIG="${NIX_CONFIG:-}
build-users-group =
sandbox = false
substituters ="
export NIX_CONFIG
echo "building the system configuration..."
out=$(nix-build --no-out-link "$(dirname "$0")/../data/nix/system.nix" --argstr nonce "$nonce" \
  --argstr port "$port" --argstr root "$root" --arg broken "$broken" --argstr kernel "$kernel" \
  --log-format internal-json)
mkdir -p "$root/nix/var/nix/profiles"
nix-env -p "$root/nix/var/nix/profiles/system" --set "$out"
case "$action" in
  switch|test) "$out/bin/switch-to-configuration" "$action" ;;
  boot) "$out/bin/switch-to-configuration" boot ;;
esac
