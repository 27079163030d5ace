#!/usr/bin/env bash
# Installs everything the build and the tests need, and does nothing that is already done:
#   - QEMU 10.0.2 (qemu-system-x86_64, qemu-storage-daemon, qemu-ga; qemu-system-arm if
#     available) from Debian bookworm-backports. Plain bookworm has QEMU 7.2, and
#     installing qemu-system-x86 from it would REPLACE the machine's 10.0.2 qemu-utils,
#     so everything is installed with `-t bookworm-backports`.
#   - QEMU 7.2 (Debian bookworm's own build) for the second conformance run, downloaded and
#     unpacked into a private directory, never installed (see below).
#   - Rust targets for the no_std builds, clippy/rustfmt, and miri + rust-src on nightly.
# Safe to run repeatedly; run as root (or with sudo available).
set -euo pipefail

QEMU_VERSION="10.0.2"
NO_STD_TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf wasm32-unknown-unknown)
# The example firmware (examples/firmware, run by tests/tests/firmware.rs) targets the
# Cortex-M3 of qemu-system-arm's mps2-an385.
FIRMWARE_TARGETS=(thumbv7m-none-eabi)

log() { printf '[setup] %s\n' "$*"; }

# qemu-ga lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

# True if "$1 --version" reports exactly QEMU_VERSION (as a whole word).
has_qemu_version() {
    command -v "$1" >/dev/null 2>&1 || return 1
    "$1" --version 2>/dev/null | head -n 1 | grep -Eq "(^|[^0-9.])${QEMU_VERSION//./\\.}([^0-9.]|$)"
}

qemu_ok() {
    has_qemu_version qemu-system-x86_64 && has_qemu_version qemu-storage-daemon \
        && has_qemu_version qemu-ga && has_qemu_version qemu-system-arm
}

# The mirror URI of the existing bookworm entry (deb822 .sources or one-line format).
bookworm_mirror() {
    local uri
    uri=$(
        {
            for f in /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] || continue
                awk '/^URIs:/ {u=$2} /^Suites:/ && /(^| )bookworm( |$)/ {print u} /^$/ {u=""}' "$f"
            done
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | awk '$1=="deb" && $0 ~ / bookworm( |$)/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
        } | grep -v security | head -n 1
    )
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

install_qemu() {
    local codename=""
    if [ -r /etc/os-release ]; then
        codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    fi
    local apt_target=()
    if [ "$codename" = "bookworm" ]; then
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            local mirror
            mirror=$(bookworm_mirror)
            log "adding bookworm-backports from $mirror"
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$mirror" | "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
        fi
        apt_target=(-t bookworm-backports)
    else
        log "not Debian bookworm (VERSION_CODENAME=${codename:-unknown}): installing QEMU from the default suite"
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${apt_target[@]}" \
        qemu-system-x86 qemu-system-arm qemu-guest-agent qemu-utils
}

if qemu_ok; then
    log "QEMU ${QEMU_VERSION} already installed"
else
    install_qemu
fi
for program in qemu-system-x86_64 qemu-storage-daemon qemu-ga; do
    if ! has_qemu_version "$program"; then
        log "error: $program is not version ${QEMU_VERSION}: $("$program" --version 2>&1 | head -n 1 || true)"
        exit 1
    fi
    log "$program: $("$program" --version | head -n 1)"
done

# --- QEMU 7.2 beside 10.0.2, for the second conformance run of scripts/test.sh ---------------
# Debian bookworm's own QEMU 7.2, fetched with `apt-get download` and unpacked with `dpkg -x`
# into a private directory (NEVER installed: it would replace 10.0.2's qemu-utils). Its
# binaries are relocatable: qemu-system-x86_64 finds its firmware (seabios, ipxe, the
# data files and keymaps) and its modules (TCG itself is a module in Debian's 7.2) under
# ../share and ../lib beside itself, so they run from the private tree without wrappers;
# QMP_QEMU_SYSTEM, QMP_QSD and QMP_QGA point the tests at them (scripts/test.sh).
# Cached: nothing is fetched when the tree already holds working 7.2 binaries.
QEMU72_DIR="${QMP_QEMU72_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmp/qemu-7.2}"
# The QEMU packages must be a 1:7.2+dfsg-7+deb12uN build; seabios and ipxe-qemu are
# bookworm's (their own version numbers).
QEMU72_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data qemu-guest-agent)
QEMU72_FIRMWARE_PACKAGES=(seabios ipxe-qemu)
QEMU72_VERSION_PATTERN='^1:7\.2\+dfsg-7\+deb12u[0-9]'

qemu72_binaries() {
    printf '%s\n' "$QEMU72_DIR/root/usr/bin/qemu-system-x86_64" \
        "$QEMU72_DIR/root/usr/bin/qemu-storage-daemon" "$QEMU72_DIR/root/usr/sbin/qemu-ga"
}

# True if every private 7.2 binary runs and reports version 7.2.x.
qemu72_ok() {
    local binary
    [ -f "$QEMU72_DIR/packages" ] || return 1
    while read -r binary; do
        [ -x "$binary" ] || return 1
        "$binary" --version 2>/dev/null | head -n 1 | grep -Eq '(^|[^0-9.])7\.2\.[0-9]+([^0-9.]|$)' || return 1
    done < <(qemu72_binaries)
}

# The highest version of package $1 that apt knows and that matches pattern $2.
qemu72_pick_version() {
    local best="" version
    while read -r version; do
        if grep -Eq "$2" <<<"$version" \
            && { [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best"; }; then
            best=$version
        fi
    done < <(apt-cache madison "$1" | awk -F' [|] ' '$3 ~ / Packages$/ {gsub(/ /, "", $2); print $2}')
    printf '%s\n' "$best"
}

# Resolves the versions and downloads the .debs into $1; fails if apt cannot.
qemu72_download() {
    local dir=$1 package version specs=()
    for package in "${QEMU72_PACKAGES[@]}"; do
        version=$(qemu72_pick_version "$package" "$QEMU72_VERSION_PATTERN")
        [ -n "$version" ] || return 1
        specs+=("$package=$version")
    done
    for package in "${QEMU72_FIRMWARE_PACKAGES[@]}"; do
        specs+=("$package/bookworm")
    done
    log "downloading ${specs[*]}"
    # apt-get download writes to the current directory as _apt when _apt can reach it.
    chmod 0755 "$(dirname "$dir")"
    chmod 0777 "$dir"
    (cd "$dir" && apt-get download -q "${specs[@]}")
}

install_qemu72() {
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/qmp-qemu72.XXXXXX")
    mkdir -p "$work/debs"
    if ! qemu72_download "$work/debs"; then
        log "QEMU 7.2 packages not found or not downloadable with the current package lists: running apt-get update"
        "${SUDO[@]}" apt-get update -q
        rm -f "$work"/debs/*.deb
        if ! qemu72_download "$work/debs"; then
            rm -rf "$work"
            log "error: could not download Debian bookworm's QEMU 7.2 (${QEMU72_PACKAGES[*]} at 1:7.2+dfsg-7+deb12u*, ${QEMU72_FIRMWARE_PACKAGES[*]} from bookworm)."
            log "       The second conformance run needs apt sources with Debian bookworm (main); or unpack those packages with"
            log "       dpkg -x into QMP_QEMU72_DIR/root and list them in QMP_QEMU72_DIR/packages."
            exit 1
        fi
    fi
    local deb
    mkdir -p "$work/root"
    for deb in "$work"/debs/*.deb; do
        dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$work/packages"
        dpkg -x "$deb" "$work/root"
    done
    mkdir -p "$QEMU72_DIR"
    rm -rf "$QEMU72_DIR/root" "$QEMU72_DIR/packages"
    mv "$work/root" "$QEMU72_DIR/root"
    mv "$work/packages" "$QEMU72_DIR/packages"
    rm -rf "$work"
}

if qemu72_ok; then
    log "QEMU 7.2 already unpacked in $QEMU72_DIR"
else
    install_qemu72
    if ! qemu72_ok; then
        log "error: the QEMU 7.2 binaries unpacked in $QEMU72_DIR/root do not run as 7.2:"
        while read -r binary; do
            log "  $binary: $("$binary" --version 2>&1 | head -n 1 || true)"
            ldd "$binary" 2>&1 | grep 'not found' | sed 's/^/[setup]     /' || true
        done < <(qemu72_binaries)
        exit 1
    fi
fi
while read -r binary; do
    log "7.2: $binary: $("$binary" --version | head -n 1)"
done < <(qemu72_binaries)

# --- Rust -------------------------------------------------------------------------------
installed_targets=$(rustup target list --installed)
for target in "${NO_STD_TARGETS[@]}" "${FIRMWARE_TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
        log "adding rust target $target"
        rustup target add "$target"
    fi
done

installed_components=$(rustup component list --installed)
for component in clippy rustfmt; do
    if ! grep -q "^${component}-" <<<"$installed_components"; then
        log "adding rust component $component"
        rustup component add "$component"
    fi
done

if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain (for miri)"
    rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
nightly_components=$(rustup +nightly component list --installed)
for component in miri rust-src; do
    if ! grep -q "^${component}" <<<"$nightly_components"; then
        log "adding nightly component $component"
        rustup +nightly component add "$component"
    fi
done

# --- cargo-fuzz (the FUZZ STEPS of scripts/test.sh run fuzz/ with it, on nightly) ---------
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# --- WASM console (examples/wasm-console, tested by tests/tests/wasm_console.rs) -----------
# Headless Chromium driven through chromedriver, websockify (QEMU 10.0.2's own WebSocket
# chardev never delivers the client's frames to a QMP monitor, so the test bridges the page's
# WebSocket to a TCP monitor with it), binaryen's wasm-opt for the size build, and
# wasm-bindgen-cli of exactly the wasm-bindgen version in examples/wasm-console/Cargo.lock
# (the CLI refuses modules from any other version).
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' \
    "$(dirname "$0")/../examples/wasm-console/Cargo.lock")
if [ -z "$WASM_BINDGEN_VERSION" ]; then
    log "error: no wasm-bindgen version in examples/wasm-console/Cargo.lock"
    exit 1
fi
wasm_apt_packages=()
command -v chromium >/dev/null 2>&1 || wasm_apt_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || wasm_apt_packages+=(chromium-driver)
command -v websockify >/dev/null 2>&1 || wasm_apt_packages+=(websockify)
command -v wasm-opt >/dev/null 2>&1 || wasm_apt_packages+=(binaryen)
if [ "${#wasm_apt_packages[@]}" -gt 0 ]; then
    log "installing ${wasm_apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${wasm_apt_packages[@]}"
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    log "installing wasm-bindgen-cli ${WASM_BINDGEN_VERSION}"
    cargo install wasm-bindgen-cli --version "=${WASM_BINDGEN_VERSION}" --locked
fi
log "wasm-bindgen: $(wasm-bindgen --version)"

log "done"
