"""Shared machinery of the isolation-forest estimators.

The estimators in :mod:`anomaly_fast.forest.isolation_forest` and
:mod:`anomaly_fast.forest.extended_isolation_forest` differ only in the kernel that
builds and walks their trees.  This module validates input once, draws one
seed per tree, spreads trees (fit) or row chunks (scoring) over threads, and
implements scikit-learn's score conventions on top of the kernels.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from .. import _isolation
from .._checks import all_finite
from .._sklearn_compat import Interval, RealNotInt, StrOptions, check_sample_weight
from .._sklearn_compat import fit_context as _fit_context
from .._validation import POSITIONAL, scoring_data

__all__ = ["average_path_length"]

EULER_GAMMA = 0.5772156649015329
_FLOAT_CHARS = "fd"  # dtype.char of float32 / float64
_FAST_PATH_MAX_ROWS = 1024  # small C-contiguous float batches skip validate_data
_CHUNKS_PER_THREAD = 8  # scoring chunks per thread (dynamic load balance)
_MIN_ROWS_PER_THREAD = 2048  # below this a batch is scored on one thread
_MAX_TREE_ENTRIES = 2**22  # beyond this many per-tree copies of stored entries, fit from the union of rows
_MIN_THREAD_ENTRIES = 2**18  # stored entries per thread taking a CSC matrix's entries for the trees


def average_path_length(n_samples: npt.ArrayLike) -> float | npt.NDArray[np.float64]:
    """c(n): average path length of an unsuccessful search in a binary search
    tree of ``n`` points, used to normalise isolation depths.

    ``c(n) = 2 (ln(n - 1) + 0.5772156649) - 2 (n - 1) / n`` for n > 2,
    ``c(2) = 1`` and ``c(n) = 0`` for n <= 1 (as scikit-learn).

    Parameters
    ----------
    n_samples : int or array-like of int

    Returns
    -------
    float or ndarray of float
    """
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros_like(n)
    big = n > 2
    out[n == 2] = 1.0
    nb = n[big]
    out[big] = 2.0 * (np.log(nb - 1.0) + EULER_GAMMA) - 2.0 * (nb - 1.0) / nb
    return out if out.ndim else float(out)


def max_depth_for(max_samples):
    """Depth limit of a tree grown on ``max_samples`` rows:
    ``ceil(log2(max(max_samples, 2)))``."""
    return int(np.ceil(np.log2(max(max_samples, 2))))


def compact_trees(per_tree, n_nodes, previous=None):
    """Concatenate the first ``n_nodes[t]`` entries of each row ``t`` of every
    array in ``per_tree`` (a dict of (n_trees, width, ...) arrays), after the
    flat arrays of ``previous`` (same keys) if given.

    Returns the dict of flat arrays and the int64 start offset of each tree.
    """
    n_nodes = np.ascontiguousarray(n_nodes, dtype=np.int32)
    flat = {key: _isolation.compact_rows(arr, n_nodes) for key, arr in per_tree.items()}
    starts = np.concatenate([[0], np.cumsum(n_nodes[:-1], dtype=np.int64)])
    if previous is not None:
        old_offsets, old = previous
        n_old_nodes = next(iter(old.values())).shape[0]
        flat = {key: np.concatenate([old[key], flat[key]]) for key in flat}
        starts = np.concatenate([old_offsets, starts + n_old_nodes])
    return flat, starts.astype(np.int64)


class SparseRows:
    """A validated sparse matrix as the kernels read it: canonical CSR
    arrays (float64 values, intp indices sorted within each row, no
    duplicate entries) and its shape.  ``csr`` is the tuple the kernels take.

    A CSC matrix is kept as it is until its CSR arrays are needed: ``fit``
    takes only the rows its trees draw from it (:meth:`for_trees`)."""

    __slots__ = ("_csc", "_csr", "shape")

    def __init__(self, X):
        self.shape = X.shape
        self._csr = None
        self._csc = X if X.format == "csc" else None
        if self._csc is None:
            self._csr = _canonical_csr(X)

    @classmethod
    def _of_csr(cls, csr, shape):
        rows = cls.__new__(cls)
        rows._csc, rows._csr, rows.shape = None, csr, shape
        return rows

    @property
    def csr(self):
        if self._csr is None:
            self._csr = _canonical_csr(self._csc)
        return self._csr

    @property
    def has_nan(self):
        if self._csr is not None:
            return bool(np.isnan(self._csr[0]).any())
        return bool(np.isnan(self._csc.data[: self._csc.indptr[-1]]).any())

    def _csc_arrays(self):
        """(data, indices, indptr) of the CSC matrix for the take kernels,
        ``indptr`` checked (row indices are checked by the kernels)."""
        X = self._csc
        indices = X.indices if X.indices.dtype in (np.int32, np.int64) else X.indices.astype(np.int64)
        indptr = np.ascontiguousarray(X.indptr, dtype=np.intp)
        if (
            indptr.shape != (X.shape[1] + 1,)
            or indptr[0] != 0
            or np.any(np.diff(indptr) < 0)
            or indptr[-1] > min(X.data.shape[0], indices.shape[0])
        ):
            raise ValueError("sparse matrix has inconsistent indptr/indices arrays")
        return np.ascontiguousarray(X.data), np.ascontiguousarray(indices), indptr

    def for_trees(self, seeds, max_samples, bootstrap, weights, max_features):
        """The rows the trees of ``seeds`` draw (the build kernels' own
        draws), for the build kernels: from a CSC matrix only those rows, in
        one compiled pass over its row indices, instead of converting it
        whole (a non-canonical CSC matrix is converted); else ``self``."""
        if self._csr is not None or self.shape[0] >= 2**31:  # the rows go into int32 scratch
            return self
        n, d = self.shape
        arrays = self._csc_arrays()
        rows = _isolation.draw_tree_rows(seeds, n, max_samples, bootstrap, *weights, d, max_features)
        mask = np.zeros(n, dtype=np.uint8)
        mask[rows.ravel()] = 1
        csr = _isolation.csc_take_rows(*arrays, n, mask)
        return self if csr is None else SparseRows._of_csr(csr, self.shape)

    def tree_entries(self, seeds, max_samples, bootstrap, weights, max_features, n_jobs=None):
        """Each tree's subsample as its own stored entries
        (:class:`TreeEntries`, for the axis build kernel's sparse-aware
        node tests), taken from a CSC matrix in one compiled pass over its
        columns (ranges of columns in ``n_jobs`` threads for a large
        matrix); :meth:`for_trees` when that would hold many copies of the
        matrix's entries (large subsamples) or the matrix is not CSC."""
        n, d = self.shape
        if self._csr is not None or n >= 2**31:
            return self
        draws = len(seeds) * max_samples
        nnz = self._csc.indptr[-1]
        if draws > 2 * n and nnz * (draws / n) > _MAX_TREE_ENTRIES:
            return self.for_trees(seeds, max_samples, bootstrap, weights, max_features)
        arrays = self._csc_arrays()
        # the draws' random states go with the entries: the builds take them up instead of drawing again
        rows, states = _isolation.draw_tree_rows(seeds, n, max_samples, bootstrap, *weights, d, max_features, True)
        tree_draws = _isolation.csc_tree_draws(n, rows, seeds, states)
        n_threads = 1 if n_jobs in (None, 1) else min(effective_n_jobs(n_jobs), d, max(1, nnz // _MIN_THREAD_ENTRIES))
        # column ranges holding near-equal numbers of entries
        bounds = np.unique(np.searchsorted(arrays[2], np.linspace(0, nnz, n_threads + 1)[1:-1]))
        bounds = [0, *(int(b) for b in bounds if 0 < b < d), d]

        def take(k):
            return _isolation.csc_tree_entries(*arrays, tree_draws, bounds[k], bounds[k + 1])

        if len(bounds) == 2:
            parts = (take(0),)
        else:
            with ThreadPoolExecutor(len(bounds) - 1) as pool:
                parts = tuple(pool.map(take, range(len(bounds) - 1)))
        if any(part is None for part in parts):  # not canonical: converted whole
            return self
        return TreeEntries(parts, self.shape)


class TreeEntries:
    """The subsample of every tree of a fit as the tree's stored entries
    (:func:`anomaly_fast._isolation.csc_tree_entries`): ``parts``, one
    ``TreeEntryChunks`` per range of columns in column order, hold per tree
    its entries there (per entry its column, the position of its row in the
    tree's subsample and its value) in column order."""

    __slots__ = ("parts", "shape")

    def __init__(self, parts, shape):
        self.parts = parts
        self.shape = shape

    def of_tree(self, t):
        """Tree t's entries, a ``TREE_ENTRY_DTYPE`` array."""
        return np.concatenate([part.tree(t) for part in self.parts])

    def of_trees(self, trees):
        """The build kernel's ``entries`` for the trees of the slice ``trees``."""
        return self.parts, trees.start


def _canonical_csr(X):
    """(data, indices, indptr, n_cols) of sparse ``X`` in canonical CSR form,
    checked so that the kernels never index out of bounds."""
    if hasattr(X, "check_format"):  # CSR/CSC/BSR: scipy's conversion trusts the indices
        try:
            X.check_format(full_check=True)
        except ValueError as exc:
            raise ValueError(f"sparse matrix has inconsistent indptr/indices arrays: {exc}") from None
    X = X.tocsr()  # one conversion from CSC or COO; the same object when CSR
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()  # also sorts the indices
    data = np.ascontiguousarray(X.data, dtype=np.float64)  # float32 widens exactly
    indices = np.ascontiguousarray(X.indices, dtype=np.intp)
    indptr = np.ascontiguousarray(X.indptr, dtype=np.intp)
    # The kernels write at these indices: arrays edited in place after
    # scipy checked them get a ValueError here, never a bad write.
    if (
        indptr.shape != (X.shape[0] + 1,)
        or indptr[0] != 0
        or np.any(np.diff(indptr) < 0)
        or indptr[-1] > min(data.shape[0], indices.shape[0])
        or (indptr[-1] > 0 and (indices[: indptr[-1]].min() < 0 or indices[: indptr[-1]].max() >= X.shape[1]))
    ):
        raise ValueError("sparse matrix has inconsistent indptr/indices arrays")
    return (data, indices, indptr, X.shape[1])


def kernel_input(X):
    """``(dense, csr)`` for the build kernels: validated dense ``X`` and
    None, or for :class:`SparseRows` an empty (0, n_features) array and its
    CSR arrays."""
    if isinstance(X, SparseRows):
        return np.empty((0, X.shape[1])), X.csr
    return X, None


def _chunks(n, n_parts):
    """Split range(n) into at most n_parts contiguous, near-equal slices."""
    n_parts = max(1, min(n_parts, n))
    bounds = np.linspace(0, n, n_parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class BaseIsolationForest(OutlierMixin, BaseEstimator):
    """Common base of :class:`IsolationForest` and
    :class:`ExtendedIsolationForest`; not public."""

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_samples": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "max_features": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "bootstrap": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
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
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # -- hooks for subclasses -------------------------------------------------
    def _tree_width(self, max_samples, max_depth):
        """Most nodes one tree can have: both children of a split are
        non-empty, so at most 2 * max_samples - 1."""
        return 2 * max_samples - 1

    def _new_tree_arrays(self, n_trees, width, n_features):
        """Allocate per-tree output arrays for the build kernel."""
        raise NotImplementedError

    def _build(self, X, weights, seeds, arrays, rows, n_nodes, depths):
        """Run the build kernel for trees ``rows`` (a slice) of ``arrays``,
        writing node counts and depths into ``n_nodes`` and ``depths``;
        ``weights`` is the pair from ``_row_weights``."""
        raise NotImplementedError

    def _make_forest(self, arrays, n_nodes, depths, previous):
        """Compact the per-tree arrays (appended to ``previous`` trees on a
        warm start) into the fitted kernel object."""
        raise NotImplementedError

    def _sparse_source(self, X, seeds, weights):
        """What ``_build`` reads for sparse ``X`` (:class:`SparseRows`): the
        rows the trees draw (:meth:`SparseRows.for_trees`)."""
        return X.for_trees(seeds, self.max_samples_, self.bootstrap, weights, self._max_features)

    def _check_extra_params(self, n_features):
        """Subclass parameter checks that need the data's shape."""

    def _fit_reference(self, X):
        """Keep what :meth:`explain` needs from the training data (nothing
        for axis trees)."""

    # Which tree format of :mod:`anomaly_fast.forest.format` (the arrays,
    # their dtypes and checks) the subclass's kernel uses.
    _forest_kind = None

    def _export(self):
        """The fitted model as plain numpy arrays and a JSON-able dict, enough
        for :meth:`_import` to rebuild it without pickle (used by
        :mod:`anomaly_fast.pipeline.registry` and by pickling)."""
        from .format import export_forest

        check_is_fitted(self)
        return export_forest(self)

    @classmethod
    def _import(cls, params, arrays, state, fmt=None):
        """Rebuild a model from ``get_params()``-style ``params`` and the
        output of :meth:`_export`, after the structural checks of
        :func:`anomaly_fast.forest.format.check_forest` (a ``ValueError``
        naming the bad field)."""
        from .format import FORMAT, import_forest

        return import_forest(cls(**params), arrays, state, fmt or FORMAT)

    def __getstate__(self):
        # The kernel object is replaced by its checked array format, so that
        # unpickling rebuilds the scoring layout only from checked arrays.
        from .format import FORMAT

        state = dict(super().__getstate__())  # may be self.__dict__ itself
        state.pop("_explain_cache", None)  # derived from the forest when needed
        if state.pop("_forest", None) is not None:
            arrays, forest_state = self._export()
            for key in forest_state["fitted"]:
                state.pop(key, None)
            state["_forest_state"] = {"format": FORMAT, "arrays": arrays, "state": forest_state}
        return state

    def __setstate__(self, state):
        from .format import import_forest, pickled_forest

        state = dict(state)
        saved = pickled_forest(self._forest_kind, state)  # popped from state, not yet checked
        super().__setstate__(state)
        if saved is not None:
            import_forest(self, saved["arrays"], saved["state"], saved["format"])

    # -- fit ------------------------------------------------------------------
    def _row_weights(self, sample_weight, X):
        """(weights, cumulative weights) for the build kernel; empty arrays
        when rows are drawn uniformly."""
        empty = np.empty(0, dtype=np.float64)
        if sample_weight is None:
            return empty, empty
        w = check_sample_weight(sample_weight, X, dtype=np.float64, non_negative=True)
        w = np.ascontiguousarray(w)
        if np.all(w == w[0]):
            return empty, empty
        n_positive = int(np.count_nonzero(w))
        if not self.bootstrap and n_positive < self.max_samples_:
            raise ValueError(
                f"sample_weight has {n_positive} positive entries, fewer than "
                f"max_samples_={self.max_samples_} rows to draw without "
                "replacement; use bootstrap=True or a smaller max_samples"
            )
        return w, np.cumsum(w)

    def _resolve_max_samples(self, n_samples):
        if self.max_samples == "auto":
            return min(256, n_samples)
        if isinstance(self.max_samples, Integral):
            if self.max_samples > n_samples:
                warnings.warn(
                    f"max_samples ({self.max_samples}) is greater than the total "
                    f"number of samples ({n_samples}); max_samples will be set "
                    "to n_samples for estimation.",
                    UserWarning,
                )
                return n_samples
            return int(self.max_samples)
        return max(1, int(self.max_samples * n_samples))

    def _resolve_max_features(self, n_features):
        if isinstance(self.max_features, Integral):
            if self.max_features > n_features:
                raise ValueError(f"max_features must be <= n_features ({n_features}), got {self.max_features}")
            return int(self.max_features)
        return max(1, int(self.max_features * n_features))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: npt.ArrayLike | sp.spmatrix | sp.sparray, y: object = None, sample_weight: npt.ArrayLike | None = None
    ) -> BaseIsolationForest:
        """Fit the forest on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric training data (float32 is kept as float32; other
            numeric types are converted to float64).  Sparse matrices and
            arrays of any format are accepted and give the same model as the
            dense matrix (a stored NaN is missing, an absent entry is 0):
            from CSC (as scikit-learn) ``IsolationForest`` takes only the rows
            its trees draw, without converting the matrix; other formats are
            converted to CSR once.
            +-inf is accepted: splits are drawn over a node's finite values
            only, so +inf lies beyond every split (right) and -inf before it
            (left).  NaN (missing values) where the estimator supports them
            (:class:`IsolationForest`); see the estimator's Notes.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: each tree draws its rows with probability
            proportional to them (as scikit-learn), with or without
            replacement according to ``bootstrap``.  Zero-weight rows are
            never drawn.  Equal weights are the same as None.

        Returns
        -------
        self : object
        """
        X, has_missing = self._validate(X, reset=True)
        n_samples, n_features = X.shape
        self.max_samples_ = self._resolve_max_samples(n_samples)
        self._max_features = self._resolve_max_features(n_features)
        self._check_extra_params(n_features)
        self._fit_reference(X)
        weights = self._row_weights(sample_weight, X)
        max_depth = max_depth_for(self.max_samples_)

        previous = getattr(self, "_forest", None) if self.warm_start else None
        n_old = previous.n_trees if previous is not None else 0
        if n_old > self.n_estimators:
            raise ValueError(
                f"n_estimators={self.n_estimators} must be larger or equal to "
                f"the {n_old} trees already fitted when warm_start==True"
            )
        # One seed per tree, drawn for all n_estimators so that a warm start
        # from k trees to n trees equals a cold fit of n trees.
        random_state = check_random_state(self.random_state)
        all_seeds = random_state.randint(np.iinfo(np.int64).max, size=self.n_estimators, dtype=np.int64).astype(
            np.uint64
        )
        seeds = all_seeds[n_old:]
        self._max_depth = max_depth
        if len(seeds) == 0:
            warnings.warn(
                "Warm-start fitting without increasing n_estimators does not fit new trees.",
                UserWarning,
            )
        else:
            width = self._tree_width(self.max_samples_, max_depth)
            arrays = self._new_tree_arrays(len(seeds), width, n_features)
            n_nodes = np.zeros(len(seeds), dtype=np.int32)
            depths = np.zeros(len(seeds), dtype=np.int32)
            n_threads = min(effective_n_jobs(self.n_jobs), len(seeds))
            parts = _chunks(len(seeds), n_threads)

            source = X
            if isinstance(X, SparseRows):
                source = self._sparse_source(X, seeds, weights)

            def build(rows):
                self._build(source, weights, seeds[rows], arrays, rows, n_nodes[rows], depths[rows])

            if len(parts) == 1:
                build(parts[0])
            else:
                with ThreadPoolExecutor(len(parts)) as pool:
                    list(pool.map(build, parts))
            self._forest = self._make_forest(arrays, n_nodes, depths, previous)

        if self.contamination == "auto":
            self.offset_ = -0.5
        else:
            if has_missing is None:
                has_missing = X.has_nan
            self.offset_ = float(np.percentile(self._score_samples(X, has_missing), 100.0 * self.contamination))
        return self

    def _denominator(self, n_trees):
        return float(n_trees * average_path_length(self.max_samples_))

    # -- scoring --------------------------------------------------------------
    def _validate_for_scoring(self, X):
        # Fast path for small float batches (single-row service latency):
        # the same checks validate_data makes, without its overhead.
        if (
            type(X) is np.ndarray
            and X.ndim == 2
            and 0 < X.shape[0] <= _FAST_PATH_MAX_ROWS
            and X.dtype.char in _FLOAT_CHARS
            and X.flags.c_contiguous
            and hasattr(self, "_forest")
            and X.shape[1] == self.n_features_in_
            and all_finite(X)
        ):
            if hasattr(self, "feature_names_in_") and not POSITIONAL.get():  # as validate_data would
                warnings.warn(
                    f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names",
                    UserWarning,
                    stacklevel=3,
                )
            return X, False
        check_is_fitted(self)
        return self._validate(X, reset=False)

    # Whether the kernels take NaN (missing values); else NaN is refused.
    _allow_missing = False

    def _validate(self, X, reset):
        """``(X, has_missing)``: X validated to C-contiguous float (None in an
        object array becomes NaN) or to :class:`SparseRows` (sparse input of
        any format), and whether it holds NaN (None: not looked at, for
        sparse X at fit).
        +-inf are accepted (the kernels route them beyond every finite
        split); NaN only when the estimator supports missing values."""
        check_params = dict(
            accept_sparse=["csr", "csc"] if reset else ["csr"],
            dtype=[np.float64, np.float32],
            order="C",
            ensure_all_finite=False,
        )
        X = validate_data(self, X, reset=True, **check_params) if reset else scoring_data(self, X, **check_params)
        if sp.issparse(X):
            X = SparseRows(X)
            # fit reads the flag only to score X for offset_ (the build
            # kernels find NaN per tree): None, that pass over the values
            # left to then
            has_missing = None if reset and self._allow_missing else X.has_nan
        else:
            has_missing = not all_finite(X) and bool(np.isnan(X).any())
        if has_missing and not self._allow_missing:
            raise ValueError(
                f"Input X contains NaN. {type(self).__name__} does not accept missing values encoded as NaN natively."
            )
        if has_missing and not reset and not getattr(self._forest, "missing_ready", True):
            raise ValueError(
                f"Input X contains NaN, but this {type(self).__name__} was saved "
                "before missing values were supported (forest format /2 or "
                "older); refit it to score rows with NaN."
            )
        return X, has_missing

    def _score_samples(self, X, has_missing=False):
        """score_samples on validated, C-contiguous float X (``has_missing``:
        X holds NaN, walked by the missing-aware kernel)."""
        n = X.shape[0]
        out = np.empty(n, dtype=np.float64)
        forest = self._forest
        if not self._over_row_chunks(n, lambda s: self._score_chunk(forest, X, out[s], has_missing, s)):
            self._score_chunk(forest, X, out, has_missing)
        return out

    def _over_row_chunks(self, n, work, min_rows=_MIN_ROWS_PER_THREAD):
        """Call ``work(rows)`` on slices covering range(n) on ``n_jobs``
        threads when each gets at least ``min_rows`` rows and return True;
        return False (nothing called) when one thread should do it all."""
        if n < 2 * min_rows or self.n_jobs in (None, 1):
            return False
        n_threads = min(effective_n_jobs(self.n_jobs), n // min_rows)
        if n_threads <= 1:
            return False
        # More chunks than threads, taken in turn by whichever thread is
        # free: a core slowed by other work does fewer of them.
        parts = _chunks(n, min(n // min_rows, _CHUNKS_PER_THREAD * n_threads))
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, parts))
        return True

    def score_samples(self, X: npt.ArrayLike | sp.spmatrix | sp.sparray) -> npt.NDArray[np.float64]:
        """Opposite of the anomaly score defined in the original paper
        (scikit-learn's convention): **lower = more abnormal**.

        ``score_samples(X) = -2 ** (-E[h(x)] / c(max_samples_))`` where h is
        the path length of x in a tree and c the average path length.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,), values in [-1, 0]
        """
        return self._score_samples(*self._validate_for_scoring(X))

    @staticmethod
    def _score_chunk(forest, X, out, has_missing, rows=None):
        """Score rows ``rows`` (a slice; all when None) of validated ``X``
        into ``out``."""
        if isinstance(X, SparseRows):
            rows = rows or slice(0, X.shape[0])
            forest.score_csr(X.csr, rows.start, rows.stop, out, has_missing)
        elif rows is not None:
            BaseIsolationForest._score_chunk(forest, X[rows], out, has_missing)
        elif has_missing:
            forest.score_samples(X, out, has_missing=True)
        else:
            forest.score_samples(X, out)

    # -- explanations ---------------------------------------------------------
    def explain(self, X: npt.ArrayLike | sp.spmatrix | sp.sparray) -> npt.NDArray[np.float64]:
        """Per-feature contributions to each row's anomaly score:
        **positive = pushes the row towards anomalous**.

        Computed in the same compiled walk as the score (GIL released,
        ``n_jobs`` threads over rows as in scoring), one pass over the row's
        path in each tree: DIFFI's idea (depth-based credit along the path,
        Carletti et al. 2023), where each split the row passes credits the
        isolation it brings.  A node of ``n`` training rows leaves an expected
        ``c(n)`` steps to go, so a step into a child of ``n_child`` rows brings
        ``c(n) - 1 - c(n_child)``: positive when the row is cut off from most
        of the node, negative when it stays with the crowd.  This costs one
        walk, where exact TreeSHAP on isolation depth takes milliseconds per
        row.

        - :class:`IsolationForest` (axis splits) credits the split feature
          with the step's **expected** isolation over the threshold's random
          draw rather than the one drawn: each split keeps the range
          ``[lo, hi]`` of its feature's training values in the node (the
          threshold was uniform in it), and the credit is ``c(n) - 1 -
          E[c(n_child)]`` for a row at ``x_f`` among ``n`` rows spread evenly
          over ``[lo, hi]``, the range extended to ``x_f`` when the row lies
          outside it (a threshold between the row and the node's rows
          isolates it).  So a value inside the node's range earns between
          about -0.39 (the middle) and 1 (an end), a value beyond it up to
          ``c(n) - 1`` the further out it lies, and the coin flip of where
          the threshold fell no longer adds noise of about one step to a
          random feature at every split: on planted anomalies (7 standard
          deviations in one feature of 50) the planted feature ranks first
          for 97-100% of rows, against 50-66% for the realized gain (see
          ``benchmarks/explain.md``).  **Not additive**: the contributions
          sum to the path's expected isolation, which follows
          ``log2(2 * anomaly_score)`` but does not equal it.  A forest saved
          before ranges were kept explains with ranges derived from its
          thresholds (:func:`~anomaly_fast.forest.explain.split_ranges`).
        - :class:`ExtendedIsolationForest` (hyperplane splits) shares a
          step's realized gain, when positive, among the normal's features in
          proportion to ``|w_j (x_j - mean_j)|`` (the features that put the
          row where it is relative to the hyperplane; ``mean_j`` is the mean
          of feature j's finite training values, kept at fit -- a forest
          saved before explanations existed measures from 0).  A negative
          gain (the row stays with the crowd) is spread evenly over all
          features: shared by ``|w_j (x_j - mean_j)|`` it went mostly to the
          feature that makes the row stand out, which then lost at every
          step what it won at the isolating ones (planted feature ranked
          first for 86-89% of rows at d = 50, 100% now; see
          ``benchmarks/explain.md``).  **Additive**:
          ``explain(X).sum(axis=1) == log2(2 * anomaly_score(X))`` up to
          rounding (the gains along a path telescope to ``c(max_samples_) -
          h(x)``, divided by ``n_trees * c(max_samples_)``): 0 at the paper's
          threshold 0.5, positive above it.

        Both:

        - **Signed**: a feature that keeps the row among many training rows
          gets a negative contribution (under EIF all features share such a
          step evenly); every contribution is finite.
        - A step that a missing value (NaN, :class:`IsolationForest` only)
          routed credits no feature: a missing feature's contribution is 0.
          Infinities are routed as in scoring and credited like any value
          (an infinite value beyond a split's range is isolated for certain;
          a hyperplane step gain that an infinite coordinate decides goes to the
          infinite features).
        - Rows are independent (one row equals the same row in a batch) and
          results do not depend on ``n_jobs``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Validated as for :meth:`score_samples`.

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)

        Examples
        --------
        >>> import numpy as np
        >>> from anomaly_fast import IsolationForest
        >>> X = np.random.RandomState(0).normal(size=(1000, 3))
        >>> model = IsolationForest(random_state=0).fit(X)
        >>> phi = model.explain([[0.0, 6.0, 0.0]])
        >>> print(np.round(phi, 3))
        [[-0.043  0.71  -0.038]]
        >>> from anomaly_fast import ExtendedIsolationForest
        >>> eif = ExtendedIsolationForest(random_state=0).fit(X)
        >>> phi = eif.explain([[0.0, 6.0, 0.0]])
        >>> score = eif.anomaly_score([[0.0, 6.0, 0.0]])[0]
        >>> print(round(float(phi.sum()), 4), round(float(np.log2(2 * score)), 4))
        0.3937 0.3937
        """
        return self._explain(*self._validate_for_scoring(X))[1]

    def _explain(self, X, has_missing=False):
        """``(score_samples, contributions)`` of validated X from one walk."""
        if isinstance(X, SparseRows):
            raise TypeError(
                "explain does not take sparse input (contributions are dense): "
                "pass a dense array, e.g. X.toarray() for the rows to explain"
            )
        X = np.ascontiguousarray(X, dtype=np.float64)  # float32 widens exactly
        n = X.shape[0]
        scores = np.empty(n, dtype=np.float64)
        phi = np.empty(X.shape, dtype=np.float64)
        forest = self._forest
        gains = self._explain_gains(forest)
        if n < _MIN_ROWS_PER_THREAD // 4:  # one thread in any case: no slicing
            self._explain_chunk(forest, gains, X, scores, phi)
        elif not self._over_row_chunks(
            n,
            lambda s: self._explain_chunk(forest, gains, X[s], scores[s], phi[s]),
            min_rows=_MIN_ROWS_PER_THREAD // 8,
        ):
            self._explain_chunk(forest, gains, X, scores, phi)
        return scores, phi

    def _explain_gains(self, forest):
        """The per-node gains of ``forest`` in the subclass's explain layout
        (:meth:`_explain_layout`), computed on first use and kept with the
        forest they belong to (not pickled; a race computes them twice,
        identically)."""
        cache = self.__dict__.get("_explain_cache")
        if cache is None or cache[0] is not forest:
            cache = (forest, self._explain_layout(forest))
            self._explain_cache = cache
        return cache[1]

    def _explain_layout(self, forest):
        """What the subclass's explain kernel reads besides the forest (the
        realized per-node gains of :func:`~anomaly_fast.forest.explain.node_gains`
        unless the subclass says otherwise)."""
        from .explain import node_gains

        return node_gains(forest, self.max_samples_)

    def _explain_chunk(self, forest, gains, X, scores, phi):
        """Run the subclass's explain kernel on a slice of rows."""
        raise NotImplementedError

    def anomaly_score(self, X: npt.ArrayLike | sp.spmatrix | sp.sparray) -> npt.NDArray[np.float64]:
        """The paper's anomaly score ``2 ** (-E[h(x)] / c(max_samples_))``, in
        [0, 1], **higher = more anomalous** (equals ``-score_samples(X)``)."""
        return -self.score_samples(X)

    def decision_function(self, X: npt.ArrayLike | sp.spmatrix | sp.sparray) -> npt.NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for outliers, positive for
        inliers (scikit-learn's convention; lower = more abnormal)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike | sp.spmatrix | sp.sparray) -> npt.NDArray[np.int_]:
        """Predict whether each row is an outlier: ``-1`` for outliers, ``1``
        for inliers (``decision_function(X) < 0`` is an outlier)."""
        decision = self.decision_function(X)
        is_inlier = np.ones(decision.shape[0], dtype=int)
        is_inlier[decision < 0] = -1
        return is_inlier

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_missing
        tags.input_tags.sparse = True
        return tags

    @property
    def _max_samples(self):
        # scikit-learn's private name for max_samples_ (its BaseBagging's),
        # read by its own test suite
        return self.max_samples_
