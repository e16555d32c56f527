"""The ``anomaly-fast`` command line."""
import sys


def main(argv=None):
    from .bench.run import main as bench_main

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: anomaly-fast bench [options]   (anomaly-fast bench --help)")
        return 0
    if argv[0] == "bench":
        return bench_main(argv[1:])
    print(f"anomaly-fast: unknown command {argv[0]!r}", file=sys.stderr)
    return 2
