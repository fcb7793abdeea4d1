"""run_harness.py and batch workers end with harness.quick_exit.exit_without_teardown: the exit
status and everything printed or written survive, atexit handlers and thread shutdown run as in a
normal exit; only the interpreter's teardown (freeing every module) is skipped."""

import subprocess
import sys

import pytest

from tests.support import REPO

SCRIPT = """
import atexit, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {repo!r})
from harness.quick_exit import exit_without_teardown


class Teardown:
    # runs when the interpreter frees module globals, i.e. in its teardown (builtins may be gone)
    def __del__(self, _open=open):
        _open({tmp!r} + "/teardown", "w").close()


kept = Teardown()
pool = ThreadPoolExecutor(2)  # idle worker threads: joined only after they are told to stop
pool.submit(print, "", end="").result()
atexit.register(lambda: open({tmp!r} + "/atexit", "w").close())
print("printed without a flush", end="")
{ending}
"""


def _run(tmp_path, ending: str) -> subprocess.CompletedProcess:
    code = SCRIPT.format(repo=str(REPO), tmp=str(tmp_path), ending=ending)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("status", [0, 3, 130])
def test_status_output_and_atexit_handlers_survive_and_the_teardown_is_skipped(tmp_path, status):
    r = _run(tmp_path, f"exit_without_teardown({status})")
    assert r.returncode == status, r.stderr
    assert r.stdout == "printed without a flush"
    assert (tmp_path / "atexit").exists()
    assert not (tmp_path / "teardown").exists()


def test_the_usual_exit_does_the_teardown_this_one_skips(tmp_path):
    # the control: without exit_without_teardown the marker is written, so its absence above means something
    r = _run(tmp_path, "sys.exit(3)")
    assert r.returncode == 3
    assert (tmp_path / "atexit").exists() and (tmp_path / "teardown").exists()
