"""The training set on disk (saekit.activations): batches read row by row from the .npy file are
the batches of the same rows held in memory, and reading them leaves nothing of the file mapped,
so that resident memory does not grow with train_tokens (bench/activation_memory.py measures
that at 500k and 5M tokens)."""

import numpy as np
import pytest
import torch
from saekit.activations import ActivationBatches, mapped_rows

ROWS, D, BATCH = 40_000, 64, 512


def mapping_rss_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.fixture
def stored(tmp_path):
    rows = torch.randn(ROWS, D).half()
    path = tmp_path / "acts.npy"
    np.save(path, rows.numpy())
    return path, rows


def test_mapped_batches_are_the_in_memory_batches(stored):
    path, rows = stored
    mapped = ActivationBatches(mapped_rows(path, torch.float16), BATCH, seed=3)
    in_memory = ActivationBatches(rows.clone(), BATCH, seed=3)
    assert mapped.reader is not None and in_memory.reader is None
    for _ in range(3 * ROWS // BATCH):  # three epochs, reshuffled each time
        a, b = mapped.next(), in_memory.next()
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_batches_leave_nothing_of_the_file_resident(stored):
    path, _ = stored
    rows = mapped_rows(path, torch.float16)
    rows[:1000].float().mean()  # what experiment.py reads through the map first (input scale, mean)
    assert mapping_rss_kb(path) > 0
    batches = ActivationBatches(rows, BATCH, seed=0)
    for _ in range(2 * ROWS // BATCH):
        batches.next()
    assert mapping_rss_kb(path) == 0


def test_bfloat16_rows_round_trip_through_the_int16_file(tmp_path):
    rows = torch.randn(1000, D).bfloat16()
    np.save(tmp_path / "acts.npy", rows.view(torch.int16).numpy())
    back = mapped_rows(tmp_path / "acts.npy", torch.bfloat16)
    assert back.dtype == torch.bfloat16 and torch.equal(back, rows)
    mapped = ActivationBatches(back, 100, seed=1)
    in_memory = ActivationBatches(rows.clone(), 100, seed=1)
    for _ in range(25):
        assert torch.equal(mapped.next(), in_memory.next())
