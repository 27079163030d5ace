#!/usr/bin/env bash
# Builds the example firmware (examples/firmware, thumbv7m-none-eabi), runs both of its
# variants (blocking: qmp-core's BlockingDriver; async: its AsyncDriver) under
# `qemu-system-arm -M mps2-an385` with the UART connected to the QMP monitor of a real
# qemu-storage-daemon, checks what each reported over semihosting and its exit status,
# and prints its flash and RAM use.
#
#   scripts/firmware-test.sh              # both variants
#   scripts/firmware-test.sh blocking     # one variant (blocking or async)
#
# Environment: FIRMWARE_TIMEOUT (seconds for each emulator run, default 120).
# Output, per variant: `VARIANT <name>`, the firmware's own lines (GREETING, VERSION,
# EVENT, ERROR, ..., PASS), `CHECK ok ...` lines, `SIZE` lines. The last line is
# `firmware-test: PASS`, or the script exits non-zero with `firmware-test: FAIL <why>`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

TARGET=thumbv7m-none-eabi
FIRMWARE_DIR=$REPO/examples/firmware
TIMEOUT=${FIRMWARE_TIMEOUT:-120}
case "${1:-all}" in
    all) VARIANTS=(blocking async) ;;
    blocking | async) VARIANTS=("$1") ;;
    *) echo "usage: $0 [blocking|async]" >&2; exit 2 ;;
esac

fail() {
    printf 'firmware-test: FAIL %s\n' "$*" >&2
    exit 1
}

for tool in qemu-system-arm qemu-storage-daemon cargo; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (run scripts/setup.sh)"
done
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "firmware-test: adding rust target $TARGET"
    rustup target add "$TARGET"
fi

# --- build ------------------------------------------------------------------------------
echo "firmware-test: building examples/firmware ($TARGET, release)"
(cd "$FIRMWARE_DIR" && cargo build --release --quiet) || fail "firmware build failed"

# `size -A` (GNU binutils reads any ELF's section table) or llvm-size -A.
section_sizes() {
    if command -v size >/dev/null 2>&1 && size -A "$1" >/dev/null 2>&1; then
        size -A "$1"
    elif command -v llvm-size >/dev/null 2>&1; then
        llvm-size -A "$1"
    else
        fail "neither binutils size nor llvm-size is installed"
    fi
}

WORK=""
QSD_PID=""
cleanup() {
    if [ -n "$QSD_PID" ]; then
        kill "$QSD_PID" 2>/dev/null || true
        wait "$QSD_PID" 2>/dev/null || true
    fi
    QSD_PID=""
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    WORK=""
}
trap cleanup EXIT

# Runs one variant against a fresh daemon and checks its report.
run_variant() {
    local variant=$1 elf=$2
    echo "VARIANT $variant"
    # --- run --------------------------------------------------------------------------------
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/qmp-firmware.XXXXXX")
    SOCKET=$WORK/qsd.sock
    # The daemon runs in $WORK: the firmware creates its image under a relative path.
    (cd "$WORK" && exec qemu-storage-daemon \
        --chardev "socket,path=$SOCKET,server=on,wait=off,id=m0" \
        --monitor chardev=m0 >"$WORK/qsd.log" 2>&1) &
    QSD_PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCKET" ] && break
        kill -0 "$QSD_PID" 2>/dev/null || fail "qemu-storage-daemon exited: $(cat "$WORK/qsd.log")"
        sleep 0.05
    done
    [ -S "$SOCKET" ] || fail "qemu-storage-daemon did not create $SOCKET"

    echo "firmware-test: running qemu-system-arm -M mps2-an385 (timeout ${TIMEOUT}s)"
    set +e
    timeout --signal=KILL "$TIMEOUT" qemu-system-arm -M mps2-an385 -display none -monitor none \
        -semihosting-config enable=on,target=native \
        -kernel "$elf" \
        -serial "unix:$SOCKET" \
        </dev/null >"$WORK/firmware.log" 2>"$WORK/qemu.err"
    STATUS=$?
    set -e
    cat "$WORK/firmware.log"
    if [ -s "$WORK/qemu.err" ]; then
        sed 's/^/qemu-system-arm: /' "$WORK/qemu.err" >&2
    fi

    # Checks.
    if [ "$STATUS" -eq 137 ]; then
        fail "the emulator was killed after ${TIMEOUT}s"
    fi
    [ "$STATUS" -eq 0 ] || fail "the firmware exited with status $STATUS"

    # Each pattern must match a whole line of the firmware's output (extended regex).
    EXPECTED=(
        '^GREETING 10\.0\.2 oob=true$'
        '^READY$'
        '^VERSION 10\.0\.2 package=.*$'
        '^RETURN blockdev-add null0$'
        "^ERROR blockdev-add GenericError Duplicate nodes with node-name='null0'$"
        '^ERROR no-such-command CommandNotFound The command no-such-command has not been found$'
        '^EVENT JOB_STATUS_CHANGE job0 created$'
        '^EVENT JOB_STATUS_CHANGE job0 running$'
        '^RETURN blockdev-create job0$'
        '^EVENT JOB_STATUS_CHANGE job0 concluded$'
        '^JOB job0 type=create status=concluded progress=1/1$'
        '^EVENT JOB_STATUS_CHANGE job0 null$'
        '^RETURN job-dismiss job0$'
        '^RETURN blockdev-del null0$'
        '^STATS events=[0-9]+ late=0 unmatched=0 unattributed=0 malformed=0 oversize=0$'
        '^PASS$'
    )
    for pattern in "${EXPECTED[@]}"; do
        grep -Eq -- "$pattern" "$WORK/firmware.log" || fail "no line matches /$pattern/"
        echo "CHECK ok /$pattern/"
    done
    # The order of the milestones (events may interleave with replies, so only these).
    ORDER=$(grep -Eo '^(READY|VERSION|RETURN blockdev-create job0|EVENT JOB_STATUS_CHANGE job0 concluded|RETURN job-dismiss job0|PASS)' \
        "$WORK/firmware.log" | cut -d' ' -f1-3 | tr '\n' '|')
    [ "$ORDER" = "READY|VERSION|RETURN blockdev-create job0|EVENT JOB_STATUS_CHANGE job0|RETURN job-dismiss job0|PASS|" ] \
        || fail "milestones out of order: $ORDER"
    echo "CHECK ok milestones in order"
    # The job really ran on the daemon: it created the image, 1 MiB.
    IMAGE=$WORK/qmp-firmware.img
    [ -f "$IMAGE" ] || fail "the daemon did not create $IMAGE"
    [ "$(stat -c %s "$IMAGE")" -eq 1048576 ] || fail "$IMAGE is $(stat -c %s "$IMAGE") bytes, not 1 MiB"
    echo "CHECK ok image created by the daemon (1048576 bytes)"

    # Flash and RAM use.
    SIZES=$(section_sizes "$elf")
    section() { awk -v name="$1" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }' <<<"$SIZES"; }
    VECTORS=$(section .vector_table)
    TEXT=$(section .text)
    RODATA=$(section .rodata)
    DATA=$(section .data)
    BSS=$(section .bss)
    UNINIT=$(section .uninit)
    echo "SIZE variant=$variant target=$TARGET profile=release opt-level=s lto=fat"
    echo "SIZE .vector_table=$VECTORS .text=$TEXT .rodata=$RODATA .data=$DATA .bss=$BSS .uninit=$UNINIT"
    echo "SIZE flash=$((VECTORS + TEXT + RODATA + DATA)) (vector_table+text+rodata+data)"
    echo "SIZE static-ram=$((DATA + BSS + UNINIT)) (data+bss+uninit; the stack comes on top)"
    cleanup
}

for variant in "${VARIANTS[@]}"; do
    case "$variant" in
        blocking) run_variant blocking "${CARGO_TARGET_DIR:-$FIRMWARE_DIR/target}/$TARGET/release/qmp-firmware" ;;
        async) run_variant async "${CARGO_TARGET_DIR:-$FIRMWARE_DIR/target}/$TARGET/release/qmp-firmware-async" ;;
    esac
done
echo "firmware-test: PASS"
