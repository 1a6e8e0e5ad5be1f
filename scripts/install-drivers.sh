#!/usr/bin/env bash
# Installs what Fresco needs to run without a GPU on Debian 12 (bookworm), as root or with sudo:
#   libvulkan1           the Vulkan loader Dawn (the npm package `webgpu`) opens
#   mesa-vulkan-drivers  Mesa's lavapipe CPU driver, from bookworm-backports: only Mesa >= 23 is
#                        fast enough and has shader-f16 (this adds bookworm-backports to apt's
#                        sources, and says so)
#   chromium             SwiftShader, the fallback CPU driver, and the browser the demo tests use
# Nothing is installed that is already there. Exit status: 1 when the loader or chromium could not
# be installed; a missing lavapipe is only a warning (Fresco then runs on SwiftShader).
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive

# Not root: sudo, asking for a password only where someone can type it.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if [ -t 0 ]; then SUDO=(sudo); else SUDO=(sudo -n); fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
mesa_ok() {
  installed mesa-vulkan-drivers &&
    dpkg --compare-versions "$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)" ge 23
}
apt_q() { "${SUDO[@]}" apt-get -y -qq -o=Dpkg::Use-Pty=0 "$@" >"$log" 2>&1; }
apt_failed() { echo "$1 (last lines of apt's log):"; tail -n 15 "$log"; }

. /etc/os-release
missing=()
for p in chromium libvulkan1; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ] && mesa_ok; then
  echo "drivers: chromium, libvulkan1 and mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) are installed"
  exit 0
fi

status=0
if ! mesa_ok && [ "${VERSION_CODENAME:-}" = bookworm ] &&
  ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "drivers: adding bookworm-backports to apt's sources (/etc/apt/sources.list.d/backports.list) for Mesa >= 23"
  echo "deb http://deb.debian.org/debian bookworm-backports main" |
    "${SUDO[@]}" tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
echo "drivers: apt-get update"
apt_q update || apt_failed "warning: apt-get update reported errors; trying to install anyway"
if [ ${#missing[@]} -gt 0 ]; then
  echo "drivers: installing ${missing[*]}"
  if ! apt_q install --no-install-recommends "${missing[@]}"; then
    apt_failed "error: could not install ${missing[*]}"
    status=1
  fi
fi
if ! mesa_ok; then
  suite=()
  [ "${VERSION_CODENAME:-}" = bookworm ] && suite=(-t bookworm-backports)
  echo "drivers: installing mesa-vulkan-drivers ${suite[*]}"
  if apt_q install --no-install-recommends "${suite[@]}" mesa-vulkan-drivers && mesa_ok; then
    echo "drivers: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  else
    apt_failed "warning: no Mesa >= 23 lavapipe; Fresco will use SwiftShader"
  fi
fi
exit "$status"
