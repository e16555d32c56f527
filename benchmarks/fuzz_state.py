"""Run fuzz targets over many cases in crash-proof worker processes and print
the outcome counts (see ``anomaly_fast._fuzz``).

    python benchmarks/fuzz_state.py anomaly_fast._fuzz_forest:state_if \
        anomaly_fast._fuzz_forest:folder_eif --cases 10000

Exits 1 if any case crashed, hung or returned an error.
"""

import argparse
import sys
import time

from anomaly_fast._fuzz import run_cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="module:function fuzz targets")
    parser.add_argument("--cases", type=int, default=10_000, help="cases per target (default: 10000)")
    parser.add_argument("--first", type=int, default=0, help="first case number (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per case before a hang (default: 20)")
    args = parser.parse_args(argv)
    failed = False
    print("| target | cases | outcomes | failures | seconds |")
    print("|---|---:|---|---:|---:|")
    for target in args.targets:
        start = time.perf_counter()
        report = run_cases(
            target, range(args.first, args.first + args.cases), n_workers=args.workers, time_limit=args.time_limit
        )
        counts = ", ".join(f"{label}: {n}" for label, n in sorted(report.counts.items()))
        print(
            f"| `{target}` | {report.n_cases} | {counts} | {len(report.failures)} | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )
        for case, label in report.failures[:20]:
            print(f"  case {case}: {label}", file=sys.stderr)
        failed = failed or bool(report.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
