#!/bin/sh
# Lifecycle of the net.tagrun.Agent Greengrass component.
#
#   lifecycle.sh install --artifacts DIR --work DIR --endpoint URL --region REGION \
#       [--activation-id ID --activation-code CODE] [--tags K=V,K=V]
#   lifecycle.sh run --artifacts DIR --work DIR
#
# install writes WORK/agent.toml and registers the node once (the registration lives in
# WORK/state, which Greengrass keeps across deployments); run execs the agent. Everything
# stays under the two directories Greengrass gives the component.
set -eu

fail() {
    echo "tagrun lifecycle: $*" >&2
    exit 1
}

step="${1:-}"
[ $# -gt 0 ] && shift
artifacts="" work="" endpoint="" region="" activation_id="" activation_code="" tags=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || fail "$1 needs a value"
    case "$1" in
        --artifacts) artifacts="$2" ;;
        --work) work="$2" ;;
        --endpoint) endpoint="$2" ;;
        --region) region="$2" ;;
        --activation-id) activation_id="$2" ;;
        --activation-code) activation_code="$2" ;;
        --tags) tags="$2" ;;
        *) fail "unknown option $1" ;;
    esac
    shift 2
done
[ -n "$artifacts" ] || fail "--artifacts is required"
[ -n "$work" ] || fail "--work is required"

# The static agent built for this machine's architecture.
agent_binary() {
    case "$(uname -m)" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        armv7* | armv8l) arch=armv7 ;;
        *) fail "no tagrun-agent build for architecture $(uname -m)" ;;
    esac
    binary="$artifacts/tagrun-agent-$arch"
    [ -f "$binary" ] || fail "$binary is missing from the component's artifacts"
    chmod 0755 "$binary"
    echo "$binary"
}

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
        entry="$(toml_string "$key") = $(toml_string "${pair#*=}")"
        out="${out:+$out, }$entry"
    done
    printf '{ %s }' "$out"
}

install_step() {
    [ -n "$endpoint" ] || fail "set Endpoint in the component configuration"
    [ -n "$region" ] || fail "set Region in the component configuration"
    binary="$(agent_binary)"
    state="$work/state"
    mkdir -p "$state"
    chmod 0700 "$state"

    # Assignments, so that a refused value stops the step (set -e).
    endpoint_toml="$(toml_string "$endpoint")"
    region_toml="$(toml_string "$region")"
    state_toml="$(toml_string "$state")"
    tags_toml="$(toml_tags "$tags")"
    config="$work/agent.toml"
    umask 077
    {
        echo "# Written by the net.tagrun.Agent install step; edit the component configuration."
        echo "endpoint = $endpoint_toml"
        echo "region = $region_toml"
        echo "state_dir = $state_toml"
        echo "tags = $tags_toml"
    } > "$config.tmp"
    mv "$config.tmp" "$config"

    if [ -f "$state/registration.json" ]; then
        echo "tagrun lifecycle: node already registered, keeping its registration"
        return 0
    fi
    [ -n "$activation_id" ] && [ -n "$activation_code" ] ||
        fail "set ActivationId and ActivationCode in the component configuration"
    "$binary" register --endpoint "$endpoint" --region "$region" \
        --activation-id "$activation_id" --activation-code "$activation_code" \
        --state-dir "$state"
}

case "$step" in
    install) install_step ;;
    run)
        [ -f "$work/agent.toml" ] || fail "$work/agent.toml is missing: the install step did not run"
        exec "$(agent_binary)" run --config "$work/agent.toml"
        ;;
    *) fail "usage: lifecycle.sh install|run --artifacts DIR --work DIR [options]" ;;
esac
