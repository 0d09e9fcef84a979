#!/usr/bin/env bash
# The pre-flight with the real Nix: the configured dry-run command (rebuild.dry-run-command) runs
# the real nix-build --dry-run of a tiny closure (3 derivations). A profile whose rebuild.max-local-builds
# is below what would be compiled is refused before the build (exit 10, the exact error, nothing
# written, nothing built); with a binary cache on 127.0.0.1 the same closure is fetched instead,
# the dry run reports 3 paths and their sizes, and the build goes ahead. The reports carry the
# counts. Every Nix call sets substituters to nothing or to the cache on 127.0.0.1.
source "$(dirname "$0")/lib.sh"
command -v nix-build >/dev/null || { echo "skipped: no nix-build"; exit 77; }

MACHINE=4c4c4544004d3510804fb4c04f4d3734
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
NONCE=preflight-$run_id
AGENT=$BIN/nixprov-agent
make_cache "$NONCE" # CACHE_DIR, CACHE_PUB, CLOSURE_PATHS; not in the store any more
serve_dir "$CACHE_DIR"
CACHE_URL=http://127.0.0.1:$SERVED_PORT

mkdir -p data/machines root/etc
echo "$MACHINE" > root/etc/machine-id
approve_machines "$MACHINE"
start_server "$TMP/data"
# The rebuild stand-in for the build, another one (rebuild.dry-run-command) for the dry run.
cat > nixos-rebuild <<END_REBUILD
#!/bin/sh
echo "rebuild \$*" >> $TMP/rebuild.calls
exec $SRC/tests/integration/rebuild-standin.sh $CLOSURE $NONCE
END_REBUILD
cat > dry-build <<END_DRY
#!/bin/sh
echo "dry-run \$*" >> $TMP/rebuild.calls
[ "\$1" = dry-build ] || exit 2
NIX_CONFIG="\$NIX_CONFIG
build-users-group =
sandbox = false" exec nix-build --dry-run --no-out-link $CLOSURE --argstr nonce $NONCE
END_DRY
chmod +x nixos-rebuild dry-build
cat > agent.yaml <<END_CONFIG
server:
  urls: [$SERVER_URL]
  deadline: 20
  connect-timeout: 2
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
rebuild:
  command: $TMP/nixos-rebuild
  dry-run-command: $TMP/dry-build
  path: /usr/bin:/bin
enroll: {wait: 0}
END_CONFIG
run_agent() { timeout 300 "$AGENT" run --config agent.yaml --root root --cmdline - "$@"; }
publish() { # publish SERIAL MAX-LOCAL-BUILDS SUBSTITUTERS
  cat > "data/machines/$MACHINE.yaml" <<END_PROFILE
nixprov: 1
serial: $1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: source
nix:
  settings:
    substituters: [$3]
    trusted-public-keys: [$CACHE_PUB]
rebuild:
  timeout: 120
  max-local-builds: $2
END_PROFILE
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
history() { operator_curl "/v1/machines/$MACHINE" -f; }

# --- would compile 3 derivations, the limit is 2: refused before the build ----------------------
publish 1 2 ""
expect_exit refused 10 run_agent
expect_grep refused "preflight failed: the build would compile 3 derivations on this device, more than rebuild.max-local-builds (2); nothing was built, previous Nix files restored"
[ "$(cat rebuild.calls)" = "dry-run dry-build" ] || die "the rebuild command was called as: $(cat rebuild.calls)"
for f in etc/nix/nixprov.conf etc/nixos/nixprov/default.nix etc/nix/nixprov-machines var/lib/nixprov/applied; do
  [ ! -e "root/$f" ] || die "root/$f was written"
done
for p in "${CLOSURE_PATHS[@]}"; do [ ! -e "$p" ] || die "$p was built"; done
history > refused.json
jq -e '[.reports[] | select(.phase == "preflight" and .status == "failed")] | length == 1' refused.json >/dev/null ||
  die "no failed preflight report: $(jq -c '[.reports[] | {phase, status}]' refused.json)"
jq -e '[.reports[] | select(.phase == "rebuild")] | length == 0' refused.json >/dev/null ||
  die "a rebuild was reported"
ok "3 derivations to compile, max-local-builds 2: exit 10 with the exact error, only dry-build ran, nothing written or built, a failed preflight report"

# --- the same closure from the cache: 3 paths to fetch, 0 to build; applied ------------------
rm rebuild.calls
publish 2 0 "$CACHE_URL"
expect_exit fetched 0 run_agent
expect_grep fetched "0 derivations to build (0 locally), 3 paths to fetch ("
expect_grep fetched "provisioned at serial 2"
[ "$(tr '\n' ' ' < rebuild.calls)" = "dry-run dry-build rebuild switch --log-format internal-json " ] ||
  die "the rebuild command was called as: $(cat rebuild.calls)"
for p in "${CLOSURE_PATHS[@]}"; do [ -e "$p" ] || die "$p was not substituted"; done
history > fetched.json
pre=$(jq -c '[.reports[] | select(.phase == "preflight" and .status == "ok")] | last | .preflight' fetched.json)
# The sizes are those Nix printed (Nix 2.8: MiB with two decimals; the closure is tiny).
line=$(grep -h "paths will be fetched" root/var/log/nixprov/dry-build-2-*.log)
[ -n "$line" ] || die "the dry run's log has no summary"
read -r down unpacked < <(python3 -c '
import re, sys
m = re.search(r"\((\d+)\.(\d\d) MiB download, (\d+)\.(\d\d) MiB unpacked\)", sys.argv[1])
b = lambda w, f: int(w) * 1048576 + int(f) * 1048576 // 100
print(b(m[1], m[2]), b(m[3], m[4]))' "$line")
jq -e --argjson d "$down" --argjson u "$unpacked" \
  '.to_build == 0 and .to_fetch == 3 and .download_bytes == $d and .unpacked_bytes == $u' \
  <<<"$pre" >/dev/null || die "the preflight report: $pre, Nix said: $line"
ok "from the cache: the dry run says '$line'; reported as $pre; the build goes ahead"
forget_closure

echo "$checks passed, 0 failed"
