# Sourced by the packaging scripts: target directory, cross C compilers and linkers.
#
# Static binaries: x86_64 and aarch64 use Rust's musl targets. armv7 uses the glibc
# target linked statically (crt-static), because the armv7 musl standard library could
# not be fetched where these scripts were written; with it installed
# (`rustup target add armv7-unknown-linux-musleabihf`), TAGRUN_ARMV7_TARGET selects it.
#
# Debian packages that provide the compilers: musl-tools, gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross.

packaging_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$packaging_dir/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_dir/target/packaging}"

: "${TAGRUN_ARMV7_TARGET:=armv7-unknown-linux-gnueabihf}"
edge_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl "$TAGRUN_ARMV7_TARGET")

export CC_x86_64_unknown_linux_musl=musl-gcc
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export CC_armv7_unknown_linux_musleabihf=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS="-C target-feature=+crt-static"

# The qemu-user emulator that runs a target's binaries on this machine.
qemu_for() {
    case "$1" in
        x86_64-*) echo "" ;;
        aarch64-*) echo qemu-aarch64-static ;;
        armv7-*) echo qemu-arm-static ;;
        *) echo "no emulator known for $1" >&2; return 1 ;;
    esac
}

# Fails with a clear message when a tool is missing.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "missing tool: $tool (see packaging/env.sh for the Debian packages)" >&2
            return 1
        }
    done
}
