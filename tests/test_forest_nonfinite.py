"""Non-finite values in the forests (issue 11): infinities are accepted with
a documented rule, data without them keeps today's results bit for bit."""

import hashlib
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast import ExtendedIsolationForest, IsolationForest

# sha256 (first 16 hex digits) of score_samples on finite data, taken from the
# release before non-finite values were accepted.
PINNED_FINITE = {
    "if_heap": (IsolationForest, dict(n_estimators=30), "5ce2df2cdf6484f8"),
    "if_links": (IsolationForest, dict(n_estimators=10, max_samples=600), "e774b343d1c776d7"),
    "eif_dense": (ExtendedIsolationForest, dict(n_estimators=20), "224084cf3814bd28"),
    "eif_sparse": (
        ExtendedIsolationForest,
        dict(n_estimators=20, extension_level=0),
        "8a75a5c411876751",
    ),
    "eif_range": (
        ExtendedIsolationForest,
        dict(n_estimators=20, intercept="range"),
        "f61e06f906eb71f4",
    ),
}


def _digest(scores):
    return hashlib.sha256(np.ascontiguousarray(scores).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(PINNED_FINITE))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_data_scores_are_bit_identical_to_the_previous_release(case, dtype):
    Estimator, params, digest = PINNED_FINITE[case]
    X = np.random.RandomState(7).standard_t(3, size=(700, 5))
    model = Estimator(random_state=3, **params).fit(X)
    assert _digest(model.score_samples(X.astype(dtype))) == digest


# -- pure-Python reference walks ---------------------------------------------


def _score(forest, total):
    return -(2.0 ** (-total / forest.denominator)) if forest.denominator > 0 else -0.5


def _axis_reference(forest, x):
    """Walk every axis tree: right when x[feature] > threshold; a NaN goes
    left where ``missing`` is 1, else right."""
    total = 0.0
    for base in forest.offsets:
        i = 0
        while forest.nodes["left"][base + i] != i:
            node = forest.nodes[base + i]
            v = x[node["feature"]]
            right = (not forest.missing[base + i]) if np.isnan(v) else v > node["threshold"]
            i = node["left"] + int(right)
        total += forest.values[base + i]
    return _score(forest, total)


def _robust_dot(weights, features, x):
    """The documented rule for a dot product with infinite coordinates."""
    products = [w * x[f] for w, f in zip(weights, features) if w != 0.0]
    signs = {np.sign(p) for p in products if np.isinf(p)}
    if signs == {1.0}:
        return np.inf
    if signs == {-1.0}:
        return -np.inf
    return float(sum(p for p in products if np.isfinite(p)))


def _hyperplane_reference(forest, x):
    total = 0.0
    for base in forest.offsets:
        i = 0
        while forest.nodes["left"][base + i] != i:
            node = forest.nodes[base + i]
            dot = _robust_dot(forest.normals[base + i], forest.terms[base + i], x)
            i = node["left"] + int(dot > node["offset"])
        total += forest.values[base + i]
    return _score(forest, total)


def _with_infinities(X, mask_seed, fraction):
    rng = np.random.RandomState(mask_seed)
    X = X.copy()
    hit = rng.uniform(size=X.shape) < fraction
    X[hit] = rng.choice([-np.inf, np.inf], size=int(hit.sum()))
    return X


ESTIMATORS = {
    "IsolationForest": (IsolationForest, {}, _axis_reference),
    "EIF": (ExtendedIsolationForest, {}, _hyperplane_reference),
    "EIF-range": (ExtendedIsolationForest, {"intercept": "range"}, _hyperplane_reference),
    "EIF-level0": (ExtendedIsolationForest, {"extension_level": 0}, _hyperplane_reference),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    fraction=st.sampled_from([0.02, 0.2, 0.6]),
    n_features=st.integers(1, 4),
)
def test_infinities_fit_and_score_as_the_reference_walk(name, seed, fraction, n_features):
    """Splits stay finite (the structural checks pass on a pickle round trip),
    scores are finite and equal a pure-Python walk of the documented rule."""
    Estimator, params, reference = ESTIMATORS[name]
    rng = np.random.RandomState(seed)
    X = _with_infinities(rng.normal(size=(120, n_features)), seed + 1, fraction)
    model = Estimator(n_estimators=5, random_state=seed, **params).fit(X)
    model = pickle.loads(pickle.dumps(model))  # runs check_forest
    queries = np.vstack([X[:25], _with_infinities(rng.normal(size=(25, n_features)), seed, 0.3)])
    scores = model.score_samples(queries)
    assert np.all(np.isfinite(scores))
    expected = [reference(model._forest, x) for x in queries]
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=0)


def test_an_infinite_value_is_isolated_beyond_every_finite_value():
    """+inf goes right of every split on its feature, so a row far out at +inf
    is at least as anomalous as the training maximum."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 2))
    model = IsolationForest(random_state=0).fit(X)
    top = [X[:, 0].max(), 0.0]
    s_top, s_inf = model.score_samples([top, [np.inf, 0.0]])
    assert s_inf <= s_top
    assert np.all(np.isfinite(model.score_samples([[np.inf, -np.inf], [-np.inf, np.inf]])))


@pytest.mark.parametrize("Estimator", [IsolationForest, ExtendedIsolationForest])
def test_columns_of_only_infinities_still_split(Estimator):
    X = np.array([[np.inf], [-np.inf]] * 10 + [[1.0]])
    model = Estimator(n_estimators=3, random_state=0).fit(X)
    assert model._forest.nodes.shape[0] > 3  # not all single-leaf trees
    assert np.all(np.isfinite(model.score_samples(X)))


# -- missing values (NaN) in IsolationForest ----------------------------------


def _with_missing(X, seed, fraction):
    X = X.copy()
    X[np.random.RandomState(seed).uniform(size=X.shape) < fraction] = np.nan
    return X


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    fraction=st.sampled_from([0.05, 0.3, 0.8]),
    n_features=st.integers(1, 4),
    infinities=st.booleans(),
)
def test_missing_values_are_routed_as_the_reference_walk(seed, fraction, n_features, infinities):
    rng = np.random.RandomState(seed)
    X = _with_missing(rng.normal(size=(100, n_features)), seed, fraction)
    if infinities:
        X = _with_infinities(X, seed + 2, 0.1)
    model = pickle.loads(pickle.dumps(IsolationForest(n_estimators=4, random_state=seed).fit(X)))
    queries = np.vstack([X[:20], _with_missing(rng.normal(size=(20, n_features)), seed + 3, 0.5)])
    scores = model.score_samples(queries)
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, [_axis_reference(model._forest, x) for x in queries], rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_rows_with_nan_reach_the_leaves_that_counted_them(seed):
    """With max_samples = n every tree is grown on all rows: walking them with
    the stored NaN sides lands exactly the leaf sizes the leaf values encode,
    so fit and scoring route NaN the same way."""
    from anomaly_fast.forest.base import average_path_length

    X = _with_missing(np.random.RandomState(seed).normal(size=(60, 3)), seed, 0.3)
    model = IsolationForest(n_estimators=3, max_samples=60, random_state=seed).fit(X)
    f = model._forest
    table = average_path_length(np.arange(1, 61))
    for base in f.offsets:
        counts, depths = {}, {}
        for x in X:
            i, depth = 0, 0
            while f.nodes["left"][base + i] != i:
                node = f.nodes[base + i]
                v = x[node["feature"]]
                i = node["left"] + int((not f.missing[base + i]) if np.isnan(v) else v > node["threshold"])
                depth += 1
            counts[i] = counts.get(i, 0) + 1
            depths[i] = depth
        for leaf, n in counts.items():
            assert f.values[base + leaf] == pytest.approx(depths[leaf] + table[n - 1], abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    fraction=st.sampled_from([0.02, 0.1, 0.5]),
    n_features=st.integers(1, 40),
    n_rows=st.integers(1, 700),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_rows_with_nan_score_in_the_heap_layout_as_in_the_compact_walk(seed, fraction, n_features, n_rows, dtype):
    """Rows with NaN are scored in the "heap" layout (two columns per feature,
    the node's missing side chosen by its column); the result equals, bit for
    bit, the missing-aware walk of the compact nodes over the same rows."""
    rng = np.random.RandomState(seed)
    X = _with_infinities(_with_missing(rng.normal(size=(300, n_features)), seed, fraction), seed + 1, 0.02)
    forest = IsolationForest(n_estimators=7, random_state=seed).fit(X)._forest
    assert forest.layout == "heap"
    Q = _with_missing(rng.normal(size=(n_rows, n_features)), seed + 2, fraction).astype(dtype)
    heap, walk = np.empty(n_rows), np.empty(n_rows)
    forest.score_samples(Q, heap, has_missing=True)
    forest._score_split(Q.astype(np.float64), walk)
    assert np.array_equal(heap, walk)


def test_nan_free_fit_stores_the_larger_side_for_nan():
    X = np.random.RandomState(0).normal(size=(300, 2))
    f = IsolationForest(n_estimators=5, random_state=0).fit(X)._forest
    assert set(np.unique(f.missing)) <= {0, 1}
    # a NaN row scores as the reference walk with those sides
    q = np.array([[np.nan, 0.0], [0.0, np.nan], [np.nan, np.nan]])
    np.testing.assert_allclose(
        IsolationForest(n_estimators=5, random_state=0).fit(X).score_samples(q),
        [_axis_reference(f, x) for x in q],
        rtol=1e-12,
        atol=0,
    )


def test_missing_value_encodings_are_accepted_as_nan():
    pd = pytest.importorskip("pandas")
    X = np.random.RandomState(0).normal(size=(200, 2))
    X[::7, 0] = np.nan
    model = IsolationForest(random_state=0).fit(X)
    expected = model.score_samples(X[:14])
    as_object = X[:14].astype(object)
    as_object[np.isnan(X[:14])] = None
    np.testing.assert_array_equal(model.score_samples(as_object), expected)
    frame = pd.DataFrame(X[:14], columns=["a", "b"]).astype("Float64")  # NaN -> <NA>
    assert frame.isna().to_numpy().sum() == np.isnan(X[:14]).sum()
    np.testing.assert_array_equal(
        IsolationForest(random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]).astype("Float64")).score_samples(frame),
        expected,
    )
    assert model.__sklearn_tags__().input_tags.allow_nan


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[1 + 2j, 0.0]]), "[Cc]omplex"),
        (np.array([["a", "b"]], dtype=object), "convert|string"),
    ],
    ids=["complex", "strings"],
)
def test_complex_numbers_and_strings_get_scikit_learns_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        IsolationForest().fit(bad)


def test_accuracy_with_missing_values_is_close_to_scikit_learns():
    from sklearn.ensemble import IsolationForest as SklearnIsolationForest
    from sklearn.metrics import roc_auc_score

    ours, theirs = [], []
    for seed in range(4):
        rng = np.random.RandomState(seed)
        X = np.vstack([rng.normal(size=(1000, 4)), rng.uniform(-6, 6, size=(40, 4))])
        y = np.r_[np.zeros(1000), np.ones(40)]
        X = _with_missing(X, seed, 0.1)
        ours.append(roc_auc_score(y, -IsolationForest(random_state=seed).fit(X).score_samples(X)))
        theirs.append(roc_auc_score(y, -SklearnIsolationForest(random_state=seed).fit(X).score_samples(X)))
    assert np.mean(ours) > np.mean(theirs) - 0.01
