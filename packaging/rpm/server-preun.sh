# tagrun-server %preun: $1 is 0 on erase (stop and disable), 1 on upgrade (keep running).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop tagrun-server.service || :
    fi
    systemctl disable tagrun-server.service >/dev/null 2>&1 || :
fi
