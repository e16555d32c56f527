"""Fuzz targets for loaded forest state (see :mod:`anomaly_fast._fuzz`).

Each target takes a case number, seeds one random mutation of a fitted
forest's saved form with it, loads the result and, if it loads, scores a few
rows.  Outcome labels: ``"ok"`` (loaded, and the scores are finite and in
range), ``"ValueError"`` (refused at load; the registry's and
``_forest_format``'s only allowed error), ``"UnpicklingError"`` (a pickle
truncated so that :mod:`pickle` itself refuses it) and ``"error: ..."`` for
a model that loads but scores out of range (a failure).

Targets, for ``IsolationForest`` (``_if``) and ``ExtendedIsolationForest``
(``_eif``):

* ``folder_*``: a model folder written by :func:`~anomaly_fast.pipeline.registry.save_model`
  with ``meta.json`` fields and ``model.npz`` arrays mutated, or its bytes
  truncated / overwritten, then :func:`~anomaly_fast.pipeline.registry.load_model`;
* ``state_*``: the ``_export`` arrays and state mutated, then ``_import``;
* ``pickle_*``: the pickled state mutated (the current format, or the legacy
  one holding the kernel object), or the pickle's bytes truncated, then
  :func:`pickle.loads`.

* ``csc_fit``: a CSC matrix whose row indices, column pointers or values
  are mutated (out of range, negative, unsorted, duplicated, NaN, +-inf),
  fitted by ``IsolationForest`` (the take of each tree's rows reads them
  in compiled code): refused with a ValueError, or the model of the
  matrix as scipy reads it (``toarray``).

Mutations: random values (NaN, +-inf, huge, negative, off by one, a node's
own index), truncated or extended arrays, other dtypes and shapes, deleted
and added keys, self-pointing leaves with finite splits, cycles (a child
pointing back at an ancestor), swapped children, wrong depths.  The base
models are fitted once per worker process (module-level cache); odd cases
use a deep model (``max_samples=512``: the "links" scoring layout), even
cases a shallow one (the "heap" layout).
"""

import copyreg
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from .forest.extended_isolation_forest import ExtendedIsolationForest
from .forest.isolation_forest import IsolationForest
from .pipeline.registry import load_model, save_model

__all__ = [
    "csc_fit",
    "folder_eif",
    "folder_if",
    "pickle_eif",
    "pickle_if",
    "state_eif",
    "state_if",
]

_MODELS = {}
_TMP = None
_SPECIAL = [np.nan, np.inf, -np.inf, 1e308, -1e308, 2.0**31, -1.0, 0.0, 1.0, 2**31 - 1, -(2**31), 2**62, 5e-324]


def _base(cls, deep):
    """A small fitted model, fitted once per process."""
    key = (cls, deep)
    if key not in _MODELS:
        rng = np.random.RandomState(0)
        X = rng.normal(size=(600 if deep else 200, 4))
        if deep:
            model = cls(n_estimators=4, max_samples=512, random_state=0, contamination=0.1)
        else:
            model = cls(n_estimators=8, max_samples=64, random_state=0)
        _MODELS[key] = model.fit(X)
    return _MODELS[key]


def _rows():
    rng = np.random.RandomState(1)
    X = np.vstack([rng.normal(size=(30, 4)) * 3, [[1e300, -1e300, 0.0, 5.0]], np.zeros((1, 4))])
    return X


_X = _rows()


def _check_scores(model):
    """'ok' if the loaded model's scores are finite and in range, else an
    'error: ...' label."""
    s = model.score_samples(_X)
    a = model.anomaly_score(_X)
    p = model.predict(_X)
    if not (np.all(np.isfinite(s)) and np.all((s >= -1.0) & (s <= 0.0))):
        return f"error: score_samples out of [-1, 0]: {s[:4]}"
    if not np.all((a >= 0.0) & (a <= 1.0)):
        return f"error: anomaly_score out of [0, 1]: {a[:4]}"
    if not np.all(np.isin(p, (-1, 1))):
        return "error: predict not in {-1, 1}"
    if not np.all(np.isfinite(model.decision_function(_X))):
        return "error: decision_function not finite"
    scores, phi = model._explain(np.asarray(_X, dtype=np.float64))  # the explain walk reads the same arrays
    if not (np.array_equal(scores, s) and np.all(np.isfinite(phi))):
        return "error: explain differs from scoring or is not finite"
    return "ok"


# -- mutations ------------------------------------------------------------------------
def _random_value(rng, like=None):
    kind = rng.randint(6)
    if kind == 0:
        return _SPECIAL[rng.randint(len(_SPECIAL))]
    if kind == 1 and like is not None and np.size(like):
        return np.asarray(like).ravel()[rng.randint(np.size(like))] + rng.randint(-2, 3)
    if kind == 2:
        return int(rng.randint(-3, 1000))
    if kind == 3:
        return float(rng.normal() * 10.0 ** rng.randint(-3, 10))
    if kind == 4:
        return [None, "x", True, [], {}, "nan"][rng.randint(6)]
    return int(rng.randint(0, 8))


def _set_entries(rng, arr, field=None):
    """Overwrite 1-3 random entries (of ``field`` for a struct array)."""
    target = arr[field] if field is not None else arr
    if target.size == 0:
        return
    flat = target.reshape(-1) if target.flags.c_contiguous else target.ravel()
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(flat.size)
        value = _random_value(rng, flat)
        try:
            with np.errstate(all="ignore"):
                flat[i] = value
        except (TypeError, ValueError, OverflowError):
            flat[i] = 0
    if field is not None:
        arr[field] = flat.reshape(target.shape)
    elif not target.flags.c_contiguous:
        arr[...] = flat.reshape(arr.shape)


def _structural(rng, arrays, state):
    """A mutation aimed at the tree structure."""
    nodes, offsets, depths = arrays["nodes"], arrays["offsets"], arrays["depths"]
    n = nodes.shape[0]
    split = "threshold" if "threshold" in nodes.dtype.names else "offset"
    sizes = np.diff(np.r_[offsets, n])
    t = rng.randint(len(offsets))
    local = np.arange(sizes[t])
    tree = nodes[offsets[t] : offsets[t] + sizes[t]]
    leaves = np.flatnonzero(tree["left"] == local)
    internal = np.flatnonzero(tree["left"] != local)
    kind = rng.randint(7)
    if kind == 0 and leaves.size:  # self-pointing leaf with a finite split
        tree[split][rng.choice(leaves)] = rng.normal()
    elif kind == 1 and internal.size:  # cycle: a child pointing back up
        i = rng.choice(internal)
        tree["left"][i] = rng.randint(0, i + 1)
    elif kind == 2 and internal.size:  # an internal node made a "leaf"
        i = rng.choice(internal)
        tree["left"][i] = i
        tree[split][i] = np.inf
    elif kind == 3 and internal.size >= 2:  # two nodes share children
        i, j = rng.choice(internal, 2, replace=False)
        tree["left"][j] = tree["left"][i]
    elif kind == 4:  # wrong depth
        depths[t] = depths[t] + rng.choice([-1, 1, 2, 40, 2**30])
    elif kind == 5 and internal.size:  # child index at the tree's end
        tree["left"][rng.choice(internal)] = sizes[t] - rng.randint(1, 3)
    else:  # offsets shifted
        offsets[rng.randint(len(offsets))] += rng.choice([-1, 1, n])
    nodes[offsets[t] : offsets[t] + sizes[t]] = tree


def _benign(rng, arrays, state):
    """A mutation the format allows: other finite split values or normals,
    another finite offset_ (the model must then load and score in range)."""
    nodes = arrays["nodes"]
    split = "threshold" if "threshold" in nodes.dtype.names else "offset"
    internal = np.flatnonzero(nodes[split] != np.inf)
    kind = rng.randint(3)
    if kind == 0 and internal.size:
        moved = rng.choice(internal, min(internal.size, rng.randint(1, 20)))
        nodes[split][moved] = rng.normal(size=1) * 10.0 ** rng.randint(-3, 300)
        if "ranges" in arrays:  # a split's range holds its threshold
            ranges = arrays["ranges"]
            ranges[moved, 0] = np.minimum(ranges[moved, 0], nodes[split][moved])
            ranges[moved, 1] = np.maximum(ranges[moved, 1], nodes[split][moved])
    elif kind == 1 and "normals" in arrays and internal.size:
        arrays["normals"][rng.choice(internal), 0] = rng.normal() * 10.0 ** rng.randint(-300, 300)
    else:
        state["fitted"]["offset_"] = float(rng.normal() * 10.0 ** rng.randint(-3, 300))


def _mutate_array(rng, arrays, state):
    key = list(arrays)[rng.randint(len(arrays))]
    arr = arrays[key]
    kind = rng.randint(6)
    if kind <= 2:
        field = arr.dtype.names[rng.randint(len(arr.dtype.names))] if arr.dtype.names else None
        _set_entries(rng, arr, field)
    elif kind == 3:  # truncate or extend
        n = arr.shape[0]
        if rng.randint(2):
            arrays[key] = arr[: rng.randint(n + 1)].copy()
        else:
            arrays[key] = np.concatenate([arr, arr[: rng.randint(1, n + 1)]])
    elif kind == 4:  # another dtype
        choices = [np.float32, np.float64, np.int32, np.int64, np.uint32, np.int16]
        if arr.dtype.names:
            arrays[key] = arr[arr.dtype.names[0]].copy()
        else:
            arrays[key] = arr.astype(choices[rng.randint(len(choices))])
    else:  # another shape
        arrays[key] = arr.reshape(1, -1).copy() if arr.ndim == 1 else arr.ravel().copy()


def _paths(state, prefix=()):
    for key, value in state.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def _mutate_state(rng, arrays, state):
    paths = list(_paths(state))
    path = paths[rng.randint(len(paths))]
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.randint(5)
    if kind == 0:
        del parent[path[-1]]
    elif kind == 1:
        parent[["extra", "n_features_", "__class__", "fitted"][rng.randint(4)] + "x" * rng.randint(2)] = 1
    else:
        old = parent[path[-1]]
        parent[path[-1]] = _random_value(rng, np.asarray(old) if isinstance(old, (int, float)) else None)


def _mutate_keys(rng, arrays, state):
    if rng.randint(2) and arrays:
        del arrays[list(arrays)[rng.randint(len(arrays))]]
    else:
        arrays[["extra", "nodes2", "weights"][rng.randint(3)]] = np.zeros(3)


_MUTATIONS = [
    _benign,
    _benign,
    _structural,
    _structural,
    _mutate_array,
    _mutate_array,
    _mutate_array,
    _mutate_state,
    _mutate_state,
    _mutate_keys,
]


def _mutate(rng, arrays, state):
    for _ in range(1 + (rng.randint(4) == 0) * rng.randint(1, 3)):
        mutation = _MUTATIONS[rng.randint(len(_MUTATIONS))]
        try:
            mutation(rng, arrays, state)
        except (KeyError, IndexError, ValueError, TypeError, OverflowError):
            pass  # the chosen mutation did not apply to what an earlier one left


def _exported(cls, case):
    rng = np.random.RandomState(case)
    model = _base(cls, bool(case % 2))
    arrays, state = model._export()
    arrays = {key: a.copy() for key, a in arrays.items()}
    state = {**state, "fitted": dict(state["fitted"])}
    return rng, model, arrays, state


# -- targets --------------------------------------------------------------------------
def _state_target(cls, case):
    rng, model, arrays, state = _exported(cls, case)
    _mutate(rng, arrays, state)
    try:
        loaded = cls._import(model.get_params(), arrays, state)
    except ValueError:
        return "ValueError"
    return _check_scores(loaded)


def _folder():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="af-fuzz-")
    return Path(_TMP.name)


def _folder_target(cls, case):
    rng, model, arrays, state = _exported(cls, case)
    folder = _folder() / "m"
    meta = save_model(model, folder)
    kind = rng.randint(10)
    if kind < 6:  # mutated arrays or meta fields, written as a valid npz / JSON
        meta = {**meta, "fitted": dict(meta["fitted"]), "params": dict(meta["params"])}
        if rng.randint(4) == 0:
            _mutate_state(rng, arrays, meta)
        else:
            _mutate(rng, arrays, meta)
        import json

        (folder / "meta.json").write_text(json.dumps(meta, default=str))
        os.remove(folder / "model.npz")
        with open(folder / "model.npz", "wb") as f:
            np.savez(f, **arrays)
    else:  # bytes truncated or overwritten
        name = "model.npz" if kind < 9 else "meta.json"
        data = bytearray((folder / name).read_bytes())
        if rng.randint(2):
            data = data[: rng.randint(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randint(len(data))] = rng.randint(256)
        (folder / name).write_bytes(bytes(data))
    try:
        loaded = load_model(folder)
    except ValueError:
        return "ValueError"
    return _check_scores(loaded)


class _Pickled:
    """Pickles as ``cls`` with the given ``__setstate__`` state."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    def __reduce__(self):
        return copyreg._reconstructor, (self.cls, object, None), self.state


def _pickle_target(cls, case):
    rng, model, arrays, forest_state = _exported(cls, case)
    state = model.__getstate__()
    kind = rng.randint(8)
    if kind < 5:  # the current format, mutated
        _mutate(rng, arrays, forest_state)
        state["_forest_state"] = {"format": state["_forest_state"]["format"], "arrays": arrays, "state": forest_state}
        data = pickle.dumps(_Pickled(cls, state))
    elif kind < 7:  # the legacy format: the kernel object beside the fitted attributes
        _mutate(rng, arrays, forest_state)
        del state["_forest_state"]
        state.update(forest_state["fitted"] if isinstance(forest_state.get("fitted"), dict) else {})
        kernel = type(model._forest)
        try:
            args = [arrays[k] for k in _kernel_arrays(model)] + [
                float(forest_state["denominator"]),
                int(forest_state["n_features"]),
            ]
            state["_forest"] = kernel(*args)
        except (KeyError, TypeError, ValueError, OverflowError):
            return "ValueError"  # not even a kernel object: nothing to restore
        data = pickle.dumps(_Pickled(cls, state))
    else:  # truncated bytes
        data = pickle.dumps(model)
        data = data[: rng.randint(len(data))]
    try:
        loaded = pickle.loads(data)
    except ValueError:
        return "ValueError"
    except (pickle.UnpicklingError, EOFError):
        return "UnpicklingError"
    return _check_scores(loaded)


def _kernel_arrays(model):
    from .forest.format import KINDS

    return KINDS[model._forest_kind]["arrays"]


def state_if(case):
    """Mutated ``IsolationForest._export`` output through ``_import``."""
    return _state_target(IsolationForest, case)


def state_eif(case):
    """Mutated ``ExtendedIsolationForest._export`` output through ``_import``."""
    return _state_target(ExtendedIsolationForest, case)


def folder_if(case):
    """A mutated ``IsolationForest`` model folder through ``load_model``."""
    return _folder_target(IsolationForest, case)


def folder_eif(case):
    """A mutated ``ExtendedIsolationForest`` model folder through ``load_model``."""
    return _folder_target(ExtendedIsolationForest, case)


def pickle_if(case):
    """A mutated ``IsolationForest`` pickle through ``pickle.loads``."""
    return _pickle_target(IsolationForest, case)


def pickle_eif(case):
    """A mutated ``ExtendedIsolationForest`` pickle through ``pickle.loads``."""
    return _pickle_target(ExtendedIsolationForest, case)


def csc_fit(case):
    """``IsolationForest.fit`` on a CSC matrix with mutated arrays."""
    import scipy.sparse as sp

    rng = np.random.RandomState(case)
    n, d = int(rng.randint(1, 60)), int(rng.randint(1, 6))
    X = sp.random(n, d, density=float(rng.choice([0.1, 0.5, 1.0])), format="csc", random_state=case)
    if rng.rand() < 0.5:
        X = sp.csc_matrix((X.data, X.indices.astype(np.int64), X.indptr), shape=X.shape)
    for _ in range(rng.randint(1, 3)):
        name = ["indices", "indptr", "data"][rng.randint(3)]
        _set_entries(rng, getattr(X, name))
    X.has_sorted_indices = False  # scipy's flag must not be trusted
    kw = dict(n_estimators=5, max_samples=int(rng.randint(1, 20)), random_state=case, bootstrap=bool(case % 2))
    try:
        model = IsolationForest(**kw).fit(X)
    except ValueError:
        return "ValueError"
    try:
        X.check_format(full_check=True)
        dense = X.toarray()
    except ValueError:
        return "error: a matrix scipy refuses was fitted"
    expected = IsolationForest(**kw).fit(dense)._forest
    if not all(np.array_equal(getattr(model._forest, k), getattr(expected, k)) for k in ("nodes", "values")):
        return "error: the model differs from the dense matrix's"
    return "ok"
