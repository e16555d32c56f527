"""Exact replay: re-feeding a stream after a crash stores exactly the
alerts of an uninterrupted run, with feedback moving the threshold and with
drift events (issue 10, item 4), and with adaptation (issue 18)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast import AnomalyPipeline, IsolationForest
from anomaly_fast.pipeline.alert_store import SQLiteAlertStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import _pipeline_stress as stress  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
NORMAL, WARN, CRIT, EMERG = [0.0, 0.0], [2.5, 2.5], [3.0, 3.0], [40.0, -40.0]


def history(pipe):
    """Threshold changes without their wall-clock time."""
    return [{k: v for k, v in h.items() if k != "timestamp"} for h in pipe.threshold_history()]


def test_an_event_is_judged_with_the_threshold_in_force_at_its_time(tmp_path):
    """The issue's example: e1 below 0.7, feedback lowers the threshold, e2
    alerts; a restart re-feeding e1 must not alert it at the new threshold."""
    db = tmp_path / "a.db"
    pipe = stress.replay_pipeline(db)
    pipe.target_precision = 0.5
    a = [pipe.process(EMERG, {"entity_id": f"t{i}", "timestamp": float(i)}) for i in range(2)]
    e1 = [2.3, 2.3]  # score 0.695: below 0.7
    assert pipe.process(e1, {"entity_id": "x", "timestamp": 10.0}) is None
    for alert in a:
        pipe.feedback(alert.alert_id, True)  # precision 1 > 0.5: the threshold comes down
    assert pipe.threshold < 0.7 and history(pipe)[-1]["event_time"] == 10.0
    e2 = pipe.process(e1, {"entity_id": "y", "timestamp": 11.0})
    assert e2 is not None and e2.threshold == pipe.threshold
    stored = pipe.alerts()
    del pipe  # killed: no close
    again = stress.replay_pipeline(db)
    assert again.process(e1, {"entity_id": "x", "timestamp": 10.0}) is None  # judged at 0.7, its time's threshold
    assert again.process(e1, {"entity_id": "y", "timestamp": 11.0}) is None  # duplicate
    assert again.alerts() == stored


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"),
            st.integers(0, 3),
            st.sampled_from([NORMAL, WARN, CRIT, EMERG]),
            st.booleans(),
            st.one_of(st.none(), st.tuples(st.integers(0, 50), st.booleans())),
        ),
        min_size=1,
        max_size=40,
    ),
    st.data(),
)
def test_restart_after_any_prefix_with_feedback_stores_the_uninterrupted_runs_alerts(tmp_path_factory, steps, data):
    """Random streams (event times non-decreasing, ties allowed, with and
    without event ids), random feedback, a crash after any step: restart on
    the same store, re-feed every event and give the feedback not yet
    given -> the same alerts and the same threshold history."""
    t, events = 0.0, []
    for i, (entity, dt, point, with_id, fb) in enumerate(steps):
        t += 20.0 * dt
        md = {"entity_id": entity, "timestamp": t}
        if with_id:
            md["event_id"] = i
        events.append((point, md, fb))
    crash = data.draw(st.integers(0, len(events)))
    batch_prefix = data.draw(st.booleans())
    folder = tmp_path_factory.mktemp("replay")
    reference = stress.replay_pipeline(SQLiteAlertStore(folder / "ref.db", "NORMAL"))
    actions = stress.play(reference, events)
    crashed = stress.replay_pipeline(SQLiteAlertStore(folder / "crash.db", "NORMAL"))
    stress.play(crashed, events[:crash], actions=[a for a in actions if a[0] < crash])
    del crashed  # killed: nothing closed, nothing flushed beyond the commits
    restarted = stress.replay_pipeline(SQLiteAlertStore(folder / "crash.db", "NORMAL"))
    given = len(restarted.store.feedback())
    if batch_prefix and crash:  # the upstream redelivers the prefix in one batch
        restarted.process_batch(np.array([p for p, _, _ in events[:crash]]), [md for _, md, _ in events[:crash]])
        rest = [(i, a, label) for i, a, label in actions[given:]]
        stress.play(
            restarted,
            [(p, md, None) if i < crash else (p, md, fb) for i, (p, md, fb) in enumerate(events)],
            actions=rest,
        )
    else:
        stress.play(restarted, events, actions=actions, skip=given)
    assert restarted.alerts() == reference.alerts()
    assert history(restarted) == history(reference)
    assert restarted.store.latest_labels(100) == reference.store.latest_labels(100)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_mid_stream_with_feedback_then_refeed_stores_exactly_the_alerts(tmp_path, seed):
    steps = stress.scenario(seed)
    reference = stress.replay_pipeline(SQLiteAlertStore(tmp_path / "ref.db", "NORMAL"))
    actions = stress.play(reference, steps)
    expected = reference.alerts()
    assert len(expected) > 30 and len(actions) > 10 and len({h["new"] for h in history(reference)}) > 2
    db = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_pipeline_stress.py"), "replay", str(db), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    emitted = []
    for line in proc.stdout:  # blocks on the child's output, no sleeps
        emitted.append(line.strip())
        if len(emitted) == len(expected) // 2:
            break
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()
    restarted = stress.replay_pipeline(SQLiteAlertStore(db, "NORMAL"))
    n_before = restarted.store.count_alerts()
    assert len(expected) // 2 <= n_before < len(expected)
    stress.play(restarted, steps, actions=actions, skip=len(restarted.store.feedback()))
    assert restarted.alerts() == expected
    assert history(restarted) == history(reference)


def test_drift_events_are_recomputed_exactly_after_a_restart(tmp_path, rng):
    model = IsolationForest(random_state=0).fit(np.random.RandomState(0).normal(size=(1000, 2)))
    train = np.random.RandomState(0).normal(size=(1000, 2))
    X = rng.normal(size=(3000, 2))
    X[1500:, 1] += 3.0
    meta = {"entity_id": "a", "timestamp": np.arange(3000.0)}

    def pipe(db):
        return AnomalyPipeline(model, threshold=0.99, store=SQLiteAlertStore(db, "NORMAL"), reference=train)

    reference = pipe(tmp_path / "ref.db")
    for s in range(0, 3000, 100):
        reference.process_batch(X[s : s + 100], {k: v[s : s + 100] if k == "timestamp" else v for k, v in meta.items()})
    assert len(reference.drift_events()) >= 2
    for crash in (700, 1600, 2500):
        crashed = pipe(tmp_path / f"c{crash}.db")
        crashed.process_batch(X[:crash], {k: v[:crash] if k == "timestamp" else v for k, v in meta.items()})
        del crashed
        restarted = pipe(tmp_path / f"c{crash}.db")
        for s in range(0, 3000, 250):
            restarted.process_batch(
                X[s : s + 250], {k: v[s : s + 250] if k == "timestamp" else v for k, v in meta.items()}
            )
        assert restarted.drift_events() == reference.drift_events()
        assert restarted.feature_report() == reference.feature_report()


def without_wall_clock(records):
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in records]


def test_kill_9_mid_stream_with_adaptation_then_refeed_gives_the_same_alerts_versions_and_changes(tmp_path):
    X, meta, _ = stress.adapting_stream()
    reference = stress.adapting_pipeline(SQLiteAlertStore(tmp_path / "ref.db", "NORMAL"))
    for s in range(0, X.shape[0], 50):
        reference.process_batch(X[s : s + 50], {k: v[s : s + 50] for k, v in meta.items()})
    expected = reference.alerts()
    assert "promotion" in [c["kind"] for c in reference.model_changes()]
    promoted = [c["version"] for c in reference.model_changes() if c["kind"] == "promotion"]
    db = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_pipeline_stress.py"), "adapt", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    for line in proc.stdout:  # killed after the promotion, mid-stream
        if line.split()[1] in promoted:
            break
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()
    restarted = stress.adapting_pipeline(SQLiteAlertStore(db, "NORMAL"))
    assert 0 < restarted.store.count_alerts() < len(expected)
    for s in range(0, X.shape[0], 173):  # re-fed from the start, batched differently
        restarted.process_batch(X[s : s + 173], {k: v[s : s + 173] for k, v in meta.items()})
    assert restarted.alerts() == expected
    assert without_wall_clock(restarted.model_changes()) == without_wall_clock(reference.model_changes())
    assert restarted.model_version == reference.model_version == promoted[-1]
