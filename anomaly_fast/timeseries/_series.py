"""The one input path of every time-series detector.

A series arrives as a pandas Series (optionally with a DatetimeIndex), a
one-column DataFrame or a 1-D array-like.  :func:`prepare_series` validates it
once and puts it on a regular grid, so every detector sees the same thing:

- **Grid step**: the *median* step between distinct timestamps (jittered or
  irregular sampling does not shrink it to the smallest one).  Grid cells start
  at the first timestamp; each input point belongs to its nearest cell.
- **Values**: linear interpolation *in time* of the finite input values at the
  cell times (exact for points on the grid).  A cell that holds no finite input
  point is *filled* (``observed`` is False): detectors score it, but a filled
  cell never raises an alarm on its own (see ``_alarms.alarm_onsets``).
- **Duplicated timestamps** are aggregated first: ``"mean"`` (NaN ignored),
  ``"last"`` (last finite value), or ``"raise"``.  NaN values are missing
  values: they are filled like missing timestamps.
- **Long gaps**: a gap of more than ``max_gap`` steps (default: one period)
  splits the grid into segments; nothing is interpolated across it and the
  detectors restart their state after it.  Gap cells are not materialised.
- **Unsorted** timestamps are sorted (stably).
- Results are returned on the caller's own index and order (:func:`on_input`).

Without a DatetimeIndex the points are taken as evenly spaced (one grid cell
each, NaN filled by interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RegularSeries", "acf_period", "infer_period", "on_input", "period_from_step", "prepare_series"]

_DAY = pd.Timedelta(days=1)
_WEEK = pd.Timedelta(days=7)
DUPLICATES = ("mean", "last", "raise")


@dataclass(frozen=True)
class RegularSeries:
    """A validated series on an evenly spaced grid (possibly in segments)."""

    values: np.ndarray  # float64 values of the grid cells, all segments back to back
    observed: np.ndarray  # bool per cell: holds a finite input value (False = filled)
    segments: np.ndarray  # int64 (n_segments, 2): [start, stop) of each segment in ``values``
    positions: np.ndarray  # int64 cell of each input point, in input order
    carrier: np.ndarray  # bool per input point: the first input point of its cell (carries alarms)
    index: pd.Index  # the caller's index, returned on every result
    input_values: np.ndarray  # the caller's values, in input order (may hold NaN)
    period: int  # seasonal period in grid steps
    step: object  # grid step (a Timedelta) or None without timestamps
    times: object  # cell times (a DatetimeIndex) or None without timestamps


def _as_series(series):
    if isinstance(series, pd.DataFrame):
        if series.shape[1] != 1:
            raise ValueError(f"series must have exactly one column, got a DataFrame with {series.shape[1]} columns")
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


_ROUND_UNITS_NS = (60 * 10**9, 10**9, 10**6)  # a minute, a second, a millisecond


def median_step(times_ns):
    """Median step between distinct timestamps (int64 nanoseconds), as a Timedelta.

    Jitter moves the median a little off the sampler's true step; the step is
    rounded to whole minutes, seconds or milliseconds (the coarsest within
    1%), as real samplers use.
    """
    diffs = np.diff(np.unique(times_ns))
    if diffs.size == 0:
        raise ValueError("cannot build a grid from fewer than 2 distinct timestamps")
    step = float(np.median(diffs))
    for unit in _ROUND_UNITS_NS:
        rounded = round(step / unit) * unit
        if rounded > 0 and abs(rounded - step) <= 0.01 * step:
            step = rounded
            break
    return pd.Timedelta(int(step), unit="ns")


def infer_period(index: pd.DatetimeIndex) -> int:
    """Seasonal period, in steps, implied by a DatetimeIndex.

    The step is the median step between distinct timestamps.  Sub-daily data
    get a daily period (``1 day / step``), daily to sub-weekly data a weekly
    one (``7 days / step``).  Anything else raises.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Timestamps (any order, duplicates allowed).

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
    return period_from_step(median_step(index.as_unit("ns").asi8))


def period_from_step(step):
    """Steps per day (sub-daily steps) or per week (daily to sub-weekly steps) of a Timedelta step."""
    if step < _DAY:
        period = int(round(_DAY / step))
    elif step < _WEEK:
        period = int(round(_WEEK / step))
    else:
        raise ValueError(f"cannot infer a seasonal period for a sampling step of {step}; pass period explicitly")
    if period < 2:
        raise ValueError(f"the inferred period ({period}) is below 2; pass period explicitly")
    return period


def acf_period(values, max_lag=400, default=125):
    """Dominant cycle length of ``values`` from its autocorrelation (TSB-AD's rule).

    The highest local maximum of the autocorrelation at lags 3..``max_lag``
    of the first 20,000 points; ``default`` when there is none or it lies
    outside [6, 303] (TSB-AD's ``find_length_rank(data, rank=1)``).
    """
    from scipy.signal import argrelextrema
    from statsmodels.tsa.stattools import acf

    values = np.asarray(values, dtype=np.float64)[:20000]
    if values.shape[0] < 8 or np.ptp(values) == 0:
        return default
    base = 3
    corr = acf(values, nlags=min(max_lag, values.shape[0] - 1), fft=True)[base:]
    peaks = argrelextrema(corr, np.greater)[0]
    if peaks.size == 0:
        return default
    best = int(peaks[np.argmax(corr[peaks])])
    if best < 3 or best > 300:
        return default
    return best + base


def _aggregate(times, values, duplicates):
    """Unique sorted timestamps, their aggregated values, and the unique slot of each point."""
    unique, slot = np.unique(times, return_inverse=True)
    if unique.shape[0] == times.shape[0]:
        out = np.empty(unique.shape[0])
        out[slot] = values
        return unique, out, slot
    if duplicates == "raise":
        raise ValueError(
            "the DatetimeIndex has duplicated timestamps; pass duplicates='mean' or 'last' to aggregate them"
        )
    finite = np.isfinite(values)
    if duplicates == "mean":
        sums = np.bincount(slot[finite], values[finite], minlength=unique.shape[0])
        counts = np.bincount(slot[finite], minlength=unique.shape[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            return unique, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), slot
    out = np.full(unique.shape[0], np.nan)  # "last": the last finite value of each slot
    order = np.flatnonzero(finite)  # input order; later assignments win
    out[slot[order]] = values[order]
    return unique, out, slot


def _fit_grid(times_ns, step_ns):
    """Grid origin, step and cell number of sorted distinct timestamps.

    Cells come from the median step; origin and step are then corrected
    robustly (median offset, and the drift between the medians of the first
    and second halves), so jitter cannot make the grid drift away from the
    timestamps over a long series and a few odd timestamps cannot bend it.
    """
    relative = (times_ns - times_ns[0]).astype(np.float64)
    cells = np.rint(relative / step_ns)
    half = cells.shape[0] // 2
    if half > 0 and cells[-1] > 0:
        offset = relative - cells * step_ns
        early, late = np.median(cells[:half]), np.median(cells[half:])
        if late > early:
            drift = (np.median(offset[half:]) - np.median(offset[:half])) / (late - early)
            step_ns = step_ns + drift
            intercept = np.median(relative - cells * step_ns)
            cells = np.rint((relative - intercept) / step_ns)
            shift = cells[0]  # keep the first point in cell 0
            origin = times_ns[0] + int(round(intercept + shift * step_ns))
            return origin, float(step_ns), (cells - shift).astype(np.int64)
    return times_ns[0], float(step_ns), cells.astype(np.int64)


def prepare_series(series, period=None, min_cycles=2, duplicates="mean", max_gap=None, gap_periods=1):
    """Validate ``series`` and return it as a :class:`RegularSeries`.

    Parameters
    ----------
    series : pandas.Series, one-column DataFrame or 1-D array-like
    period : int >= 2 or None
        Steps per cycle; None infers it from a DatetimeIndex (:func:`infer_period`).
    min_cycles : int
        The longest segment must span at least ``min_cycles * period`` steps.
    duplicates : {"mean", "last", "raise"}
        How values at one timestamp are aggregated.
    max_gap : int >= 1 or None
        A gap of more than ``max_gap`` steps between finite points splits the
        series; None = ``gap_periods`` periods.
    gap_periods : int >= 1
        The default ``max_gap``, in periods.

    Raises ``TypeError`` for non-numeric data, ``ValueError`` for empty,
    multi-dimensional, infinite, all-missing or too-short input, NaT
    timestamps, and duplicated timestamps with ``duplicates="raise"``.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    series = _as_series(series)
    n = len(series)
    if n == 0:
        raise ValueError("series is empty")
    input_values = series.to_numpy()
    if np.isinf(input_values).any():
        raise ValueError("series contains infinite values")
    if np.isnan(input_values).all():
        raise ValueError("series contains only NaN values")

    index = series.index
    if isinstance(index, pd.DatetimeIndex):
        if index.hasnans:
            raise ValueError("the DatetimeIndex contains NaT")
        times = index.as_unit("ns").asi8
        unique, values, slot = _aggregate(times, input_values, duplicates)
        step = median_step(unique)
        if period is None:
            period = period_from_step(step)
        origin, step_ns, cell_of_slot = _fit_grid(unique, step.value)
        step = pd.Timedelta(int(round(step_ns)), unit="ns")
    else:
        if period is None:
            raise ValueError(
                "period=None needs a pandas Series with a DatetimeIndex to infer the "
                "seasonal period; pass period=<steps per cycle> instead"
            )
        step = None
        unique = np.arange(n, dtype=np.int64)
        values, slot = input_values, unique
        origin, step_ns, cell_of_slot = 0, 1, unique
    period = int(period)
    max_gap = gap_periods * period if max_gap is None else int(max_gap)

    finite = np.flatnonzero(np.isfinite(values))
    finite_cells = cell_of_slot[finite]
    # split where consecutive finite points are more than ``max_gap`` cells apart
    breaks = np.flatnonzero(np.diff(finite_cells) > max_gap) + 1
    seg_first = np.r_[0, breaks]  # index into ``finite`` of each segment's first point
    seg_last = np.r_[breaks, finite.shape[0]] - 1
    lengths = finite_cells[seg_last] - finite_cells[seg_first] + 1
    if lengths.max() < min_cycles * period:
        raise ValueError(
            f"series spans {int(lengths.max())} steps; at least {min_cycles} periods "
            f"({min_cycles * period} steps for period={period}) are needed"
        )
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    segments = np.column_stack([starts, starts + lengths]).astype(np.int64)

    # grid cell times (in ns, or steps) of every segment, back to back
    offset = np.repeat(starts - finite_cells[seg_first], lengths)  # grid position - cell number
    cells = np.arange(int(lengths.sum()), dtype=np.int64) - offset
    grid_times = origin + np.rint(cells * step_ns).astype(np.int64)
    grid = np.interp(grid_times.astype(np.float64), unique[finite].astype(np.float64), values[finite])
    observed = np.zeros(grid.shape[0], dtype=bool)
    seg_of_finite = np.repeat(np.arange(len(seg_first)), seg_last - seg_first + 1)
    observed[finite_cells + (starts - finite_cells[seg_first])[seg_of_finite]] = True

    # every input point maps to its cell; points in a long gap or beyond the
    # last finite point map to the nearest cell that exists
    position_of_cell = np.searchsorted(cells, cell_of_slot).clip(0, cells.shape[0] - 1)
    left = (position_of_cell - 1).clip(0)
    closer_left = np.abs(cells[left] - cell_of_slot) < np.abs(cells[position_of_cell] - cell_of_slot)
    position_of_slot = np.where(closer_left, left, position_of_cell)
    positions = position_of_slot[slot]
    order = np.argsort(slot, kind="stable")  # time order of the input points
    carrier = np.zeros(n, dtype=bool)
    first_in_cell = np.r_[True, positions[order][1:] != positions[order][:-1]]
    carrier[order[first_in_cell]] = True
    times_index = None
    if step is not None:
        times_index = pd.DatetimeIndex(grid_times.view("datetime64[ns]"))
        if index.tz is not None:
            times_index = times_index.tz_localize("UTC").tz_convert(index.tz)
    return RegularSeries(grid, observed, segments, positions, carrier, index, input_values, period, step, times_index)


def on_input(data, grid_column):
    """A per-cell array read back at every input point (input order)."""
    return np.asarray(grid_column)[data.positions]
