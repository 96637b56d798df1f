#!/usr/bin/env bash
# The package lifecycle without booting: in a chroot of the cached Debian bookworm
# folder (a throwaway overlay), install both .debs, then remove (state and the server's
# user stay) and purge (state, config and user go). The .rpm scriptlets run in the same
# chroot with RPM's arguments for install and erase. Package metadata is checked too.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need dpkg-deb rpm mount chroot
started=$SECONDS

"$vm_lib_dir/image.sh"
agent_deb="$(ls "$packages_dir"/tagrun-agent_*_amd64.deb | head -n 1)"
server_deb="$(ls "$packages_dir"/tagrun-server_*_amd64.deb | head -n 1)"
agent_rpm="$(ls "$packages_dir"/tagrun-agent-*.x86_64.rpm | head -n 1)"
server_rpm="$(ls "$packages_dir"/tagrun-server-*.x86_64.rpm | head -n 1)"

# Metadata: files, conffiles, scripts.
contents="$(dpkg-deb -c "$agent_deb")"
for path in ./usr/bin/tagrun-agent ./lib/systemd/system/tagrun-agent.service \
    ./etc/tagrun/agent.toml; do
    grep -q " $path\$" <<<"$contents" || die "$agent_deb lacks $path"
done
grep -qx /etc/tagrun/agent.toml <<<"$(dpkg-deb -I "$agent_deb" conffiles)" ||
    die "agent.toml is not a conffile"
for script in postinst prerm postrm; do
    dpkg-deb -I "$agent_deb" "$script" >/dev/null || die "$agent_deb lacks $script"
    dpkg-deb -I "$server_deb" "$script" >/dev/null || die "$server_deb lacks $script"
done
for rpm_file in "$agent_rpm" "$server_rpm"; do
    name="$(rpm -qp --qf '%{NAME}' "$rpm_file" 2>/dev/null)"
    files="$(rpm -qlp "$rpm_file" 2>/dev/null)"
    grep -qx "/usr/bin/$name" <<<"$files" || die "$rpm_file lacks its binary"
    grep -qx "/usr/lib/systemd/system/$name.service" <<<"$files" || die "$rpm_file lacks its unit"
    grep -q "^/etc/tagrun/" <<<"$(rpm -qp --configfiles "$rpm_file" 2>/dev/null)" ||
        die "$rpm_file has no config file"
    scripts="$(rpm -qp --scripts "$rpm_file" 2>/dev/null)"
    for kind in postinstall preuninstall postuninstall; do
        grep -q "^$kind scriptlet" <<<"$scripts" || die "$rpm_file lacks its $kind scriptlet"
    done
done
log "package metadata is complete"

scratch="$(mktemp -d /tmp/tagrun-packages.XXXXXX)"
cleanup() {
    umount "$scratch/merged/proc" 2>/dev/null || true
    umount "$scratch/merged" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/merged"
mount -t overlay overlay \
    -o "lowerdir=$vm_dir/rootfs,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/merged"
mount -t proc proc "$scratch/merged/proc"
root="$scratch/merged"
cp "$agent_deb" "$root/tmp/agent.deb"
cp "$server_deb" "$root/tmp/server.deb"
in_root() { chroot "$root" "$@"; }

in_root dpkg -i /tmp/agent.deb /tmp/server.deb >"$scratch/dpkg.log" 2>&1 ||
    die "dpkg -i failed: $(cat "$scratch/dpkg.log")"
[ "$(stat -c %a "$root/var/lib/tagrun-agent")" = 700 ] || die "agent state dir not 0700"
[ "$(in_root stat -c %U:%a /var/lib/tagrun-server)" = tagrun-server:750 ] ||
    die "server state dir: $(in_root stat -c %U:%a /var/lib/tagrun-server)"
[ "$(in_root stat -c %U:%G:%a /etc/tagrun/server.toml)" = root:tagrun-server:640 ] ||
    die "server.toml: $(in_root stat -c %U:%G:%a /etc/tagrun/server.toml)"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tagrun-agent.service" ] ||
    die "the agent unit was not enabled"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tagrun-server.service" ] ||
    die "the server unit was not enabled"
# The shipped server config is valid as installed.
chroot "$root" /usr/bin/tagrun-server serve --config /etc/tagrun/server.toml --listen 127.0.0.1:0 \
    --data-dir /tmp/server-data >"$scratch/serve.out" 2>&1 &
serve_pid=$!
sleep 1
kill -TERM "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
grep -q "^listening on " "$scratch/serve.out" ||
    die "the shipped server.toml does not start: $(cat "$scratch/serve.out")"
log "install: directories, modes, users and enabled units as expected"

echo '{"state": "kept"}' >"$root/var/lib/tagrun-agent/registration.json"
touch "$root/var/lib/tagrun-server/tagrun.db"
in_root dpkg -r tagrun-agent tagrun-server >>"$scratch/dpkg.log" 2>&1 || die "dpkg -r failed"
[ -f "$root/var/lib/tagrun-agent/registration.json" ] || die "remove deleted the agent's state"
[ -f "$root/var/lib/tagrun-server/tagrun.db" ] || die "remove deleted the server's data"
in_root getent passwd tagrun-server >/dev/null || die "remove deleted the server's user"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/tagrun-agent.service" ] ||
    die "remove left the agent enabled"
[ ! -e "$root/usr/bin/tagrun-agent" ] || die "remove left the binary"
log "remove: binaries gone, state, config and user kept"

in_root dpkg -P tagrun-agent tagrun-server >>"$scratch/dpkg.log" 2>&1 || die "dpkg -P failed"
for path in var/lib/tagrun-agent var/lib/tagrun-server etc/tagrun; do
    [ ! -e "$root/$path" ] || die "purge left /$path"
done
! in_root getent passwd tagrun-server >/dev/null || die "purge left the server's user"
log "purge: state, config and user gone"

# The .rpm scriptlets, with RPM's arguments: install (1), then erase (0).
mkdir -p "$root/etc/tagrun" "$root/usr/lib/systemd/system"
cp "$repo_dir/packaging/server.toml" "$root/etc/tagrun/server.toml"
cp "$repo_dir/systemd/tagrun-server.service" "$root/usr/lib/systemd/system/"
cp "$repo_dir/systemd/tagrun-agent.service" "$root/usr/lib/systemd/system/"
for package in agent server; do
    rpm -qp --qf '%{POSTIN}' "$(eval echo "\$${package}_rpm")" >"$root/tmp/post.sh" 2>/dev/null
    in_root sh /tmp/post.sh 1 || die "the $package %post failed"
done
[ "$(in_root stat -c %U:%G:%a /etc/tagrun/server.toml)" = root:tagrun-server:640 ] ||
    die "rpm %post: server.toml $(in_root stat -c %U:%G:%a /etc/tagrun/server.toml)"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tagrun-agent.service" ] ||
    die "rpm %post did not enable the agent"
rpm -qp --qf '%{PREUN}' "$agent_rpm" >"$root/tmp/preun.sh" 2>/dev/null
in_root sh /tmp/preun.sh 0 || die "the agent %preun failed"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/tagrun-agent.service" ] ||
    die "rpm %preun left the agent enabled"
[ -d "$root/var/lib/tagrun-agent" ] || die "rpm erase deleted the agent's state"
log "rpm scriptlets: install creates the user and enables, erase disables and keeps state"
log "package lifecycle test passed in $((SECONDS - started)) s"
