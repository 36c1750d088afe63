#!/usr/bin/env bash
# errand-embedded's check, as CI runs it (`.ci/run` installs the tools first):
#
#   1. the tools are there (it installs nothing; a missing one fails the run, saying which);
#   2. format and clippy, for both task counts;
#   3. the firmware runs in QEMU, for 256 and for 32 tasks, and every check inside it passes
#      (its exit status is QEMU's);
#   4. its footprint, measured with `cargo size`, for 256 and for 32 tasks;
#   5. RAM for 256 tasks must not exceed the limit in `ram-limit-256` (the README's figure
#      plus 10 %).
#
# With `--peers` it also builds and runs the hello-worlds in `peer-embassy/` and prints
# their footprint (the README's comparison); CI does not need them.
#
# Footprint: sections of the ELF, from `cargo size --release -- -A` (llvm-size, SysV format):
#   flash = .vector_table + .text + .rodata + .data (the initial values of .data are stored
#           in flash and copied at reset; 0 here)
#   RAM   = .data + .bss + .uninit (static RAM; the stack comes on top, see the README)
set -euo pipefail
cd "$(dirname "$0")"

peers=false
for arg in "$@"; do
    case "$arg" in
        --peers) peers=true ;;
        *) echo "usage: $0 [--peers]" >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "embedded/check.sh: $*" >&2; exit 1; }

step "tools"
command -v cargo >/dev/null || fail "cargo not found"
command -v rustup >/dev/null || fail "rustup not found"
command -v qemu-system-arm >/dev/null \
    || fail "qemu-system-arm not found (Debian: apt-get install qemu-system-arm)"
qemu-system-arm -machine help | grep -q '^mps2-an386 ' \
    || fail "this qemu-system-arm has no mps2-an386 machine"
rustup target list --installed | grep -qx thumbv7em-none-eabihf \
    || fail "target missing (rustup target add thumbv7em-none-eabihf)"
cargo size --version >/dev/null 2>&1 \
    || fail "cargo size not found (cargo install --locked cargo-binutils)"
# cargo-binutils runs llvm-size from the llvm-tools component.
rust-size --version >/dev/null 2>&1 \
    || fail "cargo-binutils cannot find llvm-size (rustup component add llvm-tools)"
qemu-system-arm --version | head -n1
cargo size --version

step "format and clippy (warnings are errors)"
cargo fmt --check
cargo clippy --release --locked -- -D warnings
cargo clippy --release --locked --features tasks-32 -- -D warnings

# Runs the firmware in QEMU (the runner in .cargo/config.toml) and fails if it does.
run_firmware() {
    local label=$1
    shift
    cargo build --release --locked "$@"
    # The firmware checks its own deadlines against SysTick; the timeout only catches a hang.
    if ! timeout 120 cargo run --release --locked "$@"; then
        fail "the firmware failed in QEMU ($label)"
    fi
}

# Prints "<flash> <ram>" in bytes for the release build with the given cargo arguments.
footprint() {
    cargo size --release --locked "$@" -- -A | awk '
        $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        END { if (flash == 0) exit 1; print flash, ram }'
}

step "the firmware in QEMU, 256 tasks"
run_firmware "256 tasks"
step "the firmware in QEMU, 32 tasks"
run_firmware "32 tasks" --features tasks-32

step "footprint (cargo size --release -- -A)"
fp256=$(footprint) || fail "cargo size failed (256 tasks)"
fp32=$(footprint --features tasks-32) || fail "cargo size failed (32 tasks)"
read -r flash256 ram256 <<< "$fp256"
read -r flash32 ram32 <<< "$fp32"
printf '%-28s %10s %10s\n' "build" "flash (B)" "RAM (B)"
printf '%-28s %10d %10d\n' "errand-embedded, 256 tasks" "$flash256" "$ram256"
printf '%-28s %10d %10d\n' "errand-embedded, 32 tasks" "$flash32" "$ram32"

if $peers; then
    step "peers: hello-worlds built the same way (peer-embassy/)"
    (
        cd peer-embassy
        for bin in embassy bare; do
            cargo build --release --locked --bin "$bin"
            timeout 60 cargo run --release --locked --bin "$bin" \
                || fail "peer $bin failed in QEMU"
        done
    )
    for bin in embassy bare; do
        fp=$(cd peer-embassy && footprint --bin "$bin") || fail "cargo size failed ($bin)"
        read -r flash ram <<< "$fp"
        printf '%-28s %10d %10d\n' "peer-embassy --bin $bin" "$flash" "$ram"
    done
fi

step "RAM budget for 256 tasks"
limit=$(tr -d '[:space:]' < ram-limit-256)
[[ "$limit" =~ ^[0-9]+$ ]] || fail "ram-limit-256 must hold a number of bytes, found '$limit'"
echo "RAM for 256 tasks: $ram256 bytes; limit (README figure + 10 %): $limit bytes"
if (( ram256 > limit )); then
    fail "RAM for 256 tasks grew to $ram256 bytes, past the limit of $limit: \
shrink it, or update the README's figures and ram-limit-256 together"
fi
echo "embedded/check.sh: all good"
