#!/usr/bin/env bash
# Install what the kit needs on a fresh Debian 12 machine, idempotently:
#   Debian packages (as root; otherwise print the exact apt-get line and stop),
#   a .venv built from Debian's /usr/bin/python3 (usable by hub users and the sandbox uid),
#   the pinned Python packages, and configurable-http-proxy from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
APT_PACKAGES=(python3-venv python3-dev bubblewrap util-linux procps chromium fonts-dejavu-core nodejs)
# Debian ships npm as its own package; a NodeSource nodejs brings its own npm (and conflicts
# with Debian's), so npm is added only when no npm is on PATH.
command -v npm >/dev/null || APT_PACKAGES+=(npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
        echo "hint: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 2
    fi
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v npm >/dev/null || { echo "bootstrap: npm not found; hint: apt-get install -y npm" >&2; exit 2; }

stamp="$VENV/.installed-$(cat pyproject.toml package.json 2>/dev/null | sha256sum | cut -c1-16)"
if [[ ! -f $stamp ]]; then
    if [[ ! -x $VENV/bin/python ]] || [[ $(readlink -f "$VENV/bin/python") != /usr/bin/python3* ]]; then
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[cpu,hub,dev]'
    if [[ -f package.json ]]; then
        npm ci --silent --no-audit --no-fund 2>/dev/null || npm install --silent --no-audit --no-fund
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
# Other Unix users (hub users, the sandbox uid) must be able to read the venv and the kit.
chmod -R a+rX "$VENV" node_modules 2>/dev/null || true
