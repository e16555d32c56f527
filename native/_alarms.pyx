# Alarm post-processing kernel for the time-series detectors.
#
# A point is "flagged" when its score exceeds its limit.  An alarm is raised
# only at the first point of a run of flagged points, and only when at least
# ``min_spacing`` steps have passed since the previous alarm: a run that
# starts inside the spacing is absorbed by the earlier alarm, and a run that
# lasts (a level shift that the baseline has not caught up with yet) raises
# one alarm, not one per point.  Sequential by nature, so it lives here.
#
# Kernels never validate: callers pass equal-length C-contiguous arrays.
from libc.stdint cimport uint8_t

from _types cimport float64_t, intp_t


def alarm_onsets(const float64_t[::1] score, const float64_t[::1] limit,
                 intp_t min_spacing, uint8_t[::1] alarm):
    """Write 1 into ``alarm[t]`` where a spaced run of ``score > limit`` starts."""
    cdef intp_t n = score.shape[0]
    cdef intp_t t
    cdef intp_t last = -min_spacing - 1  # time of the previous alarm
    cdef bint flagged
    cdef bint previous = False  # was t - 1 flagged?
    with nogil:
        for t in range(n):
            flagged = score[t] > limit[t]
            if flagged and not previous and t - last >= min_spacing:
                alarm[t] = 1
                last = t
            else:
                alarm[t] = 0
            previous = flagged
