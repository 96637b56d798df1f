#!/usr/bin/env bash
# Tests install.sh in a scratch root (--root), never touching this machine's /usr, /etc
# or /var: files, modes and the enabled unit land in the root, the node registers with a
# real tagrun-server, the installed config and registration run an agent that takes a
# command, and a second run (an upgrade) keeps the config and the registration.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../tests/vm/lib.sh"

scratch="$(mktemp -d /tmp/tagrun-install.XXXXXX)"
agent_pid=""
cleanup() {
    [ -z "$agent_pid" ] || { kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; }
    stop_server
    rm -rf "$scratch"
}
trap cleanup EXIT
root="$scratch/root"
binary="$agent_binary"
[ -x "$binary" ] || die "$binary is missing: run packaging/build.sh"
host_before="$(ls -d /etc/tagrun /usr/local/bin/tagrun-agent /var/lib/tagrun-agent \
    /etc/systemd/system/tagrun-agent.service 2>/dev/null || true)"

start_server "$scratch/server"
tag="install-$$"
create_activation "Key=Test,Value=$tag"
"$here/install.sh" --root "$root" --binary "$binary" --endpoint "$server_url" \
    --region us-east-1 --activation-id "$activation_id" --activation-code "$activation_code" \
    --tags "Env=edge,Test=$tag" >"$scratch/install.log" 2>&1 ||
    die "install.sh failed: $(cat "$scratch/install.log")"

mode() { stat -c %a "$root/$1"; }
[ "$(mode usr/local/bin/tagrun-agent)" = 755 ] || die "binary mode $(mode usr/local/bin/tagrun-agent)"
[ "$(mode etc/tagrun/agent.toml)" = 600 ] || die "config mode $(mode etc/tagrun/agent.toml)"
[ "$(mode var/lib/tagrun-agent)" = 700 ] || die "state mode $(mode var/lib/tagrun-agent)"
[ -f "$root/var/lib/tagrun-agent/registration.json" ] || die "the node was not registered"
grep -qx "ExecStart=/usr/local/bin/tagrun-agent run --config /etc/tagrun/agent.toml" \
    "$root/etc/systemd/system/tagrun-agent.service" || die "the unit does not run the installed binary"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tagrun-agent.service" ] ||
    die "the unit was not enabled"
grep -qx "endpoint = \"$server_url\"" "$root/etc/tagrun/agent.toml" || die "endpoint not written"
log "install.sh laid out binary, unit, config and registration"

# The installed files run: the same config, with the state directory inside the root.
sed "s|^# state_dir = .*|state_dir = \"$root/var/lib/tagrun-agent\"|" \
    "$root/etc/tagrun/agent.toml" >"$scratch/agent.toml"
"$root/usr/local/bin/tagrun-agent" run --config "$scratch/agent.toml" >"$scratch/agent.log" 2>&1 &
agent_pid=$!
instance="$(wait_online_by_tag Test "$tag" 60)"
expect_line "$(run_shell "$instance" 'echo installed by install.sh' 60)" "installed by install.sh"
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
log "the installed agent ran a command as node $instance"

registration="$(sha256sum <"$root/var/lib/tagrun-agent/registration.json")"
echo "# kept" >>"$root/etc/tagrun/agent.toml"
"$here/install.sh" --root "$root" --binary "$binary" --endpoint "$server_url" \
    --region us-east-1 --activation-id "$activation_id" --activation-code "$activation_code" \
    >"$scratch/upgrade.log" 2>&1 || die "a second install.sh failed: $(cat "$scratch/upgrade.log")"
tail -n 1 "$root/etc/tagrun/agent.toml" | grep -qx "# kept" || die "the config was overwritten"
[ "$(sha256sum <"$root/var/lib/tagrun-agent/registration.json")" = "$registration" ] ||
    die "the registration changed"
if "$here/install.sh" --root "$root" --binary "$binary" --activation-id x >/dev/null 2>&1; then
    die "install.sh accepted an activation without an endpoint"
fi
if "$here/install.sh" --root "$scratch/other-root" --binary "$binary" --endpoint "$server_url" \
    --region us-east-1 --tags 'Env=a"b' >/dev/null 2>&1; then
    die "install.sh accepted a tag value with a quote"
fi
[ ! -e "$scratch/other-root/etc/tagrun/agent.toml" ] || die "a refused install wrote a config"
host_after="$(ls -d /etc/tagrun /usr/local/bin/tagrun-agent /var/lib/tagrun-agent \
    /etc/systemd/system/tagrun-agent.service 2>/dev/null || true)"
[ "$host_before" = "$host_after" ] || die "install.sh touched the real system"
log "a second install.sh keeps config and registration; the host was left alone"
