"""``anomaly-fast bench stores``: AnomalyPipeline events/s on SQLite and on
PostgreSQL in the same run (one process, ``process`` per event and
``process_batch``), and ``anomaly-fast stream --workers 1/2/4`` throughput on
each store.  Needs a PostgreSQL server (``--postgres URL``, default the
ANOMALY_FAST_TEST_POSTGRES variable that ``.ci/postgres start`` prints)."""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ..cli import HelpFormatter


def build_parser():
    p = argparse.ArgumentParser(
        prog="anomaly-fast bench stores",
        formatter_class=HelpFormatter,
        description="AnomalyPipeline events/s on SQLite and on PostgreSQL in the same run (one process: process per "
        "event and process_batch), and anomaly-fast stream with 1, 2, 4 workers on each store. Needs a "
        "PostgreSQL server: --postgres URL, or the URL that .ci/postgres start prints.",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("ANOMALY_FAST_TEST_POSTGRES"),
        help="PostgreSQL URL (default: $ANOMALY_FAST_TEST_POSTGRES)",
    )
    p.add_argument("--n-events", type=int, default=20000, help="events per measurement")
    p.add_argument("--entities", type=int, default=200, help="entities the events are spread over")
    p.add_argument("--alert-rate", type=float, default=0.01, help="fraction of events above the threshold")
    p.add_argument("--workers", default="1,2,4", help="comma-separated worker counts for stream --workers")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the forest")
    return p


def _drop(url, schema):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.postgres:
        raise SystemExit('anomaly-fast bench stores: give --postgres URL (or eval "$(.ci/postgres start DIR)")')
    import pandas as pd

    from ..pipeline import AnomalyPipeline
    from ..pipeline.alert_store import SQLiteAlertStore
    from ..pipeline.alert_store_postgres import PostgresAlertStore
    from ..pipeline.cli import fit_main, stream_main
    from ..pipeline.stream_workers import run_workers

    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    train = pd.DataFrame(rng.normal(size=(10_000, 8)), columns=[f"f{j}" for j in range(8)])
    train.to_csv(tmp / "train.csv", index=False)
    with open(os.devnull, "w") as devnull:
        import contextlib

        with contextlib.redirect_stdout(devnull):
            fit_main([str(tmp / "train.csv"), "-o", str(tmp / "models"), "--random-state", str(args.seed)])
    from ..pipeline.cli import load_registered

    model, meta = load_registered(tmp / "models")
    X = rng.normal(size=(args.n_events, 8))
    threshold = float(np.quantile(model.anomaly_score(X), 1.0 - args.alert_rate))
    entities = [f"e{k}" for k in rng.integers(0, args.entities, args.n_events)]
    times = 1.7e9 + np.arange(args.n_events, dtype=np.float64)
    print(
        f"data: N(0, 1), 8 features; {args.n_events} events, {args.entities} entities, IsolationForest(100 trees), "
        f"threshold {threshold:.3f} ({100 * (1 - args.alert_rate):g}th percentile), monitoring off"
    )

    schemas = []

    def open_store(kind):
        if kind == "sqlite":
            return SQLiteAlertStore(tmp / f"{uuid.uuid4().hex}.db")  # synchronous=FULL
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        return PostgresAlertStore(args.postgres, schema=schema)

    def pipeline(kind):
        return AnomalyPipeline(
            model,
            threshold=threshold,
            store=open_store(kind),
            monitor_features=False,
            model_version="bench",
            suppression_window=0.0,
        )

    rows = []
    try:
        for kind in ("sqlite", "postgres"):
            pipe = pipeline(kind)
            start = time.perf_counter()
            for i in range(args.n_events):
                pipe.process(X[i], {"entity_id": entities[i], "timestamp": times[i]})
            elapsed = time.perf_counter() - start
            rows.append((f"process per event, {kind}", args.n_events / elapsed, pipe.stats["alerts"]))
            pipe.close()
            pipe = pipeline(kind)
            start = time.perf_counter()
            for s in range(0, args.n_events, 1000):
                pipe.process_batch(
                    X[s : s + 1000], {"entity_id": entities[s : s + 1000], "timestamp": times[s : s + 1000]}
                )
            elapsed = time.perf_counter() - start
            rows.append((f"process_batch (1000 events), {kind}", args.n_events / elapsed, pipe.stats["alerts"]))
            pipe.close()
        for label, rate, alerts in rows:
            print(f"  {label:<48} {rate:>10,.0f} events/s  {alerts} alerts")
        print("stream (JSON lines in, alerts out; --workers: chunks of lines, one process_batch per chunk):")
        lines = "".join(
            json.dumps(
                {"entity_id": entities[i], "timestamp": times[i], "features": dict(zip(train.columns, X[i].tolist()))}
            )
            + "\n"
            for i in range(args.n_events)
        )
        for kind in ("sqlite", "postgres"):
            for n in [0] + [int(w) for w in args.workers.split(",")]:  # 0: the one-process path (no workers)
                if kind == "sqlite":
                    store = str(tmp / f"{uuid.uuid4().hex}.db")
                else:
                    schema = f"bench_{uuid.uuid4().hex[:12]}"
                    schemas.append(schema)
                    sep = "&" if "?" in args.postgres else "?"
                    store = f"{args.postgres}{sep}schema={schema}"
                out, err = io.StringIO(), io.StringIO()
                options = dict(
                    model=str(tmp / "models"),
                    model_version="latest",
                    deprecated_version=None,
                    store=store,
                    workers=n,
                    no_monitor=True,
                    threshold=threshold,
                    suppression_window=0.0,
                    tiers=None,
                    timestamp_unit="s",
                    busy_timeout=60.0,
                    progress_every=0.0,
                )
                start = time.perf_counter()
                if n == 0:  # what `stream` does without --workers: process() per line in this process
                    argv = [
                        "--model",
                        options["model"],
                        "--store",
                        store,
                        "--no-monitor",
                        "--threshold",
                        repr(threshold),
                        "--suppression-window",
                        "0",
                        "--progress-every",
                        "0",
                    ]
                    code = stream_main(argv, stdin=io.StringIO(lines), stdout=out, stderr=err)
                    label = "stream, one process (no --workers)"
                else:  # the --workers path, also with one worker
                    code = run_workers(argparse.Namespace(**options), io.StringIO(lines), out, err)
                    label = f"stream --workers {n}"
                elapsed = time.perf_counter() - start
                n_alerts = len(out.getvalue().splitlines())
                print(
                    f"  {label + ', ' + kind:<48} {args.n_events / elapsed:>10,.0f} events/s  {n_alerts} alerts"
                    f"  exit {code}",
                    flush=True,
                )
    finally:
        for schema in schemas:
            _drop(args.postgres, schema)
    return 0
