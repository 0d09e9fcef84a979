#!/usr/bin/env bash
# The dracut module, in a real boot: Debian's kernel in QEMU with an initramfs built by dracut
# with systemd in it and our module 90nixprov (from a private copy of dracut's base directory,
# dracutbasedir, and no host configuration: nothing is installed into the host's dracut). One
# initramfs for every case; the cases differ by disk and kernel command line: online
# provisioning, offline from a file:// mirror in the initramfs, a tampered profile (emergency),
# no network (continue).
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/integration/boot-lib.sh"

boot_require dracut minisign
[ -x /usr/lib/systemd/systemd ] || { echo "SKIP: systemd is not installed"; exit 77; }
boot_setup

# ---- the initramfs ----------------------------------------------------------------------------
cp -a /usr/lib/dracut dracut-base
cp -a "$SRC/initrd/dracut/90nixprov" dracut-base/modules.d/
mkdir -p dracut-conf
dracutbasedir=$TMP/dracut-base NIXPROV_AGENT=$BIN/nixprov-agent \
  NIXPROV_INITRD_HELPER=$SRC/initrd/nixprov-initrd NIXPROV_ETC=$TMP/etc-nixprov \
  timeout 300 dracut --force --quiet --conf /dev/null --confdir "$TMP/dracut-conf" \
  --no-hostonly --no-hostonly-cmdline --no-early-microcode --compress zstd \
  --modules "systemd systemd-initrd dracut-systemd kernel-modules rootfs-block udev-rules nixprov" \
  --drivers "virtio_pci virtio_blk virtio_net virtio_rng ext4" \
  --kver "$BOOT_KVER" dracut.img >dracut.out 2>&1 || { cat dracut.out >&2; die "dracut failed"; }
lsinitrd dracut.img > initrd.list 2>/dev/null || die "lsinitrd failed"
for f in usr/sbin/nixprov-agent usr/lib/nixprov/nixprov-initrd etc/nixprov/agent.yaml \
  usr/lib/systemd/system/nixprov-initrd.service \
  etc/systemd/system/initrd.target.wants/nixprov-initrd.service \
  "etc/nixprov/offline/v1/machines/$M_OFFLINE/profile.minisig"; do
  grep -q " $f\( \|$\)" initrd.list || die "initramfs lacks $f"
done
ok "dracut with 90nixprov (private dracutbasedir) builds an initramfs with the agent, the helper, the configuration and nixprov-initrd.service wanted by initrd.target"

source "$SRC/tests/integration/boot-cases.sh"
boot_cases dracut.img
