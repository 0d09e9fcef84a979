#!/usr/bin/env bash
# The first boot, end to end, with real processes: nixprov serve on 127.0.0.1 serving a signed
# profile, a binary cache on 127.0.0.1 holding the closure, real Nix doing the "rebuild" (a
# stand-in for nixos-rebuild that runs nix-build with the environment the agent gives it), and
# nixprov-agent run provisioning a directory as its root.
source "$(dirname "$0")/lib.sh"
command -v nix-build >/dev/null || die "nix-build is missing (Debian package nix-bin)"

MACHINE=4c4c4544004d3510804fb4c04f4d3732
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
NONCE=fb-$run_id
AGENT=$BIN/nixprov-agent

# --- the binary cache, the server, the device --------------------------------------------------
make_cache "$NONCE"
serve_dir "$CACHE_DIR"
CACHE_URL=http://127.0.0.1:$SERVED_PORT
ok "binary cache with ${#CLOSURE_PATHS[@]} paths at $CACHE_URL; the store no longer has them"

mkdir -p data/machines root/etc
echo "$MACHINE" > root/etc/machine-id
approve_machines "$MACHINE"
start_server "$TMP/data"

# The rebuild stand-in: called as nixos-rebuild would be (ACTION [--flake REF] --log-format
# internal-json), it records its arguments and environment and runs the real nix-build.
cat > nixos-rebuild <<EOF
#!/bin/sh
echo "\$*" >> $TMP/rebuild.args
env | sort > $TMP/rebuild.env
exec $SRC/tests/integration/rebuild-standin.sh $CLOSURE \${STANDIN_NONCE:-$NONCE}
EOF
chmod +x nixos-rebuild

write_config() { # write_config URL...
  {
    echo "server:"
    printf '  urls: ['; local first=1 u
    for u in "$@"; do [ $first = 1 ] || printf ', '; printf '%s' "$u"; first=0; done
    echo ']'
    echo "  deadline: ${DEADLINE:-20}"
    echo "  connect-timeout: 2"
    echo "trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]"
    echo "rebuild:"
    echo "  command: $TMP/nixos-rebuild"
    echo "  path: /usr/bin:/bin"
    echo "enroll: {wait: 0}"
  } > agent.yaml
}
write_config "$SERVER_URL"

publish() { # publish SERIAL STRATEGY SUBSTITUTERS [EXTRA YAML]
  {
    printf 'nixprov: 1\nserial: %s\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$1" "$MACHINE"
    printf 'strategy: %s\nnix:\n  settings:\n    substituters: [%s]\n' "$2" "$3"
    printf '    trusted-public-keys: [%s]\n    max-jobs: fit\n' "$CACHE_PUB"
    printf 'rebuild:\n  timeout: 120\nreport:\n  interval: 1\n'
    printf '%s' "${4:-}"
  } > "data/machines/$MACHINE.yaml"
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}

agent_run() { timeout 300 "$AGENT" run --config agent.yaml --root root --cmdline - "$@"; }
# report_field JQ: a value from this machine's history on the server.
history() { operator_curl "/v1/machines/$MACHINE" -f > history.json; }
final_report() { history; jq -c '[.reports[] | select(.phase == "done" or .status == "failed")] | last' history.json; }

# --- binary-caches: the first build substitutes everything ------------------------------------
publish 1 binary-caches "$CACHE_URL"
expect_exit first-boot 0 agent_run
expect_grep first-boot "provisioned at serial 1"
f=$(final_report)
[ "$(jq -r .counts.substituted <<<"$f")" = 3 ] || die "substituted: $f"
[ "$(jq -r .counts.built <<<"$f")" = 0 ] || die "built locally: $f"
[ "$(jq -r .serial <<<"$f")" = 1 ] || die "serial: $f"
for p in "${CLOSURE_PATHS[@]}"; do [ -e "$p" ] || die "$p was not substituted"; done
grep -q "GET /nix-cache-info" "$TMP/http-$SERVED_PORT.log" || die "the cache was never asked"
ok "binary-caches: the first rebuild substituted 3 paths and built 0, as the server's report says"

# The settings reached the first build through NIX_CONFIG, and the environment was clean.
grep -q "^NIX_CONFIG=.*substituters = $CACHE_URL" rebuild.env ||
  grep -q "^substituters = $CACHE_URL" rebuild.env || die "NIX_CONFIG did not carry the cache"
grep -q '^NIXPROV' rebuild.env && die "the agent's environment leaked into the rebuild"
[ "$(tail -n 1 rebuild.args)" = "switch --log-format internal-json" ] ||
  die "rebuild called with: $(tail -n 1 rebuild.args)"
ok "the cache reached the first build in NIX_CONFIG; nixos-rebuild got 'switch --log-format internal-json'"

# The files on the device.
conf=root/etc/nix/nixprov.conf
[ "$(stat -c %a "$conf")" = 644 ] || die "$conf mode"
grep -q "^substituters = $CACHE_URL\$" "$conf" || die "$conf has no substituters"
grep -q "^builders-use-substitutes = true\$" "$conf" || die "$conf misses the preset"
[ "$(stat -c %a root/var/lib/nixprov)" = 700 ] || die "state dir mode"
grep -q '^serial 1$' root/var/lib/nixprov/applied || die "applied serial not recorded"
NIX_CONF_DIR=$TMP/showconf
mkdir -p "$NIX_CONF_DIR" && cp "$conf" "$NIX_CONF_DIR/nix.conf"
NIX_CONF_DIR=$NIX_CONF_DIR NIX_CONFIG="experimental-features = nix-command" timeout 60 nix show-config \
  > show-config.out 2>&1 || { cat show-config.out >&2; die "nix show-config refused $conf"; }
grep -q "^substituters = $CACHE_URL\$" show-config.out || die "nix show-config lost the cache"
nixcall nix-instantiate --parse root/etc/nixos/nixprov/default.nix >/dev/null ||
  die "the NixOS module does not parse"
[ -f root/etc/nix/nixprov-machines ] && [ ! -s root/etc/nix/nixprov-machines ] ||
  die "a profile without builders must leave an empty machines file"
ok "nixprov.conf (0644) is accepted by nix show-config; the NixOS module parses; no builders"

expect_exit fleet 0 operator_fleet
expect_grep fleet "$MACHINE"
expect_grep fleet "done"
ok "nixprov fleet shows the machine done at serial 1"

expect_exit status 0 "$AGENT" status --config agent.yaml --root root --json
jq -e '.provisioned == true and .serial == 1 and .last_run.outcome == "ok"
       and .last_run.counts.substituted == 3 and .last_run.counts.built == 0
       and .reports_pending == 0' status.out >/dev/null || die "status: $(cat status.out)"
expect_exit status-text 0 "$AGENT" status --config agent.yaml --root root
expect_grep status-text "provisioned: serial 1"
expect_grep status-text "3 substituted, 0 built locally"
ok "nixprov-agent status (text and --json) shows serial 1, the counts, nothing pending"

# --- the same serial again: nothing to do -----------------------------------------------------
calls=$(wc -l < rebuild.args)
expect_exit again 0 agent_run
expect_grep again "Nothing new: the server answered 304 Not Modified for serial 1, which is applied."
[ "$(wc -l < rebuild.args)" = "$calls" ] || die "the rebuild ran again"
ok "the same serial again is nothing to do: the server answers 304 to the kept ETag, and the agent says so"

# --- a device configured by the kernel command line alone --------------------------------------
printf 'rebuild:\n  command: %s/nixos-rebuild\n' "$TMP" > bare.yaml
printf 'BOOT_IMAGE=/vmlinuz quiet nixprov.url=%s nixprov.key=%s\n' "$SERVER_URL" \
  "$(tail -n 1 "$KEYS/fleet.pub")" > cmdline
expect_exit cmdline 0 timeout 120 "$AGENT" run --config bare.yaml --root root --cmdline cmdline
expect_grep cmdline "Nothing new: the server answered 304 Not Modified for serial 1, which is applied."
printf 'nixprov.url=ftp://127.0.0.1/ nixprov.key=%s\n' "$(tail -n 1 "$KEYS/fleet.pub")" > cmdline
expect_exit cmdline-bad 2 timeout 120 "$AGENT" run --config bare.yaml --root root --cmdline cmdline
expect_grep cmdline-bad "Invalid 'nixprov.url=ftp://127.0.0.1/' on the kernel command line"
expect_exit no-server 2 timeout 120 "$AGENT" run --config bare.yaml --root root --cmdline -
expect_grep no-server "No server: set server.urls in bare.yaml or nixprov.url= on the kernel command line."
ok "nixprov.url= and nixprov.key= on the kernel command line configure a device; a bad one is refused"

# --- source: the same closure, built locally --------------------------------------------------
forget_closure
publish 2 source ""
expect_exit source 0 agent_run
f=$(final_report)
[ "$(jq -r .counts.built <<<"$f")" = 3 ] || die "source: built: $f"
[ "$(jq -r .counts.substituted <<<"$f")" = 0 ] || die "source: substituted: $f"
[ "$(jq -r .serial <<<"$f")" = 2 ] || die "source: serial: $f"
grep -q '^serial 2$' root/var/lib/nixprov/applied || die "serial 2 not recorded"
ok "source (an update to serial 2): the same closure built locally, 3 derivations, 0 substituted"

# --- a failing rebuild: exit 7, the error and the log tail reported, files restored ------------
cp "$conf" conf.before
publish 3 binary-caches "$CACHE_URL" "# breaks the build
"
cat > nixos-rebuild <<EOF
#!/bin/sh
echo "\$*" >> $TMP/rebuild.args
echo "building the system configuration..."
export NIX_CONFIG="\$NIX_CONFIG
build-users-group =
sandbox = false"
exec nix-build --no-out-link --log-format internal-json -E 'derivation { name = "nixprov-broken-$run_id"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo the-build-broke-here >&2; exit 1" ]; }'
EOF
expect_exit failing 7 agent_run
expect_grep failing "rebuild failed: exited with status 100"
cmp -s "$conf" conf.before || die "the previous nixprov.conf was not restored"
grep -q '^serial 2$' root/var/lib/nixprov/applied || die "a failed rebuild changed the applied serial"
f=$(final_report)
[ "$(jq -r .phase <<<"$f")" = rebuild ] || die "failure report phase: $f"
jq -r .error <<<"$f" | grep -q "exited with status 100" || die "failure report error: $f"
jq -r .log_tail <<<"$f" | grep -q "the-build-broke-here" || die "failure report has no log tail: $f"
ls root/var/log/nixprov/rebuild-3-*.log >/dev/null || die "no rebuild log for serial 3"
ok "a failing rebuild exits 7, reports the error and the log tail, restores the previous files"

# --- server errors: retries, then a clear failure, and nothing written ---------------------------
mkdir -p www
python3 "$SRC/tests/integration/fault-server.py" fault.port www fault.log 120 2>fault.err &
at_exit "kill $! 2>/dev/null"
for _ in $(seq 50); do [ -s fault.port ] && break; sleep 0.1; done
FAULT=http://127.0.0.1:$(cat fault.port)
publish 4 binary-caches "$CACHE_URL"
for fault in 500 reset truncate big/2000000; do
  touch stamp
  sleep 0.01
  DEADLINE=4 write_config "$FAULT/$fault"
  expect_exit "fault-${fault%%/*}" 3 agent_run
  expect_grep "fault-${fault%%/*}" "fetch failed: $FAULT/$fault/v1/machines/$MACHINE/profile"
  changed=$(cd root && find . -type f -newer "$TMP/stamp" | grep -v '^./var/lib/nixprov/' || true)
  [ -z "$changed" ] || die "$fault: files written: $changed"
  grep -q '^serial 2$' root/var/lib/nixprov/applied || die "$fault: the applied serial changed"
done
[ "$(grep -c '/500/' fault.log)" -gt 1 ] || die "the 500 was not retried"
ok "a server answering 500, resetting, truncating or sending more than the cap: exit 3, nothing written"

# --- the server down for the whole run: provisioned from a mirror, reports delivered later ------
mkdir -p "mirror/v1/machines/$MACHINE"
cp "data/machines/$MACHINE.yaml" "mirror/v1/machines/$MACHINE/profile"
cp "data/machines/$MACHINE.yaml.minisig" "mirror/v1/machines/$MACHINE/profile.minisig"
cat > nixos-rebuild <<EOF
#!/bin/sh
echo "\$*" >> $TMP/rebuild.args
exec $SRC/tests/integration/rebuild-standin.sh $CLOSURE $NONCE
EOF
history
before=$(jq '.reports | length' history.json)
stop_server
write_config "$SERVER_URL" "file://$TMP/mirror"
expect_exit offline 0 agent_run
expect_grep offline "provisioned at serial 4"
spooled=$(find root/var/lib/nixprov/reports -maxdepth 1 -name '*.json' | wc -l)
[ "$spooled" -gt 5 ] || die "only $spooled reports spooled"
start_server "$TMP/data"
write_config "$SERVER_URL"
expect_exit flush 0 timeout 120 "$AGENT" flush --config agent.yaml --root root --cmdline -
[ "$(find root/var/lib/nixprov/reports -maxdepth 1 -name '*.json' | wc -l)" = 0 ] ||
  die "reports left in the spool"
history
[ "$(jq '.reports | length' history.json)" = $((before + spooled)) ] ||
  die "expected $before + $spooled reports on the server, got $(jq '.reports | length' history.json)"
jq -e '[.reports[] | select(.serial == 4 and .phase == "done" and .status == "ok")] | length == 1' \
  history.json >/dev/null || die "no single final report of serial 4"
[ "$(jq '[.reports[].seq] | length == (unique | length)' history.json)" = true ] ||
  die "a report was stored twice"
expect_exit flush-again 0 timeout 60 "$AGENT" flush --config agent.yaml --root root --cmdline -
history
[ "$(jq '.reports | length' history.json)" = $((before + spooled)) ] ||
  die "flushing again changed the history"
ok "server down for the whole run: provisioned from a file:// mirror; $spooled reports spooled, then delivered once each"

echo "$checks passed, 0 failed"

