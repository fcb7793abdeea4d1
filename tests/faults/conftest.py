"""Fixtures of the fault suite: the harness suite's (tests/support.py) plus the integrity check.

Every test here names its fault with @pytest.mark.fault("..."); bench/fault_table.py reads
that name and the number of problems the integrity check found from pytest's JUnit XML.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.integrity import Snapshot, problems
from tests.support import _environments_built, harness  # noqa: F401


@pytest.fixture(autouse=True)
def _fault_name(request, record_property):
    mark = request.node.get_closest_marker("fault")
    assert mark and mark.args, "every test in tests/faults names its fault: @pytest.mark.fault('...')"
    record_property("fault", mark.args[0])


@pytest.fixture
def intact(record_property):
    """intact(ws, before=None, clean=True): assert nothing done is lost (see integrity.py)."""
    def check(ws: Path, before: Snapshot | None = None, clean: bool = True) -> None:
        found = problems(ws, before, clean)
        record_property("data_lost", len(found))
        assert not found, "data lost:\n" + "\n".join(found)
    return check
