"""Fixtures of the harness suite; they live in tests/support.py, shared with tests/faults.

The helpers are re-exported so that `from conftest import edit` keeps working in this suite.
"""

import pytest  # noqa: E402

from tests.support import (  # noqa: F401
    IDEA,
    REPO,
    Harness,
    HarnessRun,
    _environments_built,
    edit,
    harness,
    l1_edit,
)


@pytest.fixture(scope="session")
def local_batch(tmp_path_factory, worker_id):
    """The three-idea batch of batchkit.py, run once per session on the local executor (about 40 s)."""
    from batchkit import shared_batch

    return shared_batch(tmp_path_factory, worker_id)

