#!/usr/bin/env python3
"""Entry point: `python run_harness.py --idea ideas/feature_momentum.json --model MODEL`.

Works with any python3: if the harness environment built by setup.sh exists and this
interpreter is not it, re-run under it (aider and its exact pins live only there).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
HARNESS_PYTHON = ROOT / ".venvs" / "harness" / "bin" / "python"


def _in_harness_env() -> bool:
    return Path(sys.prefix).resolve() == HARNESS_PYTHON.parent.parent.resolve()


if __name__ == "__main__":
    if not _in_harness_env():
        if HARNESS_PYTHON.exists():
            os.execv(str(HARNESS_PYTHON), [str(HARNESS_PYTHON), __file__, *sys.argv[1:]])
        print("run_harness: error: the harness environment is missing; run `bash setup.sh` first", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(ROOT))
    from harness.cli import main
    from harness.quick_exit import exit_without_teardown

    exit_without_teardown(main())
