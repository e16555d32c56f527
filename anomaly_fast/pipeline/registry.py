"""A folder of fitted models under content-derived version ids.

anomaly_fast's forests are saved as plain arrays (``.npz``) plus JSON, so
loading a model never executes code from the file; any other estimator falls
back to joblib (pickle) with a warning.

What loading guarantees: a forest folder is checked structurally before a
kernel sees it (:mod:`anomaly_fast.forest.format`): a corrupted, truncated
or hand-edited file gets a ``ValueError`` naming the bad field, never a
crash, a hang or NaN/inf/out-of-range scores.  These checks cannot make an
untrusted *pickle* safe (``allow_pickle=True``, or ``pickle.load`` of an
estimator): unpickling runs code from the file before any check.  Models
from untrusted sources must come in the non-pickle forest format.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt

from .._sklearn_compat import validate_estimator_params
from ..forest.extended_isolation_forest import ExtendedIsolationForest
from ..forest.format import (
    FORMAT,
    OPTIONAL_ARRAYS,
    READABLE_FORMATS,
    STATE_KEYS,
    array_dtype,
    array_names,
)
from ..forest.isolation_forest import IsolationForest

__all__ = ["ModelRegistry", "data_fingerprint", "load_model", "model_version", "save_model"]

_META = "meta.json"
_ARRAYS = "model.npz"
_PICKLE = "model.joblib"
_ESTIMATORS = {cls.__name__: cls for cls in (IsolationForest, ExtendedIsolationForest)}
_VERSION = re.compile(r"v-[0-9a-f]{16}")
# meta.json keys: the forest format's, save_model's and the registry's own
_FOREST_KEYS = frozenset({"format", "class", "params", "version"}) | STATE_KEYS
_JOBLIB_KEYS = frozenset({"format", "class", "params", "version"})
_REGISTRY_KEYS = frozenset({"saved_at", "training_data", "feature_names", "tags"})
DEFAULT_MODE = 0o600  # files; folders get the matching execute bits (0o700)


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


def _forest_content(model, feature_names=None):
    """(arrays, json-able state) of a fitted anomaly_fast forest; with
    ``feature_names``, as if fitted with them as ``feature_names_in_``."""
    arrays, exported = model._export()
    if feature_names is not None:
        exported["fitted"]["feature_names_in_"] = list(feature_names)
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


def model_version(model: Any) -> str:
    """Content-derived version id of a fitted model: ``"v-"`` + 16 hex digits
    of a SHA-256 over its parameters and fitted arrays (anomaly_fast forests)
    or over ``joblib.hash`` (anything else).  Equal models get equal ids."""
    if _is_native(model):
        if not hasattr(model, "_forest"):
            raise ValueError(f"{type(model).__name__} is not fitted")
        return "v-" + _hash_content(*_forest_content(model))[:16]
    return "v-" + hashlib.sha256(joblib.hash(model).encode()).hexdigest()[:16]


def data_fingerprint(X: npt.ArrayLike) -> dict[str, Any]:
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


# -- files: no symlinks, exact modes, fsync -------------------------------------------
def _folder_mode(mode):
    """A folder's mode for file ``mode``: each read bit gains its execute bit
    (0o600 -> 0o700, 0o640 -> 0o750, 0o644 -> 0o755)."""
    return mode | ((mode & 0o444) >> 2)


def _check_mode(mode):
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise ValueError(
            f"mode must be a permission mode in [0o600, 0o777] readable and writable by the owner, got {mode!r}"
        )
    return mode


def _open_read(path):
    """A binary file object for ``path``, refusing a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except OSError as exc:
        if os.path.islink(path):
            raise ValueError(f"{path} is a symlink; model files must be regular files") from None
        raise ValueError(f"cannot read {path}: {exc}") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise ValueError(f"{path} is not a regular file")
    return f


def _write_file(path, write, mode):
    """Create ``path`` with exactly ``mode`` (no symlink followed), fill it
    with ``write(f)`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)  # exact, whatever the umask
        write(f)
        f.flush()
        os.fsync(fd)


def _fsync_folder(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(path, mode):
    """Create ``path`` (and missing parents) with the folder mode of ``mode``."""
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path} is a symlink; refusing to write a model through it")
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, _folder_mode(mode))


def _read_meta(path):
    with _open_read(Path(path) / _META) as f:
        raw = f.read()
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}/{_META} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}/{_META} must hold a JSON object")
    return meta


# -- forest files --------------------------------------------------------------------
_NPZ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    TypeError,
    SyntaxError,
    OverflowError,
    MemoryError,
    tokenize.TokenError,
)


def _read_npy(member, key, expected, limit):
    """One array of an ``.npz`` member, its header checked before any
    allocation: exact dtype, non-negative shape, data within ``limit`` bytes."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype != expected:
        raise ValueError(f"has dtype {dtype}, expected {expected}")
    if any(d < 0 for d in shape):
        raise ValueError(f"has a negative shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise ValueError(f"declares {nbytes} bytes, more than its {limit} bytes in the file")
    data = member.read(nbytes)
    if len(data) != nbytes:
        raise ValueError("is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy(order="C")


def _read_forest_arrays(path, kind, fmt=FORMAT):
    """The arrays of ``model.npz`` for a ``kind`` forest: exactly the format's
    arrays, uncompressed members, headers checked before reading."""
    names = array_names(kind, fmt)
    arrays = {}
    file = Path(path) / _ARRAYS
    with _open_read(file) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            with zipfile.ZipFile(f) as z:
                found = [info.filename for info in z.infolist()]
                required = {f"{key}.npy" for key in names if key not in OPTIONAL_ARRAYS}
                if not required <= set(found) <= {f"{key}.npy" for key in names} or len(set(found)) != len(found):
                    raise ValueError(f"holds {found}, expected {[f'{key}.npy' for key in names]}")
                for info in z.infolist():
                    key = info.filename[: -len(".npy")]
                    if info.compress_type != zipfile.ZIP_STORED or info.compress_size > size:
                        raise ValueError(f"member {key} is compressed or larger than the file")
                    with z.open(info) as member:
                        try:
                            arrays[key] = _read_npy(member, key, array_dtype(kind, key), info.file_size)
                        except ValueError as exc:
                            raise ValueError(f"array {key} {exc}") from None
        except _NPZ_ERRORS as exc:
            raise ValueError(f"corrupt {file}: {type(exc).__name__}: {str(exc)[:200]}") from None
    return arrays


def _check_params(cls, params):
    """``get_params()``-style ``params`` of ``cls``: exactly its keys, values
    meeting its ``_parameter_constraints`` (InvalidParameterError is a
    ValueError)."""
    if not isinstance(params, dict):
        raise ValueError("corrupt forest state: params must be a dict")
    expected = set(cls().get_params(deep=False))
    if set(params) != expected:
        raise ValueError(
            f"corrupt forest state: params has unknown keys {sorted(map(str, set(params) - expected))} "
            f"or misses {sorted(expected - set(params))}"
        )
    validate_estimator_params(cls(**params))
    return params


def _check_registry_fields(meta, model):
    """The registry's own meta.json fields; ``feature_names`` become the
    model's ``feature_names_in_`` (issue 13)."""
    saved_at = meta.get("saved_at")
    if saved_at is not None and (
        isinstance(saved_at, bool) or not isinstance(saved_at, Real) or not math.isfinite(saved_at)
    ):
        raise ValueError(f"corrupt meta.json: saved_at = {saved_at!r} is not a finite number")
    if not isinstance(meta.get("tags", {}), dict) or not isinstance(meta.get("training_data") or {}, dict):
        raise ValueError("corrupt meta.json: tags and training_data must be JSON objects")
    names = meta.get("feature_names")
    if names is None or model is None:
        return
    n = model.n_features_in_
    if not isinstance(names, list) or len(names) != n or not all(isinstance(f, str) for f in names):
        raise ValueError(f"corrupt meta.json: feature_names must be a list of {n} str (n_features_in_)")
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and list(fitted) != names:
        raise ValueError("corrupt meta.json: feature_names differ from the model's feature_names_in_")
    model.feature_names_in_ = np.asarray(names, dtype=object)


def _load_forest(path, meta):
    unknown = sorted(map(str, set(meta) - _FOREST_KEYS - _REGISTRY_KEYS))
    missing = sorted(_FOREST_KEYS - {"version"} - set(meta))
    if unknown or missing:
        raise ValueError(f"corrupt meta.json: unknown keys {unknown}, missing keys {missing}")
    name = meta["class"]
    cls = _ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown model format {meta['format']!r} / class {name!r}")
    params = _check_params(cls, meta["params"])
    arrays = _read_forest_arrays(path, cls._forest_kind, meta["format"])
    model = cls._import(params, arrays, {key: meta[key] for key in STATE_KEYS}, meta["format"])
    _check_registry_fields(meta, model)
    return model


def _feature_names(model, feature_names):
    """``feature_names`` as a list of str, checked against the model."""
    if feature_names is None:
        return None
    names = [str(f) for f in feature_names]
    n = getattr(model, "n_features_in_", len(names))
    fitted = getattr(model, "feature_names_in_", None)
    if len(names) != n or (fitted is not None and list(fitted) != names):
        raise ValueError(f"feature_names {names} do not match the model's {n} features {fitted}")
    return names


def _model_content(model, feature_names=None):
    """(meta dict, writer(folder, mode)) of a fitted model.  Forests given
    ``feature_names`` are saved (and versioned) as fitted with them."""
    if _is_native(model):
        if not hasattr(model, "_forest"):
            raise ValueError(f"{type(model).__name__} is not fitted")
        arrays, state = _forest_content(model, feature_names)
        state["version"] = "v-" + _hash_content(arrays, state)[:16]

        def write(folder, mode):
            _write_file(Path(folder) / _ARRAYS, lambda f: np.savez(f, **arrays), mode)

        return state, write
    warnings.warn(
        f"{type(model).__name__} is not an anomaly_fast forest: saved with joblib "
        "(pickle); only load it from a trusted folder",
        UserWarning,
        stacklevel=3,
    )
    state = {"format": "joblib", "class": type(model).__name__, "version": model_version(model)}
    try:
        state["params"] = _json_params(model)
    except Exception:  # noqa: BLE001 - params are informative only here
        state["params"] = {}

    def write(folder, mode):
        _write_file(Path(folder) / _PICKLE, lambda f: joblib.dump(model, f), mode)

    return state, write


def _write_model(folder, state, write, mode):
    write(folder, mode)
    meta = json.dumps(state, indent=1, sort_keys=True, allow_nan=False).encode()
    _write_file(Path(folder) / _META, lambda f: f.write(meta), mode)
    _fsync_folder(folder)


def save_model(model: Any, path: str | os.PathLike[str], mode: int = DEFAULT_MODE) -> dict[str, Any]:
    """Save a fitted model into the folder ``path`` (created).

    anomaly_fast forests are written as ``model.npz`` (no pickled objects) and
    ``meta.json``; other estimators as ``model.joblib`` with a UserWarning
    (loading a pickle can execute code).  Files get permission ``mode``
    (default 0o600, owner only; a folder created here gets the matching
    execute bits, 0o700) and are fsynced.  Returns the metadata dict.
    """
    mode = _check_mode(mode)
    state, write = _model_content(model)
    _make_folder(path, mode)
    _write_model(path, state, write, mode)
    return state


def load_model(path: str | os.PathLike[str], allow_pickle: bool = False) -> Any:
    """Load a model saved by :func:`save_model` from the folder ``path``.

    Forest files are never unpickled: ``meta.json`` and ``model.npz`` are
    checked structurally (:mod:`anomaly_fast.forest.format`: exact keys,
    dtypes and shapes, indices in range, acyclic trees, stored depths equal
    to walked depths, finite leaf values and recomputed denominator) before a
    kernel sees them, and symlinked files are refused.  A corrupted,
    truncated or edited folder gets a ``ValueError`` naming the bad field,
    never a crash or garbage scores.

    ``allow_pickle=False`` (default) refuses joblib files; with True they load
    with a UserWarning.  **Scope**: the checks catch corrupted or truncated
    state; they cannot make an untrusted *pickle* safe (unpickling runs code
    from the file).  Load models from untrusted sources only in the forest
    format, with ``allow_pickle=False``.
    """
    path = Path(path)
    meta = _read_meta(path)
    fmt = meta.get("format")
    if fmt == "joblib":
        if not allow_pickle:
            raise ValueError(
                f"{path} holds a pickled {meta.get('class')}; pass allow_pickle=True "
                "to load it (this can execute code from the file)"
            )
        warnings.warn(f"loading pickled model from {path}", UserWarning, stacklevel=2)
        with _open_read(path / _PICKLE) as f:
            return joblib.load(f)
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"unknown model format {fmt!r} / class {meta.get('class')!r}")
    return _load_forest(path, meta)


class ModelRegistry:
    """A folder of fitted models, one sub-folder per content-derived version.

    Each version folder holds the model (see :func:`save_model`) and
    ``meta.json`` with the class, parameters, the training-data fingerprint
    (:func:`data_fingerprint`), feature names, a free-form ``tags`` dict and
    the save time.  Saving an identical model again returns the same version.

    A version id is ``"v-"`` + 16 lowercase hex digits, exactly; anything else
    (``"../x"``, ``"v-…/../…"``) is refused, and so are symlinked version
    folders and files.  ``"latest"`` is the version folder saved last (by the
    save time in its ``meta.json``; the folder's name is the version, never a
    field of the file).  A version is written into a hidden temporary folder,
    fsynced, renamed into place and the registry folder fsynced, so a crash
    never leaves a half-written version.  Loading checks the files
    structurally (see :func:`load_model`, including its scope: this makes
    corrupted files safe, not untrusted pickles).

    Parameters
    ----------
    root : str or Path
        The registry folder (created when missing).
    mode : int, default=0o600
        Permission of the files written (owner read/write only by default:
        ``meta.json`` holds the training data's statistics).  Folders get
        the matching execute bits (0o600 -> 0o700, 0o640 -> 0o750); use
        e.g. ``mode=0o640`` for a group of readers.

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
    ...     named = registry.load(registry.save(model, X, feature_names=["a", "b", "c"]))
    ...     print(list(named.feature_names_in_))
    v-bd8e469fe1565ca2 ['v-bd8e469fe1565ca2']
    True
    ['a', 'b', 'c']
    """

    def __init__(self, root: str | os.PathLike[str], mode: int = DEFAULT_MODE) -> None:
        self.mode = _check_mode(mode)
        self.root = Path(root)
        _make_folder(self.root, self.mode)

    def save(
        self,
        model: Any,
        X: npt.ArrayLike | None = None,
        feature_names: Sequence[str] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Save a fitted ``model`` (trained on ``X``, optional) and return its
        version id.  ``feature_names`` (one per feature; they must equal the
        model's ``feature_names_in_`` if it has them) come back as the loaded
        model's ``feature_names_in_``."""
        names = _feature_names(model, feature_names)
        state, write = _model_content(model, names)
        version = state["version"]
        target = self.root / version
        if os.path.lexists(target):
            return version
        state["saved_at"] = time.time()
        state["training_data"] = None if X is None else data_fingerprint(X)
        if names is not None:
            state["feature_names"] = names
        state["tags"] = dict(tags or {})
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".tmp-") as tmp:
            stage = Path(tmp) / "model"
            stage.mkdir()
            os.chmod(stage, _folder_mode(self.mode))
            _write_model(stage, state, write, self.mode)
            try:
                os.rename(stage, target)
            except OSError:
                if not os.path.lexists(target):
                    raise
            _fsync_folder(self.root)
        return version

    def _folder(self, version):
        if version == "latest":
            versions = self.list_versions()
            if not versions:
                raise ValueError(f"registry {self.root} holds no model")
            version = versions[-1]["version"]
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ValueError(f"no model version {version!r} in {self.root} (ids are 'v-' + 16 hex digits)")
        folder = self.root / version
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            raise ValueError(f"no model version {version!r} in {self.root}") from None
        if stat.S_ISLNK(info.st_mode):
            raise ValueError(f"model version {version!r} in {self.root} is a symlink; refused")
        if not stat.S_ISDIR(info.st_mode) or os.path.dirname(os.path.realpath(folder)) != os.path.realpath(self.root):
            raise ValueError(f"no model version {version!r} in {self.root}")
        return folder

    def load(self, version: str = "latest", allow_pickle: bool = False) -> Any:
        """Load the model of ``version`` (``"latest"``: the last saved)."""
        return load_model(self._folder(version), allow_pickle=allow_pickle)

    def metadata(self, version: str = "latest") -> dict[str, Any]:
        """The ``meta.json`` dict of ``version`` (its ``"version"`` is the
        folder's name)."""
        folder = self._folder(version)
        meta = _read_meta(folder)
        meta["version"] = folder.name
        return meta

    def list_versions(self) -> list[dict[str, Any]]:
        """Metadata of every version (without arrays), oldest save first.
        Only folders named like a version count (not symlinks); a version
        whose ``meta.json`` is unreadable raises a ValueError."""
        out = []
        with os.scandir(self.root) as entries:
            folders = [e.name for e in entries if _VERSION.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        for name in folders:
            meta = _read_meta(self.root / name)
            _check_registry_fields(meta, None)
            meta["version"] = name
            out.append(
                {k: meta.get(k) for k in ("version", "class", "format", "params", "saved_at", "training_data", "tags")}
            )
        out.sort(key=lambda m: (m["saved_at"] or 0.0, m["version"]))
        return out
