#!/usr/bin/env bash
# Runs one fuzz target for a bounded time from the seed corpus, with the dictionary.
#   fuzz/run.sh TARGET SECONDS [more libFuzzer options...]
# New corpus entries go to fuzz/corpus-work/TARGET (ignored by git); the committed seeds
# in fuzz/corpus/TARGET are only read. A crash, a hang (an input running past -timeout)
# or running out of memory fails the run, and the offending inputs are copied to
# fuzz/regressions/TARGET/, which core/tests/properties.rs replays in `cargo test`.
#
# Built without a sanitizer (qmp-core forbids unsafe code, so AddressSanitizer has nothing
# to find and would cost most of the speed) and with debug assertions and overflow checks,
# so an arithmetic overflow in qmp-core is a crash too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
target=${1:?usage: run.sh TARGET SECONDS [libFuzzer options]}
seconds=${2:?usage: run.sh TARGET SECONDS [libFuzzer options]}
shift 2
mkdir -p "corpus-work/$target" "artifacts/$target"
status=0
cargo +nightly fuzz run --sanitizer none --debug-assertions "$target" \
    "corpus-work/$target" "corpus/$target" -- \
    -dict=dictionary.txt -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 "$@" || status=$?
if [ "$status" -ne 0 ]; then
    mkdir -p "regressions/$target"
    found=0
    for input in "artifacts/$target"/*; do
        [ -f "$input" ] || continue
        cp "$input" "regressions/$target/"
        found=1
    done
    echo "fuzz: target $target failed (exit $status)." >&2
    if [ "$found" -eq 1 ]; then
        echo "fuzz: its inputs are in fuzz/regressions/$target/; commit them (core/tests/properties.rs replays them)." >&2
    fi
fi
exit "$status"
