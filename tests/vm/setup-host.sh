#!/usr/bin/env bash
# Installs, from Debian, what the packaging and VM tests need on the test host (root):
# systemd-analyze comes with systemd; the rest is listed here. QEMU comes from
# bookworm-backports when the preinstalled qemu-utils does (see tests/vm/README.md).
set -euo pipefail
want=()
have() { command -v "$1" >/dev/null 2>&1; }
have debootstrap || want+=(debootstrap)
have systemd-nspawn || want+=(systemd-container)
have rpm || want+=(rpm)
have musl-gcc || want+=(musl-tools)
have mke2fs || want+=(e2fsprogs)
have script || want+=(util-linux)
have ip || want+=(iproute2)
have file || want+=(file)
if [ "${1:-}" = --edge ]; then
    have aarch64-linux-gnu-gcc || want+=(gcc-aarch64-linux-gnu)
    have arm-linux-gnueabihf-gcc || want+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
    have qemu-aarch64-static || want+=(qemu-user-static)
    # armv7 musl: Debian's musl for armhf (its gcc wrapper), std built from rust-src.
    if ! have arm-linux-musleabihf-gcc; then
        dpkg --add-architecture armhf
        want+=(musl-dev:armhf)
    fi
    rustup component add rust-src
fi
if [ ${#want[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}"
fi
