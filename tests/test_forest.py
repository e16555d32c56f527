"""Behaviour shared by IsolationForest and ExtendedIsolationForest
(anomaly_fast/_forest.py): determinism, threads, pickling, warm start,
input validation, score conventions."""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from anomaly_fast import ExtendedIsolationForest, IsolationForest, _isolation, average_path_length

ESTIMATORS = [IsolationForest, ExtendedIsolationForest]


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.__name__)
def Estimator(request):
    return request.param


# -- average path length ------------------------------------------------------


def test_average_path_length_small_values():
    assert average_path_length(0) == 0.0
    assert average_path_length(1) == 0.0
    assert average_path_length(2) == 1.0
    # c(256) from the closed form 2(ln 255 + gamma) - 2 * 255 / 256
    expected = 2.0 * (np.log(255.0) + 0.5772156649015329) - 2.0 * 255.0 / 256.0
    assert average_path_length(256) == pytest.approx(expected, rel=1e-15)
    assert average_path_length(256) == pytest.approx(10.244770920116851, rel=1e-12)


def test_average_path_length_vectorised():
    n = np.array([0, 1, 2, 3, 10, 1000])
    out = average_path_length(n)
    assert out.shape == n.shape
    assert out[:3].tolist() == [0.0, 0.0, 1.0]
    assert np.all(np.diff(out[2:]) > 0)


@given(st.integers(min_value=0, max_value=10**7))
def test_kernel_average_path_length_matches_python(n):
    assert _isolation.c_average_path_length(n) == pytest.approx(average_path_length(n), rel=1e-14, abs=0)


# -- determinism, threads, pickling --------------------------------------------


def test_same_random_state_same_model(Estimator, blobs):
    X, _ = blobs
    a = Estimator(random_state=7).fit(X).score_samples(X)
    b = Estimator(random_state=7).fit(X).score_samples(X)
    c = Estimator(random_state=8).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("n_jobs", [2, 3, -1])
def test_n_jobs_does_not_change_results(Estimator, rng, n_jobs):
    X = rng.normal(size=(9000, 3))  # large enough to score on several threads
    ref = Estimator(n_estimators=30, random_state=0).fit(X)
    par = Estimator(n_estimators=30, random_state=0, n_jobs=n_jobs).fit(X)
    np.testing.assert_array_equal(ref.score_samples(X), par.score_samples(X))
    par.set_params(n_jobs=1)
    np.testing.assert_array_equal(ref.score_samples(X), par.score_samples(X))


def test_pickle_round_trip_identical_scores(Estimator, blobs):
    X, _ = blobs
    model = Estimator(random_state=0, contamination=0.05).fit(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.score_samples(X), clone.score_samples(X))
    assert clone.offset_ == model.offset_
    np.testing.assert_array_equal(model.predict(X), clone.predict(X))


def test_warm_start_equals_cold_fit(Estimator, blobs):
    X, _ = blobs
    warm = Estimator(n_estimators=10, warm_start=True, random_state=3).fit(X)
    warm.set_params(n_estimators=25).fit(X)
    cold = Estimator(n_estimators=25, random_state=3).fit(X)
    np.testing.assert_array_equal(warm.score_samples(X), cold.score_samples(X))


def test_warm_start_cannot_shrink(Estimator, blobs):
    X, _ = blobs
    model = Estimator(n_estimators=10, warm_start=True, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_estimators"):
        model.set_params(n_estimators=5).fit(X)
    with pytest.warns(UserWarning, match="does not fit new trees"):
        model.set_params(n_estimators=10).fit(X)


# -- score conventions ----------------------------------------------------------


def test_score_conventions(Estimator, blobs):
    X, y = blobs
    model = Estimator(random_state=0).fit(X)
    s = model.score_samples(X)
    assert np.all((s >= -1.0) & (s <= 0.0))
    np.testing.assert_array_equal(model.anomaly_score(X), -s)
    assert model.offset_ == -0.5
    np.testing.assert_allclose(model.decision_function(X), s + 0.5)
    pred = model.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, model.decision_function(X) < 0)
    # lower score_samples = more abnormal: outliers rank low
    assert roc_auc_score(y, -s) > 0.95
    np.testing.assert_array_equal(model.fit_predict(X), pred)


def test_contamination_sets_offset_to_training_percentile(Estimator, blobs):
    X, _ = blobs
    model = Estimator(contamination=0.1, random_state=0).fit(X)
    s = model.score_samples(X)
    assert model.offset_ == pytest.approx(np.percentile(s, 10.0))
    assert np.mean(model.predict(X) == -1) == pytest.approx(0.1, abs=0.01)


def _python_scores(forest, X, max_samples):
    """score_samples by the paper's formula, -2 ** (-mean path length /
    c(max_samples)), with each row's path lengths found by walking the compact
    flat trees in Python (x goes right when x[feature] > threshold)."""
    nodes, values, offsets = forest.nodes, forest.values, forest.offsets
    total = np.zeros(len(X))
    for start in offsets:
        for i, x in enumerate(X):
            node = 0
            while nodes[start + node]["left"] != node:
                nd = nodes[start + node]
                node = nd["left"] + int(x[nd["feature"]] > nd["threshold"])
            total[i] += values[start + node]
    return -(2.0 ** (-(total / len(offsets)) / average_path_length(max_samples)))


@pytest.mark.parametrize("max_samples, layout", [(64, "heap"), (256, "heap"), (700, "links")])
def test_score_is_the_paper_formula(rng, max_samples, layout):
    """score_samples = -2 ** (-mean path length / c(max_samples_)) with path
    length = depth + c(leaf size), checked by walking the flat trees in Python,
    for both scoring layouts (complete trees up to depth 8, linked beyond)."""
    X = rng.normal(size=(800, 3))
    model = IsolationForest(n_estimators=7, max_samples=max_samples, random_state=1).fit(X)
    forest = model._forest
    assert forest.layout == layout
    nodes, values, offsets = forest.nodes, forest.values, forest.offsets
    c_sizes = average_path_length(np.arange(max_samples + 1))
    # a leaf's value is its depth plus c(its training size)
    for t, start in enumerate(offsets):
        stop = offsets[t + 1] if t + 1 < len(offsets) else len(nodes)
        depth = np.zeros(stop - start, dtype=int)
        for node in range(stop - start):
            left = nodes[start + node]["left"]
            if left != node:
                depth[left] = depth[left + 1] = depth[node] + 1
            else:
                extra = values[start + node] - depth[node]
                assert np.min(np.abs(c_sizes - extra)) < 1e-12
    np.testing.assert_allclose(model.score_samples(X), _python_scores(forest, X, max_samples), rtol=1e-12)


@pytest.mark.parametrize("max_samples", [32, 700])
def test_ties_and_signed_zeros_score_like_the_python_walk(max_samples):
    """Rows sitting exactly on thresholds go left; -0.0 and 0.0 compare equal;
    infinities of the layout never capture a finite row (both layouts)."""
    rng = np.random.RandomState(5)
    X = np.round(rng.normal(size=(1000, 2)), 1)  # many ties and zeros
    model = IsolationForest(n_estimators=5, max_samples=max_samples, random_state=0).fit(X)
    forest = model._forest
    thr = forest.nodes["threshold"]
    thr = thr[np.isfinite(thr)]
    tiny = np.finfo(np.float64).tiny
    probes = np.r_[thr, -thr, 0.0, -0.0, tiny, -tiny, 5e-324, -5e-324, 1e308, -1e308]
    rows = np.c_[probes, probes[::-1]]
    rows = np.r_[rows, np.c_[probes, np.zeros_like(probes)], np.c_[-np.zeros_like(probes), probes]]
    np.testing.assert_allclose(model.score_samples(rows), _python_scores(forest, rows, max_samples), rtol=1e-12)
    # and float32 rows (widened to float64 before comparing)
    rows32 = rows[np.all(np.abs(rows) < 1e38, axis=1)].astype(np.float32)
    np.testing.assert_allclose(
        model.score_samples(rows32), _python_scores(forest, rows32.astype(np.float64), max_samples), rtol=1e-12
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, width=64), min_size=2, max_size=40),
)
def test_property_order_keys_preserve_double_order(values):
    """The complete-tree layout compares uint64 keys; their order must be the
    order of the doubles (with -0.0 == 0.0)."""
    v = np.array(values, dtype=np.float64)
    k = _isolation.order_keys(v)
    assert k.dtype == np.uint64
    np.testing.assert_array_equal(k[:, None] > k[None, :], v[:, None] > v[None, :])
    np.testing.assert_array_equal(k[:, None] == k[None, :], v[:, None] == v[None, :])


def test_max_samples_resolution(Estimator, rng):
    X = rng.normal(size=(100, 2))
    assert Estimator().fit(X).max_samples_ == 100
    assert Estimator(max_samples=0.5).fit(X).max_samples_ == 50
    assert Estimator(max_samples=30).fit(X).max_samples_ == 30
    with pytest.warns(UserWarning, match="greater than the total number"):
        assert Estimator(max_samples=500).fit(X).max_samples_ == 100


def test_max_features_restricts_split_features(rng):
    X = rng.normal(size=(400, 6))
    model = IsolationForest(max_features=2, n_estimators=30, random_state=0).fit(X)
    nodes, offsets = model._forest.nodes, model._forest.offsets
    bounds = list(offsets) + [len(nodes)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        tree = nodes[a:b]
        internal = tree["left"] != np.arange(b - a)
        assert len(np.unique(tree["feature"][internal])) <= 2
    with pytest.raises(ValueError, match="max_features"):
        IsolationForest(max_features=7).fit(X)


def test_bootstrap_changes_model_and_works(Estimator, blobs):
    X, y = blobs
    a = Estimator(random_state=0).fit(X).score_samples(X)
    b = Estimator(random_state=0, bootstrap=True).fit(X).score_samples(X)
    assert not np.array_equal(a, b)
    assert roc_auc_score(y, -b) > 0.95


def test_sample_weight_draws_rows_proportionally(Estimator, rng):
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(loc=10.0, size=(300, 2))])
    w = np.r_[np.ones(300), np.zeros(300)]  # the second cluster is never drawn
    model = Estimator(random_state=0).fit(X, sample_weight=w)
    only_first = Estimator(random_state=0).fit(X[:300])
    # a cluster the trees never saw is abnormal
    assert model.score_samples(X[300:]).mean() < only_first.score_samples(X[:300]).mean() - 0.1
    ones = Estimator(random_state=0).fit(X, sample_weight=np.ones(600))
    none = Estimator(random_state=0).fit(X)
    np.testing.assert_array_equal(ones.score_samples(X), none.score_samples(X))
    boot = Estimator(random_state=0, bootstrap=True).fit(X, sample_weight=w)
    assert boot.score_samples(X[300:]).mean() < boot.score_samples(X[:300]).mean() - 0.1
    with pytest.raises(ValueError, match="positive entries"):
        Estimator(max_samples=400).fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="[Nn]egative"):
        Estimator().fit(X, sample_weight=-np.ones(600))


# -- input handling ------------------------------------------------------------


def test_float32_input_works(Estimator, blobs):
    X, y = blobs
    X32 = X.astype(np.float32)
    model = Estimator(random_state=0).fit(X32)
    s32 = model.score_samples(X32)
    assert s32.dtype == np.float64
    np.testing.assert_array_equal(s32, model.score_samples(X32.astype(np.float64)))
    assert roc_auc_score(y, -s32) > 0.95


def test_integer_and_list_input(Estimator):
    X = [[0, 0], [1, 1], [0, 1], [1, 0], [10, 10]]
    model = Estimator(random_state=0).fit(X)
    assert model.score_samples(np.array(X, dtype=np.int64)).shape == (5,)
    assert np.argmin(model.score_samples(X)) == 4


def test_non_contiguous_input(Estimator, rng):
    X = rng.normal(size=(200, 6))
    model = Estimator(random_state=0).fit(X[:, ::2])
    np.testing.assert_array_equal(model.score_samples(X[:, ::2]), model.score_samples(np.ascontiguousarray(X[:, ::2])))
    np.testing.assert_array_equal(model.score_samples(np.asfortranarray(X[:, ::2])), model.score_samples(X[:, ::2]))


def test_pandas_feature_names(Estimator, rng):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    model = Estimator(random_state=0).fit(df)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        plain = model.score_samples(df.to_numpy())
    np.testing.assert_array_equal(model.score_samples(df), plain)
    with pytest.raises(ValueError, match="feature names"):
        model.score_samples(df[["c", "b", "a"]])


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((0, 2)), ValueError, "0 sample"),
        (np.zeros(4), ValueError, "2D array"),
        (np.array([["a", "b"]]), ValueError, "convert|string"),
    ],
    ids=["empty", "1d", "strings"],
)
def test_bad_input_at_fit_and_score(Estimator, rng, bad, error, match):
    with pytest.raises(error, match=match):
        Estimator().fit(bad)
    model = Estimator(random_state=0).fit(rng.normal(size=(50, 2)))
    with pytest.raises(error, match=match):
        model.score_samples(bad)


def test_wrong_feature_count_and_unfitted(Estimator, rng):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Estimator().score_samples(np.zeros((1, 2)))
    model = Estimator(random_state=0).fit(rng.normal(size=(50, 3)))
    for bad in (np.zeros((1, 2)), np.zeros((1, 4)), np.zeros((2000, 4))):
        with pytest.raises(ValueError, match="features"):
            model.score_samples(bad)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_estimators": 0}, "n_estimators"),
        ({"max_samples": 0}, "max_samples"),
        ({"max_samples": 1.5}, "max_samples"),
        ({"contamination": 0.7}, "contamination"),
        ({"max_features": 0.0}, "max_features"),
        ({"max_features": "all"}, "max_features"),
    ],
)
def test_out_of_range_parameters(Estimator, rng, params, match):
    with pytest.raises(ValueError, match=match):
        Estimator(**params).fit(rng.normal(size=(20, 2)))


def test_constant_and_tiny_data(Estimator):
    const = np.ones((50, 3))
    model = Estimator(random_state=0).fit(const)
    s = model.score_samples(const)
    assert np.all(s == s[0])  # every tree is one leaf of 50 points
    one = Estimator(random_state=0).fit([[1.0, 2.0]])
    assert one.score_samples([[1.0, 2.0]]).tolist() == [-0.5]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=60),
    d=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    est=st.sampled_from(ESTIMATORS),
)
def test_property_scores_are_finite_bounded_and_row_independent(n, d, seed, est):
    rng = np.random.RandomState(seed)
    X = rng.standard_cauchy(size=(n, d)).round(rng.randint(0, 3))
    model = est(n_estimators=10, random_state=seed).fit(X)
    s = model.score_samples(X)
    assert np.all(np.isfinite(s)) and np.all((s >= -1.0) & (s <= 0.0))
    # a row's score does not depend on the batch it is scored in
    single = np.array([model.score_samples(X[i : i + 1])[0] for i in range(n)])
    np.testing.assert_array_equal(s, single)


def test_scoring_blocks_are_whole_row_groups():
    """Block sizes are whole groups of rows, for any feature count."""
    groups = {_isolation.block_rows_for(d) % 12 for d in range(1, 400)}
    assert groups == {0}


@pytest.mark.parametrize("n", [1, 11, 12, 13, 23, 255, 256, 257, 300, 777])
def test_batch_sizes_around_block_edges_score_like_single_rows(Estimator, n):
    rng = np.random.RandomState(n)
    for d in (1, 3, 40):
        X = rng.normal(size=(n, d))
        model = Estimator(n_estimators=13, random_state=0).fit(rng.normal(size=(300, d)))
        batch = model.score_samples(X)
        single = np.array([model.score_samples(X[i : i + 1])[0] for i in range(n)])
        np.testing.assert_array_equal(batch, single)


def test_export_import_round_trip_without_pickle(Estimator, rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    model = Estimator(contamination=0.05, random_state=0).fit(X)
    arrays, state = model._export()
    assert all(a.dtype != object for a in arrays.values())
    import json

    state = json.loads(json.dumps(state))  # JSON-able
    clone = Estimator._import(model.get_params(), arrays, state)
    np.testing.assert_array_equal(clone.score_samples(X), model.score_samples(X))
    assert clone.offset_ == model.offset_
    assert list(clone.feature_names_in_) == ["a", "b", "c"]


def test_compact_rows_matches_boolean_mask_selection(rng):
    """compact_rows (memcpy per tree) equals selecting the first n_nodes[t]
    entries of each row with a boolean mask, for structured and 3-D arrays."""
    n_nodes = np.array([3, 0, 5, 1], dtype=np.int32)
    keep = np.arange(6)[None, :] < n_nodes[:, None]
    nodes = np.zeros((4, 6), dtype=_isolation.HYPERPLANE_NODE_DTYPE)
    nodes["offset"] = rng.normal(size=(4, 6))
    nodes["left"] = rng.randint(0, 9, size=(4, 6))
    normals = rng.normal(size=(4, 6, 2))
    for arr in (nodes, normals, rng.normal(size=(4, 6))):
        out = _isolation.compact_rows(arr, n_nodes)
        assert out.dtype == arr.dtype and out.shape == arr[keep].shape
        assert out.tobytes() == arr[keep].tobytes()
    assert _isolation.compact_rows(normals, np.zeros(4, dtype=np.int32)).shape == (0, 2)


def test_dense_weights_add_padding_terms(rng):
    normals = np.array([[0.5, 0.0], [1.5, -2.0]])
    terms = np.array([[2, 0], [0, 1]], dtype=np.int32)  # (node 0: padding on feature 0)
    dense = _isolation.dense_weights(normals, terms, 3).reshape(2, 3)
    np.testing.assert_array_equal(dense, [[0.0, 0.0, 0.5], [1.5, -2.0, 0.0]])


def test_a_plain_array_scored_by_a_model_with_feature_names_warns_like_sklearn_at_any_size(Estimator, rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    model = Estimator(n_estimators=10, random_state=0).fit(X)
    for n in (1, 5000):  # the small-batch fast path and validate_data
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            scores = model.score_samples(rng.normal(size=(n, 3)))
        assert scores.shape == (n,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.score_samples(X.iloc[:5])
