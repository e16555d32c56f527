"""Isolation forests: the shared estimator base (:mod:`.base`), the two
estimators over the compiled kernels in ``anomaly_fast._isolation``
(:mod:`.isolation_forest`, :mod:`.extended_isolation_forest`) and the
forests' checked array format (:mod:`.format`: export, import, structural
validation), used by pickling and by the model registry.
"""

from .base import BaseIsolationForest, average_path_length
from .extended_isolation_forest import ExtendedIsolationForest
from .isolation_forest import IsolationForest

__all__ = ["BaseIsolationForest", "ExtendedIsolationForest", "IsolationForest", "average_path_length"]
