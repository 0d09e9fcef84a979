#!/bin/bash
# dracut module nixprov: nixprov-agent provisions the root mounted at /sysroot before the
# switch to it. With systemd in the initrd: nixprov-initrd.service (after sysroot.mount, before
# initrd-switch-root.target); without: a pre-pivot hook. Build-time settings (environment):
#   NIXPROV_AGENT         the agent binary          (default /usr/sbin/nixprov-agent)
#   NIXPROV_INITRD_HELPER the boot helper           (default /usr/lib/nixprov/nixprov-initrd)
#   NIXPROV_ETC           the configuration dir     (default /etc/nixprov)
# Everything under NIXPROV_ETC goes in except the enrollment token (enroll-token*), which the
# agent reads from the root disk.

check() {
	require_binaries "${NIXPROV_AGENT:-/usr/sbin/nixprov-agent}" || return 1
	# Only when asked for (--add nixprov, or add_dracutmodules+=" nixprov ").
	return 255
}

depends() {
	echo base
}

installkernel() {
	instmods virtio_net virtio_pci
}

install() {
	local etc=${NIXPROV_ETC:-/etc/nixprov} f ca

	inst_binary "${NIXPROV_AGENT:-/usr/sbin/nixprov-agent}" /usr/sbin/nixprov-agent
	inst_script "${NIXPROV_INITRD_HELPER:-/usr/lib/nixprov/nixprov-initrd}" /usr/lib/nixprov/nixprov-initrd
	inst_multiple timeout ip mount umount grep cut awk sync sleep cat
	[ ! -r /etc/ssl/certs/ca-certificates.crt ] || inst_simple /etc/ssl/certs/ca-certificates.crt
	if [ -d "$etc" ]; then
		while read -r f; do
			inst_simple "$f" "/etc/nixprov/${f#"$etc"/}"
		done < <(find "$etc" -type f ! -name 'enroll-token*')
		ca=$(sed -n 's/^[[:space:]]*ca-file:[[:space:]]*//p' "$etc/agent.yaml" 2>/dev/null | head -n 1)
		[ -z "$ca" ] || [ ! -r "$ca" ] || inst_simple "$ca"
	fi

	if dracut_module_included systemd; then
		inst_simple "$moddir/nixprov-initrd.service" "$systemdsystemunitdir/nixprov-initrd.service"
		$SYSTEMCTL -q --root "$initdir" add-wants initrd.target nixprov-initrd.service
	else
		inst_hook pre-pivot 50 "$moddir/nixprov-pre-pivot.sh"
	fi
}
