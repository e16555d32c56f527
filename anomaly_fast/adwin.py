"""ADWIN drift detector with a compiled bucket histogram."""

import copyreg
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval

from ._adwin import AdaptiveWindow

__all__ = ["ADWIN"]


class ADWIN(AdaptiveWindow, BaseEstimator):
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
    The state lives in the compiled base class; ``update`` is a C method.

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
        Population variance of the window (0.0 when empty).  river's
        ``ADWIN.variance`` returns the sum of squared deviations instead,
        i.e. ``variance * width``.
    n_detections : int
        Drifts detected since construction or :meth:`reset`.  river's counter
        restarts after each drift; this one does not.
    bucket_counts : ndarray of int
        Buckets in each row of the histogram (row i holds buckets of 2**i
        values).

    Notes
    -----
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

    def __init__(self, delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10):
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.reset()

    def reset(self):
        """Empty the window and the detection count (and apply any parameter
        changed with ``set_params``).

        Returns
        -------
        self
        """
        self._validate_params()
        self._configure(
            float(self.delta),
            int(self.clock),
            int(self.max_buckets),
            float(self.min_window_length),
            float(self.grace_period),
        )
        return self

    def update_many(self, values):
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
            If ``values`` is not 1-D or holds NaN or infinity; the detector
            is then left unchanged.
        TypeError
            If ``values`` is not numeric.
        """
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"ADWIN.update_many: values must be numeric, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"ADWIN.update_many: values must be 1-D, got shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(
                f"ADWIN.update_many: values must be finite; values[{bad}] = {arr[bad]!r}"
            )
        return self._update_many(arr)

    # Pickling: the parameters live in __dict__, the histogram in the compiled
    # base class.
    def __getstate__(self):
        return {"params": dict(self.__dict__), "kernel": self._state()}

    def __setstate__(self, state):
        self.__dict__.update(state["params"])
        self._restore(state["kernel"])

    def __reduce__(self):
        return copyreg.__newobj__, (type(self),), self.__getstate__()
