"""From scores to alerts people can act on: thresholds, tiers, suppression by
event time, escalation, feedback, feature monitoring and durable storage."""

import hashlib
import math
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted

from .alert_store import MemoryAlertStore, SQLiteAlertStore, open_store
from .ensemble import apply_calibration, fit_calibration
from .feature_monitor import FeatureMonitor

__all__ = ["AnomalyAlert", "AnomalyPipeline", "DEFAULT_TIERS", "event_key", "parse_timestamp"]

DEFAULT_TIERS = {"warning": 0.7, "critical": 0.8, "emergency": 0.9}
_EXPIRY_EVERY = 1024  # alerts between sweeps of expired entities


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
        The alert threshold when the alert fired.
    features : dict
        Feature name -> value of the scored point.
    detector : str
        Class name of the detector.
    model_version : str or None
    context : dict
        ``reason`` (``"new"`` or ``"escalation"``), for an escalation the
        previous tier and alert id, and the caller's extra metadata.
    event_key : str
        The idempotency key of the event (``event_id`` if given, else
        ``entity_id@timestamp``).
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


def parse_timestamp(value, default):
    """Seconds since the epoch from a number, a numeric string, an ISO-8601
    string (naive = UTC) or a datetime; ``None`` -> ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise TypeError("timestamp must be a number, an ISO-8601 string or a datetime, got bool")
    if isinstance(value, (int, float, np.integer, np.floating)):
        ts = float(value)
    elif isinstance(value, str):
        try:
            ts = float(value)
        except ValueError:
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"timestamp {value!r} is neither a number nor ISO-8601") from None
            ts = _datetime_seconds(dt)
    elif isinstance(value, datetime):
        ts = _datetime_seconds(value)
    else:
        raise TypeError(
            f"timestamp must be a number, an ISO-8601 string or a datetime, got {type(value).__name__}"
        )
    if not math.isfinite(ts):
        raise ValueError(f"timestamp must be finite, got {value!r}")
    return ts


def _datetime_seconds(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def event_key(entity_id, timestamp, event_id=None):
    """Idempotency key of an event: ``"id:" + event_id`` when given, else
    ``"<entity_id>@<timestamp>"`` (timestamp as the shortest exact float)."""
    if event_id is not None:
        return f"id:{event_id}"
    return f"{entity_id}@{float(timestamp)!r}"


class AnomalyPipeline:
    """Turn a fitted detector's scores into durable, de-duplicated alerts.

    Each event (a point plus ``entity_id`` / ``timestamp`` / optional
    ``event_id`` metadata) is scored in [0, 1] (**higher = more
    anomalous**): the detector's ``anomaly_score`` when it has one, else the
    empirical CDF of ``-score_samples`` on ``reference`` (a calibration
    fitted once, here).  A score at or above ``threshold`` is an alert
    candidate with the tier of its score band.  Per entity and by **event
    time**, a candidate within ``suppression_window`` seconds of the entity's
    last alert at or before it is suppressed, unless its tier is higher than
    that alert's: then it escalates (a new alert, which also restarts the
    window).  Replaying history therefore behaves like live traffic.

    Processing is idempotent per event: an event whose key (``event_id``,
    else ``entity_id@timestamp``) already has an alert in the store is
    skipped, and the suppression state is read back from the stored alerts,
    so re-feeding a stream after a crash writes exactly the alerts an
    uninterrupted run writes (for streams in event-time order per entity).

    Parameters
    ----------
    detector : fitted estimator
        Anything with ``anomaly_score(X)`` in [0, 1] (anomaly_fast's
        estimators), or a scikit-learn style detector with ``score_samples``
        (lower = more abnormal) together with ``reference``.
    threshold : float in [0, 1], default=0.7
        Alert when the score is at or above it.  Adapted by :meth:`feedback`.
    suppression_window : float >= 0, default=300.0
        Seconds of event time during which an entity's repeats are
        suppressed.
    tiers : dict of str -> float, default=None
        Tier name -> lowest score of its band; default
        ``{"warning": 0.7, "critical": 0.8, "emergency": 0.9}``.  A score at
        or above the threshold but below every band gets the lowest tier.
    store : None, str/Path, or an alert store, default=None
        ``None``: a bounded in-memory buffer (``buffer_size`` alerts);
        a path: a SQLite file (WAL) where every alert is committed before
        it is returned and from which threshold, feedback and suppression
        state are restored on restart.
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
        Precision is measured on the last this-many labelled alerts.
    max_entities : int, default=100_000
        Entities whose last alert is kept in memory (least recently alerted
        dropped first; entities whose window has expired are dropped anyway).
        A dropped entity's state is read back from the store when needed.
    buffer_size : int, default=10_000
        Alerts kept by the in-memory store (``store=None``).
    monitor_options : dict, default=None
        Extra keyword arguments of :class:`FeatureMonitor`.
    on_drift : callable, default=None
        Called with each list of new :class:`DriftEvent` (after they are
        stored).

    Attributes
    ----------
    threshold : float
        The current threshold.
    monitor : FeatureMonitor or None
    store : the alert store
    stats : dict
        Counters: ``events``, ``unscorable`` (rows with missing values),
        ``alerts``, ``escalations``, ``suppressed``, ``duplicates``
        (events already alerted), ``drift_events``.

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
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "suppression_window": [Interval(Real, 0, None, closed="left")],
        "tiers": [dict, None],
        "store": [None, str, os.PathLike, MemoryAlertStore, SQLiteAlertStore],
        "model_version": [str, None],
        "monitor_features": ["boolean"],
        "feature_names": [list, None],
        "reference": ["array-like", dict, None],
        "target_precision": [Interval(Real, 0, 1, closed="right")],
        "threshold_step": [Interval(Real, 0, 1, closed="neither")],
        "threshold_bounds": [tuple, list],
        "min_feedback": [Interval(Integral, 1, None, closed="left")],
        "feedback_window": [Interval(Integral, 1, None, closed="left")],
        "max_entities": [Interval(Integral, 1, None, closed="left")],
        "buffer_size": [Interval(Integral, 1, None, closed="left")],
        "monitor_options": [dict, None],
        "on_drift": [callable, None],
    }

    def __init__(
        self,
        detector,
        threshold=0.7,
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
        max_entities=100_000,
        buffer_size=10_000,
        monitor_options=None,
        on_drift=None,
    ):
        params = dict(locals())
        del params["self"]
        validate_parameter_constraints(self._parameter_constraints, params, caller_name="AnomalyPipeline")
        if hasattr(detector, "fit"):  # streaming models (learn_one) have no fit to check
            check_is_fitted(detector)
        self.detector = detector
        self.suppression_window = float(suppression_window)
        self.target_precision = float(target_precision)
        self.threshold_step = float(threshold_step)
        self.min_feedback = int(min_feedback)
        self.feedback_window = int(feedback_window)
        self.max_entities = int(max_entities)
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
        if monitor_features:
            self.monitor = FeatureMonitor(
                self.feature_names,
                reference=None if reference is None else reference,
                **(monitor_options or {}),
            )

        self.store = open_store(store, buffer_size)
        self.stats = dict.fromkeys(
            ("events", "unscorable", "alerts", "escalations", "suppressed", "duplicates", "drift_events"), 0
        )
        self._entities = OrderedDict()  # entity -> (timestamp, tier, alert_id) of its latest alert
        self._watermark = -math.inf  # latest event time seen
        self._alerts_since_sweep = 0
        self._labels = OrderedDict()  # alert_id -> is_true_positive, last feedback_window
        self._restore(float(threshold))

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
            return lambda X: np.clip(np.asarray(detector.anomaly_score(X), dtype=np.float64), 0.0, 1.0)
        if reference is None or isinstance(reference, dict):
            raise ValueError(
                f"{type(detector).__name__} has no anomaly_score: pass reference=<training data> "
                "to calibrate score_samples into [0, 1]"
            )
        R = np.asarray(reference, dtype=np.float64)
        calibration = fit_calibration(-np.asarray(detector.score_samples(R), dtype=np.float64), "rank")
        return lambda X: apply_calibration(calibration, -np.asarray(detector.score_samples(X), dtype=np.float64))

    def _restore(self, threshold):
        history = self.store.threshold_history(limit=1)
        if history:
            self.threshold = float(history[-1]["new"])
        else:
            self.threshold = threshold
            self._record_threshold(None, threshold, "initial threshold", time.time())
        for fb in self.store.feedback(limit=self.feedback_window):
            self._labels.pop(fb["alert_id"], None)
            self._labels[fb["alert_id"]] = fb["is_true_positive"]
        latest = self.store.max_alert_time()
        if latest is not None:
            recent = self.store.latest_alerts_since(latest - self.suppression_window)
            for entity, state in list(recent.items())[-self.max_entities :]:
                self._entities[entity] = state
            self._watermark = latest

    def _record_threshold(self, old, new, reason, timestamp):
        self.store.add_threshold_change({"timestamp": timestamp, "old": old, "new": new, "reason": reason})

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
                except (TypeError, ValueError):
                    raise TypeError("point must hold numbers only") from None
            else:
                raise TypeError(f"point must be numeric, got dtype {x.dtype}")
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1 or x.shape[0] != self.n_features:
            raise ValueError(f"point must have {self.n_features} features, got shape {x.shape}")
        return x.astype(np.float64, copy=False)

    def _tier(self, score):
        i = int(np.searchsorted(self._tier_bounds, score, side="right")) - 1
        return self._tier_names[max(i, 0)]

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
            seconds, ISO-8601 or datetime; default now), optional
            ``event_id``; other keys are copied into the alert's context.

        Returns
        -------
        AnomalyAlert or None
            The alert, already committed to the store; None when the score is
            below the threshold, suppressed, or the event was already
            alerted.
        """
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        x = self._point(point)
        ts = parse_timestamp(metadata.get("timestamp"), None)
        if ts is None:
            ts = time.time()
        self.stats["events"] += 1
        if ts > self._watermark:
            self._watermark = ts
        if self.monitor is not None:
            events = self.monitor.update(x, ts)
            if events:
                self._drift(events)
        if not np.isfinite(x).all():
            self.stats["unscorable"] += 1
            return None
        score = float(self._scorer(x.reshape(1, -1))[0])
        if score < self.threshold:
            return None
        alerts = self._candidates([(0, score, metadata, ts)], x.reshape(1, -1))
        return alerts[0] if alerts else None

    # -- many events ----------------------------------------------------------------
    def process_batch(self, X, metadata=None):
        """Score the rows of ``X`` as events in row order; return the list of
        alerts they raised (committed to the store in one transaction).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        metadata : list of dict, or dict of sequences, or dict, default=None
            Per row as in :meth:`process`: a list with one dict per row, or a
            dict whose ``entity_id`` / ``timestamp`` / ``event_id`` values are
            sequences of length n_events (or scalars shared by every row).

        Returns
        -------
        list of AnomalyAlert
        """
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must be numeric, got dtype {X.dtype}")
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n_events, {self.n_features}), got {X.shape}")
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = X.shape[0]
        if n == 0:
            return []
        meta = _BatchMetadata(metadata, n, time.time())
        self.stats["events"] += n
        finite = np.isfinite(X).all(axis=1)
        if self.monitor is not None:
            events = self.monitor.update_many(X, meta.timestamps_view())
            if events:
                self._drift(events)
        scores = np.zeros(n)
        if finite.all():
            scores = self._scorer(X)
        else:
            self.stats["unscorable"] += int(n - finite.sum())
            rows = np.flatnonzero(finite)
            if rows.shape[0]:
                scores[rows] = self._scorer(X[rows])
        wm = meta.max_timestamp()
        if wm > self._watermark:
            self._watermark = wm
        hits = np.flatnonzero(finite & (scores >= self.threshold))
        if hits.shape[0] == 0:
            return []
        candidates = [(int(i), float(scores[i]), meta.row(int(i)), meta.timestamp(int(i))) for i in hits]
        return self._candidates(candidates, X)

    # -- the alert decision ----------------------------------------------------------------
    def _candidates(self, candidates, X):
        keyed = []
        for i, score, md, ts in candidates:
            entity = str(md.get("entity_id", "default"))
            keyed.append((i, score, md, ts, entity, event_key(entity, ts, md.get("event_id"))))
        done = self.store.existing_event_keys([k[-1] for k in keyed])
        alerts = []
        with self.store.transaction():
            for i, score, md, ts, entity, key in keyed:
                if key in done:
                    self.stats["duplicates"] += 1
                    continue
                tier = self._tier(score)
                state = self._state(entity, ts)
                context = {k: v for k, v in md.items() if k not in ("entity_id", "timestamp", "event_id")}
                if state is None or ts - state[0] >= self.suppression_window:
                    context["reason"] = "new"
                elif self._tier_rank[tier] > self._tier_rank.get(state[1], -1):
                    context.update(reason="escalation", escalated_from=state[1], previous_alert_id=state[2])
                    self.stats["escalations"] += 1
                else:
                    self.stats["suppressed"] += 1
                    continue
                alert = AnomalyAlert(
                    alert_id=hashlib.sha256(f"{self.model_version}|{key}".encode()).hexdigest()[:20],
                    timestamp=ts,
                    entity_id=entity,
                    score=score,
                    tier=tier,
                    threshold=self.threshold,
                    features=dict(zip(self.feature_names, X[i].tolist())),
                    detector=self.detector_name,
                    model_version=self.model_version,
                    context=context,
                    event_key=key,
                )
                self.store.add_alerts([alert])
                done.add(key)
                self._remember(entity, (ts, tier, alert.alert_id))
                alerts.append(alert)
        self.stats["alerts"] += len(alerts)
        return alerts

    def _state(self, entity, ts):
        """(timestamp, tier, alert_id) of the entity's latest alert at or
        before ``ts``: from memory when it is the latest, else from the
        store (late events, entities dropped from memory)."""
        state = self._entities.get(entity)
        if state is None:
            state = self.store.latest_alert(entity)
            if state is None:
                return None
            self._remember(entity, state)
        if state[0] <= ts:
            return state
        return self.store.latest_alert(entity, ts)

    def _remember(self, entity, state):
        old = self._entities.get(entity)
        if old is not None and old[0] > state[0]:
            return  # a late alert: the entity's latest stays
        self._entities.pop(entity, None)
        self._entities[entity] = state
        self._alerts_since_sweep += 1
        if len(self._entities) > self.max_entities:
            self._entities.popitem(last=False)
        if self._alerts_since_sweep >= _EXPIRY_EVERY:
            self._sweep()

    def _sweep(self):
        """Drop entities whose last alert is older than the window (their
        next alert would be new anyway; late events read the store)."""
        horizon = self._watermark - self.suppression_window
        for entity in [e for e, s in self._entities.items() if s[0] < horizon]:
            del self._entities[entity]
        self._alerts_since_sweep = 0

    def _drift(self, events):
        self.store.add_drift_events(events)
        self.stats["drift_events"] += len(events)
        if self.on_drift is not None:
            self.on_drift(events)

    # -- feedback -------------------------------------------------------------------
    def feedback(self, alert_id, is_true_positive, timestamp=None):
        """Record an analyst's verdict on an alert and adapt the threshold.

        Over the last ``feedback_window`` labelled alerts (a new verdict on
        the same alert replaces the old one), once there are
        ``min_feedback``, precision below ``target_precision`` raises the
        threshold and precision above it lowers it, by
        ``min(threshold_step, |precision - target| / 2)``, within
        ``threshold_bounds``.  Every change is stored with its reason.

        Returns
        -------
        float
            The threshold after this feedback.
        """
        if not isinstance(is_true_positive, (bool, np.bool_)):
            raise TypeError(f"is_true_positive must be a bool, got {type(is_true_positive).__name__}")
        if self.store.get_alert(str(alert_id)) is None:
            raise ValueError(f"unknown alert id {alert_id!r} (not in the store)")
        timestamp = time.time() if timestamp is None else parse_timestamp(timestamp, None)
        alert_id = str(alert_id)
        with self.store.transaction():
            self.store.add_feedback(alert_id, bool(is_true_positive), timestamp)
            self._labels.pop(alert_id, None)
            self._labels[alert_id] = bool(is_true_positive)
            while len(self._labels) > self.feedback_window:
                self._labels.popitem(last=False)
            n = len(self._labels)
            if n >= self.min_feedback:
                precision = sum(self._labels.values()) / n
                error = self.target_precision - precision
                step = math.copysign(min(self.threshold_step, abs(error) / 2.0), error)
                low, high = self.threshold_bounds
                new = min(high, max(low, self.threshold + step))
                if new != self.threshold:
                    direction = "below" if error > 0 else "above"
                    reason = (
                        f"precision {precision:.3f} over the last {n} labelled alerts is {direction} "
                        f"the target {self.target_precision:.3f}"
                    )
                    self._record_threshold(self.threshold, new, reason, timestamp)
                    self.threshold = new
        return self.threshold

    def threshold_history(self):
        """Every threshold change: dicts with ``timestamp``, ``old``, ``new``
        and ``reason`` (the in-memory store keeps the last ``buffer_size``)."""
        return self.store.threshold_history()

    # -- reports --------------------------------------------------------------------
    def feature_report(self):
        """Per-feature drift and data-quality summary (see
        :meth:`FeatureMonitor.feature_report`); ``[]`` when monitoring is off."""
        return [] if self.monitor is None else self.monitor.feature_report()

    def drift_events(self, limit=None):
        """Stored drift events (dicts), oldest first."""
        return self.store.drift_events(limit)

    def alerts(self, limit=None):
        """Stored alerts (dicts), oldest first."""
        return self.store.alerts(limit)

    def close(self):
        self.store.close()


def _number(value, name):
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"feature {name!r} must be a number, got {type(value).__name__}")
    return float(value)


class _BatchMetadata:
    """Per-row metadata of a batch, parsed lazily (only rows that matter)."""

    def __init__(self, metadata, n, now):
        self.n = n
        self.now = now
        self.rows = None
        self.columns = {}
        self._ts = None
        if metadata is None:
            metadata = {}
        if isinstance(metadata, dict):
            for key, value in metadata.items():
                if isinstance(value, (list, tuple, np.ndarray)):
                    if len(value) != n:
                        raise ValueError(f"metadata[{key!r}] has {len(value)} values for {n} events")
                self.columns[key] = value
        elif isinstance(metadata, (list, tuple)):
            if len(metadata) != n:
                raise ValueError(f"metadata has {len(metadata)} entries for {n} events")
            if not all(isinstance(m, dict) for m in metadata):
                raise TypeError("metadata entries must be dicts")
            self.rows = metadata
        else:
            raise TypeError(f"metadata must be a dict or a list of dicts, got {type(metadata).__name__}")
        ts = self.columns.get("timestamp")
        if isinstance(ts, (list, tuple, np.ndarray)):
            arr = np.asarray(ts)
            if arr.dtype.kind in "iuf":
                arr = arr.astype(np.float64)
                if not np.isfinite(arr).all():
                    raise ValueError("metadata timestamps must be finite")
                self._ts = arr
            else:
                self._ts = np.array([parse_timestamp(v, now) for v in ts], dtype=np.float64)
        elif self.rows is None:
            self._ts = np.full(n, parse_timestamp(ts, now))

    def timestamp(self, i):
        if self._ts is not None:
            return float(self._ts[i])
        return parse_timestamp(self.rows[i].get("timestamp"), self.now)

    def timestamps_view(self):
        return self._ts if self._ts is not None else _LazyTimestamps(self)

    def max_timestamp(self):
        if self._ts is not None:
            return float(self._ts.max())
        return max(self.timestamp(i) for i in range(self.n))

    def row(self, i):
        if self.rows is not None:
            return self.rows[i]
        out = {}
        for key, value in self.columns.items():
            if isinstance(value, (list, tuple, np.ndarray)):
                value = value[i]
                if isinstance(value, np.generic):
                    value = value.item()
            out[key] = value
        if self._ts is not None:
            out["timestamp"] = float(self._ts[i])
        return out


class _LazyTimestamps:
    def __init__(self, meta):
        self.meta = meta

    def __getitem__(self, i):
        return self.meta.timestamp(int(i))
