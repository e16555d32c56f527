"""The event and alert model of the pipeline: :class:`AnomalyAlert`, event
timestamps (:func:`parse_timestamp`), entity / event ids, and the coercion of
per-event and per-batch metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AnomalyAlert", "METADATA_KEYS", "TIMESTAMP_UNITS", "BatchMetadata", "id_value", "number", "parse_timestamp"]

TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
METADATA_KEYS = ("entity_id", "timestamp", "event_id")  # metadata the pipeline reads; the rest is alert context


@dataclass(frozen=True)
class AnomalyAlert:
    """One alert.

    Attributes
    ----------
    alert_id : str
        Deterministic id: a hash of the model version and the event key, so
        the same event scored by the same model always gets the same id.
    timestamp : float
        Event time (seconds since the epoch, UTC).
    entity_id : str
    score : float
        Anomaly score in [0, 1], **higher = more anomalous**.
    tier : str
        Severity band of ``score`` (see ``AnomalyPipeline.tiers``).
    threshold : float
        The threshold in force at the event's time.
    features : dict
        Feature name -> value of the scored point.
    detector : str
        Class name of the detector.
    model_version : str or None
    context : dict
        ``reason`` (``"new"`` or ``"escalation"``), for an escalation the
        previous tier and alert id, and the caller's extra metadata.
    event_key : str
        The idempotency key of the event (see
        :func:`~anomaly_fast.pipeline.alert_store.event_key`: the entity with its
        ``event_id`` if given, else with the exact timestamp and a digest of
        the feature values).
    explanation : list of dict
        Why the event is anomalous: the pipeline's ``explain`` top features,
        largest contribution first, each ``{"feature": name, "contribution":
        float, "value": float}`` (see the detector's ``explain``: positive
        contributions push towards anomalous).  Empty when ``explain=0`` or
        for alerts stored before explanations existed.
    """

    alert_id: str
    timestamp: float
    entity_id: str
    score: float
    tier: str
    threshold: float
    features: dict
    detector: str
    model_version: str
    context: dict = field(default_factory=dict)
    event_key: str = ""
    explanation: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_timestamp(value: object, default: float, unit: str = "s") -> float:
    """Seconds since the epoch from a number or numeric string (in ``unit``:
    ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``), an ISO-8601 string (naive =
    UTC), a datetime or a ``numpy.datetime64``; ``None`` -> ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise TypeError("timestamp must be a number, an ISO-8601 string or a datetime, got bool")
    factor = TIMESTAMP_UNITS[unit]
    try:
        if isinstance(value, (int, float, np.integer, np.floating)):
            ts = float(value) / factor
        elif isinstance(value, str):
            try:
                ts = float(value) / factor
            except ValueError:
                try:
                    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise ValueError(f"timestamp {value!r} is neither a number nor ISO-8601") from None
                ts = _datetime_seconds(dt)
        elif isinstance(value, datetime):
            ts = _datetime_seconds(value)
        elif isinstance(value, np.datetime64):
            if np.isnat(value):
                raise ValueError("timestamp is NaT")
            ts = float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
        else:
            raise TypeError(f"timestamp must be a number, an ISO-8601 string or a datetime, got {type(value).__name__}")
    except OverflowError:
        raise ValueError(f"timestamp {str(value)[:40]}... is too large for a float") from None
    if not math.isfinite(ts):
        raise ValueError(f"timestamp must be finite, got {value!r}")
    return ts


def _datetime_seconds(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def id_value(value: object, name: str) -> str:
    """An entity or event id as str: a str or number per event (NumPy
    scalars accepted); containers (a pandas Series, a list) are refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"{name} must be a string or a number per event, got {type(value).__name__}")


def number(value: object, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"feature {name!r} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"feature {name!r} is too large for a float") from None


def _column(value, key, n):
    """``value`` as a per-row column (list or 1-D array) of length n, or
    None when it is one value shared by every row."""
    if isinstance(value, (str, bytes, dict)):
        return None
    if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):  # pandas Series / Index / arrays
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return None
        if value.ndim != 1:
            raise ValueError(f"metadata[{key!r}] must be one-dimensional, got shape {value.shape}")
    elif not isinstance(value, (list, tuple)):
        return None
    if len(value) != n:
        raise ValueError(f"metadata[{key!r}] has {len(value)} values for {n} events")
    return value


class BatchMetadata:
    """Per-row metadata of a batch: the timestamps of every row (parsed at
    once) and the other fields of a row on demand."""

    def __init__(
        self,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]] | pd.DataFrame | None,
        n: int,
        now: float,
        unit: str,
    ) -> None:
        self.rows = None
        self.columns = {}
        self.shared = {}
        if metadata is None:
            metadata = {}
        if hasattr(metadata, "columns") and hasattr(metadata, "iloc"):  # a pandas DataFrame
            metadata = {str(c): metadata[c] for c in metadata.columns}
        if isinstance(metadata, dict):
            for key, value in metadata.items():
                column = _column(value, key, n)
                if column is None:
                    self.shared[key] = value.item() if isinstance(value, np.ndarray) else value
                else:
                    self.columns[key] = column
        elif isinstance(metadata, (list, tuple)):
            if len(metadata) != n:
                raise ValueError(f"metadata has {len(metadata)} entries for {n} events")
            if not all(isinstance(m, dict) for m in metadata):
                raise TypeError("metadata entries must be dicts")
            self.rows = metadata
        else:
            raise TypeError(f"metadata must be a dict, a DataFrame or a list of dicts, got {type(metadata).__name__}")
        self.timestamps = self._timestamps(n, now, unit)

    def _timestamps(self, n, now, unit):
        if self.rows is not None:
            return np.array([parse_timestamp(r.get("timestamp"), now, unit) for r in self.rows], dtype=np.float64)
        column = self.columns.get("timestamp")
        if column is None:
            return np.full(n, parse_timestamp(self.shared.get("timestamp"), now, unit))
        arr = np.asarray(column)
        if arr.dtype.kind == "M":
            if np.isnat(arr).any():
                raise ValueError("metadata timestamps must not be NaT")
            return arr.astype("datetime64[ns]").astype(np.int64) / 1e9
        if arr.dtype.kind in "iuf":
            arr = arr.astype(np.float64) / TIMESTAMP_UNITS[unit]
            if not np.isfinite(arr).all():
                raise ValueError("metadata timestamps must be finite")
            return arr
        return np.array([parse_timestamp(v, now, unit) for v in column], dtype=np.float64)

    def row(self, i: int) -> dict[str, Any]:
        if self.rows is not None:
            return self.rows[i]
        out = dict(self.shared)
        for key, column in self.columns.items():
            value = column[i]
            out[key] = value.item() if isinstance(value, np.generic) else value
        out["timestamp"] = float(self.timestamps[i])
        return out

    def entities(self) -> list[Any]:
        """The entity id of every row (a list)."""
        n = self.timestamps.shape[0]
        if self.rows is not None:
            return [r.get("entity_id", "default") for r in self.rows]
        column = self.columns.get("entity_id")
        if column is None:
            return [self.shared.get("entity_id", "default")] * n
        return column.tolist() if isinstance(column, np.ndarray) else list(column)
