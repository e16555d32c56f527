"""Where an :class:`~anomaly_fast.pipeline.AnomalyPipeline` keeps alerts,
feedback, drift events and threshold history: SQLite (durable) or a bounded
in-memory buffer."""

import json
import sqlite3
from bisect import bisect_right
from collections import OrderedDict, deque

__all__ = ["MemoryAlertStore", "SQLiteAlertStore", "open_store"]

_ALERT_COLUMNS = (
    "alert_id", "event_key", "timestamp", "entity_id", "score", "tier", "threshold",
    "features", "detector", "model_version", "context",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    event_key TEXT NOT NULL UNIQUE,
    timestamp REAL NOT NULL,
    entity_id TEXT NOT NULL,
    score REAL NOT NULL,
    tier TEXT NOT NULL,
    threshold REAL NOT NULL,
    features TEXT NOT NULL,
    detector TEXT NOT NULL,
    model_version TEXT,
    context TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_entity_time ON alerts (entity_id, timestamp, seq);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (timestamp);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    is_true_positive INTEGER NOT NULL,
    timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drift_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    feature TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (timestamp, feature, kind)
);
CREATE TABLE IF NOT EXISTS threshold_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    old REAL,
    new REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


def _alert_row(alert):
    d = alert if isinstance(alert, dict) else alert.to_dict()
    return (
        d["alert_id"], d["event_key"], d["timestamp"], d["entity_id"], d["score"], d["tier"],
        d["threshold"], json.dumps(d["features"], default=str), d["detector"], d["model_version"],
        json.dumps(d["context"], sort_keys=True, default=str),
    )


def _row_alert(row):
    d = dict(zip(_ALERT_COLUMNS, row))
    d["features"] = json.loads(d["features"])
    d["context"] = json.loads(d["context"])
    return d


class SQLiteAlertStore:
    """Alerts, feedback, drift events and threshold history in one SQLite
    file (WAL journal, ``synchronous=FULL``: a committed alert survives a
    crash of the process or of the machine).  Alerts are unique per event
    key and drift events per (timestamp, feature, kind), so replaying a
    stream stores nothing twice.

    Every write method commits before it returns, except inside
    :meth:`transaction`, which commits once at its end (or rolls back).
    ``synchronous="NORMAL"`` skips the fsync per commit: committed data
    still survives a crash of the process, not a power loss.
    """

    durable = True

    def __init__(self, path, synchronous="FULL"):
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.executescript(_SCHEMA)
        self._depth = 0

    def close(self):
        self._conn.close()

    # -- transactions -----------------------------------------------------------
    def transaction(self):
        return _Transaction(self)

    def _write(self, sql, rows):
        if self._depth:
            self._conn.executemany(sql, rows)
        else:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, rows)

    # -- alerts -------------------------------------------------------------------
    def add_alerts(self, alerts):
        self._write(
            f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ALERT_COLUMNS))})",
            [_alert_row(a) for a in alerts],
        )

    def existing_event_keys(self, keys):
        keys = list(keys)
        found = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._conn.execute(
                f"SELECT event_key FROM alerts WHERE event_key IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    def latest_alert(self, entity_id, at_or_before=None):
        """(timestamp, tier, alert_id) of the entity's latest alert (at or
        before a time), or None."""
        if at_or_before is None:
            row = self._conn.execute(
                "SELECT timestamp, tier, alert_id FROM alerts WHERE entity_id = ? "
                "ORDER BY timestamp DESC, seq DESC LIMIT 1",
                (entity_id,),
            ).fetchone()
        else:
            row = self._conn.execute(
                "SELECT timestamp, tier, alert_id FROM alerts WHERE entity_id = ? AND timestamp <= ? "
                "ORDER BY timestamp DESC, seq DESC LIMIT 1",
                (entity_id, at_or_before),
            ).fetchone()
        return None if row is None else tuple(row)

    def latest_alerts_since(self, since):
        """{entity_id: (timestamp, tier, alert_id)} of the latest alert of
        every entity alerted at or after ``since`` (ordered by that time)."""
        out = {}
        rows = self._conn.execute(
            "SELECT entity_id, timestamp, tier, alert_id FROM alerts WHERE timestamp >= ? "
            "ORDER BY timestamp, seq",
            (since,),
        )
        for entity, ts, tier, alert_id in rows:
            out.pop(entity, None)
            out[entity] = (ts, tier, alert_id)
        return out

    def max_alert_time(self):
        return self._conn.execute("SELECT MAX(timestamp) FROM alerts").fetchone()[0]

    def get_alert(self, alert_id):
        row = self._conn.execute(
            f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE alert_id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else _row_alert(row)

    def alerts(self, limit=None):
        """All alerts (dicts) in insertion order (the last ``limit``)."""
        sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_alert(r) for r in self._conn.execute(sql).fetchall()[::-1]]

    def count_alerts(self):
        return self._conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]

    # -- feedback, drift, threshold ------------------------------------------------------
    def add_feedback(self, alert_id, is_true_positive, timestamp):
        self._write(
            "INSERT INTO feedback (alert_id, is_true_positive, timestamp) VALUES (?, ?, ?)",
            [(alert_id, int(bool(is_true_positive)), timestamp)],
        )

    def feedback(self, limit=None):
        sql = "SELECT alert_id, is_true_positive, timestamp FROM feedback ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._conn.execute(sql).fetchall()[::-1]
        return [{"alert_id": a, "is_true_positive": bool(t), "timestamp": ts} for a, t, ts in rows]

    def add_drift_events(self, events):
        self._write(
            "INSERT OR IGNORE INTO drift_events (timestamp, feature, kind, value, detail) VALUES (?, ?, ?, ?, ?)",
            [(e.timestamp, e.feature, e.kind, e.value, e.detail) for e in events],
        )

    def drift_events(self, limit=None):
        sql = "SELECT timestamp, feature, kind, value, detail FROM drift_events ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._conn.execute(sql).fetchall()[::-1]
        return [dict(zip(("timestamp", "feature", "kind", "value", "detail"), r)) for r in rows]

    def add_threshold_change(self, change):
        self._write(
            "INSERT INTO threshold_history (timestamp, old, new, reason) VALUES (?, ?, ?, ?)",
            [(change["timestamp"], change["old"], change["new"], change["reason"])],
        )

    def threshold_history(self, limit=None):
        sql = "SELECT timestamp, old, new, reason FROM threshold_history ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._conn.execute(sql).fetchall()[::-1]
        return [dict(zip(("timestamp", "old", "new", "reason"), r)) for r in rows]


class _Transaction:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        if isinstance(self.store, SQLiteAlertStore):
            if self.store._depth == 0:
                self.store._conn.execute("BEGIN IMMEDIATE")
            self.store._depth += 1
        return self.store

    def __exit__(self, exc_type, exc, tb):
        if isinstance(self.store, SQLiteAlertStore):
            self.store._depth -= 1
            if self.store._depth == 0:
                self.store._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


class MemoryAlertStore:
    """The same interface as :class:`SQLiteAlertStore`, in memory, keeping
    only the last ``max_alerts`` alerts (and as many feedback labels, drift
    events and threshold changes).  Nothing survives a restart."""

    durable = False

    def __init__(self, max_alerts=10_000):
        if int(max_alerts) < 1:
            raise ValueError(f"max_alerts must be >= 1, got {max_alerts}")
        self.max_alerts = int(max_alerts)
        self._alerts = OrderedDict()  # alert_id -> dict, oldest first
        self._keys = {}  # event_key -> alert_id
        self._by_entity = {}  # entity -> [(timestamp, seq, alert_id)] sorted
        self._seq = 0
        self._feedback = deque(maxlen=self.max_alerts)
        self._drift = deque(maxlen=self.max_alerts)
        self._thresholds = deque(maxlen=self.max_alerts)

    def close(self):
        pass

    def transaction(self):
        return _Transaction(self)

    def add_alerts(self, alerts):
        for a in alerts:
            d = dict(a if isinstance(a, dict) else a.to_dict())
            if d["event_key"] in self._keys or d["alert_id"] in self._alerts:
                raise ValueError(f"duplicate alert for event {d['event_key']!r}")
            self._seq += 1
            d["_seq"] = self._seq
            self._alerts[d["alert_id"]] = d
            self._keys[d["event_key"]] = d["alert_id"]
            entries = self._by_entity.setdefault(d["entity_id"], [])
            item = (d["timestamp"], self._seq, d["alert_id"])
            entries.insert(bisect_right(entries, item), item)
            while len(self._alerts) > self.max_alerts:
                _, old = self._alerts.popitem(last=False)
                del self._keys[old["event_key"]]
                entries = self._by_entity[old["entity_id"]]
                entries.remove((old["timestamp"], old["_seq"], old["alert_id"]))
                if not entries:
                    del self._by_entity[old["entity_id"]]

    def existing_event_keys(self, keys):
        return {k for k in keys if k in self._keys}

    def latest_alert(self, entity_id, at_or_before=None):
        entries = self._by_entity.get(entity_id)
        if not entries:
            return None
        if at_or_before is None:
            i = len(entries)
        else:
            i = bisect_right(entries, (at_or_before, float("inf"), ""))
        if i == 0:
            return None
        ts, _, alert_id = entries[i - 1]
        return (ts, self._alerts[alert_id]["tier"], alert_id)

    def latest_alerts_since(self, since):
        return {}

    def max_alert_time(self):
        return None

    def get_alert(self, alert_id):
        d = self._alerts.get(alert_id)
        return None if d is None else {k: v for k, v in d.items() if k != "_seq"}

    def alerts(self, limit=None):
        out = [{k: v for k, v in d.items() if k != "_seq"} for d in self._alerts.values()]
        return out if limit is None else out[-int(limit):]

    def count_alerts(self):
        return len(self._alerts)

    def add_feedback(self, alert_id, is_true_positive, timestamp):
        self._feedback.append({"alert_id": alert_id, "is_true_positive": bool(is_true_positive), "timestamp": timestamp})

    def feedback(self, limit=None):
        out = list(self._feedback)
        return out if limit is None else out[-int(limit):]

    def add_drift_events(self, events):
        self._drift.extend(e.to_dict() for e in events)

    def drift_events(self, limit=None):
        out = list(self._drift)
        return out if limit is None else out[-int(limit):]

    def add_threshold_change(self, change):
        self._thresholds.append(dict(change))

    def threshold_history(self, limit=None):
        out = list(self._thresholds)
        return out if limit is None else out[-int(limit):]


def open_store(store, max_alerts=10_000):
    """``None`` -> :class:`MemoryAlertStore`; a path (str/Path) ->
    :class:`SQLiteAlertStore`; a store object is returned as is."""
    if store is None:
        return MemoryAlertStore(max_alerts)
    if isinstance(store, (MemoryAlertStore, SQLiteAlertStore)):
        return store
    if isinstance(store, (str, bytes)) or hasattr(store, "__fspath__"):
        return SQLiteAlertStore(store)
    raise TypeError(f"store must be None, a path to a SQLite file or an alert store, got {type(store).__name__}")
