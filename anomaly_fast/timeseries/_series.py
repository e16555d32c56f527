"""Input checks shared by the time-series detectors.

A series arrives as a pandas Series (optionally with a DatetimeIndex), a
one-column DataFrame or a 1-D array-like.  :func:`prepare_series` validates it
once and puts it on a regular grid: missing timestamps are inserted and, with
NaN values, filled by linear interpolation so STL sees an evenly spaced,
complete series.  Results are reported back on the caller's own index.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RegularSeries", "infer_period", "prepare_series"]

_DAY = pd.Timedelta(days=1)
_WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class RegularSeries:
    """A validated series on an evenly spaced grid."""

    values: np.ndarray  # float64 values on the grid, gaps interpolated
    positions: np.ndarray  # grid position of each input point, in input order
    index: pd.Index  # the caller's index, returned on every result
    observed: np.ndarray  # the caller's values (may hold NaN)
    period: int  # seasonal period in grid steps


def _as_series(series):
    if isinstance(series, pd.DataFrame):
        if series.shape[1] != 1:
            raise ValueError(
                f"series must have exactly one column, got a DataFrame with {series.shape[1]} columns"
            )
        series = series.iloc[:, 0]
    if not isinstance(series, pd.Series):
        array = np.asarray(series)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(f"series must be one-dimensional, got an array of shape {array.shape}")
        series = pd.Series(array)
    if series.dtype == bool or not pd.api.types.is_numeric_dtype(series.dtype):
        raise TypeError(f"series must hold numbers, got dtype {series.dtype}")
    return series.astype(np.float64)


def infer_period(index):
    """Seasonal period, in steps, implied by a DatetimeIndex.

    Sub-daily data get a daily period (``1 day / step``), daily to
    sub-weekly data a weekly one (``7 days / step``).  Anything else raises.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Increasing timestamps.

    Returns
    -------
    period : int

    Examples
    --------
    >>> import pandas as pd
    >>> infer_period(pd.date_range("2024-01-01", periods=10, freq="5min"))
    288
    >>> infer_period(pd.date_range("2024-01-01", periods=10, freq="D"))
    7
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            "period=None needs a pandas Series with a DatetimeIndex to infer the "
            "seasonal period; pass period=<steps per cycle> instead"
        )
    if len(index) < 2:
        raise ValueError("cannot infer a period from fewer than 2 timestamps")
    step = pd.Series(index).diff().iloc[1:].median()
    if step < _DAY:
        period = int(round(_DAY / step))
    elif step < _WEEK:
        period = int(round(_WEEK / step))
    else:
        raise ValueError(
            f"cannot infer a seasonal period for a sampling step of {step}; pass period explicitly"
        )
    if period < 2:
        raise ValueError(f"the inferred period ({period}) is below 2; pass period explicitly")
    return period


def prepare_series(series, period=None, min_cycles=2):
    """Validate ``series`` and return it as a :class:`RegularSeries`.

    Raises ``TypeError`` for non-numeric data, ``ValueError`` for empty,
    multi-dimensional, infinite, all-missing or too-short input, unsorted or
    duplicated timestamps, and timestamps off a regular grid.
    """
    series = _as_series(series)
    n = len(series)
    if n == 0:
        raise ValueError("series is empty")
    observed = series.to_numpy()
    if np.isinf(observed).any():
        raise ValueError("series contains infinite values")
    if np.isnan(observed).all():
        raise ValueError("series contains only NaN values")

    index = series.index
    if isinstance(index, pd.DatetimeIndex):
        if index.hasnans:
            raise ValueError("the DatetimeIndex contains NaT")
        if not index.is_unique:
            raise ValueError("the DatetimeIndex has duplicated timestamps; aggregate them first")
        if not index.is_monotonic_increasing:
            raise ValueError("the DatetimeIndex is not increasing; sort the series first")
        if period is None:
            period = infer_period(index)
        if n > 1:
            step = pd.Series(index).diff().iloc[1:].min()
            offsets = (index - index[0]) / step
            positions = np.rint(offsets).astype(np.int64)
            if not np.allclose(offsets, positions, rtol=0, atol=1e-6):
                raise ValueError(
                    f"timestamps are not on a regular grid of step {step}; resample the series first"
                )
        else:
            positions = np.zeros(1, dtype=np.int64)
    else:
        if period is None:
            raise ValueError(
                "period=None needs a pandas Series with a DatetimeIndex to infer the "
                "seasonal period; pass period=<steps per cycle> instead"
            )
        positions = np.arange(n, dtype=np.int64)

    length = int(positions[-1]) + 1
    if length < min_cycles * period:
        raise ValueError(
            f"series spans {length} steps; at least {min_cycles} periods "
            f"({min_cycles * period} steps for period={period}) are needed"
        )
    grid = np.full(length, np.nan)
    grid[positions] = observed
    missing = np.isnan(grid)
    if missing.any():
        known = np.flatnonzero(~missing)
        grid[missing] = np.interp(np.flatnonzero(missing), known, grid[known])
    return RegularSeries(grid, positions, index, observed, int(period))
