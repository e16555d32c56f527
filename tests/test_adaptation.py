"""Drift that adapts (issue 18): a lasting change is adapted to, an
incident is not, and the decisions replay exactly."""

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _streams import shifting_stream as stream
from sklearn.base import BaseEstimator

from anomaly_fast import AnomalyPipeline, IsolationForest, ModelRegistry
from anomaly_fast.pipeline.adaptation import AdaptationPolicy
from anomaly_fast.pipeline.alert_store import MemoryAlertStore, SQLiteAlertStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import _pipeline_stress as stress  # noqa: E402

POLICY = {"window": 1000, "persistence": 400, "shadow": 200}


def gaussian_stream(d, n, shift_at, shift, seed=0, walk=False):
    return stream(d, n, shift_at, shift, seed=seed, walk=walk, n_entities=20)


def champion(d, seed=0):
    train = np.random.RandomState(100 + seed).normal(size=(2000, d))
    model = IsolationForest(random_state=seed).fit(train)
    return model, float(np.quantile(model.anomaly_score(train), 0.995))


def run(X, meta, d, adapt, batch=100, store=None, **kwargs):
    """Alert flags per event and the pipeline, fed in batches."""
    model, threshold = champion(d)
    pipe = AnomalyPipeline(
        model, threshold=threshold, suppression_window=0.0, monitor_features=False, adapt=adapt, store=store, **kwargs
    )
    flags = np.zeros(X.shape[0], dtype=bool)
    for s in range(0, X.shape[0], batch):
        for a in pipe.process_batch(X[s : s + batch], {k: v[s : s + batch] for k, v in meta.items()}):
            flags[int(a.timestamp)] = True
    return flags, pipe


def kinds(pipe):
    return [c["kind"] for c in pipe.model_changes()]


def changes(pipe):
    return [{k: v for k, v in c.items() if k != "timestamp"} for c in pipe.model_changes()]


@pytest.mark.parametrize("d, shift", [(2, 4.0), (5, 3.0), (10, 5.0)])
def test_a_lasting_mean_shift_is_adapted_to_while_planted_anomalies_still_alert(d, shift):
    n, at = 9000, 3000
    X, meta, planted = gaussian_stream(d, n, at, shift)
    fixed, _ = run(X, meta, d, None)
    base = fixed[:at].mean()
    assert fixed[at + 500 :].mean() > 20 * base  # without adaptation: far above the base rate
    flags, pipe = run(X, meta, d, AdaptationPolicy(**POLICY))
    promotions = [c for c in pipe.model_changes() if c["kind"] == "promotion"]
    assert len(promotions) == 1
    promoted_at = promotions[0]["event_index"]
    assert promoted_at < at + POLICY["window"] + 2000
    after = slice(promoted_at + 1, n)
    assert flags[after].mean() <= 2 * base
    assert flags[after][planted[after]].mean() >= 0.95
    assert kinds(pipe) == ["initial", "change", "challenger", "promotion"]
    alerts = pipe.alerts()
    assert {a["model_version"] for a in alerts if a["timestamp"] > promoted_at} == {promotions[0]["version"]}
    assert {a["model_version"] for a in alerts if a["timestamp"] <= promoted_at} == {promotions[0]["previous"]}


def test_a_200_event_burst_from_a_few_entities_does_not_adapt():
    X, meta, _ = gaussian_stream(2, 6000, 6000, 0.0)
    burst = slice(3000, 3200)
    X[burst] = 10.0 + np.random.RandomState(1).normal(size=(200, 2))
    meta["entity_id"][burst] = np.array(["h1", "h2", "h3"] * 67, dtype=object)[:200]
    flags, pipe = run(X, meta, 2, AdaptationPolicy(**POLICY))
    assert flags[burst].mean() > 0.9  # the incident alerts
    incidents = [c for c in pipe.model_changes() if c["kind"] == "incident"]
    assert incidents and "promotion" not in kinds(pipe) and "challenger" not in kinds(pipe)
    assert "burst" in incidents[0]["reason"] and "concentrated" in incidents[0]["reason"]
    assert len({a["model_version"] for a in pipe.alerts()}) == 1


def test_a_lasting_change_of_one_entity_among_many_is_an_incident():
    X, meta, _ = gaussian_stream(2, 8000, 8000, 0.0)
    one = np.flatnonzero(meta["entity_id"] == "h7")
    X[one[one > 3000]] += 6.0  # h7 misbehaves from event 3000 on, for good
    _, pipe = run(X, meta, 2, AdaptationPolicy(**POLICY))
    incidents = [c for c in pipe.model_changes() if c["kind"] == "incident"]
    assert incidents and all("concentrated" in c["reason"] for c in incidents)
    assert "promotion" not in kinds(pipe)


class NormScore(BaseEstimator):
    """A detector scoring by distance to the training mean (a stand-in for
    detectors whose scores reach the emergency tier)."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def anomaly_score(self, X):
        r = np.linalg.norm(np.asarray(X) - self.mean_, axis=1) / self.scale
        return 1.0 - np.exp(-0.05 * r**2)


@pytest.mark.parametrize("max_share, adapts", [(0.5, False), (1.0, True)])
def test_emergency_tier_alerts_are_an_incident_unless_allowed(max_share, adapts):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(6000, 2))
    X[2500:] += 12.0  # scores ~1: emergency tier
    meta = {"entity_id": "one-host", "timestamp": np.arange(6000.0)}
    model = NormScore().fit(rng.normal(size=(1000, 2)))
    pipe = AnomalyPipeline(
        model,
        threshold=0.7,
        suppression_window=0.0,
        monitor_features=False,
        adapt=AdaptationPolicy(max_top_tier_share=max_share, **POLICY),
    )
    for s in range(0, 6000, 250):
        pipe.process_batch(X[s : s + 250], {"entity_id": "one-host", "timestamp": meta["timestamp"][s : s + 250]})
    assert ("promotion" in kinds(pipe)) is adapts
    if not adapts:
        assert any("highest tier" in c["reason"] for c in pipe.model_changes() if c["kind"] == "incident")


def test_a_gradual_mean_walk_is_adapted_to_eventually():
    n, at = 14000, 2000
    X, meta, _ = gaussian_stream(2, n, at, 5.0, walk=True)  # 5 sigma over 12000 events
    _, pipe = run(X, meta, 2, AdaptationPolicy(**POLICY))
    promotions = [c for c in pipe.model_changes() if c["kind"] == "promotion"]
    assert promotions
    assert at < promotions[0]["event_index"] < n


def test_decisions_do_not_depend_on_batching(tmp_path):
    X, meta, _ = gaussian_stream(2, 6000, 2000, 4.0)
    _, whole = run(X, meta, 2, AdaptationPolicy(**POLICY), batch=6000)
    model, threshold = champion(2)
    pipe = AnomalyPipeline(
        model, threshold=threshold, suppression_window=0.0, monitor_features=False, adapt=AdaptationPolicy(**POLICY)
    )
    rng = np.random.RandomState(3)
    s = 0
    while s < 6000:
        size = int(rng.choice([1, 7, 333]))
        if size == 1:
            pipe.process(X[s], {"entity_id": meta["entity_id"][s], "timestamp": meta["timestamp"][s]})
        else:
            pipe.process_batch(X[s : s + size], {k: v[s : s + size] for k, v in meta.items()})
        s += size
    assert "promotion" in kinds(whole)
    assert changes(pipe) == changes(whole)
    assert pipe.alerts() == whole.alerts()


def test_a_failed_write_leaves_the_adapter_as_it_was(monkeypatch):
    X, meta, _ = gaussian_stream(2, 6000, 2000, 4.0)
    _, reference = run(X, meta, 2, AdaptationPolicy(**POLICY))
    model, threshold = champion(2)
    pipe = AnomalyPipeline(
        model, threshold=threshold, suppression_window=0.0, monitor_features=False, adapt=AdaptationPolicy(**POLICY)
    )
    real = MemoryAlertStore.add_model_changes
    failures = []

    def flaky(store, records):
        if any(r["kind"] == "promotion" for r in records) and not failures:
            failures.append(1)
            raise OSError("disk full")
        return real(store, records)

    monkeypatch.setattr(MemoryAlertStore, "add_model_changes", flaky)
    for s in range(0, 6000, 100):
        part = (X[s : s + 100], {k: v[s : s + 100] for k, v in meta.items()})
        try:
            pipe.process_batch(*part)
        except OSError:
            version = pipe.model_version
            pipe.process_batch(*part)  # the retry
            assert version != pipe.model_version
    assert failures
    assert changes(pipe) == changes(reference) and pipe.alerts() == reference.alerts()


def test_the_registry_holds_challengers_with_their_training_window(tmp_path):
    X, meta, _ = gaussian_stream(2, 6000, 2000, 4.0)
    _, pipe = run(X, meta, 2, AdaptationPolicy(registry=tmp_path / "models", **POLICY))
    registry = ModelRegistry(tmp_path / "models")
    promoted = next(c for c in pipe.model_changes() if c["kind"] == "promotion")
    tags = registry.metadata(promoted["version"])["tags"]
    window = tags["training_window"]
    assert tags["role"] == "challenger" and tags["champion"] == promoted["previous"]
    assert window == promoted["detail"]["training_window"]
    assert 2000 <= window["start"] < window["end"] < promoted["event_time"] and window["events"] >= 990
    loaded = registry.load(promoted["version"])  # with the names it was saved with
    rows = pd.DataFrame(X[:50], columns=loaded.feature_names_in_)
    assert np.array_equal(loaded.anomaly_score(rows), pipe.detector.anomaly_score(X[:50]))


def test_a_restart_must_begin_with_the_streams_first_champion(tmp_path):
    db = tmp_path / "a.db"
    stress.adapting_pipeline(SQLiteAlertStore(db)).close()
    other = IsolationForest(random_state=1).fit(np.random.RandomState(0).normal(size=(300, 2)))
    with pytest.raises(ValueError, match="started with model m"):
        AnomalyPipeline(other, store=SQLiteAlertStore(db), model_version="other", adapt=True)


def test_stores_record_model_changes_once(tmp_path):
    record = {
        "timestamp": 1.0,
        "event_index": 5,
        "event_time": 5.0,
        "kind": "promotion",
        "version": "v",
        "previous": "u",
        "reason": "r",
        "detail": {"a": [1, 2]},
    }
    for store in (MemoryAlertStore(), SQLiteAlertStore(tmp_path / "a.db")):
        store.add_model_changes([record])
        store.add_model_changes([dict(record, timestamp=2.0)])  # a replay: skipped
        assert store.model_changes() == [record]
        assert store.event_time_watermark() == 5.0


def test_a_store_of_schema_3_gains_the_model_changes_table(tmp_path):
    path = tmp_path / "v3.db"
    SQLiteAlertStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE model_changes")
    conn.execute("DELETE FROM schema_migrations WHERE version >= 4")
    conn.commit()
    conn.close()
    store = SQLiteAlertStore(path)
    assert 4 in [v for v, _, _ in store.schema_migrations()] and store.model_changes() == []


def test_stream_cli_adapts_reports_promotions_and_restarts_from_the_first_champion(tmp_path):
    from io import StringIO

    from anomaly_fast.pipeline.cli import stream_main

    registry = ModelRegistry(tmp_path / "models")
    first = registry.save(stress.fitted_model(), feature_names=["a", "b"])
    X, meta, _ = stress.adapting_stream()
    lines = "".join(
        json.dumps({"entity_id": e, "timestamp": t, "a": x[0], "b": x[1]}) + "\n"
        for x, e, t in zip(X.tolist(), meta["entity_id"], meta["timestamp"].tolist())
    )
    argv = [
        "--model",
        str(tmp_path / "models"),
        "--store",
        str(tmp_path / "a.db"),
        "--adapt",
        "--suppression-window",
        "0",
        "--no-monitor",
        "--progress-every",
        "0",
    ]
    out, err = StringIO(), StringIO()
    assert stream_main([*argv, "--threshold", "0.66"], stdin=StringIO(lines), stdout=out, stderr=err) == 0
    summary = json.loads(err.getvalue().splitlines()[-1])["summary"]
    printed = [json.loads(x)["model_change"] for x in err.getvalue().splitlines() if "model_change" in x]
    promoted = next(c for c in printed if c["kind"] == "promotion")["version"]
    assert summary["promotions"] == 1 and summary["model_version"] == promoted != first
    assert sorted(v["version"] for v in registry.list_versions()) == sorted([first, promoted])
    # a restart re-feeding the stream: "latest" in the registry is the challenger, the store says where to start
    again, err2 = StringIO(), StringIO()
    assert stream_main(argv, stdin=StringIO(lines), stdout=again, stderr=err2) == 0
    summary2 = json.loads(err2.getvalue().splitlines()[-1])["summary"]
    assert again.getvalue() == "" and summary2["duplicates"] == summary["alerts"]
    assert summary2["promotions"] == 1 and summary2["model_version"] == promoted


def test_a_streaming_champion_learns_its_challenger_and_is_left_alone():
    from anomaly_fast import HalfSpaceTrees
    from anomaly_fast.pipeline.adaptation import fit_challenger

    rng = np.random.RandomState(0)
    champion_model = HalfSpaceTrees(seed=1, limits=[(-10.0, 10.0)] * 2).learn_many(rng.normal(size=(1000, 2)))
    probe = rng.normal(size=(20, 2)) + 4.0
    before = champion_model.anomaly_score(probe)
    a = fit_challenger(champion_model, rng.normal(size=(1000, 2)) + 4.0, seed=0)
    assert a is not champion_model and np.array_equal(champion_model.anomaly_score(probe), before)
    assert a.anomaly_score(probe).mean() < before.mean()  # the new normal is learnt


def test_the_threshold_controller_keeps_its_state_across_a_promotion():
    X, meta, _ = gaussian_stream(2, 6000, 2000, 4.0)
    model, threshold = champion(2)
    pipe = AnomalyPipeline(
        model,
        threshold=threshold,
        suppression_window=0.0,
        monitor_features=False,
        min_feedback=2,
        target_precision=0.5,
        adapt=AdaptationPolicy(**POLICY),
    )
    alerts = pipe.process_batch(X[:1500], {k: v[:1500] for k, v in meta.items()})
    for a in alerts[:3]:
        pipe.feedback(a.alert_id, True)  # precision 1 > 0.5: the threshold comes down
    lowered = pipe.threshold
    assert lowered < threshold
    pipe.process_batch(X[1500:], {k: v[1500:] for k, v in meta.items()})
    assert "promotion" in kinds(pipe)
    assert pipe.threshold == lowered and len(pipe.threshold_history()) == 3  # initial + two feedback steps
