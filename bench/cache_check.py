"""What checking a cache artefact against its manifest costs (every run pays it on each entry it
reads; DESIGN.md quotes the figure for the ~0.6 GB training artefact):

    .venvs/sae/bin/python bench/cache_check.py [--mb 600]

Prints seconds per GB of SHA-256 checking and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "templates" / "sae_variants"))
from saekit import cache  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=600, help="artefact size in MB")
    size = parser.parse_args().mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        key = {"bench": "cache_check", "bytes": size}
        entry = cache.cached_dir("big", key, lambda out: (out / "acts.bin").write_bytes(os.urandom(size)), Path(tmp))
        t0 = time.perf_counter()
        assert cache.check(entry, key) is None
        seconds = time.perf_counter() - t0
    print(f"checked {size / 1024 ** 2:.0f} MB in {seconds:.2f} s: {seconds / (size / 1024 ** 3):.2f} s per GB "
          f"(load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
