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


def pytest_collection_modifyitems(config, items):
    """Longest first: the tests with their own long timeout (the SAE sessions) start before
    the rest, so that on two xdist workers they overlap the many short tests instead of
    running alone at the end (collected last, the cache-poisoning test added ~3 min of tail
    with one worker idle). Called with every collected item, tests/faults' included."""
    def budget(item) -> float:
        mark = item.get_closest_marker("timeout")
        return float(mark.args[0]) if mark and mark.args else 0.0

    items.sort(key=lambda item: -budget(item))  # stable: the rest keep their order
