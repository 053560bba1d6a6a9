#!/usr/bin/env bash
# Install Debian's chromium (headless use only: the HTML feature report's browser test,
# crates/bae-analysis/tests/report_browser.rs, and screenshots of the report for the README).
# Idempotent: does nothing but print the version when chromium is already there.
# Root (CI) installs directly; otherwise sudo is used when present.
set -euo pipefail

find_chromium() {
    if [ -x /usr/bin/chromium ]; then
        echo /usr/bin/chromium
    else
        command -v chromium || command -v chromium-browser || true
    fi
}

CHROMIUM="$(find_chromium)"
if [ -z "$CHROMIUM" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "chromium_setup: chromium is not installed and this user is not root and has no sudo" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    install_chromium() { "${SUDO[@]}" apt-get install -y --no-install-recommends chromium; }
    if ! install_chromium; then
        echo "chromium_setup: install failed; running apt-get update and retrying" >&2
        "${SUDO[@]}" apt-get update
        install_chromium
    fi
    CHROMIUM="$(find_chromium)"
    if [ -z "$CHROMIUM" ]; then
        echo "chromium_setup: apt-get reported success but no chromium binary was found" >&2
        exit 1
    fi
fi

echo "chromium: $CHROMIUM"
"$CHROMIUM" --version 2>/dev/null # (Debian's wrapper script prints a harmless shell warning)
