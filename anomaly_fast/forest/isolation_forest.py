"""Isolation Forest with compiled tree building and scoring."""

import numpy as np

from .. import _isolation
from .base import BaseIsolationForest, TreeEntries, compact_trees, kernel_input

__all__ = ["IsolationForest"]


class IsolationForest(BaseIsolationForest):
    """Isolation Forest (Liu, Ting & Zhou 2008), a drop-in replacement for
    :class:`sklearn.ensemble.IsolationForest` with compiled kernels.

    Each tree is grown on a subsample of ``max_samples`` rows: a node picks a
    random feature among those not constant in it and a threshold uniform in
    (min, max) of that feature, until a node holds one point or the depth
    reaches ``ceil(log2(max_samples))``.  Trees and scoring run in C without
    the GIL; ``n_jobs`` spreads trees (fit) and row chunks (scoring) over
    threads, and results are identical for any ``n_jobs``.

    Score conventions (as scikit-learn):

    - ``score_samples(X) = -2 ** (-E[h(x)] / c(max_samples_))``: **lower =
      more abnormal**, in [-1, 0].
    - ``decision_function(X) = score_samples(X) - offset_``: negative for
      outliers.
    - ``predict(X)`` in {-1, 1}: -1 for outliers.
    - ``anomaly_score(X) = -score_samples(X)``: the paper's score in [0, 1],
      **higher = more anomalous**.

    Parameters
    ----------
    n_estimators : int, default=100
        Number of trees.
    max_samples : "auto", int or float, default="auto"
        Rows drawn per tree: ``min(256, n_samples)`` for "auto", an int
        count (capped at n_samples with a warning), or a fraction of n_samples.
    contamination : "auto" or float in (0, 0.5], default="auto"
        "auto" sets ``offset_ = -0.5`` (the paper's threshold); a float sets
        ``offset_`` to that percentile of the training scores.
    max_features : int or float, default=1.0
        Features drawn (without replacement) per tree; a float is a fraction
        of n_features.
    bootstrap : bool, default=False
        Draw each tree's rows with replacement.
    n_jobs : int, default=None
        Threads for fit and scoring (None = 1, -1 = all cores).
    random_state : int, RandomState instance or None, default=None
        Seeds the per-tree random streams.
    verbose : int, default=0
        Accepted for compatibility; the kernels print nothing.
    warm_start : bool, default=False
        Keep fitted trees and add ``n_estimators - n_fitted`` new ones.  A
        warm start to n trees equals a cold fit of n trees on the same data.

    Attributes
    ----------
    offset_ : float
        Threshold subtracted in ``decision_function``.
    max_samples_ : int
        Actual number of rows drawn per tree.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Feature names, when fit on a DataFrame with string column names.

    Notes
    -----
    Not mirrored from scikit-learn: ``estimators_``, ``estimators_samples_``
    and ``estimators_features_``.  The trees are one flat node array for the
    whole forest, walked by compiled kernels; scikit-learn's attributes are
    ``ExtraTreeRegressor`` objects whose ``tree_`` holds per-node training
    counts, impurities and values.  Code that walks them (explanation
    libraries such as SHAP's TreeExplainer) recognises scikit-learn's classes
    by name and reads those arrays, so look-alike objects would either be
    ignored or need arrays the model does not store (internal node sizes;
    the rows each tree drew, which only the per-tree seeds could redraw, and
    the saved format keeps no seeds).  Wrapping every tree in a Python object
    would also put a Python loop over trees into every caller.  scikit-learn's
    own ``test_iforest.py`` runs against this class in the test suite; its
    two ``estimators_`` tests are expected failures for this reason.
    Infinities are accepted (scikit-learn accepts them too, but a node
    holding -inf becomes a leaf there): a split is drawn uniformly over the
    finite values of the node's feature, so +inf always goes right and -inf
    left; when a node's finite values are all equal the split separates them
    from the infinities.  Data without infinities gives exactly the scores it
    gave before they were accepted.
    Missing values (NaN, pandas ``<NA>``, None in object arrays) are
    accepted with scikit-learn 1.9's semantics (its random splitter): a
    node's split is drawn over its non-missing values (a feature whose
    values there are all missing, or all equal with none missing, is
    skipped); where the node holds NaN in the split feature, the side its
    missing values go to is a coin flip (a split that leaves a side empty
    makes the node a leaf); where it held none, a NaN met when scoring goes
    to the child that received more training rows, ties to the right.  Each
    node stores that side (format ``anomaly_fast.forest/2`` and later); data without
    NaN is scored by the same kernels as before.
    Sparse input (``*_matrix`` and ``*_array``, any format; CSC for ``fit``
    and CSR for scoring avoid nothing: one conversion to CSR is made) gives
    the same model and scores as the dense matrix bit for bit: an absent
    entry is 0, a stored NaN is missing.  Fitting from CSC takes each
    tree's rows as the tree's own stored entries and tests a feature in a
    node on those entries alone (other formats: each tree's rows are
    gathered from the CSR arrays); scoring walks groups of sparse rows through the
    trees without densifying the matrix, in the same compiled kernels
    without the GIL, ``n_jobs`` as for dense input.  A CSC fit keeps the
    2 MiB blocks that held its trees' entries (32 MiB at most) for the next
    one in the process, which then need not fault in fresh pages.  The
    random streams differ from scikit-learn's, so scores are equal in
    distribution, not bit for bit.

    Thread safety: ``score_samples``, ``decision_function``, ``predict`` and
    ``anomaly_score`` may be called concurrently from any number of threads
    on one fitted model (results equal single-threaded ones): the fitted
    arrays are read-only, each call allocates its own scratch, nothing is
    built lazily, and the kernels release the GIL.  ``fit``, ``set_params``
    and a warm start must not run concurrently with them.

    Pickles and registry folders are checked structurally when loaded
    (:mod:`anomaly_fast.forest.format`): corrupted state gets a
    ``ValueError`` naming the field.  This cannot make an untrusted pickle
    safe; use :class:`~anomaly_fast.ModelRegistry`'s non-pickle format for
    models from untrusted sources.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import IsolationForest
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(size=(500, 2)), [[6.0, 6.0]]])
    >>> clf = IsolationForest(random_state=0).fit(X)
    >>> clf.predict([[0.0, 0.0], [6.0, 6.0]])
    array([ 1, -1])
    >>> bool(clf.anomaly_score([[6.0, 6.0]])[0] > 0.7)
    True
    """

    _forest_kind = "axis"
    _allow_missing = True

    def _new_tree_arrays(self, n_trees, width, n_features):
        return {
            "nodes": np.empty((n_trees, width), dtype=_isolation.AXIS_NODE_DTYPE),
            "values": np.empty((n_trees, width), dtype=np.float64),
            "missing": np.empty((n_trees, width), dtype=np.uint8),
            "ranges": np.empty((n_trees, width, 2), dtype=np.float64),
        }

    def _sparse_source(self, X, seeds, weights):
        # each tree's stored entries: the kernel tests features on them
        return X.tree_entries(seeds, self.max_samples_, self.bootstrap, weights, self._max_features, self.n_jobs)

    def _build(self, X, weights, seeds, arrays, rows, n_nodes, depths):
        entries = None
        if isinstance(X, TreeEntries):
            entries = X.of_trees(rows)
            X = np.empty((0, X.shape[1]))
        X, csr = kernel_input(X)
        _isolation.build_axis_trees(
            X,
            seeds,
            self.max_samples_,
            self.bootstrap,
            *weights,
            self._max_features,
            self._max_depth,
            arrays["nodes"][rows],
            arrays["values"][rows],
            arrays["missing"][rows],
            arrays["ranges"][rows].reshape(-1, arrays["ranges"].shape[1] * 2),
            n_nodes,
            depths,
            csr,
            entries,
        )

    def _make_forest(self, arrays, n_nodes, depths, previous):
        old = None
        if previous is not None:
            from .explain import split_ranges

            old = (
                previous.offsets,
                {
                    "nodes": previous.nodes,
                    "values": previous.values,
                    "missing": previous.missing,
                    "ranges": split_ranges(previous),  # derived if saved before ranges
                },
            )
            depths = np.concatenate([previous.depths, depths])
        flat, offsets = compact_trees(arrays, n_nodes, old)
        return _isolation.AxisForest(
            flat["nodes"],
            flat["values"],
            offsets,
            depths,
            self._denominator(len(offsets)),
            self.n_features_in_,
            trusted=True,  # built by the kernel
            missing=flat["missing"],
            ranges=flat["ranges"],
        )

    def _explain_layout(self, forest):
        from .explain import axis_explain_layout

        return _isolation.AxisExplainer(forest, *axis_explain_layout(forest, self.max_samples_))

    def _explain_chunk(self, forest, explainer, X, scores, phi):
        explainer.explain(X, scores, phi)
