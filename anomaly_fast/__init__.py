"""anomaly_fast: fast anomaly detection with a scikit-learn API.

Compiled Isolation Forest and Extended Isolation Forest kernels behind
drop-in scikit-learn estimators.
"""

from ._forest import average_path_length
from .ensemble import AnomalyEnsemble
from .extended_isolation_forest import ExtendedIsolationForest
from .isolation_forest import IsolationForest
from .local_outlier_factor import LocalOutlierFactor
from .pipeline import AnomalyAlert, AnomalyPipeline
from .registry import ModelRegistry
from .streaming import ADWIN, HalfSpaceTrees
from .timeseries import LSTMDetector, STLDetector, stl_anomaly_detection

__version__ = "0.1.0"

__all__ = [
    "ADWIN",
    "AnomalyAlert",
    "AnomalyEnsemble",
    "AnomalyPipeline",
    "average_path_length",
    "ExtendedIsolationForest",
    "HalfSpaceTrees",
    "IsolationForest",
    "LocalOutlierFactor",
    "LSTMDetector",
    "ModelRegistry",
    "stl_anomaly_detection",
    "STLDetector",
]
