"""Time-series anomaly detection.

- :func:`stl_anomaly_detection`: the textbook STL + modified z-score recipe.
- :class:`STLDetector`: STL residuals scored in context, with alarm
  post-processing.
- :class:`WindowDetector`: any tabular detector (IsolationForest by default)
  on sliding windows, batch and streaming.
- :func:`alarm_onsets`: the detectors' alarm spacing on any score stream.
- :class:`LSTMDetector`: next-step LSTM prediction error (needs the ``deep``
  extra: torch and tqdm; torch is imported only when the detector is used).
"""

from ._alarm_runs import alarm_onsets
from ._series import infer_period
from .lstm_detector import LSTMDetector
from .stl_detector import STLDetector
from .stl_recipe import modified_z_score, stl_anomaly_detection
from .window_detector import WindowDetector

__all__ = [
    "LSTMDetector",
    "STLDetector",
    "WindowDetector",
    "alarm_onsets",
    "infer_period",
    "modified_z_score",
    "stl_anomaly_detection",
]
