# Sourced by test-boot-initramfs-tools.sh and test-boot-dracut.sh (after lib.sh): a real Debian
# kernel booted in QEMU (TCG) with the initramfs the test built, over a root disk made with
# mke2fs -d from a small tree (a machine id and a busybox /sbin/init that says "stage 2 reached"
# and powers off). The guest reaches only the test's nixprov serve, through a guestfwd on
# 10.0.2.100:8470 (user networking with restrict=on: nothing else, no DNS). The agent in the
# initramfs enrolls, fetches, verifies, writes into the root and reports; the test reads the
# disk with debugfs and the server with nixprov fleet.

BOOT_KVER=""
BOOT_KERNEL=""
GUEST_IP="ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
GUEST_URL=http://10.0.2.100:8470
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}

# boot_require: the real parts, or exit 77 (skipped) saying which one is missing.
boot_require() {
  local p
  for p in qemu-system-x86_64 socat debugfs mke2fs "$@"; do
    command -v "$p" >/dev/null || { echo "SKIP: $p is not installed"; exit 77; }
  done
  [ -x /usr/bin/busybox ] || [ -x /bin/busybox ] || { echo "SKIP: busybox is not installed"; exit 77; }
  BOOT_KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
  [ -n "$BOOT_KERNEL" ] && [ -r "$BOOT_KERNEL" ] || { echo "SKIP: no readable /boot/vmlinuz-*"; exit 77; }
  BOOT_KVER=${BOOT_KERNEL#/boot/vmlinuz-}
  [ -d "/lib/modules/$BOOT_KVER" ] || { echo "SKIP: no /lib/modules/$BOOT_KVER"; exit 77; }
}

# boot_setup ID...: the fleet (a profile per machine, signed), the server approving these ids,
# and the initrd's configuration in $TMP/etc-nixprov (the agent's, plus an offline mirror with
# the profile of $M_OFFLINE). Sets M_ONLINE, M_OFFLINE, M_TAMPERED, M_UNREACHABLE.
boot_setup() {
  M_ONLINE=a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1
  M_OFFLINE=b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2
  M_TAMPERED=c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3
  M_UNREACHABLE=d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4
  mkdir -p data/machines
  local m
  for m in $M_ONLINE $M_OFFLINE $M_TAMPERED $M_UNREACHABLE; do boot_publish "$m" data/machines/$m.yaml; done
  # Tampered after signing: the signature no longer matches.
  sed -i 's/serial: 3/serial: 4/' data/machines/$M_TAMPERED.yaml
  approve_machines $M_ONLINE $M_TAMPERED $M_UNREACHABLE
  start_server "$TMP/data" "$TMP/server.db"

  mkdir -p etc-nixprov/offline/v1/machines/$M_OFFLINE
  boot_publish $M_OFFLINE etc-nixprov/offline/v1/machines/$M_OFFLINE/profile
  cat > etc-nixprov/agent.yaml <<YAML
server: {urls: [$GUEST_URL], connect-timeout: 3, deadline: 4}
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
enroll: {wait: 20}
YAML
}

# boot_publish MACHINE FILE: a signed profile for MACHINE (FILE and FILE.minisig).
boot_publish() {
  printf 'nixprov: 1\nserial: 3\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$1" > "$2"
  printf 'strategy: binary-caches\nnix:\n  settings:\n    substituters: [http://127.0.0.1:9/]\n' >> "$2"
  minisign -S -s "$KEYS/fleet.sec" -m "$2" -x "$2.minisig" -t "serial 3" >/dev/null
}

# boot_disk MACHINE: the root disk $TMP/disk-MACHINE.img for MACHINE.
boot_disk() {
  local tree=$TMP/root-$1 busybox
  busybox=$(command -v busybox)
  mkdir -p "$tree"/{bin,sbin,etc,proc,sys,dev,run,tmp,var}
  cp "$busybox" "$tree/bin/busybox"
  echo "$1" > "$tree/etc/machine-id"
  # systemd switches only into a root with an os-release.
  printf 'ID=nixprov-test\nNAME="nixprov boot test"\n' > "$tree/etc/os-release"
  cat > "$tree/sbin/init" <<'INIT'
#!/bin/busybox sh
echo "nixprov-test: stage 2 reached" > /dev/console
/bin/busybox sync
/bin/busybox poweroff -f
INIT
  chmod 755 "$tree/sbin/init"
  mke2fs -q -F -t ext4 -d "$tree" "$TMP/disk-$1.img" 32M >/dev/null
}

# boot_guest NAME INITRD MACHINE [KERNEL ARGS...]: boots MACHINE's disk with INITRD, console in
# NAME.console. Sets BOOT_OUTCOME (stage2, emergency or timeout) and BOOT_REPORT_S (seconds
# from starting QEMU to the agent's end, reports sent).
boot_guest() {
  local name=$1 initrd=$2 machine=$3 start qpid outcome=timeout t _
  shift 3
  : > "$name.console"
  start=$(date +%s.%N)
  timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot \
    -monitor none -serial "file:$name.console" -kernel "$BOOT_KERNEL" -initrd "$initrd" \
    -append "console=ttyS0 root=/dev/vda ro net.ifnames=0 $GUEST_IP $*" \
    -drive "file=$TMP/disk-$machine.img,format=raw,if=virtio" -device virtio-rng-pci \
    -nic "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:8470-cmd:socat - TCP:127.0.0.1:$SERVER_PORT" \
    </dev/null >"$name.qemu" 2>&1 &
  qpid=$!
  while kill -0 $qpid 2>/dev/null; do
    grep -q "nixprov-initrd: emergency" "$name.console" && { sleep 2; outcome=emergency; kill $qpid; break; }
    [ -z "${t:-}" ] && grep -q "nixprov-initrd: agent exited" "$name.console" && t=$(date +%s.%N)
    sleep 0.2
  done
  wait $qpid 2>/dev/null || true
  grep -q "nixprov-test: stage 2 reached" "$name.console" && outcome=stage2
  [ -n "${t:-}" ] || t=$(date +%s.%N)
  BOOT_OUTCOME=$outcome
  BOOT_REPORT_S=$(python3 -c "print(round($t - $start, 1))")
  echo "# $name: $outcome; QEMU start to the agent's end (reports sent): ${BOOT_REPORT_S} s;" \
    "$(grep -o 'agent exited .*' "$name.console" | head -n 1)"
}

# expect_boot NAME OUTCOME: BOOT_OUTCOME must be OUTCOME (else the console is shown).
expect_boot() {
  [ "$BOOT_OUTCOME" = "$2" ] || { tail -n 60 "$1.console" >&2; die "$1: boot ended in $BOOT_OUTCOME, expected $2"; }
}

# disk_cat MACHINE PATH: a file of MACHINE's disk (empty when it is missing).
disk_cat() { debugfs -R "cat $2" "$TMP/disk-$1.img" 2>/dev/null; }
# disk_has MACHINE PATH: whether PATH exists on MACHINE's disk.
disk_has() { debugfs -R "stat $2" "$TMP/disk-$1.img" 2>&1 | grep -q "Inode:"; }
# disk_nothing_written MACHINE: none of the Nix files the agent writes.
disk_nothing_written() {
  local p
  for p in /etc/nixos/nixprov/default.nix /etc/nix/nixprov.conf /etc/nix/nixprov-machines; do
    ! disk_has "$1" "$p" || die "$1: $p was written"
  done
}
