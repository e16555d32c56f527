"""Stub of the compiled module anomaly_fast._alarms: Compiled alarm onsets of the time-series detectors (native/_alarms.pyx).

Kept in step with the .pyx by tests/test_stubs.py (same public names).
"""

import numpy as np
import numpy.typing as npt

def alarm_onsets(
    score: npt.NDArray[np.float64],
    limit: npt.NDArray[np.float64],
    observed: npt.NDArray[np.uint8],
    min_spacing: int,
    state: npt.NDArray[np.int64],
    alarm: npt.NDArray[np.uint8],
) -> None: ...
def alarm_step(score: float, observed: bool, min_spacing: int, state: npt.NDArray[np.int64]) -> bool: ...
