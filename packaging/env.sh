# Sourced by the packaging scripts: target directory, cross C compilers and linkers.
#
# Static binaries, all on musl: x86_64 and aarch64 use the standard libraries that
# `rustup target add` installs. For armv7-unknown-linux-musleabihf rustup has no
# standard library to install where these scripts were written, so it is built from
# source (`-Zbuild-std`, needs `rustup component add rust-src`) against Debian's musl for
# armhf, whatever rustup offers, so every build of it is made the same way. Building std
# is a nightly cargo feature: RUSTC_BOOTSTRAP=1 enables it on the stable toolchain for
# that one cargo command only. TAGRUN_ARMV7_TARGET=armv7-unknown-linux-gnueabihf selects
# the former armv7 build instead: glibc linked statically (crt-static).
#
# Debian packages that provide the compilers and C libraries: musl-tools,
# gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross, and musl-dev for
# armhf (`dpkg --add-architecture armhf && apt-get update && apt-get install
# musl-dev:armhf`: its /usr/bin/arm-linux-musleabihf-gcc is arm-linux-gnueabihf-gcc
# pointed at musl's headers, C runtime and libc.a).

packaging_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$packaging_dir/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_dir/target/packaging}"

: "${TAGRUN_ARMV7_TARGET:=armv7-unknown-linux-musleabihf}"
edge_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl "$TAGRUN_ARMV7_TARGET")

export CC_x86_64_unknown_linux_musl=musl-gcc
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export CC_armv7_unknown_linux_musleabihf=arm-linux-musleabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=arm-linux-musleabihf-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS="-C target-feature=+crt-static"

# Where the armv7 musl link finds its unwinder (see std_from_source).
armv7_musl_unwind_dir="$CARGO_TARGET_DIR/armv7-musl-unwind"
# The C runtime comes from musl-dev:armhf through the linker, not from a Rust sysroot
# (build-std has none); `-lunwind` is satisfied by gcc's unwinder (below).
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-C link-self-contained=no \
-L native=$armv7_musl_unwind_dir"

# Whether a target's standard library is built from source rather than installed.
std_from_source() {
    [ "$1" = armv7-unknown-linux-musleabihf ]
}

# Sets `cargo_cmd` to the cargo command for a target: plain `cargo`, or, for a standard
# library built from source, `cargo -Zbuild-std` on the stable toolchain. Prepares that
# build's unwinder: Rust's std on musl links a static libunwind, which only rustup's
# prebuilt standard library ships, so gcc's own ARM EHABI unwinder (libgcc_eh.a) stands
# in for it.
set_cargo_cmd() {
    cargo_cmd=(cargo)
    std_from_source "$1" || return 0
    local sysroot libgcc_eh
    sysroot="$(rustc --print sysroot)"
    [ -d "$sysroot/lib/rustlib/src/rust/library" ] || {
        echo "building std for $1 needs the Rust sources: rustup component add rust-src" >&2
        return 1
    }
    libgcc_eh="$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)"
    [ -f "$libgcc_eh" ] || { echo "libgcc_eh.a not found for arm-linux-gnueabihf" >&2; return 1; }
    mkdir -p "$armv7_musl_unwind_dir"
    ln -sf "$libgcc_eh" "$armv7_musl_unwind_dir/libunwind.a"
    cargo_cmd=(env RUSTC_BOOTSTRAP=1 cargo -Zbuild-std=std,panic_abort)
}

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
