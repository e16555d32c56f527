"""AnomalyPipeline: commit first, then remember; bad input gets a clear,
counted outcome (issue 10, items 3 and 6)."""

import datetime
import math
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest

from anomaly_fast import AnomalyPipeline, IsolationForest
from anomaly_fast.pipeline import orchestration as pipeline_module
from anomaly_fast.pipeline.alert_store import SQLiteAlertStore

NORMAL, WARN, CRIT, EMERG = [0.0, 0.0], [2.5, 2.5], [3.0, 3.0], [40.0, -40.0]
TIERS = {"warning": 0.7, "critical": 0.72, "emergency": 0.75}


@pytest.fixture(scope="module")
def model():
    X = np.random.RandomState(0).normal(size=(1000, 2))
    return IsolationForest(random_state=0).fit(X)


def make(model, store=None, **kw):
    kw.setdefault("suppression_window", 60.0)
    kw.setdefault("tiers", TIERS)
    kw.setdefault("reference", np.random.RandomState(0).normal(size=(1000, 2)))
    return AnomalyPipeline(model, store=store, model_version="m", **kw)


def state(pipe):
    """Everything a failed call must leave unchanged."""
    return (
        dict(pipe.stats),
        pipe.threshold,
        pipe._watermark,
        pipe.alerts(),
        pipe.drift_events(),
        pipe.threshold_history(),
        pipe.feature_report(),
        pipe.store.feedback(),
    )


class _Clock:
    """Consecutive event times shared by a test's batches."""

    def __init__(self):
        self.t = 0.0

    def batch(self, rng, n, entities="abc"):
        X = np.array([[EMERG, CRIT, WARN, NORMAL][k] for k in rng.randint(0, 4, n)], dtype=float)
        X += rng.uniform(-0.01, 0.01, X.shape)
        ts = self.t + 10.0 * np.arange(1, n + 1)
        self.t = float(ts[-1])
        return X, [{"entity_id": entities[i % len(entities)], "timestamp": float(ts[i])} for i in range(n)]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_batch_failing_at_any_row_leaves_the_pipeline_as_it_was(model, tmp_path, rng, kind, monkeypatch):
    monkeypatch.setattr(pipeline_module._MonitorUndo, "ROWS", 7)  # checkpoints between the batches too
    n = 8
    for bad in range(n):
        folder = tmp_path / f"r{bad}"
        folder.mkdir()
        store = None if kind == "memory" else SQLiteAlertStore(folder / "a.db", "NORMAL")
        pipe = make(model, store, suppression_window=0.0)
        clock = _Clock()
        for _ in range(3):  # some history first
            pipe.process_batch(*clock.batch(rng, 5))
        X = np.array([EMERG] * n) + rng.uniform(-0.01, 0.01, (n, 2))  # every row alerts
        meta = [{"entity_id": f"e{i}", "timestamp": clock.t + i} for i in range(n)]
        broken = [dict(m) for m in meta]
        broken[bad][1] = "an int key next to str keys: the context cannot be stored"
        before = state(pipe)
        with pytest.raises(TypeError):
            pipe.process_batch(X, broken)
        assert state(pipe) == before
        # injected store failure at the bad row's write
        calls = {"n": 0}
        real = pipe.store.add_alerts

        def failing(alerts, real=real, calls=calls, bad=bad):
            calls["n"] += 1
            if calls["n"] == bad + 1:
                raise OSError("injected write failure")
            return real(alerts)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipe.store, "add_alerts", failing)
            with pytest.raises(OSError, match="injected"):
                pipe.process_batch(X, meta)
        assert state(pipe) == before
        # the retry stores every row, as a pipeline that never failed
        alerts = pipe.process_batch(X, meta)
        assert len(alerts) == n and pipe.store.count_alerts() == len(before[3]) + n
        assert pipe.stats["events"] == before[0]["events"] + n
        pipe.close()


def _raise_full(*args):
    raise OSError("disk full")


def test_a_failed_call_leaves_the_feature_monitor_exactly_as_an_uninterrupted_run(model, rng, monkeypatch):
    monkeypatch.setattr(pipeline_module._MonitorUndo, "ROWS", 50)
    X = rng.normal(size=(400, 2))
    X[200:, 1] += 3.0  # drift
    ts = np.arange(400.0)
    plain = make(model, threshold=0.99)
    failing = make(model, threshold=0.99)
    for start in range(0, 400, 20):
        sl = slice(start, start + 20)
        plain.process_batch(X[sl], {"entity_id": "a", "timestamp": ts[sl]})
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(failing.store, "add_drift_events", _raise_full)
            patch.setattr(failing.store, "add_alerts", _raise_full)
            try:
                failing.process_batch(X[sl], {"entity_id": "a", "timestamp": ts[sl]})
            except OSError:
                pass  # a batch with a drift event or an alert failed: retried below
        if failing.stats["events"] < plain.stats["events"]:
            failing.process_batch(X[sl], {"entity_id": "a", "timestamp": ts[sl]})
        assert failing.feature_report() == plain.feature_report()
    assert plain.stats["drift_events"] >= 1 and failing.stats == plain.stats
    assert failing.drift_events() == plain.drift_events()


def test_disk_full_mid_batch_raises_the_real_error_and_a_retry_stores_every_alert(model, tmp_path, rng):
    store = SQLiteAlertStore(tmp_path / "a.db")
    pipe = make(model, store, suppression_window=0.0)
    n = 200
    X = np.array([EMERG] * n) + rng.uniform(-0.01, 0.01, (n, 2))
    meta = {"entity_id": [f"entity-{i}" for i in range(n)], "timestamp": np.arange(n, dtype=float), "note": "x" * 2000}
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 20}")
    before = state(pipe)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        pipe.process_batch(X, meta)
    assert state(pipe) == before
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert len(pipe.process_batch(X, meta)) == n
    assert store.count_alerts() == n
    pipe.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_failed_feedback_changes_neither_threshold_nor_labels(model, tmp_path, kind):
    pipe = make(model, None if kind == "memory" else tmp_path / "a.db", suppression_window=0.0, min_feedback=1)
    alert = pipe.process(WARN, {"entity_id": "a", "timestamp": 0.0})
    before = state(pipe)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipe.store, "add_threshold_change", _raise_full)
        with pytest.raises(OSError, match="disk full"):
            pipe.feedback(alert.alert_id, False)
    assert state(pipe) == before and pipe.store.latest_labels(10) == {}
    assert pipe.feedback(alert.alert_id, False) > before[1]


# -- NaN / inf scores ----------------------------------------------------------------------
class RatioDetector:
    """A user's detector: score = x0 / x1, NaN for 0/0 and inf for x/0."""

    n_features_in_ = 2

    def anomaly_score(self, X):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(X)[:, 0] / np.asarray(X)[:, 1]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_nan_and_inf_scores_never_alert_and_are_counted_with_their_reason(tmp_path, kind):
    store = None if kind == "memory" else tmp_path / "a.db"
    pipe = AnomalyPipeline(RatioDetector(), threshold=0.5, store=store, monitor_features=False)
    assert pipe.process([0.0, 0.0], {"entity_id": "a", "timestamp": 0.0}) is None  # NaN
    assert pipe.process([1.0, 0.0], {"entity_id": "a", "timestamp": 1.0}) is None  # inf
    assert pipe.process([np.nan, 1.0], {"entity_id": "a", "timestamp": 2.0}) is None  # missing feature
    X = np.array([[0.0, 0.0], [-1.0, 0.0], [0.9, 1.0], [np.inf, 1.0]])
    alerts = pipe.process_batch(X, {"entity_id": ["b", "c", "d", "e"], "timestamp": 3.0})
    assert [a.entity_id for a in alerts] == ["d"]
    assert pipe.stats["unscorable"] == 6
    assert pipe.stats["unscorable_score"] == 4 and pipe.stats["unscorable_missing"] == 2
    assert [a["entity_id"] for a in pipe.alerts()] == ["d"]


def test_sklearn_detector_nan_scores_are_unscorable_not_calibrated_to_one(rng):
    class NanOnFar:
        n_features_in_ = 2

        def score_samples(self, X):
            X = np.asarray(X)
            return np.where(np.abs(X[:, 0]) > 5, np.nan, -np.abs(X[:, 0]))

    pipe = AnomalyPipeline(NanOnFar(), threshold=0.9, reference=rng.normal(size=(200, 2)), monitor_features=False)
    assert pipe.process([9.0, 0.0], {"entity_id": "a", "timestamp": 0.0}) is None
    assert pipe.stats["unscorable_score"] == 1


def test_counts_add_up(model, rng):
    pipe = make(model)
    X = np.array([[EMERG, CRIT, WARN, NORMAL, [np.nan, 0.0]][k] for k in rng.randint(0, 5, 300)], dtype=float)
    meta = {"entity_id": rng.randint(0, 3, 300), "timestamp": np.sort(rng.uniform(0, 3000, 300))}
    pipe.process_batch(X[:150], {k: v[:150] for k, v in meta.items()})
    pipe.process_batch(X[:150], {k: v[:150] for k, v in meta.items()})  # duplicates
    for i in range(150, 300):
        pipe.process(X[i], {"entity_id": meta["entity_id"][i], "timestamp": meta["timestamp"][i]})
    s = pipe.stats
    assert s["events"] == 450 and s["duplicates"] > 0 and s["suppressed"] > 0
    assert s["events"] == s["unscorable"] + s["below_threshold"] + s["suppressed"] + s["duplicates"] + s["alerts"]


# -- input ------------------------------------------------------------------------------
def test_numbers_too_large_for_a_float_get_a_clear_value_error(model):
    pipe = make(model)
    with pytest.raises(ValueError, match="too large"):
        pipe.process({"x0": 10**400, "x1": 0.0}, {"timestamp": 0.0})
    with pytest.raises(ValueError, match="too large"):
        pipe.process([10**400, 0.0], {"timestamp": 0.0})
    with pytest.raises(ValueError, match="too large"):
        pipe.process(NORMAL, {"timestamp": 10**400})
    assert pipe.stats["events"] == 0


@pytest.mark.parametrize(
    "wrap",
    [list, np.asarray, pd.Series, lambda v: pd.Series(v, index=np.arange(100, 100 + len(v)))],
    ids=["list", "numpy", "series", "series-with-index"],
)
def test_metadata_columns_of_any_kind_are_per_row(model, wrap):
    n = 10
    X = np.array([EMERG] * n)
    meta = {
        "entity_id": wrap([f"e{i}" for i in range(n)]),
        "timestamp": wrap(list(np.arange(n, dtype=float))),
        "event_id": wrap(list(range(n))),
        "site": wrap(["eu"] * n),
    }
    alerts = make(model).process_batch(X, meta)
    assert [a.entity_id for a in alerts] == [f"e{i}" for i in range(n)]
    assert [a.timestamp for a in alerts] == list(np.arange(n, dtype=float))
    assert [a.context["site"] for a in alerts] == ["eu"] * n
    assert [a.event_key for a in alerts] == [f"2:e{i}#{i}" for i in range(n)]


def test_a_dataframe_and_datetime_columns_work_as_metadata(model):
    df = pd.DataFrame(
        {
            "entity_id": ["a", "b"],
            "timestamp": pd.to_datetime(["2024-01-01T00:00:00", "2024-01-01T00:00:01.5"], format="ISO8601"),
        }
    )
    alerts = make(model).process_batch(np.array([EMERG, EMERG]), df)
    assert [a.timestamp for a in alerts] == [1704067200.0, 1704067201.5]
    aware = df.assign(timestamp=df["timestamp"].dt.tz_localize("UTC"))
    alerts = make(model).process_batch(np.array([EMERG, EMERG]), aware)
    assert [a.timestamp for a in alerts] == [1704067200.0, 1704067201.5]


def test_a_container_as_one_events_entity_is_refused(model):
    with pytest.raises(TypeError, match="entity_id must be a string or a number"):
        make(model).process(EMERG, {"entity_id": pd.Series(["a", "b"]), "timestamp": 0.0})
    with pytest.raises(TypeError, match="event_id must be a string or a number"):
        make(model).process(EMERG, {"entity_id": "a", "event_id": ["x"], "timestamp": 0.0})


def test_event_ids_are_scoped_by_entity_and_keys_cannot_collide(model):
    pipe = make(model)
    assert pipe.process(EMERG, {"entity_id": "A", "event_id": 7, "timestamp": 0.0}) is not None
    assert pipe.process(EMERG, {"entity_id": "B", "event_id": 7, "timestamp": 0.0}) is not None
    # "x@1.0" as an event id against entity "id:x" at t=1 (the old encoding's collision)
    assert pipe.process(EMERG, {"entity_id": "C", "event_id": "x@1.0", "timestamp": 0.0}) is not None
    assert pipe.process(EMERG, {"entity_id": "id:x", "timestamp": 1.0}) is not None
    # separators inside entity ids
    assert pipe.process(EMERG, {"entity_id": "a#b", "timestamp": 0.0}) is not None
    assert pipe.process(EMERG, {"entity_id": "a", "event_id": "b", "timestamp": 0.0}) is not None
    assert pipe.stats["duplicates"] == 0 and len({a["event_key"] for a in pipe.alerts()}) == 6


def test_two_events_of_one_entity_at_the_same_instant_are_both_judged(model):
    pipe = make(model)
    assert pipe.process(WARN, {"entity_id": "a", "timestamp": 5}).tier == "warning"
    escalation = pipe.process(EMERG, {"entity_id": "a", "timestamp": 5})
    assert escalation is not None and escalation.context["reason"] == "escalation"
    assert pipe.process(EMERG, {"entity_id": "a", "timestamp": 5}) is None  # the redelivery
    assert pipe.stats["duplicates"] == 1


def test_millisecond_timestamps_with_timestamp_unit(model):
    pipe = make(model, timestamp_unit="ms")
    t0 = 1_700_000_000_000
    assert pipe.process(WARN, {"entity_id": "a", "timestamp": t0}).timestamp == 1_700_000_000.0
    assert pipe.process(WARN, {"entity_id": "a", "timestamp": t0 + 30_000}) is None  # 30 s later: suppressed
    assert pipe.process(WARN, {"entity_id": "a", "timestamp": t0 + 60_000}) is not None
    alerts = make(model, timestamp_unit="ms").process_batch(
        np.array([WARN, WARN]), {"entity_id": "a", "timestamp": [t0, t0 + 1000]}
    )
    assert [a.timestamp for a in alerts] == [1_700_000_000.0]


def test_millisecond_lookalike_timestamps_warn_once(model):
    pipe = make(model)
    with pytest.warns(UserWarning, match="timestamp_unit='ms'"):
        pipe.process(NORMAL, {"timestamp": 1_700_000_000_000})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.process(NORMAL, {"timestamp": 1_700_000_000_001})
        pipe.process(NORMAL, {"timestamp": datetime.datetime(2024, 1, 1)})


def test_size_caps_on_ids_and_metadata_give_clear_errors(model, tmp_path):
    pipe = make(model, SQLiteAlertStore(tmp_path / "a.db", max_id_length=64, max_metadata_bytes=1000))
    with pytest.raises(ValueError, match="entity_id is 65 characters long.*limit is 64"):
        pipe.process(EMERG, {"entity_id": "e" * 65, "timestamp": 0.0})
    with pytest.raises(ValueError, match="event_id is 100 characters"):
        pipe.process(EMERG, {"entity_id": "e", "event_id": "x" * 100, "timestamp": 0.0})
    with pytest.raises(ValueError, match="metadata is .* bytes as JSON.*1000"):
        pipe.process(EMERG, {"entity_id": "e", "timestamp": 0.0, "blob": "x" * 2000})
    assert pipe.process(EMERG, {"entity_id": "e", "timestamp": 0.0, "blob": "x" * 100}) is not None
    assert pipe.stats["events"] == 1


def test_explicit_threshold_is_a_recorded_change_and_none_keeps_the_stored_one(model, tmp_path):
    db = tmp_path / "a.db"
    make(model, db).close()
    assert make(model, db).threshold == 0.7
    pipe = make(model, db, threshold=0.75)
    pipe.process(EMERG, {"entity_id": "a", "timestamp": 100.0})
    pipe.close()
    again = make(model, db)
    assert again.threshold == 0.75
    history = again.threshold_history()
    assert [h["new"] for h in history] == [0.7, 0.75] and "by the caller" in history[1]["reason"]
    again.close()
    assert make(model, db, threshold=0.75).threshold_history() == history  # same value: no change
    # a change made when the store has seen event time 100 is in force after it
    third = make(model, db, threshold=0.8)
    assert third.threshold_history()[-1]["event_time"] == 100.0
    assert third.process(EMERG, {"entity_id": "b", "timestamp": 100.0}).threshold == 0.75
    assert third.process(WARN, {"entity_id": "c", "timestamp": 101.0}) is None


def test_math_nan_metadata_timestamp_is_refused(model):
    with pytest.raises(ValueError, match="finite"):
        make(model).process_batch(np.array([NORMAL]), {"timestamp": [math.nan]})
