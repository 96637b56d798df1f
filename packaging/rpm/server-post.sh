# tagrun-server %post: $1 is 1 on install, 2 or more on upgrade.
getent group tagrun-server >/dev/null || groupadd --system tagrun-server
getent passwd tagrun-server >/dev/null ||
    useradd --system --gid tagrun-server --home-dir /var/lib/tagrun-server \
        --no-create-home --shell /sbin/nologin --comment "tagrun server" tagrun-server
install -d -m 0750 -o tagrun-server -g tagrun-server /var/lib/tagrun-server
install -d -m 0755 /etc/tagrun
chown root:tagrun-server /etc/tagrun/server.toml
chmod 0640 /etc/tagrun/server.toml
if [ "$1" -eq 1 ]; then
    systemctl enable tagrun-server.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart tagrun-server.service || :
    else
        systemctl start tagrun-server.service || :
    fi
fi
