#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`), which the report tests use to
# render the HTML report and inspect a screenshot of it. The harness itself never needs
# a browser: reports are static files.
#
# Idempotent: when chromium is already there it prints one line and exits at once.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "browser.sh: chromium is present"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 \
  || { echo "browser.sh: chromium missing and no apt-get here; install Chromium to run the report tests" >&2; exit 1; }
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
    || { echo "browser.sh: chromium missing; run: sudo apt-get install chromium" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "browser.sh: installing chromium (Debian package, about 100 MB; once)"
# fonts-dejavu-core: a page whose text falls back to no font at all renders as boxes
install() { DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null 2> >(grep -v "^debconf" >&2); }
install || { "${SUDO[@]}" apt-get update -q >/dev/null && install; } \
  || { echo "browser.sh: apt-get could not install chromium" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "browser.sh: chromium still missing after apt-get" >&2; exit 1; }
echo "browser.sh: chromium installed"
