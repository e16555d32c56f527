"""From scores to alerts people can act on: thresholds, tiers, suppression by
event time, escalation, feedback, feature monitoring and durable storage."""

import copy
import hashlib
import math
import os
import threading
import time
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from .alert_store import AlertStore, event_key, open_store
from .ensemble import apply_calibration, fit_calibration
from .feature_monitor import FeatureMonitor

__all__ = ["AnomalyAlert", "AnomalyPipeline", "DEFAULT_TIERS", "event_key", "parse_timestamp"]

DEFAULT_TIERS = {"warning": 0.7, "critical": 0.8, "emergency": 0.9}
DEFAULT_THRESHOLD = 0.7
TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_MS_LOOKALIKE = 1e11  # seconds since the epoch beyond year 5138: probably milliseconds
_RETENTION_EVERY = 1024  # alerts between retention passes
_METADATA_KEYS = ("entity_id", "timestamp", "event_id")
STAT_KEYS = (
    "events", "unscorable", "unscorable_missing", "unscorable_score", "below_threshold",
    "alerts", "escalations", "suppressed", "duplicates", "drift_events",
)


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
        :func:`~anomaly_fast.alert_store.event_key`: the entity with its
        ``event_id`` if given, else with the exact timestamp and a digest of
        the feature values).
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

    def to_dict(self):
        return asdict(self)


def parse_timestamp(value, default, unit="s"):
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
            raise TypeError(
                f"timestamp must be a number, an ISO-8601 string or a datetime, got {type(value).__name__}"
            )
    except OverflowError:
        raise ValueError(f"timestamp {str(value)[:40]}... is too large for a float") from None
    if not math.isfinite(ts):
        raise ValueError(f"timestamp must be finite, got {value!r}")
    return ts


def _datetime_seconds(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _id_value(value, name):
    """An entity or event id as str: a str or number per event (NumPy
    scalars accepted); containers (a pandas Series, a list) are refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"{name} must be a string or a number per event, got {type(value).__name__}")


class _Thresholds:
    """The threshold in force at each event time.

    Mirrors the store's threshold changes ordered by ``(event_time, seq)``;
    a change is in force for events strictly later than its ``event_time``
    (the stream's event-time watermark when it was made), so replaying a
    stream judges every event with the threshold it met the first time.
    """

    def __init__(self):
        self._keys = []  # (event_time, seq), sorted
        self._values = []
        self._stamps = []
        self.last_seq = 0

    def __len__(self):
        return len(self._values)

    def add(self, changes):
        for seq, event_time, value in changes:
            i = bisect_right(self._keys, (event_time, seq))
            self._keys.insert(i, (event_time, seq))
            self._values.insert(i, float(value))
            self.last_seq = max(self.last_seq, seq)
        self._stamps = [k[0] for k in self._keys]
        self._stamp_array = np.array(self._stamps, dtype=np.float64)
        self._value_array = np.array(self._values, dtype=np.float64)

    def current(self):
        return self._values[-1]

    def at(self, t):
        if t > self._stamps[-1]:
            return self._values[-1]
        return self._values[max(bisect_left(self._stamps, t) - 1, 0)]

    def at_many(self, ts):
        if len(self._values) == 1 or ts.min() > self._stamps[-1]:
            return self._values[-1]
        index = np.searchsorted(self._stamp_array, ts, side="left") - 1
        return self._value_array[np.maximum(index, 0)]


class _MonitorUndo:
    """Lets a failed call leave the feature monitor as it was: a checkpoint
    (a deep copy, refreshed every ``ROWS`` rows) and the rows fed since it;
    undoing rebuilds the monitor from the checkpoint and those rows."""

    ROWS = 4096

    def __init__(self, monitor):
        self.checkpoint = copy.deepcopy(monitor)
        self.rows = []  # (X (n, d), timestamps (n,) or float)
        self.n = 0

    def fed(self, monitor, X, timestamps):
        """Record rows of a call that succeeded."""
        self.rows.append((X, timestamps))
        self.n += X.shape[0]
        if self.n >= self.ROWS:
            self.checkpoint = copy.deepcopy(monitor)
            self.rows, self.n = [], 0

    def restore(self):
        monitor = copy.deepcopy(self.checkpoint)
        if self.rows:
            X = np.vstack([x for x, _ in self.rows])
            ts = np.concatenate([np.atleast_1d(np.asarray(t, dtype=np.float64)) for _, t in self.rows])
            monitor.update_many(X, ts)
        return monitor


class AnomalyPipeline:
    """Turn a fitted detector's scores into durable, de-duplicated alerts.

    Each event (a point plus ``entity_id`` / ``timestamp`` / optional
    ``event_id`` metadata) is scored in [0, 1] (**higher = more
    anomalous**): the detector's ``anomaly_score`` when it has one, else the
    empirical CDF of ``-score_samples`` on ``reference`` (a calibration
    fitted once, here).  A score at or above the threshold in force at the
    event's time is an alert candidate with the tier of its score band; a
    NaN or infinite score never alerts (counted in ``stats``).  Per entity
    and by **event time**, a candidate within ``suppression_window`` seconds
    of the entity's last alert at or before it is suppressed, unless its
    tier is higher than that alert's: then it escalates (a new alert, which
    also restarts the window).  Replaying history therefore behaves like
    live traffic.

    **Commit first, then remember.**  Whether an event is a duplicate and
    what suppresses it are read from the store inside the write transaction
    (with SQLite, ``BEGIN IMMEDIATE``: several processes on one store decide
    as one process would).  The pipeline's own state -- ``stats``, the
    feature monitor, the threshold -- changes only after the store commits:
    a call that raises leaves the pipeline and the store exactly as they
    were, and retrying it is safe.

    **Exact replay.**  Processing is idempotent per event (its key: the
    entity with ``event_id``, else with the exact timestamp and a digest of
    the feature values).  A threshold change (feedback, or an explicit
    ``threshold`` differing from the stored one) is stamped with the
    stream's *event-time watermark* (the latest event time seen, or in the
    store) when it is made, and is in force for events strictly later than
    that stamp.  So after a crash (even ``kill -9``), re-feeding the stream
    from its start on the same store writes exactly the alerts an
    uninterrupted run writes, for streams in event-time order per entity
    (ties allowed).  The feature monitor is not persisted: after a restart
    it starts empty, and re-feeding the stream from its start recomputes the
    same drift events, each stored once.

    **Threads.**  Every public method takes the pipeline's lock: one
    pipeline may be shared by any number of threads (calls are serialised;
    scoring costs microseconds).

    Parameters
    ----------
    detector : fitted estimator
        Anything with ``anomaly_score(X)`` in [0, 1] (anomaly_fast's
        estimators), or a scikit-learn style detector with ``score_samples``
        (lower = more abnormal) together with ``reference``.
    threshold : float in [0, 1] or None, default=None
        Alert when the score is at or above it.  None keeps the store's
        current threshold (0.7 for a new store); a value differing from the
        stored one is recorded as a threshold change.  Adapted by
        :meth:`feedback`.
    suppression_window : float >= 0, default=300.0
        Seconds of event time during which an entity's repeats are
        suppressed.
    tiers : dict of str -> float, default=None
        Tier name -> lowest score of its band; default
        ``{"warning": 0.7, "critical": 0.8, "emergency": 0.9}``.  A score at
        or above the threshold but below every band gets the lowest tier.
    store : None, str/Path, or an AlertStore, default=None
        ``None``: a bounded in-memory buffer (``buffer_size`` alerts);
        a path: a :class:`~anomaly_fast.alert_store.SQLiteAlertStore` (WAL)
        where every alert is committed before it is returned and from which
        threshold and feedback state are restored on restart.
    model_version : str, default=None
        Recorded on every alert; None -> ``registry.model_version(detector)``
        (content-derived) when it can be computed.
    monitor_features : bool, default=True
        Feed every point to a :class:`~anomaly_fast.feature_monitor.FeatureMonitor`
        (ADWIN drift per feature, missing and out-of-range rates).
    feature_names : list of str, default=None
        Names of the features (default: the detector's ``feature_names_in_``
        or ``x0, x1, ...``); points may be dicts keyed by them.
    reference : array-like or dict, default=None
        Training data (or its ``{"min": [...], "max": [...]}``) for the
        feature monitor's ranges and, for detectors without
        ``anomaly_score``, the score calibration (then an array is required).
    target_precision : float in (0, 1], default=0.9
        Precision of labelled alerts the threshold adapts toward.
    threshold_step : float in (0, 1), default=0.02
        Largest change of the threshold per feedback.
    threshold_bounds : (float, float), default=(0.5, 0.99)
        The threshold never leaves this interval.
    min_feedback : int, default=10
        Labels needed before the threshold moves.
    feedback_window : int, default=100
        Precision is measured on the labels of the last this-many distinct
        labelled alerts (read from the store).
    max_entities : int, default=None
        Deprecated, has no effect: suppression state is read from the
        store inside the write transaction.
    buffer_size : int, default=10_000
        Alerts kept by the in-memory store (``store=None``).
    monitor_options : dict, default=None
        Extra keyword arguments of :class:`FeatureMonitor`.
    on_drift : callable, default=None
        Called with each list of new :class:`DriftEvent` (after they are
        stored).
    timestamp_unit : {"s", "ms", "us", "ns"}, default="s"
        Unit of numeric timestamps (ISO strings and datetimes are
        unambiguous).  With ``"s"``, numeric timestamps beyond 1e11 (year
        5138) raise a warning: they are probably milliseconds.

    Attributes
    ----------
    threshold : float
        The current threshold (in force for events after the latest change).
    monitor : FeatureMonitor or None
    store : AlertStore
    stats : dict
        Counters: ``events``; ``unscorable`` (never scored or alerted), split
        into ``unscorable_missing`` (NaN/inf features) and
        ``unscorable_score`` (the detector returned NaN/inf);
        ``below_threshold``; ``alerts`` (of which ``escalations``);
        ``suppressed``; ``duplicates`` (events already alerted);
        ``drift_events``.  ``events`` is the sum of ``unscorable``,
        ``below_threshold``, ``suppressed``, ``duplicates`` and ``alerts``.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import AnomalyPipeline, IsolationForest
    >>> X = np.random.RandomState(0).normal(size=(1000, 2))
    >>> model = IsolationForest(random_state=0).fit(X)
    >>> tiers = {"warning": 0.7, "critical": 0.72, "emergency": 0.75}
    >>> pipe = AnomalyPipeline(model, threshold=0.7, suppression_window=60.0, tiers=tiers)
    >>> events = [(0.0, [2.5, 2.5]), (10.0, [2.5, 2.5]), (20.0, [3.0, 3.0]), (30.0, [40.0, -40.0]),
    ...           (40.0, [3.0, 3.0]), (100.0, [2.5, 2.5]), (105.0, [0.0, 0.0])]
    >>> for t, point in events:
    ...     alert = pipe.process(point, {"entity_id": "host-1", "timestamp": t})
    ...     print(t, None if alert is None else (alert.tier, alert.context["reason"], round(alert.score, 3)))
    0.0 ('warning', 'new', 0.711)
    10.0 None
    20.0 ('critical', 'escalation', 0.733)
    30.0 ('emergency', 'escalation', 0.769)
    40.0 None
    100.0 ('warning', 'new', 0.711)
    105.0 None
    >>> pipe.stats["suppressed"], pipe.stats["escalations"]
    (2, 2)
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["anomaly_score"]), HasMethods(["score_samples"])],
        "threshold": [Interval(Real, 0, 1, closed="both"), None],
        "suppression_window": [Interval(Real, 0, None, closed="left")],
        "tiers": [dict, None],
        "store": [None, str, os.PathLike, AlertStore],
        "model_version": [str, None],
        "monitor_features": ["boolean"],
        "feature_names": [list, None],
        "reference": ["array-like", dict, None],
        "target_precision": [Interval(Real, 0, 1, closed="right")],
        "threshold_step": [Interval(Real, 0, 1, closed="neither")],
        "threshold_bounds": [tuple, list],
        "min_feedback": [Interval(Integral, 1, None, closed="left")],
        "feedback_window": [Interval(Integral, 1, None, closed="left")],
        "max_entities": [Interval(Integral, 1, None, closed="left"), None],
        "buffer_size": [Interval(Integral, 1, None, closed="left")],
        "monitor_options": [dict, None],
        "on_drift": [callable, None],
        "timestamp_unit": [StrOptions(set(TIMESTAMP_UNITS))],
    }

    def __init__(
        self,
        detector,
        threshold=None,
        suppression_window=300.0,
        tiers=None,
        store=None,
        model_version=None,
        monitor_features=True,
        *,
        feature_names=None,
        reference=None,
        target_precision=0.9,
        threshold_step=0.02,
        threshold_bounds=(0.5, 0.99),
        min_feedback=10,
        feedback_window=100,
        max_entities=None,
        buffer_size=10_000,
        monitor_options=None,
        on_drift=None,
        timestamp_unit="s",
    ):
        params = dict(locals())
        del params["self"]
        validate_parameter_constraints(self._parameter_constraints, params, caller_name="AnomalyPipeline")
        if hasattr(detector, "fit"):  # streaming models (learn_one) have no fit to check
            check_is_fitted(detector)
        if max_entities is not None:
            warnings.warn("max_entities has no effect (suppression state is read from the store) and will be "
                          "removed", FutureWarning, stacklevel=2)
        self.detector = detector
        self.suppression_window = float(suppression_window)
        self.target_precision = float(target_precision)
        self.threshold_step = float(threshold_step)
        self.min_feedback = int(min_feedback)
        self.feedback_window = int(feedback_window)
        self.timestamp_unit = timestamp_unit
        low, high = (float(b) for b in threshold_bounds)
        if not (0.0 <= low <= high <= 1.0):
            raise ValueError(f"threshold_bounds must satisfy 0 <= low <= high <= 1, got {threshold_bounds}")
        self.threshold_bounds = (low, high)

        tiers = DEFAULT_TIERS if tiers is None else tiers
        if not tiers:
            raise ValueError("tiers must name at least one tier")
        for name, bound in tiers.items():
            if not isinstance(name, str) or isinstance(bound, bool) or not isinstance(bound, Real) or not 0 <= bound <= 1:
                raise ValueError(f"tiers must map names to score bounds in [0, 1], got {name!r}: {bound!r}")
        ordered = sorted(tiers.items(), key=lambda kv: kv[1])
        self.tiers = dict(ordered)
        self._tier_names = [name for name, _ in ordered]
        self._tier_bounds = np.array([bound for _, bound in ordered], dtype=np.float64)
        self._tier_rank = {name: i for i, name in enumerate(self._tier_names)}

        self.n_features = self._n_features(detector, feature_names, reference)
        if feature_names is None:
            names = getattr(detector, "feature_names_in_", None)
            feature_names = [str(f) for f in names] if names is not None else [f"x{j}" for j in range(self.n_features)]
        elif len(feature_names) != self.n_features:
            raise ValueError(f"feature_names has {len(feature_names)} names, the detector {self.n_features} features")
        self.feature_names = [str(f) for f in feature_names]
        self._feature_index = {name: j for j, name in enumerate(self.feature_names)}
        self._scorer = self._make_scorer(detector, reference)
        self.detector_name = type(detector).__name__
        if model_version is None:
            try:
                from .registry import model_version as version_of

                model_version = version_of(detector)
            except Exception:  # noqa: BLE001 - a version is informative only
                model_version = None
        self.model_version = model_version
        self.on_drift = on_drift
        self.monitor = None
        self._monitor_undo = None
        if monitor_features:
            self.monitor = FeatureMonitor(self.feature_names, reference=reference, **(monitor_options or {}))
            self._monitor_undo = _MonitorUndo(self.monitor)

        self._lock = threading.RLock()
        self._closed = False
        self._warned_unit = False
        self.store = open_store(store, buffer_size)
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self._watermark = -math.inf  # latest event time seen (committed calls)
        self._alerts_since_retention = 0
        self._thresholds = _Thresholds()
        self._restore(None if threshold is None else float(threshold))

    # -- set-up ---------------------------------------------------------------------
    @staticmethod
    def _n_features(detector, feature_names, reference):
        n = getattr(detector, "n_features_in_", None)
        if n is None:  # streaming models (HalfSpaceTrees) name it n_features_
            n = getattr(detector, "n_features_", None)
        if n is None and feature_names is not None:
            n = len(feature_names)
        if n is None and reference is not None and not isinstance(reference, dict):
            n = np.asarray(reference).shape[1]
        if n is None:
            raise ValueError(
                "cannot tell the number of features: the detector has no n_features_in_ "
                "(or n_features_); pass feature_names"
            )
        return int(n)

    def _make_scorer(self, detector, reference):
        if hasattr(detector, "anomaly_score"):
            self._raw_one = lambda X: float(detector.anomaly_score(X)[0])
            return lambda X: _unit_scores(detector.anomaly_score(X))
        if reference is None or isinstance(reference, dict):
            raise ValueError(
                f"{type(detector).__name__} has no anomaly_score: pass reference=<training data> "
                "to calibrate score_samples into [0, 1]"
            )
        R = np.asarray(reference, dtype=np.float64)
        calibration = fit_calibration(-np.asarray(detector.score_samples(R), dtype=np.float64), "rank")
        self._raw_one = lambda X: float(_calibrated_scores(calibration, detector.score_samples(X))[0])
        return lambda X: _calibrated_scores(calibration, detector.score_samples(X))

    def _restore(self, threshold):
        """Threshold history from the store; an explicit ``threshold`` that
        differs from the stored one is recorded as a change, stamped with
        the store's event-time watermark."""
        with self._lock:
            with self.store.transaction():
                self._thresholds.add(self.store.threshold_changes(self._thresholds.last_seq))
                watermark = self.store.event_time_watermark()
                if not len(self._thresholds):
                    value = DEFAULT_THRESHOLD if threshold is None else threshold
                    self._record_threshold(None, value, "initial threshold", -math.inf)
                elif threshold is not None and threshold != self._thresholds.current():
                    current = self._thresholds.current()
                    stamp = -math.inf if watermark is None else watermark
                    self._record_threshold(current, threshold, f"set to {threshold:g} by the caller (was {current:g})", stamp)
            self._refresh_thresholds()
            if watermark is not None:
                self._watermark = watermark

    def _record_threshold(self, old, new, reason, event_time):
        self.store.add_threshold_change(
            {"timestamp": time.time(), "event_time": event_time, "old": old, "new": new, "reason": reason}
        )

    def _refresh_thresholds(self):
        """Mirror threshold changes committed since the last look (by this
        pipeline or another writer of the store)."""
        changes = self.store.threshold_changes(self._thresholds.last_seq)
        if changes:
            self._thresholds.add(changes)

    @property
    def threshold(self):
        """The current threshold: in force for events later than the latest
        change."""
        with self._lock:
            return self._thresholds.current()

    # -- input ------------------------------------------------------------------------
    def _point(self, point):
        if isinstance(point, dict):
            x = np.full(self.n_features, np.nan)
            for name, value in point.items():
                j = self._feature_index.get(str(name))
                if j is None:
                    raise ValueError(f"unknown feature {name!r}; expected {self.feature_names}")
                x[j] = _number(value, name)
            return x
        x = np.asarray(point)
        if x.dtype.kind not in "biuf":
            if x.dtype.kind == "O":
                try:
                    x = x.astype(np.float64)
                except OverflowError:
                    raise ValueError("point holds a number too large for a float") from None
                except (TypeError, ValueError):
                    raise TypeError("point must hold numbers only") from None
            else:
                raise TypeError(f"point must be numeric, got dtype {x.dtype}")
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1 or x.shape[0] != self.n_features:
            raise ValueError(f"point must have {self.n_features} features, got shape {x.shape}")
        return np.array(x, dtype=np.float64)  # a copy: the caller may reuse its array

    def _event_time(self, value, now):
        if isinstance(value, float) and self.timestamp_unit == "s" and math.isfinite(value):  # the common case, quickly
            ts = float(value)
        else:
            ts = parse_timestamp(value, None, self.timestamp_unit)
        if ts is None:
            return now
        if ts > _MS_LOOKALIKE:
            self._check_unit(ts)
        return ts

    def _check_unit(self, largest):
        if largest > _MS_LOOKALIKE and self.timestamp_unit == "s" and not self._warned_unit:
            self._warned_unit = True
            warnings.warn(
                f"timestamp {largest:.6g} s is after the year 5000: it looks like epoch milliseconds; "
                "pass timestamp_unit='ms' (or 'us', 'ns')", UserWarning, stacklevel=3,
            )

    def _ids(self, md):
        """(entity, event_id or None) of one event's metadata, validated."""
        entity = _id_value(md.get("entity_id", "default"), "entity_id")
        event_id = md.get("event_id")
        if event_id is not None:
            event_id = _id_value(event_id, "event_id")
        limit = self.store.max_id_length
        for name, value in (("entity_id", entity), ("event_id", event_id)):
            if value is not None and len(value) > limit:
                raise ValueError(f"{name} is {len(value)} characters long; the store's limit is {limit} (max_id_length)")
        return entity, event_id

    def _candidate(self, i, score, md, ts, x):
        entity, event_id = self._ids(md)
        return (i, score, md, ts, entity, event_key(entity, ts, event_id, x))

    def _tier(self, score):
        i = int(np.searchsorted(self._tier_bounds, score, side="right")) - 1
        return self._tier_names[max(i, 0)]

    def _check_open(self):
        if self._closed:
            raise ValueError("the pipeline is closed")

    # -- one event ------------------------------------------------------------------
    def process(self, point, metadata=None):
        """Score one event and return its :class:`AnomalyAlert`, or None.

        Parameters
        ----------
        point : array-like of shape (n_features,) or dict
            Feature values (a dict maps feature names to values; missing
            names are NaN).  A point with NaN/inf is not scored: it counts in
            the feature monitor's missing rate and ``stats["unscorable"]``.
        metadata : dict, default=None
            ``entity_id`` (default ``"default"``), ``timestamp`` (event time:
            a number in ``timestamp_unit``, ISO-8601 or datetime; default
            now), optional ``event_id`` (scoped by entity); other keys are
            copied into the alert's context.

        Returns
        -------
        AnomalyAlert or None
            The alert, already committed to the store; None when the event
            is unscorable, below the threshold, suppressed, or was already
            alerted.
        """
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        x = self._point(point)
        ts = self._event_time(metadata.get("timestamp"), time.time())
        entity, event_id = metadata.get("entity_id"), metadata.get("event_id")
        if not isinstance(entity, (str, int, float)) and entity is not None:  # refuse a pandas Series, a list
            _id_value(entity, "entity_id")
        if not isinstance(event_id, (str, int, float)) and event_id is not None:
            _id_value(event_id, "event_id")
        X = x.reshape(1, -1)
        with self._lock:
            if self._closed:
                raise ValueError("the pipeline is closed")
            if self.store.shared:  # other processes may have changed the threshold
                self._refresh_thresholds()
            unscorable = None
            if np.isfinite(x).all():
                score = self._raw_one(X)
                if score != score or score in (math.inf, -math.inf):
                    unscorable = "unscorable_score"
                else:
                    score = 0.0 if score < 0.0 else 1.0 if score > 1.0 else score  # clipped to [0, 1]
            else:
                score, unscorable = math.nan, "unscorable_missing"
            candidates = []
            if unscorable is None and score >= self._thresholds.at(ts):
                candidates.append(self._candidate(0, score, metadata, ts, x))
            drift, alerts, counts = self._feed_and_write(candidates, X, ts, one=True)
            stats = self.stats
            stats["events"] += 1
            if unscorable is not None:
                stats["unscorable"] += 1
                stats[unscorable] += 1
            elif not candidates:
                stats["below_threshold"] += 1
            if counts is None and not drift:  # nothing was written: the quick way
                if self.monitor is not None:
                    self._monitor_undo.fed(self.monitor, X, ts)
                if ts > self._watermark:
                    self._watermark = ts
                return None
            self._committed(X, ts, ts, alerts, counts, drift)
            return alerts[0] if alerts else None

    # -- many events ----------------------------------------------------------------
    def process_batch(self, X, metadata=None):
        """Score the rows of ``X`` as events in row order; return the list of
        alerts they raised (committed to the store in one transaction).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        metadata : list of dict, dict, or DataFrame, default=None
            Per row as in :meth:`process`: a list with one dict per row, or a
            dict (or DataFrame) whose ``entity_id`` / ``timestamp`` /
            ``event_id`` / other values are columns of length n_events
            (lists, tuples, NumPy arrays, pandas Series) or scalars shared by
            every row.

        Returns
        -------
        list of AnomalyAlert
        """
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must be numeric, got dtype {X.dtype}")
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n_events, {self.n_features}), got {X.shape}")
        X = np.array(X, dtype=np.float64, order="C")  # a copy: kept for the monitor's undo
        n = X.shape[0]
        if n == 0:
            return []
        meta = _BatchMetadata(metadata, n, time.time(), self.timestamp_unit)
        ts = meta.timestamps
        self._check_unit(float(ts.max()))
        with self._lock:
            self._check_open()
            if self.store.shared:
                self._refresh_thresholds()
            finite = np.isfinite(X).all(axis=1)
            n_finite = int(finite.sum())
            if n_finite == n:
                scores = np.asarray(self._scorer(X), dtype=np.float64)
            else:
                scores = np.full(n, np.nan)
                rows = np.flatnonzero(finite)
                if rows.shape[0]:
                    scores[rows] = self._scorer(X[rows])
            scorable = np.isfinite(scores)
            n_scorable = int(scorable.sum())
            hits = np.flatnonzero(scorable & (scores >= self._thresholds.at_many(ts)))
            candidates = [self._candidate(int(i), float(scores[i]), meta.row(int(i)), float(ts[i]), X[i]) for i in hits]
            drift, alerts, counts = self._feed_and_write(candidates, X, ts, one=False)
            stats = self.stats
            stats["events"] += n
            stats["unscorable"] += n - n_scorable
            stats["unscorable_missing"] += n - n_finite
            stats["unscorable_score"] += n_finite - n_scorable
            stats["below_threshold"] += n_scorable - hits.shape[0]
            self._committed(X, ts, float(ts.max()), alerts, counts, drift)
            return alerts

    # -- the alert decision ----------------------------------------------------------------
    def _write(self, candidates, X, drift):
        """Decide the candidates and store the alerts and drift events, in
        one store transaction.  Returns (alerts, counts); the pipeline's own
        state is not touched (see :meth:`_committed`)."""
        counts = {"duplicates": 0, "below_threshold": 0, "suppressed": 0, "escalations": 0}
        alerts = []
        store = self.store
        with store.transaction():
            self._refresh_thresholds()  # mirrors committed changes: safe even if this transaction fails
            done = store.existing_event_keys([c[-1] for c in candidates]) if candidates else ()
            for i, score, md, ts, entity, key in candidates:
                if key in done:
                    counts["duplicates"] += 1
                    continue
                threshold = self._thresholds.at(ts)
                if score < threshold:  # another writer raised it meanwhile
                    counts["below_threshold"] += 1
                    continue
                tier = self._tier(score)
                state = store.latest_alert(entity, ts)
                context = {k: v for k, v in md.items() if k not in _METADATA_KEYS}
                if state is None or ts - state[0] >= self.suppression_window:
                    context["reason"] = "new"
                elif self._tier_rank[tier] > self._tier_rank.get(state[1], -1):
                    context.update(reason="escalation", escalated_from=state[1], previous_alert_id=state[2])
                    counts["escalations"] += 1
                else:
                    counts["suppressed"] += 1
                    continue
                alert = AnomalyAlert(
                    alert_id=hashlib.sha256(f"{self.model_version}|{key}".encode()).hexdigest()[:20],
                    timestamp=ts,
                    entity_id=entity,
                    score=score,
                    tier=tier,
                    threshold=threshold,
                    features=dict(zip(self.feature_names, X[i].tolist())),
                    detector=self.detector_name,
                    model_version=self.model_version,
                    context=context,
                    event_key=key,
                )
                store.add_alerts([alert])
                done.add(key)
                alerts.append(alert)
            if drift:
                store.add_drift_events(drift)
        return alerts, counts

    def _feed_and_write(self, candidates, X, timestamps, one):
        """Feed the monitor, then decide and write; on any error the monitor
        is rebuilt as it was and the error propagates."""
        try:
            drift = []
            if self.monitor is not None:
                drift = self.monitor.update(X[0], timestamps) if one else self.monitor.update_many(X, timestamps)
            if not candidates and not drift:
                return drift, [], None
            return (drift, *self._write(candidates, X, drift))
        except BaseException:
            if self.monitor is not None:
                self.monitor = self._monitor_undo.restore()
            raise

    def _committed(self, X, timestamps, latest, alerts, counts, drift):
        """After the store committed (or when there was nothing to write):
        the pipeline remembers the call."""
        if self.monitor is not None:
            self._monitor_undo.fed(self.monitor, X, timestamps)
        if latest > self._watermark:
            self._watermark = latest
        stats = self.stats
        if counts is not None:
            for name, value in counts.items():
                stats[name] += value
        stats["alerts"] += len(alerts)
        if drift:
            stats["drift_events"] += len(drift)
        self._alerts_since_retention += len(alerts)
        if self._alerts_since_retention >= _RETENTION_EVERY:
            self._alerts_since_retention = 0
            try:
                self.store.apply_retention()
            except Exception as exc:  # noqa: BLE001 - the call's alerts are committed; retention retries later
                warnings.warn(f"alert store retention failed (retried later): {exc}", RuntimeWarning, stacklevel=3)
        if drift and self.on_drift is not None:
            self.on_drift(drift)

    # -- feedback -------------------------------------------------------------------
    def feedback(self, alert_id, is_true_positive, timestamp=None):
        """Record an analyst's verdict on an alert and adapt the threshold.

        Over the last ``feedback_window`` distinct labelled alerts (a new
        verdict on the same alert replaces the old one), once there are
        ``min_feedback``, precision below ``target_precision`` raises the
        threshold and precision above it lowers it, by
        ``min(threshold_step, |precision - target| / 2)``, within
        ``threshold_bounds``.  Every change is stored with its reason and
        stamped with the event-time watermark: it is in force for events
        later than the latest event seen.  The labels and the current
        threshold are read from the store in the write transaction, and the
        pipeline changes only after the commit.

        Returns
        -------
        float
            The threshold after this feedback.
        """
        if not isinstance(is_true_positive, (bool, np.bool_)):
            raise TypeError(f"is_true_positive must be a bool, got {type(is_true_positive).__name__}")
        alert_id = str(alert_id)
        timestamp = time.time() if timestamp is None else parse_timestamp(timestamp, None)
        with self._lock:
            self._check_open()
            store = self.store
            with store.transaction():
                if store.get_alert(alert_id) is None:
                    raise ValueError(f"unknown alert id {alert_id!r} (not in the store)")
                self._refresh_thresholds()
                store.add_feedback(alert_id, bool(is_true_positive), timestamp)
                labels = store.latest_labels(self.feedback_window)
                n = len(labels)
                current = self._thresholds.current()
                if n >= self.min_feedback:
                    precision = sum(labels.values()) / n
                    error = self.target_precision - precision
                    step = math.copysign(min(self.threshold_step, abs(error) / 2.0), error)
                    low, high = self.threshold_bounds
                    new = min(high, max(low, current + step))
                    if new != current:
                        direction = "below" if error > 0 else "above"
                        reason = (
                            f"precision {precision:.3f} over the last {n} labelled alerts is {direction} "
                            f"the target {self.target_precision:.3f}"
                        )
                        stored = store.event_time_watermark()
                        stamp = max(self._watermark, -math.inf if stored is None else stored)
                        self._record_threshold(current, new, reason, stamp)
            self._refresh_thresholds()
            return self._thresholds.current()

    def threshold_history(self):
        """Every threshold change: dicts with ``timestamp`` (wall clock),
        ``event_time`` (in force for events after it), ``old``, ``new`` and
        ``reason`` (the in-memory store keeps the last ``buffer_size``)."""
        with self._lock:
            return self.store.threshold_history()

    # -- reports --------------------------------------------------------------------
    def feature_report(self):
        """Per-feature drift and data-quality summary (see
        :meth:`FeatureMonitor.feature_report`); ``[]`` when monitoring is off."""
        with self._lock:
            return [] if self.monitor is None else self.monitor.feature_report()

    def drift_events(self, limit=None):
        """Stored drift events (dicts), oldest first."""
        with self._lock:
            return self.store.drift_events(limit)

    def alerts(self, limit=None):
        """The last ``limit`` stored alerts (dicts; all when None), oldest
        first.  :meth:`iter_alerts` reads a large store page by page."""
        with self._lock:
            return self.store.alerts(limit)

    def iter_alerts(self, page_size=1000):
        """Every stored alert (dicts), oldest first, read ``page_size`` at a
        time (alerts stored meanwhile are included)."""
        cursor = 0
        while True:
            with self._lock:
                page, cursor = self.store.page_alerts(cursor, page_size)
            if not page:
                return
            yield from page

    def close(self):
        with self._lock:
            if not self._closed:
                self._closed = True
                self.store.close()


def _unit_scores(raw):
    """Scores clipped to [0, 1]; NaN where the detector gave NaN or +-inf
    (such an event is unscorable, never an alert)."""
    scores = np.asarray(raw, dtype=np.float64)
    finite = np.isfinite(scores)
    if finite.all():
        return np.clip(scores, 0.0, 1.0)
    return np.where(finite, np.clip(scores, 0.0, 1.0), np.nan)


def _calibrated_scores(calibration, score_samples):
    """``score_samples`` (lower = more abnormal) mapped to [0, 1]; NaN where
    it was NaN or +-inf (the rank calibration would map those to 0 or 1)."""
    raw = -np.asarray(score_samples, dtype=np.float64)
    scores = apply_calibration(calibration, raw)
    finite = np.isfinite(raw)
    return scores if finite.all() else np.where(finite, scores, np.nan)


def _number(value, name):
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


class _BatchMetadata:
    """Per-row metadata of a batch: the timestamps of every row (parsed at
    once) and the other fields of a row on demand."""

    def __init__(self, metadata, n, now, unit):
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

    def row(self, i):
        if self.rows is not None:
            return self.rows[i]
        out = dict(self.shared)
        for key, column in self.columns.items():
            value = column[i]
            out[key] = value.item() if isinstance(value, np.generic) else value
        out["timestamp"] = float(self.timestamps[i])
        return out
