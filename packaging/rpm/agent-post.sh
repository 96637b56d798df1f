# tagrun-agent %post: $1 is 1 on install, 2 or more on upgrade.
install -d -m 0700 /var/lib/tagrun-agent
install -d -m 0755 /etc/tagrun
if [ "$1" -eq 1 ]; then
    systemctl enable tagrun-agent.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -ge 2 ]; then
        # --no-block: ready waits for the server. KillMode=process: running steps survive; the new agent picks them up.
        systemctl --no-block try-restart tagrun-agent.service || :
    else
        # Skipped (not failed) until /etc/tagrun/agent.toml names an endpoint.
        systemctl --no-block start tagrun-agent.service || :
    fi
fi
