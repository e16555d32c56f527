"""What every ``update(value, timestamp)`` of a time-series detector shares.

A stream is put on the training grid as it comes (as ``_series`` does for a
whole series): a timestamp in the cell of the previous point updates nothing;
missing cells up to ``max_gap`` are filled by linear interpolation and marked
(they never alarm on their own); a longer gap restarts the stream.  NaN
values are skipped.  :func:`feed` runs that loop; a detector's stream
subclasses :class:`GridStream` and the detector gives ``push(stream, value,
observed) -> score`` for one grid cell.

:class:`RollingWindow` is the streaming twin of pandas'
``rolling(size, min_periods=1)`` median and linear quantile over the
previous ``size`` positions (NaN positions count as positions but not as
values), so online scores equal the batch ones.
"""

from bisect import bisect_left, insort

import numpy as np
import pandas as pd

from ._alarm_runs import AlarmState

__all__ = ["GridStream", "RollingWindow", "feed"]


class GridStream:
    """Grid clock, last value / score and alarm state of one stream."""

    def reset(self):
        self.last_time = None  # grid time of the previous cell (ns) or cell count
        self.last_value = 0.0  # value of the previous cell (the left end of a fill)
        self.last_score = 0.0
        self.alarms = AlarmState()

    def advance(self, timestamp, step, max_gap):
        """Cells from the previous point to ``timestamp``: 0 (same cell), 1..max_gap, or -1 (restart)."""
        if timestamp is None or step is None:
            self.last_time = (self.last_time or 0) + 1
            return 1
        now = timestamp.value if type(timestamp) is pd.Timestamp else pd.Timestamp(timestamp).value
        if self.last_time is None:
            self.last_time = now
            return 1
        step = step.value
        cells = round((now - self.last_time) / step)
        if cells <= 0:
            return 0
        self.last_time += cells * step
        return cells if cells <= max_gap else -1

    def validate_clock(self):
        """Check the shared fields of a restored stream (ValueError names the field)."""
        if self.last_time is not None and not isinstance(self.last_time, int):
            raise ValueError(f"stream field 'last_time' must be an int or None, got {self.last_time!r}")
        if not (isinstance(self.last_value, float) and np.isfinite(self.last_value)):
            raise ValueError(f"stream field 'last_value' must be a finite float, got {self.last_value!r}")
        if not isinstance(self.alarms, AlarmState):
            raise ValueError("stream field 'alarms' must be an AlarmState")
        self.alarms = AlarmState.restore(self.alarms.array)


def feed(stream, push, value, timestamp, step, max_gap, spacing):
    """One input point into ``stream``; returns ``(score, alarm)``."""
    value = float(value)
    if not np.isfinite(value):
        return float("nan"), False
    cells = stream.advance(timestamp, step, max_gap)
    if cells == 0:
        return stream.last_score, False
    if cells < 0:  # a long gap: restart
        stream.reset()
        cells = 1
    if cells > 1:
        for filled in np.interp(np.arange(1, cells), [0, cells], [stream.last_value, value]):
            stream.last_score = push(stream, float(filled), False)
            stream.alarms.step_one(stream.last_score, False, spacing)
            stream.last_value = float(filled)
    stream.last_score = push(stream, value, True)
    stream.last_value = value
    return stream.last_score, stream.alarms.step_one(stream.last_score, True, spacing)


class RollingWindow:
    """Median and quantile of the last ``size`` pushed values (NaN ignored).

    A ring of the values (NaN included: they hold a position) and a sorted
    list of the finite ones; a push is O(size) memmove, O(log size) search.
    Pickles as the ring only; the sorted list is rebuilt and checked on load.
    """

    def __init__(self, size):
        self.size = int(size)
        self.clear()

    def clear(self):
        self.ring = [float("nan")] * self.size
        self.head = 0
        self.sorted = []

    def push(self, x):
        old = self.ring[self.head]
        if old == old:  # not NaN
            del self.sorted[bisect_left(self.sorted, old)]
        self.ring[self.head] = x
        self.head = (self.head + 1) % self.size
        if x == x:
            insort(self.sorted, x)

    def median(self):
        """Median of the finite values (NaN when none), as pandas' rolling median."""
        s = self.sorted
        n = len(s)
        if n == 0:
            return float("nan")
        mid = n // 2
        return s[mid] if n % 2 else (s[mid] + s[mid - 1]) / 2

    def quantile(self, q):
        """Linear-interpolation quantile (NaN when empty), as pandas' rolling quantile."""
        s = self.sorted
        n = len(s)
        if n == 0:
            return float("nan")
        position = q * (n - 1)
        low = int(position)
        if low == position or low + 1 >= n:
            return s[low]
        return s[low] + (s[low + 1] - s[low]) * (position - low)

    def __getstate__(self):
        return {"size": self.size, "ring": np.array(self.ring, dtype=np.float64), "head": self.head}

    def __setstate__(self, state):
        ring = state.get("ring")
        size, head = state.get("size"), state.get("head")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"rolling window field 'size' must be a positive int, got {size!r}")
        if not isinstance(ring, np.ndarray) or ring.dtype != np.float64 or ring.shape != (size,):
            raise ValueError(f"rolling window field 'ring' must be a float64 array of {size} values")
        if np.isinf(ring).any():
            raise ValueError("rolling window field 'ring' holds infinite values")
        if not isinstance(head, int) or not 0 <= head < size:
            raise ValueError(f"rolling window field 'head' must be an int in [0, {size}), got {head!r}")
        self.size, self.head = size, head
        self.ring = ring.tolist()
        self.sorted = sorted(x for x in self.ring if x == x)
