"""The alert pipeline: from a fitted detector's scores to durable,
de-duplicated alerts (scoring, the write transaction with idempotency,
suppression and escalation, feedback, feature monitoring, restore from the
store).  The pieces it composes live beside it: :mod:`.events`,
:mod:`.threshold`, :mod:`.suppression`, :mod:`.alert_store`."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.utils.validation import check_is_fitted

from .._scores import calibrated_unit_scores, fit_calibration, unit_scores
from .._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from .._validation import by_position
from ..forest.explain import top_features
from ..streaming.feature_monitor import FeatureMonitor
from . import suppression
from .adaptation import AdaptationPolicy, Adapter
from .alert_store import AlertStore, event_key, open_store
from .events import METADATA_KEYS, TIMESTAMP_UNITS, AnomalyAlert, BatchMetadata, id_value, number, parse_timestamp
from .threshold import ThresholdTimeline, feedback_step

if TYPE_CHECKING:
    import pandas as pd

    from ..streaming.feature_monitor import DriftEvent

__all__ = ["AnomalyAlert", "AnomalyPipeline", "DEFAULT_TIERS", "event_key", "parse_timestamp"]

DEFAULT_TIERS = {"warning": 0.7, "critical": 0.8, "emergency": 0.9}
DEFAULT_THRESHOLD = 0.7
_MS_LOOKALIKE = 1e11  # seconds since the epoch beyond year 5138: probably milliseconds
_RETENTION_EVERY = 1024  # alerts between retention passes
STAT_KEYS = (
    "events",
    "unscorable",
    "unscorable_missing",
    "unscorable_score",
    "below_threshold",
    "alerts",
    "escalations",
    "suppressed",
    "duplicates",
    "drift_events",
)


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


def _scores_missing(detector, score_missing):
    """Whether a pipeline scores events with NaN features (its
    ``score_missing`` parameter resolved against the detector's tags)."""
    from sklearn.utils import get_tags

    try:
        takes = bool(get_tags(detector).input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator (any error): no NaN support
        takes = False
    if score_missing is True and not takes:
        raise ValueError("score_missing=True, but the detector does not take missing values (allow_nan tag)")
    return takes if score_missing == "auto" else bool(score_missing)


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
        (lower = more abnormal) together with ``reference``.  A detector
        fitted with feature names (on a DataFrame, or loaded from the
        registry) gets each event's values in the order of its
        ``feature_names_in_``, so it scores them without scikit-learn's
        "X does not have valid feature names" warning (ours are told the
        array is in that order; any other detector gets a DataFrame).
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
        a path: a :class:`~anomaly_fast.pipeline.alert_store.SQLiteAlertStore` (WAL)
        where every alert is committed before it is returned and from which
        threshold and feedback state are restored on restart.
    model_version : str, default=None
        Recorded on every alert; None -> ``registry.model_version(detector)``
        (content-derived) when it can be computed.
    monitor_features : bool, default=True
        Feed every point to a :class:`~anomaly_fast.streaming.FeatureMonitor`
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
    score_missing : bool or "auto", default="auto"
        Score events with NaN (missing) features: "auto" when the detector
        takes missing values (its ``allow_nan`` tag: anomaly_fast's forests
        and ensemble), True to require it (``ValueError`` otherwise), False
        to count them ``unscorable_missing`` without scoring.  Infinite
        features are never scored; a NaN score never alerts.
    explain : int, default=0
        Features in each alert's ``explanation``: the ``explain`` largest
        contributions of the detector's ``explain`` (the isolation forests
        and ensembles of them), computed only for events that alert (a few
        microseconds each).  0 (default) explains nothing; a positive value
        needs a detector with ``explain``.
    adapt : AdaptationPolicy, bool or None, default=None
        Replace the model after a lasting change of the data, never after an
        incident (see :class:`~anomaly_fast.pipeline.adaptation.AdaptationPolicy`); ``True`` means
        ``AdaptationPolicy()``.  Every alert carries the version that scored
        it; :meth:`model_changes` lists the decisions.  Like the feature
        monitor, the adaptation state is rebuilt by re-feeding the stream
        from its start after a restart (the store must hold this stream's
        first champion); the threshold state is kept across promotions.

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
        "score_missing": ["boolean", StrOptions({"auto"})],
        "explain": [Interval(Integral, 0, None, closed="left")],
        "adapt": [AdaptationPolicy, "boolean", None],
    }

    def __init__(
        self,
        detector: Any,
        threshold: float | None = None,
        suppression_window: float = 300.0,
        tiers: dict[str, float] | None = None,
        store: AlertStore | str | os.PathLike[str] | None = None,
        model_version: str | None = None,
        monitor_features: bool = True,
        *,
        feature_names: list[str] | None = None,
        reference: npt.ArrayLike | dict[str, Sequence[float]] | None = None,
        target_precision: float = 0.9,
        threshold_step: float = 0.02,
        threshold_bounds: tuple[float, float] | list[float] = (0.5, 0.99),
        min_feedback: int = 10,
        feedback_window: int = 100,
        max_entities: int | None = None,
        buffer_size: int = 10_000,
        monitor_options: dict[str, Any] | None = None,
        on_drift: Callable[[list[DriftEvent]], object] | None = None,
        timestamp_unit: Literal["s", "ms", "us", "ns"] = "s",
        score_missing: bool | Literal["auto"] = "auto",
        explain: int = 0,
        adapt: AdaptationPolicy | bool | None = None,
    ) -> None:
        params = dict(locals())
        del params["self"]
        validate_parameter_constraints(self._parameter_constraints, params, caller_name="AnomalyPipeline")
        if hasattr(detector, "fit"):  # streaming models (learn_one) have no fit to check
            check_is_fitted(detector)
        if max_entities is not None:
            warnings.warn(
                "max_entities has no effect (suppression state is read from the store) and will be removed",
                FutureWarning,
                stacklevel=2,
            )
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
            if (
                not isinstance(name, str)
                or isinstance(bound, bool)
                or not isinstance(bound, Real)
                or not 0 <= bound <= 1
            ):
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
        self._scorer, self._raw_one = _scorers(detector, reference)
        self._explained = None  # (X, contributions) of the event being processed
        self.explain = int(explain)
        self._explainer = self._make_explainer(detector) if self.explain else None
        self.detector_name = type(detector).__name__
        if model_version is None:
            try:
                from .registry import model_version as version_of

                model_version = version_of(detector)
            except Exception:  # noqa: BLE001 - a version is informative only
                model_version = None
        self.model_version = model_version
        self.on_drift = on_drift
        self._score_nan = _scores_missing(detector, score_missing)
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
        self._thresholds = ThresholdTimeline()
        self._restore(None if threshold is None else float(threshold))
        self._adapter = None
        if adapt:
            self._start_adapter(AdaptationPolicy() if adapt is True else adapt)

    # -- set-up ---------------------------------------------------------------------
    @staticmethod
    def _n_features(detector, feature_names, reference):
        n = getattr(detector, "n_features_in_", None)
        if n is None and feature_names is not None:
            n = len(feature_names)
        if n is None and reference is not None and not isinstance(reference, dict):
            n = np.asarray(reference).shape[1]
        if n is None:
            raise ValueError(
                "cannot tell the number of features: the detector has no n_features_in_; pass feature_names"
            )
        return int(n)

    def _make_explainer(self, detector):
        """contributions(x) of one validated point, for ``explain > 0``.  A
        forest scoring through its own ``anomaly_score`` scores one event in
        its explain walk instead (same score, one walk: the contributions of
        an alerting event are then at hand, see :meth:`_explanation`)."""
        from ..forest.base import BaseIsolationForest

        if isinstance(detector, BaseIsolationForest):  # the point is validated here: skip it there
            if self._raw_one is not None and hasattr(detector, "anomaly_score"):
                self._raw_one = self._score_and_explain_one
            return lambda x: detector._explain(x.reshape(1, -1))[1][0]
        if hasattr(detector, "_explain") and hasattr(detector, "calibrations_"):  # AnomalyEnsemble
            return lambda x: detector._explain(x.reshape(1, -1))[0]
        if not hasattr(detector, "explain"):
            raise ValueError(
                f"explain={self.explain} needs a detector with explain(); {type(detector).__name__} has none"
            )
        explain = by_position(detector, detector.explain)
        return lambda x: np.asarray(explain(x.reshape(1, -1)), dtype=np.float64)[0]

    def _score_and_explain_one(self, X):
        """anomaly_score of a one-row X from the forest's explain walk; the
        contributions wait for :meth:`_explanation` (under the lock)."""
        scores, phi = self.detector._explain(X)
        self._explained = (X, phi[0])
        return float(-scores[0])

    def _explanation(self, X, i):
        """The alert's ``explanation``: the top ``explain`` features of row
        ``i`` of ``X`` (contributions from the scoring walk when it gave
        them)."""
        if not self.explain:
            return []
        explained = self._explained
        if explained is not None and explained[0] is X:
            contributions = explained[1]
        else:
            contributions = self._explainer(X[i])
        return top_features(contributions, X[i], self.explain, self.feature_names)

    def _start_adapter(self, policy):
        """The adaptation state; the store records the stream's first
        champion, and a restart must begin with it to replay exactly."""
        adapter = Adapter(
            policy,
            self.detector,
            self.model_version,
            (self._scorer, self._raw_one),
            make_scorers=_scorers,
            use_model=self._use_model,
            top_bound=self._tier_bounds[-1],
            feature_names=self.feature_names,
        )

        def record_initial():
            first = [c for c in self.store.model_changes() if c["kind"] == "initial"]
            if first and first[0]["version"] != self.model_version:
                raise ValueError(
                    f"this store's stream started with model {first[0]['version']}, not {self.model_version}: "
                    "start with that model and re-feed the stream from its start to resume adaptation"
                )
            if not first:
                self.store.add_model_changes([adapter.initial_record()])

        with self._lock:
            self.store.run_transaction(record_initial)
        self._adapter = adapter

    def _use_model(self, detector, version, scorers):
        """Score with ``detector`` from now on (a promotion, or its undo)."""
        self.detector, self.model_version = detector, version
        self._scorer, self._raw_one = scorers
        self.detector_name = type(detector).__name__
        if self.explain:  # the new model explains its alerts (and may score in its explain walk)
            self._explainer = self._make_explainer(detector)

    def _restore(self, threshold):
        """Threshold history from the store; an explicit ``threshold`` that
        differs from the stored one is recorded as a change, stamped with
        the store's event-time watermark."""

        def record():
            self._thresholds.add(self.store.threshold_changes(self._thresholds.last_seq))
            watermark = self.store.event_time_watermark()
            if not len(self._thresholds):
                value = DEFAULT_THRESHOLD if threshold is None else threshold
                self._record_threshold(None, value, "initial threshold", -math.inf)
            elif threshold is not None and threshold != self._thresholds.current():
                current = self._thresholds.current()
                stamp = -math.inf if watermark is None else watermark
                self._record_threshold(
                    current, threshold, f"set to {threshold:g} by the caller (was {current:g})", stamp
                )
            return watermark

        with self._lock:
            watermark = self.store.run_transaction(record)
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
    def adapt(self) -> AdaptationPolicy | None:
        """The :class:`AdaptationPolicy` in force, or None."""
        return None if self._adapter is None else self._adapter.policy

    @property
    def threshold(self) -> float:
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
                x[j] = number(value, name)
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
                "pass timestamp_unit='ms' (or 'us', 'ns')",
                UserWarning,
                stacklevel=3,
            )

    def _ids(self, md):
        """(entity, event_id or None) of one event's metadata, validated."""
        entity = id_value(md.get("entity_id", "default"), "entity_id")
        event_id = md.get("event_id")
        if event_id is not None:
            event_id = id_value(event_id, "event_id")
        limit = self.store.max_id_length
        for name, value in (("entity_id", entity), ("event_id", event_id)):
            if value is not None and len(value) > limit:
                raise ValueError(
                    f"{name} is {len(value)} characters long; the store's limit is {limit} (max_id_length)"
                )
        return entity, event_id

    def _candidate(self, i, score, md, ts, x, version=None):
        entity, event_id = self._ids(md)
        version = self.model_version if version is None else version
        return (i, score, md, ts, entity, event_key(entity, ts, event_id, x), version)

    def _tier(self, score):
        i = int(np.searchsorted(self._tier_bounds, score, side="right")) - 1
        return self._tier_names[max(i, 0)]

    def _check_open(self):
        if self._closed:
            raise ValueError("the pipeline is closed")

    # -- one event ------------------------------------------------------------------
    def process(
        self, point: npt.ArrayLike | Mapping[str, float], metadata: Mapping[str, Any] | None = None
    ) -> AnomalyAlert | None:
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
            id_value(entity, "entity_id")
        if not isinstance(event_id, (str, int, float)) and event_id is not None:
            id_value(event_id, "event_id")
        X = x.reshape(1, -1)
        with self._lock:
            if self._closed:
                raise ValueError("the pipeline is closed")
            if self.store.shared:  # other processes may have changed the threshold
                self._refresh_thresholds()
            if self._adapter is not None:
                return self._process_adapting(x, X, ts, metadata)
            unscorable = None
            if np.isfinite(x).all() or (self._score_nan and not np.isinf(x).any()):
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

    def _process_adapting(self, x, X, ts, metadata):
        """:meth:`process` with adaptation: the adapter sees the event after
        it is scored; on any error it forgets it."""
        adapter = self._adapter
        try:
            score = float(self._scorer(X)[0]) if np.isfinite(x).all() else math.nan
            version = self.model_version
            candidates = []
            if score >= self._thresholds.at(ts):  # False for NaN (unscorable)
                candidates.append(self._candidate(0, score, metadata, ts, x, version))
            adapter.observe(X, ts, score, self._thresholds.at(ts), [metadata.get("entity_id", "default")])
            drift, alerts, counts = self._feed_and_write(candidates, X, ts, one=True)
        except BaseException:
            adapter.rollback()
            raise
        changes = adapter.pending_changes
        adapter.commit()
        self._count(1, int(np.isfinite(x).all()), int(not math.isnan(score)), len(candidates))
        self._committed(X, ts, ts, alerts, counts, drift, changes)
        return alerts[0] if alerts else None

    def _count(self, n, n_finite, n_scorable, n_candidates):
        stats = self.stats
        stats["events"] += n
        stats["unscorable"] += n - n_scorable
        stats["unscorable_missing"] += n - n_finite
        stats["unscorable_score"] += n_finite - n_scorable
        stats["below_threshold"] += n_scorable - n_candidates

    # -- many events ----------------------------------------------------------------
    def process_batch(
        self,
        X: npt.ArrayLike,
        metadata: Sequence[Mapping[str, Any]] | Mapping[str, Any] | pd.DataFrame | None = None,
    ) -> list[AnomalyAlert]:
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
        meta = BatchMetadata(metadata, n, time.time(), self.timestamp_unit)
        ts = meta.timestamps
        self._check_unit(float(ts.max()))
        with self._lock:
            self._check_open()
            if self.store.shared:
                self._refresh_thresholds()
            finite = ~np.isinf(X).any(axis=1) if self._score_nan else np.isfinite(X).all(axis=1)
            n_finite = int(finite.sum())
            thresholds = self._thresholds.at_many(ts)
            adapter = self._adapter
            try:
                if adapter is None:
                    scores, versions = self._score_rows(X, finite, n_finite), None
                else:
                    scores, versions = self._score_adapting(X, finite, ts, thresholds, meta)
                scorable = np.isfinite(scores)
                n_scorable = int(scorable.sum())
                hits = np.flatnonzero(scorable & (scores >= thresholds))
                candidates = [
                    self._candidate(
                        int(i),
                        float(scores[i]),
                        meta.row(int(i)),
                        float(ts[i]),
                        X[i],
                        self.model_version if versions is None else versions[i],
                    )
                    for i in hits
                ]
                drift, alerts, counts = self._feed_and_write(candidates, X, ts, one=False)
            except BaseException:
                if adapter is not None:
                    adapter.rollback()
                raise
            changes = []
            if adapter is not None:
                changes = adapter.pending_changes
                adapter.commit()
            self._count(n, n_finite, n_scorable, hits.shape[0])
            self._committed(X, ts, float(ts.max()), alerts, counts, drift, changes)
            return alerts

    def _score_rows(self, X, finite, n_finite):
        """Scores of the rows of X with the current model; NaN for rows
        with NaN/inf features."""
        if n_finite == X.shape[0]:
            return np.asarray(self._scorer(X), dtype=np.float64)
        scores = np.full(X.shape[0], np.nan)
        rows = np.flatnonzero(finite)
        if rows.shape[0]:
            scores[rows] = self._scorer(X[rows])
        return scores

    def _score_adapting(self, X, finite, ts, thresholds, meta):
        """(scores, versions): the rows scored in segments that end where
        the adapter may promote a challenger, which scores the rows after."""
        n = X.shape[0]
        scores = np.empty(n)
        versions = np.empty(n, dtype=object)
        thresholds = np.broadcast_to(thresholds, (n,))
        entities = meta.entities()
        start = 0
        while start < n:
            stop = min(n, start + self._adapter.until_decision())
            part = slice(start, stop)
            scores[part] = self._score_rows(X[part], finite[part], int(finite[part].sum()))
            versions[part] = self.model_version
            self._adapter.observe(X[part], ts[part], scores[part], thresholds[part], entities[start:stop])
            start = stop
        return scores, versions

    # -- the alert decision ----------------------------------------------------------------
    def _write(self, candidates, X, drift):
        """Decide the candidates and store the alerts and drift events, in
        one store transaction (run again from the start if the store's
        connection broke before it committed: the decision is read from the
        store).  Returns (alerts, counts); the pipeline's own state is not
        touched (see :meth:`_committed`)."""
        return self.store.run_transaction(self._decide, candidates, X, drift)

    def _decide(self, candidates, X, drift):
        counts = {"duplicates": 0, "below_threshold": 0, "suppressed": 0, "escalations": 0}
        alerts = []
        store = self.store
        self._refresh_thresholds()  # mirrors committed changes: safe even if this transaction fails
        done = store.existing_event_keys([c[5] for c in candidates]) if candidates else ()
        for i, score, md, ts, entity, key, version in candidates:
            if key in done:
                counts["duplicates"] += 1
                continue
            threshold = self._thresholds.at(ts)
            if score < threshold:  # another writer raised it meanwhile
                counts["below_threshold"] += 1
                continue
            tier = self._tier(score)
            state = store.latest_alert(entity, ts)
            context = {k: v for k, v in md.items() if k not in METADATA_KEYS}
            decision = suppression.decide(state, ts, tier, self.suppression_window, self._tier_rank)
            if decision == suppression.NEW:
                context["reason"] = "new"
            elif decision == suppression.ESCALATION:
                context.update(reason="escalation", escalated_from=state[1], previous_alert_id=state[2])
                counts["escalations"] += 1
            else:
                counts["suppressed"] += 1
                continue
            alert = AnomalyAlert(
                alert_id=hashlib.sha256(f"{version}|{key}".encode()).hexdigest()[:20],
                timestamp=ts,
                entity_id=entity,
                score=score,
                tier=tier,
                threshold=threshold,
                features=dict(zip(self.feature_names, X[i].tolist())),
                detector=self.detector_name,
                model_version=version,
                context=context,
                event_key=key,
                explanation=self._explanation(X, i),
            )
            store.add_alerts([alert])
            done.add(key)
            alerts.append(alert)
        if drift:
            store.add_drift_events(drift)
        changes = None if self._adapter is None else self._adapter.pending_changes
        if changes:
            store.add_model_changes(changes)
        return alerts, counts

    def _feed_and_write(self, candidates, X, timestamps, one):
        """Feed the monitor, then decide and write; on any error the monitor
        is rebuilt as it was and the error propagates."""
        try:
            drift = []
            if self.monitor is not None:
                drift = self.monitor.update(X[0], timestamps) if one else self.monitor.update_many(X, timestamps)
            if not candidates and not drift and (self._adapter is None or not self._adapter.pending_changes):
                return drift, [], None
            return (drift, *self._write(candidates, X, drift))
        except BaseException:
            if self.monitor is not None:
                self.monitor = self._monitor_undo.restore()
            raise

    def _committed(self, X, timestamps, latest, alerts, counts, drift, changes=()):
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
        if changes and self._adapter.policy.on_change is not None:
            self._adapter.policy.on_change(changes)

    # -- feedback -------------------------------------------------------------------
    def feedback(self, alert_id: str, is_true_positive: bool, timestamp: object = None) -> float:
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

            def record():
                if store.get_alert(alert_id) is None:
                    raise ValueError(f"unknown alert id {alert_id!r} (not in the store)")
                self._refresh_thresholds()
                store.add_feedback(alert_id, bool(is_true_positive), timestamp)
                labels = store.latest_labels(self.feedback_window)
                current = self._thresholds.current()
                if len(labels) >= self.min_feedback:
                    new, reason = feedback_step(
                        current, labels, self.target_precision, self.threshold_step, self.threshold_bounds
                    )
                    if reason is not None:
                        stored = store.event_time_watermark()
                        stamp = max(self._watermark, -math.inf if stored is None else stored)
                        self._record_threshold(current, new, reason, stamp)

            store.run_transaction(record)
            self._refresh_thresholds()
            return self._thresholds.current()

    def threshold_history(self) -> list[dict[str, Any]]:
        """Every threshold change: dicts with ``timestamp`` (wall clock),
        ``event_time`` (in force for events after it), ``old``, ``new`` and
        ``reason`` (the in-memory store keeps the last ``buffer_size``)."""
        with self._lock:
            return self.store.threshold_history()

    # -- reports --------------------------------------------------------------------
    def feature_report(self) -> list[dict[str, Any]]:
        """Per-feature drift and data-quality summary (see
        :meth:`FeatureMonitor.feature_report`); ``[]`` when monitoring is off."""
        with self._lock:
            return [] if self.monitor is None else self.monitor.feature_report()

    def drift_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored drift events (dicts), oldest first."""
        with self._lock:
            return self.store.drift_events(limit)

    def model_changes(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored model changes of the adaptation policy (dicts), oldest
        first: ``kind`` (``"initial"``, ``"incident"``, ``"change"``,
        ``"challenger"``, ``"promotion"``, ``"rejection"``), ``version``,
        ``previous``, ``event_index`` / ``event_time`` of the deciding
        event (a promotion scores the events after it), ``reason`` and
        ``detail`` (rates, the training window's event-time range).  The
        decisions are listed even when ``adapt`` is off now but was on."""
        with self._lock:
            return self.store.model_changes(limit)

    def alerts(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` stored alerts (dicts; all when None), oldest
        first.  :meth:`iter_alerts` reads a large store page by page."""
        with self._lock:
            return self.store.alerts(limit)

    def iter_alerts(self, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every stored alert (dicts), oldest first, read ``page_size`` at a
        time (alerts stored meanwhile are included)."""
        cursor = 0
        while True:
            with self._lock:
                page, cursor = self.store.page_alerts(cursor, page_size)
            if not page:
                return
            yield from page

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.store.close()


def _scorers(detector, reference):
    """(batch scorer, one-row scorer) of a detector: scores in [0, 1],
    higher = more anomalous; ``score_samples`` (lower = more abnormal) is
    calibrated on ``reference`` (by name when it is a DataFrame)."""
    if hasattr(detector, "anomaly_score"):
        score = by_position(detector, detector.anomaly_score)
        return (lambda X: unit_scores(score(X))), (lambda X: float(score(X)[0]))
    if reference is None or isinstance(reference, dict):
        raise ValueError(
            f"{type(detector).__name__} has no anomaly_score: pass reference=<training data> "
            "to calibrate score_samples into [0, 1]"
        )
    score = by_position(detector, detector.score_samples)
    if hasattr(reference, "columns") and getattr(detector, "feature_names_in_", None) is not None:
        # a DataFrame for a detector fitted with names: it checks them
        reference_scores = detector.score_samples(reference)
    else:
        reference_scores = score(np.asarray(reference, dtype=np.float64))
    calibration = fit_calibration(-np.asarray(reference_scores, dtype=np.float64), "rank")
    return (
        (lambda X: calibrated_unit_scores(calibration, score(X))),
        (lambda X: float(calibrated_unit_scores(calibration, score(X))[0])),
    )
