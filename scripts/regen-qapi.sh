#!/usr/bin/env bash
# Regenerates qmp-core's QAPI vocabulary (core/src/qapi/qmp/*.rs, core/src/qapi/qga.rs)
# and the conformance test's dispatch table (tests/tests/qapi_dispatch/mod.rs) from QEMU's
# own schema sources.
#
#   scripts/regen-qapi.sh                          # fetch QEMU's sources (Debian), generate, format
#   scripts/regen-qapi.sh /path/to/qemu /path/to/qemu-7.2   # use unpacked QEMU source trees instead
#
# The schema is QEMU 10.0.2's, from Debian's source package qemu 1:10.0.2+ds-2+deb13u1~bpo12+1
# (bookworm-backports; its upstream tarball qemu_10.0.2+ds.orig.tar.xz, 39 MB). Its history
# comes from QEMU 7.2's schema, from Debian bookworm's qemu 1:7.2+dfsg-7+deb12u18 (upstream
# tarball qemu_7.2+dfsg.orig.tar.xz, 24 MB): reply and event members 7.2 lacks become
# optional (see qapi-gen/src/history.rs). Debian's 7.2.x stable patches (v7.2.1.diff ...
# v7.2.22) change only the schema's doc comments, so 7.2.0's schema is the one every
# bookworm 7.2 serves. Fetching needs deb-src entries for bookworm-backports and bookworm;
# this script adds them (as separate sources files) when they are missing. The sources are
# unpacked into a scratch directory and never committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
UPSTREAM=10.0.2
OLD_VERSION=1:7.2+dfsg-7+deb12u18
OLD_UPSTREAM=7.2

# fetch SOURCES_FILE SUITES PACKAGE_VERSION ORIG_TARBALL: downloads Debian's source
# package into $SCRATCH unless its upstream tarball is there already.
fetch() {
    local src=$1 suites=$2 version=$3 orig=$4
    if ls "$SCRATCH/$orig" >/dev/null 2>&1; then
        return
    fi
    if ! grep -qs '^Types: deb-src' "$src"; then
        cat > "$src" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    fi
    apt-get update -o Dir::Etc::sourcelist="$src" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 >/dev/null
    # The Debian packaging tarball may answer 404; the upstream tarball is all we need.
    (cd "$SCRATCH" && apt-get source --download-only "qemu=$version" || true)
    ls "$SCRATCH/$orig" >/dev/null
}

# unpack TARBALL DIR: extracts the schema files (and VERSION) of QEMU source tree DIR.
unpack() {
    tar -C "$SCRATCH" -xJf "$SCRATCH/$1" --wildcards "$2/VERSION" "$2/qapi/*.json" \
        "$2/storage-daemon/qapi/qapi-schema.json" "$2/qga/qapi-schema.json"
}

if [ $# -ge 2 ]; then
    QEMU=$1
    QEMU_OLD=$2
else
    SCRATCH=${QAPI_SCRATCH:-$(mktemp -d /tmp/qapi-src.XXXXXX)}
    fetch /etc/apt/sources.list.d/bookworm-backports-src.sources bookworm-backports \
        "$VERSION" "qemu_${UPSTREAM}+ds.orig.tar.xz"
    fetch /etc/apt/sources.list.d/bookworm-src.sources bookworm \
        "$OLD_VERSION" "qemu_${OLD_UPSTREAM}+dfsg.orig.tar.xz"
    unpack "qemu_${UPSTREAM}+ds.orig.tar.xz" "qemu-$UPSTREAM"
    # 7.2's tarball names its tree qemu-7.2.0.
    unpack "qemu_${OLD_UPSTREAM}+dfsg.orig.tar.xz" "qemu-$OLD_UPSTREAM.0"
    QEMU=$SCRATCH/qemu-$UPSTREAM
    QEMU_OLD=$SCRATCH/qemu-$OLD_UPSTREAM.0
fi

rm -f "$REPO"/core/src/qapi/qmp/*.rs
cargo run -q -p qapi-gen -- "$QEMU" "$REPO/core" "$QEMU_OLD"
cargo fmt -p qmp-core -p qmp-tests
echo "regen-qapi: done; review with git diff --stat"
