#!/usr/bin/env bash
# Builds the .deb and .rpm of tagrun-agent and tagrun-server into target/packages/.
#
#   packaging/build.sh                       # x86_64, static (musl) release binaries
#   packaging/build.sh --target aarch64-unknown-linux-musl
#   packaging/build.sh --target host --profile dev   # quick packages for tests
#
# The release binaries are static, so one package serves every distribution release of
# an architecture. `--target host --profile dev` packages the debug binaries of the
# host's default target (stripped, faster compression): that is what tests/run installs
# in its container test, to avoid a release build. cargo-deb and cargo-generate-rpm are
# installed from crates.io if missing.
set -euo pipefail
source "$(dirname "$0")/env.sh"

target=x86_64-unknown-linux-musl
profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="${2:?--target needs a triple or host}"; shift 2 ;;
        --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
        *) echo "usage: $0 [--target TRIPLE|host] [--profile PROFILE]" >&2; exit 2 ;;
    esac
done
target_args=(--target "$target")
[ "$target" != host ] || target_args=()
deb_args=(--no-strip)
[ "$profile" = release ] || deb_args=(--strip --fast)

for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        cargo install --locked "$tool"
    fi
done

out="$repo_dir/target/packages"
mkdir -p "$out"
cd "$repo_dir"
for package in tagrun-agent tagrun-server; do
    # One package per build, so each reuses what `cargo build -p` of it built before.
    cargo build --locked --profile "$profile" "${target_args[@]}" -p "$package"
    cargo deb --no-build --locked "${deb_args[@]}" --profile "$profile" "${target_args[@]}" \
        -p "$package" --output "$out"
    cargo generate-rpm -p "${package#tagrun-}" --profile "$profile" "${target_args[@]}" \
        --output "$out"
done

echo "packages in $out:"
ls -l "$out"
