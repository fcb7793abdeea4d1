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
# The two suites run at once, every process with one torch thread (as a batch's CPU slots get
# them): side by side, processes that each spread over every core slow each other down (two
# trainers on 2 cores: 16k tokens/s in all with 2 threads each, 27k with one), and the SAE
# suite fills the cores the harness suite leaves idle while its last tests finish. They share
# the tiny setting's cache artefacts in .test-results/sae-cache (tests/sae_cache.py).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# the SAE template's metrics and smoke run under the experiment environment; its output is
# printed when both suites are done
.venvs/sae/bin/python -m pytest tests/sae_template -q -p no:cacheprovider \
  --junitxml=.test-results/sae_template.xml > .test-results/sae_template.log 2>&1 &
sae_suite=$!
trap 'kill $sae_suite 2>/dev/null' EXIT
# the harness (aider, git, scripted model) and its fault suite under its own environment
.venvs/harness/bin/python -m pytest tests/harness tests/faults -q -p no:cacheprovider -n "${TEST_WORKERS:-auto}" \
  --junitxml=.test-results/harness.xml "$@" || status=$?
wait $sae_suite || status=$?
trap - EXIT
echo "--- SAE template suite (tests/sae_template) ---"
cat .test-results/sae_template.log
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
