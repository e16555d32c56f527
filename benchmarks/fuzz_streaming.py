"""Fuzz the restored state of the streaming detectors at scale (not part of
the test suite, which runs a few hundred cases per target):

    python benchmarks/fuzz_streaming.py --cases 10000 [--targets adwin,half_space_trees]

Each case mutates a pickled state (anomaly_fast._fuzz_streaming), loads it in
a worker subprocess and, if accepted, uses it; crashes, hangs and unexpected
errors are listed per case.  Exits 1 if there was any.
"""

import argparse
import sys
import time

from anomaly_fast._fuzz import run_cases

TARGETS = ("adwin", "half_space_trees", "feature_monitor")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per target (default: 10000)")
    parser.add_argument("--start", type=int, default=0, help="first case number (default: 0)")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per case (default: 30)")
    args = parser.parse_args(argv)
    failed = False
    for target in args.targets.split(","):
        began = time.perf_counter()
        report = run_cases(f"anomaly_fast._fuzz_streaming:{target}", range(args.start, args.start + args.cases),
                           n_workers=args.workers, time_limit=args.time_limit)
        counts = ", ".join(f"{label}: {n}" for label, n in sorted(report.counts.items()))
        print(f"{target}: {report.n_cases} cases in {time.perf_counter() - began:.0f} s -- {counts}; "
              f"failures: {len(report.failures)}", flush=True)
        for case, label in report.failures[:20]:
            print(f"  case {case}: {label}")
        failed |= bool(report.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
