"""Evaluation of anomaly detectors: with labels and without.

Every function here takes anomaly scores with **higher = more anomalous**
(``anomaly_score(X)``, or ``-score_samples(X)`` of a scikit-learn detector;
:mod:`anomaly_fast._scores` converts).  Time series with labelled anomaly
windows (NAB) are judged by :func:`window_hits` (windows with at least one
alarm) and :func:`false_alarm_runs` (runs of alarms outside every window).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score, silhouette_score

from ._scores import anomaly_scores

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "anomaly_silhouette",
    "evaluate_detector",
    "false_alarm_runs",
    "plot_score_histogram",
    "precision_at_k",
    "score_distribution_report",
    "stability",
    "window_hits",
    "window_masks",
]


# -- input checks --------------------------------------------------------------
def _check_scores(scores, name="scores", min_size=1):
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric, got {np.asarray(scores).dtype}") from exc
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {s.shape}")
    if s.shape[0] < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {s.shape[0]}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contain NaN ({int(np.isnan(s).sum())} of {s.shape[0]})")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contain infinite values")
    return s


def _check_labels(labels, n, both_classes=True):
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"scores and labels differ in length: {n} scores, {y.shape[0]} labels")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    y = y.astype(np.int64)
    if both_classes and y.min() == y.max():
        raise ValueError(
            "labels contain a single class; ROC-AUC and average precision need both anomalies (1) and normals (0)"
        )
    return y


def _check_k(k, n, name="k"):
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise TypeError(f"{name} must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"{name} must be positive, got {k}")
    if k > n:
        raise ValueError(f"{name} must be at most the number of scores ({n}), got {k}")
    return int(k)


# -- with labels -----------------------------------------------------------------
def precision_at_k(scores: npt.ArrayLike, labels: npt.ArrayLike, k: int) -> float:
    """Fraction of anomalies among the ``k`` highest scores.

    Ties at the cut are resolved by expectation, independent of row order:
    rows scoring strictly above the k-th highest score all count, and the
    ``m`` remaining places are shared by the ``t`` rows tied at that score,
    each counting ``m / t`` (the mean precision over every way of breaking
    the tie).  Without ties this is the plain precision@k.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Finite scores, **higher = more anomalous**.
    labels : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal rows.
    k : int
        Number of top rows, in [1, n_samples].

    Returns
    -------
    float
    """
    s = _check_scores(scores)
    y = _check_labels(labels, s.shape[0], both_classes=False)
    k = _check_k(k, s.shape[0])
    cut = np.partition(s, s.shape[0] - k)[s.shape[0] - k]  # k-th highest score
    above = s > cut
    tied = s == cut
    n_above = int(above.sum())
    share = (k - n_above) / float(tied.sum())
    return float((y[above].sum() + share * y[tied].sum()) / k)


def evaluate_detector(scores: npt.ArrayLike, labels: npt.ArrayLike, k: int | None = None) -> dict[str, float | int]:
    """ROC-AUC, average precision and precision@k of anomaly scores.

    ROC-AUC and average precision are scikit-learn's
    (:func:`~sklearn.metrics.roc_auc_score`,
    :func:`~sklearn.metrics.average_precision_score`); precision@k is
    :func:`precision_at_k` (ties at the cut counted by expectation, so the
    result never depends on row order).

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Finite scores, **higher = more anomalous**.
    labels : array-like of shape (n_samples,)
        1 (or True) for anomalies, 0 (or False) for normal rows; both classes
        must be present.
    k : int, default=None
        Rows counted by precision@k; None means the number of anomalies in
        ``labels`` (then precision@k equals R-precision).

    Returns
    -------
    dict
        ``auc_roc``, ``average_precision``, ``precision_at_k`` (floats) and
        ``k`` (int).

    Raises
    ------
    ValueError
        On NaN or infinite scores, a length mismatch, labels other than 0/1,
        a single class, or ``k`` outside [1, n_samples].

    Examples
    --------
    >>> from anomaly_fast.evaluation import evaluate_detector
    >>> result = evaluate_detector([0.1, 0.4, 0.35, 0.8, 0.9], [0, 0, 1, 1, 1])
    >>> print({key: round(value, 4) for key, value in result.items()})
    {'auc_roc': 0.8333, 'average_precision': 0.9167, 'precision_at_k': 0.6667, 'k': 3}
    """
    s = _check_scores(scores)
    y = _check_labels(labels, s.shape[0])
    k = int(y.sum()) if k is None else _check_k(k, s.shape[0])
    return {
        "auc_roc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "precision_at_k": precision_at_k(s, y, k),
        "k": k,
    }


# -- without labels ----------------------------------------------------------------
def _otsu_split(sorted_scores):
    """Cut of sorted scores maximising the between-group variance (Otsu);
    returns the index i such that the groups are [:i] and [i:]."""
    s = sorted_scores
    n = s.shape[0]
    # candidate cuts: between distinct neighbouring values
    cuts = np.flatnonzero(s[1:] > s[:-1]) + 1
    csum = np.cumsum(s)
    n_low = cuts.astype(np.float64)
    mean_low = csum[cuts - 1] / n_low
    mean_high = (csum[-1] - csum[cuts - 1]) / (n - n_low)
    between = n_low * (n - n_low) * (mean_high - mean_low) ** 2
    return int(cuts[np.argmax(between)])


def score_distribution_report(scores: npt.ArrayLike, threshold: float | None = None) -> dict[str, float]:
    """Label-free summary of a score distribution: is there a separate
    group of high scores?

    - ``bimodality_coefficient``: ``(g1**2 + 1) / (g2 + 3 (n-1)**2 /
      ((n-2)(n-3)))`` with the sample-size corrected skewness ``g1`` and
      excess kurtosis ``g2``; above 5/9 (0.555, the uniform's value) hints at
      two modes.
    - The scores are split in two at the cut maximising the between-group
      variance (Otsu's method, exact on the sorted scores): ``split`` is the
      lowest score of the upper group, ``upper_fraction`` its share of rows
      and ``ashman_d = sqrt(2) |m1 - m2| / sqrt(v1 + v2)`` the separation of
      the two groups (above 2: clean separation).
    - ``fraction_above_threshold``: share of scores strictly above
      ``threshold``; None puts the threshold midway between the two groups,
      so the share is ``upper_fraction``.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        At least 4 finite scores, not all equal; **higher = more anomalous**.
    threshold : float, default=None

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.evaluation import score_distribution_report
    >>> rng = np.random.RandomState(0)
    >>> s = np.concatenate([rng.normal(0.4, 0.05, 950), rng.normal(0.8, 0.05, 50)])
    >>> report = score_distribution_report(s)
    >>> print(round(report["upper_fraction"], 3), round(report["ashman_d"], 2))
    0.05 9.11
    """
    s = _check_scores(scores, min_size=4)
    n = s.shape[0]
    if s.min() == s.max():
        raise ValueError("scores are constant; the report needs at least two distinct values")
    mean = s.mean()
    centered = s - mean
    m2 = np.mean(centered**2)
    m3 = np.mean(centered**3)
    m4 = np.mean(centered**4)
    g1 = np.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / m2**1.5
    g2 = (n - 1.0) / ((n - 2.0) * (n - 3.0)) * ((n + 1.0) * (m4 / m2**2 - 3.0) + 6.0)
    bimodality = (g1**2 + 1.0) / (g2 + 3.0 * (n - 1.0) ** 2 / ((n - 2.0) * (n - 3.0)))

    ordered = np.sort(s)
    i = _otsu_split(ordered)
    low, high = ordered[:i], ordered[i:]
    spread = np.sqrt(low.var() + high.var())
    ashman = np.inf if spread == 0 else float(np.sqrt(2.0) * (high.mean() - low.mean()) / spread)
    if threshold is None:
        threshold = 0.5 * (ordered[i - 1] + ordered[i])
        above = (n - i) / n
    else:
        if isinstance(threshold, bool) or not isinstance(threshold, Real) or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        above = float(np.mean(s > threshold))
    return {
        "n": n,
        "mean": float(mean),
        "std": float(np.sqrt(m2)),
        "skewness": float(g1),
        "excess_kurtosis": float(g2),
        "bimodality_coefficient": float(bimodality),
        "split": float(ordered[i]),
        "lower_mean": float(low.mean()),
        "upper_mean": float(high.mean()),
        "upper_fraction": (n - i) / n,
        "ashman_d": ashman,
        "threshold": float(threshold),
        "fraction_above_threshold": float(above),
    }


def plot_score_histogram(
    scores: npt.ArrayLike,
    threshold: float | None = None,
    labels: npt.ArrayLike | None = None,
    bins: int | str | Sequence[float] = 50,
    ax: Axes | None = None,
) -> Axes:
    """Histogram of anomaly scores (**higher = more anomalous**), optionally
    split by labels and with a threshold line.  Needs matplotlib (the
    ``plot`` extra: ``pip install anomaly_fast[plot]``).

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
    threshold : float, default=None
        Drawn as a vertical line when given.
    labels : array-like of shape (n_samples,), default=None
        0/1 labels (1 = anomaly): normal and anomalous rows are drawn as two
        histograms.
    bins : int, default=50
    ax : matplotlib Axes, default=None
        Axes to draw on; None creates a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plot_score_histogram needs matplotlib: pip install anomaly_fast[plot]") from exc
    s = _check_scores(scores)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    edges = np.histogram_bin_edges(s, bins=bins)
    if labels is None:
        ax.hist(s, bins=edges, color="tab:blue")
    else:
        y = _check_labels(labels, s.shape[0])
        ax.hist(s[y == 0], bins=edges, alpha=0.6, label="normal", color="tab:blue")
        ax.hist(s[y == 1], bins=edges, alpha=0.6, label="anomaly", color="tab:red")
        ax.legend()
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("rows")
    return ax


def _top_k_set(scores, k):
    # stable sort on -score: ties at the cut go to the earlier rows
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


def stability(
    estimator_factory: Callable[[int], Any],
    X: npt.ArrayLike,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    top_k: int | None = None,
) -> dict[str, float | int]:
    """How much a randomised detector's output changes with its seed.

    The detector is fitted on ``X`` once per seed and scores ``X``; for every
    pair of seeds the Jaccard index of the top-k flagged rows and the
    Spearman correlation of the scores are averaged.

    Parameters
    ----------
    estimator_factory : callable
        ``estimator_factory(seed)`` returns an unfitted detector with
        ``anomaly_score``, ``score_samples`` or ``decision_function`` (used in
        that order; the last two negated so higher = more anomalous).
    X : array-like of shape (n_samples, n_features)
    seeds : sequence of int, default=(0, 1, 2, 3, 4)
        At least two distinct seeds.
    top_k : int, default=None
        Rows flagged per seed; None means 10% of the rows (at least 1).  Ties
        at the cut go to the earlier rows.

    Returns
    -------
    dict
        ``jaccard_top_k`` and ``spearman`` (means over the seed pairs; 1.0 =
        identical), ``top_k`` and ``n_seeds``.  ``spearman`` is NaN when
        some seed gives constant scores.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast import IsolationForest
    >>> from anomaly_fast.evaluation import stability
    >>> X = np.random.RandomState(0).normal(size=(300, 3))
    >>> result = stability(lambda seed: IsolationForest(random_state=seed), X, seeds=[0, 1, 2])
    >>> print(round(result["jaccard_top_k"], 3), round(result["spearman"], 3))
    0.783 0.98
    """
    if not callable(estimator_factory):
        raise TypeError("estimator_factory must be a callable seed -> unfitted estimator")
    seeds = list(seeds)
    if len(set(seeds)) < 2:
        raise ValueError(f"stability needs at least two distinct seeds, got {seeds}")
    n = len(X)
    k = max(1, int(round(0.1 * n))) if top_k is None else _check_k(top_k, n, "top_k")
    runs = []
    for seed in seeds:
        est = estimator_factory(seed).fit(X)
        runs.append(_check_scores(anomaly_scores(est, X), "detector scores"))
    tops = [_top_k_set(r, k) for r in runs]
    jaccard, rho = [], []
    for a, b in combinations(range(len(runs)), 2):
        jaccard.append(len(tops[a] & tops[b]) / len(tops[a] | tops[b]))
        if np.ptp(runs[a]) == 0 or np.ptp(runs[b]) == 0:
            rho.append(np.nan)
        else:
            rho.append(spearmanr(runs[a], runs[b]).statistic)
    return {
        "jaccard_top_k": float(np.mean(jaccard)),
        "spearman": float(np.mean(rho)),
        "top_k": k,
        "n_seeds": len(seeds),
    }


def anomaly_silhouette(
    X: npt.ArrayLike,
    flags: npt.ArrayLike,
    metric: str | Callable[..., float] = "euclidean",
    sample_size: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> float:
    """Silhouette of flagged vs normal rows (scikit-learn's
    :func:`~sklearn.metrics.silhouette_score` with the flags as two
    clusters): near 1 when the flagged rows sit apart from the rest.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    flags : array-like of shape (n_samples,)
        Exactly two distinct values, e.g. ``predict(X)`` in {-1, 1} or 0/1
        labels; the silhouette does not depend on which value means outlier.
    metric : str or callable, default="euclidean"
    sample_size : int, default=None
        Score a random subset of this many rows (large X).
    random_state : int or None, default=None
        Seeds the subset when ``sample_size`` is set.

    Returns
    -------
    float in [-1, 1]
    """
    X = np.asarray(X)
    f = np.asarray(flags)
    if f.ndim != 1 or f.shape[0] != X.shape[0]:
        raise ValueError(f"flags must be 1-D with one value per row of X ({X.shape[0]}), got shape {f.shape}")
    values = np.unique(f)
    if values.shape[0] != 2:
        raise ValueError(f"flags must hold exactly two distinct values (flagged and normal), got {values.tolist()}")
    if X.shape[0] < 3:
        raise ValueError(f"the silhouette needs at least 3 rows, got {X.shape[0]}")
    return float(silhouette_score(X, f, metric=metric, sample_size=sample_size, random_state=random_state))


# -- alarms against labelled windows (NAB) ----------------------------------------
def window_masks(
    index: npt.ArrayLike, windows: Sequence[tuple[Any, Any]]
) -> tuple[list[npt.NDArray[np.bool_]], npt.NDArray[np.bool_]]:
    """Boolean masks of ``index`` inside each labelled window, and their union.

    Parameters
    ----------
    index : pandas.DatetimeIndex or array-like of timestamps
    windows : list of (start, end)
        Inclusive window bounds (anything ``pandas.Timestamp`` reads).

    Returns
    -------
    masks : list of ndarray of bool
        One mask per window.
    inside : ndarray of bool
        Points inside any window.

    Examples
    --------
    >>> import pandas as pd
    >>> index = pd.date_range("2024-01-01", periods=6, freq="h")
    >>> masks, inside = window_masks(index, [(index[1], index[2])])
    >>> inside.tolist()
    [False, True, True, False, False, False]
    """
    import pandas as pd

    masks = [np.asarray((index >= pd.Timestamp(a)) & (index <= pd.Timestamp(b)), dtype=bool) for a, b in windows]
    inside = np.zeros(len(index), dtype=bool)
    for mask in masks:
        inside |= mask
    return masks, inside


def window_hits(alarms: npt.ArrayLike, masks: Sequence[npt.NDArray[np.bool_]]) -> int:
    """Number of labelled windows holding at least one alarm.

    Examples
    --------
    >>> window_hits([0, 1, 0, 0], [np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)])
    1
    """
    alarms = np.asarray(alarms, dtype=bool)
    return int(sum(bool(alarms[mask].any()) for mask in masks))


def false_alarm_runs(alarms: npt.ArrayLike, inside: npt.ArrayLike) -> int:
    """Runs of consecutive alarmed points outside every window (each run is
    one false alarm, however long).

    Examples
    --------
    >>> false_alarm_runs([1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 1, 0])
    2
    """
    outside = np.asarray(alarms, dtype=bool) & ~np.asarray(inside, dtype=bool)
    if outside.size == 0:
        return 0
    return int(outside[0]) + int(np.count_nonzero(outside[1:] & ~outside[:-1]))
