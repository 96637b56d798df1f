#!/usr/bin/env bash
# Builds the Debian bookworm test system once and caches it under target/vm/:
#   rootfs/            the debootstrap folder (systemd-nspawn boots it)
#   rootfs.img         the same as an ext4 disk image (QEMU boots it, snapshot=on)
#   vmlinuz, initrd    the guest kernel
# The system is generic: at boot, tagrun-payload.service runs guest.sh from a payload
# (a second disk under QEMU, a bind mount under nspawn), so changing the test does not
# rebuild the image. Rebuilt when this script changes. Needs root and debootstrap.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Two stages, each redone only when what it depends on changed: the debootstrap folder
# (slow, keyed on the package list) and the configuration plus disk image (seconds).
packages=systemd,systemd-sysv,udev,dbus,procps,kmod,linux-image-cloud-amd64
stamp="$vm_dir/image.stamp"
want="$(sha256sum "$vm_lib_dir/image.sh" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$vm_dir/rootfs.img" ]; then
    exit 0
fi
mkdir -p "$vm_dir/debs"
rm -f "$vm_dir/rootfs.img" "$stamp"
if [ "$(cat "$vm_dir/rootfs.stamp" 2>/dev/null)" != "$packages" ]; then
    need debootstrap
    rm -rf "$vm_dir/rootfs" "$vm_dir/rootfs.stamp"
    log "debootstrap bookworm (packages cached in $vm_dir/debs)"
    debootstrap --variant=minbase --cache-dir="$vm_dir/debs" --include="$packages" \
        bookworm "$vm_dir/rootfs" http://deb.debian.org/debian >"$vm_dir/debootstrap.log"
    echo "$packages" >"$vm_dir/rootfs.stamp"
fi
need mke2fs

root="$vm_dir/rootfs"
echo tagrun-vm >"$root/etc/hostname"
: >"$root/etc/machine-id"
cat >"$root/etc/systemd/network/20-wired.network" <<'UNIT'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
UNIT
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"

cat >"$root/usr/local/sbin/tagrun-payload" <<'SCRIPT'
#!/bin/sh
# Runs the test's guest.sh from the payload: /dev/vdb under QEMU, a bind mount under
# nspawn.
set -eu
payload=/mnt/tagrun-payload
if [ ! -f "$payload/guest.sh" ] && [ -b /dev/vdb ]; then
    mkdir -p "$payload"
    mount -o ro /dev/vdb "$payload"
fi
exec sh "$payload/guest.sh" "$payload"
SCRIPT
chmod 0755 "$root/usr/local/sbin/tagrun-payload"
cat >"$root/etc/systemd/system/tagrun-payload.service" <<'UNIT'
[Unit]
Description=tagrun test payload
After=network.target systemd-networkd.service
ConditionPathExists=|/dev/vdb
ConditionPathExists=|/mnt/tagrun-payload/guest.sh

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/tagrun-payload
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/tagrun-payload.service \
    "$root/etc/systemd/system/multi-user.target.wants/tagrun-payload.service"
# Nothing in the test needs these; they only slow a TCG boot down.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*

cp -L "$root/vmlinuz" "$vm_dir/vmlinuz"
cp -L "$root/initrd.img" "$vm_dir/initrd"
log "ext4 image from the folder"
mke2fs -q -t ext4 -L root -d "$root" "$vm_dir/rootfs.img" 2G
echo "$want" >"$stamp"
log "image ready: $(du -sh "$vm_dir/rootfs.img" | cut -f1) allocated"
