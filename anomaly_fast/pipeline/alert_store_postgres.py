"""The alert store on PostgreSQL (psycopg 3): one store shared by pipeline
processes on any number of machines, which then behave as one pipeline.

Install with ``pip install "anomaly_fast[postgres]"``.  Select it with
``AnomalyPipeline(..., store="postgresql://user@host/db")`` or
``anomaly-fast stream --store postgresql://...``.

How N processes behave as one
-----------------------------
Every write transaction takes one transaction-level advisory lock of the
store (``pg_advisory_xact_lock``; one lock per store *schema*) right after
``BEGIN``, exactly where :class:`~anomaly_fast.alert_store.SQLiteAlertStore`
takes SQLite's write lock with ``BEGIN IMMEDIATE``.  So what a pipeline reads
inside its write transaction -- whether an event key is already alerted, the
entity's latest alert that may suppress it, the threshold changes and the
feedback labels -- is everything every other process has committed, and no
other process can commit between that read and this transaction's commit.
Only the calls that write take the lock: events below the threshold (the
vast majority) are scored in parallel without it.  The alerts' ``seq``
(the cursor of :meth:`~PostgresAlertStore.page_alerts`) is assigned under the
lock, so it follows commit order and paging never skips a row committed
late.

A lost connection
-----------------
When the server restarts or the connection drops (a connection-level
error: the connection is broken afterwards; data errors and lock timeouts
are not retried), the store reconnects with exponential backoff (0.05 s
doubling to 2 s) for up to ``reconnect_timeout`` seconds, then:

* a read runs again;
* a transaction (:meth:`~PostgresAlertStore.run_transaction`, which the
  pipeline uses for every decision) runs again from its start when it did
  not commit -- the server rolled it back with the dead connection, and its
  advisory lock went with it;
* a ``COMMIT`` whose answer was lost is resolved, not guessed: every write
  transaction notes its transaction id right after ``BEGIN`` (in the same
  round trip), and the store asks the server ``txid_status`` of it once
  reconnected -- committed means done, aborted means run it again.

So a stream processed across restarts stores and returns each alert
exactly once.  When the budget runs out, the call raises
:class:`~anomaly_fast.alert_store.StoreConnectionError`; the pipeline keeps
nothing of the failed call, and re-feeding its events is safe (event keys).
The first connection is not retried: a wrong URL or a server that is not
there fails at once with ``ConnectionError``.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .alert_store import (
    _ALERT_COLUMNS,
    _DRIFT_COLUMNS,
    _MODEL_CHANGE_COLUMNS,
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    SCHEMA_VERSION,
    AlertStore,
    StoreBusyError,
    StoreConnectionError,
    _alert_dict,
    _alert_row,
    _SQLAlertQueries,
)

if TYPE_CHECKING:
    from ..streaming.feature_monitor import DriftEvent
    from .events import AnomalyAlert

__all__ = ["PostgresAlertStore", "is_postgres_url"]

_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS alerts (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,
    event_key TEXT NOT NULL UNIQUE,
    timestamp DOUBLE PRECISION NOT NULL,
    entity_id TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    tier TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    features TEXT NOT NULL,
    detector TEXT NOT NULL,
    model_version TEXT,
    context TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_entity_time ON alerts (entity_id, timestamp, seq);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (timestamp);
CREATE TABLE IF NOT EXISTS feedback (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL,
    is_true_positive BOOLEAN NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_alert ON feedback (alert_id, seq);
CREATE TABLE IF NOT EXISTS drift_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp DOUBLE PRECISION NOT NULL,
    feature TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (timestamp, feature, kind)
);
CREATE TABLE IF NOT EXISTS threshold_history (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp DOUBLE PRECISION NOT NULL,
    event_time DOUBLE PRECISION NOT NULL,
    old DOUBLE PRECISION,
    new DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL
)
"""

# version -> (description, SQL script).  A PostgreSQL store starts at the
# schema that SQLite stores reach with their version 2, so one version
# number means one logical schema on both backends.
_MODEL_CHANGES = """
CREATE TABLE IF NOT EXISTS model_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp DOUBLE PRECISION NOT NULL,
    event_index BIGINT NOT NULL,
    event_time DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    version TEXT,
    previous TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (event_index, kind)
)
"""

MIGRATIONS = {
    2: (
        "alerts, feedback, drift events, threshold history stamped with event time; unambiguous event keys",
        _SCHEMA_V2,
    ),
    3: (
        "alerts carry an explanation (top features with contributions and values)",
        "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS explanation TEXT NOT NULL DEFAULT '[]'",
    ),
    4: ("model changes of the adaptation policy (promotions)", _MODEL_CHANGES),
}
_FIRST_VERSION = min(MIGRATIONS)


def is_postgres_url(store: object) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` connection URL."""
    return isinstance(store, str) and store.split("://", 1)[0] in ("postgresql", "postgres")


def _split_schema(url):
    """(URL without its ``schema`` query parameter, that parameter or None)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if not schemas:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[-1]


def _import_psycopg():
    try:
        import psycopg
    except ImportError:
        raise ImportError('the PostgreSQL alert store needs psycopg 3: pip install "anomaly_fast[postgres]"') from None
    return psycopg


class PostgresAlertStore(_SQLAlertQueries, AlertStore):
    """Alerts, feedback, drift events and threshold history in PostgreSQL.

    The interface and the semantics of
    :class:`~anomaly_fast.alert_store.SQLiteAlertStore` (transactions,
    idempotency by event key, suppression read inside the write transaction,
    event-time stamped threshold changes, retention, size caps), shared by
    any number of processes on any machines: each write transaction holds
    the store's advisory lock (see the module documentation), so N pipelines
    sharing one store decide as one pipeline would.

    Parameters
    ----------
    url : str
        A libpq connection URL, e.g.
        ``"postgresql://alerts@db.example/alerts"`` (password from
        ``~/.pgpass`` or ``PGPASSWORD``, as for ``psql``).  A ``schema``
        query parameter (``...?schema=fraud``) sets ``schema``.
    schema : str, default=None
        The PostgreSQL schema holding the tables (created when missing):
        the URL's ``schema`` parameter, else ``"anomaly_fast"``.
        Stores in different schemas of one database are independent.  A
        schema written by an older version is migrated on open (each step
        recorded in ``schema_migrations``); one from a newer version is
        refused.
    busy_timeout : float >= 0, default=5.0
        Seconds to wait for another writer's transaction to end before
        raising :class:`~anomaly_fast.alert_store.StoreBusyError`.
    max_age, max_rows, retention_batch, max_id_length, max_metadata_bytes
        As for :class:`~anomaly_fast.alert_store.SQLiteAlertStore`.
    connect_timeout : float, default=10.0
        Seconds to wait for the server when connecting.
    reconnect_timeout : float >= 0, default=30.0
        Seconds to keep reconnecting, with backoff, after the connection
        broke (server restart, network drop), before raising
        :class:`~anomaly_fast.alert_store.StoreConnectionError`; 0 raises
        at once.  See "A lost connection" in the module documentation.

    Notes
    -----
    Durability is the server's: with PostgreSQL's defaults
    (``synchronous_commit = on``, ``fsync = on``) a committed alert survives
    a crash of the pipeline, of the server and of its machine.
    One connection per store object; a store is safe to share between the
    threads of a process (a transaction belongs to the thread that opened
    it).  Open one store per process (a connection does not survive
    ``fork``).
    """

    durable = True
    shared = True

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        busy_timeout: float = 5.0,
        max_age: float | None = None,
        max_rows: int | None = None,
        retention_batch: int = 1000,
        max_id_length: int = MAX_ID_LENGTH,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 30.0,
    ) -> None:
        super().__init__(max_id_length, max_metadata_bytes)
        psycopg = _import_psycopg()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        url, url_schema = _split_schema(url)
        if schema is not None and url_schema is not None and schema != url_schema:
            raise ValueError(f"schema {schema!r} differs from the URL's schema parameter {url_schema!r}")
        schema = schema or url_schema or "anomaly_fast"
        if not (isinstance(schema, str) and schema.isidentifier() and len(schema) <= 63):
            raise ValueError(f"schema must be a plain identifier of at most 63 characters, got {schema!r}")
        if not (isinstance(busy_timeout, (int, float)) and busy_timeout >= 0):
            raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {busy_timeout!r}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"max_age must be > 0 seconds or None, got {max_age!r}")
        if max_rows is not None and int(max_rows) < 1:
            raise ValueError(f"max_rows must be >= 1 or None, got {max_rows!r}")
        if int(retention_batch) < 1:
            raise ValueError(f"retention_batch must be >= 1, got {retention_batch!r}")
        if not (isinstance(reconnect_timeout, (int, float)) and reconnect_timeout >= 0):
            raise ValueError(f"reconnect_timeout must be a number of seconds >= 0, got {reconnect_timeout!r}")
        self.url = url
        self.schema = schema.lower()
        self.busy_timeout = float(busy_timeout)
        self.max_age = None if max_age is None else float(max_age)
        self.max_rows = None if max_rows is None else int(max_rows)
        self.retention_batch = int(retention_batch)
        # one advisory lock per schema: stores in different schemas never wait for each other
        self._lock_key = zlib.crc32(f"anomaly_fast:{self.schema}".encode()) - 2**31
        self.connect_timeout = float(connect_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self._psycopg = psycopg
        self._errors = psycopg.errors
        self._connection_errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self._xid = None  # the open write transaction's id (to resolve a commit whose answer was lost)
        self._closing = False
        self.reconnects = 0  # connections restored after a break (monitoring, tests)
        self._conn = None
        try:
            self._connect()
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot connect to the PostgreSQL alert store: {exc}".strip()) from None
        try:
            self.run_transaction(self._migrate)  # under the store's lock: processes opening it at once migrate once
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self):
        return f"PostgresAlertStore(schema={self.schema!r})"

    # -- the connection -----------------------------------------------------------
    def _connect(self, timeout=None):
        timeout = self.connect_timeout if timeout is None else timeout
        conn = self._psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, math.ceil(timeout)), application_name="anomaly_fast"
        )
        try:
            # a lock wait beyond busy_timeout raises LockNotAvailable (-> StoreBusyError); 0 would mean "forever"
            conn.execute(f"SET lock_timeout = {max(1, round(self.busy_timeout * 1000))}")
            conn.execute(f'SET search_path = "{self.schema}"')
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _lost(self, exc):
        """True when ``exc`` broke the connection (not a data error, not a
        lock timeout) and the store was not closed on purpose."""
        if self._closing:
            return False
        if isinstance(exc, StoreConnectionError):
            return getattr(exc, "_not_committed", False)  # safe to run again (else the outcome is unknown)
        conn = self._conn
        return isinstance(exc, self._connection_errors) and (conn is None or conn.broken or conn.closed)

    def _broke(self, exc, detail=""):
        """The StoreConnectionError of a break that left the transaction
        uncommitted (so running it again is safe)."""
        error = StoreConnectionError(f"the connection to the PostgreSQL alert store broke{detail}: {exc}")
        error._not_committed = True
        return error

    def _reconnect(self, deadline, cause):
        """Connect again, with backoff, until ``deadline`` (monotonic);
        StoreConnectionError naming ``cause`` once it passed."""
        delay, attempts = 0.05, 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreConnectionError(
                    f"lost the connection to the PostgreSQL alert store (schema {self.schema}) and could not "
                    f"restore it within reconnect_timeout={self.reconnect_timeout:g} s ({attempts} attempts): "
                    f"{str(cause).strip()}"
                ) from cause
            time.sleep(min(delay, remaining))
            delay = min(2 * delay, 2.0)
            attempts += 1
            try:
                self._connect(max(1.0, deadline - time.monotonic()))
            except self._connection_errors as exc:
                cause = exc
                continue
            self.reconnects += 1
            return

    def _retrying(self, fn, *args, transaction):
        """``fn(*args)`` (in a transaction when ``transaction``), run again
        after a broken connection until ``reconnect_timeout``.  Inside an
        open transaction it runs once: a break propagates (as
        StoreConnectionError) to the outermost block, the unit that runs
        again."""
        with self._lock:
            if self._depth:
                try:
                    return fn(*args)
                except self._connection_errors as exc:
                    if self._lost(exc):
                        raise self._broke(exc) from exc
                    raise
            deadline = None
            while True:
                try:
                    if not transaction:
                        return fn(*args)
                    with self.transaction():
                        return fn(*args)
                except (StoreConnectionError, *self._connection_errors) as exc:
                    if not self._lost(exc):
                        raise
                    if deadline is None:
                        deadline = time.monotonic() + self.reconnect_timeout
                    if self._conn.broken or self._conn.closed:  # (resolving a lost COMMIT reconnected already)
                        self._reconnect(deadline, exc)

    def run_transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._retrying(fn, *args, transaction=True)

    run_transaction.__doc__ = AlertStore.run_transaction.__doc__

    def close(self) -> None:
        self._closing = True
        super().close()

    def _migrate(self):
        conn = self._conn
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise ValueError(
                f"schema version {current} is newer than this anomaly_fast's ({SCHEMA_VERSION}); upgrade it"
            )
        for version in range(max(current + 1, _FIRST_VERSION), SCHEMA_VERSION + 1):
            description, script = MIGRATIONS[version]
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, description, time.time()))

    def schema_migrations(self) -> list[tuple[int, str, float]]:
        """[(version, description, applied_at)] of the applied migrations."""
        return [tuple(r) for r in self._read("SELECT * FROM schema_migrations ORDER BY version")]

    # -- transactions -----------------------------------------------------------
    def _begin(self):
        self._xid = None
        try:
            cur = self._conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._lock_key}), txid_current()")
            cur.nextset()
            self._xid = cur.fetchone()[1]
        except self._errors.LockNotAvailable as exc:
            self._conn.execute("ROLLBACK")
            raise StoreBusyError(
                f"alert store (schema {self.schema}) stayed locked by another writer for more than "
                f"{self.busy_timeout:g} s (busy_timeout): {exc}".strip()
            ) from None
        except self._connection_errors as exc:
            if self._lost(exc):
                raise self._broke(exc) from exc
            raise

    def _commit(self):
        xid, self._xid = self._xid, None
        try:
            self._conn.execute("COMMIT")
        except self._connection_errors as exc:
            if not self._lost(exc):
                raise
            if xid is None or not self._committed_after_all(xid, exc):
                raise self._broke(exc, "; the transaction was not committed") from exc

    def _committed_after_all(self, xid, cause):
        """Whether transaction ``xid``, whose COMMIT got no answer, committed:
        asked of the server once reconnected (``txid_status``)."""
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                if self._conn.broken or self._conn.closed:
                    self._reconnect(deadline, cause)
                status = self._conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()[0]
            except StoreConnectionError as exc:
                error = StoreConnectionError(
                    f"{exc} -- whether the last transaction committed is unknown: re-feed its events "
                    "(their event keys make that safe)"
                )
                error.committed = None
                raise error from cause
            except self._connection_errors as exc:
                if not self._lost(exc):
                    raise
                cause = exc
                continue
            if status != "in progress":  # the old backend may not have noticed yet that its client left
                return status == "committed"
            if time.monotonic() > deadline:
                error = StoreConnectionError(
                    f"transaction {xid} of the PostgreSQL alert store stayed in progress on the server after its "
                    f"connection broke, for more than reconnect_timeout={self.reconnect_timeout:g} s"
                )
                error.committed = None
                raise error from cause
            time.sleep(0.1)

    def _rollback(self):
        self._xid = None
        if not (self._conn.closed or self._conn.broken):
            self._conn.execute("ROLLBACK")

    def _write(self, sql, rows):
        sql = sql.replace("?", "%s")  # the shared queries' placeholders; psycopg takes %s

        def write():
            # row by row, not executemany: its pipeline mode reports a connection lost mid-batch
            # as a pipeline state error on a connection not yet marked broken
            with self._conn.cursor() as cur:
                for row in rows:
                    cur.execute(sql, row)

        self.run_transaction(write)

    def _read(self, sql, args=None):
        sql = sql.replace("?", "%s")
        return self._retrying(lambda: self._conn.execute(sql, args).fetchall(), transaction=False)

    # -- alerts -------------------------------------------------------------------
    def add_alerts(self, alerts: Iterable[AnomalyAlert | Mapping[str, Any]]) -> None:
        rows = []
        for a in alerts:
            d = _alert_dict(a)
            rows.append(_alert_row(d, self._check_alert(d)))
        try:
            self._write(
                f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_ALERT_COLUMNS))})",
                rows,
            )
        except self._errors.UniqueViolation as exc:
            raise ValueError(f"duplicate alert: {exc.diag.message_detail or exc}") from None

    def existing_event_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        return {r[0] for r in self._read("SELECT event_key FROM alerts WHERE event_key = ANY(%s)", (keys,))}

    def latest_alert(self, entity_id: str, at_or_before: float | None = None) -> tuple[float, str, str] | None:
        sql = "SELECT timestamp, tier, alert_id FROM alerts WHERE entity_id = %s"
        args = (entity_id,)
        if at_or_before is not None:
            sql += " AND timestamp <= %s"
            args = (entity_id, float(at_or_before))
        rows = self._read(sql + " ORDER BY timestamp DESC, seq DESC LIMIT 1", args)
        return tuple(rows[0]) if rows else None

    # -- feedback, drift, threshold ------------------------------------------------------
    def add_feedback(self, alert_id: str, is_true_positive: bool, timestamp: float) -> None:
        self._write(
            "INSERT INTO feedback (alert_id, is_true_positive, timestamp) VALUES (%s, %s, %s)",
            [(alert_id, bool(is_true_positive), float(timestamp))],
        )

    def feedback(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT alert_id, is_true_positive, timestamp FROM feedback ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [{"alert_id": a, "is_true_positive": bool(t), "timestamp": ts} for a, t, ts in self._read(sql)[::-1]]

    def add_drift_events(self, events: Iterable[DriftEvent]) -> None:
        self._write(
            f"INSERT INTO drift_events ({', '.join(_DRIFT_COLUMNS)}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(float(e.timestamp), e.feature, e.kind, float(e.value), e.detail) for e in events],
        )

    def add_model_changes(self, changes: Iterable[Mapping[str, Any]]) -> None:
        self._write(
            f"INSERT INTO model_changes ({', '.join(_MODEL_CHANGE_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(_MODEL_CHANGE_COLUMNS))}) ON CONFLICT (event_index, kind) DO NOTHING",
            [tuple(json.dumps(c[k]) if k == "detail" else c[k] for k in _MODEL_CHANGE_COLUMNS) for c in changes],
        )

    def event_time_watermark(self) -> float | None:
        return self._read(
            "SELECT GREATEST((SELECT MAX(timestamp) FROM alerts), (SELECT MAX(timestamp) FROM drift_events), "
            "(SELECT MAX(event_time) FROM threshold_history WHERE event_time > %s), "
            "(SELECT MAX(event_time) FROM model_changes WHERE event_time > %s))",
            (-math.inf, -math.inf),
        )[0][0]

    # -- retention ----------------------------------------------------------------
    def apply_retention(self) -> int:
        if self.max_age is None and self.max_rows is None:
            return 0
        deleted = 0
        while True:
            seqs = self.run_transaction(self._retention_batch)
            deleted += len(seqs)
            if not seqs:
                return deleted

    def _retention_batch(self):
        """Delete one batch of expired alerts (with their feedback) and drift
        events; the alerts' seqs."""
        conn = self._conn
        seqs = []
        if self.max_age is not None:
            latest = conn.execute("SELECT MAX(timestamp) FROM alerts").fetchone()[0]
            if latest is not None:
                cutoff = latest - self.max_age
                seqs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT seq FROM alerts WHERE timestamp < %s ORDER BY seq LIMIT %s",
                        (cutoff, self.retention_batch),
                    )
                ]
                conn.execute(
                    "DELETE FROM drift_events WHERE seq IN (SELECT seq FROM drift_events "
                    "WHERE timestamp < %s LIMIT %s)",
                    (cutoff, self.retention_batch),
                )
        if not seqs and self.max_rows is not None:
            excess = conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] - self.max_rows
            if excess > 0:
                seqs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT seq FROM alerts ORDER BY seq LIMIT %s", (min(excess, self.retention_batch),)
                    )
                ]
        if seqs:
            conn.execute(
                "DELETE FROM feedback WHERE alert_id IN (SELECT alert_id FROM alerts WHERE seq = ANY(%s))",
                (seqs,),
            )
            conn.execute("DELETE FROM alerts WHERE seq = ANY(%s)", (seqs,))
        return seqs

    def drop(self) -> None:
        """Delete the store's schema and everything in it (tests, tear-down)."""
        with self._lock:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
