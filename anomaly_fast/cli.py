"""The ``anomaly-fast`` command line: one sub-command per module.

Each entry maps a sub-command to ``"module"`` (whose ``main(argv) -> int``
runs it) or ``"module:function"``; modules are imported only when their
command runs.
"""
import importlib
import sys

COMMANDS = {
    "bench": ("anomaly_fast.bench.forest", "isolation-forest speed/accuracy benchmark vs scikit-learn and isotree"),
    "evaluate": ("anomaly_fast.bench.evaluate", "ROC-AUC / AP / P@k of IF, EIF, LOF and AnomalyEnsemble on ADBench (or synthetic) sets"),
    "ensemble-latency": ("anomaly_fast.bench.ensemble_latency", "AnomalyEnsemble one-row latency and batch consistency vs PyOD-style batch rescaling"),
    "fit": ("anomaly_fast.pipeline_cli:fit_main", "fit IsolationForest/EIF on a CSV or Parquet file into a model registry folder"),
    "score": ("anomaly_fast.pipeline_cli:score_main", "score a CSV or Parquet file with a registered model (CSV out)"),
    "stream": ("anomaly_fast.pipeline_cli:stream_main", "alert pipeline over JSON lines on stdin -> alerts as JSON lines (durable with --store)"),
    "bench-pipeline": ("anomaly_fast.bench.pipeline", "AnomalyPipeline process_batch events/s and process p50/p99 latency vs bare scikit-learn scoring"),
    "bench-streaming": ("anomaly_fast.bench.streaming", "ADWIN and Half-Space Trees detections/speed/ROC-AUC vs river"),
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
    module_name, _, function = COMMANDS[argv[0]][0].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function or "main")(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
