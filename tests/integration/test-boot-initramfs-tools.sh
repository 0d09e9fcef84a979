#!/usr/bin/env bash
# The initramfs-tools hook and boot script, in a real boot: Debian's kernel in QEMU with an
# initramfs built by mkinitramfs from a private configuration directory (not the host's
# /etc/initramfs-tools) with our hook and local-bottom script. One initramfs for every case; the
# cases differ by disk (machine id) and kernel command line: online provisioning, offline from a
# file:// mirror in the initramfs, a tampered profile (emergency by default, continue with
# nixprov.on-refused=continue), no network (continue by default, emergency with
# nixprov.on-offline=emergency).
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/integration/boot-lib.sh"

boot_require mkinitramfs minisign
boot_setup

# ---- the initramfs ----------------------------------------------------------------------------
mkdir -p conf/hooks conf/scripts/local-bottom
printf 'MODULES=list\nBUSYBOX=y\nCOMPRESS=zstd\nKEYMAP=n\nFSTYPE=ext4\nUMASK=0077\n' > conf/initramfs.conf
printf 'virtio_pci\nvirtio_blk\nvirtio_net\nvirtio_rng\next4\n' > conf/modules
cp "$SRC/initrd/initramfs-tools/hooks/nixprov" conf/hooks/
cp "$SRC/initrd/initramfs-tools/scripts/local-bottom/nixprov" conf/scripts/local-bottom/
NIXPROV_AGENT=$BIN/nixprov-agent NIXPROV_INITRD_HELPER=$SRC/initrd/nixprov-initrd \
  NIXPROV_ETC=$TMP/etc-nixprov timeout 300 mkinitramfs -d conf -o initrd.img "$BOOT_KVER" \
  >mkinitramfs.out 2>&1 || { cat mkinitramfs.out >&2; die "mkinitramfs failed"; }
lsinitramfs initrd.img > initrd.list
for f in usr/sbin/nixprov-agent usr/lib/nixprov/nixprov-initrd etc/nixprov/agent.yaml \
  scripts/local-bottom/nixprov "etc/nixprov/offline/v1/machines/$M_OFFLINE/profile.minisig"; do
  grep -qx "$f" initrd.list || die "initramfs lacks $f"
done
ok "mkinitramfs -d CONFDIR builds an initramfs with the agent, the helper, the configuration and the boot script"

BOOT_POLICY_CASES=1
source "$SRC/tests/integration/boot-cases.sh"
boot_cases initrd.img
