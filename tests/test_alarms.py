"""The alarm-onset kernel (native/_alarms.pyx)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast.timeseries._alarm_runs import AlarmState


def onsets(score, spacing, observed=None):
    score = np.asarray(score, dtype=np.float64)
    observed = np.ones(score.shape[0], dtype=bool) if observed is None else np.asarray(observed)
    return np.flatnonzero(AlarmState().step(score, observed, spacing)).tolist()


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


def test_a_filled_cell_never_alarms_on_its_own():
    score = [0, 2, 2, 0, 2, 0, 0, 2, 2, 0]
    observed = [1, 0, 1, 1, 0, 1, 1, 1, 1, 1]
    # run [1, 2] alarms at its first observed cell; run [4] is all filled
    assert onsets(score, 1, observed) == [2, 7]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 3), max_size=120), st.integers(1, 20), st.integers(1, 50))
def test_property_a_stream_fed_in_pieces_alarms_like_one_batch(score, spacing, piece):
    score = np.asarray(score)
    observed = np.arange(score.shape[0]) % 3 != 0
    whole = AlarmState().step(score, observed, spacing)
    state = AlarmState()
    pieces = [state.step(score[i : i + piece], observed[i : i + piece], spacing) for i in range(0, len(score), piece)]
    np.testing.assert_array_equal(np.concatenate(pieces) if pieces else whole, whole)


def test_restored_state_is_validated():
    assert AlarmState.restore([5, 2, 1, 0]).array.tolist() == [5, 2, 1, 0]
    for bad, field in [
        ([5, 2, 1], "4 integers"),
        ([-1, -9, 0, 0], "time"),
        ([5, 9, 0, 0], "last_alarm"),
        ([5, 2, 3, 0], "previous_flagged"),
        ([5, 2, 0, 7], "armed"),
        ([0.5, 0, 0, 0], "4 integers"),
    ]:
        with pytest.raises(ValueError, match=field):
            AlarmState.restore(bad)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0]), st.booleans()), max_size=150),
    st.integers(1, 20),
)
def test_property_the_one_point_step_alarms_like_the_array_kernel(points, spacing):
    score = np.array([s for s, _ in points], dtype=np.float64)
    observed = np.array([o for _, o in points], dtype=bool)
    one, batch = AlarmState(), AlarmState()
    stepped = [one.step_one(s, o, spacing) for s, o in zip(score, observed)]
    assert stepped == batch.step(score, observed, spacing).tolist()
    np.testing.assert_array_equal(one.array, batch.array)
