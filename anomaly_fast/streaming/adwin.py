"""ADWIN drift detector with a compiled bucket histogram."""

from __future__ import annotations

from numbers import Integral, Real
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator

from .._adwin import MAX_ABS_VALUE, AdaptiveWindow
from .._sklearn_compat import Interval, validate_estimator_params

__all__ = ["ADWIN"]

_PARAM_NAMES = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")
_KERNEL_KEYS = ("params", "scalars", "bucket_total", "bucket_m2", "bucket_count")
_MAX_COUNT = 2**62  # ticks, clocks and detection counts stay far from int64 overflow
_MAX_WIDTH = 2**53  # the width is counted in a float64
_FLOATS = (float, np.floating)
_INTS = (int, np.integer)


def _bad(field, problem):
    return ValueError(f"ADWIN state: {field} {problem}")


def _keys(mapping, expected, field):
    if not isinstance(mapping, dict):
        raise _bad(field, f"must be a dict, got {type(mapping).__name__}")
    missing = [k for k in expected if k not in mapping]
    unknown = [k for k in mapping if k not in expected]
    if missing or unknown:
        raise _bad(field, f"must have the keys {list(expected)}; missing {missing}, unknown {unknown}")


def _number(value, kinds, field, low, high):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        raise _bad(field, f"must be {'an int' if kinds is _INTS else 'a float'}, got {type(value).__name__}")
    if not (low <= value <= high):  # NaN fails
        raise _bad(field, f"must be in [{low}, {high}], got {value!r}")
    return value


def _array(value, dtype, field):
    if type(value) is not np.ndarray or value.dtype != dtype or value.ndim != 1:
        described = (
            f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        )
        raise _bad(field, f"must be a 1-D {np.dtype(dtype)} array, got {described}")
    return value


def _tuple(value, n, field):
    if not isinstance(value, tuple) or len(value) != n:
        raise _bad(field, f"must be a tuple of {n} values")
    return value


def _check_state(state):
    """Validate a pickled ADWIN state structurally; return ``(params,
    kernel)``, ready for ``__dict__`` and ``_restore``, or raise a
    ``ValueError`` naming the bad field.

    Checked: the keys (none missing or unknown), every field's type and
    dtype, the parameters' ranges, bucket counts within ``max_buckets`` and
    arrays of ``n_rows * (max_buckets + 1)`` cells, a last row that is not
    empty, the width equal to the buckets' sizes, every value within the
    detector's bounds, and -- unless a drift was just detected (the window
    is emptied on the next update) -- total and variance consistent with the
    buckets up to rounding.  A corrupted state cannot crash, hang or
    overflow the kernel; a consistent but forged one only gives wrong
    detections (an untrusted pickle is never safe to load)."""
    _keys(state, ("params", "kernel"), "")
    params = state["params"]
    _keys(params, _PARAM_NAMES, "params")
    kernel = state["kernel"]
    _keys(kernel, _KERNEL_KEYS, "kernel")
    delta, clock, max_buckets, min_length, grace = _tuple(kernel["params"], 5, "kernel params")
    _number(delta, _FLOATS, "delta", 0.0, 1.0)
    if not 0.0 < delta < 1.0:
        raise _bad("delta", f"must be in (0, 1), got {delta!r}")
    _number(clock, _INTS, "clock", 1, _MAX_COUNT)
    _number(max_buckets, _INTS, "max_buckets", 1, _MAX_COUNT)
    _number(min_length, _FLOATS, "min_window_length", 1.0, float(_MAX_WIDTH))
    _number(grace, _FLOATS, "grace_period", 0.0, float(_MAX_WIDTH))
    total, m2, width, tick, n_detections, drift = _tuple(kernel["scalars"], 6, "kernel scalars")
    _number(width, _FLOATS, "width", 0.0, float(_MAX_WIDTH))
    _number(tick, _INTS, "tick", 0, _MAX_COUNT)
    _number(n_detections, _INTS, "n_detections", 0, _MAX_COUNT)
    if not isinstance(drift, (bool, np.bool_)):
        raise _bad("drift", f"must be a bool, got {type(drift).__name__}")
    counts = _array(kernel["bucket_count"], np.intp, "bucket_count")
    totals = _array(kernel["bucket_total"], np.float64, "bucket_total")
    m2s = _array(kernel["bucket_m2"], np.float64, "bucket_m2")
    n_rows = len(counts)
    if not 1 <= n_rows <= 60:
        raise _bad("bucket_count", f"must have 1 to 60 rows, got {n_rows}")
    if counts.min() < 0 or counts.max() > max_buckets:
        raise _bad("bucket_count", f"must be in [0, max_buckets={max_buckets}], got {counts.tolist()}")
    if n_rows > 1 and counts[-1] == 0:
        raise _bad("bucket_count", "has an empty last row")
    cells = n_rows * (int(max_buckets) + 1)
    for name, arr in (("bucket_total", totals), ("bucket_m2", m2s)):
        if len(arr) != cells:
            raise _bad(name, f"must have n_rows * (max_buckets + 1) = {cells} cells, got {len(arr)}")
    sizes = np.ldexp(1.0, np.arange(n_rows))
    if float(width) != float(np.dot(counts, sizes)) or width != int(width):
        raise _bad("width", f"must equal the buckets' sizes, {float(np.dot(counts, sizes))!r}, got {width!r}")
    if width > tick:
        raise _bad("tick", f"must be >= width ({width!r}), got {tick!r}")
    used = np.arange(int(max_buckets) + 1)[None, :] < counts[:, None]  # (n_rows, cells per row)
    size = np.broadcast_to(sizes[:, None], used.shape)[used]
    bucket_total = totals.reshape(n_rows, -1)[used]
    bucket_m2 = m2s.reshape(n_rows, -1)[used]
    if not (np.isfinite(totals).all() and np.isfinite(m2s).all()):
        raise _bad("bucket_total/bucket_m2", "must be finite")
    if not (np.abs(bucket_total) <= size * MAX_ABS_VALUE).all():
        raise _bad("bucket_total", f"must be within size * {MAX_ABS_VALUE:g} per bucket")
    if not ((bucket_m2 >= 0.0) & (bucket_m2 <= size * (2 * MAX_ABS_VALUE) ** 2)).all():
        raise _bad("bucket_m2", "must be >= 0 and within the bound of its bucket's values")
    _number(total, _FLOATS, "total", -(width + 1) * MAX_ABS_VALUE, (width + 1) * MAX_ABS_VALUE)
    m2_bound = (width + 1) * (2 * MAX_ABS_VALUE) ** 2
    _number(m2, _FLOATS, "variance (m2)", -m2_bound, m2_bound)
    if not drift and width > 0:
        # The running sums against the buckets: the same values summed in
        # another order, so equal up to rounding (errors below width * eps *
        # sum |value|; ``scale`` bounds sum |value| by Cauchy-Schwarz).
        mean = bucket_total / size
        exact_total = float(bucket_total.sum())
        between = float((size * (mean - exact_total / width) ** 2).sum())
        exact_m2 = float(bucket_m2.sum()) + between
        scale = float(np.abs(bucket_total).sum()) + np.sqrt(width * exact_m2)
        squares = float((bucket_total * mean).sum()) + float(bucket_m2.sum())
        if not abs(total - exact_total) <= 1e-9 * width * scale + 1e-300:
            raise _bad("total", f"must equal the buckets' sum {exact_total!r} up to rounding, got {total!r}")
        if not abs(m2 - exact_m2) <= 1e-9 * width * squares + 1e-300:
            raise _bad("variance (m2)", f"must equal the buckets' {exact_m2!r} up to rounding, got {m2!r}")
    return params, kernel


class ADWIN(BaseEstimator):
    """ADaptive WINdowing drift detector (ADWIN2, Bifet & Gavaldà 2007),
    compiled, with the detections of :class:`river.drift.ADWIN`.

    ADWIN keeps a window of recent values compressed in an exponential
    histogram: at most ``max_buckets`` buckets of each size 2**i, each with
    its sum and variance, so memory is O(max_buckets * log(width)).  Every
    ``clock`` updates (once the window is longer than ``grace_period``) it
    tests each split of the window into an older and a newer part; when their
    means differ by more than the Hoeffding-style bound for confidence
    ``delta``, the oldest bucket is dropped and a drift is reported.

    As in river, the update that follows a detection first empties the
    window, so a detector restarts from scratch after each drift, and the
    detections are identical to river's for the same parameters and stream.
    The state lives in a compiled core (``self._core``); ``update`` is the
    core's C method, bound to each detector (no Python frame per call).

    Parameters
    ----------
    delta : float in (0, 1), default=0.002
        Confidence of the cut test; smaller means fewer, later detections.
    clock : int >= 1, default=32
        Run the cut test every ``clock`` updates.
    max_buckets : int >= 1, default=5
        Buckets of each size kept before the two oldest are merged.
    min_window_length : int >= 1, default=5
        Smallest sub-window (in values) either side of a tested cut.
    grace_period : int >= 0, default=10
        No test while the window holds this many values or fewer.

    Attributes
    ----------
    drift_detected : bool
        True when the last update detected a drift.
    width : int
        Number of values in the window.
    total : float
        Sum of the values in the window.
    estimation : float
        Mean of the window (0.0 when empty).
    variance : float
        Sum of squared deviations from the mean over the window (0.0 when
        empty) -- river's ``ADWIN.variance``, which is *not* divided by the
        width.
    variance_in_window : float
        Population variance of the window, ``variance / width`` (0.0 when
        empty), as river's ``AdaptiveWindowing.variance_in_window``.
    n_detections : int
        Drifts detected since construction or :meth:`reset`.  river's counter
        restarts after each drift; this one does not.
    bucket_counts : ndarray of int
        Buckets in each row of the histogram (row i holds buckets of 2**i
        values).

    Notes
    -----
    Values must be finite with ``|x| <= 1e120`` (``ValueError`` otherwise,
    the detector unchanged): within that bound the window's running sums
    cannot overflow, so a glitch such as ``1e308`` cannot turn ``total``
    into inf and blind the detector.  river takes any float.

    Threads: one detector may be shared between threads.  ``update``,
    ``update_many``, ``reset`` and unpickling run in compiled code with the
    GIL held from start to end, so concurrent calls take effect one at a
    time and readers never see a half-done update (CPython with the GIL;
    a free-threaded build would need a lock).

    Pickles are validated when loaded (``ValueError`` naming the bad field
    for a corrupted or truncated state); that cannot make an untrusted
    pickle safe to load.

    river 0.26 raises a ``PanicException`` for some streams when
    ``max_buckets=1`` (a cut that would delete from an emptied row); here
    that cut deletes the oldest remaining bucket instead.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import ADWIN
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    >>> adwin = ADWIN()
    >>> for i, value in enumerate(stream):
    ...     if adwin.update(value):
    ...         print(f"Change detected at index {i}, input value: {value}")
    Change detected at index 1023, input value: 7
    >>> ADWIN().update_many(stream)  # the same, with the loop in compiled code
    array([1023])
    >>> print(adwin.width, f"{adwin.estimation:.3f}")
    976 5.502
    """

    _parameter_constraints: dict = {
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "clock": [Interval(Integral, 1, None, closed="left")],
        "max_buckets": [Interval(Integral, 1, None, closed="left")],
        "min_window_length": [Interval(Integral, 1, None, closed="left")],
        "grace_period": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._bind(AdaptiveWindow())
        self.reset()

    def _bind(self, core: AdaptiveWindow) -> None:
        # The hot path is the core's own method: a Python method around it
        # would add a frame to every call (110 -> 162 ns measured).
        self._core = core
        self.update = core.update

    def update(self, x: float) -> bool:
        """Add one value; return True when a drift is detected at it.

        Parameters
        ----------
        x : float
            A finite number with ``|x| <= 1e120``.

        Returns
        -------
        bool
            :attr:`drift_detected`.

        Raises
        ------
        ValueError
            If ``x`` is NaN, infinite or ``|x| > 1e120`` (the detector is
            left unchanged).
        """
        # documentation only: __init__ binds the compiled method in its place
        return self._core.update(x)

    def reset(self) -> ADWIN:
        """Empty the window and the detection count (and apply any parameter
        changed with ``set_params``).

        Returns
        -------
        self
        """
        validate_estimator_params(self)
        self._core._configure(
            float(self.delta),
            int(self.clock),
            int(self.max_buckets),
            float(self.min_window_length),
            float(self.grace_period),
        )
        return self

    def update_many(self, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Feed ``values`` in order, as if by calling :meth:`update` on each.

        Parameters
        ----------
        values : array-like of shape (n_values,)
            Finite real numbers.

        Returns
        -------
        ndarray of int64
            Indices into ``values`` where a drift was detected.

        Raises
        ------
        ValueError
            If ``values`` is not 1-D or holds NaN, infinity or a value with
            ``|x| > 1e120``; the detector is then left unchanged.
        TypeError
            If ``values`` is not numeric.
        """
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"ADWIN.update_many: values must be numeric, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"ADWIN.update_many: values must be 1-D, got shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if len(arr) and not (-MAX_ABS_VALUE <= arr.min() and arr.max() <= MAX_ABS_VALUE):  # NaN fails too
            bad = int(np.flatnonzero(~(np.abs(arr) <= MAX_ABS_VALUE))[0])
            raise ValueError(
                f"ADWIN.update_many: values must be finite with |x| <= {MAX_ABS_VALUE:g}; values[{bad}] = {arr[bad]!r}"
            )
        return self._core._update_many(arr)

    # -- read-only state, from the core -------------------------------------------
    drift_detected = property(attrgetter("_core.drift_detected"), doc="True when the last update detected a drift.")
    width = property(attrgetter("_core.width"), doc="Number of values in the window.")
    total = property(attrgetter("_core.total"), doc="Sum of the values in the window.")
    estimation = property(attrgetter("_core.estimation"), doc="Mean of the window (0.0 when empty).")
    variance = property(
        attrgetter("_core.variance"), doc="Sum of squared deviations from the mean over the window (0.0 when empty)."
    )
    variance_in_window = property(
        attrgetter("_core.variance_in_window"), doc="Population variance of the window, ``variance / width``."
    )
    n_detections = property(
        attrgetter("_core.n_detections"), doc="Drifts detected since construction or :meth:`reset`."
    )
    bucket_counts = property(
        attrgetter("_core.bucket_counts"), doc="Buckets in each row of the histogram (row i: buckets of 2**i values)."
    )

    # -- pickling: the parameters, and the core's state validated before it is loaded
    def __getstate__(self) -> dict[str, Any]:
        return {"params": {k: self.__dict__[k] for k in _PARAM_NAMES}, "kernel": self._core._state()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        params, kernel = _check_state(state)
        probe = type(self).__new__(type(self))  # the parameters, checked before anything changes
        probe.__dict__.update(params)
        validate_estimator_params(probe)
        core = AdaptiveWindow()
        core._restore(kernel)
        self.__dict__.update(params)
        self._bind(core)
