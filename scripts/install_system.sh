#!/usr/bin/env bash
# Install the Debian packages peerstep needs on the host. Idempotent: installs only what is missing and runs
# `apt-get update` only when something must be installed.
#   bubblewrap  - the default Python sandbox (peerstep.tools.sandbox, backend "bwrap")
#   util-linux  - provides setpriv, with which the sandbox drops root to an unprivileged uid
#   chromium, chromium-driver - headless browser for the page tests (peerstep view, eval reports); Debian's, so
#               nothing downloads its own browser at run time
#   fonts-dejavu-core - a font for the browser's screenshots
set -euo pipefail

PACKAGES=(bubblewrap util-linux chromium chromium-driver fonts-dejavu-core)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_system: all present (${PACKAGES[*]})"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system: apt-get not found; install these packages with your package manager: ${missing[*]}" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_system: not root and sudo is missing; as root, run:" >&2
    echo "    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "install_system: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_system: done"
