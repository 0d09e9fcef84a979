#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Updates that take effect at the next boot (rebuild.action: boot, or a new kernel with
# rebuild.allow-reboot): the agent records the pending system; the next run, as after a reboot
# (a changed ROOT/run/booted-system), confirms the expected system with the health checks, or
# rolls back to the previous store path. Real parts as in test-health.sh: nixprov serve, the
# real system stand-in (nix-build, nix-env -p ... --set), real listeners; reboot is a stand-in.
source "$(dirname "$0")/lib.sh"
command -v nix-build >/dev/null || { echo "skipped: no nix-build"; exit 77; }
command -v nix-env >/dev/null || { echo "skipped: no nix-env"; exit 77; }
command -v setsid >/dev/null || { echo "skipped: no setsid"; exit 77; }
source "$SRC/tests/integration/health-lib.sh"

HEALTH="health:
  deadline: 2
  tcp: [$PORT]
"
# boot_into STORE-PATH [activate]: what a reboot does, for the agent: the booted system link,
# and (unless told otherwise) its activation, which starts its listener.
boot_into() {
  ln -sfn "$1" "$ROOT/run/booted-system"
  [ "${2:-activate}" != activate ] || "$1/bin/switch-to-configuration" switch >/dev/null
}
reboots() { cat "$TMP/reboots" 2>/dev/null | wc -l; }

publish 1 "ok.n1-$run_id" "$HEALTH"
expect_exit first 0 agent_run
s1=$(profile_target)
boot_into "$s1"
ok "serial 1 applied and booted: $s1"

# --- rebuild.action: boot: pending until the reboot -------------------------------------------
REBUILD_EXTRA="  action: boot
" publish 2 "ok.n2-$run_id" "$HEALTH"
expect_exit boot 0 agent_run
expect_grep boot "rebuild.action is boot:"
expect_grep boot "the health checks run after it (waiting for a reboot)"
s2=$(profile_target)
[ "$s2" != "$s1" ] || die "the profile did not change"
[ "$(listener)" = "system n1-$run_id" ] || die "boot: the running system changed before the reboot"
f=$(last_report health)
[ "$(jq -r .outcome <<<"$f")" = pending-reboot ] || die "boot: outcome: $f"
[ "$(jq -r .system <<<"$f")" = "$s2" ] || die "boot: system: $f"
[ "$(reboots)" = 0 ] || die "rebooted without rebuild.allow-reboot"
expect_exit waiting 0 agent_run
expect_grep waiting "serial 2: waiting for a reboot into $s2"
expect_grep waiting "Nothing new: the server answered 304 Not Modified for serial 2, which is applied."
ok "rebuild.action: boot records $s2 as pending, and the next run without a reboot waits"

boot_into "$s2"
expect_exit confirmed 0 agent_run
expect_grep confirmed "serial 2: $s2 is running and 1 health check passed"
f=$(last_report confirm)
[ "$(jq -r .outcome <<<"$f")" = confirmed ] || die "confirm: outcome: $f"
jq -e '.checks | length == 1 and .[0].name == "tcp '"$PORT"'" and .[0].ok' <<<"$f" >/dev/null ||
  die "confirm: checks: $f"
grep -q '^outcome confirmed$' "$ROOT/var/lib/nixprov/update" || die "confirmed is not recorded"
ok "after the reboot into $s2 the run confirms it: health checks passed, reported confirmed"

# --- the device boots another system than the expected one: rolled back ------------------------
REBUILD_EXTRA="  action: boot
  allow-reboot: true
" publish 3 "ok.n3-$run_id" "$HEALTH"
expect_exit boot3 0 agent_run
expect_grep boot3 "(rebooting now)"
[ "$(reboots)" = 1 ] || die "rebuild.allow-reboot: the reboot command did not run"
s3=$(profile_target)
boot_into "$s1" # the boot loader fell back to an older generation
expect_exit other 11 agent_run
expect_grep other "confirm failed: serial 3: booted $s1, not $s3; rolled back to $s2: the default again, rebooting into it"
[ "$(profile_target)" = "$s2" ] || die "other: the profile is $(profile_target), not $s2"
[ "$(reboots)" = 2 ] || die "other: no reboot into the previous system"
grep -q '^serial 2$' "$ROOT/var/lib/nixprov/applied" || die "other: the applied serial is not 2 again"
f=$(last_report confirm)
[ "$(jq -r .outcome <<<"$f")" = rolled-back ] || die "other: outcome: $f"
expect_exit other-again 0 agent_run
expect_grep other-again "Serial 3 was rolled back before (serial 3: booted $s1, not $s3)"
ok "booting another system ($s1) than the pending $s3 rolls back to exactly $s2, reboots, and serial 3 is not tried again"

# --- a new kernel with allow-reboot: pending; unhealthy after the reboot: rolled back -----------
boot_into "$s2"
REBUILD_EXTRA="  allow-reboot: true
" publish 4 "ok.n4-$run_id.kernel-2" "$HEALTH"
expect_exit kernel 0 agent_run
expect_grep kernel "the new system has another kernel or initrd: "
[ "$(reboots)" = 3 ] || die "kernel: no reboot"
s4=$(profile_target)
f=$(last_report health)
[ "$(jq -r .outcome <<<"$f")" = pending-reboot ] || die "kernel: outcome: $f"
kill "$(cat "$ROOT/run/nixprov-test-listener.pid")"
boot_into "$s4" no-activation # its service does not come up after the reboot
expect_exit unhealthy 11 agent_run
expect_grep unhealthy "confirm failed: serial 4: health check failed: tcp $PORT (Connection refused"
expect_grep unhealthy "rolled back to $s2: the default again, rebooting into it"
[ "$(profile_target)" = "$s2" ] || die "unhealthy: the profile is not $s2"
[ "$(reboots)" = 4 ] || die "unhealthy: no reboot"
ok "a new kernel (allow-reboot) reboots into $s4; unhealthy after the boot, it is rolled back to $s2"

echo "$checks passed, 0 failed"
