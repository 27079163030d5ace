#!/usr/bin/env bash
# Regenerates the seed corpus (fuzz/corpus/<target>/) from the captured protocol vectors.
# Usage: fuzz/make-corpus.sh [VECTORS_DIR]   (default: ../shared/protocol/vectors, then
# core/tests/data/vectors). Seeds are written next to whatever libFuzzer has added.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
vectors=${1:-}
if [ -z "$vectors" ]; then
    for candidate in ../../shared/protocol/vectors ../core/tests/data/vectors; do
        if [ -d "$candidate" ]; then vectors=$candidate; break; fi
    done
fi
[ -d "$vectors" ] || { echo "no vectors directory found" >&2; exit 1; }
cargo +nightly run --quiet --release --example make_corpus -- "$vectors" corpus
