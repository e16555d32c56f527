"""The array format of a fitted isolation forest, and its structural checks.

One home for how :class:`~anomaly_fast.IsolationForest` and
:class:`~anomaly_fast.ExtendedIsolationForest` leave the process and come back:
the registry's ``model.npz`` + ``meta.json`` (:mod:`anomaly_fast.pipeline.registry`),
the estimators' pickles (``__getstate__``/``__setstate__``) and their
``_export``/``_import`` hooks all go through :func:`export_forest` and
:func:`import_forest`.

The format (``FORMAT``) is a dict of plain numpy arrays and a JSON-able state:

=============  =====================  ==============================================
array          dtype                  content
=============  =====================  ==============================================
``nodes``      node struct (aligned)  axis: (threshold, feature, left);
                                      hyperplane: (offset, left, n_terms)
``values``     float64 (n_nodes,)     path length at a leaf (depth + c(size)), 0 else
``missing``    uint8 (n_nodes,)       axis only (since /2): 1 when a NaN in the node's
                                      feature goes left, 0 when right; 0 at leaves
``offsets``    int64 (n_trees,)       first node of each tree
``depths``     int32 (n_trees,)       depth of each tree (steps of every walk)
``normals``    float64 (n_nodes, k)   hyperplane only: weights, zero padded
``terms``      int32 (n_nodes, k)     hyperplane only: features (ascending), 0 padded
``fills``      float64 (n_nodes, k)   hyperplane only (since /3): the value a missing
                                      coordinate takes (the node's mean of the
                                      feature's finite training values), 0 padded
``ranges``     float64 (n_nodes, 2)   axis only (since /4): the range [lo, hi] of the
                                      split feature's training values in the node,
                                      which the threshold was drawn from (read by
                                      ``explain``); 0, 0 at leaves
=============  =====================  ==============================================

A ``/1`` forest (no ``missing`` array; folders and pickles of earlier
releases) is migrated on load: the direction of each node is derived from
the leaf sizes its leaf values encode (the side that received more training
rows, ties to the right: what scikit-learn does for a node that held no
NaN at fit, which no ``/1`` node did).  A ``/1`` or ``/2`` hyperplane forest
has no ``fills`` (node means cannot be recovered from the tree): it loads and
scores NaN-free rows as before, and rows with NaN get a ``ValueError`` asking
for a refit; saved again it is written as ``/3`` without ``fills``.  An axis
forest older than ``/4`` has no ``ranges`` (the subsample's ranges cannot be
recovered either): it loads, scores as before and explains with ranges
derived from its thresholds (:func:`anomaly_fast.forest.explain.split_ranges`);
saved again it is written as ``/4`` without ``ranges``.

``state = {"denominator", "n_features", "fitted": {offset_, max_samples_,
n_features_in_, _max_features, _max_depth[, extension_level_][,
feature_names_in_][, _explain_center]}}`` (``_explain_center``: hyperplane
only, optional: the per-feature training mean that ``explain`` measures
from; forests saved without it explain from the origin).

:func:`check_forest` is the only way from outside data to a kernel: the
compiled scorer walks exactly ``depths[t]`` steps per tree and trusts every
index, so before a scoring layout is built the checks prove, without a Python
loop over nodes or trees (a loop over tree levels only):

* exact dtypes and shapes; no unknown or missing key, array or attribute;
* ``n_features == n_features_in_ == len(feature_names_in_)``; every split
  feature and hyperplane term is in ``[0, n_features)``;
* every tree is a binary tree in the build's layout: each internal node's
  children ``left, left + 1`` lie after it in its tree, and every node but
  the root is the child of exactly one node (so the walk is acyclic and
  reaches every node);
* leaves are real leaves (point at themselves, threshold/offset ``+inf``,
  feature 0 / zero normal) and internal nodes have finite splits;
* the stored depth of each tree equals its walked depth, which is at most
  ``_max_depth = ceil(log2(max_samples_))``;
* ``missing`` is 0 or 1, and 0 at every leaf;
* ``ranges`` are finite, 0 at leaves, and ``lo <= threshold <= hi`` at splits;
* leaf values are ``depth + c(size)`` with ``0 <= c(size) <= c(max_samples_)``
  and internal values are 0; ``denominator`` equals ``n_trees *
  c(max_samples_)`` (recomputed and compared) and ``offset_`` is finite.

Any violation raises a ``ValueError`` that names the field.  These checks
catch corrupted or truncated state; they cannot make an untrusted *pickle*
safe (unpickling can run code before any check): untrusted sources must use
the registry's non-pickle format.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _isolation
from .base import BaseIsolationForest, average_path_length, max_depth_for

__all__ = ["FORMAT", "check_forest", "export_forest", "import_forest", "pickled_forest"]

FORMAT = "anomaly_fast.forest/4"
FORMAT_V3 = "anomaly_fast.forest/3"  # no ``ranges`` array (axis forests)
FORMAT_V2 = "anomaly_fast.forest/2"  # no ``fills`` array (hyperplane forests)
FORMAT_V1 = "anomaly_fast.forest/1"  # no ``missing`` array; migrated on load
READABLE_FORMATS = (FORMAT, FORMAT_V3, FORMAT_V2, FORMAT_V1)
STATE_KEYS = frozenset({"denominator", "n_features", "fitted"})
_BASE_FITTED = ("offset_", "max_samples_", "n_features_in_", "_max_features", "_max_depth")
_INT32_MAX = np.iinfo(np.int32).max
_REL_TOL = 1e-9  # recomputed floats (c(n), denominator) may differ in the last bits

# Per kind of tree: the node dtype, the arrays and the fitted attributes.
KINDS = {
    "axis": {
        "node_dtype": _isolation.AXIS_NODE_DTYPE,
        "arrays": ("nodes", "values", "missing", "offsets", "depths", "ranges"),
        "fitted": _BASE_FITTED,
        "kernel": _isolation.AxisForest,
    },
    "hyperplane": {
        "node_dtype": _isolation.HYPERPLANE_NODE_DTYPE,
        "arrays": ("nodes", "values", "normals", "terms", "offsets", "depths", "fills"),
        "fitted": _BASE_FITTED + ("extension_level_",),
        "optional": ("_explain_center",),  # explain's reference point (absent before it existed)
        "kernel": _isolation.HyperplaneForest,
    },
}
_DTYPES = {
    "values": np.dtype(np.float64),
    "offsets": np.dtype(np.int64),
    "depths": np.dtype(np.int32),
    "normals": np.dtype(np.float64),
    "terms": np.dtype(np.int32),
    "missing": np.dtype(np.uint8),
    "fills": np.dtype(np.float64),
    "ranges": np.dtype(np.float64),
}
# Arrays a forest of the format that added them may still lack: a /3
# hyperplane forest ``fills`` (a /2 one loaded and saved again), a /4 axis
# forest ``ranges`` (an older one loaded and saved again).
OPTIONAL_ARRAYS = ("fills", "ranges")
# Arrays each older format lacks.
_ADDED_SINCE = {
    FORMAT_V1: ("missing", "fills", "ranges"),
    FORMAT_V2: ("fills", "ranges"),
    FORMAT_V3: ("ranges",),
    FORMAT: (),
}


def array_names(kind, fmt=FORMAT):
    """The arrays a ``kind`` forest of format ``fmt`` holds."""
    if fmt not in READABLE_FORMATS:
        _fail("format", f"{fmt!r} is unknown (readable: {', '.join(READABLE_FORMATS)})")
    return tuple(n for n in KINDS[kind]["arrays"] if n not in _ADDED_SINCE[fmt])


def array_dtype(kind, name):
    """The exact dtype of array ``name`` of a ``kind`` forest."""
    return KINDS[kind]["node_dtype"] if name == "nodes" else _DTYPES[name]


def export_forest(model: BaseIsolationForest) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """``(arrays, state)`` of a fitted forest estimator: plain numpy arrays
    and a JSON-able dict (see the module docstring)."""
    spec = KINDS[model._forest_kind]
    forest = model._forest
    arrays = {
        key: np.ascontiguousarray(getattr(forest, key)) for key in spec["arrays"] if getattr(forest, key) is not None
    }
    fitted = {}
    for key in spec["fitted"]:
        value = getattr(model, key)
        fitted[key] = value.item() if isinstance(value, np.generic) else value
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(f) for f in model.feature_names_in_]
    if getattr(model, "_explain_center", None) is not None:
        fitted["_explain_center"] = [float(v) for v in model._explain_center]
    state = {"denominator": float(forest.denominator), "n_features": int(forest.n_features), "fitted": fitted}
    return arrays, state


def import_forest(
    model: BaseIsolationForest, arrays: Mapping[str, Any], state: Mapping[str, Any], fmt: str = FORMAT
) -> BaseIsolationForest:
    """Check ``arrays``/``state`` of format ``fmt`` (:func:`check_forest`),
    then give ``model`` its fitted attributes and a kernel forest built from
    the checked (and, from ``/1``, migrated) arrays."""
    arrays, fitted, denominator = check_forest(model._forest_kind, arrays, state, fmt)
    for key, value in fitted.items():
        setattr(model, key, value)
    spec = KINDS[model._forest_kind]
    extra = {key: arrays[key] for key in ("missing", "fills", "ranges") if key in arrays}
    model._forest = spec["kernel"](
        *(arrays[key] for key in array_names(model._forest_kind, FORMAT_V1)),
        denominator,
        fitted["n_features_in_"],
        trusted=True,
        **extra,
    )
    return model


# -- checks ------------------------------------------------------------------------
def _fail(field, problem):
    raise ValueError(f"corrupt forest state: {field} {problem}")


def _keys(field, found, required, optional=()):
    if not isinstance(found, dict):
        _fail(field, f"must be a dict, got {type(found).__name__}")
    unknown = sorted(str(k) for k in set(found) - set(required) - set(optional))
    missing = sorted(set(required) - set(found))
    if unknown:
        _fail(field, f"has unknown keys {unknown}")
    if missing:
        _fail(field, f"is missing keys {missing}")


def _int(field, value, low, high=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        _fail(field, f"must be an int, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        _fail(field, f"= {value} is out of range [{low}, {high if high is not None else 'inf'}]")
    return value


def _float(field, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        _fail(field, f"must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        _fail(field, f"= {value} is not finite")
    return value


def _max_layout_features():
    """Widest model whose scoring layout's uint32 column offsets fit."""
    # block_rows_for(n) is ROW_GROUP (12) for any wide model
    return (2**32 - 1) // (8 * _isolation.block_rows_for(2**20))


def check_fitted(kind, fitted, n_trees=None):
    """The fitted attributes, type- and range-checked (ints as int, floats
    finite, names as an object array); ValueError naming the first bad one."""
    spec = KINDS[kind]
    _keys("fitted", fitted, spec["fitted"], ("feature_names_in_",) + spec.get("optional", ()))
    out = {}
    n_features = out["n_features_in_"] = _int("n_features_in_", fitted["n_features_in_"], 1, _max_layout_features())
    max_samples = out["max_samples_"] = _int("max_samples_", fitted["max_samples_"], 1, _INT32_MAX // 2)
    out["_max_features"] = _int("_max_features", fitted["_max_features"], 1, n_features)
    out["_max_depth"] = _int("_max_depth", fitted["_max_depth"], 0)
    if out["_max_depth"] != max_depth_for(max_samples):
        _fail(
            "_max_depth", f"= {out['_max_depth']} differs from ceil(log2(max_samples_)) = {max_depth_for(max_samples)}"
        )
    out["offset_"] = _float("offset_", fitted["offset_"])
    if "extension_level_" in spec["fitted"]:
        out["extension_level_"] = _int("extension_level_", fitted["extension_level_"], 0, out["_max_features"] - 1)
    if "feature_names_in_" in fitted:
        names = fitted["feature_names_in_"]
        if not isinstance(names, (list, tuple, np.ndarray)) or not all(isinstance(f, str) for f in names):
            _fail("feature_names_in_", "must be a list of str")
        if len(names) != n_features:
            _fail("feature_names_in_", f"has {len(names)} names for n_features_in_ = {n_features}")
        out["feature_names_in_"] = np.asarray(list(names), dtype=object)
    if "_explain_center" in fitted:
        center = fitted["_explain_center"]
        if not isinstance(center, (list, tuple, np.ndarray)) or len(center) != n_features:
            _fail("_explain_center", f"must be a list of n_features_in_ = {n_features} numbers")
        out["_explain_center"] = np.array([_float("_explain_center", v) for v in center], dtype=np.float64)
    return out


def _check_arrays(kind, arrays, fitted, fmt):
    names = array_names(kind, fmt)
    optional = tuple(n for n in OPTIONAL_ARRAYS if n in names)
    _keys("arrays", arrays, [n for n in names if n not in optional], optional)
    names = tuple(n for n in names if n in arrays)
    for key in names:
        a = arrays[key]
        if not isinstance(a, np.ndarray):
            _fail(key, f"must be a numpy array, got {type(a).__name__}")
        expected = array_dtype(kind, key)
        if a.dtype != expected:
            _fail(key, f"has dtype {a.dtype}, expected {expected}")
        if a.ndim != (2 if key in ("normals", "terms", "fills", "ranges") else 1):
            _fail(key, f"has shape {a.shape}")
    nodes, offsets, depths = arrays["nodes"], arrays["offsets"], arrays["depths"]
    n = nodes.shape[0]
    for key in ("values", "missing"):
        if key in names and arrays[key].shape != (n,):
            _fail(key, f"has shape {arrays[key].shape}, expected ({n},)")
    if "ranges" in names and arrays["ranges"].shape != (n, 2):
        _fail("ranges", f"has shape {arrays['ranges'].shape}, expected ({n}, 2)")
    if offsets.shape[0] == 0:
        _fail("offsets", "is empty: a forest has at least one tree")
    if depths.shape != offsets.shape:
        _fail("depths", f"has shape {depths.shape}, offsets {offsets.shape}")
    if kind == "hyperplane":
        k = fitted["extension_level_"] + 1
        for key in ("normals", "terms", "fills"):
            if key in names and arrays[key].shape != (n, k):
                _fail(key, f"has shape {arrays[key].shape}, expected ({n}, extension_level_ + 1 = {k})")
    return {key: np.ascontiguousarray(arrays[key]) for key in names}


def _check_trees(kind, a, fitted):
    """The tree structure (see the module docstring); returns each node's
    depth."""
    nodes, values, offsets, depths = a["nodes"], a["values"], a["offsets"], a["depths"]
    n = nodes.shape[0]
    max_samples, max_depth = fitted["max_samples_"], fitted["_max_depth"]
    if offsets[0] != 0 or np.any(offsets[1:] <= offsets[:-1]) or offsets[-1] >= n:
        _fail("offsets", "must start at 0 and increase strictly within the node array")
    sizes = np.diff(np.r_[offsets, n])
    width = 2 * max_samples - 1 if kind == "axis" else min(2 ** (max_depth + 1) - 1, max_depth * max_samples + 1)
    if np.any(sizes % 2 == 0) or np.any(sizes > width):
        _fail("offsets", f"give a tree of an even size or more than {width} nodes")
    if np.any(depths < 0) or np.any(depths > max_depth):
        _fail("depths", f"must be in [0, _max_depth = {max_depth}]")
    tree_of = np.repeat(np.arange(offsets.shape[0]), sizes)
    start = offsets[tree_of]
    local = np.arange(n, dtype=np.int64) - start
    left = nodes["left"].astype(np.int64)
    leaf = left == local
    internal = ~leaf
    if np.any(internal & ((left <= local) | (left + 1 >= sizes[tree_of]))):
        _fail("nodes.left", "has a child that is not after its parent in its tree")
    # Every node but a root is the child of exactly one node: the children
    # pairs (left, left + 1) of internal nodes are the odd local indices.
    children = np.sort((start + left)[internal])
    if not np.array_equal(children, np.flatnonzero(local % 2 == 1)):
        _fail("nodes.left", "does not form binary trees (a node with no or two parents)")
    depth = walked_depth(nodes, offsets, max_depth)
    walked = np.maximum.reduceat(depth, offsets)
    if not np.array_equal(walked, depths):
        bad = int(np.flatnonzero(walked != depths)[0])
        _fail("depths", f"[{bad}] = {int(depths[bad])} differs from the walked depth {int(walked[bad])}")
    # Leaf values: depth + c(size), 0 <= c(size) <= c(max_samples_).
    c_max = average_path_length(max_samples)
    extra = values[leaf] - depth[leaf]
    if not np.all(np.isfinite(values)):
        _fail("values", "hold a non-finite value")
    if np.any(extra < -_REL_TOL) or np.any(extra > c_max * (1 + _REL_TOL) + _REL_TOL):
        _fail("values", f"hold a leaf value outside [depth, depth + c(max_samples_) = depth + {c_max:.6g}]")
    if np.any(values[internal] != 0.0):
        _fail("values", "hold a non-zero value at an internal node")
    n_features = fitted["n_features_in_"]
    if kind == "axis":
        threshold, feature = nodes["threshold"], nodes["feature"]
        if np.any(leaf & ((threshold != np.inf) | (feature != 0))):
            _fail("nodes.threshold", "is not +inf (or feature not 0) at a leaf")
        if not np.all(np.isfinite(threshold[internal])):
            _fail("nodes.threshold", "is not finite at an internal node")
        if np.any((feature < 0) | (feature >= n_features)):
            _fail("nodes.feature", f"is out of range [0, n_features_in_ = {n_features})")
        if "missing" in a and np.any((a["missing"] > 1) | (leaf & (a["missing"] != 0))):
            _fail("missing", "is not 0 or 1, or not 0 at a leaf")
        if "ranges" in a:
            lo, hi = a["ranges"][:, 0], a["ranges"][:, 1]
            if not np.all(np.isfinite(a["ranges"])) or np.any(leaf & ((lo != 0.0) | (hi != 0.0))):
                _fail("ranges", "hold a non-finite value, or a non-zero one at a leaf")
            if np.any(internal & ~((lo <= threshold) & (threshold <= hi))):
                _fail("ranges", "do not hold their split's threshold (lo <= threshold <= hi)")
        return depth
    offset, n_terms, normals, terms = nodes["offset"], nodes["n_terms"], a["normals"], a["terms"]
    k = normals.shape[1]
    if np.any(leaf & ((offset != np.inf) | (n_terms != 0))):
        _fail("nodes.offset", "is not +inf (or n_terms not 0) at a leaf")
    if np.any(internal & ((n_terms < 1) | (n_terms > k))):
        _fail("nodes.n_terms", f"is out of range [1, extension_level_ + 1 = {k}] at an internal node")
    if np.any(np.isnan(offset)):
        _fail("nodes.offset", "is NaN")
    used = np.arange(k)[None, :] < n_terms[:, None]
    if not np.all(np.isfinite(normals)) or np.any(normals[~used] != 0.0):
        _fail("normals", "hold a non-finite weight or a non-zero padding weight")
    if np.any((terms < 0) | (terms >= n_features)) or np.any(terms[~used] != 0):
        _fail("terms", f"hold a feature out of [0, n_features_in_ = {n_features}) or non-zero padding")
    if np.any(used[:, 1:] & (terms[:, 1:] <= terms[:, :-1])):
        _fail("terms", "are not strictly ascending within a node")
    if "fills" in a and (np.any(np.isnan(a["fills"])) or np.any(a["fills"][~used] != 0.0)):
        _fail("fills", "hold a NaN or a non-zero padding value")
    return depth


def walked_depth(nodes, offsets, max_depth=None):
    """Each node's depth in its tree, walked level by level from the roots
    (a tree deeper than ``max_depth`` fails)."""
    n = nodes.shape[0]
    start = np.repeat(offsets, np.diff(np.r_[offsets, n]))
    left = start + nodes["left"].astype(np.int64)
    internal = left != np.arange(n, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    frontier = np.asarray(offsets, dtype=np.int64)
    level = 0
    while True:
        frontier = frontier[internal[frontier]]
        if frontier.size == 0:
            return depth
        level += 1
        if max_depth is not None and level > max_depth:
            _fail("nodes.left", f"gives a tree deeper than _max_depth = {max_depth}")
        child = left[frontier]
        frontier = np.concatenate([child, child + 1])
        depth[frontier] = level


def node_sizes(nodes, values, offsets, depth, max_samples):
    """``(size, left, internal)`` of a checked forest: each leaf's size is
    recovered from its value depth + c(size) (c increases strictly from
    c(1) = 0, so an empty hyperplane leaf counts as 1) and summed bottom-up;
    ``left`` is each node's global left child, ``internal`` marks splits."""
    n = nodes.shape[0]
    start = np.repeat(offsets, np.diff(np.r_[offsets, n]))
    left = start + nodes["left"].astype(np.int64)
    internal = left != np.arange(n, dtype=np.int64)
    table = average_path_length(np.arange(1, max_samples + 1))
    extra = values - depth
    size = np.searchsorted(table, extra - 1e-9).clip(0, table.shape[0] - 1) + 1
    size = np.where(internal, 0, size).astype(np.int64)
    for level in range(int(depth.max()) - 1, -1, -1):
        at = np.flatnonzero(internal & (depth == level))
        size[at] = size[left[at]] + size[left[at] + 1]
    return size, left, internal


def _missing_from_leaf_sizes(a, fitted, depth):
    """The ``missing`` array of a checked ``/1`` axis forest: the node sizes
    of :func:`node_sizes`, and a NaN goes to the child that received more
    rows, ties to the right."""
    size, left, internal = node_sizes(a["nodes"], a["values"], a["offsets"], depth, fitted["max_samples_"])
    missing = np.zeros(a["nodes"].shape[0], dtype=np.uint8)
    missing[internal] = size[left[internal]] > size[left[internal] + 1]
    return missing


def check_forest(
    kind: str, arrays: Mapping[str, Any], state: Mapping[str, Any], fmt: str = FORMAT
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any], float]:
    """Check exported ``arrays``/``state`` of a ``kind`` ("axis" or
    "hyperplane") forest of format ``fmt``; return ``(arrays, fitted,
    denominator)`` with C-contiguous arrays (an axis ``/1`` forest gains its
    derived ``missing``) and typed fitted attributes, or raise a
    ``ValueError`` naming the bad field."""
    _keys("state", state, STATE_KEYS)
    fitted = check_fitted(kind, state["fitted"])
    n_features = _int("n_features", state["n_features"], 1)
    if n_features != fitted["n_features_in_"]:
        _fail("n_features", f"= {n_features} differs from n_features_in_ = {fitted['n_features_in_']}")
    arrays = _check_arrays(kind, arrays, fitted, fmt)
    depth = _check_trees(kind, arrays, fitted)
    if kind == "axis" and "missing" not in arrays:
        arrays["missing"] = _missing_from_leaf_sizes(arrays, fitted, depth)
    stored = _float("denominator", state["denominator"])
    denominator = float(arrays["offsets"].shape[0] * average_path_length(fitted["max_samples_"]))
    if abs(stored - denominator) > _REL_TOL * max(denominator, 1.0):
        _fail("denominator", f"= {stored!r} differs from n_trees * c(max_samples_) = {denominator!r}")
    return arrays, fitted, denominator


def pickled_forest(kind: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """Pop the forest out of an estimator's pickled ``state`` dict (the
    ``_forest_state`` entry written by ``__getstate__``, or a legacy pickle's
    kernel object and fitted attributes) as ``{"arrays", "state"}`` for
    :func:`import_forest`, or None for an unfitted estimator."""
    fitted_names = set(KINDS[kind]["fitted"]) | {"feature_names_in_"}
    if "_forest" in state:
        return restore_legacy_state(kind, state)
    saved = state.pop("_forest_state", None)
    stray = sorted(fitted_names & set(state))
    if stray:
        _fail("pickle", f"holds fitted attributes {stray} outside its forest state")
    if saved is None:
        return None
    _keys("_forest_state", saved, ("format", "arrays", "state"))
    if saved["format"] not in READABLE_FORMATS:
        _fail("_forest_state", f"has unknown format {saved['format']!r}")
    return saved


def restore_legacy_state(kind, state):
    """The forest of a pickle written before this format (the kernel object
    under ``_forest``, fitted attributes beside it), popped from ``state``
    into ``{"arrays", "state"}`` for :func:`import_forest`; the kernel object
    was unpickled without a scoring layout, so nothing ran on its arrays."""
    spec = KINDS[kind]
    forest = state.pop("_forest")
    if not isinstance(forest, spec["kernel"]):
        _fail("_forest", f"is a {type(forest).__name__}, expected {spec['kernel'].__name__}")
    arrays = {key: getattr(forest, key) for key in array_names(kind, FORMAT_V1)}
    fitted = {key: state.pop(key) for key in spec["fitted"] + ("feature_names_in_",) if key in state}
    if "feature_names_in_" in fitted:
        names = fitted["feature_names_in_"]
        fitted["feature_names_in_"] = list(names) if isinstance(names, np.ndarray) else names
    return {
        "format": FORMAT_V1,
        "arrays": arrays,
        "state": {"denominator": forest.denominator, "n_features": forest.n_features, "fitted": fitted},
    }
