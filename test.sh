#!/usr/bin/env bash
# Runs the whole test suite. Builds the environments first if they are missing or stale
# (setup.sh is idempotent: about a second when nothing changed), so this works on a
# fresh clone too. Extra arguments go to the harness suite's pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
mkdir -p .test-results
rm -f .test-results/*.xml
status=0
# the harness (aider, git, scripted model) and its fault suite under its own environment; one
# torch thread per process, as a batch's CPU slots get: the workers' SAE runs would otherwise
# each spread over every core and slow each other down (the two SAE sessions: 350 s -> 235 s)
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" .venvs/harness/bin/python -m pytest tests/harness tests/faults -q -p no:cacheprovider -n "${TEST_WORKERS:-auto}" \
  --junitxml=.test-results/harness.xml "$@" || status=$?
# the SAE template's metrics and smoke run under the experiment environment (after the
# harness suite, whose end-to-end SAE test leaves cache artefacts in .test-results/sae-cache)
.venvs/sae/bin/python -m pytest tests/sae_template -q -p no:cacheprovider \
  --junitxml=.test-results/sae_template.xml || status=$?
# one closing line for both suites
.venvs/harness/bin/python - <<'PY'
import glob, xml.etree.ElementTree as ET
p = f = s = 0
for path in glob.glob(".test-results/*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        t, fl, er, sk = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        p += t - fl - er - sk; f += fl + er; s += sk
print(f"total: {p} passed, {f} failed, {s} skipped")
PY
exit $status
