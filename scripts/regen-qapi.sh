#!/usr/bin/env bash
# Regenerates qmp-core's QAPI vocabulary (core/src/qapi/qmp/*.rs, core/src/qapi/qga.rs)
# and the conformance test's dispatch table (tests/tests/qapi_dispatch/mod.rs) from QEMU's
# own schema sources.
#
#   scripts/regen-qapi.sh                  # fetch QEMU's sources (Debian), generate, format
#   scripts/regen-qapi.sh /path/to/qemu    # use an unpacked QEMU source tree instead
#
# The schema is QEMU 10.0.2's, from Debian's source package qemu 1:10.0.2+ds-2+deb13u1~bpo12+1
# (bookworm-backports; its upstream tarball qemu_10.0.2+ds.orig.tar.xz, 39 MB). Fetching
# needs a deb-src entry for bookworm-backports; this script adds one (as a separate
# sources file) when it is missing. The sources are unpacked into a scratch directory
# and never committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
UPSTREAM=10.0.2

if [ $# -ge 1 ]; then
    QEMU=$1
else
    SCRATCH=${QAPI_SCRATCH:-$(mktemp -d /tmp/qapi-src.XXXXXX)}
    if ! ls "$SCRATCH"/qemu_${UPSTREAM}+ds.orig.tar.xz >/dev/null 2>&1; then
        SRC=/etc/apt/sources.list.d/bookworm-backports-src.sources
        if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ || ! grep -rqs 'bookworm-backports' "$SRC"; then
            cat > "$SRC" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        fi
        apt-get update -o Dir::Etc::sourcelist="$SRC" -o Dir::Etc::sourceparts=- \
            -o APT::Get::List-Cleanup=0 >/dev/null
        # The Debian packaging tarball may answer 404; the upstream tarball is all we need.
        (cd "$SCRATCH" && apt-get source --download-only "qemu=$VERSION" || true)
    fi
    tar -C "$SCRATCH" -xJf "$SCRATCH"/qemu_${UPSTREAM}+ds.orig.tar.xz \
        --wildcards "qemu-$UPSTREAM/VERSION" "qemu-$UPSTREAM/qapi/*.json" \
        "qemu-$UPSTREAM/storage-daemon/qapi/qapi-schema.json" "qemu-$UPSTREAM/qga/qapi-schema.json"
    QEMU=$SCRATCH/qemu-$UPSTREAM
fi

rm -f "$REPO"/core/src/qapi/qmp/*.rs
cargo run -q -p qapi-gen -- "$QEMU" "$REPO/core"
cargo fmt -p qmp-core -p qmp-tests
echo "regen-qapi: done; review with git diff --stat"
