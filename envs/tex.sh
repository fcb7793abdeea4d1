#!/usr/bin/env bash
# Installs the TeX tools the writeup stage needs, so that a fresh machine can turn the
# agent's LaTeX into paper.pdf. Without them a run would spend its whole model budget
# and fail at the very last step; the harness preflight checks the same tools.
#
# Idempotent: when every tool and LaTeX package is already there it prints one line and
# exits at once (a few milliseconds), so setup.sh can call it every time.
#
# The package set is the smallest that compiles latex_template/ (graphicx, amsmath,
# hyperref and natbib come with texlive-latex-base; booktabs with
# texlive-latex-recommended; the default Computer Modern / Latin Modern fonts need no
# fonts package). poppler-utils gives pdftotext/pdftoppm, which the claims check and
# the tests read PDFs with. --no-install-recommends keeps out the documentation and
# the extra font and language packs that would otherwise multiply the size.
set -euo pipefail

PACKAGES=(texlive-latex-base texlive-latex-recommended latexmk chktex poppler-utils)
TOOLS=(latexmk pdflatex bibtex chktex pdftotext pdftoppm)
# A pdflatex without these files would pass a tool check yet fail on our template.
STYLES=(graphicx.sty amsmath.sty hyperref.sty natbib.sty booktabs.sty color.sty plainnat.bst)

die() { echo "tex.sh: $*" >&2; exit 1; }

missing_tools() {
  local t
  for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || printf '%s ' "$t"; done
}

missing_styles() {
  command -v kpsewhich >/dev/null 2>&1 || { printf '%s ' "${STYLES[@]}"; return; }
  local s found
  # one kpsewhich call for all files: it prints the path of each one it finds
  found=$(kpsewhich "${STYLES[@]}" 2>/dev/null || true)
  for s in "${STYLES[@]}"; do
    grep -q "/$s\$" <<<"$found" || printf '%s ' "$s"
  done
}

missing() {  # one line: what is missing, space-separated
  local m
  m="$(missing_tools)$(missing_styles)"
  echo "${m% }"
}

have_all() { [ -z "$(missing)" ]; }

if have_all; then
  echo "tex.sh: latexmk, pdflatex, bibtex, chktex, pdftotext and the template's LaTeX packages are present"
  exit 0
fi

want="${PACKAGES[*]}"
command -v apt-get >/dev/null 2>&1 \
  || die "missing $(missing); no apt-get here: install TeX Live with latexmk and chktex, and poppler (Debian names: $want)"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  # Plain sudo may ask for a password: only when someone is at the terminal to type it.
  if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    SUDO=(sudo)
  else
    die "missing $(missing); not root and no sudo: ask an admin to run: apt-get install --no-install-recommends $want"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

apt_install() {
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1
}

echo "tex.sh: installing $want (23 Debian packages, 51 MB download, 151 MB on disk; about 30 s)"
start=$SECONDS
if ! apt_install; then
  # An image with empty or stale package lists is the usual cause; refreshing them is
  # slow and needs the network, so it is done only when the install says so.
  if grep -qE "Unable to locate package|has no installation candidate|Failed to fetch|404 +Not Found" "$log"; then
    echo "tex.sh: package lists missing or stale, running apt-get update"
    "${SUDO[@]}" apt-get update -q >"$log" 2>&1 || { tail -n 5 "$log" >&2; die "apt-get update failed"; }
    apt_install || { tail -n 10 "$log" >&2; die "apt-get install failed (see above)"; }
  else
    tail -n 10 "$log" >&2
    die "apt-get install failed (see above)"
  fi
fi

have_all || die "installed $want but still missing: $(missing)"
echo "tex.sh: TeX tools installed in $((SECONDS - start)) s"
