# Helpers shared by the VM, nspawn, install.sh and Greengrass tests: a real
# tagrun-server for the test, the aws CLI pointed at it, and waiting for what a user
# would wait for.
vm_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$vm_lib_dir/../.." && pwd)"
vm_dir="$repo_dir/target/vm"
packages_dir="$repo_dir/target/packages"
# The binaries the host side runs: the static ones packaging/build.sh makes, unless
# TAGRUN_AGENT and TAGRUN_SERVER name others (tests/run uses its debug builds).
static_dir="${CARGO_TARGET_DIR:-$repo_dir/target/packaging}/x86_64-unknown-linux-musl/release"
agent_binary="${TAGRUN_AGENT:-$static_dir/tagrun-agent}"
server_binary="${TAGRUN_SERVER:-$static_dir/tagrun-server}"

admin_key=AKIAEXAMPLEADMIN0001
admin_secret=admin-secret
# Prefix for commands that must run where the server is (a network namespace).
in_server_net=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool"
    done
}

# Starts tagrun-server on LISTEN (default 127.0.0.1:0) with an admin user and the
# SSMServiceRole; sets server_url and server_pid.
start_server() {
    local dir="$1" listen="${2:-127.0.0.1:0}" binary="$server_binary"
    [ -x "$binary" ] || die "$binary is missing: run packaging/build.sh first"
    mkdir -p "$dir/data"
    cat >"$dir/server.toml" <<TOML
region = "us-east-1"
account_id = "123456789012"
data_dir = "$dir/data"
long_poll_secs = 2

[[users]]
name = "admin"
access_key_id = "$admin_key"
secret_access_key = "$admin_secret"
managed_policies = ["AmazonSSMFullAccess"]

[[roles]]
name = "SSMServiceRole"
managed_policies = ["AmazonSSMManagedInstanceCore"]
TOML
    mkfifo "$dir/server.out"
    "${in_server_net[@]}" "$binary" serve --config "$dir/server.toml" --listen "$listen" \
        >"$dir/server.out" 2>"$dir/server.log" &
    server_pid=$!
    local first
    read -r first <"$dir/server.out" || die "the server did not start: $(tail -n 5 "$dir/server.log")"
    # Keep draining stdout so the server never blocks on it.
    cat "$dir/server.out" >/dev/null &
    server_url="${first#listening on }"
    log "server $server_url (pid $server_pid)"
}

stop_server() {
    if [ -n "${server_pid:-}" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}

aws_cli() {
    local aws="${TAGRUN_AWS:-$repo_dir/.venv/bin/aws}"
    [ -x "$aws" ] || die "$aws is missing: tests/run installs the aws CLI into .venv"
    AWS_ACCESS_KEY_ID="$admin_key" AWS_SECRET_ACCESS_KEY="$admin_secret" \
        AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
        "${in_server_net[@]}" "$aws" --endpoint-url "$server_url" "$@"
}

# Creates an activation for SSMServiceRole with TAGS (Key=K,Value=V ...); sets
# activation_id and activation_code.
create_activation() {
    local out
    out="$(aws_cli ssm create-activation --iam-role SSMServiceRole ${1:+--tags "$@"} \
        --query '[ActivationId,ActivationCode]' --output text)"
    read -r activation_id activation_code <<<"$out"
    [ -n "$activation_code" ] || die "create-activation returned no code"
}

# Waits up to SECONDS for a node with tag KEY=VALUE to be Online; prints its id.
wait_online_by_tag() {
    local key="$1" value="$2" seconds="$3" id deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        id="$(aws_cli ssm describe-instance-information \
            --filters "Key=tag:$key,Values=$value" "Key=PingStatus,Values=Online" \
            --query 'InstanceInformationList[0].InstanceId' --output text 2>/dev/null || true)"
        if [ -n "$id" ] && [ "$id" != None ]; then
            echo "$id"
            return 0
        fi
        sleep 1
    done
    die "no Online node tagged $key=$value after $seconds s"
}

# Waits up to SECONDS for COMMAND's invocation on INSTANCE to end; prints its status.
wait_command() {
    local command_id="$1" instance="$2" seconds="$3" status deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        status="$(aws_cli ssm list-command-invocations --command-id "$command_id" \
            --instance-id "$instance" --query 'CommandInvocations[0].Status' \
            --output text 2>/dev/null || true)"
        case "$status" in
            Success | Failed | Cancelled | TimedOut) echo "$status"; return 0 ;;
        esac
        sleep 1
    done
    die "command $command_id on $instance did not finish in $seconds s (last: $status)"
}

# Runs shell COMMANDS on INSTANCE with AWS-RunShellScript; prints standard output.
run_shell() {
    local instance="$1" commands="$2" seconds="${3:-60}" command_id status
    command_id="$(aws_cli ssm send-command --instance-ids "$instance" \
        --document-name AWS-RunShellScript \
        --parameters "$(printf '{"commands":[%s]}' "$(json_string "$commands")")" \
        --query Command.CommandId --output text)"
    status="$(wait_command "$command_id" "$instance" "$seconds")"
    aws_cli ssm get-command-invocation --command-id "$command_id" --instance-id "$instance" \
        --query StandardOutputContent --output text
    [ "$status" = Success ] || die "command ended $status"
}

json_string() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# The checks a user makes once the node runs the packaged agent, shared by the nspawn
# and QEMU tests: the unit as systemd runs it, a shell command through the aws CLI.
# The agent's OOM score is checked when LOWERED_OOM is yes (the environment lets systemd
# lower it); the configured value is checked always.
check_service() {
    local instance="$1" lowered_oom="$2" out
    out="$(run_shell "$instance" '
pid=$(systemctl show -p MainPID --value tagrun-agent.service)
echo "active=$(systemctl is-active tagrun-agent.service)"
echo "type=$(systemctl show -p Type --value tagrun-agent.service)"
echo "killmode=$(systemctl show -p KillMode --value tagrun-agent.service)"
echo "watchdog=$(systemctl show -p WatchdogUSec --value tagrun-agent.service)"
echo "oom_setting=$(systemctl show -p OOMScoreAdjust --value tagrun-agent.service)"
echo "agent_oom=$(cat /proc/$pid/oom_score_adj)"
echo "step_oom=$(cat /proc/self/oom_score_adj)"
echo "user=$(id -un)"' 120)"
    log "service as seen from a step: $(echo "$out" | tr '\n' ' ')"
    expect_line "$out" active=active
    expect_line "$out" type=notify
    expect_line "$out" killmode=process
    expect_line "$out" watchdog=1min
    expect_line "$out" oom_setting=-900
    if [ "$lowered_oom" = yes ]; then
        expect_line "$out" agent_oom=-900
    else
        log "NOTE: this host may not lower OOM scores (no CAP_SYS_RESOURCE): not checked"
    fi
    expect_line "$out" user=root
    if ! grep -qx step_oom=0 <<<"$out"; then
        log "NOTE: steps inherit the agent's OOM score ($(grep step_oom <<<"$out")):" \
            "the agent does not reset it for its children yet"
    fi
}

expect_line() {
    grep -qx -- "$2" <<<"$1" || die "expected the line '$2' in: $1"
}

# A package upgrade while a step runs: the agent restarts (new MainPID), the step
# finishes and reports Success.
check_upgrade_keeps_steps() {
    local instance="$1" long_id out status
    long_id="$(aws_cli ssm send-command --instance-ids "$instance" \
        --document-name AWS-RunShellScript --parameters "$(printf '{"commands":[%s]}' \
        "$(json_string 'before=$(systemctl show -p MainPID --value tagrun-agent.service)
sleep 12
echo "agent $before -> $(systemctl show -p MainPID --value tagrun-agent.service)"')")" \
        --query Command.CommandId --output text)"
    sleep 2
    out="$(run_shell "$instance" 'dpkg -i /mnt/tagrun-payload/tagrun-agent.deb >/dev/null
echo upgraded' 90)"
    expect_line "$out" upgraded
    status="$(wait_command "$long_id" "$instance" 90)"
    [ "$status" = Success ] || die "the step running across the upgrade ended $status"
    out="$(aws_cli ssm get-command-invocation --command-id "$long_id" \
        --instance-id "$instance" --query StandardOutputContent --output text)"
    log "step across the upgrade: $out"
    read -r _ before _ after <<<"$out"
    [ -n "$after" ] && [ "$before" != "$after" ] || die "the agent did not restart: $out"
}

# A document whose first step exits 194: the node reboots, the step runs again after
# the boot (now succeeding) and the second step runs on the new boot.
check_reboot_document() {
    local instance="$1" name="$2" seconds="$3" command_id status out
    aws_cli ssm create-document --name "$name" --document-type Command \
        --document-format JSON --content "$(cat <<'JSON'
{
  "schemaVersion": "2.2",
  "description": "reboot in the middle",
  "mainSteps": [
    {"action": "aws:runShellScript", "name": "first", "inputs": {"runCommand": [
      "if [ -f /var/tmp/tagrun-first-boot ]; then echo rerun after reboot; exit 0; fi",
      "cat /proc/sys/kernel/random/boot_id > /var/tmp/tagrun-first-boot",
      "exit 194"]}},
    {"action": "aws:runShellScript", "name": "second", "inputs": {"runCommand": [
      "echo before $(cat /var/tmp/tagrun-first-boot)",
      "echo after $(cat /proc/sys/kernel/random/boot_id)"]}}
  ]
}
JSON
)" >/dev/null
    command_id="$(aws_cli ssm send-command --instance-ids "$instance" --document-name "$name" \
        --query Command.CommandId --output text)"
    status="$(wait_command "$command_id" "$instance" "$seconds")"
    out="$(aws_cli ssm get-command-invocation --command-id "$command_id" \
        --instance-id "$instance" --plugin-name second \
        --query StandardOutputContent --output text)"
    log "second step after the reboot ($status): $(echo "$out" | tr '\n' ' ')"
    [ "$status" = Success ] || die "the reboot document ended $status"
    local before after
    before="$(sed -n 's/^before //p' <<<"$out")"
    after="$(sed -n 's/^after //p' <<<"$out")"
    [ -n "$before" ] && [ -n "$after" ] && [ "$before" != "$after" ] ||
        die "the second step did not run on a new boot: $out"
}

# Waits up to SECONDS for a line matching the grep pattern in FILE (a console log).
wait_for_line() {
    local file="$1" pattern="$2" seconds="$3" deadline=$((SECONDS + $3))
    until grep -aq -- "$pattern" "$file" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}
