import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest as SkIsolationForest

from anomaly_fast import AnomalyAlert, AnomalyPipeline, IsolationForest
from anomaly_fast.pipeline import event_key, parse_timestamp
from anomaly_fast.pipeline.alert_store import MemoryAlertStore, SQLiteAlertStore

# Points with known scores under the fixture model (pinned below).
NORMAL = [0.0, 0.0]  # ~0.40
WARN = [2.5, 2.5]  # ~0.711
CRIT = [3.0, 3.0]  # ~0.733
EMERG = [40.0, -40.0]  # ~0.769
TIERS = {"warning": 0.7, "critical": 0.72, "emergency": 0.75}


@pytest.fixture(scope="module")
def model():
    X = np.random.RandomState(0).normal(size=(1000, 2))
    return IsolationForest(random_state=0).fit(X)


def make(model, **kw):
    kw.setdefault("suppression_window", 60.0)
    kw.setdefault("tiers", TIERS)
    return AnomalyPipeline(model, **kw)


def run(pipe, events):
    """events: (entity, t, point); returns [(t, entity, tier, reason)] of alerts."""
    out = []
    for entity, t, point in events:
        a = pipe.process(point, {"entity_id": entity, "timestamp": t})
        if a is not None:
            out.append((t, entity, a.tier, a.context["reason"]))
    return out


def test_pinned_scores(model):
    scores = model.anomaly_score(np.array([NORMAL, WARN, CRIT, EMERG]))
    np.testing.assert_allclose(scores, [0.40080116, 0.71071938, 0.732691, 0.76859425], atol=1e-8)


def test_suppression_by_event_time_per_entity(model):
    pipe = make(model)
    events = [
        ("a", 0.0, WARN),
        ("b", 1.0, WARN),  # two entities alert independently
        ("a", 59.0, WARN),
        ("b", 30.0, WARN),  # within the window: suppressed
        ("a", 60.0, WARN),  # exactly one window after a's alert: new alert
        ("b", 61.0, NORMAL),  # below threshold
        ("b", 61.5, WARN),  # 60.5 s after b's alert: new
    ]
    assert run(pipe, events) == [
        (0.0, "a", "warning", "new"),
        (1.0, "b", "warning", "new"),
        (60.0, "a", "warning", "new"),
        (61.5, "b", "warning", "new"),
    ]
    assert pipe.stats["suppressed"] == 2
    assert pipe.stats["events"] == 7


def test_suppression_ignores_wall_clock(model):
    """Replaying last year's events behaves as live: only event time counts."""
    pipe = make(model)
    base = 1.5e9
    alerts = run(pipe, [("a", base + t, WARN) for t in (0.0, 10.0, 20.0, 100.0)])
    assert [a[0] - base for a in alerts] == [0.0, 100.0]


def test_escalation_through_suppression(model):
    pipe = make(model)
    alerts = run(
        pipe,
        [
            ("a", 0.0, WARN),
            ("a", 10.0, WARN),
            ("a", 20.0, CRIT),
            ("a", 25.0, CRIT),
            ("a", 30.0, EMERG),
            ("a", 40.0, CRIT),
            ("a", 50.0, EMERG),
        ],
    )
    assert alerts == [
        (0.0, "a", "warning", "new"),
        (20.0, "a", "critical", "escalation"),
        (30.0, "a", "emergency", "escalation"),
    ]
    last = pipe.alerts()[-1]
    assert last["context"]["escalated_from"] == "critical"
    assert last["context"]["previous_alert_id"] == pipe.alerts()[1]["alert_id"]
    assert pipe.stats["escalations"] == 2 and pipe.stats["suppressed"] == 4


def test_escalation_restarts_window(model):
    pipe = make(model)
    alerts = run(pipe, [("a", 0.0, WARN), ("a", 50.0, CRIT), ("a", 70.0, WARN), ("a", 110.0, WARN)])
    assert alerts == [
        (0.0, "a", "warning", "new"),
        (50.0, "a", "critical", "escalation"),
        (110.0, "a", "warning", "new"),
    ]


def test_alert_fields(model):
    pipe = make(model, model_version="m-1")
    alert = pipe.process({"x0": 40.0, "x1": -40.0}, {"entity_id": 7, "timestamp": "2024-01-01T00:00:00Z", "site": "eu"})
    assert isinstance(alert, AnomalyAlert)
    assert alert.entity_id == "7" and alert.timestamp == 1704067200.0
    assert alert.tier == "emergency" and alert.threshold == 0.7
    assert alert.features == {"x0": 40.0, "x1": -40.0}
    assert alert.detector == "IsolationForest" and alert.model_version == "m-1"
    assert alert.context == {"site": "eu", "reason": "new"}
    assert alert.score == pytest.approx(0.76859425)
    assert alert.event_key.startswith("1:7@1704067200.0/")  # entity, exact time, digest of the features
    assert pipe.store.get_alert(alert.alert_id)["score"] == alert.score


def test_default_model_version_is_content_derived(model):
    from anomaly_fast.pipeline.registry import model_version

    assert make(model).model_version == model_version(model)


def test_idempotent_per_event(model):
    pipe = make(model)
    first = pipe.process(EMERG, {"entity_id": "a", "timestamp": 5.0})
    assert first is not None
    assert pipe.process(EMERG, {"entity_id": "a", "timestamp": 5.0}) is None
    assert pipe.stats["duplicates"] == 1
    # event_id is the key when given
    assert pipe.process(EMERG, {"entity_id": "b", "timestamp": 5.0, "event_id": "e1"}) is not None
    assert pipe.process(EMERG, {"entity_id": "b", "timestamp": 500.0, "event_id": "e1"}) is None
    assert len(pipe.alerts()) == 2


def test_late_event_uses_state_at_its_time(model):
    pipe = make(model)
    run(pipe, [("a", 0.0, WARN), ("a", 200.0, WARN)])
    # late events: 30 s after the t=0 alert is suppressed, 100 s after it is new
    assert run(pipe, [("a", 30.0, WARN)]) == []
    assert run(pipe, [("a", 100.0, WARN)]) == [(100.0, "a", "warning", "new")]
    # the entity's latest alert is still t=200
    assert run(pipe, [("a", 210.0, WARN)]) == []


def test_batch_equals_one_by_one(model, rng):
    n = 3000
    X = rng.normal(size=(n, 2))
    X[rng.rand(n) < 0.03] *= 6
    entities = rng.randint(0, 5, n).astype(str)
    ts = np.sort(rng.uniform(0, 5000, n))
    a = make(model, threshold=0.62)
    alerts_one = []
    for i in range(n):
        r = a.process(X[i], {"entity_id": entities[i], "timestamp": ts[i]})
        if r is not None:
            alerts_one.append(r)
    b = make(model, threshold=0.62)
    alerts_batch = b.process_batch(X[:1000], {"entity_id": entities[:1000], "timestamp": ts[:1000]})
    alerts_batch += b.process_batch(
        X[1000:], [{"entity_id": e, "timestamp": t} for e, t in zip(entities[1000:], ts[1000:])]
    )
    assert len(alerts_one) > 20
    assert alerts_batch == alerts_one
    assert a.stats == b.stats
    assert a.feature_report() == b.feature_report()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("ab"), st.floats(0, 100), st.sampled_from([NORMAL, WARN, CRIT, EMERG])), max_size=40
    )
)
def test_batch_equals_one_by_one_property(model, events):
    events = sorted(events, key=lambda e: e[1])
    one = make(model, monitor_features=False)
    expected = [one.process(p, {"entity_id": e, "timestamp": t}) for e, t, p in events]
    batch = make(model, monitor_features=False)
    got = batch.process_batch(
        np.array([p for _, _, p in events], dtype=float).reshape(-1, 2),
        [{"entity_id": e, "timestamp": t} for e, t, _ in events],
    )
    assert got == [x for x in expected if x is not None]
    # invariant: within one entity, alerts closer than the window escalate
    last = {}
    for alert in got:
        prev = last.get(alert.entity_id)
        if prev is not None and alert.timestamp - prev.timestamp < 60.0:
            assert TIERS[alert.tier] > TIERS[prev.tier] and alert.context["reason"] == "escalation"
        last[alert.entity_id] = alert


def test_feedback_moves_threshold_with_bounded_steps(model):
    pipe = make(
        model, suppression_window=0.0, min_feedback=4, feedback_window=4, target_precision=0.75, threshold_step=0.01
    )
    alerts = [pipe.process(WARN, {"entity_id": "a", "timestamp": float(t)}) for t in range(12)]
    assert all(a is not None for a in alerts)
    thresholds = [pipe.feedback(a.alert_id, False) for a in alerts[:6]]
    # 3 labels: no change yet; then precision 0 < 0.75 -> up by at most 0.01 each
    assert thresholds[:3] == [0.7, 0.7, 0.7]
    np.testing.assert_allclose(thresholds[3:], [0.71, 0.72, 0.73])
    history = pipe.threshold_history()
    assert history[0]["reason"] == "initial threshold" and history[0]["new"] == 0.7
    assert len(history) == 4
    assert "precision 0.000 over the last 4 labelled alerts is below the target 0.750" == history[1]["reason"]
    # an alert just under the new threshold is no longer raised
    assert pipe.process(WARN, {"entity_id": "a", "timestamp": 100.0}) is None
    # true positives: precision over the last 4 labels rises 0.25, 0.5, 0.75
    # (on target: no change), 1.0, 1.0, 1.0 -> the threshold comes back down
    thresholds = [pipe.feedback(a.alert_id, True) for a in alerts[6:]]
    np.testing.assert_allclose(thresholds, [0.74, 0.75, 0.75, 0.74, 0.73, 0.72])
    assert "above the target" in pipe.threshold_history()[-1]["reason"]
    # the bounds hold
    assert all(0.5 <= h["new"] <= 0.99 for h in pipe.threshold_history())


def test_feedback_validation(model):
    pipe = make(model)
    a = pipe.process(EMERG, {"entity_id": "a", "timestamp": 1.0})
    with pytest.raises(ValueError, match="unknown alert id"):
        pipe.feedback("nope", True)
    with pytest.raises(TypeError, match="bool"):
        pipe.feedback(a.alert_id, 1)


def test_sqlite_store_restores_state(model, tmp_path):
    db = tmp_path / "alerts.db"
    pipe = make(model, store=str(db), suppression_window=0.0, min_feedback=1, target_precision=1.0)
    a = pipe.process(WARN, {"entity_id": "a", "timestamp": 0.0})
    pipe.feedback(a.alert_id, False)
    assert pipe.threshold == pytest.approx(0.72)
    pipe.process(CRIT, {"entity_id": "b", "timestamp": 10.0})
    pipe.close()
    again = make(model, store=db, suppression_window=60.0, min_feedback=1, target_precision=1.0)
    assert again.threshold == pytest.approx(0.72)  # from the store: no threshold passed
    assert again.store.latest_labels(100) == {a.alert_id: False}
    # suppression state survives: b's critical alert at t=10 suppresses a critical repeat
    assert again.process(CRIT, {"entity_id": "b", "timestamp": 20.0}) is None
    assert again.process(EMERG, {"entity_id": "b", "timestamp": 21.0}).context["reason"] == "escalation"
    assert [x["entity_id"] for x in again.alerts()] == ["a", "b", "b"]
    assert len(again.threshold_history()) == 2
    again.close()


def test_alert_committed_before_return(model, tmp_path):
    db = tmp_path / "alerts.db"
    pipe = make(model, store=db)
    alert = pipe.process(EMERG, {"entity_id": "a", "timestamp": 0.0})
    other = SQLiteAlertStore(db)  # a second connection sees it at once
    assert other.get_alert(alert.alert_id)["event_key"] == alert.event_key
    other.close()
    pipe.close()


def test_suppression_state_is_read_from_the_store(model, tmp_path):
    pipe = make(model, store=tmp_path / "a.db")
    run(pipe, [(f"e{i}", float(i), WARN) for i in range(10)])
    assert run(pipe, [("e0", 30.0, WARN)]) == []
    assert run(pipe, [("e1", 70.0, WARN)]) == [(70.0, "e1", "warning", "new")]


def test_memory_store_is_bounded(model):
    pipe = make(model, buffer_size=5, suppression_window=0.0)
    run(pipe, [("a", float(t), WARN) for t in range(20)])
    assert pipe.store.count_alerts() == 5
    assert [a["timestamp"] for a in pipe.alerts()] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert len(pipe.store._keys) == 5 and len(pipe.store._by_entity["a"]) == 5


def test_max_entities_is_deprecated(model):
    with pytest.warns(FutureWarning, match="max_entities"):
        make(model, max_entities=3)


def test_sklearn_detector_with_reference(rng):
    X = rng.normal(size=(500, 3))
    sk = SkIsolationForest(random_state=0).fit(X)
    with pytest.raises(ValueError, match="reference"):
        AnomalyPipeline(sk)
    pipe = AnomalyPipeline(sk, threshold=0.99, reference=X)
    far = pipe.process([8.0, 8.0, 8.0], {"entity_id": "a", "timestamp": 0.0})
    assert far.score == 1.0  # more anomalous than every reference row
    assert pipe.process([0.0, 0.0, 0.0], {"entity_id": "a", "timestamp": 1.0}) is None


def test_missing_values_are_counted_not_scored_when_asked(model):
    pipe = make(model, score_missing=False)
    assert pipe.process([math.nan, 1.0], {"entity_id": "a", "timestamp": 0.0}) is None
    assert pipe.process({"x0": 40.0}, {"entity_id": "a", "timestamp": 1.0}) is None  # x1 missing
    alerts = pipe.process_batch(np.array([[np.inf, 0.0], EMERG]), {"entity_id": "a", "timestamp": [2.0, 3.0]})
    assert len(alerts) == 1 and alerts[0].timestamp == 3.0
    assert pipe.stats["unscorable"] == 3
    report = {r["feature"]: r for r in pipe.feature_report()}
    # the monitor counts inf as out of range (issue 10), NaN and absent values as missing
    assert report["x0"]["n_missing"] == 1 and report["x0"]["n_out_of_range"] == 1
    assert report["x1"]["n_missing"] == 1


@pytest.mark.parametrize(
    "point, metadata, error, match",
    [
        ([1.0, 2.0, 3.0], {}, ValueError, "2 features"),
        ([[1.0, 2.0], [1.0, 2.0]], {}, ValueError, "2 features"),
        (["a", "b"], {}, TypeError, "numeric"),
        ([1.0, object()], {}, TypeError, "numbers"),
        ({"x0": 1.0, "zz": 2.0}, {}, ValueError, "unknown feature 'zz'"),
        ({"x0": "1"}, {}, TypeError, "'x0' must be a number"),
        ([1.0, 2.0], {"timestamp": "yesterday"}, ValueError, "ISO-8601"),
        ([1.0, 2.0], {"timestamp": float("nan")}, ValueError, "finite"),
        ([1.0, 2.0], {"timestamp": [1]}, TypeError, "timestamp"),
        ([1.0, 2.0], ["not", "a dict"], TypeError, "metadata"),
    ],
)
def test_bad_input(model, point, metadata, error, match):
    pipe = make(model)
    with pytest.raises(error, match=match):
        pipe.process(point, metadata)


def test_bad_batch_input(model):
    pipe = make(model)
    with pytest.raises(ValueError, match="shape"):
        pipe.process_batch(np.zeros((3, 5)))
    with pytest.raises(TypeError, match="numeric"):
        pipe.process_batch(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="3 values for 2 events"):
        pipe.process_batch(np.zeros((2, 2)), {"entity_id": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="1 entries for 2 events"):
        pipe.process_batch(np.zeros((2, 2)), [{}])
    assert pipe.process_batch(np.zeros((0, 2))) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"suppression_window": -1.0}, "suppression_window"),
        ({"tiers": {"warning": 2.0}}, "tiers"),
        ({"tiers": {}}, "tiers"),
        ({"store": 3}, "store"),
        ({"threshold_bounds": (0.9, 0.1)}, "threshold_bounds"),
        ({"feature_names": ["only-one"]}, "feature_names"),
        ({"min_feedback": 0}, "min_feedback"),
    ],
)
def test_bad_parameters(model, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AnomalyPipeline(model, **kwargs)


def test_unfitted_detector():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AnomalyPipeline(IsolationForest())


def test_helpers():
    assert event_key("a", 1.5) == "1:a@1.5"
    assert event_key("a", 1.5, event_id=9) == "1:a#9"
    assert event_key("a", 1.5, features=[1.0, -0.0]) == event_key("a", 1.5, features=[1.0, 0.0])
    assert event_key("a", 1.5, features=[1.0, 2.0]) != event_key("a", 1.5, features=[1.0, 2.5])
    assert parse_timestamp("1970-01-01T00:01:00", None) == 60.0
    assert parse_timestamp("12.5", None) == 12.5
    assert parse_timestamp(None, 3.0) == 3.0
    with pytest.raises(TypeError):
        parse_timestamp(True, None)


def test_memory_store_rejects_duplicates():
    store = MemoryAlertStore(2)
    alert = {
        "alert_id": "x",
        "event_key": "k",
        "timestamp": 0.0,
        "entity_id": "a",
        "tier": "warning",
        "score": 0.8,
        "threshold": 0.7,
        "features": {},
        "detector": "d",
        "model_version": None,
        "context": {},
    }
    store.add_alerts([alert])
    with pytest.raises(ValueError, match="duplicate"):
        store.add_alerts([alert])
    with pytest.raises(ValueError, match="max_alerts"):
        MemoryAlertStore(0)


def test_drift_events_on_shifted_feature(model, tmp_path, rng):
    train = np.random.RandomState(0).normal(size=(1000, 2))
    X = rng.normal(size=(4000, 2))
    X[2000:, 1] += 3.0
    meta = {"entity_id": "a", "timestamp": np.arange(4000.0)}
    seen = []
    pipe = make(model, store=tmp_path / "a.db", reference=train, on_drift=seen.extend)
    pipe.process_batch(X, meta)
    kinds = [(e.kind, e.feature) for e in seen]
    assert kinds == [("drift", "x1"), ("out_of_range", "x1")]
    assert 2000 <= seen[0].timestamp < 2100
    stored = pipe.drift_events()
    assert [(d["kind"], d["feature"], d["timestamp"]) for d in stored] == [
        (e.kind, e.feature, e.timestamp) for e in seen
    ]
    assert {r["feature"]: r["n_drifts"] for r in pipe.feature_report()} == {"x0": 0, "x1": 1}
    pipe.close()
    # a replay of the same stream after a restart stores no drift event twice
    again = make(model, store=tmp_path / "a.db", reference=train)
    again.process_batch(X, meta)
    assert again.drift_events() == stored
    again.close()


def test_missing_features_are_scored_when_the_detector_takes_them(model):
    pipe = make(model, threshold=0.0, tiers=None)  # an IsolationForest: allow_nan; every score alerts
    alone = model.anomaly_score(np.array([[EMERG[0], np.nan]]))[0]
    alert = pipe.process([EMERG[0], math.nan], {"entity_id": "a", "timestamp": 0.0})
    assert alert is not None and alert.score == pytest.approx(alone)
    pipe.process_batch(np.array([[np.inf, 0.0], [np.nan, np.nan]]), {"entity_id": "b", "timestamp": 1.0})
    assert pipe.stats["unscorable"] == 1 and pipe.stats["unscorable_missing"] == 1  # inf only
    assert pipe.stats["events"] == 3


def test_score_missing_true_needs_a_detector_that_takes_nan(model):
    from anomaly_fast import LocalOutlierFactor

    lof = LocalOutlierFactor().fit(np.random.RandomState(0).normal(size=(50, 2)))
    with pytest.raises(ValueError, match="missing values"):
        AnomalyPipeline(lof, threshold=0.5, score_missing=True)
    assert AnomalyPipeline(lof, threshold=0.5)._score_nan is False


def test_monitoring_off(model):
    pipe = make(model, monitor_features=False, score_missing=False)
    pipe.process_batch(np.full((10, 2), np.nan))
    assert pipe.feature_report() == [] and pipe.stats["unscorable"] == 10


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.sampled_from([NORMAL, WARN, CRIT, EMERG])),
        min_size=1,
        max_size=40,
    ),
    st.data(),
)
def test_restart_and_redelivery_equals_uninterrupted_run(model, tmp_path_factory, steps, data):
    """Crash after any prefix, restart on the same store, re-feed everything:
    the store ends with exactly the alerts of one uninterrupted run (event
    times non-decreasing, ties allowed, distinct event ids)."""
    t, events = 0.0, []
    for i, (entity, dt, point) in enumerate(steps):
        t += 20.0 * dt
        events.append((point, {"entity_id": entity, "timestamp": t, "event_id": i}))
    crash = data.draw(st.integers(0, len(events)))
    folder = tmp_path_factory.mktemp("restart")
    reference = make(model, store=SQLiteAlertStore(folder / "ref.db", "NORMAL"), monitor_features=False)
    for point, md in events:
        reference.process(point, md)
    crashed = make(model, store=SQLiteAlertStore(folder / "crash.db", "NORMAL"), monitor_features=False)
    for point, md in events[:crash]:
        crashed.process(point, md)
    crashed.close()
    restarted = make(model, store=SQLiteAlertStore(folder / "crash.db", "NORMAL"), monitor_features=False)
    for point, md in events:
        restarted.process(point, md)
    assert restarted.alerts() == reference.alerts()
    reference.close()
    restarted.close()


def test_ensemble_detector(rng):
    from anomaly_fast import AnomalyEnsemble

    X = rng.normal(size=(300, 2))
    ens = AnomalyEnsemble(random_state=0).fit(X)
    pipe = AnomalyPipeline(ens, threshold=0.9)
    alert = pipe.process([9.0, 9.0], {"entity_id": "a", "timestamp": 0.0})
    assert alert.detector == "AnomalyEnsemble" and alert.score == pytest.approx(
        float(ens.anomaly_score([[9.0, 9.0]])[0])
    )
    assert pipe.process([0.0, 0.0], {"entity_id": "a", "timestamp": 1.0}) is None
