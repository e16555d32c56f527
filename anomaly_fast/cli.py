"""The ``anomaly-fast`` command line: one sub-command per module.

Each entry maps a sub-command to a module exposing ``main(argv) -> int``;
modules are imported only when their command runs.
"""
import importlib
import sys

COMMANDS = {
    "bench": ("anomaly_fast.bench.forest", "isolation-forest speed/accuracy benchmark vs scikit-learn and isotree"),
    "nab-eval": ("anomaly_fast.bench.nab", "time-series detectors on NAB: window recall and false-alarm runs per 1000 points"),
}


def _usage():
    lines = ["usage: anomaly-fast COMMAND [options]   (anomaly-fast COMMAND --help)", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"anomaly-fast: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
