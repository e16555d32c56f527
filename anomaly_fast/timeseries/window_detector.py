"""Any anomaly_fast tabular detector on sliding windows of a series."""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import HasMethods, Interval, StrOptions
from .._sklearn_compat import fit_context as _fit_context
from ..forest.base import BaseIsolationForest
from ..forest.isolation_forest import IsolationForest
from ._alarm_runs import grid_alarms, input_frame
from ._series import DUPLICATES, acf_period, infer_period, prepare_series
from ._stream import GridStream, feed

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WindowDetector"]

_SIGMA_PER_MAD = 1.4826


def sliding_windows(values, window):
    """Rows ``values[t - window + 1 : t + 1]`` for every t >= window - 1 (a view)."""
    return np.lib.stride_tricks.sliding_window_view(values, window)


class WindowDetector(BaseEstimator):
    """A tabular detector applied to sliding windows of a time series.

    Every point ``t`` is scored by the window of the ``window`` grid values
    ending at ``t`` (so batch and streaming scores agree: nothing looks
    ahead), with the estimator's ``anomaly_score`` (higher = more
    anomalous).  That score is put on the scale learnt in ``fit``: ``score =
    (a - median) / (1.4826 * MAD) / threshold`` over the training windows, so
    ``score > 1`` flags a point; alarms follow :class:`STLDetector`'s rule
    (one per run of flagged points, at its first observed cell, at most one
    per ``min_spacing`` steps).  The first ``window - 1`` points of a
    series (and of each piece after a long gap) have no full window: their
    ``anomaly_score`` is the training median and ``score`` 0.

    Inputs go through the same path as every time-series detector
    (regular grid at the median step, duplicates aggregated, NaN and missing
    timestamps filled and marked, long gaps split the series; results on the
    caller's index).

    Score convention: ``anomaly_score`` in [0, 1] and ``score`` >= 0-ish
    (negative when a window is more normal than the training median);
    **higher = more anomalous** for both.

    Parameters
    ----------
    estimator : estimator with ``anomaly_score`` or None, default=None
        An anomaly_fast tabular detector; None = ``IsolationForest(random_state=0)``.
        Any detector with ``fit`` and ``anomaly_score`` works in batch;
        ``update`` needs an isolation forest (scored through its kernel) or
        :class:`~anomaly_fast.HalfSpaceTrees` (which keeps learning online).
    window : int >= 2 or None, default=None
        Window length in grid steps; None = the dominant autocorrelation
        lag of the training series (TSB-AD's ``find_length_rank``, 125 when
        none; at most half the series), so one window spans about one cycle.
    period : int >= 2 or None, default=None
        Steps per cycle, used as the default gap limit and alarm spacing;
        None infers it from a DatetimeIndex, else from the autocorrelation.
    threshold : float > 0, default=3.0
        Robust z-score of the window score above which a point is flagged.
    min_spacing : int >= 1 or None, default=None
        Minimum steps between two alarms; None = one period.
    duplicates : {"mean", "last", "raise"}, default="mean"
    max_gap : int >= 1 or None, default=None
        Gaps longer than this many steps split the series / restart the
        stream; None = one period.

    Attributes
    ----------
    estimator_ : the fitted estimator
    window_, period_ : int
    center_, scale_ : float
        Median and robust scale of the training windows' anomaly scores.
    step_ : pandas.Timedelta or None
        Grid step of the training series (used by ``update``).

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.timeseries import WindowDetector
    >>> rng = np.random.RandomState(0)
    >>> t = np.arange(24 * 28)
    >>> y = 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.normal(size=t.size)
    >>> y[400:404] += 6.0
    >>> det = WindowDetector(period=24, window=24, threshold=4.0).fit(y[:300])
    >>> out = det.detect(y)
    >>> np.flatnonzero(out["alarm"]).tolist()
    [402]
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["anomaly_score"]), None],
        "window": [Interval(Integral, 2, None, closed="left"), None],
        "period": [Interval(Integral, 2, None, closed="left"), None],
        "threshold": [Interval(Real, 0, None, closed="neither")],
        "min_spacing": [Interval(Integral, 1, None, closed="left"), None],
        "duplicates": [StrOptions(set(DUPLICATES))],
        "max_gap": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        estimator: BaseEstimator | None = None,
        window: int | None = None,
        period: int | None = None,
        threshold: float = 3.0,
        min_spacing: int | None = None,
        duplicates: Literal["mean", "last", "raise"] = "mean",
        max_gap: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.window = window
        self.period = period
        self.threshold = threshold
        self.min_spacing = min_spacing
        self.duplicates = duplicates
        self.max_gap = max_gap

    # ----------------------------------------------------------------- batch
    def _resolve_period(self, series):
        if self.period is not None:
            return self.period
        try:
            return infer_period(getattr(series, "index", None))
        except ValueError:
            probe = prepare_series(series, 2, min_cycles=1, duplicates=self.duplicates)
            return acf_period(probe.values)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, series: npt.ArrayLike | pd.Series, y: object = None) -> WindowDetector:
        """Fit the estimator on the windows of ``series`` and learn the score scale.

        Parameters
        ----------
        series : pandas.Series or 1-D array-like
            At least ``2 * window`` steps in its longest piece.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        period = self._resolve_period(series)
        data = prepare_series(series, period, min_cycles=1, duplicates=self.duplicates, max_gap=self.max_gap)
        longest = data.segments[np.argmax(np.diff(data.segments, axis=1)[:, 0])]
        if self.window is not None:
            window = self.window
        else:  # at most half the longest piece, so there are windows to learn from
            window = min(acf_period(data.values[longest[0] : longest[1]]), max(2, (longest[1] - longest[0]) // 2))
        rows = self._rows(data, window)
        if rows.shape[0] < window:
            raise ValueError(
                f"the series gives {rows.shape[0]} full windows of {window} steps; "
                f"at least {window} are needed (a series of at least {2 * window - 1} steps)"
            )
        self.period_ = int(period)
        self.window_ = int(window)
        estimator = clone(self.estimator) if self.estimator is not None else IsolationForest(random_state=0)
        if hasattr(estimator, "learn_many"):
            estimator.learn_many(rows)
        else:
            estimator.fit(rows)
        self.estimator_ = estimator
        scores = np.asarray(estimator.anomaly_score(rows), dtype=np.float64)
        self.center_ = float(np.median(scores))
        mad = float(np.median(np.abs(scores - self.center_)))
        self.scale_ = max(_SIGMA_PER_MAD * mad, 1e-12)
        self.step_ = data.step
        return self

    def _rows(self, data, window):
        parts = [sliding_windows(data.values[a:b], window) for a, b in data.segments if b - a >= window]
        if not parts:
            return np.empty((0, window))
        return np.ascontiguousarray(np.concatenate(parts))

    def detect(self, series: npt.ArrayLike | pd.Series) -> pd.DataFrame:
        """Score every point of ``series`` and place alarms.

        Returns
        -------
        result : pandas.DataFrame
            On the input's index, columns ``value``, ``anomaly_score`` (the
            estimator's, in [0, 1]), ``score`` (``> 1`` flags), ``is_anomaly``
            and ``alarm``.  Higher = more anomalous.
        """
        check_is_fitted(self)
        data = prepare_series(series, self.period_, min_cycles=1, duplicates=self.duplicates, max_gap=self.max_gap)
        window = self.window_
        raw = np.full(data.values.shape[0], self.center_)
        rows = self._rows(data, window)
        if rows.shape[0]:
            scores = np.asarray(self.estimator_.anomaly_score(rows), dtype=np.float64)
            done = 0
            for a, b in data.segments:
                if b - a >= window:
                    count = b - a - window + 1
                    raw[a + window - 1 : b] = scores[done : done + count]
                    done += count
        score = self._normalise(raw)
        alarm = grid_alarms(score, data, self._spacing())
        columns = {
            "value": data.input_values,
            "anomaly_score": raw,
            "score": score,
            "is_anomaly": (score > 1.0) & data.observed,
        }
        return input_frame(data, columns, alarm)

    def _normalise(self, raw):
        return (raw - self.center_) / self.scale_ / self.threshold

    def _spacing(self):
        return self.period_ if self.min_spacing is None else self.min_spacing

    # ---------------------------------------------------------------- stream
    def update(self, value: float, timestamp: pd.Timestamp | str | float | None = None) -> float:
        """Take the next point of a stream; return its ``score`` (``> 1`` flags).

        Points are put on the training grid as they come: a timestamp in the
        cell of the previous point updates nothing (its score is the cell's);
        missing cells up to ``max_gap`` are filled by interpolation (marked:
        they never alarm on their own); a longer gap restarts the window.
        NaN values are skipped (score NaN).  After the call,
        ``alarm_detected`` tells whether this point raised an alarm.
        Memory is bounded by the window.  With :class:`HalfSpaceTrees` the
        model also learns each window after scoring it.
        """
        stream = self.__dict__.get("_stream")
        if stream is None:
            check_is_fitted(self)
            stream = self._stream = _Stream(self.window_)
        max_gap = self.period_ if self.max_gap is None else self.max_gap
        score, self.alarm_detected = feed(stream, self._push, value, timestamp, self.step_, max_gap, self._spacing())
        return score

    def _push(self, stream, value, observed):
        row = stream.push(value)
        raw = self.center_ if row is None else self._score_row(row)
        return (raw - self.center_) / self.scale_ / self.threshold

    def _score_row(self, row):
        est = self.estimator_
        if isinstance(est, BaseIsolationForest):
            out = self._stream.out
            est._forest.score_samples(row[None, :], out)  # kernel: score_samples = -anomaly_score
            return -out[0]
        if hasattr(est, "score_one") and hasattr(est, "learn_one"):
            score = est.score_one(row)
            est.learn_one(row)
            return score
        return float(est.anomaly_score(row[None, :])[0])

    def reset_stream(self) -> WindowDetector:
        """Forget the stream (the fitted model is kept)."""
        self.__dict__.pop("_stream", None)
        return self

    def __setstate__(self, state):
        stream = state.get("_stream")
        if stream is not None:
            stream.validate(state.get("window_"))
        self.__dict__.update(state)


class _Stream(GridStream):
    """Bounded online state of one stream: the last ``window`` grid values."""

    def __init__(self, window):
        self.buffer = np.zeros(2 * window)  # each value written twice: a window is always contiguous
        self.window = window
        self.out = np.empty(1)
        self.reset()

    def reset(self):
        super().reset()
        self.filled = 0  # grid values seen since the (re)start, capped at window
        self.head = 0  # next slot in the ring

    def push(self, value):
        """The window ending at ``value``, or None while fewer than ``window`` values were seen."""
        w = self.window
        self.buffer[self.head] = value
        self.buffer[self.head + w] = value
        self.head = (self.head + 1) % w
        self.filled = min(self.filled + 1, w)
        return self.buffer[self.head : self.head + w] if self.filled == w else None

    def validate(self, window):
        """Check a restored stream before any kernel reads it (ValueError names the field)."""
        if not isinstance(window, int) or self.window != window:
            raise ValueError(f"stream field 'window' ({self.window!r}) does not match the model's window_ ({window!r})")
        buffer = getattr(self, "buffer", None)
        if not isinstance(buffer, np.ndarray) or buffer.dtype != np.float64 or buffer.shape != (2 * window,):
            raise ValueError(f"stream field 'buffer' must be a float64 array of {2 * window} values")
        if not np.isfinite(buffer).all():
            raise ValueError("stream field 'buffer' holds non-finite values")
        if not (isinstance(self.head, int) and 0 <= self.head < window):
            raise ValueError(f"stream field 'head' must be an int in [0, {window}), got {self.head!r}")
        if not (isinstance(self.filled, int) and 0 <= self.filled <= window):
            raise ValueError(f"stream field 'filled' must be an int in [0, {window}], got {self.filled!r}")
        self.validate_clock()
