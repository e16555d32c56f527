"""Deprecated alias of :mod:`anomaly_fast.streaming.half_space_trees` (kept for one release).

Old pickles name classes of this module; they still load.
"""

import warnings

from .streaming import half_space_trees as _moved

warnings.warn(
    "anomaly_fast.half_space_trees moved to anomaly_fast.streaming.half_space_trees; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = _moved.__all__


def __getattr__(name):
    return getattr(_moved, name)
