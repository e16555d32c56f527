"""The forest format's structural checks, one field at a time: each corrupted
field gets a ValueError that names it, and valid state (today's files and
pickles included) still loads to identical scores."""

import json
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from anomaly_fast import ExtendedIsolationForest, IsolationForest
from anomaly_fast.forest.format import FORMAT_V1, check_forest
from anomaly_fast.pipeline.registry import load_model

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).normal(size=(300, 4))


@pytest.fixture(scope="module")
def axis(X):
    return IsolationForest(n_estimators=6, max_samples=64, random_state=0).fit(X)


@pytest.fixture(scope="module")
def hyper(X):
    return ExtendedIsolationForest(n_estimators=6, max_samples=64, extension_level=2, random_state=0).fit(X)


def exported(model):
    arrays, state = model._export()
    return {k: a.copy() for k, a in arrays.items()}, {**state, "fitted": dict(state["fitted"])}


def refused(model, mutate, field):
    arrays, state = exported(model)
    mutate(arrays, state)
    with pytest.raises(ValueError, match=field):
        type(model)._import(model.get_params(), arrays, state)


def first(mask):
    return int(np.flatnonzero(mask)[0])


def leaf_of(arrays):
    nodes = arrays["nodes"]
    return first(nodes["left"] == np.arange(nodes.shape[0]) - 0)  # a leaf of tree 0 (local == global)


def internal_of(arrays, after=0):
    nodes = arrays["nodes"]
    return first((nodes["left"] != np.arange(nodes.shape[0])) & (np.arange(nodes.shape[0]) >= after))


# -- valid state loads ------------------------------------------------------------------
def test_exported_state_checks_clean_and_imports_to_identical_scores(axis, hyper, X):
    for model in (axis, hyper):
        arrays, state = exported(model)
        check_forest(model._forest_kind, arrays, json.loads(json.dumps(state)))
        clone = type(model)._import(model.get_params(), arrays, state)
        np.testing.assert_array_equal(clone.score_samples(X), model.score_samples(X))


@pytest.mark.parametrize("name, cls", [("if", IsolationForest), ("eif", ExtendedIsolationForest)])
def test_a_folder_written_by_the_previous_release_still_loads_to_the_same_scores(name, cls):
    expected = json.loads((DATA / "forest_v1_scores.json").read_text())
    model = load_model(DATA / f"forest_v1_{name}")
    assert type(model) is cls
    assert json.loads((DATA / f"forest_v1_{name}" / "meta.json").read_text())["format"] == FORMAT_V1
    np.testing.assert_array_equal(model.score_samples(np.array(expected["X"])), expected[name])


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0",
    reason="the pickle was written under NumPy 2, whose pickles NumPy 1.x cannot load",
)
@pytest.mark.parametrize("name, cls", [("if", IsolationForest), ("eif", ExtendedIsolationForest)])
def test_a_pickle_of_the_previous_release_still_loads_to_the_same_scores(name, cls):
    expected = json.loads((DATA / "forest_v1_scores.json").read_text())
    with pytest.warns(DeprecationWarning, match="anomaly_fast.forest"):  # it names the old module path
        model = pickle.loads((DATA / f"legacy_pickle_{name}.pkl").read_bytes())
    assert type(model) is cls
    np.testing.assert_array_equal(model.score_samples(np.array(expected["X"])), expected[name])
    # and it pickles again in the checked format
    assert "_forest_state" in model.__getstate__()
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(model)).score_samples(np.array(expected["X"])), expected[name]
    )


def test_a_kernel_forest_unpickled_on_its_own_refuses_to_score(axis, X):
    kernel = pickle.loads(pickle.dumps(axis._forest))
    assert not kernel.ready
    with pytest.raises(RuntimeError, match="not checked"):
        kernel.score_samples(X, np.empty(X.shape[0]))


# -- fields shared by both forests ----------------------------------------------------
@pytest.fixture(params=["axis", "hyper"])
def model(request, axis, hyper):
    return axis if request.param == "axis" else hyper


def test_n_features_differing_from_n_features_in_is_refused(model):
    refused(model, lambda a, s: s.update(n_features=s["n_features"] + 1), "n_features")


def test_n_features_in_and_n_features_both_too_large_are_refused(model):
    def mutate(a, s):
        s["n_features"] = s["fitted"]["n_features_in_"] = 2**40

    refused(model, mutate, "n_features_in_")


def test_feature_names_of_another_length_than_n_features_in_are_refused(model):
    refused(model, lambda a, s: s["fitted"].update(feature_names_in_=["a", "b"]), "feature_names_in_")


def test_a_child_pointing_back_at_its_parent_is_refused(model):
    def mutate(a, s):
        i = internal_of(a, after=1)
        a["nodes"]["left"][i] = i - 1

    refused(model, mutate, "nodes.left")


def test_a_child_past_the_end_of_its_tree_is_refused(model):
    refused(model, lambda a, s: a["nodes"]["left"].__setitem__(0, a["offsets"][1] - 1), "nodes.left")


def test_two_nodes_sharing_their_children_are_refused(model):
    def mutate(a, s):
        i = internal_of(a, after=1)
        a["nodes"]["left"][i] = a["nodes"]["left"][0]

    refused(model, mutate, "nodes.left")


def test_a_self_pointing_leaf_with_a_finite_split_is_refused(model):
    split = "threshold" if model._forest_kind == "axis" else "offset"
    refused(model, lambda a, s: a["nodes"][split].__setitem__(leaf_of(a), 0.5), f"nodes.{split}")


def test_a_stored_depth_other_than_the_walked_depth_is_refused(model):
    refused(model, lambda a, s: a["depths"].__setitem__(0, a["depths"][0] - 1), "depths")


def test_a_huge_stored_depth_is_refused(model):
    refused(model, lambda a, s: a["depths"].__setitem__(0, 2**30), "depths")


@pytest.mark.parametrize("value", [np.nan, np.inf, -1.0, 1e6])
def test_a_leaf_value_that_is_not_depth_plus_c_of_size_is_refused(model, value):
    refused(model, lambda a, s: a["values"].__setitem__(leaf_of(a), value), "values")


def test_a_non_zero_value_at_an_internal_node_is_refused(model):
    refused(model, lambda a, s: a["values"].__setitem__(0, 3.0), "values")


@pytest.mark.parametrize("value", [np.inf, 0.0, 1.0])
def test_a_denominator_other_than_n_trees_times_c_of_max_samples_is_refused(model, value):
    refused(model, lambda a, s: s.update(denominator=value), "denominator")


@pytest.mark.parametrize("value", [np.nan, np.inf, "x"])
def test_a_non_finite_offset_is_refused(model, value):
    refused(model, lambda a, s: s["fitted"].update(offset_=value), "offset_")


def test_max_depth_inconsistent_with_max_samples_is_refused(model):
    refused(model, lambda a, s: s["fitted"].update(_max_depth=30), "_max_depth")


def test_max_features_beyond_n_features_in_is_refused(model):
    refused(model, lambda a, s: s["fitted"].update(_max_features=5), "_max_features")


@pytest.mark.parametrize("value", [True, 64.0, 0])
def test_max_samples_that_is_not_a_positive_int_is_refused(model, value):
    refused(model, lambda a, s: s["fitted"].update(max_samples_=value), "max_samples_")


@pytest.mark.parametrize("key, dtype", [("values", np.float32), ("offsets", np.int32), ("depths", np.int64)])
def test_an_array_of_another_dtype_is_refused(model, key, dtype):
    refused(model, lambda a, s: a.update({key: a[key].astype(dtype)}), key)


def test_a_nodes_array_of_another_struct_is_refused(model):
    refused(model, lambda a, s: a.update(nodes=a["nodes"][a["nodes"].dtype.names[0]].copy()), "nodes")


def test_truncated_values_are_refused(model):
    refused(model, lambda a, s: a.update(values=a["values"][:-1]), "values")


def test_offsets_that_do_not_increase_are_refused(model):
    refused(model, lambda a, s: a.update(offsets=a["offsets"][::-1].copy()), "offsets")


def test_unknown_and_missing_keys_are_refused(model):
    refused(model, lambda a, s: s.update(extra=1), "unknown keys")
    refused(model, lambda a, s: s["fitted"].update(extra_=1), "unknown keys")
    refused(model, lambda a, s: a.update(extra=np.zeros(2)), "unknown keys")
    refused(model, lambda a, s: s["fitted"].pop("offset_"), "missing keys")
    refused(model, lambda a, s: a.pop("depths"), "missing keys")


# -- axis trees ------------------------------------------------------------------------
def test_a_split_feature_at_n_features_is_refused(axis):
    refused(axis, lambda a, s: a["nodes"]["feature"].__setitem__(0, 4), "nodes.feature")


def test_a_nan_threshold_at_an_internal_node_is_refused(axis):
    refused(axis, lambda a, s: a["nodes"]["threshold"].__setitem__(0, np.nan), "nodes.threshold")


# -- hyperplane trees --------------------------------------------------------------------
def test_a_hyperplane_term_at_n_features_is_refused(hyper):
    refused(hyper, lambda a, s: a["terms"].__setitem__((0, 0), 4), "terms")


def test_hyperplane_terms_out_of_order_are_refused(hyper):
    refused(hyper, lambda a, s: a["terms"].__setitem__(0, a["terms"][0][::-1].copy()), "terms")


def test_a_leaf_with_a_non_zero_normal_is_refused(hyper):
    refused(hyper, lambda a, s: a["normals"].__setitem__((leaf_of(a), 0), 1.0), "normals")


def test_n_terms_beyond_extension_level_plus_one_is_refused(hyper):
    refused(hyper, lambda a, s: a["nodes"]["n_terms"].__setitem__(0, 4), "nodes.n_terms")


def test_normals_of_another_width_than_extension_level_plus_one_are_refused(hyper):
    refused(hyper, lambda a, s: s["fitted"].update(extension_level_=1), "normals")


def test_extension_level_beyond_max_features_is_refused(hyper):
    refused(hyper, lambda a, s: s["fitted"].update(extension_level_=4), "extension_level_")


# -- pickles -----------------------------------------------------------------------------
def test_a_pickle_with_a_corrupted_forest_is_refused(model):
    state = model.__getstate__()
    state["_forest_state"]["state"] = {**state["_forest_state"]["state"], "denominator": float("nan")}
    clone = type(model).__new__(type(model))
    with pytest.raises(ValueError, match="denominator"):
        clone.__setstate__(state)


def test_a_pickle_with_fitted_attributes_outside_its_forest_state_is_refused(model):
    state = dict(model.__getstate__(), n_features_in_=99)
    with pytest.raises(ValueError, match="n_features_in_"):
        type(model).__new__(type(model)).__setstate__(state)


def test_pickling_does_not_touch_the_pickled_model(model, X):
    before = model.score_samples(X)
    pickle.dumps(model)
    assert hasattr(model, "_forest") and hasattr(model, "offset_")
    np.testing.assert_array_equal(model.score_samples(X), before)


# -- threads -----------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [None, 2])
def test_eight_threads_scoring_one_forest_get_the_single_threaded_scores(model, n_jobs):
    rng = np.random.RandomState(1)
    batches = [rng.normal(size=(n, 4)) * 2 for n in (1, 7, 300, 5000)]
    model = pickle.loads(pickle.dumps(model)).set_params(n_jobs=n_jobs)
    expected = [(model.score_samples(b), model.predict(b), model.anomaly_score(b)) for b in batches]
    errors, barrier = [], threading.Barrier(8)

    def work(seed):
        order = np.random.RandomState(seed).permutation(len(batches) * 5) % len(batches)
        barrier.wait()
        for i in order:
            got = (model.score_samples(batches[i]), model.predict(batches[i]), model.anomaly_score(batches[i]))
            if not all(np.array_equal(g, e) for g, e in zip(got, expected[i])):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("max_samples", [16, 256, 600])
def test_a_v1_forest_gets_the_missing_directions_a_fit_without_nan_stores(max_samples):
    """Migration from /1 derives each node's NaN side from the leaf sizes its
    leaf values encode: the same array the build kernel writes."""
    X = np.random.RandomState(3).normal(size=(700, 3))
    model = IsolationForest(n_estimators=8, max_samples=max_samples, random_state=1).fit(X)
    arrays, state = model._export()
    fitted_missing = arrays.pop("missing")
    del arrays["ranges"]  # /1 had neither
    clone = IsolationForest._import(model.get_params(), arrays, state, FORMAT_V1)
    np.testing.assert_array_equal(clone._forest.missing, fitted_missing)
    Xn = X[:50].copy()
    Xn[::3, 1] = np.nan
    np.testing.assert_array_equal(clone.score_samples(Xn), model.score_samples(Xn))


def test_missing_directions_are_checked():
    X = np.random.RandomState(3).normal(size=(200, 3))
    model = IsolationForest(n_estimators=3, random_state=1).fit(X)
    arrays, state = model._export()
    for bad in (2, "leaf"):
        a = dict(arrays, missing=arrays["missing"].copy())
        if bad == "leaf":
            a["missing"][
                a["nodes"]["left"]
                == np.arange(a["nodes"].shape[0])
                - np.repeat(a["offsets"], np.diff(np.r_[a["offsets"], a["nodes"].shape[0]]))
            ] = 1
        else:
            a["missing"][0] = 2
        with pytest.raises(ValueError, match="missing"):
            IsolationForest._import(model.get_params(), a, state)
    with pytest.raises(ValueError, match="arrays"):
        IsolationForest._import(model.get_params(), {k: v for k, v in arrays.items() if k != "missing"}, state)
