# Sourced by the boot tests after they built their initramfs: the cases, the same for every kind.

# case_online INITRD: enrolls (approved by the policy), fetches, writes, reports.
case_online() {
  boot_disk $M_ONLINE
  boot_guest online "$1" $M_ONLINE
  expect_boot online stage2
  grep -q "provisioned: continuing boot" online.console || die "online: no 'provisioned' line"
  disk_cat $M_ONLINE /etc/nixos/nixprov/default.nix > online-default.nix
  grep -q "http://127.0.0.1:9/" online-default.nix || { cat online-default.nix >&2; die "online: default.nix lacks the profile's cache"; }
  disk_cat $M_ONLINE /var/lib/nixprov/last-run.json > online-last-run.json
  jq -e '.exit_code == 0' online-last-run.json >/dev/null || { cat online-last-run.json >&2; die "online: last-run.json does not say exit 0"; }
  expect_exit online-fleet 0 operator_fleet "$M_ONLINE"
  expect_grep online-fleet "approved"
  expect_grep online-fleet "write"
  ok "online: the agent in the initramfs enrolled, fetched, wrote default.nix into the root disk and reported (server: approved); stage 2 reached; $BOOT_REPORT_S s from QEMU start to the last report"
}

# case_offline INITRD: no network, the profile from file:// in the initramfs; reports spooled.
case_offline() {
  boot_disk $M_OFFLINE
  boot_guest offline "$1" $M_OFFLINE ip=off nixprov.url=file:///etc/nixprov/offline
  expect_boot offline stage2
  disk_cat $M_OFFLINE /etc/nixos/nixprov/default.nix | grep -q "http://127.0.0.1:9/" || die "offline: default.nix not written"
  debugfs -R "ls /var/lib/nixprov/reports" "$TMP/disk-$M_OFFLINE.img" 2>/dev/null | grep -q "[0-9]" ||
    die "offline: no spooled reports on the disk"
  ok "offline: the profile from file:// in the initramfs was verified and written, the reports wait in the disk's spool; stage 2 reached"
}

# case_tampered INITRD: refused, nothing written, the report says why, emergency (default);
# with nixprov.on-refused=continue the boot goes on.
case_tampered() {
  boot_disk $M_TAMPERED
  boot_guest tampered "$1" $M_TAMPERED
  expect_boot tampered emergency
  grep -q "agent exited 4" tampered.console || die "tampered: the agent did not exit 4"
  disk_nothing_written $M_TAMPERED
  expect_exit tampered-fleet 0 operator_fleet "$M_TAMPERED"
  expect_grep tampered-fleet "signature does not match"
  ok "tampered: refused (exit 4), nothing written, the server's history says 'signature does not match', boot stopped in the emergency shell"

  [ "${BOOT_POLICY_CASES:-0}" = 1 ] || return 0
  boot_guest tampered-continue "$1" $M_TAMPERED nixprov.on-refused=continue
  expect_boot tampered-continue stage2
  grep -q "continuing boot unprovisioned (nixprov.on-refused=continue)" tampered-continue.console || die "tampered-continue: no policy line"
  disk_nothing_written $M_TAMPERED
  ok "tampered with nixprov.on-refused=continue: nothing written, stage 2 reached"
}

# case_unreachable INITRD: no network: continue (default), emergency with on-offline=emergency.
case_unreachable() {
  boot_disk $M_UNREACHABLE
  boot_guest unreachable "$1" $M_UNREACHABLE ip=off
  expect_boot unreachable stage2
  grep -q "agent exited 3" unreachable.console || die "unreachable: the agent did not exit 3"
  grep -q "continuing boot unprovisioned (nixprov.on-offline=continue)" unreachable.console || die "unreachable: no policy line"
  disk_nothing_written $M_UNREACHABLE
  ok "no network: exit 3, nothing written, stage 2 reached (on-offline=continue by default)"

  [ "${BOOT_POLICY_CASES:-0}" = 1 ] || return 0
  boot_guest unreachable-emergency "$1" $M_UNREACHABLE ip=off nixprov.on-offline=emergency
  expect_boot unreachable-emergency emergency
  disk_nothing_written $M_UNREACHABLE
  ok "no network with nixprov.on-offline=emergency: nothing written, emergency shell"
}

boot_cases() {
  local started=$SECONDS
  case_online "$1"
  [ -n "${BOOT_ONLY:-}" ] && return 0
  case_offline "$1"
  case_tampered "$1"
  case_unreachable "$1"
  echo "# all boots: $((SECONDS - started)) s"
}
