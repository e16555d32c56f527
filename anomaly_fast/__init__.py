"""anomaly_fast: fast anomaly detection with a scikit-learn API.

Compiled Isolation Forest and Extended Isolation Forest kernels behind
drop-in scikit-learn estimators.
"""

from ._forest import average_path_length
from .extended_isolation_forest import ExtendedIsolationForest
from .isolation_forest import IsolationForest
from .timeseries import LSTMDetector, STLDetector, stl_anomaly_detection

__version__ = "0.1.0"

__all__ = [
    "ExtendedIsolationForest",
    "IsolationForest",
    "LSTMDetector",
    "STLDetector",
    "average_path_length",
    "stl_anomaly_detection",
]
