"""Workloads for the concurrency tests of AnomalyPipeline, run in worker
subprocesses (``anomaly_fast._fuzz.run_cases`` for threads, plain
subprocesses for several processes on one store), so a crash fails the test
instead of killing the run.  Not collected by pytest (no ``test_`` prefix)."""

import json
import random
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np

from anomaly_fast import AnomalyPipeline, IsolationForest
from anomaly_fast.pipeline.alert_store import SQLiteAlertStore

POINTS = np.array([[0.0, 0.0], [2.5, 2.5], [3.0, 3.0], [40.0, -40.0], [np.nan, 0.0]])
TIERS = {"warning": 0.7, "critical": 0.72, "emergency": 0.75}
N_THREADS = 8


_MODEL = []


def fitted_model():
    if not _MODEL:
        _MODEL.append(IsolationForest(random_state=0).fit(np.random.RandomState(0).normal(size=(1000, 2))))
    return _MODEL[0]


def make_stream(seed, n, n_entities):
    """(X, entities, timestamps): mostly alerting points so that suppression
    and escalation matter; times increase, so per entity too."""
    rng = np.random.RandomState(seed)
    X = POINTS[rng.choice(5, n, p=[0.3, 0.25, 0.2, 0.2, 0.05])] + rng.uniform(-0.01, 0.01, (n, 2))
    entities = [f"host-{k}" for k in rng.randint(0, n_entities, n)]
    return X, entities, np.cumsum(rng.uniform(0.0, 8.0, n)) + 1.7e9


def shard_of(entity, n_shards):
    return zlib.crc32(entity.encode()) % n_shards


def open_spec(spec, **kwargs):
    """The store of a command-line spec: a ``postgresql://...?schema=S``
    URL or a SQLite file path."""
    spec = str(spec)
    if spec.startswith("postgresql://"):
        from anomaly_fast.pipeline.alert_store_postgres import PostgresAlertStore

        return PostgresAlertStore(spec, **kwargs)
    return SQLiteAlertStore(spec, "NORMAL", **kwargs)


def pipeline(store, monitor=True):
    return AnomalyPipeline(
        fitted_model(),
        threshold=0.7,
        suppression_window=20.0,
        tiers=TIERS,
        store=store,
        model_version="m",
        monitor_features=monitor,
        min_feedback=3,
        feedback_window=10,
    )


def feed(pipe, X, entities, timestamps, rows, rng):
    """Feed ``rows`` in order, mixing process and process_batch (chunks of
    1-12 rows); returns the alerts returned."""
    out = []
    i = 0
    while i < len(rows):
        size = rng.randint(1, 12)
        chunk = rows[i : i + size]
        if size <= 3:
            for r in chunk:
                a = pipe.process(X[r], {"entity_id": entities[r], "timestamp": timestamps[r]})
                out += [] if a is None else [a]
        else:
            out += pipe.process_batch(
                X[chunk], {"entity_id": [entities[r] for r in chunk], "timestamp": timestamps[chunk]}
            )
        i += size
    return out


def canonical(alerts):
    return sorted(json.dumps(a, sort_keys=True) for a in alerts)


def check_invariants(pipe, returned):
    """'' when the invariants hold, else what broke."""
    stored = pipe.alerts()
    keys = [a["event_key"] for a in stored]
    if len(keys) != len(set(keys)):
        return "duplicate event keys in the store"
    ids = {a["alert_id"] for a in stored}
    missing = [a.alert_id for a in returned if a.alert_id not in ids]
    if missing:
        return f"{len(missing)} returned alerts are not stored"
    if len(returned) != len({a.alert_id for a in returned}):
        return "an alert was returned twice"
    s = pipe.stats
    parts = s["unscorable"] + s["below_threshold"] + s["suppressed"] + s["duplicates"] + s["alerts"]
    if s["events"] != parts or s["alerts"] != len(returned):
        return f"counts do not add up: {s}"
    return ""


def _run_threads(work):
    errors = []

    def wrap(k):
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported as the outcome
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def threads_case(case):
    """case % 2: memory / SQLite store; case // 2: 0 = entities partitioned
    between 8 threads, no feedback (the alert set must equal one thread's);
    1 = shared entities, process / process_batch / feedback / alerts mixed
    (invariants)."""
    sqlite, mixed = case % 2, case // 2
    X, entities, ts = make_stream(case, 1600, 24)
    with tempfile.TemporaryDirectory() as tmp:

        def open_pipe(name):
            store = SQLiteAlertStore(Path(tmp) / name, "NORMAL") if sqlite else None
            return pipeline(store)

        pipe = open_pipe("threads.db")
        returned = []
        if not mixed:
            shards = [[r for r in range(len(X)) if shard_of(entities[r], N_THREADS) == k] for k in range(N_THREADS)]
            errors = _run_threads(lambda k: returned.extend(feed(pipe, X, entities, ts, shards[k], random.Random(k))))
            if errors:
                return "error in a thread: " + errors[0]
            one = open_pipe("one.db")
            expected = feed(one, X, entities, ts, list(range(len(X))), random.Random(99))
            if len(expected) < 100:
                return f"too few alerts to test anything: {len(expected)}"
            if canonical(pipe.alerts()) != canonical(one.alerts()) or len(expected) != len(returned):
                return f"alert sets differ: {len(returned)} with threads, {len(expected)} in one thread"
        else:

            def work(k):
                rng = random.Random(k)
                rows = [r for r in range(len(X)) if r % N_THREADS == k]
                for start in range(0, len(rows), 40):
                    got = feed(pipe, X, entities, ts, rows[start : start + 40], rng)
                    returned.extend(got)
                    for a in got[:2]:
                        pipe.feedback(a.alert_id, rng.random() < 0.5)
                    pipe.alerts(limit=5)
                    pipe.feature_report()
                    pipe.process_batch(
                        X[rows[start : start + 5]],
                        {
                            "entity_id": [entities[r] for r in rows[start : start + 5]],
                            "timestamp": ts[rows[start : start + 5]],
                        },
                    )  # redelivery

            errors = _run_threads(work)
            if errors:
                return "error in a thread: " + errors[0]
            if len(returned) < 100 or pipe.stats["duplicates"] == 0:
                return f"too few alerts or no redelivery: {pipe.stats}"
            broken = check_invariants(pipe, returned)
            if broken:
                return broken
        pipe.close()
    return "ok"


# -- several processes ----------------------------------------------------------------------
def process_main(argv):
    """``python _pipeline_stress.py STORE SHARD N_SHARDS MODE``: feed one
    shard of the stream into the SQLite store and print the returned alert
    ids, the stats and the threshold as JSON.  MODE "entity": shard by
    entity hash, no feedback; "feedback": rows dealt round-robin, feedback
    on some alerts."""
    store, shard, n_shards, mode = argv[0], int(argv[1]), int(argv[2]), argv[3]
    X, entities, ts = make_stream(7, 1200, 16)
    if mode.startswith("entity"):
        rows = [r for r in range(len(X)) if shard_of(entities[r], n_shards) == shard]
    else:
        rows = [r for r in range(len(X)) if r % n_shards == shard]
    pipe = pipeline(open_spec(store, busy_timeout=60.0))
    rng = random.Random(shard)
    returned = []
    for start in range(0, len(rows), 50):
        got = feed(pipe, X, entities, ts, rows[start : start + 50], rng)
        returned += got
        if mode == "entity-live":  # the parent may kill -9 it between two chunks or inside one
            for a in got:
                print(a.alert_id, flush=True)
        if mode == "feedback":
            for a in got[:3]:
                pipe.feedback(a.alert_id, rng.random() < 0.6)
    print(json.dumps({"ids": [a.alert_id for a in returned], "stats": pipe.stats}))
    pipe.close()
    return 0


def one_process_alerts(store):
    X, entities, ts = make_stream(7, 1200, 16)
    pipe = pipeline(store if not isinstance(store, (str, Path)) else SQLiteAlertStore(store, "NORMAL"))
    feed(pipe, X, entities, ts, list(range(len(X))), random.Random(0))
    alerts = pipe.alerts()
    pipe.close()
    return alerts


def expected_alerts(folder):
    """The alerts one uninterrupted process stores for the stream (SQLite
    in ``folder``): the reference of the multi-process and reconnect tests."""
    alerts = one_process_alerts(Path(folder) / "one.db")
    assert len(alerts) > 50
    return alerts


def cli_model_and_events(folder, rng, n_train, n_events):
    """Fit a 3-feature model into ``folder/models`` with ``anomaly-fast
    fit``; JSON event lines for ``anomaly-fast stream`` (23 entities, 8%
    scaled up)."""
    import pandas as pd

    from anomaly_fast.pipeline.cli import fit_main

    pd.DataFrame(rng.normal(size=(n_train, 3)), columns=["a", "b", "c"]).to_csv(folder / "train.csv", index=False)
    assert fit_main([str(folder / "train.csv"), "-o", str(folder / "models"), "--n-estimators", "50"]) == 0
    lines = []
    for i in range(n_events):
        x = rng.normal(size=3) * (rng.choice([3.0, 6.0]) if rng.rand() < 0.08 else 1.0)
        lines.append(
            json.dumps({"entity_id": f"h{i % 23}", "timestamp": 1.7e9 + i, "features": dict(zip("abc", x.tolist()))})
        )
    return lines


# -- replay after a crash -------------------------------------------------------------------
def replay_pipeline(store):
    return AnomalyPipeline(
        fitted_model(),
        suppression_window=60.0,
        tiers=TIERS,
        store=store,
        model_version="m",
        monitor_features=False,
        min_feedback=2,
        feedback_window=4,
        target_precision=0.75,
        threshold_step=0.02,
    )


def scenario(seed, n=400):
    """Steps (point, metadata, feedback or None) of a stream with feedback:
    feedback (j, label) labels the j-th stored alert (mod their number)."""
    rng = np.random.RandomState(seed)
    X, entities, ts = make_stream(seed, n, 30)
    steps = []
    for i in range(n):
        md = {"entity_id": entities[i], "timestamp": float(ts[i])}
        if rng.rand() < 0.5:
            md["event_id"] = f"ev{i}"
        fb = (int(rng.randint(0, 1000)), bool(rng.rand() < 0.75)) if rng.rand() < 0.1 else None
        steps.append((X[i].tolist(), md, fb))
    return steps


def play(pipe, steps, actions=None, skip=0, on_alert=None):
    """Feed the steps and return the feedback actions [(step, alert_id,
    label)] given.  With ``actions=None`` each step's feedback (j, label)
    labels the j-th stored alert (mod their number; none stored: no
    action); else ``actions`` are replayed, the first ``skip`` of them
    left out (recorded before a crash)."""
    done = []
    todo = {} if actions is None else {step: (a, label) for step, a, label in actions[skip:]}
    for i, (point, md, fb) in enumerate(steps):
        alert = pipe.process(point, md)
        if alert is not None and on_alert is not None:
            on_alert(alert)
        if actions is None and fb is not None:
            alerts = pipe.alerts()
            if alerts:
                todo[i] = (alerts[fb[0] % len(alerts)]["alert_id"], fb[1])
        if i in todo:
            pipe.feedback(*todo[i])
            done.append((i, *todo[i]))
    return done


def replay_main(argv):
    """``python _pipeline_stress.py replay STORE SEED``: play the scenario,
    printing each alert id as it is returned (the parent kills -9 midway)."""
    store, seed = argv[0], int(argv[1])
    pipe = replay_pipeline(SQLiteAlertStore(store, "NORMAL"))
    play(pipe, scenario(seed), on_alert=lambda a: print(a.alert_id, flush=True))
    return 0


def adapting_stream(n=6000, shift_at=2000, seed=0, d=2, n_entities=20):
    """(X, metadata columns, planted mask): a 2-D Gaussian whose mean moves
    by 4 sigma at ``shift_at``, with 10-sigma anomalies planted at 0.5%."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    X[shift_at:] += 4.0
    planted = rng.rand(n) < 0.005
    X[planted] += 10.0 * rng.choice([-1.0, 1.0], (int(planted.sum()), d))
    meta = {
        "entity_id": np.array([f"h{k}" for k in rng.randint(0, n_entities, n)], dtype=object),
        "timestamp": np.arange(n, dtype=np.float64),
    }
    return X, meta, planted


def adapting_pipeline(store, registry=None):
    from anomaly_fast.pipeline.adaptation import AdaptationPolicy

    train = np.random.RandomState(0).normal(size=(1000, 2))
    model = fitted_model()
    threshold = float(np.quantile(model.anomaly_score(train), 0.995))
    policy = AdaptationPolicy(window=1000, persistence=400, shadow=200, registry=registry)
    return AnomalyPipeline(
        model,
        threshold=threshold,
        suppression_window=0.0,
        store=store,
        model_version="m",
        monitor_features=False,
        adapt=policy,
    )


def adapt_main(argv):
    """``python _pipeline_stress.py adapt STORE``: feed the adapting stream
    in batches of 50, printing each alert id (the parent kills -9 midway)."""
    pipe = adapting_pipeline(SQLiteAlertStore(argv[0], "NORMAL"))
    X, meta, _ = adapting_stream()
    for s in range(0, X.shape[0], 50):
        for a in pipe.process_batch(X[s : s + 50], {k: v[s : s + 50] for k, v in meta.items()}):
            print(a.alert_id, a.model_version, flush=True)


def serve_main(argv):
    """``python _pipeline_stress.py serve STORE``: a pipeline worker taking
    JSON commands on stdin, one per line -- ``["process", point, metadata]``
    or ``["feedback", alert_id, label]`` -- and answering each with a JSON
    line ``{"alert": id or null, "threshold": t}`` (a worker of a fleet
    sharing the store)."""
    pipe = pipeline(open_spec(argv[0], busy_timeout=60.0), monitor=False)
    print(json.dumps({"threshold": pipe.threshold}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        alert = None
        if command[0] == "process":
            got = pipe.process(command[1], command[2])
            alert = None if got is None else got.alert_id
        else:
            pipe.feedback(command[1], command[2])
        print(json.dumps({"alert": alert, "threshold": pipe.threshold}), flush=True)
    pipe.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "replay":
        sys.exit(replay_main(sys.argv[2:]))
    if sys.argv[1] == "adapt":
        sys.exit(adapt_main(sys.argv[2:]))
    if sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(process_main(sys.argv[1:]))
