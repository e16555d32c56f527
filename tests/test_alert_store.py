"""The alert stores: transactions, threads, migrations, retention,
pagination, caps, permissions, busy timeout."""

import json
import math
import os
import sqlite3
import stat
import threading
import uuid

import numpy as np
import pytest

from anomaly_fast import AnomalyPipeline, IsolationForest
from anomaly_fast.pipeline.alert_store import (
    SCHEMA_VERSION,
    AlertStore,
    MemoryAlertStore,
    SQLiteAlertStore,
    StoreBusyError,
    event_key,
)
from anomaly_fast.streaming.feature_monitor import DriftEvent


def alert(i, entity="a", ts=None):
    ts = float(i) if ts is None else ts
    return {
        "alert_id": f"id{i}",
        "event_key": event_key(entity, ts, event_id=i),
        "timestamp": ts,
        "entity_id": entity,
        "score": 0.8,
        "tier": "warning",
        "threshold": 0.7,
        "features": {"x0": 1.0},
        "detector": "d",
        "model_version": "m",
        "context": {"reason": "new"},
    }


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        yield request.getfixturevalue("new_postgres_store")()
        return
    s = MemoryAlertStore(100) if request.param == "memory" else SQLiteAlertStore(tmp_path / "a.db", "NORMAL")
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def durable_store(request, tmp_path):
    """Factory of durable stores of one backend: ``durable_store(name, **options)``
    opens (again, for the same name) the store called ``name``."""
    if request.param == "postgres":
        make = request.getfixturevalue("new_postgres_store")
        tag = uuid.uuid4().hex[:12]
        return lambda name, **kw: make(schema=f"t_{tag}_{name}", **kw)
    opened = []
    request.addfinalizer(lambda: [s.close() for s in opened])

    def open_sqlite(name, **kw):
        opened.append(SQLiteAlertStore(tmp_path / f"{name}.db", "NORMAL", **kw))
        return opened[-1]

    return open_sqlite


def test_every_store_implements_the_interface(store):
    assert isinstance(store, AlertStore) and store.schema_version == SCHEMA_VERSION
    assert store.shared == store.durable  # a durable store may be shared by processes


def test_a_transaction_keeps_all_or_nothing_and_the_original_error(store):
    store.add_alerts([alert(0)])
    with pytest.raises(KeyError, match="boom"):
        with store.transaction():
            store.add_alerts([alert(1), alert(2)])
            store.add_feedback("id1", True, 0.0)
            store.add_drift_events([DriftEvent(1.0, "x0", "drift", 0.5, "d")])
            store.add_threshold_change({"timestamp": 0.0, "event_time": 1.0, "old": 0.7, "new": 0.72, "reason": "r"})
            assert store.existing_event_keys([alert(1)["event_key"]]) == {alert(1)["event_key"]}  # reads see writes
            assert store.latest_alert("a") == (2.0, "warning", "id2")
            raise KeyError("boom")
    assert [a["alert_id"] for a in store.alerts()] == ["id0"]
    assert store.feedback() == [] and store.drift_events() == [] and store.threshold_history() == []
    assert store.latest_alert("a") == (0.0, "warning", "id0")
    assert store.existing_event_keys([alert(1)["event_key"]]) == set()
    with store.transaction():  # usable afterwards
        store.add_alerts([alert(1)])
    assert store.count_alerts() == 2


def test_a_duplicate_alert_rolls_back_its_whole_transaction(store):
    store.add_alerts([alert(0)])
    with pytest.raises((ValueError, sqlite3.IntegrityError)):
        store.add_alerts([alert(1), alert(0)])
    assert store.count_alerts() == 1


def test_memory_store_trims_at_commit_and_rollback_restores_nothing_evicted():
    store = MemoryAlertStore(3)
    store.add_alerts([alert(i) for i in range(3)])
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_alerts([alert(3), alert(4)])
            raise RuntimeError
    assert [a["alert_id"] for a in store.alerts()] == ["id0", "id1", "id2"]
    store.add_alerts([alert(3), alert(4)])
    assert [a["alert_id"] for a in store.alerts()] == ["id2", "id3", "id4"]
    assert store.latest_alert("a", 1.5) is None and store.existing_event_keys([alert(0)["event_key"]]) == set()


def test_drift_events_are_stored_once(store):
    e = DriftEvent(1.0, "x0", "drift", 0.5, "d")
    store.add_drift_events([e])
    store.add_drift_events([e, DriftEvent(2.0, "x0", "drift", 0.5, "d")])
    assert [d["timestamp"] for d in store.drift_events()] == [1.0, 2.0]


def test_latest_labels_are_the_last_distinct_alerts(store):
    for alert_id, label in [("a", True), ("b", False), ("a", False), ("c", True), ("c", True)]:
        store.add_feedback(alert_id, label, 0.0)
    assert store.latest_labels(2) == {"a": False, "c": True}
    assert list(store.latest_labels(10)) == ["b", "a", "c"]


def test_pages_walk_every_alert_once_in_order(store):
    store.add_alerts([alert(i) for i in range(25)])
    seen, cursor = [], 0
    while True:
        page, cursor = store.page_alerts(cursor, 10)
        if not page:
            break
        assert len(page) <= 10
        seen += [a["alert_id"] for a in page]
        if len(seen) == 10:
            store.add_alerts([alert(99)])  # added while paging: still seen
    assert seen == [f"id{i}" for i in range(25)] + ["id99"]


def test_threads_sharing_a_store_never_mix_transactions(store):
    errors = []

    def worker(k):
        try:
            for j in range(30):
                i = 1000 * k + j
                try:
                    with store.transaction():
                        store.add_alerts([alert(i, entity=f"t{k}")])
                        if j % 3 == 0:
                            raise LookupError  # this thread's rollback must not touch the others
                except LookupError:
                    pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = {int(a["alert_id"][2:]) for a in store.alerts()}
    committed = {1000 * k + j for k in range(8) for j in range(30) if j % 3}
    assert kept <= committed and len(kept) == min(len(committed), getattr(store, "max_alerts", len(committed)))


# -- SQLite specifics -------------------------------------------------------------------
def test_store_files_are_created_private(tmp_path):
    SQLiteAlertStore(tmp_path / "a.db").close()
    assert stat.S_IMODE(os.stat(tmp_path / "a.db").st_mode) == 0o600
    SQLiteAlertStore(tmp_path / "b.db", file_mode=0o640).close()
    assert stat.S_IMODE(os.stat(tmp_path / "b.db").st_mode) == 0o640


def test_a_corrupted_file_gets_a_value_error(tmp_path):
    (tmp_path / "bad.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="cannot open alert store .*bad.db"):
        SQLiteAlertStore(tmp_path / "bad.db")


def test_a_busy_store_waits_busy_timeout_then_says_so(tmp_path):
    store = SQLiteAlertStore(tmp_path / "a.db", busy_timeout=0.05)
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusyError, match="locked by another writer for more than 0.05 s"):
        store.add_alerts([alert(0)])
    other.execute("ROLLBACK")
    store.add_alerts([alert(0)])
    assert store.count_alerts() == 1
    other.close()
    store.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    SQLiteAlertStore(tmp_path / "a.db").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="schema version 99 is newer"):
        SQLiteAlertStore(tmp_path / "a.db")


def _write_v1_store(path):
    """A store as the previous release wrote it: no schema_migrations,
    threshold changes stamped with wall-clock time, keys "id:<event_id>" and
    "<entity>@<timestamp>"."""
    from anomaly_fast.pipeline.alert_store import _SCHEMA_V1

    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_V1)
    rows = [
        ("a1", "id:e7", 5.0, "h1", {"x0": 40.0, "x1": -40.0}),
        ("a2", "h2@10.0", 10.0, "h2", {"x0": 40.0, "x1": -40.0}),
    ]
    for alert_id, key, ts, entity, features in rows:
        conn.execute(
            "INSERT INTO alerts (alert_id, event_key, timestamp, entity_id, score, tier, threshold, features, detector, "
            "model_version, context) VALUES (?, ?, ?, ?, 0.77, 'emergency', 0.7, ?, 'IsolationForest', 'old', ?)",
            (alert_id, key, ts, entity, json.dumps(features), json.dumps({"reason": "new"})),
        )
    conn.execute(
        "INSERT INTO threshold_history (timestamp, old, new, reason) VALUES (1.7e9, NULL, 0.7, 'initial threshold')"
    )
    conn.execute("INSERT INTO threshold_history (timestamp, old, new, reason) VALUES (1.7e9, 0.7, 0.72, 'feedback')")
    conn.execute("INSERT INTO feedback (alert_id, is_true_positive, timestamp) VALUES ('a1', 0, 1.7e9)")
    conn.commit()
    conn.close()


def test_a_store_of_the_previous_schema_opens_migrated(tmp_path):
    path = tmp_path / "old.db"
    _write_v1_store(path)
    store = SQLiteAlertStore(path)
    assert [v for v, _, _ in store.schema_migrations()] == list(range(1, SCHEMA_VERSION + 1))
    assert [a["event_key"] for a in store.alerts()] == [
        event_key("h1", 5.0, event_id="e7"),
        event_key("h2", 10.0, features=[40.0, -40.0]),
    ]
    history = store.threshold_history()
    assert [h["event_time"] for h in history] == [-math.inf, -math.inf]  # in force for every event, as before
    store.close()
    # the old stream's events are recognised as duplicates after the upgrade
    model = IsolationForest(random_state=0).fit(np.random.RandomState(0).normal(size=(300, 2)))
    pipe = AnomalyPipeline(model, store=path, monitor_features=False)
    assert pipe.threshold == 0.72
    assert pipe.process([40.0, -40.0], {"entity_id": "h1", "event_id": "e7", "timestamp": 5.0}) is None
    assert pipe.process([40.0, -40.0], {"entity_id": "h2", "timestamp": 10.0}) is None
    assert pipe.stats["duplicates"] == 2
    pipe.close()
    assert [v for v, _, _ in SQLiteAlertStore(path).schema_migrations()] == list(range(1, SCHEMA_VERSION + 1))  # once


def test_retention_by_rows_and_by_age_in_batches(durable_store):
    store = durable_store("a", max_rows=10, retention_batch=3)
    store.add_alerts([alert(i) for i in range(25)])
    for i in range(25):
        store.add_feedback(f"id{i}", True, 0.0)
    assert store.apply_retention() == 15
    assert [a["alert_id"] for a in store.alerts()] == [f"id{i}" for i in range(15, 25)]
    assert len(store.feedback()) == 10  # feedback of deleted alerts goes with them
    aged = durable_store("b", max_age=100.0, retention_batch=7)
    aged.add_alerts([alert(i, ts=10.0 * i) for i in range(50)])  # latest at t=490
    aged.add_drift_events([DriftEvent(5.0, "x0", "drift", 0.1, "d"), DriftEvent(480.0, "x0", "drift", 0.1, "d")])
    assert aged.apply_retention() == 39
    assert min(a["timestamp"] for a in aged.alerts()) == 390.0
    assert [d["timestamp"] for d in aged.drift_events()] == [480.0]


def test_the_pipeline_applies_retention_as_alerts_come(durable_store, monkeypatch):
    from anomaly_fast.pipeline import orchestration as pipeline_module

    monkeypatch.setattr(pipeline_module, "_RETENTION_EVERY", 5)
    model = IsolationForest(random_state=0).fit(np.random.RandomState(0).normal(size=(300, 2)))
    store = durable_store("a", max_rows=8)
    pipe = AnomalyPipeline(model, store=store, suppression_window=0.0, monitor_features=False)
    for t in range(40):
        pipe.process([40.0, -40.0], {"entity_id": "a", "timestamp": float(t)})
    assert pipe.stats["alerts"] == 40 and store.count_alerts() <= 8 + 5
    assert [a["timestamp"] for a in pipe.iter_alerts(page_size=3)] == [a["timestamp"] for a in pipe.alerts()]


# -- PostgreSQL specifics ----------------------------------------------------------------
def test_open_store_takes_a_postgresql_url(postgres_url):
    from anomaly_fast.pipeline.alert_store import open_store
    from anomaly_fast.pipeline.alert_store_postgres import PostgresAlertStore

    store = open_store(postgres_url)
    assert isinstance(store, PostgresAlertStore) and store.schema == "anomaly_fast"
    store.close()


def test_postgres_schema_is_versioned_and_migrated_once(new_postgres_store):
    store = new_postgres_store()
    assert [v for v, _, _ in store.schema_migrations()] == [
        2,
        3,
        4,
    ] and SCHEMA_VERSION == 4  # a new schema starts at 2 (= SQLite v2)
    store.add_alerts([alert(0)])
    again = new_postgres_store(schema=store.schema)  # a second process opening it: nothing to migrate
    assert [v for v, _, _ in again.schema_migrations()] == [2, 3, 4]
    assert again.alerts() == store.alerts() and again.alerts()[0]["features"] == {"x0": 1.0}
    store._conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(ValueError, match="schema version 99 is newer"):
        new_postgres_store(schema=store.schema)


def test_postgres_stores_in_two_schemas_are_independent(new_postgres_store):
    a, b = new_postgres_store(), new_postgres_store()
    a.add_alerts([alert(0)])
    assert (a.count_alerts(), b.count_alerts()) == (1, 0)
    with a.transaction():  # each schema has its own lock: b writes while a holds its own
        b.add_alerts([alert(0)])
    assert b.count_alerts() == 1


def test_postgres_busy_store_waits_busy_timeout_then_says_so(new_postgres_store):
    store = new_postgres_store(busy_timeout=0.1)
    other = new_postgres_store(schema=store.schema)
    with other.transaction():  # holds the store's lock, like another process mid-write
        with pytest.raises(StoreBusyError, match="locked by another writer for more than 0.1 s"):
            store.add_alerts([alert(0)])
    store.add_alerts([alert(0)])  # usable once the other writer committed
    assert other.count_alerts() == 1


def test_postgres_values_round_trip_exactly(new_postgres_store):
    store = new_postgres_store()
    a = alert(0, ts=1.7e9 + 0.123456789)
    a.update(score=0.1 + 0.2, features={"x0": float("nan"), "x 1": -0.0, "é": 1e-300}, context={"k": [1, {"z": None}]})
    store.add_alerts([a])
    got = store.alerts()[0]
    assert got["timestamp"] == a["timestamp"] and got["score"] == 0.1 + 0.2
    assert math.isnan(got["features"]["x0"]) and got["features"]["é"] == 1e-300 and got["context"] == a["context"]
    store.add_threshold_change({"timestamp": 1.0, "event_time": -math.inf, "old": None, "new": 0.7, "reason": "r"})
    assert store.threshold_history()[0]["event_time"] == -math.inf and store.threshold_history()[0]["old"] is None
    assert store.event_time_watermark() == a["timestamp"]  # -inf stamps are not a watermark


def test_an_unreachable_postgres_server_gets_a_connection_error():
    pytest.importorskip("psycopg")
    from anomaly_fast.pipeline.alert_store_postgres import PostgresAlertStore

    with pytest.raises(ConnectionError, match="cannot connect to the PostgreSQL alert store"):
        PostgresAlertStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)


def test_postgres_store_refuses_bad_parameters(postgres_url):
    from anomaly_fast.pipeline.alert_store_postgres import PostgresAlertStore

    with pytest.raises(ValueError, match="schema must be a plain identifier"):
        PostgresAlertStore(postgres_url, schema='x"; DROP TABLE alerts; --')
    with pytest.raises(ValueError, match="busy_timeout"):
        PostgresAlertStore(postgres_url, busy_timeout=-1)


def test_model_changes_are_stored_once_in_order_and_read_back_exactly(store):
    change = dict(
        timestamp=1.5,
        event_index=10,
        event_time=100.0,
        kind="promotion",
        version="v2",
        previous="v1",
        reason="lasting change",
        detail={"rate": 0.01, "entities": ["a", "b"]},
    )
    store.add_model_changes([dict(change, event_index=3, kind="initial", version="v1", previous=None), change])
    store.add_model_changes([change])  # a replay: already stored
    got = store.model_changes()
    assert [(c["event_index"], c["kind"]) for c in got] == [(3, "initial"), (10, "promotion")]
    assert got[1] == change
    assert store.model_changes(limit=1) == [change]
