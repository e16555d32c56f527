"""Extended Isolation Forest (random hyperplane splits), compiled."""

from __future__ import annotations

from numbers import Integral
from typing import Literal

import numpy as np

from .. import _isolation
from .._checks import all_finite
from .._sklearn_compat import Interval, StrOptions
from .base import BaseIsolationForest, SparseRows, compact_trees, kernel_input

__all__ = ["ExtendedIsolationForest"]


class ExtendedIsolationForest(BaseIsolationForest):
    """Extended Isolation Forest (Hariri, Carrasco Kind & Brunner 2018) with a
    scikit-learn API and compiled kernels.

    Each node splits its points by a random hyperplane: a normal vector ``n``
    with ``extension_level + 1`` non-zero Gaussian coordinates (on features
    drawn among those not constant in the node; the rest zero) and an
    intercept point ``p`` drawn uniformly inside the node's bounding box.  A
    point goes left when ``(x - p) . n <= 0``.  ``extension_level=0`` gives
    axis-parallel splits, i.e. the standard Isolation Forest in distribution.
    A hyperplane may leave one side empty; that side becomes a leaf of size 0.

    With ``standardize=True`` (default) coordinate ``j`` of the normal is
    ``g_j / sd_j`` with ``g_j`` standard normal and ``sd_j`` the feature's
    standard deviation among the node's points: the hyperplane is drawn on
    standardised features, so, like the standard forest, the model does not
    depend on the features' units.  ``standardize=False`` uses raw ``g_j`` as
    in the paper, where a feature with a large scale dominates every normal.

    ``intercept="box"`` (default) draws the intercept point ``p`` uniformly in
    the node's bounding box, as in the paper; ``intercept="range"`` instead
    splits at a value drawn uniformly between the smallest and largest
    projection ``x . n`` of the node's points (isotree's rule for its
    ``ndim > 1`` models).  The box rule more often splits near the middle
    and may leave a side empty; see ``benchmarks/forest.md`` for how the two
    compare on ADBench.

    Score conventions (as scikit-learn's IsolationForest):

    - ``score_samples(X) = -2 ** (-E[h(x)] / c(max_samples_))``: **lower =
      more abnormal**, in [-1, 0].
    - ``decision_function(X) = score_samples(X) - offset_``; ``predict(X)`` in
      {-1, 1}, -1 for outliers.
    - ``anomaly_score(X) = -score_samples(X)``: in [0, 1], **higher = more
      anomalous**.

    Parameters
    ----------
    n_estimators, max_samples, contamination, max_features, bootstrap, n_jobs,
    random_state, verbose, warm_start
        As :class:`anomaly_fast.IsolationForest`.
    extension_level : int or None, default=None
        Non-zero coordinates of each normal minus one, in
        ``0 .. max_features_ - 1``.  None means fully extended
        (``max_features_ - 1``, i.e. ``n_features - 1`` by default).
    standardize : bool, default=True
        Draw normals on node-standardised features (scale-free); False for
        the paper's raw Gaussian coordinates.
    intercept : {"box", "range"}, default="box"
        Where a hyperplane crosses the node: through a point drawn uniformly
        in the node's bounding box (the paper), or at a value drawn uniformly
        over the node's projected range (isotree).

    Attributes
    ----------
    offset_, max_samples_, n_features_in_, feature_names_in_
        As :class:`anomaly_fast.IsolationForest`.
    extension_level_ : int
        The extension level used.

    Notes
    -----
    Thread safety: ``score_samples``, ``decision_function``, ``predict`` and
    ``anomaly_score`` may be called concurrently from any number of threads
    on one fitted model (results equal single-threaded ones): the fitted
    arrays are read-only, each call allocates its own scratch, nothing is
    built lazily, and the kernels release the GIL.  ``fit``, ``set_params``
    and a warm start must not run concurrently with them.

    Infinities are accepted.  A node's bounding box, standard deviations and
    (``intercept="range"``) projected range are taken over its finite values
    only, so every hyperplane's offset is finite.  A row with infinite
    coordinates is projected by one rule at fit and scoring: when its
    infinite products ``w_j * x_j`` all have one sign, its projection is that
    infinity (the row is beyond the hyperplane on that side); when they have
    both signs, the infinite coordinates are ignored (the sum of the finite
    products).  Data without infinities gives exactly the scores it gave
    before they were accepted.

    Missing values (NaN, pandas ``<NA>``, None in object arrays) are imputed
    per node, at fit and when scoring, as isotree's ``missing_action=
    "impute"`` (its default for ``ndim > 1``): a missing coordinate takes the
    mean of the node's finite training values of that feature (stored per
    hyperplane term, format ``anomaly_fast.forest/3``).  A node's box and
    standard deviations are taken over its non-missing values; a feature
    whose non-missing values there are all equal (or all missing) is not
    used by the node's normal.  Rows without NaN take the unchanged code
    path and scores.  A model saved before this (format ``/2`` or older)
    has no node means: it still scores NaN-free rows, and rows with NaN get
    a ``ValueError`` asking for a refit.  ``benchmarks/missing_values.md``
    compares the rule with isotree on ADBench with 10% and 30% of entries
    missing.

    Sparse input (any format, every ``extension_level``) gives the same
    model and scores as the dense matrix bit for bit (an absent entry is 0,
    a stored NaN is missing): fitting gathers each tree's rows from CSR
    arrays, and scoring densifies a few rows at a time into scratch (a
    hyperplane with many terms reads most features of a row anyway), never
    the whole matrix.

    Pickles and registry folders are checked structurally when loaded
    (:mod:`anomaly_fast.forest.format`): corrupted state gets a
    ``ValueError`` naming the field.  This cannot make an untrusted pickle
    safe; use :class:`~anomaly_fast.ModelRegistry`'s non-pickle format for
    models from untrusted sources.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import ExtendedIsolationForest
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(size=(500, 3)), [[5.0, 5.0, 5.0]]])
    >>> eif = ExtendedIsolationForest(random_state=0).fit(X)
    >>> eif.extension_level_
    2
    >>> eif.predict([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseIsolationForest._parameter_constraints,
        "extension_level": [Interval(Integral, 0, None, closed="left"), None],
        "standardize": ["boolean"],
        "intercept": [StrOptions({"box", "range"})],
    }

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_samples: Literal["auto"] | int | float = "auto",
        contamination: Literal["auto"] | float = "auto",
        max_features: int | float = 1.0,
        bootstrap: bool = False,
        n_jobs: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        extension_level: int | None = None,
        standardize: bool = True,
        intercept: Literal["box", "range"] = "box",
    ) -> None:
        super().__init__(
            n_estimators=n_estimators,
            max_samples=max_samples,
            contamination=contamination,
            max_features=max_features,
            bootstrap=bootstrap,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
        )
        self.extension_level = extension_level
        self.standardize = standardize
        self.intercept = intercept

    def _check_extra_params(self, n_features):
        limit = self._max_features - 1
        if self.extension_level is None:
            level = limit
        elif self.extension_level > limit:
            raise ValueError(
                f"extension_level must be in [0, {limit}] (max_features_ - 1 for "
                f"{n_features} features), got {self.extension_level}"
            )
        else:
            level = int(self.extension_level)
        previous = getattr(self, "extension_level_", None)
        if self.warm_start and hasattr(self, "_forest") and previous != level:
            raise ValueError(f"extension_level cannot change between warm-start fits ({previous} -> {level})")
        self.extension_level_ = level

    _forest_kind = "hyperplane"
    _allow_missing = True

    def _tree_width(self, max_samples, max_depth):
        # A hyperplane may leave one child empty, so a node of n points can
        # split without shrinking; at most max_samples // 2 nodes per level
        # can split (each needs 2 points), bounded by the complete tree.
        return min(2 ** (max_depth + 1) - 1, max_depth * max_samples + 1)

    def _new_tree_arrays(self, n_trees, width, n_features):
        k = self.extension_level_ + 1
        return {
            "nodes": np.empty((n_trees, width), dtype=_isolation.HYPERPLANE_NODE_DTYPE),
            "values": np.empty((n_trees, width), dtype=np.float64),
            "normals": np.empty((n_trees, width, k), dtype=np.float64),
            "terms": np.empty((n_trees, width, k), dtype=np.int32),
            "fills": np.empty((n_trees, width, k), dtype=np.float64),
        }

    def _build(self, X, weights, seeds, arrays, rows, n_nodes, depths):
        n_trees, width, k = arrays["normals"][rows].shape
        X, csr = kernel_input(X)
        _isolation.build_hyperplane_trees(
            X,
            seeds,
            self.max_samples_,
            self.bootstrap,
            *weights,
            self._max_features,
            k,
            self.standardize,
            self.intercept == "range",
            self._max_depth,
            arrays["nodes"][rows],
            arrays["values"][rows],
            arrays["normals"][rows].reshape(n_trees, width * k),
            arrays["terms"][rows].reshape(n_trees, width * k),
            arrays["fills"][rows].reshape(n_trees, width * k),
            n_nodes,
            depths,
            csr,
        )

    def _make_forest(self, arrays, n_nodes, depths, previous):
        old = None
        if previous is not None:
            old_arrays = {
                "nodes": previous.nodes,
                "values": previous.values,
                "normals": previous.normals,
                "terms": previous.terms,
            }
            if previous.fills is None:  # saved before fills: the forest stays without
                arrays = {key: value for key, value in arrays.items() if key != "fills"}
            else:
                old_arrays["fills"] = previous.fills
            old = (previous.offsets, old_arrays)
            depths = np.concatenate([previous.depths, depths])
        flat, offsets = compact_trees(arrays, n_nodes, old)
        return _isolation.HyperplaneForest(
            flat["nodes"],
            flat["values"],
            flat["normals"],
            flat["terms"],
            offsets,
            depths,
            self._denominator(len(offsets)),
            self.n_features_in_,
            trusted=True,  # built by the kernel
            fills=flat.get("fills"),
        )

    def _fit_reference(self, X):
        # explain's reference point: the per-feature mean of the finite
        # training values (0 for a feature with none; an absent sparse entry is 0)
        if isinstance(X, SparseRows):
            data, indices = X.csr[0], X.csr[1]
            finite = np.isfinite(data)
            n_features = X.shape[1]
            sums = np.bincount(indices[finite], weights=data[finite], minlength=n_features)
            counts = X.shape[0] - np.bincount(indices[~finite], minlength=n_features)
        elif all_finite(X):  # the usual case: one pass over X, no temporary copies (same sums)
            counts = np.full(X.shape[1], X.shape[0])
            sums = X.sum(axis=0, dtype=np.float64)
        else:
            finite = np.isfinite(X)
            counts = finite.sum(axis=0)
            sums = np.where(finite, X, 0.0).sum(axis=0, dtype=np.float64)
        self._explain_center = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)

    def _explain_chunk(self, forest, gains, X, scores, phi):
        if np.isnan(X).any():  # the hyperplane explain walk has no missing-value rule
            raise ValueError(
                "ExtendedIsolationForest.explain does not take missing values (NaN); "
                "score_samples does (node-mean imputation)"
            )
        center = getattr(self, "_explain_center", None)
        if center is None:  # a model saved before explanations: the origin
            center = np.zeros(self.n_features_in_, dtype=np.float64)
        _isolation.hyperplane_explain(
            forest.nodes,
            forest.values,
            np.ascontiguousarray(forest.normals),
            np.ascontiguousarray(forest.terms),
            gains,
            center,
            forest.offsets,
            X,
            forest.denominator,
            scores,
            phi,
        )
