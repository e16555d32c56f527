"""Fuzz targets for the restored state of the streaming detectors.

Each target (``adwin``, ``half_space_trees``, ``feature_monitor``) takes a
case number, builds a detector that has seen a stream (the case number picks
parameters and stream), takes its pickled state, applies one to three random
mutations (a field replaced by 0, a negative, huge, NaN or infinite value,
2**30, a wrong type or dtype; an array truncated, extended, reshaped or with
one entry changed; a key removed or added), loads it into a fresh object and,
if that is accepted, feeds and scores a few hundred values.  Outcomes:
``"ok"`` (accepted, used, and its state still validates afterwards) or
``"ValueError"`` (refused on loading).  Anything else -- a crash, a hang,
another exception, an error while using an accepted state, a state that no
longer validates after use -- is a failure of the run (see
:func:`anomaly_fast._fuzz.run_cases`).

    python benchmarks/fuzz_streaming.py --cases 10000
"""

import copy
import random

import numpy as np

__all__ = ["adwin", "half_space_trees", "feature_monitor"]

_SPECIAL = [
    0,
    -1,
    -7.5,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    2**30,
    2**61,
    2**63 - 1,
    -(2**31),
    1.5,
    True,
    None,
    "x",
    (),
    [],
    10**400,
]


def _special_value(rng):
    return _SPECIAL[rng.randrange(len(_SPECIAL))]


def _leaves(obj, path=()):
    """Paths to every mutable place of a state: dict entries, tuple items,
    arrays, and (structured) array fields."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield path + (key,)
            yield from _leaves(value, path + (key,))
    elif isinstance(obj, (tuple, list)) and not (isinstance(obj, list) and len(obj) > 8):
        for i, value in enumerate(obj):
            yield path + (i,)
            yield from _leaves(value, path + (i,))
    elif isinstance(obj, np.ndarray) and obj.dtype.names:
        for name in obj.dtype.names:
            yield path + (name,)


def _get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def _put(obj, path, value):
    """obj with the place at path replaced (tuples rebuilt, arrays copied)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(obj, tuple):
        return obj[:key] + (_put(obj[key], rest, value),) + obj[key + 1 :]
    if isinstance(obj, np.ndarray):  # a field of a structured array
        out = obj.copy()
        out[key] = value
        return out
    obj[key] = _put(obj[key], rest, value)
    return obj


def _mutate_array(arr, rng):
    kind = rng.randrange(8)
    flat = arr.reshape(-1)
    if kind == 0:
        return arr[: rng.randrange(max(len(arr), 1))]  # truncated
    if kind == 1:
        return np.concatenate([arr, arr[:1].repeat(rng.randrange(1, 4), axis=0)]) if len(arr) else arr
    if kind == 2 and arr.dtype.names is None:
        return arr.astype(rng.choice([np.float32, np.int32, np.int64, np.float64, object]))
    if kind == 3:
        return arr.reshape(-1) if arr.ndim > 1 else arr.reshape(1, -1)
    if kind == 4 and flat.size and arr.dtype.names:
        out = arr.copy().reshape(-1)
        name = rng.choice(arr.dtype.names)
        try:
            out[name][rng.randrange(out.size)] = rng.choice([0, -1, 2**30, -(2**31), 2**31 - 1, 3])
        except (OverflowError, ValueError):
            out[name][rng.randrange(out.size)] = -1
        return out.reshape(arr.shape)
    if flat.size and arr.dtype.names is None:
        out = arr.copy()
        value = _special_value(rng)
        try:
            out.reshape(-1)[rng.randrange(flat.size)] = value
        except (TypeError, ValueError, OverflowError):
            return out.astype(object)
        return out
    return np.zeros(0, dtype=arr.dtype)


def _mutate_field(field, rng):
    if isinstance(field, np.ndarray) and field.dtype.names:
        name = rng.choice(field.dtype.names)
        return _mutate_array(field[name], rng) if rng.random() < 0.3 else None
    if isinstance(field, np.ndarray) and field.ndim == 1 and not field.dtype.names and rng.random() < 0.6:
        return _mutate_array(field, rng)
    if isinstance(field, (int, float, np.number)) and not isinstance(field, bool) and rng.random() < 0.5:
        return type(field)(field * rng.choice([0, -1, 2, 1000])) if abs(field) < 1e300 else 0
    return _special_value(rng)


def mutate(state, rng, n_mutations):
    """A deep copy of state with n_mutations random changes."""
    state = copy.deepcopy(state)
    for _ in range(n_mutations):
        paths = list(_leaves(state))
        if not paths:
            break
        path = paths[rng.randrange(len(paths))]
        parent = _get(state, path[:-1])
        move = rng.random()
        if isinstance(parent, dict) and move < 0.1:
            del parent[path[-1]]  # a missing key
        elif isinstance(parent, dict) and move < 0.15:
            parent["unexpected_" + str(rng.randrange(100))] = _special_value(rng)
        elif isinstance(parent, np.ndarray):  # a field of the node array
            nodes = parent.copy()
            values = nodes[path[-1]].reshape(-1)
            if values.size:
                try:
                    values[rng.randrange(values.size)] = rng.choice(
                        [0, -1, 2**30, -(2**31), 2**31 - 1, 1e308, float("nan"), float("inf"), 3, 10**6]
                    )
                except (OverflowError, ValueError):
                    values[0] = -1
            state = _put(state, path[:-1], nodes)
        else:
            value = _mutate_field(_get(state, path), rng)
            if value is not None:
                state = _put(state, path, value)
    return state


# -- the detectors --------------------------------------------------------------


def _stream(rng, n):
    values = rng.normal(0, 1, n)
    values[n // 2 :] += rng.choice([0.0, 2.0, 10.0])
    return values


def _adwin_source(case):
    from .streaming.adwin import ADWIN

    rng = np.random.default_rng(case % 97)
    params = dict(
        clock=int(rng.choice([1, 4, 32])),
        max_buckets=int(rng.choice([1, 2, 5])),
        delta=float(rng.choice([0.002, 0.3])),
        grace_period=int(rng.choice([0, 10])),
    )
    det = ADWIN(**params)
    det.update_many(_stream(rng, int(rng.integers(0, 3000))) * float(rng.choice([1e-3, 1.0, 1e6])))
    return det


def adwin(case):
    """Fuzz target: a mutated ADWIN state."""
    from .streaming.adwin import ADWIN, _check_state

    rng = random.Random(case)
    state = mutate(_adwin_source(case).__getstate__(), rng, 1 + (case % 3 == 0) + (case % 7 == 0))
    det = ADWIN.__new__(ADWIN)
    try:
        det.__setstate__(state)
    except ValueError:
        return "ValueError"
    values = _stream(np.random.default_rng(case), 300)
    for v in values[:50]:
        det.update(float(v))
    det.update_many(values[50:])
    _ = (det.width, det.total, det.variance, det.variance_in_window, det.estimation, det.bucket_counts)
    _check_state(det.__getstate__())  # still a valid state
    return "ok"


def _hst_source(case):
    from .streaming.half_space_trees import HalfSpaceTrees

    rng = np.random.default_rng(case % 89)
    d = int(rng.integers(1, 5))
    limits = [(0.0, 1.0)] * d if rng.random() < 0.5 else None
    model = HalfSpaceTrees(
        n_trees=int(rng.integers(1, 6)),
        height=int(rng.integers(1, 6)),
        window_size=int(rng.integers(1, 60)),
        limits=limits,
        seed=int(rng.integers(100)),
        score_rule=str(rng.choice(["path", "terminal"])),
    )
    X = rng.random((int(rng.integers(0, 300)), d))
    if rng.random() < 0.3 and len(X):
        for row in X:
            model.learn_one(dict(enumerate(row.tolist())))
    elif len(X):
        model.learn_many(X)
    return model, d


def half_space_trees(case):
    """Fuzz target: a mutated HalfSpaceTrees state."""
    from .streaming.half_space_trees import HalfSpaceTrees, _check_state

    rng = random.Random(case)
    source, d = _hst_source(case)
    state = mutate(source.__getstate__(), rng, 1 + (case % 3 == 0) + (case % 7 == 0))
    model = HalfSpaceTrees.__new__(HalfSpaceTrees)
    try:
        model.__setstate__(state)
    except ValueError:
        return "ValueError"
    d = model.n_features_in_ or d
    X = np.random.default_rng(case).random((200, d)) * 1.4 - 0.2
    names = model.feature_names_in_ if model.feature_names_in_ is not None else list(range(d))
    for row in X[:40]:
        model.score_one(row)
        model.learn_one(row)
        model.score_one(dict(zip(names, row.tolist())))
    model.learn_many(X[40:100])
    model.score_many(X)
    model.score_learn_many(X[100:])
    model.mass_profile()
    _check_state(model.__getstate__())  # still a valid state
    return "ok"


def _monitor_source(case):
    from .streaming.feature_monitor import FeatureMonitor

    rng = np.random.default_rng(case % 53)
    d = int(rng.integers(1, 4))
    train = rng.normal(size=(100, d))
    monitor = FeatureMonitor(
        [f"f{j}" for j in range(d)],
        reference=train if rng.random() < 0.7 else None,
        quality_window=int(rng.integers(1, 200)),
    )
    X = rng.normal(size=(int(rng.integers(0, 800)), d))
    X[rng.random(X.shape) < 0.02] = np.nan
    monitor.update_many(X, np.arange(len(X), dtype=float))
    return monitor, d


def feature_monitor(case):
    """Fuzz target: a mutated FeatureMonitor state (its ADWINs included)."""
    from .streaming.feature_monitor import FeatureMonitor, _check_state

    rng = random.Random(case)
    source, d = _monitor_source(case)
    state = source.__getstate__()
    state["_adwins"] = tuple(a.__getstate__() for a in state["_adwins"])  # mutated too
    state = mutate(state, rng, 1 + (case % 3 == 0))
    monitor = FeatureMonitor.__new__(FeatureMonitor)
    try:
        adwins = state.get("_adwins")
        if isinstance(adwins, tuple):
            from .streaming.adwin import ADWIN

            restored = []
            for a in adwins:
                det = ADWIN.__new__(ADWIN)
                det.__setstate__(a)
                restored.append(det)
            state["_adwins"] = restored
        monitor.__setstate__(state)
    except ValueError:
        return "ValueError"
    X = np.random.default_rng(case).normal(size=(300, d)) * 3
    X[::37] = np.inf
    for i in range(50):
        monitor.update(X[i], float(i))
    monitor.update_many(X[50:], np.arange(50.0, 300.0))
    monitor.feature_report()
    _check_state(monitor.__getstate__())
    return "ok"
