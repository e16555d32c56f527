"""Local Outlier Factor for novelty detection, with compiled neighbour search."""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import Literal

import numpy as np
import numpy.typing as npt
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from . import _lof
from ._sklearn_compat import Interval, RealNotInt, StrOptions
from ._sklearn_compat import fit_context as _fit_context
from ._validation import check_state_fields, scoring_input
from .forest.base import _chunks

__all__ = ["LocalOutlierFactor"]

# Rows fitted by max_samples="auto": the smallest subsample of the grid
# 256..4096 whose IF + LOF ensemble kept ADBench mean ROC-AUC within 0.005 of
# the full-data LOF ensemble, on the sets it was chosen on and on the held-out
# half (benchmarks/ensemble.md, "Choosing max_samples").
AUTO_MAX_SAMPLES = 256
# algorithm="auto": a k-d tree up to this many features, brute force beyond:
# the measured crossover (benchmarks/ensemble.md, "k-d tree or brute force").
# With blocks of rows abandoned as soon as their partial distances exceed the
# k-th best, the tree is ahead even where it visits most leaves.
KD_TREE_MAX_FEATURES = 16
_MIN_ROWS_PER_THREAD = 256  # neighbour searches per thread below which one thread runs
_CHUNKS_PER_THREAD = 8  # chunks taken in turn by whichever thread is free
_GROUPED_MIN_ROWS = 32  # rows scored from which nearby rows share a search (fewer: one search each)
_METRIC_P = {"euclidean": 2.0, "manhattan": 1.0, "chebyshev": math.inf}


class LocalOutlierFactor(OutlierMixin, BaseEstimator):
    """Local Outlier Factor (Breunig et al. 2000) for novelty detection, with
    the neighbour search, densities and scores in compiled code.

    With ``max_samples=None`` the scores equal scikit-learn's
    ``LocalOutlierFactor(novelty=True)`` with the same ``n_neighbors``,
    metric and ``contamination`` (to rounding, ~1e-15 relative): the same
    k-distances, reachability distances, the same ``1e-10`` added to the mean
    reachability distance, and training rows scored without themselves as
    neighbour.  Duplicated rows are handled as scikit-learn does: a row never
    counts as its own neighbour, its duplicates do.  Among neighbours at
    exactly the same distance this class takes the one stored first (see
    Notes); scikit-learn's choice depends on its search algorithm.

    Score conventions:

    - ``score_samples(X)``: scikit-learn's ``-LOF(x)``, **lower = more
      abnormal** (about -1 for inliers).
    - ``decision_function(X) = score_samples(X) - offset_``: negative for
      outliers.
    - ``predict(X)`` in {-1, 1}: -1 for outliers.
    - ``anomaly_score(X) = LOF / (1 + LOF)`` with ``LOF = -score_samples(X)``:
      in [0, 1), **higher = more anomalous**; 0.5 is a row exactly as dense as
      its neighbours (LOF = 1), like the 0.5 of the isolation forest's score;
      strictly increasing in LOF, so it ranks rows exactly as LOF does.

    Parameters
    ----------
    n_neighbors : int, default=20
        Neighbours per row (capped at the fitted rows - 1, with a warning).
    algorithm : {"auto", "kd_tree", "brute"}, default="auto"
        Exact neighbour search: a k-d tree, or every fitted row.  Both find
        the same neighbours (up to the choice among rows at exactly the same
        distance); "auto" takes the k-d tree with at most 16 features, brute
        force otherwise (the measured crossover, ``benchmarks/ensemble.md``).
        One row is compared with eight fitted rows at a time (AVX2 where the
        CPU has it), a block dropped as soon as its partial distances exceed
        the k-th best so far.  With Euclidean distance, AVX2 and FMA, batches
        of 32 rows or more (and the fit) are searched by leaf: rows of one
        leaf walk the tree together and meet the fitted rows in tiles, where
        ``|q|^2 + |t|^2 - 2 q.t`` only filters with a proven rounding margin.
        Every distance kept is computed from coordinate differences in
        feature order (scikit-learn's trees' arithmetic, never a matrix
        product), so results do not depend on the batch, the grouping or the
        thread: a row scores the same alone or in any batch.
    leaf_size : int, default=64
        Rows per k-d tree leaf: between ``leaf_size`` and ``2 * leaf_size``
        (scikit-learn's rule), or all rows when there are fewer.  64 (against
        scikit-learn's 30) measured faster at 30,000 x 10 (one-row search:
        ~7 %; the grouped search: 32 and 16 were 10-30 % slower): rows are
        compared eight at a time, so larger leaves cost less per row than the
        extra tree nodes of smaller ones.
    metric : {"minkowski", "euclidean", "manhattan", "chebyshev"}, default="minkowski"
        Distance; "minkowski" uses ``p``.
    p : float >= 1, default=2
        Minkowski power (``inf`` for chebyshev); only with ``metric="minkowski"``.
    contamination : "auto" or float in (0, 0.5], default="auto"
        As scikit-learn: "auto" sets ``offset_ = -1.5``; a float sets it to
        that percentile of ``negative_outlier_factor_``.
    max_samples : "auto", int, float or None, default="auto"
        Rows the model is fitted on, drawn uniformly without replacement:
        ``min(256, n_samples)`` for "auto" (chosen on ADBench for the
        ensemble, see ``benchmarks/ensemble.md``: a subsample this small is
        less local than LOF on every row, and on ADBench the IF + LOF
        ensemble ranks anomalies at least as well with it), an int count
        (capped at n_samples), a fraction of n_samples, or None for every row
        (scikit-learn's LOF).
        Fit costs O(m log m) for m fitted rows and a query O(log m) (k-d tree)
        or O(m) (brute force), whatever n_samples is.
    n_jobs : int, default=None
        Threads over rows in fit and scoring (None = 1, -1 = all cores);
        results do not depend on it.
    random_state : int, RandomState instance or None, default=None
        Draws the ``max_samples`` rows.

    Attributes
    ----------
    negative_outlier_factor_ : ndarray of shape (n_samples_fit_,)
        ``-LOF`` of each fitted row with itself left out of its neighbours
        (scikit-learn's attribute), in the order of ``sample_indices_``.
    sample_indices_ : ndarray of shape (n_samples_fit_,)
        Sorted indices of the fitted rows in the training data.
    n_neighbors_ : int
    n_samples_fit_ : int
        Rows the model was fitted on (= ``max_samples_``).
    max_samples_ : int
    offset_ : float
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fit on a DataFrame with string column names.

    Notes
    -----
    Novelty detection only (scikit-learn's ``novelty=True``): ``predict`` and
    the scores are for new rows; ``negative_outlier_factor_`` holds the
    training rows' own scores.  Ties: when several rows lie at exactly the same
    distance on the k-th neighbour boundary, the row stored first in the
    search structure is kept; when the tied rows are duplicates of each other
    the scores do not depend on the choice.  Input is converted to float64.
    Scoring is thread-safe (nothing is written to the fitted model).

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import LocalOutlierFactor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(500, 2))
    >>> lof = LocalOutlierFactor(max_samples=None).fit(X)
    >>> print(lof.score_samples([[0.0, 0.0], [4.0, 4.0]]).round(4))
    [-0.9773 -4.8775]
    >>> lof.predict([[0.0, 0.0], [4.0, 4.0]])
    array([ 1, -1])
    >>> print(lof.anomaly_score([[0.0, 0.0], [4.0, 4.0]]).round(4))
    [0.4943 0.8299]
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [StrOptions({"auto", "kd_tree", "brute"})],
        "leaf_size": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(_lof.METRICS))],
        "p": [Interval(Real, 1, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "max_samples": [
            StrOptions({"auto"}),
            Interval(Integral, 2, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
            None,
        ],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_neighbors: int = 20,
        *,
        algorithm: Literal["auto", "kd_tree", "brute"] = "auto",
        leaf_size: int = 64,
        metric: Literal["minkowski", "euclidean", "manhattan", "chebyshev"] = "minkowski",
        p: float = 2,
        contamination: Literal["auto"] | float = "auto",
        max_samples: Literal["auto"] | int | float | None = "auto",
        n_jobs: int | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.contamination = contamination
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- fit ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: npt.ArrayLike, y: object = None) -> LocalOutlierFactor:
        """Fit the model on (a uniform subsample of) ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite numeric training data, at least 2 rows.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
        """
        X = validate_data(self, X, dtype=np.float64, order="C", ensure_min_samples=2)
        return self._fit_validated(X)

    def _fit_validated(self, X):
        """fit on validated C-contiguous float64 X (the ensemble's path)."""
        n = X.shape[0]
        m = self._resolve_max_samples(n)
        rows = uniform_rows(self.random_state, n, m)
        fit_X = X[rows] if m < n else X
        if self.n_neighbors > m:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is greater than the total number of "
                f"samples ({m}). n_neighbors will be set to (n_samples - 1) for estimation.",
                UserWarning,
            )
        self._fit_X = fit_X
        self._n_train = n
        self.sample_indices_ = rows
        self.n_samples_fit_ = self.max_samples_ = m
        self.n_neighbors_ = max(1, min(self.n_neighbors, m - 1))
        self._fit_method = self._resolve_algorithm(X.shape[1])
        self.negative_outlier_factor_ = self._build_index()
        if self.contamination == "auto":
            self.offset_ = -1.5
        else:
            self.offset_ = float(np.percentile(self.negative_outlier_factor_, 100.0 * self.contamination))
        return self

    def _resolve_max_samples(self, n):
        if self.max_samples is None:
            return n
        if self.max_samples == "auto":
            return min(AUTO_MAX_SAMPLES, n)
        if isinstance(self.max_samples, Integral):
            return min(int(self.max_samples), n)
        return max(2, int(self.max_samples * n))

    def _resolve_algorithm(self, n_features):
        if self.algorithm != "auto":
            return self.algorithm
        return "kd_tree" if n_features <= KD_TREE_MAX_FEATURES else "brute"

    def _metric_code_and_p(self):
        if self.metric == "minkowski":
            p = float(self.p)
            if p == 2.0:
                return _lof.METRICS["euclidean"], p
            if p == 1.0:
                return _lof.METRICS["manhattan"], p
            if math.isinf(p):
                return _lof.METRICS["chebyshev"], p
            return _lof.METRICS["minkowski"], p
        return _lof.METRICS[self.metric], _METRIC_P[self.metric]

    def _build_index(self):
        """Search structure, k-distances and densities of ``_fit_X``; returns
        ``negative_outlier_factor_`` (everything derived from ``_fit_X`` is
        recomputed here, in fit and when a pickle is restored)."""
        X = self._fit_X
        m, d = X.shape
        k = self.n_neighbors_
        metric, p = self._metric_code_and_p()
        if self._fit_method == "kd_tree":
            levels = _lof.kd_tree_levels(m, self.leaf_size)
            order, start, end = _lof.build_kd_tree(X, levels)
            points = X[order]
            lower = np.empty((start.shape[0], d))
            upper = np.empty((start.shape[0], d))
            _lof.node_bounds(points, start, end, lower, upper)
        else:
            order, points = None, X
            start = end = np.empty(0, dtype=np.intp)
            lower = upper = np.empty((0, d))
        columns = np.ascontiguousarray(points.T)
        empty = np.empty(0)
        search = _lof.LOFIndex(columns, start, end, lower, upper, metric, p, k, empty, empty)
        dist = np.empty((m, k))
        pos = np.empty((m, k), dtype=np.intp)
        if order is None:
            group = np.zeros(m, dtype=np.intp)
        else:  # a leaf's points are searched together
            group = leaf_of_points(start, end)
        self._run_chunks(m, lambda s: search.training_neighbors(points, group, s.start, s.stop, dist, pos))
        lrd = np.empty(m)
        _lof.reachability_densities(dist, pos, lrd)
        factors = np.empty(m)
        _lof.outlier_factors(pos, lrd, factors)
        self._index = _lof.LOFIndex(
            columns, start, end, lower, upper, metric, p, k, np.ascontiguousarray(dist[:, k - 1]), lrd
        )
        if order is None:
            return factors
        in_rows = np.empty(m)
        in_rows[order] = factors
        return in_rows

    def _run_chunks(self, n, func):
        """func(slice) over row chunks of range(n), on n_jobs threads."""
        n_threads = 1 if self.n_jobs in (None, 1) else min(effective_n_jobs(self.n_jobs), n // _MIN_ROWS_PER_THREAD)
        if n_threads <= 1:
            func(slice(0, n))
            return
        parts = _chunks(n, min(n // _MIN_ROWS_PER_THREAD, _CHUNKS_PER_THREAD * n_threads))
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(func, parts))

    # -- scoring --------------------------------------------------------------
    def _score_samples(self, X):
        """score_samples of validated C-contiguous float64 X."""
        out = np.empty(X.shape[0])
        index = self._index
        if X.shape[0] < _GROUPED_MIN_ROWS:
            index.score_samples(X, out)  # a few rows: one search each, no thread machinery
            return out
        # rows in leaf order, so that rows of one leaf share a search
        leaf = np.empty(X.shape[0], dtype=np.intp)
        index.leaves(X, leaf)
        order = np.argsort(leaf, kind="stable")
        X_sorted, leaf, sorted_out = X[order], leaf[order], np.empty(X.shape[0])
        self._run_chunks(X.shape[0], lambda s: index.score_grouped(X_sorted[s], leaf[s], sorted_out[s]))
        out[order] = sorted_out
        return out

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """scikit-learn's ``LocalOutlierFactor(novelty=True).score_samples``:
        ``-LOF(x)``, **lower = more abnormal** (inliers near -1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._score_samples(scoring_input(self, X, "_index"))

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for outliers, positive for
        inliers (scikit-learn's convention; lower = more abnormal)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int_]:
        """-1 for outliers (``decision_function(X) < 0``), 1 for inliers."""
        decision = self.decision_function(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    def anomaly_score(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``LOF / (1 + LOF)`` with ``LOF = -score_samples(X)``: in [0, 1),
        **higher = more anomalous**, 0.5 for a row as dense as its
        neighbours."""
        return anomaly_from_lof(-self.score_samples(X))

    # -- pickling -------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: not the live __dict__
        state.pop("_index", None)
        state.pop("negative_outlier_factor_", None)
        return state

    def __setstate__(self, state):
        check_state(state)
        super().__setstate__(state)
        if "_fit_X" in state:
            self.negative_outlier_factor_ = self._build_index()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def uniform_rows(random_state, n, m):
    """``min(m, n)`` distinct indices drawn uniformly from range(n), sorted,
    in O(m) time and memory when m is small next to n (the distinct values of
    iid draws are a uniformly random set given its size; a uniform subset of
    it is a uniform m-subset of range(n))."""
    if m >= n:
        return np.arange(n)
    rng = check_random_state(random_state)
    if 4 * m > n:
        return np.sort(rng.choice(n, m, replace=False))
    rows = np.unique(rng.randint(0, n, size=m + m // 4 + 16))
    while rows.shape[0] < m:
        rows = np.unique(np.concatenate([rows, rng.randint(0, n, size=m)]))
    return np.sort(rng.choice(rows, m, replace=False))


def leaf_of_points(start, end):
    """The leaf holding each point of a k-d tree built by ``_lof.build_kd_tree``
    (tree order), from the nodes' ``start``/``end`` slices."""
    first_leaf = start.shape[0] // 2
    return np.repeat(np.arange(first_leaf, start.shape[0]), end[first_leaf:] - start[first_leaf:])


def anomaly_from_lof(lof):
    """Map LOF values (``-score_samples``, > 0) to [0, 1): ``LOF / (1 + LOF)``,
    higher = more anomalous."""
    lof = np.asarray(lof, dtype=np.float64)
    return lof / (1.0 + lof)


_FITTED = (
    "_fit_X",
    "_n_train",
    "sample_indices_",
    "n_samples_fit_",
    "max_samples_",
    "n_neighbors_",
    "_fit_method",
    "offset_",
    "n_features_in_",
)


def check_state(state):
    """Check a pickled LocalOutlierFactor state structurally before anything
    is rebuilt from it; a bad state raises ValueError naming the field.
    Everything derived from the fitted rows (tree, k-distances, densities,
    ``negative_outlier_factor_``) is not in the state: it is recomputed."""
    _, fitted = check_state_fields(LocalOutlierFactor, state, _FITTED)
    if not fitted:
        return

    def integer(key, low):
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"LocalOutlierFactor state: {key} must be an int >= {low}, got {value!r}")
        return int(value)

    n_features = integer("n_features_in_", 1)
    m = integer("n_samples_fit_", 2)
    n_train = integer("_n_train", m)
    if integer("max_samples_", 2) != m:
        raise ValueError("LocalOutlierFactor state: max_samples_ must equal n_samples_fit_")
    if integer("n_neighbors_", 1) != max(1, min(state["n_neighbors"], m - 1)):
        raise ValueError("LocalOutlierFactor state: n_neighbors_ does not match n_neighbors and n_samples_fit_")
    X = state["_fit_X"]
    if not (isinstance(X, np.ndarray) and X.dtype == np.float64 and X.shape == (m, n_features)):
        raise ValueError(f"LocalOutlierFactor state: _fit_X must be a float64 array of shape ({m}, {n_features})")
    if not np.isfinite(X).all():
        raise ValueError("LocalOutlierFactor state: _fit_X holds NaN or infinity")
    state["_fit_X"] = np.ascontiguousarray(X)
    rows = state["sample_indices_"]
    if not (isinstance(rows, np.ndarray) and rows.dtype.kind in "iu" and rows.shape == (m,)):
        raise ValueError(f"LocalOutlierFactor state: sample_indices_ must be an int array of shape ({m},)")
    if rows[0] < 0 or rows[-1] >= n_train or np.any(np.diff(rows) <= 0):
        raise ValueError(f"LocalOutlierFactor state: sample_indices_ must be increasing indices in [0, {n_train})")
    if state["_fit_method"] not in ("kd_tree", "brute"):
        raise ValueError(
            f"LocalOutlierFactor state: _fit_method must be 'kd_tree' or 'brute', got {state['_fit_method']!r}"
        )
    offset = state["offset_"]
    if isinstance(offset, bool) or not isinstance(offset, Real) or not math.isfinite(offset):
        raise ValueError(f"LocalOutlierFactor state: offset_ must be a finite number, got {offset!r}")
    names = state.get("feature_names_in_")
    if names is not None and not (
        isinstance(names, np.ndarray) and names.shape == (n_features,) and all(isinstance(f, str) for f in names)
    ):
        raise ValueError(f"LocalOutlierFactor state: feature_names_in_ must be {n_features} strings")
