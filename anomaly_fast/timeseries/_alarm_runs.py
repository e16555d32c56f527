"""Alarms from per-cell scores, and results read back on the caller's points.

One home for the alarm post-processing of every time-series detector (the
kernel is ``native/_alarms.pyx``): a point is flagged when ``score > 1``; one
alarm per run of flagged points, at its first observed cell, at most one per
``min_spacing`` steps; the state restarts after a long gap (a new segment).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from .. import _alarms

__all__ = ["AlarmState", "alarm_onsets", "grid_alarms", "input_frame"]

_NO_ALARM_YET = -(2**62)


class AlarmState:
    """The alarm kernel's state for one stream (see ``native/_alarms.pyx``)."""

    FIELDS = ("time", "last_alarm", "previous_flagged", "armed")

    def __init__(self, state=None):
        self.array = np.array([0, _NO_ALARM_YET, 0, 0], dtype=np.int64) if state is None else state

    def step(self, score, observed, min_spacing):
        """Alarms (bool array) of the next cells of the stream."""
        score = np.ascontiguousarray(score, dtype=np.float64)
        alarm = np.zeros(score.shape[0], dtype=np.uint8)
        _alarms.alarm_onsets(
            score,
            np.ones_like(score),
            np.ascontiguousarray(observed, dtype=np.uint8),
            int(min_spacing),
            self.array,
            alarm,
        )
        return alarm.view(bool)

    def step_one(self, score, observed, min_spacing):
        """One cell of the stream (``score > 1`` flags it)."""
        return _alarms.alarm_step(score, observed, min_spacing, self.array)

    @classmethod
    def restore(cls, values):
        """Validate a saved state (from ``array.tolist()``); ValueError names the bad field."""
        array = np.asarray(values)
        if array.shape != (4,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"alarm_state must be 4 integers {cls.FIELDS}, got {values!r}")
        array = array.astype(np.int64)
        if array[0] < 0:
            raise ValueError(f"alarm_state field 'time' must be >= 0, got {array[0]}")
        if array[1] > array[0]:
            raise ValueError("alarm_state field 'last_alarm' lies in the future")
        for k in (2, 3):
            if array[k] not in (0, 1):
                raise ValueError(f"alarm_state field {cls.FIELDS[k]!r} must be 0 or 1, got {array[k]}")
        return cls(array)


def alarm_onsets(score: npt.ArrayLike, min_spacing: int) -> npt.NDArray[np.bool_]:
    """Alarms of one regular stream of scores, with the alarm spacing of the
    time-series detectors: a point is flagged when ``score > 1``; one alarm
    per run of flagged points, at its first point, at most one per
    ``min_spacing`` points.

    Examples
    --------
    >>> alarm_onsets([0.5, 1.5, 2.0, 0.1, 1.2, 0.3, 3.0], 3).tolist()
    [False, True, False, False, True, False, False]
    """
    score = np.asarray(score, dtype=np.float64)
    return AlarmState().step(score, np.ones(score.shape[0], dtype=bool), min_spacing)


def grid_alarms(score, data, min_spacing):
    """Alarms on the grid of ``data`` (a ``RegularSeries``), restarting per segment."""
    alarm = np.zeros(score.shape[0], dtype=bool)
    for start, stop in data.segments:
        alarm[start:stop] = AlarmState().step(score[start:stop], data.observed[start:stop], min_spacing)
    return alarm


def input_frame(data, columns, alarm=None):
    """A DataFrame on the caller's index from per-cell columns.

    ``columns`` maps names to per-cell arrays (read at each input point's
    cell) or to per-input arrays (``value``).  ``alarm`` (per cell) lands on
    the first input point of its cell only, so one alarm stays one alarm.
    """
    out = {}
    for name, column in columns.items():
        column = np.asarray(column)
        out[name] = column if name == "value" else column[data.positions]
    if alarm is not None:
        out["alarm"] = alarm[data.positions] & data.carrier
    return pd.DataFrame(out, index=data.index)
