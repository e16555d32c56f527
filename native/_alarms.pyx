# Alarm post-processing kernel for the time-series detectors.
#
# A point is "flagged" when its score exceeds its limit.  An alarm is raised
# only once per run of consecutive flagged points, at the run's first
# *observed* point (a grid cell filled by interpolation never raises an alarm
# on its own: a run made only of filled cells raises none), and only when at
# least ``min_spacing`` steps have passed since the previous alarm: a run whose
# candidate falls inside the spacing is absorbed by the earlier alarm, and a
# run that lasts (a level shift the baseline has not caught up with yet)
# raises one alarm, not one per point.  Sequential by nature, so it lives here.
#
# Layout of ``state`` (int64[4]), so a stream can be fed in pieces of any size
# (one point online, a whole series in batch) with the same result:
#   state[0]  time of the next point (steps since the stream started)
#   state[1]  time of the previous alarm (very negative: none yet)
#   state[2]  1 when the previous point was flagged
#   state[3]  1 while the current run can still raise its alarm
#
# Kernels never validate: callers pass equal-length C-contiguous arrays.
from libc.stdint cimport int64_t, uint8_t

from _types cimport float64_t, intp_t


cdef inline bint _onset(bint flagged, bint observed, intp_t min_spacing, int64_t* state) noexcept nogil:
    """The rule for one point; ``state`` as laid out above, advanced by one step."""
    cdef bint alarm = False
    if flagged:
        if not state[2]:
            state[3] = 1
        if state[3] and observed:
            state[3] = 0
            if state[0] - state[1] >= min_spacing:
                alarm = True
                state[1] = state[0]
    state[2] = flagged
    state[0] += 1
    return alarm


def alarm_onsets(const float64_t[::1] score, const float64_t[::1] limit,
                 const uint8_t[::1] observed, intp_t min_spacing,
                 int64_t[::1] state, uint8_t[::1] alarm):
    """Write 1 into ``alarm[i]`` where a spaced run of ``score > limit`` alarms."""
    cdef intp_t n = score.shape[0]
    cdef intp_t i
    with nogil:
        for i in range(n):
            alarm[i] = _onset(score[i] > limit[i], observed[i] != 0, min_spacing, &state[0])


def alarm_step(float64_t score, bint observed, intp_t min_spacing, int64_t[::1] state):
    """One point of a stream (limit 1): True when it raises an alarm."""
    return _onset(score > 1.0, observed, min_spacing, &state[0])
