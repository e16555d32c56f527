"""``anomaly-fast fit / score / stream``: train a model into a registry, score
a file, and run an :class:`~anomaly_fast.pipeline.AnomalyPipeline` over JSON
lines on stdin."""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .._scores import anomaly_scores
from .._validation import by_position
from ..cli import HelpFormatter, progress
from .events import METADATA_KEYS as METADATA_COLUMNS  # never features

if TYPE_CHECKING:
    import os

    import pandas as pd

__all__ = [
    "add_model_version_option",
    "fit_main",
    "load_registered",
    "model_version_arg",
    "read_table",
    "score_main",
    "stream_main",
]

MODELS = ("iforest", "eif")
LARGE = 100_000  # rows from which fit reports its steps on stderr and score shows a progress bar


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A pandas DataFrame from a CSV or Parquet file (by extension)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ValueError(f"reading Parquet needs pyarrow (pip install 'anomaly_fast[pipeline]'): {exc}") from None
    try:
        return pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        raise ValueError(f"cannot read {path} as CSV: {exc}") from None


def _feature_frame(df, columns=None, dropna=False):
    """(float64 array, feature names, boolean mask of the rows kept) of the
    numeric feature columns; rows with missing or infinite values raise,
    or are dropped with ``dropna``."""
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"columns not in the data: {missing}")
        df = df[list(columns)]
    else:
        df = df[[c for c in df.columns if str(c) not in METADATA_COLUMNS]]
    bad = [str(c) for c in df.columns if df[c].dtype.kind not in "biuf"]
    if bad:
        raise ValueError(f"non-numeric feature columns {bad}; select features with --columns")
    if df.shape[1] == 0:
        raise ValueError("no feature columns")
    X = df.to_numpy(dtype=np.float64)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        if not dropna:
            raise ValueError(f"{int((~finite).sum())} rows have missing or infinite values; pass --dropna to skip them")
        X = X[finite]
    if X.shape[0] == 0:
        raise ValueError("no rows to use")
    return X, [str(c) for c in df.columns], finite


def load_registered(model: str | os.PathLike[str], version: str = "latest") -> tuple[Any, dict[str, Any]]:
    """(model, metadata) from a registry folder (``version``) or from one
    version's folder."""
    from .registry import ModelRegistry

    path = Path(model)
    if not path.exists():
        raise ValueError(f"no such folder: {path}")
    if (path / "meta.json").exists():
        registry, version = ModelRegistry(path.parent), path.name
    elif path.is_dir():
        registry = ModelRegistry(path)
    else:
        raise ValueError(f"no model registry or model version at {path}")
    return registry.load(version), registry.metadata(version)


def _fail(prog, exc, stderr=None):
    print(f"anomaly-fast {prog}: error: {exc}", file=sys.stderr if stderr is None else stderr)
    return 2


def _note(prog, text):
    print(f"anomaly-fast {prog}: {text}", file=sys.stderr, flush=True)


def add_model_version_option(parser: argparse.ArgumentParser) -> None:
    """``--model-version`` (and ``--version``, its deprecated alias, kept for
    one release: ``anomaly-fast --version`` is the program's version)."""
    parser.add_argument(
        "--model-version",
        default="latest",
        help="version in the registry: 'latest' or a version id (see ModelRegistry.list_versions)",
    )
    parser.add_argument(
        "--version",
        dest="deprecated_version",
        default=None,
        metavar="MODEL_VERSION",
        help="deprecated alias of --model-version (removed in the next release; default: not given)",
    )


def model_version_arg(args: argparse.Namespace, prog: str, stderr: IO[str] | None = None) -> str:
    """The model version chosen by :func:`add_model_version_option`'s options,
    with a deprecation notice on ``stderr`` when ``--version`` was used."""
    if args.deprecated_version is not None:
        print(
            f"anomaly-fast {prog}: --version is deprecated and will be removed in the next release; "
            "use --model-version",
            file=sys.stderr if stderr is None else stderr,
        )
        return args.deprecated_version
    return args.model_version


# -- fit --------------------------------------------------------------------------
def fit_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="anomaly-fast fit",
        formatter_class=HelpFormatter,
        description="Fit a detector on a CSV/Parquet file and save it into a model registry folder; "
        "prints the new version as JSON.",
    )
    parser.add_argument(
        "data", help="CSV or Parquet training data (numeric feature columns; entity_id/timestamp/event_id are ignored)"
    )
    parser.add_argument("-o", "--output", required=True, help="model registry folder (created)")
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="iforest",
        help="iforest: IsolationForest; eif: ExtendedIsolationForest (fully extended)",
    )
    parser.add_argument("--n-estimators", type=int, default=100, help="number of trees")
    parser.add_argument(
        "--max-samples", default="auto", help="rows per tree: 'auto' (min(256, n)), an int, or a fraction"
    )
    parser.add_argument(
        "--contamination",
        default="auto",
        help="'auto' (offset -0.5) or the expected outlier fraction, which sets the predict threshold",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed of the forest")
    parser.add_argument("--columns", help="comma-separated feature columns (default: every other column)")
    parser.add_argument("--dropna", action="store_true", help="skip rows with missing or infinite values")
    args = parser.parse_args(argv)
    from ..forest.extended_isolation_forest import ExtendedIsolationForest
    from ..forest.isolation_forest import IsolationForest
    from .registry import ModelRegistry

    try:
        start = time.perf_counter()
        df = read_table(args.data)
        X, names, kept = _feature_frame(df, args.columns.split(",") if args.columns else None, args.dropna)
        if not kept.all():
            _note("fit", f"skipped {int((~kept).sum())} rows with missing or infinite values")
        if X.shape[0] >= LARGE:
            _note(
                "fit",
                f"read {X.shape[0]:,} rows x {X.shape[1]} features in {time.perf_counter() - start:.1f} s; "
                f"fitting {args.model} ({args.n_estimators} trees)",
            )
        max_samples = (
            args.max_samples
            if args.max_samples == "auto"
            else (float(args.max_samples) if "." in args.max_samples else int(args.max_samples))
        )
        contamination = args.contamination if args.contamination == "auto" else float(args.contamination)
        cls = IsolationForest if args.model == "iforest" else ExtendedIsolationForest
        model = cls(
            n_estimators=args.n_estimators,
            max_samples=max_samples,
            contamination=contamination,
            random_state=args.random_state,
        ).fit(X)
        version = ModelRegistry(args.output).save(model, X, feature_names=names, tags={"source": str(args.data)})
    except (ValueError, TypeError) as exc:
        return _fail("fit", exc)
    print(
        json.dumps({"version": version, "registry": str(args.output), "n_samples": int(X.shape[0]), "features": names})
    )
    return 0


# -- score ------------------------------------------------------------------------
def _score_rows(model, X, chunk=LARGE):
    """(anomaly scores in [0, 1], higher = more anomalous; is-outlier flags),
    scored in chunks of ``chunk`` rows behind a progress bar."""

    def score_and_flag(rows):  # rows: the model's feature columns, in order
        return anomaly_scores(model, rows), model.predict(rows) == -1

    score_and_flag = by_position(model, score_and_flag)

    starts = range(0, X.shape[0], chunk)
    scores, flags = [], []
    for s in progress(starts, total=len(starts), desc="scoring") if len(starts) > 1 else starts:
        row_scores, row_flags = score_and_flag(X[s : s + chunk])
        scores.append(row_scores)
        flags.append(row_flags)
    return np.concatenate(scores), np.concatenate(flags).astype(int)


def _write_scored_partition(part, path):
    """Write one scored partition (index kept) as a Parquet file; its rows."""
    part.to_parquet(path, index=True)
    return len(part)


def _cli_scores(part):
    """A scored partition with score's output columns: is_outlier (0/1)
    instead of predict."""
    part = part.copy()
    part["is_outlier"] = (part.pop("predict") == -1).astype(int)
    return part


def _finite_rows(part, columns):
    return part[np.isfinite(part[list(columns)].to_numpy(dtype=np.float64)).all(axis=1)]


def _score_dask(args, model, meta):
    """``score --dask``: score a Parquet folder/glob on a Dask cluster, one
    Parquet file of scores per input partition in the output folder."""
    try:
        import dask
        import dask.dataframe as dd
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ValueError(f"--dask needs dask.distributed (pip install 'anomaly_fast[dask]'): {exc}") from None
    from ..scale_out import DaskScorer

    if not args.output:
        raise ValueError("--dask writes a folder of Parquet files: give it with -o FOLDER")
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output {out} exists and is not an empty folder")
    if not any(ch in args.data for ch in "*?[") and not Path(args.data).exists():
        raise ValueError(f"no such file or folder: {args.data}")
    cluster = None
    if args.dask == "local":
        cluster = LocalCluster(dashboard_address=":0")
        client = Client(cluster, set_as_default=False)
    else:
        client = Client(args.dask, set_as_default=False)
    try:
        ddf = dd.read_parquet(args.data)
        names = meta.get("feature_names") or [str(c) for c in ddf.columns if str(c) not in METADATA_COLUMNS]
        if args.dropna:
            ddf = ddf.map_partitions(_finite_rows, names, meta=ddf._meta)
        frame = DaskScorer(model, client).score_frame(ddf, ("anomaly_score", "predict"), columns=names)
        frame = frame.map_partitions(_cli_scores, meta=_cli_scores(frame._meta))
        out.mkdir(parents=True, exist_ok=True)
        writes = [
            dask.delayed(_write_scored_partition)(part, str(out / f"part.{i:05d}.parquet"))
            for i, part in enumerate(frame.to_delayed())
        ]
        futures = client.compute(writes)
        rows = sum(f.result() for f in progress(as_completed(futures), total=len(futures), desc="partitions"))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _note("score", f"wrote {rows:,} rows in {len(futures)} Parquet files to {out}")
    return 0


def score_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="anomaly-fast score",
        formatter_class=HelpFormatter,
        description="Score a CSV/Parquet file with a registered model; writes CSV with the metadata columns "
        "(entity_id, timestamp, event_id when present), anomaly_score (in [0, 1], higher = more "
        "anomalous) and is_outlier (the model's predict == -1).  With --dask, DATA is a Parquet "
        "folder or glob scored on a Dask cluster and -o a folder receiving one Parquet file per "
        "partition (the index and metadata columns kept).",
    )
    parser.add_argument("model", help="model registry folder or one version's folder")
    parser.add_argument(
        "data", help="CSV or Parquet file with the model's feature columns (with --dask: a Parquet folder or glob)"
    )
    add_model_version_option(parser)
    parser.add_argument("-o", "--output", help="output CSV (default: stdout); with --dask an output folder (required)")
    parser.add_argument(
        "--dropna",
        action="store_true",
        help="skip rows with missing or infinite values (the output then has a 'row' column: "
        "the row's 0-based position in the input; with --dask the index tells the rows)",
    )
    parser.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="SCHEDULER_ADDRESS",
        help="score on Dask (pip install 'anomaly_fast[dask]'): the scheduler at "
        "SCHEDULER_ADDRESS (e.g. tcp://host:8786), or a local cluster when no address "
        "is given (default: no Dask)",
    )
    add_explain_option(
        parser, "an 'explanation' column: JSON list of the K features with the largest contributions to the row's score"
    )
    args = parser.parse_args(argv)
    try:
        model, meta = load_registered(args.model, model_version_arg(args, "score"))
        if args.dask is not None:
            if args.explain:
                raise ValueError("--explain is not supported with --dask")
            return _score_dask(args, model, meta)
        df = read_table(args.data)
        names = meta.get("feature_names")
        X, _, kept = _feature_frame(df, names, args.dropna)
        if X.shape[1] != model.n_features_in_:
            raise ValueError(f"the data has {X.shape[1]} feature columns, the model {model.n_features_in_}")
        scores, flags = _score_rows(model, X)
        out = df.loc[kept, [c for c in df.columns if str(c) in METADATA_COLUMNS]].copy()
        if args.dropna:
            out.insert(0, "row", np.flatnonzero(kept))
            if not kept.all():
                _note("score", f"skipped {int((~kept).sum())} rows with missing or infinite values")
        out["anomaly_score"] = scores
        out["is_outlier"] = flags
        if args.explain:
            out["explanation"] = _explanations(model, X, args.explain, names or [f"x{j}" for j in range(X.shape[1])])
    except (ValueError, TypeError, OSError) as exc:
        return _fail("score", exc)
    out.to_csv(args.output if args.output else sys.stdout, index=False)
    return 0


def add_explain_option(parser, what):
    parser.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help=f"with K > 0, {what} (the model's explain(): positive = towards anomalous; default 0: none)",
    )


def _explanations(model, X, k, names, chunk=LARGE):
    """One JSON list of the top-k features per row (see AnomalyAlert.explanation)."""
    from ..forest.explain import top_features

    if not hasattr(model, "explain"):
        raise ValueError(f"--explain needs a model with explain(); {type(model).__name__} has none")
    if k < 0:
        raise ValueError(f"--explain must be >= 0, got {k}")
    out = []
    explain = by_position(model, model.explain)  # X: the model's feature columns, in order
    for s in range(0, X.shape[0], chunk):
        rows = X[s : s + chunk]
        for contributions, values in zip(explain(rows), rows):
            out.append(json.dumps(top_features(contributions, values, k, names)))
    return out


# -- stream -----------------------------------------------------------------------
def _parse_tiers(text):
    tiers = {}
    for part in text.split(","):
        name, _, bound = part.partition("=")
        tiers[name.strip()] = float(bound)
    return tiers


def _event(line, names):
    """(point dict or list, metadata) of one JSON line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise ValueError(f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    meta = {k: obj[k] for k in METADATA_COLUMNS if k in obj}
    if "features" in obj:
        point = obj["features"]
        if not isinstance(point, (dict, list)):
            raise ValueError("'features' must be an object or a list")
    else:
        point = {k: v for k, v in obj.items() if k not in METADATA_COLUMNS}
        if not point:
            raise ValueError("no features")
    if isinstance(point, dict):
        missing = [n for n in names if n not in point]
        if missing:
            raise ValueError(f"missing features {missing}")
    elif any(isinstance(v, (bool, str)) or v is None or not isinstance(v, (int, float)) for v in point):
        raise ValueError("feature values must be numbers")
    return point, meta


_clock = time.monotonic  # the stream's progress clock (a test replaces it)


def store_errors():
    """The exception types of a failing alert store (SQLite, PostgreSQL when
    psycopg is installed, the OS)."""
    try:
        import psycopg
    except ImportError:
        return (OSError, sqlite3.Error)
    return (OSError, sqlite3.Error, psycopg.Error)


def open_cli_store(store, busy_timeout):
    """``--store``: None (memory), a ``postgresql://`` URL or a SQLite file."""
    if store is None:
        return None
    from .alert_store import SQLiteAlertStore
    from .alert_store_postgres import PostgresAlertStore, is_postgres_url

    if is_postgres_url(store):
        return PostgresAlertStore(store, busy_timeout=busy_timeout)
    return SQLiteAlertStore(store, busy_timeout=busy_timeout)


def stream_pipeline(args, model_version, on_drift, store=None, adapt=None):
    """(pipeline, feature names) of ``anomaly-fast stream``'s options (the
    store opened from ``--store`` unless given)."""
    from .orchestration import AnomalyPipeline

    model, meta = load_registered(args.model, model_version)
    names = meta.get("feature_names") or [f"x{j}" for j in range(model.n_features_in_)]
    training = meta.get("training_data")
    pipe = AnomalyPipeline(
        model,
        threshold=args.threshold,
        suppression_window=args.suppression_window,
        tiers=args.tiers,
        store=store if store is not None else open_cli_store(args.store, args.busy_timeout),
        model_version=meta["version"],
        monitor_features=not args.no_monitor,
        feature_names=names,
        reference=None if not training else {"min": training["min"], "max": training["max"]},
        on_drift=on_drift,
        timestamp_unit=args.timestamp_unit,
        explain=getattr(args, "explain", 0),
        adapt=adapt,
    )
    return pipe, names


def _summary(stats, malformed, threshold, stderr, key="summary", pipe=None):
    summary = dict(stats, malformed=malformed, threshold=threshold)
    if pipe is not None and pipe.adapt:  # the model in use and the promotions so far
        promotions = sum(c["kind"] == "promotion" for c in pipe.model_changes())
        summary.update(model_version=pipe.model_version, promotions=promotions)
    print(json.dumps({key: summary}), file=stderr, flush=True)


def stream_main(
    argv: Sequence[str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="anomaly-fast stream",
        formatter_class=HelpFormatter,
        description="Read events as JSON lines on stdin ({entity_id, timestamp, [event_id], features | feature "
        "columns}); write alerts as JSON lines on stdout. Malformed lines are reported on stderr, "
        "counted and skipped; a summary line ends stderr. Exit status: 0 done, 1 stopped by an alert "
        "store error (the summary says how far it got), 2 could not start.\n\n"
        "Restarting on the same --store and re-feeding the stream from its start stores exactly the "
        "alerts of an uninterrupted run (leave --threshold out when restarting: a value differing "
        "from the store's is recorded as a threshold change).",
    )
    parser.add_argument("--model", required=True, help="model registry folder or one version's folder")
    add_model_version_option(parser)
    parser.add_argument(
        "--store",
        default=None,
        help="alert store: a SQLite file, or a postgresql:// URL (pip install 'anomaly_fast[postgres]') "
        "that pipelines on any machines can share (default: in memory, lost at exit)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="alert threshold in [0, 1] (default: the store's current one, 0.7 for a new store)",
    )
    parser.add_argument(
        "--suppression-window",
        type=float,
        default=300.0,
        help="seconds of event time during which an entity's repeats are suppressed",
    )
    parser.add_argument(
        "--tiers",
        type=_parse_tiers,
        default=None,
        help="tier=lowest score, comma-separated (default: warning=0.7,critical=0.8,emergency=0.9)",
    )
    parser.add_argument(
        "--timestamp-unit", choices=("s", "ms", "us", "ns"), default="s", help="unit of numeric timestamps"
    )
    parser.add_argument(
        "--busy-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for another process writing the store before giving up",
    )
    parser.add_argument("--no-monitor", action="store_true", help="no feature drift / data-quality monitoring")
    parser.add_argument(
        "--adapt",
        action="store_true",
        help="replace the model after a lasting change of the data (not after an incident): "
        "challengers are saved into the --model registry, model changes printed on stderr as "
        '{"model_change": ...} lines; restart by re-feeding the stream from its start',
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=60.0,
        help='seconds between {"progress": counters} lines on stderr while the stream runs (0: none)',
    )
    add_explain_option(
        parser, "each alert's 'explanation' lists the K features with the largest contributions to its score"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="pipeline processes sharing --store (required when > 1): each event goes to worker "
        "crc32(str(entity_id)) %% N, so an entity's events stay in order in one worker; "
        "the alerts are those of one process, in no fixed order across workers",
    )
    args = parser.parse_args(argv)
    if args.progress_every < 0:
        parser.error("--progress-every must be >= 0")
    if args.explain < 0:
        parser.error("--explain must be >= 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    from .orchestration import STAT_KEYS

    if args.workers > 1:
        from .stream_workers import run_workers

        if args.store is None:
            parser.error("--workers > 1 needs a --store the workers share (a SQLite file or a postgresql:// URL)")
        if args.adapt:
            parser.error("--adapt needs one pipeline process (--workers 1): adaptation decides on the whole stream")
        return run_workers(args, stdin, stdout, stderr)
    try:
        version = model_version_arg(args, "stream", stderr)
        store = open_cli_store(args.store, args.busy_timeout)
        adapt = None
        if args.adapt:
            from .adaptation import AdaptationPolicy

            first = [c["version"] for c in (store.model_changes() if store else []) if c["kind"] == "initial"]
            if first and version == "latest":  # a restart replays from the stream's first champion
                version = first[0]
            root = Path(args.model)
            adapt = AdaptationPolicy(
                registry=root.parent if (root / "meta.json").exists() else root,
                on_change=lambda changes: [
                    print(json.dumps({"model_change": c}, default=str), file=stderr, flush=True) for c in changes
                ],
            )
        pipe, names = stream_pipeline(
            args,
            version,
            lambda events: [print(json.dumps({"drift_event": e.to_dict()}), file=stderr, flush=True) for e in events],
            store=store,
            adapt=adapt,
        )
    except (ValueError, TypeError, NotImplementedError, *store_errors()) as exc:
        code = _fail("stream", exc, stderr)
        _summary(dict.fromkeys(STAT_KEYS, 0), 0, args.threshold, stderr)
        return code
    malformed = 0
    code = 0
    next_progress = _clock() + args.progress_every if args.progress_every > 0 else math.inf
    for number, line in enumerate(stdin, start=1):
        if _clock() >= next_progress:  # checked per line: a quiet stream reports at its next event
            _summary(pipe.stats, malformed, pipe.threshold, stderr, key="progress", pipe=pipe)
            next_progress = _clock() + args.progress_every
        if not line.strip():
            continue
        try:
            point, md = _event(line, names)
            alert = pipe.process(point, md)
        except (ValueError, TypeError, OverflowError) as exc:
            malformed += 1
            print(f"anomaly-fast stream: line {number}: skipped: {exc}", file=stderr, flush=True)
            continue
        except store_errors() as exc:  # the store failed: stop, nothing of this line was kept
            print(f"anomaly-fast stream: line {number}: stopped: alert store error: {exc}", file=stderr, flush=True)
            code = 1
            break
        if alert is not None:
            stdout.write(json.dumps(alert.to_dict(), default=str) + "\n")
            stdout.flush()
    _summary(pipe.stats, malformed, pipe.threshold, stderr, pipe=pipe)
    pipe.close()
    return code
