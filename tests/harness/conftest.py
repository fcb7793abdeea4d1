"""Fixtures of the harness suite; they live in tests/support.py, shared with tests/faults.

The helpers are re-exported so that `from conftest import edit` keeps working in this suite.
"""

from tests.support import (IDEA, REPO, Harness, HarnessRun, _environments_built, edit,  # noqa: F401
                           harness, l1_edit)
