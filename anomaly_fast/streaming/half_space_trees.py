"""Half-Space Trees streaming anomaly detector with compiled trees."""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from .._checks import all_finite
from .._hst import NODE_DTYPE, HalfSpaceForest, HalfSpaceModelBase
from .._sklearn_compat import Interval, StrOptions, validate_estimator_params

__all__ = ["HalfSpaceTrees"]

_NODE_BYTES = 32
_MIN_ROWS_PER_THREAD = 2048  # smaller batches run on one thread
_MAX_NODE_BYTES = 8 * 2**30  # refuse forests above 8 GiB of nodes
_PARAM_NAMES = ("n_trees", "height", "window_size", "limits", "seed", "score_rule", "n_jobs")
_FITTED_NAMES = ("_config", "feature_names_in_", "n_features_in_", "limits_", "_first_window", "_n_held")
_OLD_NAMES = {"feature_names_": "feature_names_in_", "n_features_": "n_features_in_"}
_INTS = (int, np.integer)


def _bad(field, problem):
    return ValueError(f"HalfSpaceTrees state: {field} {problem}")


def _int(value, field, low, high):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INTS):
        raise _bad(field, f"must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise _bad(field, f"must be in [{low}, {high}], got {value!r}")
    return int(value)


def _check_nodes(nodes, n_trees, height, window_size, window, count, n_features):
    """The node array of a restored forest, checked structurally (see
    ``_check_state``)."""
    slots = 2 << height
    if type(nodes) is not np.ndarray or nodes.dtype != NODE_DTYPE:
        raise _bad(
            "nodes", f"must be an array of dtype {NODE_DTYPE}, got {getattr(nodes, 'dtype', type(nodes).__name__)}"
        )
    if nodes.shape not in ((n_trees, slots), (0, slots)):
        raise _bad(
            "nodes",
            f"must have shape ({n_trees}, {slots}) (n_trees, 2**(height + 1)), "
            f"or (0, {slots}) before the trees are drawn; got {nodes.shape}",
        )
    if len(nodes) == 0:
        if window or count:
            raise _bad("window position", "must be 0 before the trees are drawn")
        return
    inner = nodes[:, 1 : slots // 2]  # internal nodes (slot 0 is unused, leaves follow)
    if not ((inner["feature"] >= 0) & (inner["feature"] < n_features)).all():
        raise _bad("nodes.feature", f"must be in [0, n_features={n_features}) on every internal node")
    if not np.isfinite(nodes["threshold"]).all():
        raise _bad("nodes.threshold", "must be finite")
    for name in ("latest", "reference"):
        if not ((nodes[name] >= 0) & (nodes[name] <= window_size)).all():
            raise _bad(f"nodes.{name}", f"must be in [0, window_size={window_size}]")
    tag = nodes["window"]
    if not ((tag >= -2) & (tag <= window)).all():
        raise _bad("nodes.window", f"must be in [-2, window={window}]")
    # The masses as the kernel reads them (the lazy pivot): every point that
    # passes a node passes one of its children, and every point passes the root.
    latest = np.where(tag == window, nodes["latest"], 0).astype(np.int64)
    reference = np.where(tag == window, nodes["reference"], np.where(tag == window - 1, nodes["latest"], 0)).astype(
        np.int64
    )
    for name, mass, root in (("latest", latest, count), ("reference", reference, window_size if window > 0 else 0)):
        if not (mass[:, 1] == root).all():
            raise _bad(f"nodes.{name}", f"of every root must be {root}")
        if not (mass[:, 1 : slots // 2] == mass[:, 2::2] + mass[:, 3::2]).all():
            raise _bad(f"nodes.{name}", "of a node must equal the sum of its children's")


def _check_state(state):
    """Validate a pickled HalfSpaceTrees state; return ``(attributes, kernel)``
    or raise a ``ValueError`` naming the bad field.

    Checked: the keys (none missing or unknown), the parameters, the kernel's
    shape (``_config``), every field's type and dtype; nodes complete
    (``n_trees`` rows of ``2**(height + 1)`` slots), split features below
    ``n_features``, finite thresholds, masses in [0, window_size] that add
    up (parent = left + right child, root = points of the window) as the
    lazy window pivot reads them, and the window position in range.  A
    corrupted state cannot crash or hang the kernel; a consistent but forged
    one only gives wrong scores (an untrusted pickle is never safe to
    load)."""
    if not isinstance(state, dict) or set(state) != {"params", "kernel"}:
        raise _bad("", "must be a dict with the keys 'params' and 'kernel'")
    attrs = state["params"]
    if not isinstance(attrs, dict):
        raise _bad("params", "must be a dict")
    expected = _PARAM_NAMES + _FITTED_NAMES
    missing = [k for k in expected if k not in attrs]
    unknown = [k for k in attrs if k not in expected]
    if missing or unknown:
        raise _bad("params", f"must have the keys {list(expected)}; missing {missing}, unknown {unknown}")
    config = attrs["_config"]
    if not isinstance(config, tuple) or len(config) != 4 or not isinstance(config[3], (bool, np.bool_)):
        raise _bad("_config", "must be (n_trees, height, window_size, path_sum)")
    n_trees = _int(config[0], "n_trees", 1, 2**31)
    height = _int(config[1], "height", 1, 30)
    window_size = _int(config[2], "window_size", 1, 2**31 - 1)
    if n_trees * (2 ** (height + 1) - 1) * _NODE_BYTES > _MAX_NODE_BYTES:
        raise _bad("_config", "needs more than 8 GiB of nodes")
    kernel = state["kernel"]
    if not isinstance(kernel, tuple) or len(kernel) != 4:
        raise _bad("kernel", "must be (nodes, window, count, n_features)")
    nodes = kernel[0]
    window = _int(kernel[1], "window", 0, 2**62)
    count = _int(kernel[2], "count", 0, window_size - 1)
    n_features = _int(kernel[3], "n_features", 0, 2**31 - 1)
    n_features_in_ = attrs["n_features_in_"]
    if n_features_in_ is None:
        if n_features != 0:
            raise _bad("n_features", "must be 0 while n_features_in_ is None")
    elif _int(n_features_in_, "n_features_in_", 1, 2**31 - 1) != n_features:
        raise _bad("n_features_in_", f"must equal the kernel's n_features={n_features}, got {n_features_in_!r}")
    built = isinstance(nodes, np.ndarray) and nodes.ndim == 2 and len(nodes) > 0
    if built and n_features == 0:
        raise _bad("n_features", "must be >= 1 once the trees are drawn")
    _check_nodes(nodes, n_trees, height, window_size, window, count, n_features)
    names = attrs["feature_names_in_"]
    if names is not None:
        if not isinstance(names, list) or len(names) != n_features:
            raise _bad("feature_names_in_", f"must be None or a list of n_features={n_features} names")
        try:
            if len(set(names)) != len(names):
                raise _bad("feature_names_in_", "must be distinct")
        except TypeError:
            raise _bad("feature_names_in_", "must be hashable") from None
    limits_ = attrs["limits_"]
    if limits_ is not None and not (
        type(limits_) is np.ndarray
        and limits_.dtype == np.float64
        and limits_.shape == (n_features, 2)
        and np.isfinite(limits_).all()
    ):
        raise _bad("limits_", f"must be None or a finite float64 array of shape ({n_features}, 2)")
    held, n_held = attrs["_first_window"], attrs["_n_held"]
    if held is None:
        _int(n_held, "_n_held", 0, 0)
    elif built or not (
        type(held) is np.ndarray and held.dtype == np.float64 and held.shape == (window_size, n_features)
    ):
        raise _bad(
            "_first_window",
            f"must be None, or before the trees are drawn a float64 array of shape ({window_size}, {n_features})",
        )
    else:
        _int(n_held, "_n_held", 0, window_size - 1)
        if not np.isfinite(held[:n_held]).all():
            raise _bad("_first_window", "must hold finite rows")
    return attrs, kernel


class HalfSpaceTrees(HalfSpaceModelBase, BaseEstimator):
    """Half-Space Trees (Tan, Ting & Liu 2011) for streaming anomaly
    detection, compiled, with river's API plus batch entry points.

    ``n_trees`` complete random trees of depth ``height`` split a work space
    given by per-feature limits: at each node a feature is drawn with
    probability proportional to the share of its limit range left in the node,
    and the threshold uniformly in the middle 70% of that range (as river;
    the paper halves the range of a perturbed work space instead).
    Each node counts the points of the current window that pass through it
    (latest mass) and keeps the count of the last complete window (reference
    mass); every ``window_size`` points the latest masses become the
    reference in O(1) (nodes are brought up to date lazily).

    A point's raw score walks each tree until a leaf or a node whose
    reference mass is below ``0.1 * window_size``; ``score_rule="path"`` (as
    river) sums ``reference_mass * 2**depth`` over the nodes of the walk,
    ``score_rule="terminal"`` (the paper's formula) takes it at the node where
    the walk stops.

    Score convention: ``score_one`` / ``score_many`` return
    ``1 - raw / max_raw`` in [0, 1], **higher = more anomalous**, and 0.0
    while the first window is being filled.

    Parameters
    ----------
    n_trees : int >= 1, default=10
        Number of trees.
    height : int in [1, 30], default=8
        Depth of the leaves; a tree has ``2**(height + 1) - 1`` nodes.
    window_size : int >= 1, default=250
        Points per window.
    limits : dict, array-like of shape (n_features, 2) or None, default=None
        Range ``(low, high)`` of each feature, keyed by feature name for dict
        input (by position for array input).  ``None``: the limits are the
        minimum and maximum of each feature over the first window, whose
        points are held (at most ``window_size`` rows) until it is complete;
        a feature constant over it is never split on.  Values outside the
        limits are valid: they fall in the outermost cell of every split.
    seed : int or None, default=None
        Seed of the tree construction (``random.Random(seed)``); ``None``
        seeds from the operating system.
    score_rule : {"path", "terminal"}, default="path"
        How a walk's masses make the raw score (see above).
    n_jobs : int or None, default=None
        Threads for the batch methods (None = 1, -1 = all cores); trees are
        split between threads and results do not depend on ``n_jobs``.

    Attributes
    ----------
    feature_names_in_ : list or None
        Feature names in the order used internally (sorted keys of the first
        dict; ``None`` for array input).  Named as in scikit-learn; the old
        name ``feature_names_`` still works for one release (with a
        ``FutureWarning``).
    n_features_in_ : int or None
        Number of features, once the first point has been seen (old name
        ``n_features_``, as above).
    limits_ : ndarray of shape (n_features, 2) or None
        The limits the trees were drawn in, once they are drawn.

    Notes
    -----
    Threads: one model may be shared between threads.  ``learn_one``,
    ``learn_many`` and ``score_learn_many`` run in compiled code with the
    GIL held (each call is atomic: no count is lost); ``score_many`` and the
    threads of an ``n_jobs`` batch release it, and a multi-threaded learning
    batch makes other learning calls wait.  A score taken while another
    thread learns uses the model as it stands at some point of that update.
    ``reset``/``set_params`` racing with learning cannot crash, but what is
    learned across a reset is not defined.  (CPython with the GIL; not safe
    on a free-threaded build.)

    Pickles are validated when loaded (a ``ValueError`` naming the bad field
    for a corrupted or truncated state); that cannot make an untrusted
    pickle safe to load.

    Input may be a dict (feature name -> value) or a 1-D numpy array in the
    order of ``feature_names_in_``; a finite C-contiguous float64 array, and a
    dict with exactly the model's keys and finite float or int values, take
    a compiled fast path (``learn_one(x)`` right after ``score_one(x)`` of
    the same values also reuses the score's walks).  Missing or unknown features, a wrong length, NaN or
    infinity raise a ``ValueError``; non-numeric values a ``TypeError``.
    Unlike river, missing features are not routed down the busiest child.
    The trees are drawn with Python's ``random.Random(seed)`` in the order
    river draws them, in the unit cube scaled to the limits: with limits
    (0, 1) for every feature (river's default) and the same seed, the trees
    and every score are identical to ``river.anomaly.HalfSpaceTrees`` (which
    takes dicts; use sorted feature names, or ``dict(enumerate(row))``).

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import HalfSpaceTrees
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(0.5, 0.05, size=(1000, 2))
    >>> hst = HalfSpaceTrees(n_trees=10, height=6, window_size=100,
    ...                      limits=[(0, 1), (0, 1)], seed=42)
    >>> scores = hst.score_learn_many(X)
    >>> print(f"{scores[:100].max():.3f} {scores[100:].mean():.3f}")
    0.000 0.461
    >>> print(f"{hst.score_one(np.array([0.5, 0.5])):.3f} {hst.score_one({0: 0.95, 1: 0.05}):.3f}")
    0.378 0.980
    """

    _parameter_constraints: dict = {
        "n_trees": [Interval(Integral, 1, None, closed="left")],
        "height": [Interval(Integral, 1, 30, closed="both")],
        "window_size": [Interval(Integral, 1, 2**31 - 1, closed="both")],
        "limits": [dict, "array-like", None],
        "seed": [Integral, None],
        "score_rule": [StrOptions({"path", "terminal"})],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],  # joblib's convention: 0 has no meaning
    }

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        limits: Mapping[Hashable, tuple[float, float]] | npt.ArrayLike | None = None,
        seed: int | None = None,
        score_rule: Literal["path", "terminal"] = "path",
        n_jobs: int | None = None,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.limits = limits
        self.seed = seed
        self.score_rule = score_rule
        self.n_jobs = n_jobs
        self._bind(HalfSpaceForest())
        self.reset()

    def _bind(self, core: HalfSpaceForest) -> None:
        # learn_one/score_one (compiled methods of the base class) read the
        # core from a C field: no Python frame and no look-up in __dict__ per
        # call.  Input they cannot take comes back to _learn_other/_score_other below.
        self._core = core
        self._set_core(core)

    def reset(self) -> HalfSpaceTrees:
        """Forget the trees and everything learned (and apply any parameter
        changed with ``set_params``).

        Returns
        -------
        self
        """
        validate_estimator_params(self)
        n_bytes = int(self.n_trees) * (2 ** (int(self.height) + 1) - 1) * _NODE_BYTES
        if n_bytes > _MAX_NODE_BYTES:
            raise ValueError(
                f"HalfSpaceTrees: n_trees={self.n_trees} and height={self.height} need "
                f"{n_bytes / 2**30:.1f} GiB of nodes (limit 8 GiB); lower height or n_trees"
            )
        self._check_limits()
        self._config = (int(self.n_trees), int(self.height), int(self.window_size), self.score_rule == "path")
        self._core._configure(*self._config)
        self.feature_names_in_ = None
        self.n_features_in_ = None
        self.limits_ = None
        self._first_window = None  # rows held until the limits are known
        self._n_held = 0
        self._first_window_lock = threading.Lock()
        return self

    def _check_limits(self):
        if self.limits is not None:
            values = list(self.limits.values()) if isinstance(self.limits, dict) else self.limits
            try:
                lim = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise ValueError("HalfSpaceTrees: limits must hold (low, high) pairs of numbers") from None
            if lim.ndim != 2 or lim.shape[1] != 2 or len(lim) == 0:
                raise ValueError(f"HalfSpaceTrees: limits must hold (low, high) pairs, got shape {lim.shape}")
            if not (np.isfinite(lim).all() and (lim[:, 0] < lim[:, 1]).all()):
                raise ValueError("HalfSpaceTrees: every pair in limits must be finite with low < high")

    # -- input -----------------------------------------------------------------
    def _set_features(self, names, n_features):
        if self.n_features_in_ is None:
            self.feature_names_in_ = names
            self.n_features_in_ = n_features
            self._core._set_key_order(tuple(names) if names is not None else tuple(range(n_features)))

    def _row(self, x, caller):
        """One point as a finite float64 vector in the internal feature order."""
        if isinstance(x, dict):
            if self.n_features_in_ is None:
                try:
                    names = sorted(x)
                except TypeError:
                    names = list(x)
                if not names:
                    raise ValueError(f"HalfSpaceTrees.{caller}: x is an empty dict")
                self._set_features(names, len(names))
            names = self.feature_names_in_
            if names is None:
                names = range(self.n_features_in_)
            try:
                row = np.array([x[k] for k in names], dtype=np.float64)
                if len(x) != len(names):
                    raise KeyError
            except KeyError:
                missing = [k for k in names if k not in x]
                extra = [k for k in x if k not in set(names)]
                raise ValueError(
                    f"HalfSpaceTrees.{caller}: x must have exactly the features {list(names)}; "
                    f"missing {missing}, unknown {extra}"
                ) from None
            except (TypeError, ValueError) as exc:
                raise TypeError(f"HalfSpaceTrees.{caller}: feature values must be numbers ({exc})") from None
        else:
            arr = np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"HalfSpaceTrees.{caller}: x must be numeric, got dtype {arr.dtype}")
            if arr.ndim != 1:
                raise ValueError(f"HalfSpaceTrees.{caller}: x must be a dict or a 1-D array, got shape {arr.shape}")
            if arr.shape[0] == 0:
                raise ValueError(f"HalfSpaceTrees.{caller}: x is empty")
            self._set_features(None, arr.shape[0])
            if arr.shape[0] != self.n_features_in_:
                raise ValueError(
                    f"HalfSpaceTrees.{caller}: x has {arr.shape[0]} features, expected {self.n_features_in_}"
                )
            row = np.ascontiguousarray(arr, dtype=np.float64)
        if not all_finite(row):
            raise ValueError(f"HalfSpaceTrees.{caller}: x must be finite (no NaN or infinity)")
        return row

    def _matrix(self, X, caller):
        """A batch as a C-contiguous finite float64 matrix in feature order."""
        if hasattr(X, "columns") and self.feature_names_in_ is not None:
            missing = [k for k in self.feature_names_in_ if k not in X.columns]
            if missing:
                raise ValueError(f"HalfSpaceTrees.{caller}: X lacks the features {missing}")
            X = X[self.feature_names_in_]
        X = check_array(X, dtype=np.float64, order="C", input_name="X", estimator=f"HalfSpaceTrees.{caller}")
        self._set_features(None, X.shape[1])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"HalfSpaceTrees.{caller}: X has {X.shape[1]} features, expected {self.n_features_in_}")
        return X

    # -- the first window ----------------------------------------------------------
    def _resolve_limits(self):
        d = self.n_features_in_
        if isinstance(self.limits, dict):
            names = self.feature_names_in_ if self.feature_names_in_ is not None else list(range(d))
            missing = [k for k in names if k not in self.limits]
            if missing:
                raise ValueError(f"HalfSpaceTrees: limits lacks the features {missing}")
            lim = np.array([self.limits[k] for k in names], dtype=np.float64)
        else:
            lim = np.asarray(self.limits, dtype=np.float64)
        if lim.shape != (d, 2):
            raise ValueError(f"HalfSpaceTrees: limits must give (low, high) for each of the {d} features")
        return lim

    def _draw_trees(self, lim):
        self.limits_ = lim
        # Python's Mersenne Twister, drawn in river's order: for limits (0, 1)
        # the trees are river's for the same seed.
        uniform = random.Random(None if self.seed is None else int(self.seed)).random
        self._core._build(uniform, np.ascontiguousarray(lim[:, 0]), np.ascontiguousarray(lim[:, 1]))

    def _hold(self, X):
        """Take rows of X into the first window while the limits are unknown;
        return the rows left over once the trees are drawn."""
        if self._core._is_built:
            return X
        with self._first_window_lock:  # one thread draws the trees
            return self._hold_locked(X)

    def _hold_locked(self, X):
        if self._core._is_built:
            return X
        if self.limits is not None:
            self._draw_trees(self._resolve_limits())
            return X
        if self._first_window is None:
            self._first_window = np.empty((int(self.window_size), self.n_features_in_))
        k = min(len(X), len(self._first_window) - self._n_held)
        self._first_window[self._n_held : self._n_held + k] = X[:k]
        self._n_held += k
        if self._n_held == len(self._first_window):
            held = self._first_window
            lim = np.column_stack([held.min(axis=0), held.max(axis=0)])
            if (lim[:, 0] == lim[:, 1]).all():
                lim += [-0.5, 0.5]
            self._draw_trees(lim)
            self._first_window, self._n_held = None, 0
            self._core._learn_many(held)
        return X[k:]

    # -- river-style API (fast paths in the compiled core) ------------------------
    def _learn_other(self, x):
        row = self._row(x, "learn_one")
        if self._core._is_built or len(self._hold(row[None, :])):
            self._core._learn_row(row)

    def _score_other(self, x):
        row = self._row(x, "score_one")
        return self._core._score_row(row) if self._core._is_built else 0.0

    # learn_one(x) and score_one(x) are methods of the compiled base
    # (HalfSpaceModelBase, reaching the core through a C field): a finite
    # float64 row of the right length, or a dict with exactly the model's keys
    # and finite float/int values, never leaves compiled code; any other input
    # comes back to the two methods above.  Named here so that they are the
    # model's own attributes (documented with it); the same objects as the base's.
    learn_one = HalfSpaceModelBase.learn_one
    score_one = HalfSpaceModelBase.score_one

    def mass_profile(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """Reference and latest masses of every node, each an int array of
        shape (n_trees, 2**(height + 1) - 1) in heap order (node i has
        children 2i + 1 and 2i + 2).  The reference mass counts the points of
        the last complete window, the latest mass those of the current one."""
        return self._core.mass_profile()

    @property
    def feature_names_(self) -> list[Hashable] | None:
        """Deprecated alias of ``feature_names_in_`` (removed in the next release)."""
        warnings.warn(
            "HalfSpaceTrees.feature_names_ is now feature_names_in_ (as in scikit-learn); "
            "the old name goes away in the next release",
            FutureWarning,
            stacklevel=2,
        )
        return self.feature_names_in_

    @property
    def n_features_(self) -> int | None:
        """Deprecated alias of ``n_features_in_`` (removed in the next release)."""
        warnings.warn(
            "HalfSpaceTrees.n_features_ is now n_features_in_ (as in scikit-learn); "
            "the old name goes away in the next release",
            FutureWarning,
            stacklevel=2,
        )
        return self.n_features_in_

    # -- batch API ---------------------------------------------------------------
    def _batch(self, X, learn, score):
        """Run a validated batch in the kernel, splitting the trees between
        threads when the batch is large enough (the kernel drops the GIL)."""
        n = len(X)
        n_threads = min(effective_n_jobs(self.n_jobs), int(self.n_trees), n // _MIN_ROWS_PER_THREAD)
        if n_threads <= 1 or not self._core._exact_sums:
            if learn and score:
                return self._core._score_learn_many(X)
            if score:
                return self._core._score_many(X)
            self._core._learn_many(X)
            return None
        bounds = np.linspace(0, int(self.n_trees), n_threads + 1).astype(int)
        raws = [np.zeros(n if score else 1) for _ in range(n_threads)]
        self._core._begin_threads(learn)  # see "Threads" in native/_hst.pyx
        try:
            with ThreadPoolExecutor(n_threads) as pool:
                jobs = [
                    pool.submit(self._core._run_tree_range, X, int(a), int(b), learn, score, raw)
                    for a, b, raw in zip(bounds[:-1], bounds[1:], raws)
                ]
                for job in jobs:
                    job.result()
            raw = raws[0]
            for other in raws[1:]:
                raw += other  # integers below 2**53: exact, as one thread would sum them
            self._core._finish_batch(n, learn, score, raw)
        finally:
            self._core._end_threads(learn)
        return raw if score else None

    def learn_many(self, X: npt.ArrayLike) -> HalfSpaceTrees:
        """Learn the rows of X in order (as ``learn_one`` on each).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        self
        """
        X = self._hold(self._matrix(X, "learn_many"))
        if len(X):
            self._batch(X, learn=True, score=False)
        return self

    def score_many(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Anomaly scores of the rows of X with the current model, without
        learning them.

        Returns
        -------
        ndarray of shape (n_samples,)
            In [0, 1], higher = more anomalous; 0.0 during the first window.
        """
        X = self._matrix(X, "score_many")
        if not self._core._is_built:
            return np.zeros(len(X))
        return self._batch(X, learn=False, score=True)

    def anomaly_score(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The same as :meth:`score_many` (in [0, 1], higher = more
        anomalous), under the name the rest of anomaly_fast uses, so a
        trained model can serve as an :class:`~anomaly_fast.AnomalyPipeline`
        detector (scoring does not learn)."""
        return self.score_many(X)

    def score_learn_many(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Score each row with the model as it stands, then learn it: the
        same as ``score_one`` followed by ``learn_one`` on each row in turn
        (prequential evaluation), with the loop in compiled code.

        Returns
        -------
        ndarray of shape (n_samples,)
            In [0, 1], higher = more anomalous; 0.0 during the first window.
        """
        X = self._matrix(X, "score_learn_many")
        n = len(X)
        rest = self._hold(X)
        scores = np.zeros(n)
        if len(rest):
            scores[n - len(rest) :] = self._batch(rest, learn=True, score=True)
        return scores

    # -- pickling: the parameters and fitted attributes, and the core's state,
    # validated before the core sees it --------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        kernel = (
            self._core._node_array(),
            self._core._window_index,
            self._core._n_seen_in_window,
            self.n_features_in_ or 0,
        )
        return {"params": {k: self.__dict__[k] for k in _PARAM_NAMES + _FITTED_NAMES}, "kernel": kernel}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state, dict) and isinstance(state.get("params"), dict):
            # pickles from before 0.2 name two fitted attributes without "_in"
            params = state["params"]
            renamed = {old: new for old, new in _OLD_NAMES.items() if old in params and new not in params}
            if renamed:
                state = {**state, "params": {renamed.get(k, k): v for k, v in params.items()}}
        attrs, kernel = _check_state(state)
        probe = type(self).__new__(type(self))  # the parameters, checked before anything changes
        probe.__dict__.update(attrs)
        validate_estimator_params(probe)
        probe._check_limits()
        core = HalfSpaceForest()
        core._configure(*attrs["_config"])
        core._load_nodes(*kernel)
        if attrs["n_features_in_"] is not None:
            names = attrs["feature_names_in_"]
            core._set_key_order(tuple(names) if names is not None else tuple(range(attrs["n_features_in_"])))
        self.__dict__.update(attrs)
        self._first_window_lock = threading.Lock()
        self._bind(core)
