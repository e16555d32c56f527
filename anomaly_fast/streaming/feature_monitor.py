"""Per-feature drift (ADWIN) and data-quality checks on a stream of rows."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator

from .._adwin import MAX_ABS_VALUE
from .._sklearn_compat import Interval, validate_estimator_params
from .adwin import ADWIN

__all__ = ["DriftEvent", "FeatureMonitor"]

# Values further than this many training ranges outside the range are fed to
# ADWIN as if they were exactly that far out (see FeatureMonitor).
FAR_OUT = 10.0


_PARAM_NAMES = ("feature_names", "reference", "delta", "quality_window", "max_nan_rate", "max_out_of_range_rate")
_STATE_NAMES = (
    "names_",
    "low_",
    "high_",
    "_adwins",
    "_n_seen",
    "_nan",
    "_oor",
    "_drifts",
    "_last_drift",
    "_block_n",
    "_block_nan",
    "_block_oor",
    "_bad",
)
# recomputed from low_/high_ on loading (a stored copy is ignored)
_DERIVED_NAMES = (
    "_shift",
    "_scale",
    "_shift_list",
    "_scale_list",
    "_low_list",
    "_high_list",
    "_clip_low",
    "_clip_high",
    "_clip_low_list",
    "_clip_high_list",
)


def _bad(field, problem):
    return ValueError(f"FeatureMonitor state: {field} {problem}")


def _count(value, field, high):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value <= high:
        raise _bad(field, f"must be an int in [0, {high}], got {value!r}")


def _check_state(state):
    """Validate a pickled FeatureMonitor state; return the attributes to
    load (derived fields dropped: they are recomputed) or raise a
    ``ValueError`` naming the bad field.  Each ADWIN validated its own state
    when it was unpickled."""
    if not isinstance(state, dict):
        raise _bad("", "must be a dict")
    missing = [k for k in _PARAM_NAMES + _STATE_NAMES if k not in state]
    unknown = [k for k in state if k not in _PARAM_NAMES + _STATE_NAMES + _DERIVED_NAMES and k != "_sklearn_version"]
    if missing or unknown:
        raise _bad("", f"has missing keys {missing} and unknown keys {unknown}")
    probe = FeatureMonitor.__new__(FeatureMonitor)
    probe.__dict__.update({k: state[k] for k in _PARAM_NAMES})
    validate_estimator_params(probe)
    names = state["names_"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _bad("names_", "must be a non-empty list of str")
    d = len(names)
    if len(state["feature_names"]) != d:
        raise _bad("names_", f"must have one name per feature ({len(state['feature_names'])}), got {d}")
    for field in ("low_", "high_"):
        arr = state[field]
        if type(arr) is not np.ndarray or arr.dtype != np.float64 or arr.shape != (d,) or np.isnan(arr).any():
            raise _bad(field, f"must be a float64 array of shape ({d},) without NaN")
    if (
        not (np.isfinite(state["low_"]) | (state["low_"] == -np.inf)).all()
        or not (state["high_"] > -np.inf).all()
        or not (state["low_"] <= state["high_"]).all()
    ):
        raise _bad("low_/high_", "must satisfy -inf <= low <= high <= inf")
    adwins = state["_adwins"]
    if not isinstance(adwins, list) or len(adwins) != d or not all(type(a) is ADWIN for a in adwins):
        raise _bad("_adwins", f"must be a list of {d} ADWIN")
    _count(state["_n_seen"], "_n_seen", 2**62)
    for field in ("_nan", "_oor", "_drifts"):
        arr = state[field]
        if (
            type(arr) is not np.ndarray
            or arr.dtype != np.int64
            or arr.shape != (d,)
            or (arr < 0).any()
            or (arr > 2**62).any()
        ):  # room to count on without overflowing int64
            raise _bad(field, f"must be an int64 array of shape ({d},) with counts in [0, 2**62]")
    last = state["_last_drift"]
    if (
        not isinstance(last, list)
        or len(last) != d
        or not all(t is None or (isinstance(t, float) and math.isfinite(t)) for t in last)
    ):
        raise _bad("_last_drift", f"must be a list of {d} finite floats or None")
    _count(state["_block_n"], "_block_n", state["quality_window"] - 1)
    for field in ("_block_nan", "_block_oor"):
        counts = state[field]
        if not isinstance(counts, list) or len(counts) != d:
            raise _bad(field, f"must be a list of {d} counts")
        for c in counts:
            _count(c, field, state["_block_n"])
    bad = state["_bad"]
    if (
        not isinstance(bad, dict)
        or set(bad) != {"nan_rate", "out_of_range"}
        or not all(isinstance(v, list) and len(v) == d and all(isinstance(b, bool) for b in v) for v in bad.values())
    ):
        raise _bad("_bad", f"must map 'nan_rate' and 'out_of_range' to lists of {d} bools")
    return {k: v for k, v in state.items() if k not in _DERIVED_NAMES}


@dataclass(frozen=True)
class DriftEvent:
    """One finding of a :class:`FeatureMonitor`.

    Attributes
    ----------
    timestamp : float
        Event time of the row that triggered it (seconds since the epoch).
    feature : str
        Feature name.
    kind : {"drift", "nan_rate", "out_of_range"}
        ``"drift"``: ADWIN detected a change in the feature's mean;
        ``"nan_rate"`` / ``"out_of_range"``: the share of missing values /
        of values outside the training range in the last quality window
        exceeded its limit (reported when a window turns bad, not again
        while it stays bad).
    value : float
        Drift: the feature's window mean after the change (in training-range
        units when a reference is known); quality: the rate in the window.
    detail : str
        Human-readable description.
    """

    timestamp: float
    feature: str
    kind: str
    value: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeatureMonitor(BaseEstimator):
    """Watch each feature of a stream for drift and data-quality problems.

    Every feature feeds its own :class:`~anomaly_fast.ADWIN` (missing values
    skipped); with a reference (training data or its min/max), values are
    first rescaled to the training range so that ``delta`` means the same on
    every feature.  Every ``quality_window`` rows the share of missing (NaN)
    values and of values outside the training range is checked against
    ``max_nan_rate`` / ``max_out_of_range_rate``.  Memory is O(n_features *
    log(window)).

    Glitches cannot blind a feature: ``+inf``/``-inf`` count as out of
    range, and a value more than ``FAR_OUT`` (10) training ranges below or
    above the range (infinities included) is fed to ADWIN clipped to that
    distance, so one absurd reading moves the window mean by a bounded
    amount instead of making it infinite.  Without a reference (or on a side
    with no training bound) there is nothing to clip to: values ADWIN cannot
    take (``|x| > 1e120``, infinities) are counted as out of range and not
    fed.

    Threads: one monitor may be shared between threads.  ``update``,
    ``update_many``, ``reset`` and ``feature_report`` hold a per-monitor
    ``threading.Lock`` (their calls cost microseconds), so rows are taken one
    call at a time and a report never sees a half-done update.  Pickles are
    validated when loaded (``ValueError`` naming the bad field); that cannot
    make an untrusted pickle safe to load.

    Parameters
    ----------
    feature_names : list of str
        One name per feature (fixes the number of features).
    reference : array-like of shape (n_samples, n_features) or dict, default=None
        Training data, or a dict with ``"min"`` and ``"max"`` lists (as in
        :func:`anomaly_fast.pipeline.registry.data_fingerprint`).  Without it there is
        no range check and ADWIN sees raw values.
    delta : float in (0, 1), default=0.002
        ADWIN confidence.
    quality_window : int >= 1, default=1000
        Rows per data-quality check.
    max_nan_rate, max_out_of_range_rate : float in [0, 1], default=0.01, 0.05
        Limits per quality window.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.streaming import FeatureMonitor
    >>> rng = np.random.RandomState(0)
    >>> train = rng.normal(size=(1000, 2))
    >>> stream = rng.normal(size=(3000, 2))
    >>> stream[1500:, 1] += 3.0  # feature "b" shifts
    >>> monitor = FeatureMonitor(["a", "b"], reference=train)
    >>> for e in monitor.update_many(stream, np.arange(3000.0)):
    ...     print(e.kind, e.feature, e.timestamp)
    drift b 1535.0
    out_of_range b 1999.0
    """

    _parameter_constraints: dict = {
        "feature_names": [list],
        "reference": ["array-like", dict, None],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "quality_window": [Interval(Integral, 1, None, closed="left")],
        "max_nan_rate": [Interval(Real, 0, 1, closed="both")],
        "max_out_of_range_rate": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        feature_names: Sequence[Hashable],
        reference: npt.ArrayLike | Mapping[str, Sequence[float | None]] | None = None,
        delta: float = 0.002,
        quality_window: int = 1000,
        max_nan_rate: float = 0.01,
        max_out_of_range_rate: float = 0.05,
    ) -> None:
        self.feature_names = feature_names
        self.reference = reference
        self.delta = delta
        self.quality_window = quality_window
        self.max_nan_rate = max_nan_rate
        self.max_out_of_range_rate = max_out_of_range_rate
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> FeatureMonitor:
        """Forget everything seen (and apply changed parameters)."""
        with self._lock:
            return self._reset()

    def _reset(self):
        validate_estimator_params(self)
        self.names_ = [str(f) for f in self.feature_names]
        d = len(self.names_)
        if d == 0:
            raise ValueError("FeatureMonitor needs at least one feature")
        self.low_, self.high_ = self._reference_range(d)
        self._derive_scaling()
        self._adwins = [ADWIN(delta=self.delta) for _ in range(d)]
        self._n_seen = 0
        self._nan = np.zeros(d, dtype=np.int64)  # lifetime counts
        self._oor = np.zeros(d, dtype=np.int64)
        self._drifts = np.zeros(d, dtype=np.int64)
        self._last_drift = [None] * d
        self._block_n = 0
        self._block_nan = [0] * d
        self._block_oor = [0] * d
        self._bad = {"nan_rate": [False] * d, "out_of_range": [False] * d}
        return self

    def _derive_scaling(self):
        """Shift, scale and clipping bounds (in ADWIN's units) from the
        training range ``low_``/``high_``."""
        low, high = self.low_, self.high_
        span = high - low
        self._shift = np.where(np.isfinite(low), low, 0.0)
        self._scale = np.where(np.isfinite(span) & (span > 0), span, 1.0)
        with np.errstate(invalid="ignore"):
            self._clip_low = np.where(np.isfinite(low), (low - self._shift) / self._scale - FAR_OUT, -np.inf)
            self._clip_high = np.where(np.isfinite(high), (high - self._shift) / self._scale + FAR_OUT, np.inf)
        self._shift_list = self._shift.tolist()
        self._scale_list = self._scale.tolist()
        self._low_list, self._high_list = low.tolist(), high.tolist()
        self._clip_low_list, self._clip_high_list = self._clip_low.tolist(), self._clip_high.tolist()

    def _reference_range(self, d):
        ref = self.reference
        if ref is None:
            return np.full(d, -np.inf), np.full(d, np.inf)
        if isinstance(ref, dict):
            if "min" not in ref or "max" not in ref:
                raise ValueError("reference dict needs 'min' and 'max' lists")
            low = np.array([np.nan if v is None else v for v in ref["min"]], dtype=np.float64)
            high = np.array([np.nan if v is None else v for v in ref["max"]], dtype=np.float64)
        else:
            R = np.asarray(ref, dtype=np.float64)
            if R.ndim != 2 or R.shape[0] == 0:
                raise ValueError(f"reference must be a non-empty 2-D array, got shape {R.shape}")
            finite = np.where(np.isfinite(R), R, np.nan)
            with warnings.catch_warnings():  # all-NaN columns: no range
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
        if low.shape != (d,) or high.shape != (d,):
            raise ValueError(f"reference has {low.shape[0]} features, expected {d}")
        # a feature never seen finite in training has no range to check
        low = np.where(np.isnan(low), -np.inf, low)
        high = np.where(np.isnan(high), np.inf, high)
        return low, high

    # -- pickling: the lock is not pickled; a loaded state is validated ----------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = _check_state(state)
        super().__setstate__(state)
        self._derive_scaling()
        self._lock = threading.Lock()

    @property
    def n_features(self) -> int:
        return len(self.names_)

    # -- one row ----------------------------------------------------------------
    def update(self, row: npt.ArrayLike, timestamp: float) -> list[DriftEvent]:
        """Feed one row (a sequence of floats, NaN = missing) observed at
        ``timestamp``; returns the list of :class:`DriftEvent` it triggered."""
        with self._lock:
            return self._update(row, timestamp)

    def _update(self, row, timestamp):
        events = None
        values = row.tolist() if isinstance(row, np.ndarray) else list(row)
        block_nan, block_oor = self._block_nan, self._block_oor
        for j, v in enumerate(values):
            if v != v:
                block_nan[j] += 1
                continue
            out = v < self._low_list[j] or v > self._high_list[j]
            try:
                u = (v - self._shift_list[j]) / self._scale_list[j]
            except OverflowError:  # an int too large for a float
                u = math.inf if v > 0 else -math.inf
            u = min(max(u, self._clip_low_list[j]), self._clip_high_list[j])
            if not -MAX_ABS_VALUE <= u <= MAX_ABS_VALUE:  # nothing to clip to: not fed
                block_oor[j] += 1
                continue
            block_oor[j] += out
            if self._adwins[j].update(u):
                events = events or []
                events.append(self._drift_event(j, timestamp))
        self._n_seen += 1
        self._block_n += 1
        if self._block_n == self.quality_window:
            events = (events or []) + self._close_block(timestamp)
        return events or []

    def _drift_event(self, j, timestamp):
        self._drifts[j] += 1
        self._last_drift[j] = float(timestamp)
        mean = self._adwins[j].estimation
        return DriftEvent(
            float(timestamp),
            self.names_[j],
            "drift",
            float(mean),
            f"ADWIN change in the mean of {self.names_[j]!r}; window mean now {mean:.4g}",
        )

    def _close_block(self, timestamp):
        events = []
        n = self._block_n
        for kind, counts, limit, lifetime in (
            ("nan_rate", self._block_nan, self.max_nan_rate, self._nan),
            ("out_of_range", self._block_oor, self.max_out_of_range_rate, self._oor),
        ):
            bad = self._bad[kind]
            for j, c in enumerate(counts):
                lifetime[j] += c
                rate = c / n
                now_bad = rate > limit
                if now_bad and not bad[j]:
                    what = "missing" if kind == "nan_rate" else "outside the training range"
                    events.append(
                        DriftEvent(
                            float(timestamp),
                            self.names_[j],
                            kind,
                            rate,
                            f"{rate:.2%} of the last {n} values of {self.names_[j]!r} {what} (limit {limit:.2%})",
                        )
                    )
                bad[j] = now_bad
                counts[j] = 0
        self._block_n = 0
        return events

    # -- many rows --------------------------------------------------------------
    def update_many(self, X: npt.ArrayLike, timestamps: npt.ArrayLike) -> list[DriftEvent]:
        """Feed the rows of ``X`` (n, n_features) in order, as :meth:`update`
        on each, with compiled ADWIN loops; returns the events in row order."""
        with self._lock:
            return self._update_many(X, timestamps)

    def _update_many(self, X, timestamps):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        if not hasattr(timestamps, "__getitem__"):
            raise TypeError("timestamps must be indexable (one per row)")
        n, d = X.shape
        events = []
        missing = np.isnan(X)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.clip((X - self._shift) / self._scale, self._clip_low, self._clip_high)
            fed = np.abs(scaled) <= MAX_ABS_VALUE  # NaN: False
            oor_all = ((X < self.low_) | (X > self.high_) | ~fed) & ~missing
        for j in range(d):
            rows = None
            mask = fed[:, j]
            if mask.all():
                values = np.ascontiguousarray(scaled[:, j])
            else:
                rows = np.flatnonzero(mask)
                values = scaled[rows, j]
            adwin = self._adwins[j]
            pos = 0
            while pos < len(values):  # stop at each detection to report the mean then
                hit = adwin._core._update_many(values[pos:], True)
                if not len(hit):
                    break
                i = pos + int(hit[0])
                pos = i + 1
                r = i if rows is None else int(rows[i])
                events.append((r, 0, self._drift_event(j, float(timestamps[r]))))
        # quality windows, one vectorised segment per window
        start = 0
        while start < n:
            stop = min(n, start + self.quality_window - self._block_n)
            nan_counts = missing[start:stop].sum(axis=0).tolist()
            oor_counts = oor_all[start:stop].sum(axis=0).tolist()
            for j in range(d):
                self._block_nan[j] += nan_counts[j]
                self._block_oor[j] += oor_counts[j]
            self._block_n += stop - start
            self._n_seen += stop - start
            if self._block_n == self.quality_window:
                for e in self._close_block(float(timestamps[stop - 1])):
                    events.append((stop - 1, 1, e))
            start = stop
        events.sort(key=lambda t: (t[0], t[1]))
        return [e for _, _, e in events]

    # -- report -----------------------------------------------------------------
    def feature_report(self) -> list[dict[str, Any]]:
        """One dict per feature: counts of rows seen, missing and
        out-of-range values (lifetime, closed quality windows plus the open
        one), ADWIN window width and mean, drifts detected, time of the last
        drift, and the training range."""
        with self._lock:
            return self._feature_report()

    def _feature_report(self):
        report = []
        seen = max(self._n_seen, 1)
        for j, name in enumerate(self.names_):
            n_nan = int(self._nan[j] + self._block_nan[j])
            n_oor = int(self._oor[j] + self._block_oor[j])
            adwin = self._adwins[j]
            report.append(
                {
                    "feature": name,
                    "n_seen": self._n_seen,
                    "n_missing": n_nan,
                    "missing_rate": n_nan / seen,
                    "n_out_of_range": n_oor,
                    "out_of_range_rate": n_oor / seen,
                    "window_width": int(adwin.width),
                    "window_mean": float(adwin.estimation),
                    "n_drifts": int(self._drifts[j]),
                    "last_drift": self._last_drift[j],
                    "train_min": None if not np.isfinite(self.low_[j]) else float(self.low_[j]),
                    "train_max": None if not np.isfinite(self.high_[j]) else float(self.high_[j]),
                }
            )
        return report
