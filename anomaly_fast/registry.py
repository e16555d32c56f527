"""A folder of fitted models under content-derived version ids.

anomaly_fast's forests are saved as plain arrays (``.npz``) plus JSON, so
loading a model never executes code from the file; any other estimator falls
back to joblib (pickle) with a warning.
"""

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import joblib
import numpy as np

from . import _isolation
from .extended_isolation_forest import ExtendedIsolationForest
from .isolation_forest import IsolationForest

__all__ = ["ModelRegistry", "data_fingerprint", "load_model", "model_version", "save_model"]

FORMAT = "anomaly_fast.forest/1"
_META = "meta.json"
_ARRAYS = "model.npz"
_PICKLE = "model.joblib"
_ESTIMATORS = {cls.__name__: cls for cls in (IsolationForest, ExtendedIsolationForest)}


# -- content of a model ---------------------------------------------------------
def _json_params(model):
    params = {}
    for key, value in model.get_params(deep=False).items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            params[key] = value
        else:  # e.g. a RandomState instance: not reproducible from JSON
            warnings.warn(
                f"{type(model).__name__} parameter {key}={value!r} is not JSON; saved as None",
                UserWarning,
                stacklevel=3,
            )
            params[key] = None
    return params


def _forest_content(model):
    """(arrays, json-able state) of a fitted anomaly_fast forest."""
    arrays, exported = model._export()
    state = {"format": FORMAT, "class": type(model).__name__, "params": _json_params(model)}
    state.update(exported)
    return arrays, state


def _is_native(model):
    return type(model).__name__ in _ESTIMATORS and type(model) is _ESTIMATORS[type(model).__name__]


def _hash_content(arrays, state):
    h = hashlib.sha256(json.dumps(state, sort_keys=True).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_version(model):
    """Content-derived version id of a fitted model: ``"v-"`` + 16 hex digits
    of a SHA-256 over its parameters and fitted arrays (anomaly_fast forests)
    or over ``joblib.hash`` (anything else).  Equal models get equal ids."""
    if _is_native(model):
        if not hasattr(model, "_forest"):
            raise ValueError(f"{type(model).__name__} is not fitted")
        return "v-" + _hash_content(*_forest_content(model))[:16]
    return "v-" + hashlib.sha256(joblib.hash(model).encode()).hexdigest()[:16]


def data_fingerprint(X):
    """Fingerprint of training data: SHA-256 of its shape, dtype and bytes,
    plus per-feature ``min``/``max``/``mean``/``std`` (NaN ignored) used to
    monitor features in production."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"training data must be a non-empty 2-D array, got shape {X.shape}")
    C = np.ascontiguousarray(X)
    digest = hashlib.sha256(f"{C.shape}:{C.dtype.str}".encode() + C.tobytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            "min": np.nanmin(C, axis=0),
            "max": np.nanmax(C, axis=0),
            "mean": np.nanmean(C, axis=0),
            "std": np.nanstd(C, axis=0),
        }
    return {
        "sha256": digest,
        "n_samples": int(C.shape[0]),
        "n_features": int(C.shape[1]),
        **{k: [None if not np.isfinite(v) else float(v) for v in vals] for k, vals in stats.items()},
    }


# -- safe load of forest arrays ------------------------------------------------------
def _check_forest_arrays(name, arrays, n_features):
    """Structural checks so that corrupt files raise instead of crashing the
    compiled scorer (every child and feature index in range)."""
    nodes, values, offsets, depths = (arrays[k] for k in ("nodes", "values", "offsets", "depths"))
    expected = _isolation.AXIS_NODE_DTYPE if name == "IsolationForest" else _isolation.HYPERPLANE_NODE_DTYPE
    problems = []
    if nodes.dtype != expected or nodes.ndim != 1:
        problems.append(f"nodes has dtype {nodes.dtype}, expected {expected}")
    elif values.dtype != np.float64 or values.shape != nodes.shape:
        problems.append("values must be float64 with one value per node")
    elif offsets.dtype != np.int64 or depths.dtype != np.int32 or offsets.ndim != 1 or offsets.shape != depths.shape:
        problems.append("offsets (int64) and depths (int32) must be 1-D of equal length")
    elif offsets.shape[0] == 0 or offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] >= nodes.shape[0]:
        problems.append("offsets must start at 0 and increase strictly within the node array")
    elif np.any(depths < 0) or np.any(depths > 64):
        problems.append("depths out of range")
    elif n_features < 1:
        problems.append("n_features must be >= 1")
    else:
        sizes = np.diff(np.r_[offsets, nodes.shape[0]])
        tree_of = np.repeat(np.arange(offsets.shape[0]), sizes)
        local = np.arange(nodes.shape[0]) - offsets[tree_of]
        left = nodes["left"].astype(np.int64)
        leaf = left == local
        if not np.all(leaf | ((left >= 0) & (left + 1 < sizes[tree_of]))):
            problems.append("a child index points outside its tree")
        if name == "IsolationForest":
            feature = nodes["feature"]
            if np.any((feature < 0) | (feature >= n_features)):
                problems.append("a split feature is out of range")
        else:
            normals, terms = arrays["normals"], arrays["terms"]
            if (
                normals.dtype != np.float64
                or terms.dtype != np.int32
                or normals.ndim != 2
                or normals.shape != terms.shape
                or normals.shape[0] != nodes.shape[0]
            ):
                problems.append("normals (float64) and terms (int32) must be (n_nodes, k)")
            elif np.any((terms < 0) | (terms >= n_features)):
                problems.append("a hyperplane term is out of range")
    if problems:
        raise ValueError(f"corrupt {name} arrays: {problems[0]}")


def _rebuild_forest(state, arrays):
    name = state["class"]
    if state.get("format") != FORMAT or name not in _ESTIMATORS:
        raise ValueError(f"unknown model format {state.get('format')!r} / class {name!r}")
    missing = [k for k in _ESTIMATORS[name]._forest_arrays if k not in arrays]
    if missing:
        raise ValueError(f"model arrays missing: {missing}")
    n_features = int(state["n_features"])
    _check_forest_arrays(name, arrays, n_features)
    return _ESTIMATORS[name]._import(state["params"], arrays, state)


def save_model(model, path):
    """Save a fitted model into the folder ``path`` (created).

    anomaly_fast forests are written as ``model.npz`` (no pickled objects) and
    ``meta.json``; other estimators as ``model.joblib`` with a UserWarning
    (loading a pickle can execute code).  Returns the metadata dict.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if _is_native(model):
        if not hasattr(model, "_forest"):
            raise ValueError(f"{type(model).__name__} is not fitted")
        arrays, state = _forest_content(model)
        np.savez(path / _ARRAYS, **arrays)
        state["version"] = "v-" + _hash_content(arrays, state)[:16]
    else:
        warnings.warn(
            f"{type(model).__name__} is not an anomaly_fast forest: saved with joblib "
            "(pickle); only load it from a trusted folder",
            UserWarning,
            stacklevel=2,
        )
        joblib.dump(model, path / _PICKLE)
        state = {"format": "joblib", "class": type(model).__name__, "version": model_version(model)}
        try:
            state["params"] = _json_params(model)
        except Exception:  # noqa: BLE001 - params are informative only here
            state["params"] = {}
    (path / _META).write_text(json.dumps(state, indent=1, sort_keys=True))
    return state


def load_model(path, allow_pickle=False):
    """Load a model saved by :func:`save_model` from the folder ``path``.

    ``allow_pickle=False`` (default) refuses joblib files; with True they load
    with a UserWarning.  Forest files are checked structurally and never
    unpickled.
    """
    path = Path(path)
    state = json.loads((path / _META).read_text())
    if state.get("format") == "joblib":
        if not allow_pickle:
            raise ValueError(
                f"{path} holds a pickled {state.get('class')}; pass allow_pickle=True "
                "to load it (this can execute code from the file)"
            )
        warnings.warn(f"loading pickled model from {path}", UserWarning, stacklevel=2)
        return joblib.load(path / _PICKLE)
    with np.load(path / _ARRAYS, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return _rebuild_forest(state, arrays)


class ModelRegistry:
    """A folder of fitted models, one sub-folder per content-derived version.

    Each version folder holds the model (see :func:`save_model`) and
    ``meta.json`` with the class, parameters, the training-data fingerprint
    (:func:`data_fingerprint`), feature names, a free-form ``tags`` dict and
    the save time.  Saving an identical model again returns the same version.

    Parameters
    ----------
    root : str or Path
        The registry folder (created when missing).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from anomaly_fast import IsolationForest, ModelRegistry
    >>> X = np.random.RandomState(0).normal(size=(200, 3))
    >>> model = IsolationForest(n_estimators=10, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     registry = ModelRegistry(root)
    ...     version = registry.save(model, X)
    ...     loaded = registry.load(version)
    ...     print(version, [v["version"] for v in registry.list_versions()])
    ...     print(np.array_equal(loaded.score_samples(X), model.score_samples(X)))
    v-37ea0bbf7676eaea ['v-37ea0bbf7676eaea']
    True
    """

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, model, X=None, feature_names=None, tags=None):
        """Save a fitted ``model`` (trained on ``X``, optional) and return its
        version id.  The version folder is written to a temporary folder and
        renamed into place, so a crash never leaves a half-written version."""
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".tmp-") as tmp:
            stage = Path(tmp) / "model"
            state = save_model(model, stage)
            version = state["version"]
            target = self.root / version
            if target.exists():
                return version
            state["saved_at"] = time.time()
            state["training_data"] = None if X is None else data_fingerprint(X)
            if feature_names is not None:
                state["feature_names"] = [str(f) for f in feature_names]
            state["tags"] = dict(tags or {})
            (stage / _META).write_text(json.dumps(state, indent=1, sort_keys=True))
            try:
                os.rename(stage, target)
            except OSError:
                if not target.exists():
                    raise
        return version

    def _folder(self, version):
        if version == "latest":
            versions = self.list_versions()
            if not versions:
                raise ValueError(f"registry {self.root} holds no model")
            version = versions[-1]["version"]
        folder = self.root / str(version)
        if not str(version).startswith("v-") or not (folder / _META).exists():
            raise ValueError(f"no model version {version!r} in {self.root}")
        return folder

    def load(self, version="latest", allow_pickle=False):
        """Load the model of ``version`` (``"latest"``: the last saved)."""
        return load_model(self._folder(version), allow_pickle=allow_pickle)

    def metadata(self, version="latest"):
        """The ``meta.json`` dict of ``version``."""
        return json.loads((self._folder(version) / _META).read_text())

    def list_versions(self):
        """Metadata of every version (without arrays), oldest save first."""
        out = []
        for folder in self.root.iterdir():
            if folder.name.startswith("v-") and (folder / _META).exists():
                meta = json.loads((folder / _META).read_text())
                out.append(
                    {k: meta.get(k) for k in ("version", "class", "format", "params", "saved_at", "training_data", "tags")}
                )
        out.sort(key=lambda m: (m["saved_at"] or 0.0, m["version"]))
        return out
