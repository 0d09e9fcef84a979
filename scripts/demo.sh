#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, then runs a whole first boot on
# this machine, everything on 127.0.0.1: a provisioning server, a binary cache holding a small
# closure, and an agent provisioning a directory as its root, its "nixos-rebuild" a stand-in that
# runs the real nix-build. The scratch directory is kept; its path is printed at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

export NIXPROV_BIN=$BUILD_DIR/bin NIXPROV_SRC KEEP_TMP=1
source "$NIXPROV_SRC/tests/integration/lib.sh" # the cache and server helpers of the tests
DEMO=$TMP
MACHINE=4c4c4544004d3510804fb4c04f4d3732
NONCE=demo-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "The operator makes a signing key (unencrypted for the demo; without -W it asks a password)"
show "$BIN/nixprov" keygen -W -p fleet.pub -s fleet.sec

step "A binary cache on 127.0.0.1 holding a small closure (built once, then removed from the store)"
make_cache "$NONCE"
serve_dir "$CACHE_DIR"
CACHE_URL=http://127.0.0.1:$SERVED_PORT
echo "cache: $CACHE_URL  key: $CACHE_PUB  paths: ${#CLOSURE_PATHS[@]}"

step "The operator writes this machine's profile, checks it and signs it"
mkdir -p data/machines
cat > "data/machines/$MACHINE.yaml" <<EOF
nixprov: 1
serial: 1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: binary-caches
nix:
  settings:
    # The demo's cache instead of the preset's public ones: nothing leaves this machine.
    substituters: [$CACHE_URL]
    trusted-public-keys: [$CACHE_PUB]
    max-jobs: fit
    cores: fit
rebuild:
  timeout: 600
EOF
show "$BIN/nixprov" check "data/machines/$MACHINE.yaml"
show "$BIN/nixprov" sign -s fleet.sec -t "demo profile, serial 1" "data/machines/$MACHINE.yaml"
show minisign -V -p fleet.pub -m "data/machines/$MACHINE.yaml"

step "The provisioning server"
start_server "$DEMO/data"
echo "nixprov serve is listening on $SERVER_URL"

step "The device: a root directory, the agent's config, and a stand-in for nixos-rebuild"
mkdir -p root/etc
echo "$MACHINE" > root/etc/machine-id
cat > nixos-rebuild <<EOF
#!/bin/sh
# Stands in for nixos-rebuild (there is no NixOS here): the real nix-build of the demo closure,
# with the settings the agent passes in NIX_CONFIG.
exec $NIXPROV_SRC/tests/integration/rebuild-standin.sh $CLOSURE $NONCE
EOF
chmod +x nixos-rebuild
cat > agent.yaml <<EOF
server:
  urls: [$SERVER_URL]
trusted-keys: [$(tail -n 1 fleet.pub)]
rebuild:
  command: $DEMO/nixos-rebuild
enroll:
  wait: 60
EOF
cat agent.yaml

step "First boot: the device enrolls and waits for the operator's approval"
"$BIN/nixprov-agent" run --config agent.yaml --root root --cmdline - &
agent_pid=$!
for _ in $(seq 100); do
  [ "$("$BIN/nixprov" fleet --server "$SERVER_URL" --data "$DEMO/data" --json "$MACHINE" 2>/dev/null |
    jq -r .state 2>/dev/null)" = pending ] && break
  sleep 0.1
done
show "$BIN/nixprov" fleet --server "$SERVER_URL" --data "$DEMO/data"
step "The operator approves it (on the server host: the decision goes into the server's database)"
show "$BIN/nixprov" fleet approve "$MACHINE" --db "$DEMO/data/nixprov.db"
wait "$agent_pid"

step "What it wrote"
show cat root/etc/nix/nixprov.conf
show ls -l root/etc/nix root/etc/nixos/nixprov root/var/lib/nixprov root/var/log/nixprov

step "The fleet, as the server saw it"
show "$BIN/nixprov" fleet --server "$SERVER_URL" --data "$DEMO/data"
show "$BIN/nixprov" fleet --server "$SERVER_URL" --data "$DEMO/data" "$MACHINE"

step "A second run: the server answers 304 to the kept ETag, nothing to do"
show "$BIN/nixprov-agent" run --config agent.yaml --root root --cmdline -

step "Refusals: another machine's profile, a tampered profile, a rollback"
show "$BIN/nixprov-agent" verify --key fleet.pub --machine-id fedcba9876543210fedcba9876543210 \
  --state root/var/lib/nixprov "data/machines/$MACHINE.yaml" || echo "(exit $?)"
sed -i 's/^serial: 1/serial: 2/' "data/machines/$MACHINE.yaml"
show "$BIN/nixprov-agent" run --config agent.yaml --root root --cmdline - || echo "(exit $?)"
sed -i 's/^serial: 2/serial: 0/' "data/machines/$MACHINE.yaml"
"$BIN/nixprov" sign -s fleet.sec "data/machines/$MACHINE.yaml" >/dev/null
show "$BIN/nixprov-agent" run --config agent.yaml --root root --cmdline - || echo "(exit $?)"

step "Done. Everything is in $DEMO"
