"""Deprecated alias of :mod:`anomaly_fast.streaming.adwin` (kept for one release).

Old pickles name classes of this module; they still load.
"""

import warnings

from .streaming import adwin as _moved

warnings.warn(
    "anomaly_fast.adwin moved to anomaly_fast.streaming.adwin; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = _moved.__all__


def __getattr__(name):
    return getattr(_moved, name)
