#!/usr/bin/env bash
# The project's test command (README): sets the machine up, then runs every check CI runs.
# The whole test suite is the `cargo test --workspace` step (against QEMU 10.0.2), and its
# real-QEMU conformance tests run a second time against QEMU 7.2; the other steps are
# format, lints, the no_std builds of qmp-core, its dependency allow-list, docs and miri.
# Fails fast: the first failing step stops the run with its name printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NO_STD_TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf wasm32-unknown-unknown)
# Crates qmp-core may pull into a no_std build (proc-macro crates run on the host and are
# not listed: `cargo tree -e no-proc-macro` leaves them out).
CORE_DEPENDENCY_ALLOW_LIST=(
    qmp-core heapless hash32 byteorder stable_deref_trait
    serde serde_core serde-json-core ryu
    embedded-io embedded-io-async
    defmt defmt-macros defmt-parser bitflags
)

RUN_STARTED=$SECONDS
STEP_NAME=""
STEP_STARTED=0
TIMINGS=()

finish_step() {
    if [ -n "$STEP_NAME" ]; then
        TIMINGS+=("$(printf '%5ds  %s' $((SECONDS - STEP_STARTED)) "$STEP_NAME")")
    fi
}
step() {
    finish_step
    STEP_NAME="$*"
    STEP_STARTED=$SECONDS
    printf '\n==== [%4ds] %s ====\n' $((SECONDS - RUN_STARTED)) "$STEP_NAME"
}
MIRI_PIDS=""
on_exit() {
    local status=$?
    for pid in $MIRI_PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        printf '\n==== FAILED: %s (exit %d) ====\n' "${STEP_NAME:-setup}" "$status" >&2
    fi
}
trap on_exit EXIT

step "machine set-up (scripts/setup.sh)"
bash scripts/setup.sh

step "format: cargo fmt --all -- --check"
cargo fmt --all -- --check

step "lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# A build of one package alone sees only its own features (the workspace build above
# unifies them): qmp-std without tokio, and the CLI as `cargo run -p qmp-cli` builds it.
step "feature sets: cargo check -p qmp-std (no features), -p qmp-cli alone"
cargo check -p qmp-std
cargo check -p qmp-cli

step "tests: cargo test --workspace"
QMP_EXPECT_QEMU=10.0.2 cargo test --workspace

# The real-QEMU conformance tests once more, against Debian bookworm's QEMU 7.2, which
# scripts/setup.sh unpacked into a private directory (never installed; same default
# directory as there). Same assertions: where 7.2 genuinely answers differently the tests
# expect its answer (tests/src/versions.rs). With QMP_EXPECT_QEMU, raw_qemu's
# the_intended_qemu_is_under_test fails if any of the three programs is not 7.2. The
# other tests of qmp-tests do not select QEMU through these variables (firmware,
# wasm_console) or start none (fault_injection). `--workspace` keeps the feature set of
# the step above, so nothing is rebuilt.
QEMU72_ROOT="${QMP_QEMU72_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmp/qemu-7.2}/root"
step "tests against QEMU 7.2: cargo test --workspace --test 'conformance_*' --test raw_qemu"
QMP_QEMU_SYSTEM="$QEMU72_ROOT/usr/bin/qemu-system-x86_64" \
    QMP_QSD="$QEMU72_ROOT/usr/bin/qemu-storage-daemon" \
    QMP_QGA="$QEMU72_ROOT/usr/sbin/qemu-ga" \
    QMP_EXPECT_QEMU=7.2 \
    cargo test --workspace --test 'conformance_*' --test raw_qemu

# The browser console's own workspace (excluded from the root one): formatted, lint-free
# on wasm32, its host unit tests pass (the browser test above runs its page end to end).
# perf/ is not built here: it only runs by hand (perf/run.sh), and CI has no time to spare.
step "wasm console: fmt, clippy (wasm32), unit tests"
cargo fmt --manifest-path examples/wasm-console/Cargo.toml -- --check
cargo clippy --manifest-path examples/wasm-console/Cargo.toml --target wasm32-unknown-unknown -- -D warnings
cargo test --manifest-path examples/wasm-console/Cargo.toml

for target in "${NO_STD_TARGETS[@]}"; do
    step "no_std build: qmp-core for $target"
    cargo build -p qmp-core --target "$target"
    step "no_std build: qmp-core for $target with defmt"
    cargo build -p qmp-core --target "$target" --features defmt
done
step "qmp-core without its default guest-agent feature (the firmware probe's build): clippy, sync refused"
cargo clippy -p qmp-core --no-default-features --target thumbv7em-none-eabihf -- -D warnings
# ... and its sync refusal, the one behaviour that build changes on purpose.
cargo test -p qmp-core --no-default-features --test guest_agent -- --exact \
    sync_on_a_guest_agent_session_needs_the_guest_agent_feature

step "dependency allow-list: qmp-core on thumbv7em-none-eabihf"
for features in "" "--features=defmt"; do
    # shellcheck disable=SC2086 # $features is empty or one word
    crates=$(cargo tree -p qmp-core -e normal,no-proc-macro --target thumbv7em-none-eabihf \
        $features --prefix none --format '{p}' | awk '{print $1}' | sort -u)
    unknown=()
    for crate in $crates; do
        crate=${crate//_/-}
        allowed=false
        for ok in "${CORE_DEPENDENCY_ALLOW_LIST[@]}"; do
            if [ "$crate" = "${ok//_/-}" ]; then allowed=true; fi
        done
        "$allowed" || unknown+=("$crate")
    done
    echo "qmp-core ${features:-(default features)}:" $crates
    if [ "${#unknown[@]}" -ne 0 ]; then
        echo "error: qmp-core depends on crates outside the no_std allow-list: ${unknown[*]}" >&2
        echo "(every crate here must be no_std without alloc; extend the list in scripts/test.sh only after checking)" >&2
        exit 1
    fi
done

step "docs: cargo doc --workspace --no-deps (warnings are errors)"
RUSTDOCFLAGS="-Dwarnings" cargo doc --workspace --no-deps

# Miri runs qmp-core's whole test suite (unit tests, every tests/*.rs binary, doctests).
# It interprets every step, thousands of times slower than native code, so under Miri the
# tests do less of the same (cfg!(miri)): fragmentation checks take one run in random
# fragments instead of every split, long vectors are cut or sampled, proptest runs a few
# cases, the fuzz seed corpus is sampled. Every code path still runs; the native step
# above runs everything in full. Isolation is off because tests read the fuzz corpus and
# the vectors in ../shared (Miri cannot start processes: the live-QEMU checks skip).
# Miri uses one core, so the suite runs as two groups of about equal length, in the
# background beside the fuzz steps, and is waited for at the end; output is printed then.
# Under Miri (one CI run, 2 cores shared with the fuzz steps): lib 1,143 s, properties
# 691 s, transcripts 574 s, fragmentation 218 s, the rest under a minute each (bad_replies
# 26 s alone).
MIRI_GROUP_A=(--lib --test vocabulary --test bad_replies)
MIRI_GROUP_B=(--test edge_cases --test fragmentation --test guest_agent --test timeouts --test transcripts --test properties --test qapi_tolerance)
for test_file in core/tests/*.rs; do
    name=$(basename "$test_file" .rs)
    if [[ " ${MIRI_GROUP_A[*]} ${MIRI_GROUP_B[*]} " != *" $name "* ]]; then
        echo "error: core/tests/$name.rs is in neither miri group of scripts/test.sh" >&2
        exit 1
    fi
done
export MIRIFLAGS="-Zmiri-disable-isolation ${MIRIFLAGS:-}"
step "miri: build the qmp-core suite (cargo +nightly miri test -p qmp-core --no-run)"
cargo +nightly miri test -p qmp-core --no-run
step "miri: the whole qmp-core suite in two groups, in the background beside the fuzz steps"
MIRI_LOG_A=$(mktemp)
MIRI_LOG_B=$(mktemp)
{ cargo +nightly miri test -p qmp-core "${MIRI_GROUP_A[@]}" && cargo +nightly miri test -p qmp-core --doc; } \
    >"$MIRI_LOG_A" 2>&1 &
MIRI_PID_A=$!
cargo +nightly miri test -p qmp-core "${MIRI_GROUP_B[@]}" >"$MIRI_LOG_B" 2>&1 &
MIRI_PID_B=$!
MIRI_PIDS="$MIRI_PID_A $MIRI_PID_B"

# ---- FUZZ STEPS: later sessions add the short fuzz runs of every fuzz/ target here ----
# Every fuzz/ target (cargo fuzz list) runs FUZZ_SECONDS (default 60) from its seed
# corpus with fuzz/dictionary.txt; a crash, hang or OOM fails the step and its input is
# copied to fuzz/regressions/<target>/ (commit it: core/tests/properties.rs replays it).
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
step "fuzz: build every target (cargo +nightly fuzz build)"
(cd fuzz && cargo +nightly fuzz build --sanitizer none --debug-assertions)
mapfile -t FUZZ_TARGETS < <(cd fuzz && cargo +nightly fuzz list)
if [ "${#FUZZ_TARGETS[@]}" -eq 0 ]; then
    echo "error: cargo fuzz list found no fuzz target" >&2
    exit 1
fi
for target in "${FUZZ_TARGETS[@]}"; do
    step "fuzz: $target for ${FUZZ_SECONDS}s (fuzz/run.sh)"
    bash fuzz/run.sh "$target" "$FUZZ_SECONDS"
done
# ---- END FUZZ STEPS ----

step "miri: waiting for both groups of cargo +nightly miri test -p qmp-core"
for group in A B; do
    if [ "$group" = A ]; then pid=$MIRI_PID_A log=$MIRI_LOG_A; else pid=$MIRI_PID_B log=$MIRI_LOG_B; fi
    miri_status=0
    wait "$pid" || miri_status=$?
    if [ "$miri_status" -ne 0 ]; then
        cat "$log"
        echo "error: miri group $group failed (exit $miri_status)" >&2
        exit "$miri_status"
    fi
    echo "miri group $group:"
    grep -E '^(test result|     Running|   Doc-tests)' "$log"
done
MIRI_PIDS=""

finish_step
STEP_NAME=""
printf '\n==== all steps passed in %ds ====\n' $((SECONDS - RUN_STARTED))
printf '%s\n' "${TIMINGS[@]}"
