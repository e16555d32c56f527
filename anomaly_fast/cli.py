"""The ``anomaly-fast`` command line: one sub-command per module.

Each entry maps a sub-command to ``"module"`` (whose ``main(argv) -> int``
runs it) or ``"module:function"``; modules are imported only when their
command runs.  The benchmarks are one command, ``anomaly-fast bench
[SUITE]`` (:mod:`anomaly_fast.bench`); their old sub-command names still
work for one release and print a deprecation notice.

Shared pieces of every sub-command live here too: the help formatter that
shows each option's default, :func:`progress` (tqdm on a terminal, silent
otherwise), :func:`existing_folder` and the quiet exit on a closed pipe.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import TypeVar

from . import __version__

__all__ = ["COMMANDS", "DEPRECATED", "HelpFormatter", "existing_folder", "main", "progress"]

COMMANDS = {
    "bench": (
        "anomaly_fast.bench",
        "benchmarks against scikit-learn, isotree and river: "
        "anomaly-fast bench [SUITE] (forest by default; anomaly-fast bench --help lists the suites)",
    ),
    "fit": (
        "anomaly_fast.pipeline.cli:fit_main",
        "fit IsolationForest/EIF on a CSV or Parquet file into a model registry folder",
    ),
    "score": ("anomaly_fast.pipeline.cli:score_main", "score a CSV or Parquet file with a registered model (CSV out)"),
    "stream": (
        "anomaly_fast.pipeline.cli:stream_main",
        "alert pipeline over JSON lines on stdin -> alerts as JSON lines (durable with --store)",
    ),
    # deprecated names of benchmark suites, kept for one release (see DEPRECATED)
    "bench-streaming": ("anomaly_fast.bench.streaming", "= anomaly-fast bench streaming"),
    "bench-pipeline": ("anomaly_fast.bench.pipeline", "= anomaly-fast bench pipeline"),
    "evaluate": ("anomaly_fast.bench.evaluate", "= anomaly-fast bench evaluate"),
    "nab-eval": ("anomaly_fast.bench.nab", "= anomaly-fast bench nab"),
    "ensemble-latency": ("anomaly_fast.bench.ensemble_latency", "= anomaly-fast bench ensemble-latency"),
}
# old command -> its ``anomaly-fast bench SUITE`` replacement
DEPRECATED = {
    "bench-streaming": "bench streaming",
    "bench-pipeline": "bench pipeline",
    "evaluate": "bench evaluate",
    "nab-eval": "bench nab",
    "ensemble-latency": "bench ensemble-latency",
}

_T = TypeVar("_T")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help shows its default (appended as ``(default: X)``
    unless the help already says it); descriptions are plain text whose
    paragraphs are re-filled, except indented lines (examples), which are
    kept as written."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        if "default" in help_.lower():
            return help_
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        out = []
        for paragraph in textwrap.dedent(text).strip().split("\n\n"):
            if paragraph.startswith(" ") or "\n " in paragraph:
                out.append(textwrap.indent(paragraph, indent))
            else:
                out.append(
                    textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(out)


def progress(iterable: Iterable[_T], total: int | None = None, desc: str | None = None) -> Iterable[_T]:
    """``iterable`` wrapped in a tqdm bar on stderr when stderr is a
    terminal (tqdm's ``disable=None``); plain ``iterable`` otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)


def existing_folder(path: str, what: str = "folder") -> str:
    """``path`` as given when it is an existing folder; SystemExit with
    ``no such folder: PATH`` (or ``not a folder``) otherwise."""
    if not os.path.exists(path):
        raise SystemExit(f"no such {what}: {path}")
    if not os.path.isdir(path):
        raise SystemExit(f"not a {what}: {path}")
    return path


def _usage():
    lines = [
        "usage: anomaly-fast [--version] COMMAND [options]   (anomaly-fast COMMAND --help)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items() if name not in DEPRECATED]
    lines += ["", "deprecated (removed in the next release):"]
    lines += [f"  {name:<18} now: anomaly-fast {new}" for name, new in DEPRECATED.items()]
    lines += ["", "python -m anomaly_fast ... runs the same commands."]
    return "\n".join(lines)


def _quiet_broken_pipe():
    """Point stdout at /dev/null so the interpreter's final flush into the
    closed pipe does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests)
        pass
    return EXIT_BROKEN_PIPE


def run(command, argv):
    """Run one sub-command (its ``main(argv)``) and return its exit code."""
    module_name, _, function = COMMANDS[command][0].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function or "main")(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"anomaly-fast {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"anomaly-fast: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if argv[0] in DEPRECATED:
        print(
            f"anomaly-fast: '{argv[0]}' is deprecated and will be removed in the next release; "
            f"use 'anomaly-fast {DEPRECATED[argv[0]]}'",
            file=sys.stderr,
        )
    try:
        return run(argv[0], argv[1:])
    except BrokenPipeError:
        return _quiet_broken_pipe()


if __name__ == "__main__":
    sys.exit(main())
