#!/usr/bin/env bash
# The packaged agent under systemd in a container: boots the cached Debian bookworm
# folder with `systemd-nspawn -b` (a persistent overlay, so a reboot keeps state), and
# checks that the .deb installs and enables the unit, systemd runs the agent as the unit
# says, the node registers with a tagrun-server reachable only inside a private network
# namespace, a command sent with the aws CLI runs, a package upgrade restarts the agent
# without killing a running step, and a document whose first step exits 194 reboots the
# container and finishes its second step after the boot.
#
# Needs root, systemd-container, debootstrap (first run), the packages from
# packaging/build.sh and the aws CLI in .venv. Limitation: the container shares the
# host's kernel, so kernel-level behaviour is left to qemu.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need systemd-nspawn script ip mount
started=$SECONDS

"$vm_lib_dir/image.sh"
deb="$(ls "$packages_dir"/tagrun-agent_*_amd64.deb 2>/dev/null | head -n 1)"
[ -f "$deb" ] || die "no tagrun-agent .deb in $packages_dir: run packaging/build.sh"

scratch="$(mktemp -d /tmp/tagrun-nspawn.XXXXXX)"
netns="tagrun-nspawn-$$"
machine_pid=""
cleanup() {
    if [ -n "$machine_pid" ]; then
        stop_machine
    fi
    stop_server
    umount "$scratch/merged" 2>/dev/null || true
    ip netns del "$netns" 2>/dev/null || true
    # nspawn --keep-unit leaves its empty cgroups behind when not run by systemd.
    local hierarchy
    for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
        find "$hierarchy/payload" "$hierarchy/supervisor" -depth -type d \
            -exec rmdir {} \; 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT

# The server lives in a network namespace of its own; the container joins it, so the
# agent reaches the server and nothing else.
ip netns add "$netns"
ip -n "$netns" link set lo up
ip -n "$netns" addr add 10.0.2.100/32 dev lo
in_server_net=(ip netns exec "$netns")
start_server "$scratch/server" 10.0.2.100:0
tag="nspawn-$$"
create_activation "Key=Test,Value=$tag"

mkdir -p "$scratch/payload" "$scratch/upper" "$scratch/work" "$scratch/merged"
cp "$deb" "$scratch/payload/tagrun-agent.deb"
cp "$vm_lib_dir/guest.sh" "$scratch/payload/guest.sh"
cat >"$scratch/payload/settings.env" <<ENV
ENDPOINT=$server_url
ACTIVATION_ID=$activation_id
ACTIVATION_CODE=$activation_code
TEST_TAG=$tag
ENV
mount -t overlay overlay \
    -o "lowerdir=$vm_dir/rootfs,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/merged"

# Boots the container again whenever it asks for a reboot (nspawn exits with 133).
boot_loop() {
    local status
    while true; do
        status=0
        # CAP_SYS_RESOURCE lets systemd lower the agent's OOM score, as on a host.
        script -qfec "systemd-nspawn -b -D $scratch/merged --register=no --keep-unit \
            --capability=CAP_SYS_RESOURCE \
            --network-namespace-path=/run/netns/$netns \
            --bind-ro=$scratch/payload:/mnt/tagrun-payload" /dev/null \
            >>"$scratch/console.log" 2>&1 </dev/null || status=$?
        [ "$status" -eq 133 ] && [ ! -e "$scratch/stopping" ] || return "$status"
        echo "container rebooted" >>"$scratch/console.log"
    done
}
boot_loop &
machine_pid=$!

# Powers the container off: SIGTERM to systemd-nspawn asks its init to shut down.
stop_machine() {
    local script_pid nspawn_pid
    touch "$scratch/stopping"
    for script_pid in $(pgrep -P "$machine_pid" || true); do
        for nspawn_pid in $(pgrep -P "$script_pid" || true); do
            kill -TERM "$nspawn_pid" 2>/dev/null || true
        done
    done
    wait "$machine_pid" 2>/dev/null || true
    machine_pid=""
}

instance="$(wait_online_by_tag Test "$tag" 60)"
booted=$((SECONDS - started))
log "node $instance online, $booted s after start"
grep -q "TAGRUN: enabled enabled" "$scratch/console.log" || die "the package did not enable the unit"
grep -q "TAGRUN: unconfigured inactive" "$scratch/console.log" ||
    die "the unconfigured unit was not skipped: $(grep TAGRUN: "$scratch/console.log")"

lowered_oom=no
if choom -n -1 -- true 2>/dev/null; then lowered_oom=yes; fi
check_service "$instance" "$lowered_oom"
check_upgrade_keeps_steps "$instance"
check_reboot_document "$instance" "TagrunRebootTest" 120
grep -q "container rebooted" "$scratch/console.log" || die "the container never rebooted"
wait_for_line "$scratch/console.log" "TAGRUN: boot .* agent active" 60 ||
    die "systemd did not start the agent at boot: $(grep -a TAGRUN: "$scratch/console.log")"

stop_machine
log "nspawn test passed in $((SECONDS - started)) s"
