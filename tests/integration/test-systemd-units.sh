#!/usr/bin/env bash
# The systemd units as CMake configures them for installation (systemd/*.in, ExecStart with the
# installed binary's path): systemd's own parser accepts them without a single warning, and
# each property the agent relies on has the value it must have.
. "$(dirname "$0")/lib.sh"

UNITS=${NIXPROV_UNITS:?set NIXPROV_UNITS to the build tree\'s systemd directory}
BINDIR=${NIXPROV_INSTALL_BINDIR:?set NIXPROV_INSTALL_BINDIR to the installed binaries\' directory}
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
[ -d /lib/systemd/system ] || { echo "SKIP: no /lib/systemd/system"; exit 77; }

# An image root as verify needs it: the distribution's units (sysinit.target, network-online.target
# ...), ours in /etc/systemd/system, and the agent at the path ExecStart names.
make_root() {
  local root=$1
  mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root$BINDIR"
  cp -a /lib/systemd/system "$root/usr/lib/systemd/"
  cp "$UNITS"/nixprov-agent.service "$UNITS"/nixprov-agent-update.service \
    "$UNITS"/nixprov-agent-watch.service "$UNITS"/nixprov-agent.timer "$root/etc/systemd/system/"
  cp "$BIN/nixprov-agent" "$root$BINDIR/nixprov-agent"
}

# verify ROOT: systemd-analyze verify on our four units; $rc and verify.out as run() sets them.
verify() {
  local root=$1 d=$1/etc/systemd/system
  run verify systemd-analyze verify --man=no --root="$root" \
    "$d/nixprov-agent.service" "$d/nixprov-agent-update.service" \
    "$d/nixprov-agent-watch.service" "$d/nixprov-agent.timer"
}

make_root root
verify root
[ "$rc" -eq 0 ] && [ ! -s verify.out ] || { cat verify.out >&2; die "verify: exit $rc or warnings"; }
ok "systemd-analyze verify accepts the four units, without a warning"

# The harness is strict: a missing binary and an unknown key are each caught.
make_root bad1
rm "bad1$BINDIR/nixprov-agent"
verify bad1
[ "$rc" -ne 0 ] && expect_grep verify "is not executable"
make_root bad2
echo 'Bogus=1' >>bad2/etc/systemd/system/nixprov-agent.timer
verify bad2
[ -s verify.out ] && expect_grep verify "Unknown key 'Bogus'"
ok "verify here fails on a missing ExecStart binary and warns on an unknown key"

# prop FILE SECTION KEY: the values of KEY in [SECTION], one a line.
prop() {
  awk -v sec="[$2]" -v key="$3" '
    /^\[/ { in_sec = ($0 == sec); next }
    in_sec && index($0, key "=") == 1 { print substr($0, length(key) + 2) }' "$1"
}
# expect_prop FILE SECTION KEY VALUE: KEY is set exactly once in [SECTION], to VALUE.
expect_prop() {
  local got
  got=$(prop "$1" "$2" "$3")
  [ "$got" = "$4" ] || die "$(basename "$1") [$2] $3: '$got', expected '$4'"
}

S=$UNITS/nixprov-agent.service
expect_prop "$S" Service Type oneshot
expect_prop "$S" Service RemainAfterExit yes
expect_prop "$S" Service ExecStart "$BINDIR/nixprov-agent run"
expect_prop "$S" Unit Wants network-online.target
expect_prop "$S" Unit After network-online.target
expect_prop "$S" Install WantedBy multi-user.target
ok "nixprov-agent.service: oneshot, stays active, runs the installed agent after network-online"

# Exit 3 (unreachable) is retried; the refusals 2, 4, 6, 9 are final; bounded by a start limit.
expect_prop "$S" Service Restart on-failure
expect_prop "$S" Service RestartPreventExitStatus "2 4 6 9 10 11"
expect_prop "$S" Service RestartSec 60s
expect_prop "$S" Unit StartLimitIntervalSec 1h
expect_prop "$S" Unit StartLimitBurst 6
prevent=" $(prop "$S" Service RestartPreventExitStatus) "
case $prevent in *" 3 "*) die "exit 3 must be retried" ;; esac
ok "nixprov-agent.service: retried on failure except refusals (2 4 6 9 10 11), 6 starts an hour at most"

for u in "$S" "$UNITS/nixprov-agent-update.service"; do
  expect_prop "$u" Service KillMode process
  expect_prop "$u" Service TimeoutStartSec infinity
done
ok "both services: KillMode=process (a rebuild outlives the agent), no start timeout"

U=$UNITS/nixprov-agent-update.service
expect_prop "$U" Service Type oneshot
expect_prop "$U" Service ExecStart "$BINDIR/nixprov-agent run"
expect_prop "$U" Service RemainAfterExit ""
expect_prop "$U" Service Restart ""
expect_prop "$U" Unit After "network-online.target nixprov-agent.service"
T=$UNITS/nixprov-agent.timer
expect_prop "$T" Timer Unit nixprov-agent-update.service
expect_prop "$T" Timer OnBootSec 15min
expect_prop "$T" Timer OnCalendar hourly
expect_prop "$T" Timer RandomizedDelaySec 30min
expect_prop "$T" Timer Persistent true
expect_prop "$T" Install WantedBy timers.target
ok "nixprov-agent.timer: 15 min after boot, then hourly, spread over 30 min, persistent"

W=$UNITS/nixprov-agent-watch.service
expect_prop "$W" Service Type simple
expect_prop "$W" Service ExecStart "$BINDIR/nixprov-agent watch"
expect_prop "$W" Service Restart always
expect_prop "$W" Service RestartSec 10s
expect_prop "$W" Service KillMode process
expect_prop "$W" Unit After "network-online.target nixprov-agent.service"
expect_prop "$W" Install WantedBy multi-user.target
ok "nixprov-agent-watch.service: runs watch, Restart=always, KillMode=process, after the first run"

echo "# $checks checks passed"
