#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Health checks and rollback to the exact previous system, with real parts: nixprov serve on
# 127.0.0.1, a rebuild stand-in that builds a real "system" with nix-build (its
# switch-to-configuration starts, or fails to start, a real HTTP listener on a port this test
# picks) and switches by setting a real Nix profile under the root (nix-env -p ... --set).
# Every Nix call sets substituters to nothing.
source "$(dirname "$0")/lib.sh"
command -v nix-build >/dev/null || { echo "skipped: no nix-build"; exit 77; }
command -v nix-env >/dev/null || { echo "skipped: no nix-env"; exit 77; }
command -v setsid >/dev/null || { echo "skipped: no setsid"; exit 77; }
source "$SRC/tests/integration/health-lib.sh"

HEALTH="health:
  deadline: 3
  tcp: [$PORT]
  http: ['http://127.0.0.1:$PORT/']
  units: [nixprov-test.service]
  commands:
    - argv: [/usr/bin/test, -e, $ROOT/run/nixprov-test-current]
      timeout: 5
  server: true
"
touch "$ROOT/run/units/nixprov-test.service"

# --- the first boot, broken: nothing to roll back to -------------------------------------------
publish 1 "broken.first-$run_id" "$HEALTH"
expect_exit first 11 agent_run
expect_grep first "health failed: health check failed: tcp $PORT (Connection refused"
expect_grep first "nothing to roll back to: there was no system profile before this update (first boot)"
f=$(last_report health)
[ "$(jq -r .outcome <<<"$f")" = failed ] || die "first boot: outcome: $f"
jq -e '.checks | map(select(.name == "tcp '"$PORT"'" and .ok == false)) | length == 1' <<<"$f" >/dev/null ||
  die "first boot: the report does not name the failed check: $f"
jq -e '.checks | map(select(.name == "unit nixprov-test.service" and .ok)) | length == 1' <<<"$f" >/dev/null ||
  die "first boot: the unit check is not reported ok: $f"
! listener >/dev/null || die "first boot: a listener answers"
grep -q '^outcome failed$' "$ROOT/var/lib/nixprov/update" || die "the failed serial is not recorded"
[ ! -e "$ROOT/var/lib/nixprov/applied" ] || die "a failed first boot recorded an applied serial"
ok "a broken first boot exits 10, reports the failed check and says there is nothing to roll back to"

# --- a healthy update: applied, every check reported ------------------------------------------
publish 2 "ok.n2-$run_id" "$HEALTH"
expect_exit healthy 0 agent_run
expect_grep healthy "5 health checks passed"
expect_grep healthy "provisioned at serial 2"
good=$(profile_target)
[ "$(listener)" = "system n2-$run_id" ] || die "the new system's listener does not answer"
f=$(last_report health)
[ "$(jq -r .outcome <<<"$f")" = applied ] || die "healthy: outcome: $f"
[ "$(jq -r .system <<<"$f")" = "$good" ] || die "healthy: system: $f"
jq -e '[.checks[] | select(.ok)] | length == 5' <<<"$f" >/dev/null || die "healthy: checks: $f"
jq -e '[.checks[].name] == ["unit nixprov-test.service", "tcp '"$PORT"'", "http http://127.0.0.1:'"$PORT"'/", "command /usr/bin/test", "server"]' \
  <<<"$f" >/dev/null || die "healthy: check names: $f"
grep -q '^serial 2$' "$ROOT/var/lib/nixprov/applied" || die "serial 2 not applied"
cp "$ROOT/etc/nix/nixprov.conf" conf.good
cp "$ROOT/etc/nixos/nixprov/default.nix" module.good
ok "a healthy update (serial 2) is applied: 5 checks passed and reported, $good answers on 127.0.0.1:$PORT"

# --- a broken update: rolled back to exactly the previous store path ---------------------------
publish 3 "broken.n3-$run_id" "$HEALTH"
expect_exit broken 11 agent_run
expect_grep broken "health check failed: tcp $PORT (Connection refused"
expect_grep broken "rolled back to $good; previous Nix files restored"
[ "$(profile_target)" = "$good" ] || die "the profile points to $(profile_target), not $good"
readlink "$PROFILE_LINK" | grep -q '^system-[0-9]*-link$' || die "the profile is not a Nix profile"
nixcall nix-env -p "$PROFILE_LINK" --list-generations > generations.out
[ "$(wc -l < generations.out)" -ge 3 ] || die "no new generation for the rollback: $(cat generations.out)"
wait_http "http://127.0.0.1:$PORT/"
[ "$(listener)" = "system n2-$run_id" ] || die "the old listener does not answer: $(listener)"
cmp -s "$ROOT/etc/nix/nixprov.conf" conf.good || die "nixprov.conf is not the old one"
cmp -s "$ROOT/etc/nixos/nixprov/default.nix" module.good || die "the NixOS module is not the old one"
grep -q '^serial 2$' "$ROOT/var/lib/nixprov/applied" || die "the applied serial changed"
f=$(last_report health)
[ "$(jq -r .outcome <<<"$f")" = rolled-back ] || die "broken: outcome: $f"
[ "$(jq -r .previous_system <<<"$f")" = "$good" ] || die "broken: previous_system: $f"
jq -r .error <<<"$f" | grep -qF "health check failed: tcp $PORT" || die "broken: error: $f"
jq -e '.checks | map(select(.name == "tcp '"$PORT"'" and .ok == false and .attempts > 1)) | length == 1' \
  <<<"$f" >/dev/null || die "broken: the failed check was not retried or not reported: $f"
ok "a broken update (serial 3) is rolled back: the profile is $good again, its listener answers, the Nix files are the old ones, the report names tcp $PORT"

# --- the rolled-back serial is not tried again; --retry tries it --------------------------------
calls=$(wc -l < rebuild.args)
expect_exit again 0 agent_run
expect_grep again "Serial 3 was rolled back before (health check failed: tcp $PORT"
expect_grep again "not tried again"
[ "$(wc -l < rebuild.args)" = "$calls" ] || die "the rolled-back serial was rebuilt again"
[ "$(jq -r .outcome <<<"$(last_report done)")" = not-retried ] || die "not-retried is not reported"
expect_exit retry 11 agent_run --retry
[ "$(wc -l < rebuild.args)" = $((calls + 1)) ] || die "--retry did not rebuild"
[ "$(profile_target)" = "$good" ] || die "--retry: the profile is not $good"
ok "serial 3 is not tried again (no rebuild); --retry tries it, and it is rolled back again"

# --- a failing rebuild: the system is not changed, the files are put back ----------------------
publish 4 "nosuchvariant.n4" "$HEALTH"
expect_exit rebuild-fails 7 agent_run
expect_grep rebuild-fails "previous Nix files restored; the system was not changed: $good"
[ "$(profile_target)" = "$good" ] || die "a failed rebuild changed the profile"
cmp -s "$ROOT/etc/nix/nixprov.conf" conf.good || die "a failed rebuild left the new nixprov.conf"
f=$(last_report rebuild)
[ "$(jq -r .outcome <<<"$f")" = rolled-back ] || die "rebuild failure: outcome: $f"
ok "a failing rebuild exits 7 with the system unchanged ($good) and the files restored, reported as rolled-back"

# --- a unit that is not active: rolled back, the report says which ------------------------------
publish 5 "ok.n5-$run_id" "health:
  deadline: 1
  tcp: [$PORT]
  units: [nixprov-test.service, nixprov-missing.service]
"
expect_exit unit 11 agent_run
expect_grep unit "health check failed: unit nixprov-missing.service (not active ($TMP/systemctl is-active exited with status 1)"
[ "$(profile_target)" = "$good" ] || die "unit: not rolled back to $good"
wait_http "http://127.0.0.1:$PORT/"
[ "$(listener)" = "system n2-$run_id" ] || die "unit: the old listener does not answer"
ok "an inactive unit rolls back too (the new listener was healthy, the old one answers again)"

# --- what the operator sees -----------------------------------------------------------------------
expect_exit status 0 "$AGENT" status --config agent.yaml --root "$ROOT" --json
jq -e '.serial == 2 and .update.serial == 5 and .update.outcome == "rolled-back"
       and .update.previous_system == "'"$good"'"
       and (.update.cause | test("unit nixprov-missing.service"))' status.out >/dev/null ||
  die "status: $(cat status.out)"
expect_exit status-text 0 "$AGENT" status --config agent.yaml --root "$ROOT"
expect_grep status-text "last update: serial 5 rolled back to $good (health check failed: unit nixprov-missing.service"
ok "nixprov-agent status shows serial 2 applied and serial 5 rolled back, with the cause"

expect_exit fleet 0 operator_fleet
grep -Eq "^$MACHINE .* 2 +5 rolled-back " fleet.out || die "fleet: $(cat fleet.out)"
expect_exit fleet-machine 0 operator_fleet "$MACHINE"
expect_grep fleet-machine "Last update: serial 5 rolled-back: health check failed: unit nixprov-missing.service"
operator_curl /metrics -f > metrics.out
grep -qx 'nixprov_machines_update{outcome="rolled-back"} 1' metrics.out || die "metrics: $(cat metrics.out)"
ok "nixprov fleet shows the machine running serial 2 with serial 5 rolled back (and why); /metrics counts it"

echo "$checks passed, 0 failed"
