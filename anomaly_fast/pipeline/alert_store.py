"""Where an :class:`~anomaly_fast.pipeline.AnomalyPipeline` keeps alerts,
feedback, drift events and threshold history: SQLite (durable, shareable
between processes) or a bounded in-memory buffer.

Both implement :class:`AlertStore`, the interface a future PostgreSQL store
implements too.  Every write happens inside a transaction
(:meth:`AlertStore.transaction`; a lone write is its own transaction): on an
error nothing of the transaction is kept and the original error propagates,
never an error of the rollback.  A store is safe to share between threads:
a transaction belongs to the thread that opened it (a per-store re-entrant
lock is held from its start to its commit), so one thread can never commit
or roll back another's writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from contextlib import AbstractContextManager
from hashlib import blake2b
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ..streaming.feature_monitor import DriftEvent
    from .events import AnomalyAlert

__all__ = [
    "AlertStore",
    "MemoryAlertStore",
    "SCHEMA_VERSION",
    "SQLiteAlertStore",
    "StoreBusyError",
    "StoreConnectionError",
    "event_key",
    "open_store",
]

SCHEMA_VERSION = 4
MAX_ID_LENGTH = 1024  # characters of an entity id or event id
MAX_METADATA_BYTES = 65536  # bytes of an alert's JSON context (the caller's metadata)

_ALERT_COLUMNS = (
    "alert_id",
    "event_key",
    "timestamp",
    "entity_id",
    "score",
    "tier",
    "threshold",
    "features",
    "detector",
    "model_version",
    "context",
    "explanation",
)
_DRIFT_COLUMNS = ("timestamp", "feature", "kind", "value", "detail")
_THRESHOLD_COLUMNS = ("timestamp", "event_time", "old", "new", "reason")
_MODEL_CHANGE_COLUMNS = ("timestamp", "event_index", "event_time", "kind", "version", "previous", "reason", "detail")


class StoreBusyError(TimeoutError):
    """Another writer held the SQLite store for longer than ``busy_timeout``."""


class StoreConnectionError(ConnectionError):
    """The connection to a store's server broke and could not be restored
    within the store's reconnect budget (PostgreSQL).  ``committed`` is
    False when the interrupted transaction did not commit, None when that
    is unknown (the server could not be asked whether a ``COMMIT`` whose
    answer was lost took effect): feeding its events again is safe either
    way (event keys)."""

    committed = False


def event_key(
    entity_id: Hashable, timestamp: float, event_id: Hashable | None = None, features: npt.ArrayLike | None = None
) -> str:
    """Idempotency key of an event, unambiguous by construction.

    ``"<len(entity)>:<entity>#<event_id>"`` when an ``event_id`` is given
    (event ids are scoped by entity), else
    ``"<len(entity)>:<entity>@<timestamp>"`` with the exact timestamp (the
    shortest repr of the float) followed, when ``features`` are given, by
    ``"/"`` and a digest of the feature values: two different events of one
    entity at the same instant get different keys, a redelivered one the same.
    The entity's length prefix means no entity, event id or separator can
    make two different events share a key.
    """
    entity = str(entity_id)
    head = f"{len(entity)}:{entity}"
    if event_id is not None:
        return f"{head}#{event_id}"
    key = f"{head}@{float(timestamp)!r}"
    if features is not None:
        values = np.asarray(features, dtype=np.float64) + 0.0  # -0.0 -> 0.0
        key += "/" + blake2b(values.tobytes(), digest_size=8).hexdigest()
    return key


def _alert_dict(alert):
    """A stored copy of an alert (an AnomalyAlert or a dict): the caller
    may change its objects afterwards.  (``dataclasses.asdict`` costs ten
    times more: it walks every value.)"""
    d = dict(alert) if isinstance(alert, dict) else {name: getattr(alert, name) for name in _ALERT_COLUMNS}
    try:  # schema 3; copied and checked in one pass (dict.copy refuses anything but a dict)
        d["explanation"] = list(map(dict.copy, d.get("explanation") or ()))
    except TypeError:
        raise TypeError("alert explanation must be a list of dicts") from None
    for name in ("features", "context"):
        value = d.get(name)
        if isinstance(value, dict):
            flat = all(isinstance(v, (str, int, float, bool, type(None))) for v in value.values())
            d[name] = dict(value) if flat else copy.deepcopy(value)
    return d


class AlertStore(ABC):
    """The interface of an alert store (SQLite, memory; PostgreSQL later).

    Alerts are unique per ``event_key`` and ``alert_id``; drift events per
    ``(timestamp, feature, kind)``.  Threshold changes carry ``event_time``,
    the event-time watermark of the stream when the change was made: the
    change is in force for events *later* than it (see
    :class:`~anomaly_fast.pipeline.AnomalyPipeline`).  Writes happen in
    :meth:`transaction` blocks; reads inside a block see its writes.

    A store implementing a newer ``schema_version`` migrates older stores
    when it opens them (:class:`SQLiteAlertStore` records each applied
    migration in ``schema_migrations``).
    """

    schema_version = SCHEMA_VERSION
    durable = False
    #: True when other processes may write the store: a pipeline then reads
    #: the threshold changes they committed at the start of every
    #: ``process`` / ``process_batch`` call (one indexed query), so feedback
    #: given to any pipeline of the store moves every pipeline's threshold
    #: from its next call on.
    shared = False

    def __init__(self, max_id_length: int = MAX_ID_LENGTH, max_metadata_bytes: int = MAX_METADATA_BYTES) -> None:
        self.max_id_length = int(max_id_length)
        self.max_metadata_bytes = int(max_metadata_bytes)
        self._lock = threading.RLock()
        self._depth = 0

    # -- transactions ------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[AlertStore]:
        """Context manager: the writes in the block commit together at its
        end, or none of them on an error (which propagates unchanged).
        Blocks nest (the outermost commits); the thread holds the store
        for the duration."""
        return _Transaction(self)

    def run_transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` inside :meth:`transaction`; its result.

        A store whose connection can break (PostgreSQL) runs ``fn`` again,
        in a new transaction, when the connection broke before the commit
        took effect: ``fn`` must decide from what it reads in the store
        (then running it again decides the same, or correctly from what
        other writers committed meanwhile).  Inside another transaction it
        simply runs: the outermost one is the unit that is run again.
        """
        with self.transaction():
            return fn(*args)

    @abstractmethod
    def _begin(self): ...

    @abstractmethod
    def _commit(self): ...

    @abstractmethod
    def _rollback(self): ...

    def _check_alert(self, d):
        """Validate an alert dict (from :func:`_alert_dict`, which checked its
        explanation) before it is written; returns its context as JSON."""
        entity, key = d["entity_id"], d["event_key"]
        if not isinstance(entity, str) or not isinstance(key, str):
            raise TypeError("alert entity_id and event_key must be str")
        if len(entity) > self.max_id_length:
            raise ValueError(
                f"entity_id is {len(entity)} characters long; the store's limit is {self.max_id_length} (max_id_length)"
            )
        if len(key) > 2 * self.max_id_length + 64:  # entity + event id + separators and digest
            raise ValueError(
                f"event_id of entity {entity[:50]!r} is too long; the store's limit is "
                f"{self.max_id_length} characters (max_id_length)"
            )
        for name in ("score", "threshold", "timestamp"):
            if not isinstance(d[name], (int, float)) or not math.isfinite(d[name]):
                raise ValueError(f"alert {name} must be a finite number, got {d[name]!r}")
        context = json.dumps(d["context"], sort_keys=True, default=str)
        if len(context.encode()) > self.max_metadata_bytes:
            raise ValueError(
                f"alert metadata is {len(context.encode())} bytes as JSON; the store's limit is "
                f"{self.max_metadata_bytes} (max_metadata_bytes)"
            )
        return context

    # -- alerts ------------------------------------------------------------------
    @abstractmethod
    def add_alerts(self, alerts: Iterable[AnomalyAlert | Mapping[str, Any]]) -> None:
        """Store alerts (:class:`AnomalyAlert` or dicts); a duplicate event
        key or alert id is an error."""

    @abstractmethod
    def existing_event_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that already have an alert."""

    @abstractmethod
    def latest_alert(self, entity_id: str, at_or_before: float | None = None) -> tuple[float, str, str] | None:
        """(timestamp, tier, alert_id) of the entity's latest alert (at or
        before a time; the last stored among equal times), or None."""

    @abstractmethod
    def get_alert(self, alert_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def alerts(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` alerts (all when None), oldest first."""

    @abstractmethod
    def page_alerts(self, after: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """(alerts, cursor): up to ``limit`` alerts stored after the cursor
        ``after`` (0 = from the start), oldest first, and the cursor to pass
        next.  Stable while alerts are added."""

    @abstractmethod
    def count_alerts(self) -> int: ...

    # -- feedback, drift, thresholds ------------------------------------------------
    @abstractmethod
    def add_feedback(self, alert_id: str, is_true_positive: bool, timestamp: float) -> None: ...

    @abstractmethod
    def feedback(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def latest_labels(self, n: int) -> dict[str, bool]:
        """{alert_id: is_true_positive} of the last ``n`` distinct alerts
        labelled (each alert's latest label), oldest first."""

    @abstractmethod
    def add_drift_events(self, events: Iterable[DriftEvent]) -> None:
        """Store :class:`DriftEvent` objects; ones already stored are skipped."""

    @abstractmethod
    def drift_events(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def add_threshold_change(self, change: Mapping[str, Any]) -> None:
        """Store a dict with ``timestamp`` (wall clock), ``event_time``,
        ``old``, ``new``, ``reason``."""

    @abstractmethod
    def threshold_history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def threshold_changes(self, after_seq: int = 0) -> list[tuple[int, float, float]]:
        """[(seq, event_time, new)] of the changes stored after ``after_seq``."""

    @abstractmethod
    def event_time_watermark(self) -> float | None:
        """The latest event time the store knows of (alerts, drift events,
        threshold changes), or None when empty."""

    def apply_retention(self) -> int:
        """Delete alerts (and their feedback) and drift events beyond the
        store's retention, in batches; returns the number of rows deleted."""
        return 0

    # -- model changes (adaptation, see anomaly_fast.pipeline.adaptation) -------------
    def add_model_changes(self, changes: Iterable[Mapping[str, Any]]) -> None:
        """Store model-change dicts (``timestamp`` wall clock,
        ``event_index``, ``event_time``, ``kind``, ``version``,
        ``previous``, ``reason``, ``detail``); one already stored (same
        ``event_index`` and ``kind``) is skipped."""
        raise NotImplementedError(f"{type(self).__name__} does not record model changes (needed by adapt)")

    def model_changes(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` model changes (all when None), oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not record model changes (needed by adapt)")

    def close(self) -> None:  # noqa: B027 - optional: stores without resources keep this no-op
        pass


class _Transaction:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        store = self.store
        store._lock.acquire()
        try:
            if store._depth == 0:
                store._begin()
        except BaseException:
            store._lock.release()
            raise
        store._depth += 1
        return store

    def __exit__(self, exc_type, exc, tb):
        store = self.store
        try:
            store._depth -= 1
            if store._depth == 0:
                if exc_type is None:
                    try:
                        store._commit()
                    except BaseException as error:
                        _rollback_quietly(store, error)
                        raise
                else:
                    _rollback_quietly(store, exc)
        finally:
            store._lock.release()
        return False


def _rollback_quietly(store, error):
    """Roll back; a failing rollback is noted on the original error, never
    raised instead of it."""
    try:
        store._rollback()
    except Exception as rollback_error:  # noqa: BLE001 - the original error matters
        if error is not None and hasattr(error, "add_note"):
            error.add_note(f"(the rollback failed too: {rollback_error})")


# -- SQLite -------------------------------------------------------------------------
_SCHEMA_V1 = """
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


def _migrate_v2(conn):
    """Threshold changes get their event-time stamp (old changes: -inf, in
    force for every event, as they were); event keys move to the
    unambiguous encoding of :func:`event_key`."""
    conn.execute("ALTER TABLE threshold_history ADD COLUMN event_time REAL")
    conn.execute("UPDATE threshold_history SET event_time = ?", (-math.inf,))
    conn.execute("CREATE INDEX IF NOT EXISTS feedback_alert ON feedback (alert_id, seq)")
    rows = conn.execute("SELECT seq, event_key, entity_id, timestamp, features FROM alerts").fetchall()
    updates = []
    for seq, key, entity, ts, features in rows:
        if key == f"{entity}@{float(ts)!r}":
            new = event_key(entity, ts, features=list(json.loads(features).values()))
        elif key.startswith("id:"):
            new = event_key(entity, ts, event_id=key[3:])
        else:
            continue
        updates.append((new, seq))
    # via placeholders (no "@", so no old key has this form) so that no
    # intermediate state violates UNIQUE(event_key)
    conn.executemany("UPDATE alerts SET event_key = 'migrating-' || seq WHERE seq = ?", [(q,) for _, q in updates])
    conn.executemany("UPDATE alerts SET event_key = ? WHERE seq = ?", updates)


# Alerts written before schema 3 have an empty explanation.
_SCHEMA_V3 = "ALTER TABLE alerts ADD COLUMN explanation TEXT NOT NULL DEFAULT '[]'"

# version -> (description, function(conn) or SQL script)
_MODEL_CHANGES = """
CREATE TABLE IF NOT EXISTS model_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    event_index INTEGER NOT NULL,
    event_time REAL NOT NULL,
    kind TEXT NOT NULL,
    version TEXT,
    previous TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (event_index, kind)
)
"""

MIGRATIONS = {
    1: ("alerts, feedback, drift events, threshold history", _SCHEMA_V1),
    2: ("threshold changes stamped with event time; unambiguous event keys", _migrate_v2),
    3: ("alerts carry an explanation (top features with contributions and values)", _SCHEMA_V3),
    4: ("model changes of the adaptation policy (promotions)", _MODEL_CHANGES),
}


def _alert_row(d, context):
    return (
        d["alert_id"],
        d["event_key"],
        float(d["timestamp"]),
        d["entity_id"],
        float(d["score"]),
        d["tier"],
        float(d["threshold"]),
        json.dumps(d["features"], default=str),
        d["detector"],
        d["model_version"],
        context,
        json.dumps(d["explanation"], default=str),
    )


def _row_alert(row):
    d = dict(zip(_ALERT_COLUMNS, row))
    d["features"] = json.loads(d["features"])
    d["context"] = json.loads(d["context"])
    d["explanation"] = json.loads(d["explanation"])
    return d


class _SQLAlertQueries:
    """The queries that read and write a SQL alert store the same way on every
    backend (:class:`SQLiteAlertStore` and
    :class:`~anomaly_fast.pipeline.alert_store_postgres.PostgresAlertStore`):
    written once, with ``?`` placeholders; a backend whose driver takes
    another style converts them in its ``_read``/``_write``."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _commit(self):
        self._conn.execute("COMMIT")

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE alert_id = ?", (alert_id,))
        return _row_alert(rows[0]) if rows else None

    def alerts(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_alert(r) for r in self._read(sql)[::-1]]

    def page_alerts(self, after: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        rows = self._read(
            f"SELECT seq, {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
            (int(after), int(limit)),
        )
        return [_row_alert(r[1:]) for r in rows], (rows[-1][0] if rows else int(after))

    def count_alerts(self) -> int:
        return self._read("SELECT COUNT(*) FROM alerts")[0][0]

    def latest_labels(self, n: int) -> dict[str, bool]:
        rows = self._read(
            "SELECT alert_id, is_true_positive FROM feedback WHERE seq IN "
            "(SELECT MAX(seq) FROM feedback GROUP BY alert_id) ORDER BY seq DESC LIMIT ?",
            (int(n),),
        )
        return {a: bool(t) for a, t in rows[::-1]}

    def drift_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_DRIFT_COLUMNS)} FROM drift_events ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [dict(zip(_DRIFT_COLUMNS, r)) for r in self._read(sql)[::-1]]

    def add_threshold_change(self, change: Mapping[str, Any]) -> None:
        self._write(
            f"INSERT INTO threshold_history ({', '.join(_THRESHOLD_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
            [tuple(change[c] for c in _THRESHOLD_COLUMNS)],
        )

    def threshold_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_THRESHOLD_COLUMNS)} FROM threshold_history ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [dict(zip(_THRESHOLD_COLUMNS, r)) for r in self._read(sql)[::-1]]

    def threshold_changes(self, after_seq: int = 0) -> list[tuple[int, float, float]]:
        return [
            tuple(r)
            for r in self._read(
                "SELECT seq, event_time, new FROM threshold_history WHERE seq > ? ORDER BY seq", (int(after_seq),)
            )
        ]

    def model_changes(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_MODEL_CHANGE_COLUMNS)} FROM model_changes ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = [dict(zip(_MODEL_CHANGE_COLUMNS, r)) for r in self._read(sql)[::-1]]
        for d in out:
            d["detail"] = json.loads(d["detail"])
        return out


class SQLiteAlertStore(_SQLAlertQueries, AlertStore):
    """Alerts, feedback, drift events and threshold history in one SQLite
    file (WAL journal).

    Every write commits before it returns, except inside
    :meth:`transaction`, which commits once at its end (or rolls back).
    Transactions start with ``BEGIN IMMEDIATE`` (the write lock), so several
    processes writing one file serialise their decisions: what a pipeline
    reads inside its transaction (existing event keys, an entity's latest
    alert, threshold changes) is what every other writer has committed.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created, with mode ``file_mode``, when missing).
        A file written by an older version is migrated on open (each step
        recorded in ``schema_migrations``); one from a newer version is
        refused.
    synchronous : {"FULL", "NORMAL"}, default="FULL"
        ``FULL``: a committed alert survives a crash of the process or of
        the machine (one fsync per commit).  ``NORMAL`` survives a crash of
        the process, not a power loss.
    busy_timeout : float >= 0, default=5.0
        Seconds to wait for another writer's transaction to end before
        raising :class:`StoreBusyError`.
    file_mode : int, default=0o600
        Permissions of a newly created file (alerts hold feature values).
    max_age : float, default=None
        Retention: alerts and drift events older than this many seconds of
        event time before the store's latest alert are deleted by
        :meth:`apply_retention` (batches of ``retention_batch`` rows).
    max_rows : int, default=None
        Retention: keep at most this many alerts (oldest deleted first).
    retention_batch : int, default=1000
        Rows deleted per transaction by :meth:`apply_retention`.
    max_id_length, max_metadata_bytes : int
        Size caps: entity ids and event ids longer than ``max_id_length``
        characters, or alert metadata longer than ``max_metadata_bytes`` as
        JSON, are refused with a ``ValueError``.
    """

    durable = True
    shared = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        *,
        busy_timeout: float = 5.0,
        file_mode: int = 0o600,
        max_age: float | None = None,
        max_rows: int | None = None,
        retention_batch: int = 1000,
        max_id_length: int = MAX_ID_LENGTH,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
    ) -> None:
        super().__init__(max_id_length, max_metadata_bytes)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        if not (isinstance(busy_timeout, (int, float)) and busy_timeout >= 0):
            raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {busy_timeout!r}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"max_age must be > 0 seconds or None, got {max_age!r}")
        if max_rows is not None and int(max_rows) < 1:
            raise ValueError(f"max_rows must be >= 1 or None, got {max_rows!r}")
        if int(retention_batch) < 1:
            raise ValueError(f"retention_batch must be >= 1, got {retention_batch!r}")
        self.path = str(path)
        self.busy_timeout = float(busy_timeout)
        self.max_age = None if max_age is None else float(max_age)
        self.max_rows = None if max_rows is None else int(max_rows)
        self.retention_batch = int(retention_batch)
        if not os.path.exists(self.path):
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode))
            except FileExistsError:  # another process created it meanwhile
                pass
        self._conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            with self.transaction():
                self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise self._busy(exc) from None
            raise ValueError(f"cannot open alert store {self.path}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self):
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        current = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        if current is None:
            has_alerts = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alerts'").fetchone()
            if has_alerts:  # a store from before versioning: schema 1
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (1, ?, ?)", (MIGRATIONS[1][0] + " (found)", time.time())
                )
                current = 1
            else:
                current = 0
        if current > SCHEMA_VERSION:
            raise ValueError(
                f"schema version {current} is newer than this anomaly_fast's ({SCHEMA_VERSION}); upgrade it"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            description, step = MIGRATIONS[version]
            if isinstance(step, str):
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                step(conn)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, time.time()))

    def schema_migrations(self) -> list[tuple[int, str, float]]:
        """[(version, description, applied_at)] of the applied migrations."""
        with self._lock:
            return [tuple(r) for r in self._conn.execute("SELECT * FROM schema_migrations ORDER BY version")]

    # -- transactions -----------------------------------------------------------
    def _busy(self, exc):
        return StoreBusyError(
            f"alert store {self.path} stayed locked by another writer for more than {self.busy_timeout:g} s "
            f"(busy_timeout): {exc}"
        )

    def _begin(self):
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._busy(exc) from None
            raise

    def _rollback(self):
        if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
            self._conn.execute("ROLLBACK")

    def _write(self, sql, rows):
        with self.transaction():
            self._conn.executemany(sql, rows)

    def _read(self, sql, args=()):
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- alerts -------------------------------------------------------------------
    def add_alerts(self, alerts: Iterable[AnomalyAlert | Mapping[str, Any]]) -> None:
        rows = []
        for a in alerts:
            d = _alert_dict(a)
            rows.append(_alert_row(d, self._check_alert(d)))
        self._write(
            f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ALERT_COLUMNS))})", rows
        )

    def existing_event_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        found = set()
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = self._conn.execute(
                    f"SELECT event_key FROM alerts WHERE event_key IN ({', '.join('?' * len(chunk))})", chunk
                )
                found.update(r[0] for r in rows)
        return found

    def latest_alert(self, entity_id: str, at_or_before: float | None = None) -> tuple[float, str, str] | None:
        sql = "SELECT timestamp, tier, alert_id FROM alerts WHERE entity_id = ?"
        args = (entity_id,)
        if at_or_before is not None:
            sql += " AND timestamp <= ?"
            args = (entity_id, at_or_before)
        rows = self._read(sql + " ORDER BY timestamp DESC, seq DESC LIMIT 1", args)
        return tuple(rows[0]) if rows else None

    # -- feedback, drift, threshold ------------------------------------------------------
    def add_feedback(self, alert_id: str, is_true_positive: bool, timestamp: float) -> None:
        self._write(
            "INSERT INTO feedback (alert_id, is_true_positive, timestamp) VALUES (?, ?, ?)",
            [(alert_id, int(bool(is_true_positive)), timestamp)],
        )

    def feedback(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT alert_id, is_true_positive, timestamp FROM feedback ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._read(sql)[::-1]
        return [{"alert_id": a, "is_true_positive": bool(t), "timestamp": ts} for a, t, ts in rows]

    def add_drift_events(self, events: Iterable[DriftEvent]) -> None:
        self._write(
            f"INSERT OR IGNORE INTO drift_events ({', '.join(_DRIFT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
            [(e.timestamp, e.feature, e.kind, e.value, e.detail) for e in events],
        )

    def add_model_changes(self, changes: Iterable[Mapping[str, Any]]) -> None:
        self._write(
            f"INSERT OR IGNORE INTO model_changes ({', '.join(_MODEL_CHANGE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(json.dumps(c[k]) if k == "detail" else c[k] for k in _MODEL_CHANGE_COLUMNS) for c in changes],
        )

    def event_time_watermark(self) -> float | None:
        times = [
            self._read("SELECT MAX(timestamp) FROM alerts")[0][0],
            self._read("SELECT MAX(timestamp) FROM drift_events")[0][0],
            self._read("SELECT MAX(event_time) FROM threshold_history WHERE event_time > ?", (-math.inf,))[0][0],
            self._read("SELECT MAX(event_time) FROM model_changes WHERE event_time > ?", (-math.inf,))[0][0],
        ]
        times = [t for t in times if t is not None]
        return max(times) if times else None

    # -- retention ----------------------------------------------------------------
    def apply_retention(self) -> int:
        if self.max_age is None and self.max_rows is None:
            return 0
        deleted = 0
        while True:
            with self.transaction():
                seqs = []
                if self.max_age is not None:
                    latest = self._conn.execute("SELECT MAX(timestamp) FROM alerts").fetchone()[0]
                    if latest is not None:
                        seqs = [
                            r[0]
                            for r in self._conn.execute(
                                "SELECT seq FROM alerts WHERE timestamp < ? ORDER BY seq LIMIT ?",
                                (latest - self.max_age, self.retention_batch),
                            )
                        ]
                        self._conn.execute(
                            "DELETE FROM drift_events WHERE seq IN (SELECT seq FROM drift_events "
                            "WHERE timestamp < ? LIMIT ?)",
                            (latest - self.max_age, self.retention_batch),
                        )
                if not seqs and self.max_rows is not None:
                    excess = self._conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] - self.max_rows
                    if excess > 0:
                        seqs = [
                            r[0]
                            for r in self._conn.execute(
                                "SELECT seq FROM alerts ORDER BY seq LIMIT ?", (min(excess, self.retention_batch),)
                            )
                        ]
                if seqs:
                    marks = ", ".join("?" * len(seqs))
                    self._conn.execute(
                        f"DELETE FROM feedback WHERE alert_id IN (SELECT alert_id FROM alerts WHERE seq IN ({marks}))",
                        seqs,
                    )
                    self._conn.execute(f"DELETE FROM alerts WHERE seq IN ({marks})", seqs)
            deleted += len(seqs)
            if not seqs:
                return deleted


# -- memory -------------------------------------------------------------------------
class MemoryAlertStore(AlertStore):
    """The same interface as :class:`SQLiteAlertStore`, in memory, keeping
    only the last ``max_alerts`` alerts (and as many feedback labels, drift
    events and threshold changes).  Nothing survives a restart.

    Transactional like the SQLite store: writes apply at once (reads in the
    transaction see them) and are undone on a rollback; the buffer is
    trimmed to ``max_alerts`` at commit.
    """

    durable = False

    def __init__(
        self,
        max_alerts: int = 10_000,
        *,
        max_id_length: int = MAX_ID_LENGTH,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
    ) -> None:
        super().__init__(max_id_length, max_metadata_bytes)
        if int(max_alerts) < 1:
            raise ValueError(f"max_alerts must be >= 1, got {max_alerts}")
        self.max_alerts = int(max_alerts)
        self._alerts = OrderedDict()  # alert_id -> dict, oldest first
        self._keys = {}  # event_key -> alert_id
        self._by_entity = {}  # entity -> [(timestamp, seq, alert_id)] sorted
        self._seq = 0
        self._feedback = deque()
        self._drift = deque()
        self._drift_keys = set()
        self._thresholds = deque()  # (seq, change dict)
        self._model_changes = deque()
        self._model_change_keys = set()
        self._undo = []  # callables undoing the open transaction's writes

    def _begin(self):
        self._undo = []

    def _commit(self):
        self._undo = []
        while len(self._alerts) > self.max_alerts:
            _, old = self._alerts.popitem(last=False)
            self._unindex(old)
        for log in (self._feedback, self._drift, self._thresholds, self._model_changes):
            while len(log) > self.max_alerts:
                item = log.popleft()
                if log is self._drift:
                    self._drift_keys.discard(_drift_key(item))
                elif log is self._model_changes:
                    self._model_change_keys.discard((item["event_index"], item["kind"]))

    def _rollback(self):
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()

    def _unindex(self, d):
        del self._keys[d["event_key"]]
        entries = self._by_entity[d["entity_id"]]
        entries.remove((d["timestamp"], d["_seq"], d["alert_id"]))
        if not entries:
            del self._by_entity[d["entity_id"]]

    def add_alerts(self, alerts: Iterable[AnomalyAlert | Mapping[str, Any]]) -> None:
        with self.transaction():
            for a in alerts:
                d = _alert_dict(a)
                self._check_alert(d)
                if d["event_key"] in self._keys or d["alert_id"] in self._alerts:
                    raise ValueError(f"duplicate alert for event {d['event_key']!r}")
                self._seq += 1
                d["_seq"] = self._seq
                self._alerts[d["alert_id"]] = d
                self._keys[d["event_key"]] = d["alert_id"]
                entries = self._by_entity.setdefault(d["entity_id"], [])
                item = (d["timestamp"], self._seq, d["alert_id"])
                entries.insert(bisect_right(entries, item), item)
                self._undo.append(lambda d=d: (self._alerts.pop(d["alert_id"]), self._unindex(d)))

    def existing_event_keys(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return {k for k in keys if k in self._keys}

    def latest_alert(self, entity_id: str, at_or_before: float | None = None) -> tuple[float, str, str] | None:
        with self._lock:
            entries = self._by_entity.get(entity_id)
            if not entries:
                return None
            i = len(entries) if at_or_before is None else bisect_right(entries, (at_or_before, math.inf, ""))
            if i == 0:
                return None
            ts, _, alert_id = entries[i - 1]
            return (ts, self._alerts[alert_id]["tier"], alert_id)

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        with self._lock:
            d = self._alerts.get(alert_id)
            return None if d is None else _public(d)

    def alerts(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = [_public(d) for d in self._alerts.values()]
        return out if limit is None else out[len(out) - int(limit) :] if int(limit) else []

    def page_alerts(self, after: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            page = []
            for d in self._alerts.values():  # O(buffer): the buffer is bounded
                if d["_seq"] > after:
                    page.append(d)
                    if len(page) == limit:
                        break
        return [_public(d) for d in page], (page[-1]["_seq"] if page else int(after))

    def count_alerts(self) -> int:
        return len(self._alerts)

    def _append(self, log, item):
        with self.transaction():
            log.append(item)
            self._undo.append(log.pop)

    def add_feedback(self, alert_id: str, is_true_positive: bool, timestamp: float) -> None:
        self._append(
            self._feedback, {"alert_id": alert_id, "is_true_positive": bool(is_true_positive), "timestamp": timestamp}
        )

    def feedback(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = list(self._feedback)
        return out if limit is None else out[len(out) - int(limit) :] if int(limit) else []

    def latest_labels(self, n: int) -> dict[str, bool]:
        labels = OrderedDict()
        with self._lock:
            for fb in self._feedback:
                labels.pop(fb["alert_id"], None)
                labels[fb["alert_id"]] = fb["is_true_positive"]
        items = list(labels.items())
        return dict(items[-int(n) :]) if int(n) > 0 else {}

    def add_drift_events(self, events: Iterable[DriftEvent]) -> None:
        with self.transaction():
            for e in events:
                d = e.to_dict()
                key = _drift_key(d)
                if key not in self._drift_keys:
                    self._drift_keys.add(key)
                    self._append(self._drift, d)
                    self._undo.append(lambda key=key: self._drift_keys.discard(key))

    def drift_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = list(self._drift)
        return out if limit is None else out[len(out) - int(limit) :] if int(limit) else []

    def add_threshold_change(self, change: Mapping[str, Any]) -> None:
        with self.transaction():
            self._seq += 1
            self._append(self._thresholds, (self._seq, {c: change[c] for c in _THRESHOLD_COLUMNS}))

    def threshold_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = [dict(c) for _, c in self._thresholds]
        return out if limit is None else out[len(out) - int(limit) :] if int(limit) else []

    def threshold_changes(self, after_seq: int = 0) -> list[tuple[int, float, float]]:
        with self._lock:
            return [(seq, c["event_time"], c["new"]) for seq, c in self._thresholds if seq > after_seq]

    def add_model_changes(self, changes: Iterable[Mapping[str, Any]]) -> None:
        with self.transaction():
            for c in changes:
                key = (int(c["event_index"]), c["kind"])
                if key not in self._model_change_keys:
                    self._model_change_keys.add(key)
                    self._append(self._model_changes, {k: copy.deepcopy(c[k]) for k in _MODEL_CHANGE_COLUMNS})
                    self._undo.append(lambda key=key: self._model_change_keys.discard(key))

    def model_changes(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = [copy.deepcopy(c) for c in self._model_changes]
        return out if limit is None else out[len(out) - int(limit) :] if int(limit) else []

    def event_time_watermark(self) -> float | None:
        with self._lock:
            times = [d["timestamp"] for d in self._drift]
            times += [c["event_time"] for c in self._model_changes if c["event_time"] > -math.inf]
            times += [ts for entries in self._by_entity.values() for ts, _, _ in entries[-1:]]
            times += [c["event_time"] for _, c in self._thresholds if c["event_time"] > -math.inf]
        return max(times) if times else None


def _public(d):
    return {k: v for k, v in d.items() if k != "_seq"}


def _drift_key(d):
    return (d["timestamp"], d["feature"], d["kind"])


def open_store(store: AlertStore | str | os.PathLike[str] | None, max_alerts: int = 10_000) -> AlertStore:
    """``None`` -> :class:`MemoryAlertStore`; a ``postgresql://`` URL ->
    :class:`~anomaly_fast.pipeline.alert_store_postgres.PostgresAlertStore`; a path
    (str/Path) -> :class:`SQLiteAlertStore`; an :class:`AlertStore` is
    returned as is."""
    if store is None:
        return MemoryAlertStore(max_alerts)
    if isinstance(store, AlertStore):
        return store
    if isinstance(store, str) and store.split("://", 1)[0] in ("postgresql", "postgres"):
        from .alert_store_postgres import PostgresAlertStore

        return PostgresAlertStore(store)
    if isinstance(store, (str, bytes)) or hasattr(store, "__fspath__"):
        return SQLiteAlertStore(store)
    raise TypeError(
        f"store must be None, a postgresql:// URL, a path to a SQLite file or an alert store, got {type(store).__name__}"
    )
