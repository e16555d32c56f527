"""Tests of anomaly_fast.evaluation."""

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import kurtosis, skew, spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score, silhouette_score

from anomaly_fast import IsolationForest
from anomaly_fast.evaluation import (
    anomaly_silhouette,
    evaluate_detector,
    false_alarm_runs,
    plot_score_histogram,
    precision_at_k,
    score_distribution_report,
    stability,
    window_hits,
    window_masks,
)


@pytest.fixture
def seed():
    return 0


# Scores drawn from a small integer grid so that ties are common.
scored_labels = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6).map(lambda v: v / 4.0), min_size=n, max_size=n)
        | st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


# -- evaluate_detector against scikit-learn ----------------------------------------
@settings(max_examples=150, deadline=None)
@given(scored_labels)
def test_metrics_equal_sklearn(case):
    scores, labels = case
    assume(0 < sum(labels) < len(labels))
    got = evaluate_detector(scores, labels)
    assert got["auc_roc"] == roc_auc_score(labels, scores)
    assert got["average_precision"] == average_precision_score(labels, scores)
    assert got["k"] == sum(labels)


def _precision_over_all_tie_orders(scores, labels, k):
    """Reference: mean precision@k over every order of the rows (brute force)."""
    values = []
    for order in permutations(range(len(scores))):
        s = np.asarray(scores)[list(order)]
        y = np.asarray(labels)[list(order)]
        top = np.argsort(-s, kind="stable")[:k]
        values.append(y[top].mean())
    return float(np.mean(values))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
            st.lists(st.integers(0, 1), min_size=n, max_size=n),
            st.integers(1, n),
        )
    )
)
def test_precision_at_k_is_the_mean_over_tie_breaks(case):
    scores, labels, k = case
    expected = _precision_over_all_tie_orders(scores, labels, k)
    assert precision_at_k(scores, labels, k) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(scored_labels, st.randoms(use_true_random=False))
def test_precision_at_k_ignores_row_order(case, rnd):
    scores, labels = case
    k = rnd.randint(1, len(scores))
    order = list(range(len(scores)))
    rnd.shuffle(order)
    shuffled = precision_at_k([scores[i] for i in order], [labels[i] for i in order], k)
    assert shuffled == pytest.approx(precision_at_k(scores, labels, k), abs=1e-12)


def test_precision_at_k_without_ties_and_with_explicit_k():
    scores = [0.9, 0.1, 0.8, 0.3, 0.7]
    labels = [1, 0, 0, 1, 1]
    assert precision_at_k(scores, labels, 1) == 1.0
    assert precision_at_k(scores, labels, 2) == 0.5
    assert evaluate_detector(scores, labels, k=3)["precision_at_k"] == pytest.approx(2 / 3)
    # tie at the cut: two rows at 0.5 share one place, one of them an anomaly
    assert precision_at_k([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0], 2) == pytest.approx(0.75)


def test_bool_labels_accepted():
    got = evaluate_detector([0.2, 0.9, 0.4], [False, True, False])
    assert got == {"auc_roc": 1.0, "average_precision": 1.0, "precision_at_k": 1.0, "k": 1}


@pytest.mark.parametrize(
    "scores, labels, kwargs, error, match",
    [
        ([0.1, 0.2, 0.3], [1, 1, 1], {}, ValueError, "single class"),
        ([0.1, 0.2, 0.3], [0, 0, 0], {}, ValueError, "single class"),
        ([0.1, 0.2, 0.3], [0, 1], {}, ValueError, "differ in length"),
        ([0.1, np.nan, 0.3], [0, 1, 0], {}, ValueError, "NaN"),
        ([0.1, np.inf, 0.3], [0, 1, 0], {}, ValueError, "infinite"),
        ([0.1, 0.2, 0.3], [0, 1, 0], {"k": 0}, ValueError, "k must be positive"),
        ([0.1, 0.2, 0.3], [0, 1, 0], {"k": -2}, ValueError, "k must be positive"),
        ([0.1, 0.2, 0.3], [0, 1, 0], {"k": 4}, ValueError, "at most the number"),
        ([0.1, 0.2, 0.3], [0, 1, 0], {"k": 1.5}, TypeError, "k must be an integer"),
        ([0.1, 0.2, 0.3], [0, 2, 0], {}, ValueError, "0 \\(normal\\) or 1"),
        ([0.1, 0.2, 0.3], [-1, 1, 1], {}, ValueError, "0 \\(normal\\) or 1"),
        ([[0.1, 0.2]], [0, 1], {}, ValueError, "1-D"),
        ([], [], {}, ValueError, "at least 1"),
        (["a", "b"], [0, 1], {}, TypeError, "numeric"),
    ],
)
def test_evaluate_detector_errors(scores, labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_detector(scores, labels, **kwargs)


# -- score_distribution_report ---------------------------------------------------------
def test_report_moments_match_scipy(seed):
    s = np.random.RandomState(seed).gamma(2.0, size=500)
    r = score_distribution_report(s)
    g1, g2 = skew(s, bias=False), kurtosis(s, bias=False)
    assert r["skewness"] == pytest.approx(g1, rel=1e-10)
    assert r["excess_kurtosis"] == pytest.approx(g2, rel=1e-10)
    n = len(s)
    assert r["bimodality_coefficient"] == pytest.approx(
        (g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), rel=1e-10
    )


def test_report_separates_bimodal_from_unimodal(seed):
    rng = np.random.RandomState(seed)
    unimodal = score_distribution_report(rng.normal(size=2000))
    bimodal = score_distribution_report(np.r_[rng.normal(0.3, 0.03, 900), rng.normal(0.8, 0.03, 100)])
    assert unimodal["bimodality_coefficient"] < 5 / 9 < bimodal["bimodality_coefficient"]
    assert bimodal["upper_fraction"] == 0.1
    assert bimodal["ashman_d"] > 10 and unimodal["ashman_d"] < 3
    assert bimodal["fraction_above_threshold"] == 0.1
    assert bimodal["lower_mean"] < bimodal["threshold"] < bimodal["split"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 30).map(float), min_size=4, max_size=30))
def test_split_maximises_between_group_variance(values):
    s = np.asarray(values)
    assume(s.min() < s.max())
    r = score_distribution_report(s)

    def between(cut):
        low, high = s[s < cut], s[s >= cut]
        return len(low) * len(high) * (high.mean() - low.mean()) ** 2

    best = max(between(c) for c in np.unique(s)[1:])
    assert between(r["split"]) == pytest.approx(best, rel=1e-12)
    assert r["upper_fraction"] == np.mean(s >= r["split"])


def test_report_threshold_and_errors():
    s = np.arange(10.0)
    assert score_distribution_report(s, threshold=6.5)["fraction_above_threshold"] == 0.3
    with pytest.raises(ValueError, match="constant"):
        score_distribution_report([1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="at least 4"):
        score_distribution_report([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        score_distribution_report([1.0, 2.0, np.nan, 3.0, 4.0])
    with pytest.raises(ValueError, match="threshold"):
        score_distribution_report(s, threshold=np.nan)


def test_plot_score_histogram():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_score_histogram(np.linspace(0, 1, 50), threshold=0.8, labels=np.r_[np.zeros(45), np.ones(5)])
    assert len(ax.patches) > 0 and ax.get_legend() is not None
    assert ax.get_lines()[0].get_xdata()[0] == 0.8
    plt.close(ax.figure)


# -- stability -------------------------------------------------------------------------------
class _Deterministic:
    """A detector that ignores its seed: perfectly stable."""

    def __init__(self, seed):
        self.seed = seed

    def fit(self, X):
        self.center_ = X.mean(axis=0)
        return self

    def score_samples(self, X):
        return -np.linalg.norm(X - self.center_, axis=1)


def test_stability_of_a_deterministic_detector_is_one(seed):
    X = np.random.RandomState(seed).normal(size=(100, 2))
    r = stability(_Deterministic, X, seeds=[0, 1, 2])
    assert r["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert (r["jaccard_top_k"], r["top_k"], r["n_seeds"]) == (1.0, 10, 3)


def test_stability_of_isolation_forest_matches_a_direct_computation(seed):
    X = np.random.RandomState(seed).normal(size=(200, 3))
    r = stability(lambda s: IsolationForest(n_estimators=30, random_state=s), X, seeds=[1, 2], top_k=20)
    a = IsolationForest(n_estimators=30, random_state=1).fit(X).anomaly_score(X)
    b = IsolationForest(n_estimators=30, random_state=2).fit(X).anomaly_score(X)
    ta, tb = set(np.argsort(-a, kind="stable")[:20]), set(np.argsort(-b, kind="stable")[:20])
    assert r["jaccard_top_k"] == len(ta & tb) / len(ta | tb)
    assert r["spearman"] == pytest.approx(spearmanr(a, b).statistic)
    assert 0.3 < r["jaccard_top_k"] < 1.0


def test_stability_errors(seed):
    X = np.random.RandomState(seed).normal(size=(20, 2))
    with pytest.raises(ValueError, match="two distinct seeds"):
        stability(_Deterministic, X, seeds=[3, 3])
    with pytest.raises(ValueError, match="top_k must be positive"):
        stability(_Deterministic, X, top_k=0)
    with pytest.raises(TypeError, match="callable"):
        stability(IsolationForest(), X)


# -- anomaly_silhouette --------------------------------------------------------------------------
def test_silhouette_equals_sklearn(seed):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(95, 2)), rng.normal(8.0, 0.5, size=(5, 2))])
    flags = IsolationForest(contamination=0.05, random_state=0).fit(X).predict(X)
    got = anomaly_silhouette(X, flags)
    assert got == silhouette_score(X, flags)
    assert got > 0.7
    assert anomaly_silhouette(X, flags == -1) == got  # which value means outlier does not matter


def test_silhouette_errors():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="two distinct values"):
        anomaly_silhouette(X, np.ones(5))
    with pytest.raises(ValueError, match="one value per row"):
        anomaly_silhouette(X, [1, -1])


def test_nab_window_metrics_by_hand():
    index = pd.date_range("2024-01-01", periods=10, freq="h")
    masks, inside = window_masks(index, [(index[2], index[3]), (index[7], index[8])])
    alarms = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1], dtype=bool)
    assert window_hits(alarms, masks) == 1  # only the second window holds an alarm
    # runs outside: [0, 1], [4], [6] (7 is inside), [9]
    assert false_alarm_runs(alarms, inside) == 4
    assert false_alarm_runs(np.zeros(10, bool), inside) == 0
    assert false_alarm_runs(np.ones(10, bool), np.zeros(10, bool)) == 1
