#!/usr/bin/env bash
# Builds the console page into dist/: index.html, the wasm-bindgen glue
# (qmp_wasm_console.js) and the optimised module (qmp_wasm_console_bg.wasm), and prints
# the module's size at each step. Needs the wasm32-unknown-unknown target, wasm-bindgen-cli
# of exactly the wasm-bindgen version in Cargo.lock, and (optionally) binaryen's wasm-opt:
# scripts/setup.sh installs them. Honours CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
dist=$here/dist
name=qmp_wasm_console

locked=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$here/Cargo.lock")
if ! command -v wasm-bindgen >/dev/null 2>&1; then
    echo "build.sh: wasm-bindgen not found (needs wasm-bindgen-cli $locked): run scripts/setup.sh" >&2
    exit 1
fi
installed=$(wasm-bindgen --version | awk '{print $2}')
if [ "$installed" != "$locked" ]; then
    echo "build.sh: wasm-bindgen-cli is $installed, Cargo.lock has wasm-bindgen $locked: run scripts/setup.sh" >&2
    exit 1
fi

cargo build --release --locked --target wasm32-unknown-unknown --manifest-path "$here/Cargo.toml"
raw=$target_dir/wasm32-unknown-unknown/release/$name.wasm

rm -rf "$dist"
mkdir -p "$dist"
work=$target_dir/wasm-console-build
rm -rf "$work"
mkdir -p "$work/plain" "$work/opt"

# The size without wasm-opt, for the README's table.
wasm-bindgen --target web --no-typescript --out-dir "$work/plain" "$raw"
bindgen_bytes=$(stat -c %s "$work/plain/${name}_bg.wasm")

if command -v wasm-opt >/dev/null 2>&1; then
    # wasm-opt runs BEFORE wasm-bindgen: binaryen 108 (Debian 12) rewrites a module with
    # two tables wrongly (it exports the funcref table as `__wbindgen_externrefs`, and the
    # page dies in `WebAssembly.Table.grow`), and cargo's output has only one. rustc's
    # wasm32 output uses these post-MVP features, which binaryen 108 must be told about.
    wasm-opt -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
        "$raw" -o "$work/opt/$name.wasm"
    wasm-bindgen --target web --no-typescript --out-dir "$dist" "$work/opt/$name.wasm"
    optimiser="wasm-opt -Oz ($(wasm-opt --version)) before wasm-bindgen"
else
    cp "$work/plain/$name.js" "$work/plain/${name}_bg.wasm" "$dist/"
    optimiser="none (binaryen's wasm-opt not installed)"
fi
module=$dist/${name}_bg.wasm
cp "$here/index.html" "$dist/index.html"

final_bytes=$(stat -c %s "$module")
gzip_bytes=$(gzip -9 -c "$module" | wc -c)
echo "WASM_SIZE cargo=$(stat -c %s "$raw") wasm-bindgen=$bindgen_bytes optimised=$final_bytes gzip=$gzip_bytes"
echo "optimiser: $optimiser"
echo "dist: $dist"
