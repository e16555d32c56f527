"""STL residuals turned into alarms one can act on."""

from __future__ import annotations

import functools
import warnings
from numbers import Integral, Real
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import Interval, StrOptions, validate_estimator_params
from .._sklearn_compat import fit_context as _fit_context
from ._alarm_runs import grid_alarms, input_frame
from ._series import DUPLICATES, prepare_series
from ._stream import GridStream, RollingWindow, feed
from .stl_recipe import (
    EXACT_FIT,
    decompose_segments,
    decomposition_columns,
    exact_fit_tolerance,
    stl_decompose,
)

__all__ = ["STLDetector"]

_SIGMA_PER_MAD = 1.4826  # 1 / 0.6745: MAD -> standard deviation under normality
_DAILY_LAGS = 5  # same-phase comparison: 1..5 cycles back ...
_WEEKLY_LAGS = 3  # ... and 7, 14, 21 cycles back (weeks, when the period is a day)
_PHASE_JITTER = 2  # +- steps around each same-phase lag
_SCALE_FLOOR = 0.5  # local scales never go below this fraction of the fitted residual scale
_ONLINE_STL_PERIODS = 4  # online: STL is refitted every period on the last 4 periods
_FORECAST_START = 2  # online: the first forecast is made after 2 periods ...
_ALARM_START = 3  # ... and scores count from 3 periods on (one period of forecast errors as context)
_BATCH_CONTEXT = 2  # batch: scores count from 2 periods on (the local scale's window)
_MIN_TREND_CHANGES = 3  # online trend channel: fewer training forecast-trend changes leave it off
_TREND_QUIET = _ONLINE_STL_PERIODS  # ... and counts only when no flagged point is in the refit buffer
_CHANGE_HISTORY = 7 * _WEEKLY_LAGS + 1  # online trend channel: the level changes kept (this one, 21 before)
_GAP_PERIODS = 2  # default max_gap: a longer gap leaves most of the 4-period refit buffer unobserved


def _same_phase_lags(period):
    """The two groups of same-phase lags: 1..5 cycles back, and 7, 14, 21 cycles back (+- jitter)."""
    jitter = range(-_PHASE_JITTER, _PHASE_JITTER + 1)
    daily = [j * period + o for j in range(1, _DAILY_LAGS + 1) for o in jitter]
    weekly = [7 * j * period + o for j in range(1, _WEEKLY_LAGS + 1) for o in jitter]
    return daily, weekly


def _weekly_reference(changes):
    """Median of the level changes 7, 14 and 21 periods before the last one (NaN until all three exist).

    ``changes`` holds the period-to-period changes of the forecast level,
    oldest first, the current one last.  When the period is a day, the day
    of the week moves the level (weekends); comparing a change with the
    same weekday's changes keeps that from raising the trend channel, as the
    weekly same-phase lags do for the residual channel.
    """
    n = len(changes)
    if n <= 7 * _WEEKLY_LAGS:
        return float("nan")
    return float(np.median([changes[n - 1 - 7 * j] for j in range(1, _WEEKLY_LAGS + 1)]))


def _robust_scale(x):
    """1.4826 * MAD, falling back to the scaled mean absolute deviation, then 0."""
    centred = np.abs(x - np.median(x))
    mad = np.median(centred)
    if mad > 0:
        return _SIGMA_PER_MAD * mad
    return 1.253314 * float(np.mean(centred))


def _trailing(x, window, how, quantile=None):
    """Rolling statistic over the ``window`` points strictly before each point."""
    rolling = pd.Series(x).rolling(window, min_periods=1)
    stat = rolling.quantile(quantile) if how == "quantile" else rolling.median()
    return stat.shift(1).to_numpy(dtype=np.float64, copy=True)


def _row_nanmedian(matrix):
    """Median of the finite values of each row (NaN when none), by one sort.

    ``np.nanmedian`` along rows goes through masked arrays (and warns on
    all-NaN rows); sorting puts NaN last, so row ``i``'s median sits at
    ``(count - 1) // 2`` and ``count // 2``.
    """
    ordered = np.sort(matrix, axis=1)
    count = np.isfinite(matrix).sum(axis=1)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(ordered, np.minimum(count // 2, matrix.shape[1] - 1)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (low + high) / 2, np.nan)


def _same_phase_median(dev, period):
    """Median of ``dev`` at the same phase of earlier cycles (NaN when none)."""
    n = dev.shape[0]
    out = np.full(n, np.nan)
    for group in _same_phase_lags(period):
        lagged = np.full((n, len(group)), np.nan)
        for k, lag in enumerate(group):
            if 0 < lag < n:
                lagged[lag:, k] = dev[: n - lag]
        out = np.fmax(out, _row_nanmedian(lagged))
    return out


class STLDetector(BaseEstimator):
    """STL decomposition with alarm post-processing for time series.

    The textbook recipe (:func:`~anomaly_fast.timeseries.stl_anomaly_detection`)
    thresholds a global z-score of STL residuals and raises an alarm run every
    few dozen points on real data.  This detector scores each point against
    its *context* and aggregates flagged points into alarms.  By default
    (``mode="online"``) everything is causal, so ``detect`` on a series and
    :meth:`update` fed the same points give the same scores and alarms:

    1. **Forecast**: every period, robust STL (``robust_iter`` outer
       iterations) is fitted on the last 4 periods; the next period's
       seasonal values are the same-phase medians of the detrended buffer,
       its level the median of the last period's deseasonalised values
       (medians, so a spike or a flat stretch is not forecast again one
       period later).  The first forecast is made after 2 periods.
    2. **Local baseline**: each deseasonalised value is compared with the
       median of the previous ``period // 4`` ones, so after a level shift
       the deviation decays instead of staying high.
    3. **Context scale**: the deviation is divided by the largest of the
       local scale (MAD over the previous two periods), the same-phase scale
       (median deviation 1..5 and 7, 14, 21 cycles back, +-2 steps; absorbs
       systematic misfit such as sharp daily edges, and weekly effects when
       the period is a day), and half the forecast-error scale learnt in
       ``fit`` (so a quiet stretch cannot make noise look huge; never a
       division by 0).
    4. **Novelty**: the residual limit is ``max(threshold, novelty_ratio *
       q)``, ``q`` the ``novelty_quantile`` of the scores over the previous
       ``history`` periods: spikes that recur every day stop alarming.
    5. **Level changes**: the change of the forecast level from one period
       to the next is compared with the median of those changes over the
       training series and, once 22 periods are seen, also with the median
       of the changes 7, 14 and 21 periods earlier (the same weekday when
       the period is a day: a weekend's level change is not news); the
       smaller deviation, divided by the training changes' scale, is
       compared with ``trend_threshold``.  It counts
       only while no flagged point is in the 4-period refit buffer (a level
       shift flagged at its onset is not flagged again while the forecast
       settles).  Off when the training series gives fewer than 3 such
       changes (shorter than 6 periods).
    6. **Alarms**: a point is flagged when either channel exceeds its limit
       (``score > 1``); an alarm is raised at the first point of a run of
       flagged points, at most once every ``min_spacing`` steps.  Scores
       count from 3 periods after a start (or a long gap) on.

    ``mode="batch"`` is the earlier, non-causal variant: STL of the whole
    series passed to ``detect`` (a centred smoother: its trend starts
    moving up to half a trend window *before* a level shift), steps 2-6 on
    its residuals and its trend, scores from 2 periods on.  Its alarms are
    not those of :meth:`update`.

    Score convention: ``score`` >= 0, **higher = more anomalous**, ``score >
    1`` flags the point.

    How the defaults were chosen: the rule (steps 1-6, ``max_gap``) by
    looking at the misses and false alarms on all 18 shared NAB series, the
    thresholds (3, 4 or 6) held out, by leaving one series (or one group)
    out; then checked on 32 synthetic series of another generator
    (``anomaly_fast.bench.nab.messy_cases``).  Held-out figures, per group,
    and what was in-sample: ``benchmarks/timeseries.md``.  Expect lower
    recall on unseen series.

    Parameters
    ----------
    period : int >= 2 or None, default=None
        Steps per seasonal cycle; None infers it from the DatetimeIndex of
        the series passed to ``fit`` (a day for sub-daily data, a week for
        daily data).
    threshold : float > 0, default=4.0
        Minimum residual deviation, in robust standard deviations.  3, 4
        and 6 give the same window recall on the shared NAB series (the
        novelty limit decides there); 4 is the middle one.
    trend_threshold : float > 0, default=4.0
        Limit on the z-scored one-period trend change.
    novelty_quantile : float in (0, 1), default=0.99
        Quantile of recent scores that a new alarm must exceed (times
        ``novelty_ratio``).
    novelty_ratio : float >= 0, default=1.5
        0 disables the novelty limit.
    history : int >= 1, default=7
        Periods of past scores used by the novelty limit.
    min_spacing : int >= 1 or None, default=None
        Minimum steps between two alarms; None = one period.
    robust_iter : int >= 1, default=3
        Robust STL outer iterations (statsmodels' default, 15, is ~5x
        slower); one inner iteration each, as R's ``stl`` (statsmodels: 2,
        twice the time; residuals 2% apart, see ``benchmarks/timeseries.md``).
    mode : {"online", "batch"}, default="online"
        "online" scores every point from its past only, exactly as
        :meth:`update` does point by point (steps 1-6 above); ``trend`` and
        ``seasonal`` hold the forecast and ``residual`` the forecast error.
        The first two periods (after a start or a long gap) have no past
        model: they are decomposed together; the first three are scored 0.
        Needs at least 3 training periods.  "batch" decomposes the whole
        series passed to ``detect`` at once (see above).
    duplicates : {"mean", "last", "raise"}, default="mean"
        How values sharing a timestamp are aggregated.
    max_gap : int >= 1 or None, default=None
        Gaps longer than this many steps split the series (and restart a
        stream, with three periods of warm-up); shorter ones are filled by
        interpolation (marked).  None = two periods: longer gaps would
        leave most of the 4-period refit buffer unobserved, shorter ones
        cost less than a restart's warm-up.

    Attributes
    ----------
    period_ : int
        Seasonal period used.
    residual_scale_ : float
        Robust scale of the training residuals (online mode: of the
        training forecast errors).
    forecast_scale_ : float or None
        Robust scale of the training one-period-ahead forecast errors (half
        of it is the floor of online scales); None when the training series
        is shorter than three periods, and then :meth:`update` raises.
    forecast_trend_center_, forecast_trend_scale_ : float or None
        Median and robust scale of the period-to-period changes of the
        forecast level over the training series (online trend channel);
        None when the training series gives fewer than 3 such changes
        (shorter than 6 periods): the online trend channel is then off.
    step_ : pandas.Timedelta or None
        Grid step of the training series (used by :meth:`update`).
    trend_change_center_, trend_change_scale_ : float
        Median and robust scale of the training one-period trend changes.
    n_train_ : int
        Length of the training series on its regular grid.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.timeseries import STLDetector
    >>> rng = np.random.RandomState(0)
    >>> t = np.arange(24 * 28)
    >>> y = 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.normal(size=t.size)
    >>> y[400] += 5.0                      # a spike
    >>> y[550:] += 4.0                     # a level shift
    >>> det = STLDetector(period=24).fit(y[:300])
    >>> out = det.detect(y)
    >>> np.flatnonzero(out["alarm"]).tolist()
    [400, 550]
    >>> print(round(float(out["score"].iloc[400]), 2))
    2.04
    >>> online = []                        # a stream, point by point: the same alarms
    >>> for value in y:
    ...     score = det.update(value)
    ...     online.append(det.alarm_detected)
    >>> np.flatnonzero(online).tolist()
    [400, 550]
    >>> centred = STLDetector(period=24, mode="batch").fit(y[:300]).detect(y)
    >>> np.flatnonzero(centred["alarm"]).tolist()  # centred STL sees the shift 12 steps early
    [400, 538]
    """

    _parameter_constraints: dict = {
        "period": [Interval(Integral, 2, None, closed="left"), None],
        "threshold": [Interval(Real, 0, None, closed="neither")],
        "trend_threshold": [Interval(Real, 0, None, closed="neither")],
        "novelty_quantile": [Interval(Real, 0, 1, closed="neither")],
        "novelty_ratio": [Interval(Real, 0, None, closed="left")],
        "history": [Interval(Integral, 1, None, closed="left")],
        "min_spacing": [Interval(Integral, 1, None, closed="left"), None],
        "robust_iter": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"batch", "online"})],
        "duplicates": [StrOptions(set(DUPLICATES))],
        "max_gap": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        period: int | None = None,
        threshold: float = 4.0,
        trend_threshold: float = 4.0,
        novelty_quantile: float = 0.99,
        novelty_ratio: float = 1.5,
        history: int = 7,
        min_spacing: int | None = None,
        robust_iter: int = 3,
        mode: Literal["online", "batch"] = "online",
        duplicates: Literal["mean", "last", "raise"] = "mean",
        max_gap: int | None = None,
    ) -> None:
        self.period = period
        self.threshold = threshold
        self.trend_threshold = trend_threshold
        self.novelty_quantile = novelty_quantile
        self.novelty_ratio = novelty_ratio
        self.history = history
        self.min_spacing = min_spacing
        self.robust_iter = robust_iter
        self.mode = mode
        self.duplicates = duplicates
        self.max_gap = max_gap

    def _max_gap(self, period):
        return _GAP_PERIODS * period if self.max_gap is None else self.max_gap

    def _prepare(self, series, period, min_cycles=2):
        return prepare_series(
            series,
            period,
            min_cycles=min_cycles,
            duplicates=self.duplicates,
            max_gap=self.max_gap,
            gap_periods=_GAP_PERIODS,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, series: npt.ArrayLike | pd.Series, y: object = None) -> STLDetector:
        """Learn the period and the residual and trend-change scales.

        Parameters
        ----------
        series : pandas.Series or 1-D array-like
            Training series, at least two periods long (see
            :func:`~anomaly_fast.timeseries.stl_anomaly_detection` for the
            accepted inputs and how gaps are filled).
        y : None
            Ignored.

        Returns
        -------
        self
        """
        online = self.mode == "online"
        data = self._prepare(series, self.period, min_cycles=3 if online else 2)
        self.period_ = data.period
        longest = np.argmax(np.diff(data.segments, axis=1)[:, 0])
        start, stop = data.segments[longest]
        values = data.values[start:stop]
        trend, _, residual = self._decompose(values)
        change = trend[data.period :] - trend[: -data.period]
        self.forecast_scale_ = None
        self.forecast_trend_center_ = self.forecast_trend_scale_ = None
        period = data.period
        if values.shape[0] >= 3 * period:  # the scale of one-period-ahead forecast errors
            forecast, _, errors = self._forecast(values)
            self.forecast_scale_ = _robust_scale(errors[_FORECAST_START * period :])
            blocks = forecast[_FORECAST_START * period :: period]  # one forecast level per period
            if blocks.shape[0] > _MIN_TREND_CHANGES:
                self.forecast_trend_center_ = float(np.median(np.diff(blocks)))
                self.forecast_trend_scale_ = _robust_scale(np.diff(blocks))
        self.residual_scale_ = self.forecast_scale_ if online else _robust_scale(residual)
        self.trend_change_center_ = float(np.median(change))
        self.trend_change_scale_ = _robust_scale(change)
        self.n_train_ = data.values.shape[0]
        self.step_ = data.step
        self.__dict__.pop("_stream", None)
        return self

    # Fitted attributes and what a restored pickle must hold for each.
    _FITTED = {
        "period_": (Integral, 2, None),
        "residual_scale_": (Real, 0.0, None),
        "trend_change_center_": (Real, None, None),
        "trend_change_scale_": (Real, 0.0, None),
        "n_train_": (Integral, 1, None),
    }

    def __setstate__(self, state):
        # Restore check: a corrupted pickle gets a ValueError naming the
        # field, not NaN scores or a period the kernels cannot use.  (It
        # cannot make an untrusted pickle safe: unpickling runs code first.)
        stream = state.get("_stream")
        if stream is not None:
            if not isinstance(stream, _STLStream):
                raise ValueError("field '_stream' must be an STL stream")
            if "changes" not in stream.__dict__:  # pickled before the weekly reference: it starts empty
                stream.changes = np.full(_CHANGE_HISTORY, np.nan)
                center = state.get("forecast_trend_center_")
                level = getattr(stream, "trend", 0.0) - getattr(stream, "previous_trend", 0.0)
                stream.level_deviation = abs(level - center) if isinstance(center, float) else 0.0
            stream.validate(state.get("period_"), state.get("history"))
        if "forecast_scale_" in state:  # pickled before the online trend channel: it stays off
            state.setdefault("forecast_trend_center_", None)
            state.setdefault("forecast_trend_scale_", None)
        super().__setstate__(state)
        fitted = [key for key in self._FITTED if key in self.__dict__]
        if fitted and len(fitted) != len(self._FITTED):
            raise ValueError(
                f"corrupt STLDetector state: fitted attributes {sorted(set(self._FITTED) - set(fitted))} missing"
            )
        for key in fitted:
            kind, low, _ = self._FITTED[key]
            value = self.__dict__[key]
            if (
                isinstance(value, (bool, np.bool_))
                or not isinstance(value, kind)
                or not np.isfinite(value)
                or (low is not None and value < low)
            ):
                raise ValueError(f"corrupt STLDetector state: {key} = {value!r}")
        validate_estimator_params(self)

    def _decompose(self, values):
        return stl_decompose(values, self.period_, robust=True, outer_iter=self.robust_iter, inner_iter=1)

    def detect(self, series: npt.ArrayLike | pd.Series) -> pd.DataFrame:
        """Decompose ``series``, score every point and place alarms.

        Parameters
        ----------
        series : pandas.Series or 1-D array-like
            At least two periods long.

        Returns
        -------
        result : pandas.DataFrame
            On the input's index, columns ``value, trend, seasonal, residual,
            z_score`` (as the textbook recipe: global modified z-score of the
            residual), ``is_anomaly`` (point flagged, ``score > 1``), ``score``
            (>= 0, higher = more anomalous) and ``alarm`` (an alarm starts
            here).  All finite.
        """
        check_is_fitted(self)
        data = self._prepare(series, self.period_)
        period = self.period_
        n = data.values.shape[0]
        score = np.zeros(n)
        if self.mode == "online":
            trend, seasonal, residual = data.values.copy(), np.zeros(n), np.zeros(n)
            warm = _FORECAST_START * period
            skipped = sum(stop - start for start, stop in data.segments if stop - start <= _ALARM_START * period)
            if skipped:
                warnings.warn(
                    f"{skipped} grid steps lie in segments shorter than three periods (between gaps longer "
                    f"than max_gap); they are not scored (online mode: three periods of warm-up)",
                    UserWarning,
                    stacklevel=2,
                )
            for start, stop in data.segments:
                if stop - start <= warm:
                    continue
                part = slice(start, stop)
                trend[part], seasonal[part], residual[part] = self._forecast(data.values[part])
                # The residual channel compares the deseasonalised value with its
                # trailing median (the local level): the forecast level, which
                # jumps at each refit, cancels out of that difference.
                level = data.values[start + warm : stop] - seasonal[start + warm : stop]
                masked = np.r_[np.full(warm, np.nan), level]
                score[part] = self._score(data.values[part], trend[part], masked)
        else:
            trend, seasonal, residual = decompose_segments(data, self._decompose)
            for start, stop in data.segments:
                if stop - start >= 2 * period:
                    part = slice(start, stop)
                    score[part] = self._score(data.values[part], trend[part], residual[part])
        spacing = period if self.min_spacing is None else self.min_spacing
        alarm = grid_alarms(score, data, spacing)
        columns, _ = decomposition_columns(data, trend, seasonal, residual)
        columns["is_anomaly"] = (score > 1.0) & data.observed
        columns["score"] = score
        return input_frame(data, columns, alarm)

    # ---------------------------------------------------------------- stream
    def update(self, value: float, timestamp: pd.Timestamp | str | float | None = None) -> float:
        """Take the next point of a stream; return its ``score`` (``> 1`` flags).

        Scores as ``mode="online"`` does (whatever ``mode`` is): from the
        past only, STL refitted every period on the last 4 periods, so a
        stream fed point by point gets the scores and alarms of
        ``detect`` of an online detector on the same series (to floating
        point).  Points are put on the training grid as they come: a
        timestamp in the cell of the previous point updates nothing (its
        score is the cell's); missing cells up to ``max_gap`` are filled by
        interpolation (marked: they never alarm on their own); a longer gap
        restarts the stream (three periods of warm-up, scored 0).  NaN values
        are skipped (score NaN).  After the call, ``alarm_detected`` tells
        whether this point raised an alarm.  Memory is bounded: 4 periods
        of values, 21 periods of deviations, ``history`` periods of scores.

        Score convention: ``score`` >= 0, **higher = more anomalous**.
        """
        stream = self.__dict__.get("_stream")
        if stream is None:
            check_is_fitted(self)
            if self.forecast_scale_ is None:
                raise ValueError("update needs a detector fitted on at least 3 periods (no forecast-error scale)")
            stream = self._stream = _STLStream(self.period_, self.history)
        max_gap = self._max_gap(self.period_)
        spacing = self.period_ if self.min_spacing is None else self.min_spacing
        score, self.alarm_detected = feed(stream, self._push, value, timestamp, self.step_, max_gap, spacing)
        return score

    def reset_stream(self) -> STLDetector:
        """Forget the stream (the fitted model is kept)."""
        self.__dict__.pop("_stream", None)
        return self

    def _push(self, stream, value, observed):
        """Score one grid cell of the stream: ``_forecast`` and ``_score`` for one point."""
        period = self.period_
        t = stream.count
        warm = _FORECAST_START * period
        if t >= warm and (t - warm) % period == 0:  # refit on the last 4 periods
            if t >= _ALARM_START * period:  # see ``_score``
                stream.quiet = 0 if stream.block_flagged else stream.quiet + 1
            stream.block_flagged = False
            stream.previous_trend = stream.trend
            level, stream.seasonal = self._next_period(stream.past())
            stream.trend = float(level)
            if t >= _ALARM_START * period and self.forecast_trend_scale_ is not None:  # see ``_score``
                change = stream.trend - stream.previous_trend
                stream.changes = np.r_[stream.changes[1:], change]  # the level changes of the last 21 periods
                stream.level_deviation = self._level_deviation(change, stream.changes[~np.isnan(stream.changes)])
        stream.remember(value)
        residual = value - stream.seasonal[(t - warm) % period] if t >= warm else float("nan")  # as ``detect``
        center = stream.residuals.median()
        deviation = abs(residual - (residual if center != center else center))
        phase = stream.same_phase(t)
        floor = _SCALE_FLOOR * self.forecast_scale_
        scale = max(x for x in (_SIGMA_PER_MAD * stream.deviations.median(), phase, floor) if x == x)
        scale = max(scale, EXACT_FIT * stream.largest, 1e-300)
        residual_score = deviation / scale if deviation == deviation else 0.0
        limit = self.threshold
        if self.novelty_ratio > 0:
            recent = stream.scores.quantile(self.novelty_quantile)
            limit = max(limit, self.novelty_ratio * (recent if recent == recent else 0.0))
        stream.residuals.push(residual)
        stream.deviations.push(deviation)
        stream.record_deviation(t, deviation)
        stream.scores.push(residual_score)
        stream.count = t + 1
        if t < _ALARM_START * period:
            return 0.0
        score = residual_score / limit
        if self.forecast_trend_scale_ is not None and stream.quiet >= _TREND_QUIET:
            tiny = max(EXACT_FIT * stream.largest, 1e-300)
            score = max(score, stream.level_deviation / max(self.forecast_trend_scale_, tiny) / self.trend_threshold)
        stream.block_flagged = stream.block_flagged or bool(score > 1.0)
        return score

    def _level_deviation(self, change, changes):
        """How far a period's level change is from the training centre and, once known, from the
        same weekday's changes (``_weekly_reference`` of ``changes``, the current one last): the smaller."""
        deviation = abs(change - self.forecast_trend_center_)
        weekly = _weekly_reference(changes)
        return deviation if weekly != weekly else min(deviation, abs(change - weekly))

    def _next_period(self, past):
        """Forecast level and seasonal values of the period after ``past`` (whole periods).

        Seasonal: the same-phase median of ``past - trend`` (robust STL's
        trend) over the buffered cycles; level: the median of the last
        period's deseasonalised values.  STL's own seasonal and trend at
        the end of a short buffer follow the last cycle, so a spike or a
        flat stretch there would come back one period later as a forecast
        error; these medians do not.
        """
        period = self.period_
        trend, _, _ = self._decompose(past)
        seasonal = np.median((past - trend).reshape(-1, period), axis=0)
        return float(np.median(past[-period:] - seasonal)), seasonal

    def _forecast(self, values):
        """One-period-ahead STL forecasts from a bounded trailing buffer."""
        period = self.period_
        n = values.shape[0]
        trend = np.zeros(n)
        seasonal = np.zeros(n)
        # Warm-up: no past model yet.  Its decomposition only seeds the
        # trailing baselines; its points are scored 0 by ``detect``.
        warm_trend, warm_seasonal, _ = self._decompose(values[: 2 * period])
        trend[: 2 * period] = warm_trend
        seasonal[: 2 * period] = warm_seasonal
        for start in range(2 * period, n, period):
            stop = min(start + period, n)
            past = values[max(0, start - _ONLINE_STL_PERIODS * period) : start]
            trend[start:stop], next_seasonal = self._next_period(past)
            seasonal[start:stop] = next_seasonal[: stop - start]
        return trend, seasonal, values - trend - seasonal

    def _score(self, values, trend, residual):
        """Combined score on the regular grid: ``score > 1`` flags a point."""
        period = self.period_
        online = self.mode == "online"
        if online:  # causal: the largest value so far
            tiny = np.maximum(EXACT_FIT * np.maximum.accumulate(np.abs(values)), 1e-300)
        else:
            tiny = max(exact_fit_tolerance(values), 1e-300)

        center = _trailing(residual, max(3, period // 4), "median")
        center[0] = residual[0]
        center = np.where(np.isnan(center), residual, center)
        deviation = np.abs(residual - center)
        local = _SIGMA_PER_MAD * _trailing(deviation, 2 * period, "median")
        phase = _SIGMA_PER_MAD * _same_phase_median(deviation, period)
        floor = _SCALE_FLOOR * (self.forecast_scale_ if online else self.residual_scale_)
        scale = np.fmax(np.fmax(local, phase), floor)
        scale = np.fmax(np.nan_to_num(scale, nan=0.0), tiny)
        residual_score = np.nan_to_num(deviation / scale, nan=0.0)

        limit = np.full_like(residual_score, self.threshold)
        if self.novelty_ratio > 0:
            recent = _trailing(residual_score, self.history * period, "quantile", self.novelty_quantile)
            limit = np.fmax(limit, self.novelty_ratio * np.nan_to_num(recent, nan=0.0))

        score = residual_score / limit
        # Trend channel: the one-period change of the trend (batch: STL's
        # smoothed trend; online: the forecast level, one value per period).
        center, spread = self.trend_change_center_, self.trend_change_scale_
        if online:
            center, spread = self.forecast_trend_center_, self.forecast_trend_scale_
        trend_score = None
        if spread is not None and not online:
            change = np.zeros_like(trend)
            change[period:] = trend[period:] - trend[:-period]
            trend_score = np.abs(change - center) / np.maximum(spread, tiny) / self.trend_threshold
            trend_score[:period] = 0.0  # no change to measure yet
        if not online:
            score = score if trend_score is None else np.fmax(score, trend_score)
            score[: _BATCH_CONTEXT * period] = 0.0  # the local scale's window is not filled yet
            return score
        score[: _ALARM_START * period] = 0.0
        if spread is not None:
            # Online trend channel, one value per period: the change of the
            # forecast level, z-scored with the training changes.  A level
            # change within two periods of a flagged point is that event's
            # (a level shift flagged at its onset is not flagged again while
            # the level settles), so the channel counts only after two quiet
            # periods.
            quiet = _TREND_QUIET
            changes = []
            for start in range(_ALARM_START * period, score.shape[0], period):
                block = slice(start, start + period)
                changes.append(trend[start] - trend[start - period])
                if quiet >= _TREND_QUIET:
                    deviation = self._level_deviation(changes[-1], changes)
                    score[block] = np.fmax(
                        score[block], deviation / np.maximum(spread, tiny[block]) / self.trend_threshold
                    )
                quiet = 0 if (score[block] > 1.0).any() else quiet + 1
        return score


@functools.lru_cache(maxsize=8)
def _lag_array(period):
    """The same-phase lags of :func:`_same_phase_lags` as one array, and where the weekly ones start."""
    daily, weekly = _same_phase_lags(period)
    return np.array(daily + weekly, dtype=np.intp), len(daily)


class _STLStream(GridStream):
    """Bounded online state of one :class:`STLDetector` stream.

    ``values`` is a ring of the last 4 periods (STL's refit buffer);
    ``trend``/``seasonal`` the forecast of the current period; three
    :class:`RollingWindow` hold the trailing residuals (baseline), deviations
    (local scale) and residual scores (novelty limit); ``deviation_ring``
    the deviations of the last 21 periods (+ jitter) for the same-phase
    scale.  ``count`` is the number of grid cells since the (re)start.
    """

    def __init__(self, period, history):
        self.period = period
        self.history = history
        self.reset()

    def reset(self):
        super().reset()
        period = self.period
        self.count = 0
        self.values = np.zeros(_ONLINE_STL_PERIODS * period)
        self.trend = 0.0
        self.previous_trend = 0.0  # the forecast level of the period before
        self.block_flagged = False  # a point of the current period was flagged
        self.quiet = _TREND_QUIET  # periods since the last one holding a flagged point
        self.changes = np.full(_CHANGE_HISTORY, np.nan)  # the last forecast-level changes, oldest first
        self.level_deviation = 0.0  # of the current period's level change (see ``_level_deviation``)
        self.seasonal = np.zeros(period)
        self.largest = 0.0  # largest |value| since the (re)start: the exact-fit tolerance
        self.residuals = RollingWindow(max(3, period // 4))
        self.deviations = RollingWindow(2 * period)
        self.scores = RollingWindow(self.history * period)
        daily, weekly = _same_phase_lags(period)
        self.deviation_ring = np.full(max(weekly) + 1, np.nan)

    def remember(self, value):
        self.values[self.count % self.values.shape[0]] = value
        self.largest = max(self.largest, abs(value))

    def past(self):
        """The buffered values, oldest first."""
        n, size = self.count, self.values.shape[0]
        if n <= size:
            return self.values[:n].copy()
        head = n % size
        return np.concatenate([self.values[head:], self.values[:head]])

    def record_deviation(self, t, deviation):
        self.deviation_ring[t % self.deviation_ring.shape[0]] = deviation

    def same_phase(self, t):
        """1.4826 x the larger of the two same-phase medians at time ``t`` (NaN when none)."""
        ring = self.deviation_ring
        lags, split = _lag_array(self.period)
        found = ring[(t - lags) % ring.shape[0]]
        best = float("nan")
        for group in (found[:split], found[split:]):
            group = np.sort(group[group == group])
            k = group.shape[0]
            if k:
                median = (group[(k - 1) // 2] + group[k // 2]) / 2  # as _row_nanmedian
                best = median if best != best else max(best, median)
        return _SIGMA_PER_MAD * best

    def validate(self, period, history):
        """Check a restored stream (ValueError names the field)."""
        if not isinstance(period, int) or self.period != period:
            raise ValueError(f"stream field 'period' ({self.period!r}) does not match the model's period_ ({period!r})")
        if self.history != history:
            raise ValueError(f"stream field 'history' ({self.history!r}) does not match the model's ({history!r})")
        if not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"stream field 'count' must be an int >= 0, got {self.count!r}")
        arrays = {
            "values": _ONLINE_STL_PERIODS * period,
            "seasonal": period,
            "deviation_ring": max(_same_phase_lags(period)[1]) + 1,
            "changes": _CHANGE_HISTORY,
        }
        for name, size in arrays.items():
            array = getattr(self, name, None)
            if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.shape != (size,):
                raise ValueError(f"stream field {name!r} must be a float64 array of {size} values")
            if np.isinf(array).any() or (name not in ("deviation_ring", "changes") and np.isnan(array).any()):
                raise ValueError(f"stream field {name!r} holds non-finite values")
        if not isinstance(getattr(self, "block_flagged", None), bool):
            raise ValueError("stream field 'block_flagged' must be a bool")
        quiet = getattr(self, "quiet", None)
        if not isinstance(quiet, int) or isinstance(quiet, bool) or quiet < 0:
            raise ValueError(f"stream field 'quiet' must be an int >= 0, got {quiet!r}")
        for name in ("trend", "previous_trend", "largest", "level_deviation"):
            if not (isinstance(getattr(self, name, None), float) and np.isfinite(getattr(self, name))):
                raise ValueError(f"stream field {name!r} must be a finite float")
        sizes = {"residuals": max(3, period // 4), "deviations": 2 * period, "scores": history * period}
        for name, size in sizes.items():
            window = getattr(self, name, None)
            if not isinstance(window, RollingWindow) or window.size != size:
                raise ValueError(f"stream field {name!r} must be a rolling window of {size} values")
        self.validate_clock()
