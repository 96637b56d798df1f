# tagrun-agent %postun: erase keeps /var/lib/tagrun-agent (RPM has no purge; delete it by
# hand to forget the registration).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
