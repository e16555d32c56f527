"""Score direction and calibration: the one home of both.

**Direction.**  scikit-learn's ``score_samples`` and ``decision_function``
are *lower = more abnormal*; anomaly_fast's ``anomaly_score``, the pipeline's
scores and every metric in :mod:`anomaly_fast.evaluation` are *higher = more
anomalous*.  The conversions live here: :func:`raw_anomaly_scores` (a
detector's own scale, negated) and :func:`anomaly_scores` (``anomaly_score``
when the detector has one).

**Calibration.**  :func:`fit_calibration` / :func:`apply_calibration` map raw
scores (higher = more anomalous) to [0, 1] ("rank", "zscore", "minmax"),
:func:`combine_scores` combines calibrated scores of several detectors, and
:func:`unit_scores` / :func:`calibrated_unit_scores` give the [0, 1] scores
the alert pipeline compares with its threshold (NaN where a detector gave a
non-finite score).
"""

import numpy as np
from scipy.special import ndtr

from .forest.base import BaseIsolationForest
from .local_outlier_factor import LocalOutlierFactor

__all__ = [
    "COMBINATIONS",
    "NORMALIZATIONS",
    "anomaly_scores",
    "apply_calibration",
    "calibrated_unit_scores",
    "combine_scores",
    "fit_calibration",
    "negated_scores",
    "raw_anomaly_scores",
    "unit_scores",
]

NORMALIZATIONS = ("rank", "zscore", "minmax")
COMBINATIONS = ("mean", "max", "median", "aom", "moa")
MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal -> its sigma
MEAN_ABS_TO_SIGMA = 1.2533141373155003  # sqrt(pi / 2): mean |x - mu| -> sigma
# Our own detectors take validated C-contiguous float64 arrays through their
# private _score_samples (sklearn convention): no second validation per call.
_OWN_DETECTORS = (BaseIsolationForest, LocalOutlierFactor)


# -- calibration: raw scores -> [0, 1] ------------------------------------------
def fit_calibration(train_scores, normalization):
    """Fit the map from raw anomaly scores (higher = more anomalous) to [0, 1].

    Parameters
    ----------
    train_scores : ndarray of shape (n_samples,)
        Finite raw scores of the training rows, higher = more anomalous.
    normalization : {"rank", "zscore", "minmax"}
        ``"rank"``: empirical CDF of the training scores.  ``"zscore"``:
        robust z-score ``(s - median) / (1.4826 MAD)`` squashed to [0, 1] by
        the standard normal CDF (MAD = 0 falls back to 1.2533 x the mean
        absolute deviation from the median; both 0 means constant training
        scores, and any score above / at / below them maps to 1 / 0.5 / 0).
        ``"minmax"``: ``(s - min) / (max - min)`` clipped to [0, 1] (a
        constant training score maps anything above it to 1, else 0).

    Returns
    -------
    dict
        Parameters for :func:`apply_calibration`.
    """
    s = np.asarray(train_scores, dtype=np.float64)
    if normalization == "rank":
        return {"kind": "rank", "sorted": np.sort(s)}
    if normalization == "zscore":
        center = float(np.median(s))
        deviation = np.abs(s - center)
        scale = MAD_TO_SIGMA * float(np.median(deviation))
        if scale == 0.0:
            scale = MEAN_ABS_TO_SIGMA * float(np.mean(deviation))
        return {"kind": "zscore", "center": center, "scale": scale}
    if normalization == "minmax":
        return {"kind": "minmax", "low": float(s.min()), "high": float(s.max())}
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def apply_calibration(calibration, scores):
    """Map raw scores (higher = more anomalous) to [0, 1] with a calibration
    from :func:`fit_calibration`.  Every row is mapped on its own, so a row's
    value never depends on the other rows of the batch."""
    s = scores if type(scores) is np.ndarray and scores.dtype == np.float64 else np.asarray(scores, dtype=np.float64)
    kind = calibration["kind"]
    if kind == "rank":
        reference = calibration["sorted"]
        return reference.searchsorted(s, side="right") / float(reference.shape[0])
    if kind == "zscore":
        center, scale = calibration["center"], calibration["scale"]
        if scale == 0.0:
            return np.where(s > center, 1.0, np.where(s < center, 0.0, 0.5))
        return ndtr((s - center) / scale)
    low, high = calibration["low"], calibration["high"]
    if high == low:
        return (s > high).astype(np.float64)
    return np.clip((s - low) / (high - low), 0.0, 1.0)


def combine_scores(components, combination, weights=None, groups=None):
    """Combine per-detector scores in [0, 1] into one score per row.

    Parameters
    ----------
    components : list of ndarray of shape (n_samples,)
        One normalized score array per detector.
    combination : {"mean", "max", "median", "aom", "moa"}
        ``"mean"`` (weighted by ``weights`` when given), ``"max"``,
        ``"median"``, ``"aom"`` (average over groups of the maximum inside
        each group) and ``"moa"`` (maximum over groups of the mean inside each
        group).
    weights : ndarray of shape (n_detectors,), optional
        Non-negative weights for ``"mean"``.
    groups : list of list of int, optional
        Detector indices of each group for ``"aom"`` / ``"moa"``; None puts
        every detector in its own group.

    Returns
    -------
    ndarray of shape (n_samples,)
        Row by row, independent of the other rows.
    """
    if combination == "mean":
        if weights is None:
            return _mean(components)
        total = components[0] * weights[0]
        for w, c in zip(weights[1:], components[1:]):
            total = total + w * c
        return total / float(np.sum(weights))
    if combination == "max":
        return np.maximum.reduce(components)
    if combination == "median":
        return np.median(np.stack(components, axis=1), axis=1)
    if groups is None:
        groups = [[j] for j in range(len(components))]
    if combination == "aom":
        return _mean([np.maximum.reduce([components[j] for j in g]) for g in groups])
    if combination == "moa":
        return np.maximum.reduce([_mean([components[j] for j in g]) for g in groups])
    raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")


def _mean(arrays):
    total = arrays[0]
    for a in arrays[1:]:
        total = total + a
    return total / float(len(arrays))


# -- direction: higher = more anomalous ------------------------------------------
def raw_anomaly_scores(estimator, X, has_missing=False):
    """Scores of a fitted outlier detector on its own scale, **higher = more
    anomalous**: ``-score_samples(X)`` when it has ``score_samples``, else
    ``-decision_function(X)``.  anomaly_fast's own detectors score ``X``
    through their private scorer without validating it again: ``X`` must be
    validated C-contiguous float64 (use :func:`anomaly_scores` otherwise;
    ``has_missing``: X holds NaN, for the forests' missing-aware walk)."""
    if isinstance(estimator, BaseIsolationForest):
        return -estimator._score_samples(X, has_missing)
    if isinstance(estimator, _OWN_DETECTORS):
        return -estimator._score_samples(X)
    return negated_scores(estimator, X)


def negated_scores(estimator, X):
    """``-score_samples(X)`` (else ``-decision_function(X)``) of a fitted
    detector: its own scale turned to **higher = more anomalous**, through
    the public methods (which validate ``X``)."""
    if hasattr(estimator, "score_samples"):
        return -np.asarray(estimator.score_samples(X), dtype=np.float64)
    return -np.asarray(estimator.decision_function(X), dtype=np.float64)


def anomaly_scores(estimator, X):
    """Scores of a fitted detector, **higher = more anomalous**: its
    ``anomaly_score(X)`` (in [0, 1]) when it has one, else
    ``-score_samples(X)``, else ``-decision_function(X)``.  ``X`` is
    validated by the detector's public methods.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import LocalOutlierFactor as SklearnLOF
    >>> X = np.array([[0.0], [0.1], [0.2], [0.3], [5.0]])
    >>> lof = SklearnLOF(n_neighbors=2, novelty=True).fit(X[:4])
    >>> bool(anomaly_scores(lof, X[4:])[0] > anomaly_scores(lof, X[1:2])[0])
    True
    """
    if hasattr(estimator, "anomaly_score"):
        return np.asarray(estimator.anomaly_score(X), dtype=np.float64)
    if hasattr(estimator, "score_samples") or hasattr(estimator, "decision_function"):
        return negated_scores(estimator, X)  # the public methods validate X
    raise TypeError(f"{type(estimator).__name__} has none of anomaly_score, score_samples, decision_function")


def unit_scores(raw):
    """Scores clipped to [0, 1]; NaN where the detector gave NaN or +-inf
    (such an event is unscorable, never an alert).

    Examples
    --------
    >>> unit_scores([0.5, 1.5, -0.1, float("inf")]).tolist()
    [0.5, 1.0, 0.0, nan]
    """
    scores = np.asarray(raw, dtype=np.float64)
    finite = np.isfinite(scores)
    if finite.all():
        return np.clip(scores, 0.0, 1.0)
    return np.where(finite, np.clip(scores, 0.0, 1.0), np.nan)


def calibrated_unit_scores(calibration, score_samples):
    """``score_samples`` (lower = more abnormal) mapped to [0, 1] by a
    calibration fitted on ``-score_samples``; NaN where it was NaN or +-inf
    (the rank calibration would map those to 0 or 1).

    Examples
    --------
    >>> cal = fit_calibration([1.0, 2.0, 3.0, 4.0], "rank")
    >>> calibrated_unit_scores(cal, [-2.5, -10.0, float("nan")]).tolist()
    [0.5, 1.0, nan]
    """
    raw = -np.asarray(score_samples, dtype=np.float64)
    scores = apply_calibration(calibration, raw)
    finite = np.isfinite(raw)
    return scores if finite.all() else np.where(finite, scores, np.nan)
