"""Comparison run against the peer libraries: ``python benchmarks/run.py
[--data-dir ../shared/data/adbench] [--accuracy]``.  The same as the
installed ``anomaly-fast bench`` command (anomaly_fast/bench/forest.py)."""

import sys

from anomaly_fast.bench.forest import main

if __name__ == "__main__":
    sys.exit(main())
