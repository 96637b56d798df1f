# tagrun-agent %preun: $1 is 0 on erase (stop and disable), 1 on upgrade (keep running).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop tagrun-agent.service || :
    fi
    systemctl disable tagrun-agent.service >/dev/null 2>&1 || :
fi
