#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and shows nixprov at work on this
# machine, in a scratch directory (kept: its path is printed at the end).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

BIN=$BUILD_DIR/bin
DEMO=$(mktemp -d /tmp/nixprov-demo.XXXXXX)
MACHINE=4c4c4544004d3510804fb4c04f4d3732
cd "$DEMO"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "The operator makes a signing key (unencrypted here; drop -W to protect it with a password)"
show "$BIN/nixprov" keygen -W -p fleet.pub -s fleet.sec

step "... writes a profile for one machine, checks it, and signs it"
sed -e "s/^serial: .*/serial: 1/" \
    -e "s/^machines: .*/machines: [$MACHINE]/" \
    "$NIXPROV_SRC/configs/profiles/binary-caches.yaml" > profile.yaml
show "$BIN/nixprov" check profile.yaml
show "$BIN/nixprov" sign -s fleet.sec profile.yaml
show cat profile.yaml.minisig

step "The signature is minisign's own format: the minisign tool verifies it"
show minisign -V -p fleet.pub -m profile.yaml

step "The device's decision: signature, schema, rollback, expiry, machine binding"
mkdir -p state
show "$BIN/nixprov-agent" verify --key fleet.pub --machine-id "$MACHINE" --state state profile.yaml

step "Refusals: another machine, a changed byte, a rollback"
show "$BIN/nixprov-agent" verify --key fleet.pub --machine-id fedcba9876543210fedcba9876543210 \
  --state state profile.yaml || echo "(exit $?)"
sed 's/^serial: 1/serial: 9/' profile.yaml > tampered.yaml
cp profile.yaml.minisig tampered.yaml.minisig
show "$BIN/nixprov-agent" verify --key fleet.pub --machine-id "$MACHINE" --state state tampered.yaml \
  || echo "(exit $?)"
printf 'serial 5\napplied-at %s\n' "$(date +%s)" > state/applied
show "$BIN/nixprov-agent" verify --key fleet.pub --machine-id "$MACHINE" --state state profile.yaml \
  || echo "(exit $?)"

step "Done. Files are in $DEMO"
