#!/usr/bin/env bash
# Tests the Greengrass component: the recipe passes the format check (and broken
# recipes do not), and its install and run lifecycle steps, rendered as a linux/amd64
# core device would, register and run the agent against a real tagrun-server, entirely
# inside a scratch directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../tests/vm/lib.sh"
check="$here/check_recipe.py"

scratch="$(mktemp -d /tmp/tagrun-greengrass.XXXXXX)"
agent_pid=""
cleanup() {
    [ -z "$agent_pid" ] || { kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; }
    stop_server
    rm -rf "$scratch"
}
trap cleanup EXIT

# The component as package.sh lays it out (only the x86_64 agent is needed here).
recipe="$scratch/recipe.json"
sed -e 's/@VERSION@/0.1.0/g' -e 's/@BUCKET@/tagrun-test-artifacts/g' \
    "$here/recipe.template.json" >"$recipe"
artifacts="$scratch/greengrass/packages/artifacts/net.tagrun.Agent/0.1.0"
work="$scratch/greengrass/work/net.tagrun.Agent"
mkdir -p "$artifacts" "$work"
install -m 0755 "$here/lifecycle.sh" "$artifacts/lifecycle.sh"
install -m 0755 "$agent_binary" "$artifacts/tagrun-agent-x86_64"

python3 "$check" check "$recipe" --artifacts-dir "$artifacts" || die "the recipe is invalid"
log "recipe passes the format check"

# The check must catch what a broken recipe gets wrong.
broken() {
    local name="$1" edit="$2" want="$3" out
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); $edit; json.dump(r, open(sys.argv[2], 'w'))" \
        "$recipe" "$scratch/$name.json"
    if out="$(python3 "$check" check "$scratch/$name.json" 2>&1)"; then
        die "the check accepted a recipe with $name"
    fi
    grep -q -- "$want" <<<"$out" || die "the check missed $name: $out"
}
broken no-version 'del r["ComponentVersion"]' "ComponentVersion is required"
broken bad-permission 'r["Manifests"][0]["Artifacts"][0]["Permission"]["Execute"]="YES"' \
    "Permission.Execute"
broken unknown-config 'r["Lifecycle"]["run"]["Script"]+=" {configuration:/Nope}"' \
    "not in DefaultConfiguration"
broken missing-artifact 'r["Manifests"][0]["Artifacts"].pop(1)' "does not ship"
broken run-and-startup 'r["Lifecycle"]["startup"]="true"' "exclude each other"
broken bad-platform 'r["Manifests"][0]["Platform"]["architecture"]="x86_64"' \
    "Platform.architecture"
log "broken recipes are refused"

start_server "$scratch/server"
create_activation "Key=Test,Value=greengrass-$$"
lifecycle_script() {
    python3 "$check" script "$recipe" "$1" --os linux --arch amd64 \
        --artifacts "$artifacts" --work "$work" \
        --set "Endpoint=$server_url" --set "ActivationId=$activation_id" \
        --set "ActivationCode=$activation_code" --set "Tags=Role=gateway,Site=lab"
}

sh -c "$(lifecycle_script install)" >"$scratch/install.log" 2>&1 || die "install failed: $(cat "$scratch/install.log")"
[ -f "$work/state/registration.json" ] || die "install did not register the node"
grep -q 'tags = { "Role" = "gateway", "Site" = "lab" }' "$work/agent.toml" ||
    die "install wrote an unexpected config: $(cat "$work/agent.toml")"
[ "$(stat -c %a "$work/state")" = 700 ] || die "the state directory is not private"
sh -c "$(lifecycle_script install)" >"$scratch/install2.log" 2>&1 || die "a second install failed"
grep -q "already registered" "$scratch/install2.log" || die "a second install registered again"
log "install step registered the node and is idempotent"

sh -c "$(lifecycle_script run)" >"$scratch/run.log" 2>&1 &
agent_pid=$!
instance="$(wait_online_by_tag Test "greengrass-$$" 60)"
out="$(run_shell "$instance" 'echo hello from the component' 60)"
expect_line "$out" "hello from the component"
kill -TERM "$agent_pid"
wait "$agent_pid" || die "the agent did not stop cleanly on SIGTERM: $(tail -n 5 "$scratch/run.log")"
agent_pid=""
log "run step ran the agent; a command went through it (node $instance)"
