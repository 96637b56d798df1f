#!/usr/bin/env bash
# The packaged agent in a real VM: boots the cached Debian bookworm image under QEMU
# (KVM when the CPU offers hardware virtualization, else TCG) and checks what nspawn.sh
# checks, with a real kernel: the .deb installs and enables the unit, systemd runs the
# agent, the node registers with a tagrun-server on the host's loopback, reachable only
# through a QEMU guestfwd rule, a command sent with the aws CLI runs, and a document
# whose first step exits 194 really reboots the VM and finishes after the boot.
#
# Needs root (debootstrap, first run), qemu-system-x86, the packages from
# packaging/build.sh and the aws CLI in .venv. TAGRUN_VM_ACCEL=kvm|tcg forces a choice.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mke2fs python3
started=$SECONDS

"$vm_lib_dir/image.sh"
deb="$(ls "$packages_dir"/tagrun-agent_*_amd64.deb 2>/dev/null | head -n 1)"
[ -f "$deb" ] || die "no tagrun-agent .deb in $packages_dir: run packaging/build.sh"

scratch="$(mktemp -d /tmp/tagrun-qemu.XXXXXX)"
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ]; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    stop_server
    rm -rf "$scratch"
}
trap cleanup EXIT

start_server "$scratch/server"
port="${server_url##*:}"
tag="qemu-$$"
create_activation "Key=Test,Value=$tag"

mkdir -p "$scratch/payload"
cp "$deb" "$scratch/payload/tagrun-agent.deb"
cp "$vm_lib_dir/guest.sh" "$scratch/payload/guest.sh"
cat >"$scratch/payload/settings.env" <<ENV
ENDPOINT=http://10.0.2.100:7733
ACTIVATION_ID=$activation_id
ACTIVATION_CODE=$activation_code
TEST_TAG=$tag
ENV
mke2fs -q -t ext4 -d "$scratch/payload" "$scratch/payload.img" 64M

# /dev/kvm alone is not enough: some hosts offer a software KVM that cannot run a stock
# Debian kernel. Use it only when the CPU has VT-x or AMD-V.
accel="${TAGRUN_VM_ACCEL:-}"
if [ -z "$accel" ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
log "booting the VM with $accel"

qemu-system-x86_64 -accel "$accel" -m 1024 -smp 2 \
    -kernel "$vm_dir/vmlinuz" -initrd "$vm_dir/initrd" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
    -drive "file=$vm_dir/rootfs.img,if=virtio,format=raw,snapshot=on" \
    -drive "file=$scratch/payload.img,if=virtio,format=raw,readonly=on" \
    -netdev "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:7733-cmd:python3 $vm_lib_dir/relay.py 127.0.0.1 $port" \
    -device virtio-net-pci,netdev=net0 \
    -display none -monitor none -serial "file:$scratch/console.log" &
qemu_pid=$!

instance="$(wait_online_by_tag Test "$tag" 300)"
log "node $instance online, $((SECONDS - started)) s after start"
grep -q "TAGRUN: enabled enabled" "$scratch/console.log" || die "the package did not enable the unit"

check_service "$instance" yes
check_reboot_document "$instance" "TagrunRebootTest" 300
[ "$(grep -c "Linux version" "$scratch/console.log")" -ge 2 ] || die "the kernel did not boot twice"
wait_for_line "$scratch/console.log" "TAGRUN: boot .* agent active" 60 ||
    die "systemd did not start the agent at boot: $(grep -a TAGRUN: "$scratch/console.log")"

log "QEMU ($accel) test passed in $((SECONDS - started)) s"
