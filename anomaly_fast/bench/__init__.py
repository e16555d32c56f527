"""``anomaly-fast bench [SUITE] [options]``: the one entry point of the
benchmarks.

Each suite is a module whose ``main(argv) -> int`` runs it; the forest suite
runs when no suite is named (``anomaly-fast bench --data-dir DIR`` is the
forest suite on ADBench).  Every suite falls back to small synthetic data
without ``--data-dir`` and says so.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["SUITES", "main"]

SUITES = {
    "forest": (
        "anomaly_fast.bench.forest",
        "IsolationForest / EIF speed (and --accuracy) vs scikit-learn and isotree [default]",
    ),
    "streaming": ("anomaly_fast.bench.streaming", "ADWIN and Half-Space Trees detections, speed and ROC-AUC vs river"),
    "pipeline": (
        "anomaly_fast.bench.pipeline",
        "AnomalyPipeline events/s and one-event latency vs bare scikit-learn scoring",
    ),
    "evaluate": ("anomaly_fast.bench.evaluate", "ROC-AUC / AP / P@k of IF, EIF, LOF and AnomalyEnsemble"),
    "nab": ("anomaly_fast.bench.nab", "time-series detectors on NAB: window recall and false-alarm runs"),
    "timeseries": (
        "anomaly_fast.bench.timeseries",
        "TSB-AD-style VUS-PR / AUC-PR / AUC-ROC and held-out alarm figures on NAB",
    ),
    "ensemble-latency": (
        "anomaly_fast.bench.ensemble_latency",
        "AnomalyEnsemble one-row latency and batch consistency vs batch rescaling",
    ),
    "adaptation": (
        "anomaly_fast.bench.adaptation",
        "AnomalyPipeline(adapt=...): mean shifts, incidents, walks; latency with a promotion",
    ),
    "stores": (
        "anomaly_fast.bench.stores",
        "AnomalyPipeline events/s on SQLite vs PostgreSQL, stream --workers 1/2/4 (needs a server)",
    ),
    "scale-out": (
        "anomaly_fast.bench.scale_out",
        "Dask scoring beyond memory, 1 vs 2 workers, vs dask-ml ParallelPostFit(sklearn)",
    ),
}
DEFAULT_SUITE = "forest"


def suites_text():
    """The suite list shown by ``anomaly-fast bench --help``."""
    lines = ["suites (anomaly-fast bench SUITE --help for a suite's options):"]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in SUITES.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    suite = DEFAULT_SUITE
    if argv and not argv[0].startswith("-"):
        if argv[0] not in SUITES:
            print(f"anomaly-fast bench: unknown suite {argv[0]!r}\n\n{suites_text()}", file=sys.stderr)
            return 2
        suite, argv = argv[0], argv[1:]
    module = importlib.import_module(SUITES[suite][0])
    return module.main(argv)
