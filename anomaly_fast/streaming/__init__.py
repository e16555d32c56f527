"""Streaming detectors: each a Python class holding a compiled core.

:class:`HalfSpaceTrees` (anomaly scores of a stream, river's API),
:class:`ADWIN` (drift in the mean of one stream) and :class:`FeatureMonitor`
(per-feature ADWIN plus data-quality checks, used by the pipeline).
"""

from .adwin import ADWIN
from .feature_monitor import DriftEvent, FeatureMonitor
from .half_space_trees import HalfSpaceTrees

__all__ = ["ADWIN", "DriftEvent", "FeatureMonitor", "HalfSpaceTrees"]
