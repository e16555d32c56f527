"""anomaly_fast: fast anomaly detection with a scikit-learn API.

Compiled Isolation Forest and Extended Isolation Forest kernels behind
drop-in scikit-learn estimators.

The public names below are imported on first use (PEP 562), so
``import anomaly_fast`` (and the command line) does not pay for
scikit-learn, pandas or statsmodels until a name that needs them is used.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it (see ARCHITECTURE.md for the layers)
_EXPORTS = {
    "ADWIN": ".streaming",
    "AnomalyAlert": ".pipeline",
    "AnomalyEnsemble": ".ensemble",
    "AnomalyPipeline": ".pipeline",
    "average_path_length": ".forest",
    "ExtendedIsolationForest": ".forest",
    "HalfSpaceTrees": ".streaming",
    "IsolationForest": ".forest",
    "LocalOutlierFactor": ".local_outlier_factor",
    "LSTMDetector": ".timeseries",
    "ModelRegistry": ".pipeline.registry",
    "stl_anomaly_detection": ".timeseries",
    "STLDetector": ".timeseries",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        # `anomaly_fast.timeseries` after a bare `import anomaly_fast`: the subpackage, imported now
        if not name.startswith("__"):
            try:
                return importlib.import_module(f".{name}", __name__)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
