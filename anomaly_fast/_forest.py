"""Deprecated: moved to :mod:`anomaly_fast.forest.base` (this path works, with a
``DeprecationWarning``, for one release; old pickles naming it still load)."""

from ._moved import moved_module

__getattr__ = moved_module(__name__, "anomaly_fast.forest.base")
