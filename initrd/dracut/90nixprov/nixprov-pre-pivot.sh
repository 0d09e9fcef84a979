#!/bin/sh
# dracut pre-pivot hook (initrds without systemd): the root is mounted at $NEWROOT.
type emergency_shell >/dev/null 2>&1 || . /lib/dracut-lib.sh
getargbool 1 nixprov.initrd || return 0
/usr/lib/nixprov/nixprov-initrd "${NEWROOT:-/sysroot}" --configure-ip ||
	emergency_shell -n nixprov "nixprov: this machine was not provisioned; see the messages above"
