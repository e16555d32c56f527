"""Tests for anomaly_fast.HalfSpaceTrees: identity with river, API
equivalences, masses, pickling, bad input."""

import doctest
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import anomaly_fast.streaming.half_space_trees as hst_module
from anomaly_fast import HalfSpaceTrees

river_anomaly = pytest.importorskip("river.anomaly")


@pytest.fixture
def seed():
    return 20240607


def stream(rng, n=1500, d=3, outlier_every=50):
    """Points in [0, 1]^d around 0.5 with scattered outliers; labels."""
    X = np.clip(rng.normal(0.5, 0.08, size=(n, d)), 0, 1)
    y = np.zeros(n, dtype=int)
    y[::outlier_every] = 1
    X[::outlier_every] = rng.random((len(X[::outlier_every]), d))
    return X, y


def river_scores(X, **params):
    model = river_anomaly.HalfSpaceTrees(**params)
    out = []
    for row in X:
        x = dict(enumerate(row.tolist()))
        out.append(model.score_one(x))
        model.learn_one(x)
    return np.array(out, dtype=float)


@pytest.mark.parametrize(
    "params",
    [
        {"n_trees": 10, "height": 8, "window_size": 250},
        {"n_trees": 3, "height": 4, "window_size": 20},
        {"n_trees": 7, "height": 6, "window_size": 33},
        {"n_trees": 40, "height": 3, "window_size": 5},
    ],
)
@pytest.mark.parametrize("d", [1, 4])
def test_scores_identical_to_river_with_unit_limits(params, d, seed):
    rng = np.random.default_rng(seed + d)
    X, _ = stream(rng, n=800, d=d)
    expected = river_scores(X, seed=seed, **params)
    ours = HalfSpaceTrees(seed=seed, limits=[(0.0, 1.0)] * d, **params)
    assert np.array_equal(ours.score_learn_many(X), expected)


def test_river_example_reproduced():
    model = HalfSpaceTrees(n_trees=5, height=3, window_size=3, seed=42, limits={"x": (0.0, 1.0)})
    values = [0.5, 0.45, 0.43, 0.44, 0.445, 0.45, 0.0]
    for v in values[:3]:
        model.learn_one({"x": v})
    got = []
    for v in values:
        model.learn_one({"x": v})
        got.append(round(model.score_one({"x": v}), 3))
    assert got == [0.107, 0.071, 0.107, 0.107, 0.107, 0.071, 0.853]


def test_prequential_auc_matches_river(seed):
    rng = np.random.default_rng(seed)
    X, y = stream(rng, n=2000, d=4, outlier_every=40)
    ours, theirs = [], []
    for s in range(3):
        theirs.append(roc_auc_score(y, river_scores(X, seed=s, height=6, window_size=100)))
        model = HalfSpaceTrees(seed=s, height=6, window_size=100, limits=[(0, 1)] * 4)
        ours.append(roc_auc_score(y, model.score_learn_many(X)))
    assert np.mean(ours) == pytest.approx(np.mean(theirs), abs=0.02)
    assert np.mean(ours) > 0.8
    learned = HalfSpaceTrees(seed=0, height=6, window_size=100).score_learn_many(X)
    assert roc_auc_score(y, learned) > 0.8


def test_docstring_example():
    result = doctest.testmod(hst_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_regression_numbers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 3))
    model = HalfSpaceTrees(n_trees=5, height=5, window_size=100, seed=3)
    scores = model.score_learn_many(X)
    assert np.all(scores[:100] == 0.0)
    np.testing.assert_allclose(scores[[100, 350, 699]], [0.7509206349, 0.7980952381, 0.7182222222], atol=1e-9)
    np.testing.assert_allclose(model.limits_[0], [-2.39823287, 3.06603674], atol=1e-7)


@pytest.mark.parametrize("limits", [None, [(-1.0, 2.0)] * 3])
@pytest.mark.parametrize("score_rule", ["path", "terminal"])
def test_batch_equals_one_by_one(limits, score_rule, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.5, 0.3, size=(900, 3))

    def make():
        return HalfSpaceTrees(n_trees=6, height=5, window_size=64, limits=limits, seed=seed, score_rule=score_rule)

    batch = make()
    scores = batch.score_learn_many(X)
    arrays, dicts = make(), make()
    one_arr, one_dict = [], []
    for row in X:
        one_arr.append(arrays.score_one(row))
        arrays.learn_one(row)
        x = {"a": row[0], "b": row[1], "c": row[2]}
        one_dict.append(dicts.score_one(x))
        dicts.learn_one(x)
    assert np.array_equal(scores, one_arr) and np.array_equal(scores, one_dict)
    assert np.all(scores[:64] == 0.0) and np.all((scores >= 0) & (scores <= 1))
    assert scores[64:].std() > 0
    # learn_many in uneven chunks, then score_many, give the same model.
    chunks = make()
    for part in np.array_split(X, [1, 63, 64, 65, 300, 301]):
        chunks.learn_many(part)
    for a, b in zip(chunks.mass_profile(), batch.mass_profile()):
        assert np.array_equal(a, b)
    Z = rng.normal(0.5, 0.3, size=(50, 3))
    assert np.array_equal(chunks.score_many(Z), [batch.score_one(z) for z in Z])


def test_score_many_does_not_learn(seed):
    X = np.random.default_rng(seed).random((400, 2))
    model = HalfSpaceTrees(n_trees=4, height=4, window_size=50, seed=1).learn_many(X)
    before = model.mass_profile()
    model.score_many(X)
    model.score_one(X[0])
    after = model.mass_profile()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_window_pivot(seed):
    X = np.random.default_rng(seed).random((250, 2))
    model = HalfSpaceTrees(n_trees=3, height=4, window_size=100, limits=[(0, 1)] * 2, seed=2)
    model.learn_many(X[:100])
    reference, latest = model.mass_profile()
    assert np.all(latest == 0) and np.all(reference[:, 0] == 100)
    model.learn_many(X[100:180])
    reference2, latest2 = model.mass_profile()
    assert np.array_equal(reference2, reference) and np.all(latest2[:, 0] == 80)
    model.learn_many(X[180:200])
    reference3, latest3 = model.mass_profile()
    assert np.all(latest3 == 0) and np.all(reference3[:, 0] == 100)
    assert not np.array_equal(reference3, reference)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 400),
    window_size=st.integers(1, 60),
    height=st.integers(1, 6),
    data_seed=st.integers(0, 2**16),
)
def test_masses_per_depth_sum_to_window_points(n, window_size, height, data_seed):
    X = np.random.default_rng(data_seed).normal(size=(n, 2))
    model = HalfSpaceTrees(n_trees=3, height=height, window_size=window_size, limits=[(-2, 2)] * 2, seed=data_seed)
    model.learn_many(X)
    reference, latest = model.mass_profile()
    n_complete = n // window_size
    for depth in range(height + 1):
        level = slice(2**depth - 1, 2 ** (depth + 1) - 1)
        assert np.all(latest[:, level].sum(axis=1) == n % window_size)
        assert np.all(reference[:, level].sum(axis=1) == (window_size if n_complete else 0))
    # a child never holds more than its parent
    parents = np.arange(2**height - 1)
    assert np.all(latest[:, 2 * parents + 1] + latest[:, 2 * parents + 2] == latest[:, parents])


def test_learned_limits_and_values_outside(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 2))
    X[:, 1] = 7.0  # constant over the first window: never split on
    model = HalfSpaceTrees(n_trees=4, height=4, window_size=100, seed=0)
    model.learn_many(X)
    np.testing.assert_array_equal(model.limits_[:, 0], [X[:100, 0].min(), 7.0])
    np.testing.assert_array_equal(model.limits_[:, 1], [X[:100, 0].max(), 7.0])
    nodes = model._core._node_array()
    assert np.all(nodes["feature"][:, 1:16] == 0)
    far = model.score_many(np.array([[1e6, -1e6], [-1e6, 1e6]]))
    assert np.all((far >= 0) & (far <= 1))
    everything_constant = HalfSpaceTrees(n_trees=2, height=3, window_size=10, seed=0)
    everything_constant.learn_many(np.ones((30, 2)))
    np.testing.assert_array_equal(everything_constant.limits_, [[0.5, 1.5], [0.5, 1.5]])


def test_same_seed_same_results(seed):
    X = np.random.default_rng(seed).random((600, 3))
    a = HalfSpaceTrees(seed=5, window_size=100).score_learn_many(X)
    b = HalfSpaceTrees(seed=5, window_size=100).score_learn_many(X)
    c = HalfSpaceTrees(seed=6, window_size=100).score_learn_many(X)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("cut", [0, 30, 100, 257])
@pytest.mark.parametrize("limits", [None, [(0, 1)] * 2])
def test_pickle_round_trip(cut, limits, seed):
    X = np.random.default_rng(seed).random((500, 2))
    model = HalfSpaceTrees(n_trees=5, height=5, window_size=100, limits=limits, seed=9)
    model.learn_many(X[:cut]) if cut else None
    copy = pickle.loads(pickle.dumps(model))
    assert copy.get_params() == model.get_params()
    assert np.array_equal(copy.score_learn_many(X[cut:]), model.score_learn_many(X[cut:]))
    assert all(np.array_equal(a, b) for a, b in zip(copy.mass_profile(), model.mass_profile()))


def test_dict_input_and_features(seed):
    model = HalfSpaceTrees(n_trees=2, height=3, window_size=5, seed=0)
    model.learn_one({"b": 0.2, "a": 0.1})
    assert model.feature_names_in_ == ["a", "b"] and model.n_features_in_ == 2
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        model.learn_one({"a": 0.1})
    with pytest.raises(ValueError, match="unknown \\['c'\\]"):
        model.score_one({"a": 0.1, "b": 0.2, "c": 0.3})
    with pytest.raises(TypeError, match="numbers"):
        model.learn_one({"a": "x", "b": 0.2})
    import pandas as pd

    frame = pd.DataFrame({"b": [0.3, 0.4], "a": [0.1, 0.2]})
    twin = pickle.loads(pickle.dumps(model))
    model.learn_many(frame)
    twin.learn_many(np.array([[0.1, 0.3], [0.2, 0.4]]))
    assert all(np.array_equal(a, b) for a, b in zip(model.mass_profile(), twin.mass_profile()))


def test_dict_fast_path_identical_to_river(seed):
    """Dicts with the model's keys take the compiled conversion (cached key
    order): scores stay bit-identical to river's on the same dicts."""
    rng = np.random.default_rng(seed)
    X, _ = stream(rng, n=700, d=4)
    expected = river_scores(X, seed=seed, n_trees=10, height=8, window_size=250)
    model = HalfSpaceTrees(seed=seed, n_trees=10, height=8, window_size=250, limits=[(0.0, 1.0)] * 4)
    ours = []
    for row in X:
        x = dict(enumerate(row.tolist()))
        ours.append(model.score_one(x))
        model.learn_one(x)
    assert np.array_equal(np.array(ours), expected)


def test_dict_fast_path_values_and_fallbacks(seed):
    """Named keys, int / bool / numpy-scalar values and a pickled copy give
    the same results as the equivalent arrays; anything else goes to the
    validating path, which raises and leaves the model unchanged."""
    X = np.random.default_rng(seed).random((300, 3))
    names = ["z", "a", "m"]  # feature order: sorted names a, m, z
    by_dict = HalfSpaceTrees(n_trees=4, height=5, window_size=50, seed=1, limits=[(0, 1)] * 3)
    by_array = HalfSpaceTrees(n_trees=4, height=5, window_size=50, seed=1, limits=[(0, 1)] * 3)
    for row in X:
        by_dict.learn_one(dict(zip(names, row.tolist())))
        by_array.learn_one(np.array([row[1], row[2], row[0]]))
    assert by_dict.feature_names_in_ == ["a", "m", "z"]
    copy = pickle.loads(pickle.dumps(by_dict))
    for x, arr in [
        ({"a": 1, "m": 0, "z": True}, [1.0, 0.0, 1.0]),
        ({"a": np.float64(0.25), "m": 0.5, "z": 0.75}, [0.25, 0.5, 0.75]),
        ({"a": np.float32(0.25), "m": 0.5, "z": 0.75}, [0.25, 0.5, 0.75]),
    ]:
        expected = by_array.score_one(np.array(arr))
        assert by_dict.score_one(x) == expected and copy.score_one(x) == expected
    # any insertion order of the keys (in feature order, diverging part way, reversed)
    values = {"a": 0.3, "m": 0.6, "z": 0.9}
    expected = by_array.score_one(np.array([0.3, 0.6, 0.9]))
    for order in (["a", "m", "z"], ["a", "z", "m"], ["z", "m", "a"]):
        assert by_dict.score_one({k: values[k] for k in order}) == expected
    before = by_dict.mass_profile()
    for bad, error, match in [
        ({"a": 0.1, "m": 0.2}, ValueError, "missing \\['z'\\]"),
        ({"a": 0.1, "m": 0.2, "z": 0.3, "q": 0.0}, ValueError, "unknown \\['q'\\]"),
        ({"a": 0.1, "m": 0.2, "q": 0.0}, ValueError, "missing"),
        ({"a": "x", "m": 0.2, "z": 0.3}, TypeError, "numbers"),
        ({"a": float("nan"), "m": 0.2, "z": 0.3}, ValueError, "finite"),
        ({"a": 0.1, "m": float("-inf"), "z": 0.3}, ValueError, "finite"),
    ]:
        with pytest.raises(error, match=match):
            by_dict.learn_one(bad)
        with pytest.raises(error, match=match):
            by_dict.score_one(bad)
    with pytest.raises(OverflowError):  # an int too large for a float: the Python path's error
        by_dict.learn_one({"a": 10**400, "m": 0.2, "z": 0.3})
    assert all(np.array_equal(a, b) for a, b in zip(before, by_dict.mass_profile()))
    # a model that first saw arrays takes dicts keyed by position
    assert by_array.score_one({0: 0.1, 1: 0.2, 2: 0.3}) == by_array.score_one(np.array([0.1, 0.2, 0.3]))


@pytest.mark.parametrize("n_trees", [1, 32, 33])
@pytest.mark.parametrize("score_rule", ["path", "terminal"])
def test_one_point_walks_equal_batch_walks(n_trees, score_rule, seed):
    """score_one walks the trees of one point in its own loop when they fit
    in one group of lanes (up to 32) and in the batch kernel's loop beyond:
    both give the batch scores bit for bit, and learning after scoring the
    same masses."""
    X, _ = stream(np.random.default_rng(seed), n=300, d=3)
    params = dict(n_trees=n_trees, height=4, window_size=40, seed=seed, limits=[(0, 1)] * 3, score_rule=score_rule)
    ours, ref = HalfSpaceTrees(**params), HalfSpaceTrees(**params)
    one = []
    for x in X:
        one.append(ours.score_one(x))
        ours.learn_one(x)
    assert np.array_equal(one, ref.score_learn_many(X))
    assert np.std(one[40:]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(ours.mass_profile(), ref.mass_profile()))


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(["score", "learn", "both"]), st.integers(0, 5)), min_size=1, max_size=120),
    window_size=st.integers(1, 12),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_learn_after_score_reuses_walks_exactly(ops, window_size, data_seed):
    """score_one keeps its walks and learn_one on the same point reuses
    them; any order of scoring and learning of a few points (same point or
    not, across window pivots, after pickling) gives the scores and masses
    of the batch methods, which never reuse walks."""
    points = np.random.default_rng(data_seed).random((6, 3))
    params = dict(n_trees=3, height=4, window_size=window_size, seed=5, limits=[(0, 1)] * 3)
    ours, ref = HalfSpaceTrees(**params), HalfSpaceTrees(**params)
    for step, (op, i) in enumerate(ops):
        x = points[i].copy()  # a new array each time: equal values, not the same object
        if op in ("score", "both"):
            assert ours.score_one(x) == ref.score_many(x[None, :])[0]
        if op in ("learn", "both"):
            ours.learn_one(x)
            ref.learn_many(x[None, :])
        if step == len(ops) // 2:
            ours = pickle.loads(pickle.dumps(ours))
    assert all(np.array_equal(a, b) for a, b in zip(ours.mass_profile(), ref.mass_profile()))


def test_bad_input(seed):
    model = HalfSpaceTrees(n_trees=2, height=3, window_size=5, seed=0)
    model.learn_many(np.random.default_rng(seed).random((10, 3)))
    before = model.mass_profile()
    for bad in [np.array([0.1, np.nan, 0.2]), np.array([np.inf, 0, 0]), [0.1, 0.2, float("nan")]]:
        with pytest.raises(ValueError, match="finite"):
            model.learn_one(bad)
        with pytest.raises(ValueError, match="finite"):
            model.score_one(bad)
    with pytest.raises(ValueError, match="NaN|infinity"):
        model.learn_many(np.array([[0.1, 0.2, 0.3], [0.1, np.nan, 0.3]]))
    with pytest.raises(ValueError, match="2 features, expected 3"):
        model.learn_one(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="4 features, expected 3"):
        model.score_many(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="1-D"):
        model.score_one(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="0 sample"):
        model.learn_many(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="numeric"):
        model.learn_one(np.array(["a", "b", "c"]))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.mass_profile()))
    # int and float32 rows take the validated path and give the same result
    assert model.score_one(np.array([1, 0, 1])) == model.score_one(np.array([1.0, 0.0, 1.0]))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_trees": 0}, "n_trees"),
        ({"height": 0}, "height"),
        ({"height": 31}, "height"),
        ({"window_size": 0}, "window_size"),
        ({"seed": 1.5}, "seed"),
        ({"score_rule": "leaf"}, "score_rule"),
        ({"n_trees": 10**6, "height": 20}, "GiB"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_invalid_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        HalfSpaceTrees(**params)


@pytest.mark.parametrize("limits", [[(1, 0), (0, 1)], [(0, np.inf), (0, 1)], [0, 1], {"a": "x"}, [], [(0, 10**400)]])
def test_invalid_limits(limits):
    with pytest.raises(ValueError, match="limits"):
        HalfSpaceTrees(limits=limits)


@pytest.mark.parametrize("limits", [[(0, 1)], {"a": (0, 1)}])
def test_limits_not_matching_features(limits):
    model = HalfSpaceTrees(limits=limits)
    with pytest.raises(ValueError, match="limits"):
        model.learn_one({"a": 0.5, "b": 0.5} if isinstance(limits, dict) else np.array([0.5, 0.5]))


def test_reset_and_clone(seed):
    X = np.random.default_rng(seed).random((300, 2))
    model = HalfSpaceTrees(n_trees=3, height=4, window_size=50, seed=4)
    first = model.score_learn_many(X)
    model.reset()
    assert model.n_features_in_ is None and model.limits_ is None
    assert np.array_equal(model.score_learn_many(X), first)
    assert np.array_equal(clone(model).score_learn_many(X), first)


def test_threads_give_identical_results(seed):
    X = np.random.default_rng(seed).random((5000, 3))
    one = HalfSpaceTrees(n_trees=6, height=5, window_size=300, seed=1, n_jobs=1)
    two = HalfSpaceTrees(n_trees=6, height=5, window_size=300, seed=1, n_jobs=2)
    assert np.array_equal(one.score_learn_many(X), two.score_learn_many(X))
    assert np.array_equal(one.score_many(X), two.score_many(X))
    one.learn_many(X)
    two.learn_many(X)
    assert all(np.array_equal(a, b) for a, b in zip(one.mass_profile(), two.mass_profile()))
    assert one._core._window_index == two._core._window_index == 2 * 5000 // 300


def test_anomaly_score_is_score_many_and_serves_a_pipeline():
    from anomaly_fast import AnomalyPipeline

    rng = np.random.RandomState(3)
    X = rng.uniform(size=(600, 3))
    hst = HalfSpaceTrees(seed=1, window_size=100, limits=[(0, 1)] * 3)
    hst.learn_many(X)
    probe = np.vstack([rng.uniform(size=(5, 3)), [[0.99, 0.01, 0.99]]])
    np.testing.assert_array_equal(hst.anomaly_score(probe), hst.score_many(probe))
    pipe = AnomalyPipeline(hst, threshold=0.0, suppression_window=0.0, monitor_features=False)
    alerts = pipe.process_batch(probe, {"entity_id": "e", "timestamp": np.arange(6.0)})
    scored = [a.score for a in alerts if a is not None]
    assert len(scored) > 0
    np.testing.assert_allclose(scored, hst.anomaly_score(probe)[[i for i, a in enumerate(alerts) if a is not None]])


# -- restored state is validated before the kernel sees it ----------------------


def _fed_model(seed, n=330):
    model = HalfSpaceTrees(n_trees=4, height=4, window_size=50, limits=[(0, 1)] * 3, seed=2)
    model.learn_many(np.random.default_rng(seed).random((n, 3)))
    return model


def _node_field(field, index, value):
    def mutate(state):
        nodes = state["kernel"][0].copy()
        nodes[field][index] = value
        state["kernel"] = (nodes,) + state["kernel"][1:]

    return mutate


def _kernel_item(i, value):
    def mutate(state):
        state["kernel"] = state["kernel"][:i] + (value,) + state["kernel"][i + 1 :]

    return mutate


def _param(name, value):
    def mutate(state):
        state["params"][name] = value

    return mutate


BAD_HST_FIELDS = [
    ("truncated nodes", _kernel_item(0, None), "nodes must be an array"),
    ("feature index 2**30", _node_field("feature", (1, 3), 2**30), "nodes.feature"),  # was SIGSEGV
    ("negative feature", _node_field("feature", (0, 1), -1), "nodes.feature"),
    ("NaN threshold", _node_field("threshold", (2, 5), np.nan), "nodes.threshold"),
    ("negative mass", _node_field("latest", (0, 9), -3), "nodes.latest"),
    ("huge mass", _node_field("reference", (0, 9), 2**30), "nodes.reference"),
    ("masses that do not add up", _node_field("latest", (3, 20), 1), "children|root"),
    ("future window tag", _node_field("window", (0, 1), 10**6), "nodes.window"),
    ("count past the window", _kernel_item(2, 50), "count"),  # hung the kernel
    ("negative window", _kernel_item(1, -1), "window"),
    ("n_features too small", _kernel_item(3, 1), "n_features"),
    ("float window", _kernel_item(1, 6.0), "window must be an int"),
    ("unknown key", _param("surprise", 1), "unknown \\['surprise'\\]"),
    ("bad height", _param("_config", (4, 31, 50, True)), "height"),
    ("config not matching nodes", _param("_config", (4, 5, 50, True)), "nodes must have shape"),
    ("bad parameter", _param("n_trees", 0), "n_trees"),
    ("feature names", _param("feature_names_in_", ["a", "a", "b"]), "distinct"),
]


@pytest.mark.parametrize("name, mutate, match", BAD_HST_FIELDS, ids=[n for n, _, _ in BAD_HST_FIELDS])
def test_a_corrupted_pickle_gets_a_value_error_naming_the_field(name, mutate, match, seed):
    model = _fed_model(seed)
    state = model.__getstate__()
    state["kernel"][0].flags.writeable = True
    mutate(state)
    live = _fed_model(seed + 1, n=120)
    before = live.mass_profile()
    with pytest.raises(ValueError, match=match):
        live.__setstate__(state)
    assert all(np.array_equal(a, b) for a, b in zip(before, live.mass_profile()))
    with pytest.raises(ValueError, match=match):
        HalfSpaceTrees.__new__(HalfSpaceTrees).__setstate__(state)


def test_a_truncated_node_array_is_refused(seed):
    model = _fed_model(seed)
    state = model.__getstate__()
    state["kernel"] = (state["kernel"][0][:3],) + state["kernel"][1:]
    with pytest.raises(ValueError, match=r"shape \(4, 32\)"):
        HalfSpaceTrees.__new__(HalfSpaceTrees).__setstate__(state)


def test_the_state_of_a_model_still_in_its_first_window_round_trips(seed):
    X = np.random.default_rng(seed).random((200, 3))
    model = HalfSpaceTrees(n_trees=3, height=3, window_size=100, seed=1)
    model.learn_many(X[:40])
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.score_learn_many(X[40:]), model.score_learn_many(X[40:]))
