#!/usr/bin/env bash
# Builds the .deb and .rpm of tagrun-agent and tagrun-server into target/packages/.
#
#   packaging/build.sh                       # x86_64, static (musl) binaries
#   packaging/build.sh --target aarch64-unknown-linux-musl
#
# The binaries are static, so one package serves every distribution release of an
# architecture. cargo-deb and cargo-generate-rpm are installed from crates.io if missing.
set -euo pipefail
source "$(dirname "$0")/env.sh"

target=x86_64-unknown-linux-musl
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        *) echo "usage: $0 [--target TRIPLE]" >&2; exit 2 ;;
    esac
done

for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        cargo install --locked "$tool"
    fi
done

out="$repo_dir/target/packages"
mkdir -p "$out"
cd "$repo_dir"
cargo build --release --locked --target "$target" -p tagrun-agent -p tagrun-server

for package in tagrun-agent tagrun-server; do
    cargo deb --no-build --no-strip --locked -p "$package" --target "$target" --output "$out"
    cargo generate-rpm -p "${package#tagrun-}" --target "$target" --output "$out"
done

echo "packages in $out:"
ls -l "$out"
