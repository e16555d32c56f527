"""The textbook STL recipe: decompose, then threshold modified z-scores."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from .._sklearn_compat import Interval, StrOptions, validate_params
from ._alarm_runs import input_frame
from ._series import DUPLICATES, prepare_series

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["modified_z_score", "stl_anomaly_detection"]

# 0.6745 = Phi^-1(0.75): makes the MAD a consistent estimate of sigma.
_MAD_FACTOR = 0.6745
# sqrt(pi / 2): mean absolute deviation -> sigma, the usual fallback when MAD = 0.
_MEAN_AD_FACTOR = 1.253314


def modified_z_score(x: npt.ArrayLike, tol: float = 0.0) -> npt.NDArray[np.float64]:
    """Modified z-score ``0.6745 * (x - median) / MAD`` (Iglewicz & Hoaglin).

    When the MAD is 0 (more than half of the values are equal), the mean
    absolute deviation is used instead: ``(x - median) / (1.253314 * MeanAD)``.
    When that is 0 too (all values equal), every score is 0.  The result is
    always finite for finite input.

    Parameters
    ----------
    x : array-like of shape (n,)
        Finite values.
    tol : float >= 0, default=0.0
        Deviations from the median of at most ``tol`` count as exactly 0, so
        floating-point noise (say, STL residuals of a noiseless series) is
        not blown up into huge scores.

    Returns
    -------
    z : ndarray of shape (n,)

    Examples
    --------
    >>> modified_z_score([1.0, 2.0, 3.0, 4.0, 100.0]).round(4)
    array([-1.349 , -0.6745,  0.    ,  0.6745, 65.4265])
    >>> modified_z_score([5.0, 5.0, 5.0, 9.0]).round(4)
    array([0.    , 0.    , 0.    , 3.1915])
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - np.median(x)
    if tol > 0:
        centred[np.abs(centred) <= tol] = 0.0
    mad = np.median(np.abs(centred))
    if mad > 0:
        return _MAD_FACTOR * centred / mad
    mean_ad = np.mean(np.abs(centred))
    if mean_ad > 0:
        return centred / (_MEAN_AD_FACTOR * mean_ad)
    return np.zeros_like(x)


EXACT_FIT = 1e-9  # residuals below this fraction of the largest |value| count as exact fits


def exact_fit_tolerance(values):
    """Residual size below which STL's fit of ``values`` counts as exact."""
    return EXACT_FIT * float(np.max(np.abs(values)))


def decomposition_columns(data, trend, seasonal, residual):
    """The per-cell columns every STL output frame starts with: value (the
    caller's own), trend, seasonal, residual and the residual's robust
    z-score (also returned alone, for the caller's own columns)."""
    z = modified_z_score(residual, tol=exact_fit_tolerance(data.values))
    columns = {
        "value": data.input_values,
        "trend": trend,
        "seasonal": seasonal,
        "residual": residual,
        "z_score": z,
    }
    return columns, z


def _odd_at_least(x):
    x = int(np.ceil(x))
    return x + 1 - x % 2


def stl_windows(period, seasonal=7):
    """statsmodels' default trend and low-pass windows, and R's ``stl`` jumps.

    Cleveland et al. (1990) evaluate each LOESS every ``ceil(window / 10)``
    points and interpolate linearly in between; R's ``stl`` does so by
    default.  statsmodels supports it (``*_jump``) but defaults to 1.
    """
    trend = _odd_at_least(1.5 * period / (1 - 1.5 / seasonal))
    low_pass = _odd_at_least(period + 1)
    return dict(
        seasonal=seasonal,
        seasonal_jump=-(-seasonal // 10),
        trend=trend,
        trend_jump=-(-trend // 10),
        low_pass=low_pass,
        low_pass_jump=-(-low_pass // 10),
    )


def stl_decompose(values, period, robust, outer_iter=None, jumps=True, inner_iter=None):
    """Run statsmodels' STL; returns (trend, seasonal, residual) arrays.

    ``jumps=True`` uses R's default LOESS jumps (:func:`stl_windows`): about
    30x faster at period 288, residuals within a few percent of the jump-free
    fit (measured in ``benchmarks/timeseries.md``).  ``inner_iter=1`` with
    ``robust`` is R's ``stl`` default (statsmodels': 2): half the time.
    """
    from statsmodels.tsa.seasonal import STL  # slow to import: only when used

    kwargs = {} if outer_iter is None else {"outer_iter": outer_iter}
    if inner_iter is not None:
        kwargs["inner_iter"] = inner_iter
    windows = stl_windows(period) if jumps else {}
    result = STL(values, period=period, robust=robust, **windows).fit(**kwargs)
    return (
        np.asarray(result.trend, dtype=np.float64),
        np.asarray(result.seasonal, dtype=np.float64),
        np.asarray(result.resid, dtype=np.float64),
    )


def decompose_segments(data, decompose):
    """``decompose(values)`` on every segment of ``data`` long enough for it.

    Segments shorter than two periods (split off by a long gap) cannot be
    decomposed: their trend is the value itself, seasonal and residual 0 (no
    alarm can start there), with a warning naming how many points.
    """
    trend, seasonal, residual = data.values.copy(), np.zeros_like(data.values), np.zeros_like(data.values)
    skipped = 0
    for start, stop in data.segments:
        if stop - start < 2 * data.period:
            skipped += stop - start
            continue
        parts = decompose(data.values[start:stop])
        for out, part in zip((trend, seasonal, residual), parts):
            out[start:stop] = part
    if skipped:
        warnings.warn(
            f"{skipped} grid steps lie in segments shorter than two periods "
            f"(between gaps longer than max_gap); they are not scored",
            UserWarning,
            stacklevel=3,
        )
    return trend, seasonal, residual


@validate_params(
    {
        "series": ["array-like"],
        "period": [Interval(Integral, 2, None, closed="left"), None],
        "threshold_sigma": [Interval(Real, 0, None, closed="neither")],
        "robust": ["boolean"],
        "duplicates": [StrOptions(set(DUPLICATES))],
        "max_gap": [Interval(Integral, 1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def stl_anomaly_detection(
    series: npt.ArrayLike | pd.Series,
    period: int | None = None,
    threshold_sigma: float = 3.0,
    robust: bool = True,
    duplicates: Literal["mean", "last", "raise"] = "mean",
    max_gap: int | None = None,
) -> pd.DataFrame:
    """Textbook STL anomaly detection: STL residuals, modified z-score, threshold.

    The series is decomposed with statsmodels' STL into trend + seasonal +
    residual; each residual gets the modified z-score
    ``0.6745 * (r - median(r)) / MAD(r)`` and a point is an anomaly when
    ``|z| > threshold_sigma``.  Kept for compatibility: it flags many short
    runs of points on real data; :class:`~anomaly_fast.timeseries.STLDetector`
    adds the alarm post-processing needed to alert on it.

    ``z_score`` is signed, **higher |z| = more anomalous**.

    Parameters
    ----------
    series : pandas.Series or 1-D array-like
        Values, ideally indexed by a DatetimeIndex.  The series is put on a
        regular grid at the median step (values interpolated in time; NaN
        values and missing timestamps filled; rows keep their own ``value``
        and get the fit of their grid cell), duplicated timestamps are
        aggregated, unsorted ones sorted.  Inf, non-numeric data and series
        shorter than two periods raise.
    period : int >= 2 or None, default=None
        Steps per seasonal cycle.  None infers it from a DatetimeIndex: one
        day for sub-daily data, one week for daily data; otherwise raises.
    threshold_sigma : float > 0, default=3.0
        Flag points with ``|z_score| > threshold_sigma``.
    robust : bool, default=True
        Robust STL (down-weights outliers in the LOESS fits).
    duplicates : {"mean", "last", "raise"}, default="mean"
        How values sharing a timestamp are aggregated.
    max_gap : int >= 1 or None, default=None
        Gaps longer than this many steps split the series (None: one period);
        pieces shorter than two periods are not scored (with a warning).

    Returns
    -------
    result : pandas.DataFrame
        On the input's index, columns ``value, trend, seasonal, residual,
        z_score, is_anomaly``.  When the MAD of the residuals is 0, the
        z-score falls back to the mean absolute deviation (see
        :func:`modified_z_score`); it is never inf or NaN.  Residuals within
        ``1e-9 * max|value|`` of their median count as exact fits (STL's
        floating-point noise), so a noiseless series scores 0, not noise
        divided by noise.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.timeseries import stl_anomaly_detection
    >>> rng = np.random.RandomState(0)
    >>> t = np.arange(24 * 14)
    >>> y = 10 + np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=t.size)
    >>> y[200] += 3.0
    >>> out = stl_anomaly_detection(y, period=24)
    >>> list(out.columns)
    ['value', 'trend', 'seasonal', 'residual', 'z_score', 'is_anomaly']
    >>> round(float(out["z_score"].iloc[200]), 2)
    54.54
    """
    data = prepare_series(series, period, duplicates=duplicates, max_gap=max_gap)
    trend, seasonal, residual = decompose_segments(data, lambda values: stl_decompose(values, data.period, robust))
    columns, z = decomposition_columns(data, trend, seasonal, residual)
    columns["is_anomaly"] = (np.abs(z) > threshold_sigma) & data.observed
    return input_frame(data, columns)
