"""The alarm-onset kernel (native/_alarms.pyx)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast import _alarms


def onsets(score, spacing):
    score = np.asarray(score, dtype=np.float64)
    alarm = np.zeros(score.shape[0], dtype=np.uint8)
    _alarms.alarm_onsets(score, np.ones_like(score), spacing, alarm)
    return np.flatnonzero(alarm).tolist()


def test_one_alarm_per_run_and_spacing():
    score = [0, 2, 2, 2, 0, 2, 0, 0, 0, 0, 2, 0]
    assert onsets(score, 1) == [1, 5, 10]
    assert onsets(score, 5) == [1, 10]  # the run at 5 starts inside the spacing
    assert onsets(score, 20) == [1]
    assert onsets([2, 2, 2, 2, 2, 2], 2) == [0]  # a long run raises one alarm
    assert onsets([], 3) == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), max_size=200), st.integers(1, 30))
def test_property_alarms_are_spaced_run_starts(flags, spacing):
    flags = np.asarray(flags, dtype=bool)
    alarms = onsets(flags.astype(float) * 2, spacing)
    starts = [t for t in range(len(flags)) if flags[t] and (t == 0 or not flags[t - 1])]
    assert set(alarms) <= set(starts)
    assert all(b - a >= spacing for a, b in zip(alarms, alarms[1:]))
    # every run start without an alarm falls inside the spacing of the previous alarm
    for t in set(starts) - set(alarms):
        previous = [a for a in alarms if a < t]
        assert previous and t - previous[-1] < spacing
