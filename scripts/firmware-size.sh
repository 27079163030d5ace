#!/usr/bin/env bash
# Flash cost of qmp-core in firmware: builds examples/size-probe, the smallest
# firmware-shaped client (blocking driver over a UART, negotiation, one typed command
# decoded into a struct, JOB_STATUS_CHANGE handling), for thumbv7em-none-eabihf with
# opt-level "z", fat LTO, codegen-units=1 and panic=abort, then prints its section sizes
# and what takes the space. Goal: under 16 KiB of .text (code).
#
#   scripts/firmware-size.sh             # build, sizes, breakdown, run under QEMU
#   scripts/firmware-size.sh --no-run    # skip the QEMU run (no qemu-system-arm needed)
#   scripts/firmware-size.sh --top 40    # longer symbol list (default 25)
#
# "text" is what `size` (Berkeley format) calls text: every read-only allocated section,
# i.e. .vector_table + .text + .rodata, all of it flash. `.text` alone is code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

TARGET=thumbv7em-none-eabihf
PROBE_DIR=$REPO/examples/size-probe
ELF=${CARGO_TARGET_DIR:-$PROBE_DIR/target}/$TARGET/release/qmp-size-probe
GOAL=16384
RUN=true
TOP=25
while [ $# -gt 0 ]; do
    case "$1" in
        --no-run) RUN=false ;;
        --top) TOP=$2; shift ;;
        *) echo "usage: $0 [--no-run] [--top N]" >&2; exit 2 ;;
    esac
    shift
done

fail() {
    printf 'firmware-size: FAIL %s\n' "$*" >&2
    exit 1
}

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "firmware-size: adding rust target $TARGET"
    rustup target add "$TARGET"
fi
echo "firmware-size: building the baseline (same firmware without qmp-core)"
(cd "$PROBE_DIR" && cargo build --release --quiet --features baseline) || fail "baseline build failed"
BASELINE_ELF=$(mktemp "${TMPDIR:-/tmp}/qmp-size-baseline.XXXXXX")
cp "$ELF" "$BASELINE_ELF"
echo "firmware-size: building $ELF"
(cd "$PROBE_DIR" && cargo build --release --quiet) || fail "size probe build failed"

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
section() { awk -v name="$1" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }' <<<"$SIZES"; }
SIZES=$(section_sizes "$BASELINE_ELF")
rm -f "$BASELINE_ELF"
BASELINE_TEXT=$(($(section .vector_table) + $(section .text) + $(section .rodata)))
SIZES=$(section_sizes "$ELF")
VECTORS=$(section .vector_table)
TEXT=$(section .text)
RODATA=$(section .rodata)
DATA=$(section .data)
BSS=$(section .bss)
UNINIT=$(section .uninit)
FLASH_TEXT=$((VECTORS + TEXT + RODATA))

echo
echo "SIZE target=$TARGET opt-level=z lto=fat codegen-units=1 panic=abort"
echo "SIZE .vector_table=$VECTORS .text=$TEXT .rodata=$RODATA .data=$DATA .bss=$BSS .uninit=$UNINIT"
echo "SIZE text=$FLASH_TEXT data=$DATA bss=$((BSS + UNINIT)) (Berkeley: text = vector_table+text+rodata)"
echo "SIZE baseline-text=$BASELINE_TEXT qmp-core-adds=$((FLASH_TEXT - BASELINE_TEXT)) (baseline: vectors, start-up, UART, clock, exit; no qmp-core)"
echo "SIZE .bss holds the probe's buffers: rx 512 + tx 128 bytes; the client's state is on the stack"

# --- what takes the space ----------------------------------------------------------------
# Symbols in flash (code and read-only data), demangled, largest first. With LTO most of
# the core is inlined into a few large functions, so the per-crate split below counts a
# function under the crate of its own path, whatever it inlined.
if command -v nm >/dev/null 2>&1; then
    NM=(nm)
elif command -v llvm-nm >/dev/null 2>&1; then
    NM=(llvm-nm)
else
    NM=()
fi
if [ "${#NM[@]}" -gt 0 ]; then
    # "size type name" lines, size in decimal, largest first.
    SYMBOLS=$("${NM[@]}" -C -S --size-sort "$ELF" | awk '$3 ~ /^[tTrR]$/' \
        | while read -r _ size type name; do printf '%d %s %s\n' "$((16#$size))" "$type" "$name"; done \
        | sort -rn)
    echo
    echo "largest symbols in flash (bytes, type, name):"
    head -n "$TOP" <<<"$SYMBOLS" | awk '{ printf "  %6d", $1; $1 = ""; print }'
    echo
    echo "flash by crate of the symbol's path (bytes):"
    awk '{
        size = $1
        name = $0
        sub(/^[0-9]+ [tTrR] /, "", name)
        # "<T as Trait>::f" and "<T>::f" count for the crate of T.
        sub(/^</, "", name); sub(/^&(mut )?/, "", name)
        crate = name
        sub(/::.*/, "", crate); sub(/[<( >].*/, "", crate)
        if (crate ~ /^([A-Z]|str|char|bool|[iu](8|16|32|64|128|size)|f32|f64|\[.*)$/) {
            crate = "core"                      # generic or primitive type: core impls
        } else if (name ~ /^__rustc::/) {
            crate = "panic handler"
        } else if (name !~ /::/) {
            if (name ~ /^(__aeabi_|__udiv|__div|__mod|__umod|mem(cpy|move|set|cmp)$)/) crate = "compiler_builtins"
            else if (name ~ /^OUTLINED_FUNCTION_/) crate = "(machine outliner fragments)"
            else if (name ~ /^\.L/) crate = "(anonymous constants)"
            else crate = "cortex-m-rt (vector table, startup, handlers)"
        }
        total[crate] += size
    } END { for (c in total) printf "  %6d %s\n", total[c], c }' <<<"$SYMBOLS" | sort -rn
fi

# The goal (issue 2) is stated for code: the .text section. The stricter Berkeley text
# (vectors and read-only data too) is reported beside it.
echo
for measure in ".text:$TEXT" "text:$FLASH_TEXT"; do
    name=${measure%%:*}
    bytes=${measure#*:}
    if [ "$bytes" -lt "$GOAL" ]; then
        echo "SIZE goal met: $name $bytes < $GOAL bytes"
    else
        echo "SIZE goal MISSED: $name $bytes >= $GOAL bytes"
    fi
done

# --- the probe really works ----------------------------------------------------------------
if "$RUN"; then
    for tool in qemu-system-arm qemu-storage-daemon; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (run scripts/setup.sh, or pass --no-run)"
    done
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/qmp-size-probe.XXXXXX")
    QSD_PID=""
    cleanup() {
        if [ -n "$QSD_PID" ]; then
            kill "$QSD_PID" 2>/dev/null || true
            wait "$QSD_PID" 2>/dev/null || true
        fi
        rm -rf "$WORK"
    }
    trap cleanup EXIT
    SOCKET=$WORK/qsd.sock
    qemu-storage-daemon --chardev "socket,path=$SOCKET,server=on,wait=off,id=m0" \
        --monitor chardev=m0 >"$WORK/qsd.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCKET" ] && break
        sleep 0.05
    done
    [ -S "$SOCKET" ] || fail "qemu-storage-daemon did not create $SOCKET: $(cat "$WORK/qsd.log")"
    set +e
    timeout --signal=KILL 60 qemu-system-arm -M mps2-an386 -display none -monitor none \
        -semihosting-config enable=on,target=native -kernel "$ELF" -serial "unix:$SOCKET" \
        </dev/null
    STATUS=$?
    set -e
    [ "$STATUS" -eq 0 ] || fail "the probe exited with status $STATUS under qemu-system-arm -M mps2-an386"
    echo "RUN ok: the probe negotiated and read QEMU 10.x from qemu-storage-daemon (mps2-an386)"
fi
