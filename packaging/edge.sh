#!/usr/bin/env bash
# Static tagrun-agent binaries for edge devices, in target/edge/:
#
#   packaging/edge.sh          # build x86_64, aarch64 and armv7, run each --version
#   packaging/edge.sh --test   # also run the agent's unit tests under qemu-user
#
# Needs the Rust targets (`rustup target add x86_64-unknown-linux-musl
# aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf`) and, from Debian:
# musl-tools gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
# qemu-user-static.
set -euo pipefail
source "$(dirname "$0")/env.sh"

run_tests=no
case "${1:-}" in
    --test) run_tests=yes ;;
    "") ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
need musl-gcc aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc qemu-aarch64-static \
    qemu-arm-static file

out="$repo_dir/target/edge"
mkdir -p "$out"
cd "$repo_dir"
for target in "${edge_targets[@]}"; do
    arch="${target%%-*}"
    cargo build --release --locked --target "$target" -p tagrun-agent
    binary="$out/tagrun-agent-$arch"
    cp "$CARGO_TARGET_DIR/$target/release/tagrun-agent" "$binary"

    description="$(file -b "$binary")"
    case "$description" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) echo "$binary is not static: $description" >&2; exit 1 ;;
    esac
    emulator="$(qemu_for "$target")"
    version="$($emulator "$binary" --version)"
    printf '%-14s %9d bytes  %s\n' "$arch" "$(stat -c %s "$binary")" "$version"
done

if [ "$run_tests" = yes ]; then
    for target in "${edge_targets[@]}"; do
        emulator="$(qemu_for "$target")"
        runner_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUNNER"
        if [ -n "$emulator" ]; then
            export "$runner_var=$emulator"
        fi
        echo "==> agent unit tests on $target${emulator:+ under $emulator}"
        cargo test --locked --target "$target" -p tagrun-agent --lib
    done
fi
