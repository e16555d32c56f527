"""``anomaly-fast bench-pipeline``: throughput of AnomalyPipeline.process_batch
(events/s) and latency of AnomalyPipeline.process (p50/p99) with an
IsolationForest, next to bare scikit-learn IsolationForest scoring measured in
the same run (the floor any pipeline built on it would pay).

Events are rows from an ADBench set (``--data-dir``) or synthetic N(0, 1)
rows, spread over ``--entities`` entities with increasing timestamps.  The
one-event latency is measured on events below the threshold (no alert is
written), with feature monitoring on; alert writes to SQLite are timed
separately.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._data import adbench_file, load_adbench_file
from ._timing import percentiles_us, time_calls

__all__ = ["main"]


def load_rows(data_dir, dataset, n_train, n_events, n_features, seed):
    rng = np.random.RandomState(seed)
    if data_dir is None:
        X = rng.normal(size=(n_train + n_events, n_features))
        return X[:n_train], X[n_train:], f"synthetic N(0, 1), {n_features} features"
    path = adbench_file(data_dir, dataset)
    X, _ = load_adbench_file(path)
    X = X[rng.permutation(X.shape[0])]
    train = X[:n_train]
    events = X[rng.randint(0, X.shape[0], n_events)]  # events drawn with replacement
    return train, events, f"{path.stem} ({X.shape[0]} rows, {X.shape[1]} features)"


def build_parser():
    from ..cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="anomaly-fast bench pipeline",
        formatter_class=HelpFormatter,
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("--data-dir", default=None, help="folder with ADBench .npz files (default: synthetic rows)")
    p.add_argument("--dataset", default="shuttle", help="ADBench set for --data-dir")
    p.add_argument("--n-train", type=int, default=10000, help="training rows of the IsolationForest")
    p.add_argument("--n-features", type=int, default=8, help="features of the synthetic rows (synthetic data only)")
    p.add_argument("--n-events", type=int, default=200000, help="events fed to process_batch")
    p.add_argument("--batch", type=int, default=10000, help="events per process_batch call")
    p.add_argument("--entities", type=int, default=1000, help="entities the events are spread over")
    p.add_argument("--calls", type=int, default=20000, help="process calls timed for latency")
    p.add_argument("--peer-calls", type=int, default=5000, help="sklearn one-row calls timed (slow: ~10 ms each)")
    p.add_argument("--n-estimators", type=int, default=100, help="trees of both forests")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the forests")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from sklearn.ensemble import IsolationForest as SkIsolationForest

    from ..forest.isolation_forest import IsolationForest
    from ..pipeline import AnomalyPipeline

    train, events, source = load_rows(
        args.data_dir, args.dataset, args.n_train, args.n_events, args.n_features, args.seed
    )
    n, d = events.shape
    model = IsolationForest(n_estimators=args.n_estimators, random_state=args.seed).fit(train)
    sk = SkIsolationForest(n_estimators=args.n_estimators, random_state=args.seed).fit(train)
    scores = model.anomaly_score(events)
    threshold = float(np.quantile(scores, 0.99))  # ~1% of events are alert candidates
    entities = np.array([f"e{i}" for i in range(args.entities)])[np.arange(n) % args.entities]
    timestamps = 1.7e9 + np.arange(n, dtype=np.float64)
    print(
        f"data: {source}; {n} events, {args.entities} entities, IsolationForest({args.n_estimators} trees), "
        f"threshold {threshold:.3f} (99th percentile of scores), 1 thread"
    )

    def pipeline(store=None, monitor=True):
        return AnomalyPipeline(
            model,
            threshold=threshold,
            suppression_window=300.0,
            store=store,
            monitor_features=monitor,
            reference=train,
            model_version="bench",
        )

    rows = []

    def batch_run(label, pipe):
        start = time.perf_counter()
        n_alerts = 0
        for s in range(0, n, args.batch):
            sl = slice(s, s + args.batch)
            n_alerts += len(pipe.process_batch(events[sl], {"entity_id": entities[sl], "timestamp": timestamps[sl]}))
        rate = n / (time.perf_counter() - start)
        rows.append((label, f"{rate:,.0f} events/s", f"{n_alerts} alerts"))
        return rate

    with tempfile.TemporaryDirectory() as tmp:
        rate_mem = batch_run("process_batch, in-memory store, monitoring on", pipeline())
        batch_run("process_batch, in-memory store, monitoring off", pipeline(monitor=False))
        rate_sql = batch_run(
            "process_batch, SQLite store (WAL, synchronous=FULL)", pipeline(store=str(Path(tmp) / "a.db"))
        )
        start = time.perf_counter()
        for s in range(0, n, args.batch):
            sk.score_samples(events[s : s + args.batch])
        sk_rate = n / (time.perf_counter() - start)
        rows.append(
            ("peer: sklearn IsolationForest.score_samples, same batches", f"{sk_rate:,.0f} rows/s", "scoring only")
        )

        quiet = events[scores < threshold]
        pipe = pipeline()
        t_proc = time_calls(
            lambda row, i: pipe.process(row, {"entity_id": entities[i % n], "timestamp": timestamps[i % n]}),
            quiet,
            args.calls,
        )
        assert pipe.stats["alerts"] == 0
        p50, p99 = percentiles_us(t_proc)
        rows.append(("process (no alert written), monitoring on", f"p50 {p50:.1f} us", f"p99 {p99:.1f} us"))
        t_af = time_calls(lambda row, i: model.anomaly_score(row.reshape(1, -1)), quiet, args.calls)
        a50, a99 = percentiles_us(t_af)
        rows.append(("anomaly_fast IsolationForest.anomaly_score, one row", f"p50 {a50:.1f} us", f"p99 {a99:.1f} us"))
        t_sk = time_calls(lambda row, i: sk.score_samples(row.reshape(1, -1)), quiet, min(args.calls, args.peer_calls))
        s50, s99 = percentiles_us(t_sk)
        rows.append(("peer: sklearn IsolationForest.score_samples, one row", f"p50 {s50:.1f} us", f"p99 {s99:.1f} us"))

        loud = events[scores >= threshold]
        sql = pipeline(store=str(Path(tmp) / "b.db"))
        sql.suppression_window = 0.0
        t_alert = time_calls(
            lambda row, i: sql.process(row, {"entity_id": "x", "timestamp": float(i)}), loud, min(args.calls, 300)
        )
        w50, w99 = percentiles_us(t_alert)
        rows.append(
            (
                f"process writing an alert to SQLite ({sql.stats['alerts']} alerts)",
                f"p50 {w50:.1f} us",
                f"p99 {w99:.1f} us",
            )
        )

    width = max(len(r[0]) for r in rows)
    for label, a, b in rows:
        print(f"  {label:<{width}}  {a:>22}  {b}")
    print(
        f"targets: process_batch >= 200,000 events/s: {'met' if rate_mem >= 2e5 else 'NOT met'} "
        f"(in memory {rate_mem:,.0f}, SQLite {rate_sql:,.0f}); "
        f"process p99 <= 100 us without alert: {'met' if p99 <= 100 else 'NOT met'} ({p99:.1f} us); "
        f"pipeline batch / bare sklearn scoring = {rate_mem / sk_rate:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
