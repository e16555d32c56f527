"""Ensembles of outlier detectors whose score calibration is fitted at train time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils import Bunch, check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checks import all_finite
from ._scores import (
    _OWN_DETECTORS,
    COMBINATIONS,
    NORMALIZATIONS,
    apply_calibration,
    combine_scores,
    fit_calibration,
    raw_anomaly_scores,
)
from ._sklearn_compat import BaseComposition as _BaseComposition
from ._sklearn_compat import Interval, StrOptions
from ._sklearn_compat import fit_context as _fit_context
from ._validation import check_state_fields, scoring_input
from .forest.base import BaseIsolationForest
from .forest.isolation_forest import IsolationForest
from .local_outlier_factor import LocalOutlierFactor, uniform_rows

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AnomalyEnsemble"]

AUTO_CONTAMINATION = 0.1  # "auto" flags the top 10% of training rows
_MIN_ROWS_PER_THREAD = 1024  # smaller batches score their detectors serially
# Training rows the calibrations and offset_ are fitted on (all rows below it,
# a uniform sample above): fit time stops growing with n beyond the members'
# own fits, and a rank calibration resolves 1/10,000.
CALIBRATION_ROWS = 10_000


def training_anomaly_scores(estimator, X, rows, scores=None):
    """Raw scores (higher = more anomalous) of the training rows ``X[rows]``
    as if they were new rows: a LocalOutlierFactor scores the rows it was
    fitted on without themselves as neighbour (``negative_outlier_factor_``;
    ``score_samples`` would count each as its own nearest neighbour and make
    training rows look more normal than new ones).  ``scores``: the
    detector's raw scores of ``X[rows]`` when already computed."""
    if scores is None and not hasattr(estimator, "negative_outlier_factor_"):
        return raw_anomaly_scores(estimator, X[rows])
    if isinstance(estimator, LocalOutlierFactor):
        scores = (raw_anomaly_scores(estimator, X[rows]) if scores is None else scores).copy()
        fitted = estimator.sample_indices_
        at = np.minimum(np.searchsorted(fitted, rows), fitted.shape[0] - 1)
        inside = fitted[at] == rows
        scores[inside] = -estimator.negative_outlier_factor_[at[inside]]
        return scores
    if hasattr(estimator, "negative_outlier_factor_"):  # scikit-learn's, fitted on every row
        return -np.asarray(estimator.negative_outlier_factor_, dtype=np.float64)[rows]
    return scores


class AnomalyEnsemble(OutlierMixin, _BaseComposition):
    """Combine several outlier detectors, each rescaled by a calibration
    fitted on its **training** scores.

    The usual recipe standardizes each detector's scores over the batch being
    scored, so one row alone always scores the same and a row's score depends
    on its neighbours in the batch.  Here every detector's raw score
    (``-score_samples``, or ``-decision_function``) is mapped to [0, 1] by a
    normalization fitted in ``fit``, then the detectors are combined row by
    row: a row gets exactly the same score alone as inside any batch (as long
    as each detector scores rows independently, which the defaults do).

    Score conventions:

    - ``anomaly_score(X)``: the combined score in [0, 1], **higher = more
      anomalous**.
    - ``score_samples(X) = -anomaly_score(X)``: scikit-learn's convention,
      **lower = more abnormal**, in [-1, 0].
    - ``decision_function(X) = score_samples(X) - offset_``: negative for
      outliers.
    - ``predict(X)`` in {-1, 1}, -1 for outliers; ``predict(X, threshold=t)``
      flags rows with ``anomaly_score > t`` instead.

    Parameters
    ----------
    detectors : list of (str, estimator) tuples, default=None
        Unfitted outlier detectors with ``fit`` and ``score_samples`` or
        ``decision_function``; they are cloned in ``fit``.  None means
        ``[("iforest", anomaly_fast.IsolationForest(random_state=...)),
        ("lof", anomaly_fast.LocalOutlierFactor(random_state=...))]``: the
        compiled LOF, fitted on a uniform subsample of at most 256 rows
        (``max_samples="auto"``, chosen on ADBench).  scikit-learn's
        ``LocalOutlierFactor(novelty=True)`` works as a member too (use
        ``algorithm="kd_tree"``: its brute force goes through BLAS, whose
        last bits can depend on the batch size).
    normalization : {"rank", "zscore", "minmax"}, default="rank"
        Map from each detector's raw scores to [0, 1], fitted on its
        training scores: ``"rank"`` is the empirical CDF (fraction of
        training rows scoring at most as high), ``"zscore"`` a robust z-score
        (median / 1.4826 MAD) through the standard normal CDF, ``"minmax"``
        the training min/max, clipped.  See :func:`fit_calibration`.
    combination : {"mean", "max", "median", "aom", "moa"}, default="mean"
        How the normalized scores are combined; ``"aom"`` is the average of
        the maxima of the detector ``groups`` and ``"moa"`` the maximum of
        their averages.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Fraction of training rows flagged by ``predict``: ``offset_`` is that
        percentile of ``score_samples`` on the calibration rows.  "auto" uses
        0.1 (the common default of PyOD).
    n_jobs : int, default=None
        Threads over detectors in ``fit`` and, for batches of at least 1024
        rows, in scoring (None = 1, -1 = all cores).  Results do not depend
        on it.
    weights : array-like of shape (n_detectors,), default=None
        Non-negative weights (not all zero) for a weighted mean; only with
        ``combination="mean"``.
    groups : list of list of str, default=None
        Detector names of each group for ``"aom"`` / ``"moa"``; every
        detector must be in exactly one group.  None puts each detector in
        its own group (then ``"aom"`` equals ``"mean"`` and ``"moa"`` equals
        ``"max"``).  Only with those two combinations.
    random_state : int, RandomState instance or None, default=None
        Seeds the default detectors and the calibration sample.  Detectors you
        pass keep their own ``random_state``.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted detectors, in order.
    named_estimators_ : Bunch
        The fitted detectors by name.
    calibrations_ : list of dict
        Fitted normalization of each detector (see :func:`fit_calibration`),
        on the calibration rows: every training row up to 10,000 rows, else
        a uniform sample of 10,000 (``random_state``).  A LocalOutlierFactor
        scores the rows it was fitted on without themselves as neighbour
        (see :func:`training_anomaly_scores`).
    offset_ : float
        Threshold subtracted in ``decision_function``: the ``contamination``
        percentile of ``score_samples`` of the calibration rows.
    threshold_ : float
        ``-offset_``: rows with ``anomaly_score > threshold_`` are outliers.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fit on a DataFrame with string column names.
    fill_values_ : ndarray of shape (n_features,)
        Per-feature median of the calibration rows' non-missing values (0.0
        for a feature with none): the value NaN takes for members that
        cannot score missing values.

    Notes
    -----
    Missing values (NaN) are accepted in ``fit`` and scoring: a member whose
    ``allow_nan`` tag is true (:class:`~anomaly_fast.IsolationForest`,
    :class:`~anomaly_fast.ExtendedIsolationForest`) sees them as they are;
    any other member (the default compiled LocalOutlierFactor, most
    scikit-learn detectors) sees them replaced by ``fill_values_``, at fit
    and at scoring alike.  Infinities and sparse input are refused.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import AnomalyEnsemble
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(400, 2))
    >>> ens = AnomalyEnsemble(random_state=0).fit(X)
    >>> print(ens.anomaly_score([[0.0, 0.0], [4.0, 4.0]]).round(4))
    [0.0888 1.    ]
    >>> ens.predict([[0.0, 0.0], [4.0, 4.0]])
    array([ 1, -1])
    >>> print(round(ens.threshold_, 4))
    0.8918
    >>> batch = ens.anomaly_score(X[:50])
    >>> bool(ens.anomaly_score(X[7:8])[0] == batch[7])
    True
    >>> parts = ens.score_components([[2.5, 0.0]])
    >>> print({name: round(float(v[0]), 4) for name, v in parts.items()})
    {'iforest': 0.975, 'lof': 0.955}
    """

    _parameter_constraints: dict = {
        "detectors": [list, None],
        "normalization": [StrOptions(set(NORMALIZATIONS))],
        "combination": [StrOptions(set(COMBINATIONS))],
        "weights": ["array-like", None],
        "groups": [list, None],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        detectors: list[tuple[str, BaseEstimator]] | None = None,
        normalization: Literal["rank", "zscore", "minmax"] = "rank",
        combination: Literal["mean", "max", "median", "aom", "moa"] = "mean",
        contamination: Literal["auto"] | float = "auto",
        n_jobs: int | None = None,
        *,
        weights: npt.ArrayLike | None = None,
        groups: list[list[str]] | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.detectors = detectors
        self.normalization = normalization
        self.combination = combination
        self.weights = weights
        self.groups = groups
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- parameters -----------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of the ensemble and, with ``deep=True``, of each
        detector as ``<name>__<param>``."""
        return self._get_params("detectors", deep=deep)

    def set_params(self, **params: Any) -> AnomalyEnsemble:
        """Set ensemble parameters, whole detectors (``<name>=est``) or
        detector parameters (``<name>__<param>=value``)."""
        self._set_params("detectors", **params)
        return self

    def _named_detectors(self):
        if self.detectors is None:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            return [
                ("iforest", IsolationForest(random_state=seed)),
                ("lof", LocalOutlierFactor(random_state=seed)),
            ]
        if len(self.detectors) == 0:
            raise ValueError("detectors must hold at least one (name, estimator) pair")
        names = []
        for item in self.detectors:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"detectors must be a list of (str, estimator) tuples, got {item!r}")
            name, est = item
            if "__" in name or not name:
                raise ValueError(f"detector name {name!r} must be non-empty without '__'")
            if not hasattr(est, "fit") or not (hasattr(est, "score_samples") or hasattr(est, "decision_function")):
                raise TypeError(
                    f"detector {name!r} ({type(est).__name__}) needs fit and "
                    "score_samples or decision_function (for LocalOutlierFactor "
                    "pass novelty=True)"
                )
            names.append(name)
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        clash = set(names) & set(self._parameter_constraints)
        if clash:
            raise ValueError(f"detector names {sorted(clash)} clash with ensemble parameters")
        return list(self.detectors)

    def _check_combination_params(self, names):
        weights, groups = None, None
        if self.weights is not None:
            if self.combination != "mean":
                raise ValueError(f"weights apply to combination='mean' only, got combination={self.combination!r}")
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (len(names),):
                raise ValueError(f"weights must have one value per detector ({len(names)}), got shape {weights.shape}")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights}")
        if self.groups is not None:
            if self.combination not in ("aom", "moa"):
                raise ValueError(
                    f"groups apply to combination 'aom' or 'moa' only, got combination={self.combination!r}"
                )
            index = {name: j for j, name in enumerate(names)}
            groups, seen = [], []
            for group in self.groups:
                if isinstance(group, str) or not hasattr(group, "__iter__") or len(group) == 0:
                    raise ValueError(f"each group must be a non-empty list of detector names, got {group!r}")
                unknown = [g for g in group if g not in index]
                if unknown:
                    raise ValueError(f"groups name unknown detectors {unknown}; detectors are {names}")
                groups.append([index[g] for g in group])
                seen.extend(group)
            if sorted(seen) != sorted(names):
                raise ValueError(f"groups must put every detector {names} in exactly one group, got {self.groups}")
        return weights, groups

    # -- fit ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: npt.ArrayLike, y: object = None) -> AnomalyEnsemble:
        """Fit every detector on ``X`` and the calibration of its scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric training data, at least 2 rows; NaN (missing values)
            accepted, +-inf refused (see the class Notes).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
        """
        named = self._named_detectors()
        names = [name for name, _ in named]
        self._weights, self._groups = self._check_combination_params(names)
        X = validate_data(self, X, dtype=np.float64, order="C", ensure_min_samples=2, ensure_all_finite="allow-nan")
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rows = uniform_rows(seed + 1, X.shape[0], CALIBRATION_ROWS)
        X_rows = X[rows]
        self.fill_values_ = training_medians(X_rows)
        has_missing = not all_finite(X)
        imputed = self._imputed(X, has_missing)
        estimators = [clone(est) for _, est in named]

        def fit_one(est):
            Xe = X if takes_nan(est) else imputed
            est.fit(Xe)
            scores = raw_anomaly_scores(est, Xe[rows], has_missing)  # as predict(X_train) scores them
            return scores, training_anomaly_scores(est, Xe, rows, scores)

        fitted = self._map(fit_one, estimators, parallel=True)
        for name, (scores, train_scores) in zip(names, fitted):
            self._check_scores(name, scores, rows.shape[0])
            self._check_scores(name, train_scores, rows.shape[0])
        self.estimators_ = estimators
        self.named_estimators_ = Bunch(**dict(zip(names, estimators)))
        self._names = names
        self.calibrations_ = [fit_calibration(t, self.normalization) for _, t in fitted]
        # offset_: predict(X_train) flags the contamination share of the rows
        components = [apply_calibration(c, s) for c, (s, _) in zip(self.calibrations_, fitted)]
        combined = combine_scores(components, self.combination, self._weights, self._groups)
        contamination = AUTO_CONTAMINATION if self.contamination == "auto" else self.contamination
        self.offset_ = float(np.percentile(-combined, 100.0 * contamination))
        self.threshold_ = -self.offset_
        self._lean_members = self._rank_mean_members()
        return self

    def _map(self, func, estimators, parallel):
        n_threads = min(effective_n_jobs(self.n_jobs), len(estimators))
        if not parallel or n_threads <= 1:
            return [func(est) for est in estimators]
        with ThreadPoolExecutor(n_threads) as pool:
            return list(pool.map(func, estimators))

    @staticmethod
    def _check_scores(name, scores, n_rows):
        if scores.shape != (n_rows,):
            raise ValueError(f"detector {name!r} returned scores of shape {scores.shape}, expected ({n_rows},)")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"detector {name!r} returned non-finite scores")

    def _imputed(self, X, has_missing):
        """X with its NaN replaced by ``fill_values_`` (X itself when it has
        none): what members that cannot take missing values see."""
        if not has_missing:
            return X
        fill = getattr(self, "fill_values_", None)
        if fill is None:
            raise ValueError(
                "Input X contains NaN, but this AnomalyEnsemble was fitted before missing "
                "values were supported; refit it to score rows with NaN."
            )
        return np.where(np.isnan(X), fill, X)

    # -- scoring --------------------------------------------------------------
    def _components(self, X):
        """Normalized per-detector scores of validated X."""
        has_missing = not all_finite(X)
        imputed = self._imputed(X, has_missing)

        def raw_scores(est):
            return raw_anomaly_scores(est, X if takes_nan(est) else imputed, has_missing)

        if X.shape[0] >= _MIN_ROWS_PER_THREAD:
            raw = self._map(raw_scores, self.estimators_, True)
        else:
            raw = [raw_scores(est) for est in self.estimators_]
        for name, est, scores in zip(self._names, self.estimators_, raw):
            if not isinstance(est, _OWN_DETECTORS):  # ours never return non-finite scores
                self._check_scores(name, scores, X.shape[0])
        return [apply_calibration(c, s) for c, s in zip(self.calibrations_, raw)]

    def _rank_mean_members(self):
        """For the default set-up (rank normalization, unweighted mean, only
        anomaly_fast detectors): (private scorer, sorted calibration scores,
        their count) per member, for the lean small-batch path; else None."""
        if self.normalization != "rank" or self.combination != "mean" or self._weights is not None:
            return None
        if not all(isinstance(est, _OWN_DETECTORS) for est in self.estimators_):
            return None
        return [
            (est._score_samples, c["sorted"], float(c["sorted"].shape[0]))
            for est, c in zip(self.estimators_, self.calibrations_)
        ]

    def _anomaly_score(self, X):
        lean = self.__dict__.get("_lean_members")
        if lean is not None and X.shape[0] < _MIN_ROWS_PER_THREAD and all_finite(X):
            # the arithmetic of raw_anomaly_scores, apply_calibration("rank") and
            # combine_scores("mean") in the same order, without their dispatch
            total = None
            for score, reference, count in lean:
                part = reference.searchsorted(-score(X), "right") / count
                total = part if total is None else total + part
            return total / float(len(lean))
        return combine_scores(self._components(X), self.combination, self._weights, self._groups)

    def anomaly_score(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Combined anomaly score in [0, 1], **higher = more anomalous**.

        A row's score does not depend on the other rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._anomaly_score(scoring_input(self, X, "calibrations_", allow_nan=True))

    def explain(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Per-feature contributions of the members that explain themselves
        (the isolation forests' :meth:`~anomaly_fast.IsolationForest.explain`;
        **positive = towards anomalous**), weighted as the ensemble weights
        its members.

        **Partial**: a member without ``explain`` (e.g.
        :class:`~anomaly_fast.LocalOutlierFactor`) contributes nothing, and
        its weight still counts in the total, so each explaining member
        keeps the share of the combined score it has.  Member ``i``'s
        contributions are multiplied by ``weights[i] / sum(weights)``
        (``weights`` given with ``combination="mean"``; otherwise every member
        weighs the same).  Each member's contributions are in its own units
        (an extended forest's sum to ``log2(2 * s)`` of its raw score ``s``,
        before the ensemble's calibration; an axis forest's are expected
        gains, not additive), so the sum of the ensemble's contributions is
        not a function of its combined score.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
            Zeros when no member explains itself.
        """
        return self._explain(scoring_input(self, X, "calibrations_"))

    def _explain(self, X):
        n = len(self.estimators_)
        weights = self._weights if self.combination == "mean" and self._weights is not None else np.ones(n)
        total = np.zeros(X.shape, dtype=np.float64)
        for w, est in zip(weights, self.estimators_):
            if w == 0:
                continue
            if isinstance(est, BaseIsolationForest):
                total += w * est._explain(X)[1]
            elif hasattr(est, "explain"):
                total += w * np.asarray(est.explain(X), dtype=np.float64)
        return total / float(np.sum(weights))

    def score_components(
        self, X: npt.ArrayLike, as_frame: bool = False
    ) -> dict[str, npt.NDArray[np.float64]] | pd.DataFrame:
        """Each detector's normalized score in [0, 1] (**higher = more
        anomalous**), to see which detector fired.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        as_frame : bool, default=False
            Return a pandas DataFrame (one column per detector, indexed like
            ``X`` when ``X`` is a DataFrame) instead of a dict.

        Returns
        -------
        dict of str to ndarray of shape (n_samples,), or pandas.DataFrame
        """
        index = getattr(X, "index", None)
        components = dict(zip(self._names, self._components(scoring_input(self, X, "calibrations_", allow_nan=True))))
        if not as_frame:
            return components
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("score_components(as_frame=True) needs pandas") from exc
        return pd.DataFrame(components, index=index)

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``-anomaly_score(X)``, in [-1, 0]: scikit-learn's convention,
        **lower = more abnormal**.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return -self.anomaly_score(X)

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for outliers, positive for
        inliers (scikit-learn's convention; lower = more abnormal)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike, threshold: float | None = None) -> npt.NDArray[np.int_]:
        """-1 for outliers, 1 for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        threshold : float in [0, 1], default=None
            Flag rows with ``anomaly_score > threshold``; None uses the
            fitted ``threshold_`` (i.e. ``decision_function(X) < 0``).

        Returns
        -------
        ndarray of int of shape (n_samples,)
        """
        if threshold is None:
            decision = self.decision_function(X)
        else:
            if isinstance(threshold, bool) or not isinstance(threshold, Real):
                raise TypeError(f"threshold must be a real number in [0, 1], got {threshold!r}")
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {threshold}")
            decision = threshold - self.anomaly_score(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    # -- pickling -------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: not the live __dict__
        for derived in ("named_estimators_", "threshold_", "_weights", "_groups", "_lean_members"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state):
        weights, groups = check_ensemble_state(state)
        super().__setstate__(state)
        self._weights, self._groups = weights, groups
        if "estimators_" in state:
            self.named_estimators_ = Bunch(**dict(zip(self._names, self.estimators_)))
            self.threshold_ = -self.offset_
            self._lean_members = self._rank_mean_members()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = False
        return tags


_FITTED = ("estimators_", "_names", "calibrations_", "offset_", "n_features_in_")
# fitted too, but absent from pickles of releases before missing values
_FITTED_SINCE_MISSING = ("fill_values_",)


def takes_nan(estimator):
    """Whether a fitted ensemble member scores NaN itself (its
    ``allow_nan`` tag); members that do not see NaN imputed."""
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - a member without scikit-learn tags (any error) takes no NaN
        return False


def training_medians(X):
    """Per-feature median of the non-missing values of ``X`` (0.0 for a
    feature with none): the fill of missing values for members that cannot
    take NaN."""
    out = np.zeros(X.shape[1])
    if X.shape[0] == 0:
        return out
    present = ~np.isnan(X).all(axis=0)
    if present.any():
        out[present] = np.nanmedian(X[:, present], axis=0)
    return out


_CALIBRATION_KEYS = {
    "rank": {"kind", "sorted"},
    "zscore": {"kind", "center", "scale"},
    "minmax": {"kind", "low", "high"},
}


def _finite_number(value):
    return not isinstance(value, bool) and isinstance(value, Real) and np.isfinite(value)


def check_ensemble_state(state):
    """Check a pickled AnomalyEnsemble state structurally before it is used;
    a bad state raises ValueError naming the field.  The members' own
    pickles are checked by their classes when they are restored (before this
    runs).  Derived fields (named_estimators_, threshold_, weights and groups)
    are not in the state: they are recomputed.  Returns (weights, groups)."""
    probe, fitted = check_state_fields(
        AnomalyEnsemble,
        state,
        _FITTED,
        optional=("feature_names_in_", "_sklearn_version") + _FITTED_SINCE_MISSING,
    )
    try:
        templates = probe._named_detectors()
        names = [name for name, _ in templates]
        weights, groups = probe._check_combination_params(names)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"AnomalyEnsemble state: {exc}") from None
    if not fitted:
        return weights, groups
    n_features = state["n_features_in_"]
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"AnomalyEnsemble state: n_features_in_ must be an int >= 1, got {n_features!r}")
    if state["_names"] != names:
        raise ValueError(f"AnomalyEnsemble state: _names must be the detector names {names}")
    estimators = state["estimators_"]
    if not isinstance(estimators, list) or len(estimators) != len(names):
        raise ValueError(f"AnomalyEnsemble state: estimators_ must be a list of {len(names)} fitted detectors")
    for (name, template), est in zip(templates, estimators):
        if type(est) is not type(template):
            raise ValueError(
                f"AnomalyEnsemble state: estimators_ entry {name!r} must be a {type(template).__name__}, "
                f"got {type(est).__name__}"
            )
        if getattr(est, "n_features_in_", n_features) != n_features:
            raise ValueError(
                f"AnomalyEnsemble state: estimators_ entry {name!r} has {est.n_features_in_} features, not {n_features}"
            )
        try:
            check_is_fitted(est)
        except Exception:  # noqa: BLE001 - NotFittedError, or a detector check_is_fitted cannot inspect
            raise ValueError(f"AnomalyEnsemble state: estimators_ entry {name!r} is not fitted") from None
    calibrations = state["calibrations_"]
    if not isinstance(calibrations, list) or len(calibrations) != len(names):
        raise ValueError(f"AnomalyEnsemble state: calibrations_ must be a list of {len(names)} dicts")
    kind = state["normalization"]
    for name, cal in zip(names, calibrations):
        where = f"AnomalyEnsemble state: calibrations_ entry {name!r}"
        if not isinstance(cal, dict) or set(cal) != _CALIBRATION_KEYS[kind] or cal["kind"] != kind:
            raise ValueError(f"{where} must be a {kind!r} calibration with keys {sorted(_CALIBRATION_KEYS[kind])}")
        if kind == "rank":
            ref = cal["sorted"]
            if not (isinstance(ref, np.ndarray) and ref.dtype == np.float64 and ref.ndim == 1 and ref.size > 0):
                raise ValueError(f"{where}: 'sorted' must be a non-empty 1-D float64 array")
            if not np.isfinite(ref).all() or np.any(np.diff(ref) < 0):
                raise ValueError(f"{where}: 'sorted' must be finite and non-decreasing")
        elif kind == "zscore":
            if not (_finite_number(cal["center"]) and _finite_number(cal["scale"]) and cal["scale"] >= 0):
                raise ValueError(f"{where}: center and scale must be finite, scale >= 0")
        elif not (_finite_number(cal["low"]) and _finite_number(cal["high"]) and cal["low"] <= cal["high"]):
            raise ValueError(f"{where}: low and high must be finite, low <= high")
    if not (_finite_number(state["offset_"]) and -1.0 <= state["offset_"] <= 0.0):
        raise ValueError(f"AnomalyEnsemble state: offset_ must be a finite number in [-1, 0], got {state['offset_']!r}")
    fill = state.get("fill_values_")
    if fill is not None and not (
        isinstance(fill, np.ndarray)
        and fill.dtype == np.float64
        and fill.shape == (n_features,)
        and np.isfinite(fill).all()
    ):
        raise ValueError(f"AnomalyEnsemble state: fill_values_ must be {n_features} finite float64 values")
    feature_names = state.get("feature_names_in_")
    if feature_names is not None and not (
        isinstance(feature_names, np.ndarray)
        and feature_names.shape == (n_features,)
        and all(isinstance(f, str) for f in feature_names)
    ):
        raise ValueError(f"AnomalyEnsemble state: feature_names_in_ must be {n_features} strings")
    return weights, groups
