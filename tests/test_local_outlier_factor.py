"""Tests of anomaly_fast.LocalOutlierFactor (compiled LOF, novelty detection)."""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import LocalOutlierFactor as SkLocalOutlierFactor

from anomaly_fast import LocalOutlierFactor, _lof
from anomaly_fast.local_outlier_factor import anomaly_from_lof, check_state

RTOL = 1e-9


@pytest.fixture
def data(seed):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(400, 4)), np.vstack([rng.normal(size=(60, 4)) * 1.5, [[5.0, 5.0, 5.0, 5.0]]])


def sklearn_lof(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n_neighbors > n_samples
        return SkLocalOutlierFactor(novelty=True, algorithm="kd_tree", **params).fit(X)


def our_lof(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return LocalOutlierFactor(max_samples=None, **params).fit(X)


def assert_same_scores(ours, theirs, X_new):
    np.testing.assert_allclose(ours.negative_outlier_factor_, theirs.negative_outlier_factor_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(ours.score_samples(X_new), theirs.score_samples(X_new), rtol=RTOL, atol=0)
    assert ours.n_neighbors_ == theirs.n_neighbors_
    assert ours.offset_ == pytest.approx(theirs.offset_, rel=RTOL)


# -- equality with scikit-learn -----------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 60),
    d=st.integers(1, 4),
    k=st.integers(1, 25),
    n_copies=st.lists(st.integers(0, 6), max_size=6),
    algorithm=st.sampled_from(["kd_tree", "brute"]),
    leaf_size=st.integers(1, 40),
)
def test_scores_equal_scikit_learn_with_duplicate_points(seed, n, d, k, n_copies, algorithm, leaf_size):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    # rows repeated several times: distance ties that scikit-learn resolves
    # by leaving a row (not its duplicates) out of its own neighbours
    copies = [np.repeat(X[i % n : i % n + 1], c, axis=0) for i, c in enumerate(n_copies)]
    X = rng.permutation(np.vstack([X, *copies]))
    X_new = np.vstack([rng.normal(size=(10, d)) * 2.0, X[: min(5, len(X))]])
    ours = our_lof(X, n_neighbors=k, algorithm=algorithm, leaf_size=leaf_size)
    assert_same_scores(ours, sklearn_lof(X, n_neighbors=k), X_new)


@pytest.mark.parametrize(
    "params",
    [
        {"metric": "manhattan"},
        {"metric": "chebyshev"},
        {"metric": "minkowski", "p": 1},
        {"metric": "minkowski", "p": 3.5},
        {"metric": "euclidean", "n_neighbors": 7},
        {"contamination": 0.1},
    ],
)
@pytest.mark.parametrize("algorithm", ["kd_tree", "brute"])
def test_metrics_and_contamination_equal_scikit_learn(data, params, algorithm):
    X, X_new = data
    assert_same_scores(our_lof(X, algorithm=algorithm, **params), sklearn_lof(X, **params), X_new)


def test_wide_data_equal_scikit_learn_and_auto_picks_brute_force(seed):
    rng = np.random.RandomState(seed)
    X, X_new = rng.normal(size=(300, 40)), rng.normal(size=(30, 40))
    ours = our_lof(X)
    assert ours._fit_method == "brute"
    assert_same_scores(ours, sklearn_lof(X), X_new)


def test_a_row_with_more_duplicates_than_neighbours_is_as_scikit_learn(seed):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(30, 2)), np.zeros((12, 2))])
    ours, theirs = our_lof(X, n_neighbors=5), sklearn_lof(X, n_neighbors=5)
    assert_same_scores(ours, theirs, np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0]]))
    # zero reachability distances: scikit-learn's 1e-10 keeps densities finite
    assert np.all(np.isfinite(ours.negative_outlier_factor_))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 200),
    d=st.integers(1, 13),
    k=st.integers(1, 25),
    n_copies=st.lists(st.integers(0, 8), max_size=8),
    metric=st.sampled_from([("euclidean", 2), ("manhattan", 1), ("chebyshev", 2), ("minkowski", 3.5)]),
    algorithm=st.sampled_from(["kd_tree", "brute"]),
    leaf_size=st.integers(1, 70),
)
def test_wider_data_and_every_metric_equal_scikit_learn(seed, n, d, k, n_copies, metric, algorithm, leaf_size):
    # up to 13 features: the compiled search compares 8 rows x 4 features at a
    # time and abandons a block of rows after an even number of features, so
    # the widths around 4, 8 and odd counts are the ones to cover
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    copies = [np.repeat(X[i % n : i % n + 1], c, axis=0) for i, c in enumerate(n_copies)]
    X = rng.permutation(np.vstack([X, *copies]))
    X_new = np.vstack([rng.normal(size=(10, d)) * 2.0, X[: min(5, len(X))]])
    params = {"n_neighbors": k, "metric": metric[0], "p": metric[1]}
    ours = our_lof(X, algorithm=algorithm, leaf_size=leaf_size, **params)
    assert_same_scores(ours, sklearn_lof(X, **params), X_new)


def test_many_rows_and_features_equal_scikit_learn():
    # deep trees, blocks abandoned early and neighbours found in far leaves
    rng = np.random.RandomState(3)
    X, X_new = rng.normal(size=(3000, 10)), rng.normal(size=(500, 10)) * 1.3
    for algorithm in ("kd_tree", "brute"):
        assert_same_scores(our_lof(X, algorithm=algorithm, leaf_size=16), sklearn_lof(X), X_new)


@pytest.mark.skipif(not _lof.SIMD, reason="no AVX2 on this CPU: only the portable search exists")
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev", "minkowski"])
def test_avx2_and_portable_search_give_identical_results(metric):
    rng = np.random.RandomState(5)
    X = np.vstack([rng.normal(size=(700, 9)), np.zeros((30, 9))])
    X_new = rng.normal(size=(100, 9))
    results = []
    try:
        for simd in (True, False):
            assert _lof.use_simd(simd) == simd
            for algorithm in ("kd_tree", "brute"):
                lof = our_lof(X, algorithm=algorithm, metric=metric, p=3.0, leaf_size=20)
                results.append((lof.negative_outlier_factor_, lof.score_samples(X_new)))
    finally:
        _lof.use_simd(True)
    for factors, scores in results[1:]:
        np.testing.assert_array_equal(factors, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


def grouped_and_one_query_results(X, X_new, **params):
    """(negative_outlier_factor_, scores of X_new) with the searches of many
    queries at once (rows grouped by leaf, AVX2 tiles filtered by a rounding
    margin) and with one search per query (the portable kernel)."""
    results = []
    try:
        for simd in (True, False):
            _lof.use_simd(simd)
            lof = our_lof(X, **params)
            results.append((lof.negative_outlier_factor_, lof.score_samples(X_new)))
    finally:
        _lof.use_simd(True)
    return results


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 300),
    d=st.integers(1, 13),
    k=st.integers(1, 30),
    n_copies=st.lists(st.integers(0, 8), max_size=8),
    algorithm=st.sampled_from(["kd_tree", "brute"]),
    leaf_size=st.integers(1, 70),
    shift=st.sampled_from([0.0, 1e3, 1e8]),
)
def test_grouped_search_equals_one_query_search(seed, n, d, k, n_copies, algorithm, leaf_size, shift):
    # the tiles' |q|^2 + |t|^2 - 2 q.t filter must never drop a neighbour, even
    # where that formula cancels badly (data far from the origin), and the
    # exact recomputation must give the one-query search's distances bit for bit
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    copies = [np.repeat(X[i % n : i % n + 1], c, axis=0) for i, c in enumerate(n_copies)]
    X = rng.permutation(np.vstack([X, *copies])) + shift
    X_new = np.vstack([rng.normal(size=(70, d)) * 1.5 + shift, X[: min(len(X), 10)]])
    (factors, scores), (factors_1, scores_1) = grouped_and_one_query_results(
        X, X_new, n_neighbors=k, algorithm=algorithm, leaf_size=leaf_size
    )
    np.testing.assert_array_equal(factors, factors_1)
    np.testing.assert_array_equal(scores, scores_1)


def test_grouped_search_with_squares_overflowing():
    # |q|^2 overflows to inf: the filter gives NaN or inf and lets every row
    # through to the exact computation (as the one-query search, which gets inf)
    rng = np.random.RandomState(0)
    X, X_new = rng.normal(size=(300, 5)) * 1e155, rng.normal(size=(100, 5)) * 1e155
    (factors, scores), (factors_1, scores_1) = grouped_and_one_query_results(X, X_new, leaf_size=8)
    np.testing.assert_array_equal(factors, factors_1)
    np.testing.assert_array_equal(scores, scores_1)


def test_batch_rows_in_any_order_score_as_alone():
    # batches are searched grouped by leaf, one row alone is not: rows far out,
    # duplicates of fitted rows and rows in random order score the same either way
    rng = np.random.RandomState(11)
    X = rng.normal(size=(5000, 10))
    X_new = rng.permutation(np.vstack([rng.normal(size=(400, 10)) * 2.0, X[:50], X[:50] + 1e-12, [[30.0] * 10]]))
    for algorithm in ("kd_tree", "brute"):
        lof = our_lof(X, algorithm=algorithm)
        batch = lof.score_samples(X_new)
        single = np.array([lof.score_samples(X_new[i : i + 1])[0] for i in range(len(X_new))])
        np.testing.assert_array_equal(batch, single)


# -- consistency -----------------------------------------------------------------------
def test_one_row_scores_equal_the_batch(data):
    X, X_new = data
    lof = LocalOutlierFactor(random_state=0).fit(X)
    batch = lof.score_samples(X_new)
    single = np.array([lof.score_samples(X_new[i : i + 1])[0] for i in range(len(X_new))])
    np.testing.assert_array_equal(single, batch)


def test_kd_tree_and_brute_force_give_identical_scores(data):
    X, X_new = data
    tree = our_lof(X, algorithm="kd_tree", leaf_size=5)
    brute = our_lof(X, algorithm="brute")
    np.testing.assert_array_equal(tree.score_samples(X_new), brute.score_samples(X_new))
    np.testing.assert_array_equal(tree.negative_outlier_factor_, brute.negative_outlier_factor_)


@pytest.mark.parametrize("algorithm", ["kd_tree", "brute"])
@pytest.mark.parametrize("d", [3, 10])
def test_n_jobs_does_not_change_results(seed, algorithm, d):
    rng = np.random.RandomState(seed)
    X, X_new = rng.normal(size=(3000, d)), rng.normal(size=(3000, d))
    one = LocalOutlierFactor(max_samples=None, algorithm=algorithm, n_jobs=1).fit(X)
    two = LocalOutlierFactor(max_samples=None, algorithm=algorithm, n_jobs=2).fit(X)
    np.testing.assert_array_equal(one.negative_outlier_factor_, two.negative_outlier_factor_)
    np.testing.assert_array_equal(one.score_samples(X_new), two.score_samples(X_new))


def test_max_samples_fits_a_uniform_subsample(seed):
    rng = np.random.RandomState(seed)
    X, X_new = rng.normal(size=(1000, 3)), rng.normal(size=(50, 3))
    lof = LocalOutlierFactor(max_samples=200, random_state=1).fit(X)
    assert lof.n_samples_fit_ == lof.max_samples_ == 200
    rows = lof.sample_indices_
    assert rows.shape == (200,) and np.all(np.diff(rows) > 0) and rows[-1] < 1000
    full = our_lof(X[rows])
    np.testing.assert_array_equal(lof.score_samples(X_new), full.score_samples(X_new))
    np.testing.assert_array_equal(lof.negative_outlier_factor_, full.negative_outlier_factor_)
    assert LocalOutlierFactor(max_samples=0.5).fit(X).n_samples_fit_ == 500
    assert LocalOutlierFactor(max_samples=5000).fit(X).n_samples_fit_ == 1000
    assert LocalOutlierFactor().fit(X).n_samples_fit_ == 256  # "auto"
    assert LocalOutlierFactor().fit(X[:100]).n_samples_fit_ == 100


def test_sklearn_score_conventions_and_anomaly_score(data):
    X, X_new = data
    lof = LocalOutlierFactor(contamination=0.1, random_state=0).fit(X)
    s = lof.score_samples(X_new)
    np.testing.assert_array_equal(lof.decision_function(X_new), s - lof.offset_)
    np.testing.assert_array_equal(lof.predict(X_new) == -1, s < lof.offset_)
    a = lof.anomaly_score(X_new)
    np.testing.assert_allclose(a, -s / (1.0 - s), rtol=1e-15)
    assert np.all((a >= 0) & (a < 1))
    assert a[-1] == a.max()  # the planted far point
    order = np.argsort(s)
    assert np.all(np.diff(a[order]) <= 0)  # ranks rows exactly as LOF


def test_anomaly_from_lof_is_half_for_a_row_as_dense_as_its_neighbours():
    np.testing.assert_array_equal(anomaly_from_lof([1.0, 3.0, 0.0]), [0.5, 0.75, 0.0])


def test_regression_scores_pinned():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 2))
    lof = LocalOutlierFactor(max_samples=None).fit(X)
    np.testing.assert_allclose(
        lof.score_samples([[0.0, 0.0], [4.0, 4.0]]), [-0.9773005821970477, -4.877453580880312], rtol=1e-12
    )


def test_too_many_neighbours_warns_and_uses_all_other_rows(seed):
    X = np.random.RandomState(seed).normal(size=(8, 2))
    with pytest.warns(UserWarning, match="n_neighbors will be set"):
        lof = LocalOutlierFactor(n_neighbors=20).fit(X)
    assert lof.n_neighbors_ == 7


# -- pickling ------------------------------------------------------------------------------
def test_pickle_round_trip_scores_identically(data):
    X, X_new = data
    for lof in (
        LocalOutlierFactor(random_state=0).fit(X),
        LocalOutlierFactor(algorithm="brute", max_samples=100, random_state=0).fit(X),
    ):
        clone = pickle.loads(pickle.dumps(lof))
        np.testing.assert_array_equal(clone.score_samples(X_new), lof.score_samples(X_new))
        np.testing.assert_array_equal(clone.negative_outlier_factor_, lof.negative_outlier_factor_)
        assert "_index" in lof.__dict__  # pickling leaves the live model alone
    unfitted = pickle.loads(pickle.dumps(LocalOutlierFactor(n_neighbors=7)))
    assert unfitted.n_neighbors == 7


def _state(data):
    X, _ = data
    return LocalOutlierFactor(max_samples=300, random_state=0).fit(X).__getstate__()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("_fit_X", "nan", "_fit_X holds NaN"),
        ("_fit_X", "short", "_fit_X must be a float64 array"),
        ("_fit_X", "float32", "_fit_X must be a float64 array"),
        ("sample_indices_", "out_of_range", "sample_indices_ must be increasing indices"),
        ("sample_indices_", "unsorted", "sample_indices_ must be increasing indices"),
        ("sample_indices_", "floats", "sample_indices_ must be an int array"),
        ("n_neighbors_", 3, "n_neighbors_ does not match"),
        ("n_samples_fit_", -1, "n_samples_fit_ must be an int"),
        ("max_samples_", 7, "max_samples_ must equal"),
        ("offset_", float("inf"), "offset_ must be a finite number"),
        ("_fit_method", "ball_tree", "_fit_method must be"),
        ("n_neighbors", 0, "n_neighbors"),
        ("metric", "cosine", "metric"),
        ("surprise", 1, "unknown fields"),
    ],
)
def test_a_corrupted_pickle_is_rejected_naming_the_field(data, field, value, match):
    state = _state(data)
    if value == "nan":
        value = state["_fit_X"].copy()
        value[3, 1] = np.nan
    elif value == "short":
        value = state["_fit_X"][:-1]
    elif value == "float32":
        value = state["_fit_X"].astype(np.float32)
    elif value == "out_of_range":
        value = state["sample_indices_"].copy()
        value[-1] = 400
    elif value == "unsorted":
        value = state["sample_indices_"][::-1].copy()
    elif value == "floats":
        value = state["sample_indices_"].astype(float)
    state[field] = value
    with pytest.raises(ValueError, match=match):
        check_state(state)
    lof = LocalOutlierFactor.__new__(LocalOutlierFactor)
    with pytest.raises(ValueError, match=match):
        lof.__setstate__(state)


def test_a_pickle_missing_fitted_fields_is_rejected(data):
    state = _state(data)
    del state["_fit_X"]
    with pytest.raises(ValueError, match="lacks fitted fields"):
        check_state(state)
    with pytest.raises(ValueError, match="must be a dict"):
        check_state([1, 2])


# -- bad input --------------------------------------------------------------------------------
def test_bad_input_raises(data):
    X, _ = data
    lof = LocalOutlierFactor().fit(X)
    with pytest.raises(ValueError, match="NaN"):
        lof.score_samples([[np.nan, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="infinity"):
        lof.score_samples(np.array([[np.inf, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="4 features"):
        lof.score_samples([[0.0, 0.0]])
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        LocalOutlierFactor().fit([[0.0, 1.0]])
    with pytest.raises(ValueError, match="infinity"):
        LocalOutlierFactor().fit(np.vstack([X, [[np.inf, 0, 0, 0]]]))
    with pytest.raises(ValueError, match="0 sample"):
        lof.score_samples(np.empty((0, 4)))


@pytest.mark.parametrize(
    "params",
    [
        {"n_neighbors": 0},
        {"algorithm": "ball_tree"},
        {"metric": "cosine"},
        {"p": 0.5},
        {"contamination": 0.7},
        {"max_samples": 1},
        {"max_samples": 1.5},
        {"leaf_size": 0},
    ],
)
def test_bad_parameters_raise(data, params):
    X, _ = data
    with pytest.raises(ValueError):
        LocalOutlierFactor(**params).fit(X)
