"""Time-series anomaly detection.

- :func:`stl_anomaly_detection`: the textbook STL + modified z-score recipe.
- :class:`STLDetector`: STL residuals scored in context, with alarm
  post-processing.
- :class:`WindowDetector`: any tabular detector (IsolationForest by default)
  on sliding windows, batch and streaming.
- :class:`LSTMDetector`: next-step LSTM prediction error (needs the ``deep``
  extra: torch and tqdm; torch is imported only when the detector is used).
"""

from ._series import infer_period
from .lstm_detector import LSTMDetector
from .stl_detector import STLDetector
from .stl_recipe import modified_z_score, stl_anomaly_detection
from .window_detector import WindowDetector

__all__ = [
    "LSTMDetector",
    "STLDetector",
    "WindowDetector",
    "infer_period",
    "modified_z_score",
    "stl_anomaly_detection",
]
