# Sourced by test-health.sh and test-health-reboot.sh after lib.sh: a server, a device root and
# a rebuild stand-in that switches a real Nix system profile under it (system-standin.sh).
MACHINE=4c4c4544004d3510804fb4c04f4d3732
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
AGENT=$BIN/nixprov-agent
ROOT=$TMP/root
PORT=$(free_port)
PROFILE_LINK=$ROOT/nix/var/nix/profiles/system
mkdir -p data/machines "$ROOT/etc" "$ROOT/run/units"
echo "$MACHINE" > "$ROOT/etc/machine-id"
approve_machines "$MACHINE"
start_server "$TMP/data"
# The listener a system's switch started outlives the agent: stopped at the end.
at_exit 'kill $(cat "$ROOT/run/nixprov-test-listener.pid" 2>/dev/null) 2>/dev/null'

printf '#!/bin/sh\necho "$*" >> %s/rebuild.args\nexec %s/tests/integration/system-standin.sh %s %s "$@"\n' \
  "$TMP" "$SRC" "$ROOT" "$PORT" > nixos-rebuild
# systemctl's stand-in: a unit is active when ROOT/run/units/UNIT exists.
printf '#!/bin/sh\n[ "$1 $2" = "is-active --quiet" ] || exit 2\n[ -e "%s/run/units/$3" ]\n' "$ROOT" > systemctl
# reboot's stand-in: counts the reboots asked for.
printf '#!/bin/sh\necho reboot >> %s/reboots\n' "$TMP" > reboot
chmod +x nixos-rebuild systemctl reboot
{
  printf 'server:\n  urls: [%s]\n  deadline: 20\n  connect-timeout: 2\n' "$SERVER_URL"
  printf 'trusted-keys: [%s]\n' "$(tail -n 1 "$KEYS/fleet.pub")"
  printf 'rebuild:\n  command: %s/nixos-rebuild\n  path: /usr/bin:/bin\n' "$TMP"
  printf 'health:\n  systemctl: %s/systemctl\nreboot:\n  command: %s/reboot\n' "$TMP" "$TMP"
  printf 'enroll: {wait: 0}\n'
} > agent.yaml

# publish SERIAL FRAGMENT [YAML]: a profile whose system is FRAGMENT (see system-standin.sh).
publish() {
  {
    printf 'nixprov: 1\nserial: %s\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$1" "$MACHINE"
    printf 'strategy: source\nnix:\n  settings:\n    max-jobs: 1\n'
    printf 'rebuild:\n  flake: "path:/nowhere#%s"\n  timeout: 120\n%s' "$2" "${REBUILD_EXTRA:-}"
    printf 'report:\n  interval: 1\n%s' "${3:-}"
  } > "data/machines/$MACHINE.yaml"
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
agent_run() { timeout 300 "$AGENT" run --config agent.yaml --root "$ROOT" --cmdline - "$@"; }
history() { operator_curl "/v1/machines/$MACHINE" -f > history.json; }
# last_report PHASE: the last final (ok or failed) report of PHASE.
last_report() {
  history
  jq -c --arg p "$1" '[.reports[] | select(.phase == $p and (.status == "ok" or .status == "failed"))] | last' history.json
}
listener() { curl -fs --noproxy '*' --max-time 5 "http://127.0.0.1:$PORT/"; }
profile_target() { readlink -f "$PROFILE_LINK"; }
