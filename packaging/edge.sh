#!/usr/bin/env bash
# Static tagrun-agent binaries for edge devices, in target/edge/:
#
#   packaging/edge.sh                  # build x86_64, aarch64 and armv7, run each --version
#   packaging/edge.sh --test           # also run the agent's unit tests under qemu-user
#   packaging/edge.sh [--test] armv7   # only the architectures named (x86_64 aarch64 armv7)
#
# All three are musl binaries, statically linked; the script checks that and runs each
# one's --version (aarch64 and armv7 under qemu-user). armv7's standard library is built
# from source (see packaging/env.sh), so its first build takes several minutes more.
#
# Prerequisites, once per machine (Debian 12, as root):
#
#   rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
#   rustup component add rust-src
#   dpkg --add-architecture armhf && apt-get update
#   apt-get install musl-tools gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf \
#       musl-dev:armhf qemu-user-static file
#
# TAGRUN_ARMV7_TARGET=armv7-unknown-linux-gnueabihf builds the former armv7 agent (static
# glibc) instead; it needs `rustup target add armv7-unknown-linux-gnueabihf` and
# libc6-dev-armhf-cross.
set -euo pipefail
source "$(dirname "$0")/env.sh"

run_tests=no
wanted=()
for argument in "$@"; do
    case "$argument" in
        --test) run_tests=yes ;;
        x86_64 | aarch64 | armv7) wanted+=("$argument") ;;
        *) echo "usage: $0 [--test] [x86_64|aarch64|armv7 ...]" >&2; exit 2 ;;
    esac
done
targets=()
for target in "${edge_targets[@]}"; do
    if [ ${#wanted[@]} -eq 0 ] || [[ " ${wanted[*]} " == *" ${target%%-*} "* ]]; then
        targets+=("$target")
    fi
done
need musl-gcc aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc qemu-aarch64-static \
    qemu-arm-static file
if [[ " ${targets[*]} " == *" armv7-unknown-linux-musleabihf "* ]]; then
    need arm-linux-musleabihf-gcc
fi

out="$repo_dir/target/edge"
mkdir -p "$out"
cd "$repo_dir"
for target in "${targets[@]}"; do
    arch="${target%%-*}"
    set_cargo_cmd "$target"
    started=$SECONDS
    "${cargo_cmd[@]}" build --release --locked --target "$target" -p tagrun-agent
    binary="$out/tagrun-agent-$arch"
    cp "$CARGO_TARGET_DIR/$target/release/tagrun-agent" "$binary"

    description="$(file -b "$binary")"
    case "$description" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) echo "$binary is not static: $description" >&2; exit 1 ;;
    esac
    emulator="$(qemu_for "$target")"
    version="$($emulator "$binary" --version)"
    printf '%-8s %9d bytes  %s  (%s, built in %d s)\n' "$arch" "$(stat -c %s "$binary")" \
        "$version" "$target" $((SECONDS - started))
done

# Under qemu-user, the unit tests that stop a step right after starting it are only
# meaningful on musl. qemu-user runs a vfork (clone with CLONE_VFORK) as a plain fork, so
# the parent does not wait for the child's exec. glibc's posix_spawn relies on that wait;
# musl's waits on a pipe that the exec closes. So on the glibc armv7 build
# (TAGRUN_ARMV7_TARGET) under qemu-arm-static, Command::spawn can return before the child
# has made its own process group. The two tests below run on a paused clock that reaches
# the step's time limit at once; they then signal a group that does not exist yet and
# wait forever for `sleep 600`, so they are skipped there. Natively both C libraries
# return from the spawn only after the exec.
glibc_qemu_skips=(
    --skip runner::tests::a_step_past_its_timeout_is_timed_out
    --skip runner::process::tests::stops_a_script_at_its_time_limit
)
if [ "$run_tests" = yes ]; then
    for target in "${targets[@]}"; do
        emulator="$(qemu_for "$target")"
        runner_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUNNER"
        skip=()
        if [ -n "$emulator" ]; then
            export "$runner_var=$emulator"
            [[ "$target" != *-gnu* ]] || skip=("${glibc_qemu_skips[@]}")
        fi
        set_cargo_cmd "$target"
        echo "==> agent unit tests on $target${emulator:+ under $emulator}"
        "${cargo_cmd[@]}" test --locked --target "$target" -p tagrun-agent --lib -- "${skip[@]}"
    done
fi
