#!/bin/sh
# Runs inside the test VM or container at every boot (tagrun-payload.service), from the
# payload the host prepared: settings.env and tagrun-agent.deb. It does what a user
# does on a new node: install the package, configure, register, start; on later boots
# it only reports. Lines starting with "TAGRUN:" are read by the host.
set -eu
payload="$1"
. "$payload/settings.env"

say() { echo "TAGRUN: $*"; }
boot_id="$(cat /proc/sys/kernel/random/boot_id)"

if dpkg-query -W tagrun-agent >/dev/null 2>&1; then
    # systemd starts the agent at boot, as enabled by the package (this unit runs
    # alongside it, so give it time to report ready).
    tries=0
    until systemctl is-active --quiet tagrun-agent.service || [ "$tries" -ge 60 ]; do
        tries=$((tries + 1))
        sleep 1
    done
    say "boot $boot_id agent $(systemctl is-active tagrun-agent.service || true)"
    exit 0
fi

say "boot $boot_id installing"
dpkg -i "$payload/tagrun-agent.deb"
# The package queues the start without waiting for it: let the job run first.
while systemctl list-jobs --no-legend | grep -q tagrun-agent; do sleep 0.2; done
say "enabled $(systemctl is-enabled tagrun-agent.service)"
# Skipped by its ExecCondition until the config names an endpoint: not failed.
say "unconfigured $(systemctl show -p ActiveState --value tagrun-agent.service)" \
    "$(systemctl show -p Result --value tagrun-agent.service)"

cat >>/etc/tagrun/agent.toml <<TOML

endpoint = "$ENDPOINT"
region = "us-east-1"
tags = { Test = "$TEST_TAG" }
# Reboot at once for the test (the default waits a minute).
reboot_command = ["/bin/systemctl", "reboot"]
TOML

# The network may still be coming up (DHCP under QEMU): retry for a minute.
tries=0
until instance_id="$(tagrun-agent register --endpoint "$ENDPOINT" --region us-east-1 \
    --activation-id "$ACTIVATION_ID" --activation-code "$ACTIVATION_CODE")"; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { say "register failed"; exit 1; }
    sleep 1
done
say "registered $instance_id"

systemctl start tagrun-agent.service
say "agent $(systemctl is-active tagrun-agent.service)"
