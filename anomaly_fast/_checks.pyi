"""Stub of the compiled module anomaly_fast._checks: Compiled input checks (native/_checks.pyx).

Kept in step with the .pyx by tests/test_stubs.py (same public names).
"""

import numpy as np
import numpy.typing as npt

def all_finite(X: npt.NDArray[np.float64] | npt.NDArray[np.float32]) -> bool: ...
