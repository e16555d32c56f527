"""Stub of the compiled module anomaly_fast._top_k: Compiled top-k selection of contributions (native/_top_k.pyx).

Kept in step with the .pyx by tests/test_stubs.py (same public names).
"""

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

def top_k(
    contributions: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    k: int,
    names: Sequence[Hashable] | None = ...,
) -> list[dict[str, Any]]: ...
