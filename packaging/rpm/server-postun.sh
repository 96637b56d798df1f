# tagrun-server %postun: erase keeps /var/lib/tagrun-server and the tagrun-server user
# (RPM has no purge; delete them by hand to drop the database).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
