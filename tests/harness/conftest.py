"""Fixtures of the harness suite; they live in tests/support.py, shared with tests/faults.

The helpers are re-exported so that `from conftest import edit` keeps working in this suite.
"""

from tests.support import (IDEA, REPO, Harness, HarnessRun, _environments_built, edit,  # noqa: F401
                           harness, l1_edit)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def local_batch(tmp_path_factory, worker_id):
    """The three-idea batch of batchkit.py, run once per session on the local executor (about 40 s)."""
    from batchkit import shared_batch

    return shared_batch(tmp_path_factory, worker_id)
