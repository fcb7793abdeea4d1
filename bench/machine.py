"""How fast this machine is right now, printed beside every timing a bench reports.

The same code on the same 2-core machine ran 1.4x slower on one day than on the day before
(SAE training 14.5 s -> 20.4 s, LM forward 4.0 s -> 6.7 s, no steal time visible), so a time
alone cannot be compared across days. An fp32 matmul of fixed size is the unit the slow parts
of a run (encoder, LM blocks) are made of: figures from two days compare after dividing by it.
"""

from __future__ import annotations

import os
import time


def fp32_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of an n x n fp32 matmul with torch's default threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def describe() -> str:
    import torch

    return (f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, fp32 matmul "
            f"{fp32_gflops():.0f} GFLOP/s, load average {os.getloadavg()[0]:.2f}")
