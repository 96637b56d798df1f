#!/bin/sh
# Installs tagrun-agent on a host without a package manager: the static binary, the
# systemd unit, a config, the state directory; registers the node and starts the agent.
#
#   sudo ./install.sh --endpoint https://tagrun.example.net:7733 --region us-east-1 \
#       --activation-id ID --activation-code CODE [--tags Env=prod,Role=edge]
#
# Options:
#   --binary PATH   the agent to install (default: tagrun-agent next to this script, or
#                   target/edge/tagrun-agent-ARCH in a source checkout)
#   --root DIR      install into DIR instead of / (a scratch root or an image being built);
#                   nothing is started then, the unit is only enabled
#   --no-start      install and register, but do not start the agent
# Run again to upgrade the binary and unit: the config and the registration are kept, and
# the agent restarts without stopping running steps.
set -eu

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

here="$(cd "$(dirname "$0")" && pwd)"
root="" binary="" endpoint="" region="" activation_id="" activation_code="" tags=""
start=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --no-start) start=no; shift; continue ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    esac
    [ $# -ge 2 ] || fail "$1 needs a value"
    case "$1" in
        --root) root="${2%/}" ;;
        --binary) binary="$2" ;;
        --endpoint) endpoint="$2" ;;
        --region) region="$2" ;;
        --activation-id) activation_id="$2" ;;
        --activation-code) activation_code="$2" ;;
        --tags) tags="$2" ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
    shift 2
done

# Files come from the release tarball (next to this script) or a source checkout.
find_file() {
    for candidate in "$@"; do
        if [ -f "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    fail "none of $* exists"
}
case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    armv7* | armv8l) arch=armv7 ;;
    *) arch="$(uname -m)" ;;
esac
[ -n "$binary" ] || binary="$(find_file "$here/tagrun-agent" \
    "$here/../target/edge/tagrun-agent-$arch")"
unit="$(find_file "$here/tagrun-agent.service" "$here/../systemd/tagrun-agent.service")"
template="$(find_file "$here/agent.toml" "$here/../packaging/agent.toml")"
"$binary" --version >/dev/null 2>&1 || fail "$binary does not run on this machine"
if [ -n "$activation_id$activation_code" ] && [ -z "$endpoint" ]; then
    fail "registering needs --endpoint and --region"
fi
if [ -n "$endpoint" ] && [ -z "$region" ]; then
    fail "--endpoint needs --region"
fi

newline='
'
# A TOML string, refusing characters that would need escapes.
toml_string() {
    case "$1" in
        *'"'* | *'\'* | *"$newline"*) fail "value $1 contains a quote, backslash or newline" ;;
    esac
    printf '"%s"' "$1"
}

# K=V,K=V as a TOML inline table.
toml_tags() {
    out="" rest="$1"
    while [ -n "$rest" ]; do
        pair="${rest%%,*}"
        if [ "$pair" = "$rest" ]; then rest=""; else rest="${rest#*,}"; fi
        [ -n "$pair" ] || continue
        key="${pair%%=*}"
        [ "$key" != "$pair" ] && [ -n "$key" ] || fail "tag $pair is not Key=Value"
        out="${out:+$out, }$(toml_string "$key") = $(toml_string "${pair#*=}")"
    done
    printf '{ %s }' "$out"
}

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/tagrun"
install -d -m 0700 "$root/var/lib/tagrun-agent"
install -m 0755 "$binary" "$root/usr/local/bin/tagrun-agent.new"
mv -f "$root/usr/local/bin/tagrun-agent.new" "$root/usr/local/bin/tagrun-agent"
sed 's|/usr/bin/tagrun-agent|/usr/local/bin/tagrun-agent|' "$unit" \
    >"$root/etc/systemd/system/tagrun-agent.service"
chmod 0644 "$root/etc/systemd/system/tagrun-agent.service"

config="$root/etc/tagrun/agent.toml"
if [ -f "$config" ]; then
    echo "keeping $config"
else
    # Assignments, so that a refused value stops the script (set -e).
    endpoint_toml="$(toml_string "$endpoint")"
    region_toml="$(toml_string "$region")"
    tags_toml="$(toml_tags "$tags")"
    (
        umask 077
        sed -e '/^# endpoint = /d' -e '/^# region = /d' "$template" >"$config.new"
        if [ -n "$endpoint" ]; then
            {
                echo
                echo "# Written by install.sh."
                echo "endpoint = $endpoint_toml"
                echo "region = $region_toml"
                [ -z "$tags" ] || echo "tags = $tags_toml"
            } >>"$config.new"
        fi
        mv "$config.new" "$config"
    )
    echo "wrote $config"
fi

state="$root/var/lib/tagrun-agent"
if [ -f "$state/registration.json" ]; then
    echo "already registered, keeping the registration in $state"
elif [ -n "$activation_id" ]; then
    [ -n "$activation_code" ] || fail "--activation-id needs --activation-code"
    "$root/usr/local/bin/tagrun-agent" register --endpoint "$endpoint" --region "$region" \
        --activation-id "$activation_id" --activation-code "$activation_code" \
        --state-dir "$state"
fi

if [ -n "$root" ]; then
    systemctl --root="$root" enable tagrun-agent.service
elif [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable tagrun-agent.service
    if [ "$start" = yes ]; then
        # KillMode=process: an upgrade restarts the agent, not its running steps.
        systemctl --no-block restart tagrun-agent.service
    fi
else
    systemctl enable tagrun-agent.service 2>/dev/null ||
        echo "systemd is not running: start /usr/local/bin/tagrun-agent run yourself"
fi
echo "tagrun-agent installed"
