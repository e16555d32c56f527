"""The textbook STL recipe: decompose, then threshold modified z-scores."""

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, validate_params

from ._series import prepare_series

__all__ = ["modified_z_score", "stl_anomaly_detection"]

# 0.6745 = Phi^-1(0.75): makes the MAD a consistent estimate of sigma.
_MAD_FACTOR = 0.6745
# sqrt(pi / 2): mean absolute deviation -> sigma, the usual fallback when MAD = 0.
_MEAN_AD_FACTOR = 1.253314


def modified_z_score(x, tol=0.0):
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


def exact_fit_tolerance(values):
    """Residual size below which STL's fit of ``values`` counts as exact."""
    return 1e-9 * float(np.max(np.abs(values)))


def decomposition_columns(data, trend, seasonal, residual):
    """The columns every STL output frame starts with, at the series'
    observed positions: value, trend, seasonal, residual and the residual's
    robust z-score (also returned whole, for the caller's own columns)."""
    z = modified_z_score(residual, tol=exact_fit_tolerance(data.values))
    at = data.positions
    columns = {
        "value": data.observed,
        "trend": trend[at],
        "seasonal": seasonal[at],
        "residual": residual[at],
        "z_score": z[at],
    }
    return columns, z


def stl_decompose(values, period, robust, outer_iter=None):
    """Run statsmodels' STL; returns (trend, seasonal, residual) arrays."""
    from statsmodels.tsa.seasonal import STL  # slow to import: only when used

    kwargs = {} if outer_iter is None else {"outer_iter": outer_iter}
    result = STL(values, period=period, robust=robust).fit(**kwargs)
    return (
        np.asarray(result.trend, dtype=np.float64),
        np.asarray(result.seasonal, dtype=np.float64),
        np.asarray(result.resid, dtype=np.float64),
    )


@validate_params(
    {
        "series": ["array-like"],
        "period": [Interval(Integral, 2, None, closed="left"), None],
        "threshold_sigma": [Interval(Real, 0, None, closed="neither")],
        "robust": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def stl_anomaly_detection(series, period=None, threshold_sigma=3.0, robust=True):
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
        Values, ideally indexed by a regular DatetimeIndex.  Missing
        timestamps and NaN values are filled by linear interpolation before
        STL (their rows keep ``value`` = NaN; the decomposition columns hold
        the interpolated fit).  Unsorted or duplicated timestamps, inf,
        non-numeric data and series shorter than two periods raise.
    period : int >= 2 or None, default=None
        Steps per seasonal cycle.  None infers it from a DatetimeIndex: one
        day for sub-daily data, one week for daily data; otherwise raises.
    threshold_sigma : float > 0, default=3.0
        Flag points with ``|z_score| > threshold_sigma``.
    robust : bool, default=True
        Robust STL (down-weights outliers in the LOESS fits).

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
    54.34
    """
    data = prepare_series(series, period)
    trend, seasonal, residual = stl_decompose(data.values, data.period, robust)
    columns, z = decomposition_columns(data, trend, seasonal, residual)
    columns["is_anomaly"] = np.abs(z[data.positions]) > threshold_sigma
    return pd.DataFrame(columns, index=data.index)
