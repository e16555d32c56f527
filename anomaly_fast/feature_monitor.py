"""Per-feature drift (ADWIN) and data-quality checks on a stream of rows."""

import copy
import math
import warnings
from dataclasses import asdict, dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval

from .adwin import ADWIN

__all__ = ["DriftEvent", "FeatureMonitor"]


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

    def to_dict(self):
        return asdict(self)


class FeatureMonitor(BaseEstimator):
    """Watch each feature of a stream for drift and data-quality problems.

    Every feature feeds its own :class:`~anomaly_fast.ADWIN` (missing values
    skipped); with a reference (training data or its min/max), values are
    first rescaled to the training range so that ``delta`` means the same on
    every feature.  Every ``quality_window`` rows the share of missing (NaN /
    inf) values and of values outside the training range is checked against
    ``max_nan_rate`` / ``max_out_of_range_rate``.  Memory is O(n_features *
    log(window)).

    Parameters
    ----------
    feature_names : list of str
        One name per feature (fixes the number of features).
    reference : array-like of shape (n_samples, n_features) or dict, default=None
        Training data, or a dict with ``"min"`` and ``"max"`` lists (as in
        :func:`anomaly_fast.registry.data_fingerprint`).  Without it there is
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
    >>> from anomaly_fast.feature_monitor import FeatureMonitor
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
        feature_names,
        reference=None,
        delta=0.002,
        quality_window=1000,
        max_nan_rate=0.01,
        max_out_of_range_rate=0.05,
    ):
        self.feature_names = feature_names
        self.reference = reference
        self.delta = delta
        self.quality_window = quality_window
        self.max_nan_rate = max_nan_rate
        self.max_out_of_range_rate = max_out_of_range_rate
        self.reset()

    def reset(self):
        """Forget everything seen (and apply changed parameters)."""
        self._validate_params()
        self.names_ = [str(f) for f in self.feature_names]
        d = len(self.names_)
        if d == 0:
            raise ValueError("FeatureMonitor needs at least one feature")
        low, high = self._reference_range(d)
        self.low_, self.high_ = low, high
        span = high - low
        self._shift = np.where(np.isfinite(low), low, 0.0)
        self._scale = np.where(np.isfinite(span) & (span > 0), span, 1.0)
        self._shift_list = self._shift.tolist()
        self._scale_list = self._scale.tolist()
        self._low_list, self._high_list = low.tolist(), high.tolist()
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

    @property
    def n_features(self):
        return len(self.names_)

    # -- one row ----------------------------------------------------------------
    def update(self, row, timestamp):
        """Feed one row (a sequence of floats, NaN = missing) observed at
        ``timestamp``; returns the list of :class:`DriftEvent` it triggered."""
        events = None
        values = row.tolist() if isinstance(row, np.ndarray) else list(row)
        block_nan, block_oor = self._block_nan, self._block_oor
        for j, v in enumerate(values):
            if v != v or v in (math.inf, -math.inf):
                block_nan[j] += 1
                continue
            if v < self._low_list[j] or v > self._high_list[j]:
                block_oor[j] += 1
            if self._adwins[j].update((v - self._shift_list[j]) / self._scale_list[j]):
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
                            float(timestamp), self.names_[j], kind, rate,
                            f"{rate:.2%} of the last {n} values of {self.names_[j]!r} {what} "
                            f"(limit {limit:.2%})",
                        )
                    )
                bad[j] = now_bad
                counts[j] = 0
        self._block_n = 0
        return events

    # -- many rows --------------------------------------------------------------
    def update_many(self, X, timestamps):
        """Feed the rows of ``X`` (n, n_features) in order, as :meth:`update`
        on each, with compiled ADWIN loops; returns the events in row order."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        if not hasattr(timestamps, "__getitem__"):
            raise TypeError("timestamps must be indexable (one per row)")
        n, d = X.shape
        events = []
        finite = np.isfinite(X)
        for j in range(d):
            rows = None
            col = X[:, j]
            mask = finite[:, j]
            if mask.all():
                values = (col - self._shift[j]) / self._scale[j]
            else:
                rows = np.flatnonzero(mask)
                values = (col[rows] - self._shift[j]) / self._scale[j]
            adwin = self._adwins[j]
            before = copy.deepcopy(adwin)
            hits = adwin.update_many(values)
            if hits.shape[0]:
                # replay up to each detection to report the mean at that time
                self._adwins[j] = adwin = before
                pos = 0
                for i in hits.tolist():
                    adwin.update_many(values[pos : i + 1])
                    pos = i + 1
                    r = i if rows is None else int(rows[i])
                    events.append((r, 0, self._drift_event(j, float(timestamps[r]))))
                adwin.update_many(values[pos:])
        # quality windows, one vectorised segment per window
        with np.errstate(invalid="ignore"):
            oor_all = finite & ((X < self.low_) | (X > self.high_))
        start = 0
        while start < n:
            stop = min(n, start + self.quality_window - self._block_n)
            nan_counts = (~finite[start:stop]).sum(axis=0).tolist()
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
    def feature_report(self):
        """One dict per feature: counts of rows seen, missing and
        out-of-range values (lifetime, closed quality windows plus the open
        one), ADWIN window width and mean, drifts detected, time of the last
        drift, and the training range."""
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
