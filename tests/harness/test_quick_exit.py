"""run_harness.py ends with os._exit after every atexit handler (harness/quick_exit.py): the exit
status and everything printed or written survive; only the interpreter's teardown is skipped."""

import subprocess
import sys

import pytest

from tests.support import REPO

SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
{before}
from harness.quick_exit import run_then_exit


class Teardown:
    # runs when the interpreter frees module globals, i.e. in its teardown (builtins may be gone)
    def __del__(self, _open=open):
        _open({tmp!r} + "/teardown", "w").close()


def main():
    import atexit
    global kept
    kept = Teardown()
    atexit.register(lambda: open({tmp!r} + "/atexit", "w").close())
    print("printed without a flush", end="")
    {ending}


run_then_exit(main)
"""


def _run(tmp_path, ending: str, before: str = "") -> subprocess.CompletedProcess:
    code = SCRIPT.format(repo=str(REPO), tmp=str(tmp_path), ending=ending, before=before)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("ending, status", [
    ("return 0", 0),
    ("return 3", 3),
    ("return None", 0),
    ("sys.exit(2)", 2),
    ("sys.exit('run_harness: error: a message')", 1),
    ("raise ValueError('boom')", 1),
])
def test_status_output_and_atexit_handlers_survive_and_the_teardown_is_skipped(tmp_path, ending, status):
    r = _run(tmp_path, ending)
    assert r.returncode == status, r.stderr
    assert r.stdout == "printed without a flush"
    assert (tmp_path / "atexit").exists()
    assert not (tmp_path / "teardown").exists()
    if "message" in ending:
        assert "run_harness: error: a message" in r.stderr
    if "ValueError" in ending:
        assert "ValueError: boom" in r.stderr


def test_a_handler_registered_earlier_keeps_the_usual_exit(tmp_path):
    # os._exit would skip it: the process must then end the usual way, teardown included
    early = f"import atexit; atexit.register(lambda: open({str(tmp_path)!r} + '/early', 'w').close())"
    r = _run(tmp_path, "return 4", before=early)
    assert r.returncode == 4
    assert (tmp_path / "early").exists() and (tmp_path / "atexit").exists() and (tmp_path / "teardown").exists()
