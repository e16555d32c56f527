"""The pipeline's threshold: the value in force at each event time, and the
feedback controller that moves it towards a target precision."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

__all__ = ["ThresholdTimeline", "feedback_step"]


class ThresholdTimeline:
    """The threshold in force at each event time.

    Mirrors the store's threshold changes ordered by ``(event_time, seq)``;
    a change is in force for events strictly later than its ``event_time``
    (the stream's event-time watermark when it was made), so replaying a
    stream judges every event with the threshold it met the first time.
    """

    def __init__(self) -> None:
        self._keys = []  # (event_time, seq), sorted
        self._values = []
        self._stamps = []
        self.last_seq = 0

    def __len__(self):
        return len(self._values)

    def add(self, changes: Iterable[tuple[int, float, float]]) -> None:
        for seq, event_time, value in changes:
            i = bisect_right(self._keys, (event_time, seq))
            self._keys.insert(i, (event_time, seq))
            self._values.insert(i, float(value))
            self.last_seq = max(self.last_seq, seq)
        self._stamps = [k[0] for k in self._keys]
        self._stamp_array = np.array(self._stamps, dtype=np.float64)
        self._value_array = np.array(self._values, dtype=np.float64)

    def current(self) -> float:
        return self._values[-1]

    def at(self, t: float) -> float:
        if t > self._stamps[-1]:
            return self._values[-1]
        return self._values[max(bisect_left(self._stamps, t) - 1, 0)]

    def at_many(self, ts: npt.NDArray[np.float64]) -> float | npt.NDArray[np.float64]:
        if len(self._values) == 1 or ts.min() > self._stamps[-1]:
            return self._values[-1]
        index = np.searchsorted(self._stamp_array, ts, side="left") - 1
        return self._value_array[np.maximum(index, 0)]


def feedback_step(
    current: float, labels: Mapping[str, bool], target_precision: float, max_step: float, bounds: tuple[float, float]
) -> tuple[float, str | None]:
    """The threshold after feedback: precision below ``target_precision``
    over ``labels`` (alert id -> bool) raises ``current``, above it lowers
    it, by ``min(max_step, |precision - target| / 2)``, within ``bounds``.

    Returns
    -------
    (new, reason) : (float, str or None)
        ``reason`` is None when the threshold does not change.

    Examples
    --------
    >>> feedback_step(0.7, {"a": True, "b": False}, 0.9, 0.05, (0.5, 0.99))
    (0.75, 'precision 0.500 over the last 2 labelled alerts is below the target 0.900')
    >>> feedback_step(0.99, {"a": False}, 0.9, 0.05, (0.5, 0.99))
    (0.99, None)
    """
    n = len(labels)
    precision = sum(labels.values()) / n
    error = target_precision - precision
    step = math.copysign(min(max_step, abs(error) / 2.0), error)
    low, high = bounds
    new = min(high, max(low, current + step))
    if new == current:
        return current, None
    direction = "below" if error > 0 else "above"
    reason = (
        f"precision {precision:.3f} over the last {n} labelled alerts is {direction} the target {target_precision:.3f}"
    )
    return new, reason
