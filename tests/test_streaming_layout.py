"""The streaming package's old module paths and old pickles."""

from __future__ import annotations

import importlib
import pathlib
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from anomaly_fast.streaming import ADWIN, FeatureMonitor, HalfSpaceTrees

LEGACY = pathlib.Path(__file__).parent / "data" / "legacy_streaming_0.1.0.pkl"
OLD_PATHS = {
    "anomaly_fast.adwin": "anomaly_fast.streaming.adwin",
    "anomaly_fast.half_space_trees": "anomaly_fast.streaming.half_space_trees",
    "anomaly_fast.feature_monitor": "anomaly_fast.streaming.feature_monitor",
}


def test_the_old_module_paths_warn_and_the_package_does_not():
    # a fresh interpreter: each warning is emitted once, at first import
    code = (
        "import warnings\n"
        "warnings.filterwarnings('error', 'anomaly_fast', DeprecationWarning)\n"
        "import anomaly_fast\n"  # warns about nothing
        f"for old in {list(OLD_PATHS)!r}:\n"
        "    try:\n"
        "        __import__(old)\n"
        "    except DeprecationWarning as w:\n"
        "        print(w)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == len(OLD_PATHS)
    for line, new in zip(lines, OLD_PATHS.values()):
        assert new in line


@pytest.mark.parametrize("old, new", OLD_PATHS.items())
def test_an_old_module_path_gives_the_same_objects(old, new):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    assert old_module.__all__ == new_module.__all__
    for name in new_module.__all__ + ["_check_state"]:
        assert getattr(old_module, name) is getattr(new_module, name)


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0",
    reason="the pickle was written under NumPy 2, whose pickles NumPy 1.x cannot load",
)
def test_pickles_written_before_the_move_load_and_score_as_before():
    # written by anomaly_fast 0.1.0 (classes in anomaly_fast.adwin etc., copyreg pickling)
    saved = pickle.loads(LEGACY.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        objects = pickle.loads(saved["objects"])
    adwin, hst, hst_dict, monitor = (objects[k] for k in ("adwin", "hst", "hst_dict", "feature_monitor"))
    assert type(adwin) is ADWIN and type(hst) is HalfSpaceTrees and type(monitor) is FeatureMonitor
    expected = saved["expected"]
    assert (adwin.width, adwin.total, adwin.n_detections) == expected["adwin"]
    probe = saved["probe"]
    assert hst.score_many(probe).tolist() == expected["hst"]
    assert [hst_dict.score_one({"a": p[0], "b": p[1]}) for p in probe] == expected["hst_dict"]
    # and they keep working: learn, pickle again with the new code, reload
    hst.learn_many(probe)
    adwin.update_many(np.zeros(10))
    monitor.update([0.5, 0.5], 100)
    again = pickle.loads(pickle.dumps(objects))
    assert again["hst"].score_many(probe).tolist() == hst.score_many(probe).tolist()
    assert again["adwin"].width == adwin.width
    assert again["feature_monitor"].feature_report() == monitor.feature_report()


# -- a Python model holding a compiled core ------------------------------------------


def test_the_per_call_methods_are_compiled():
    # no Python frame between the caller and the kernel (see benchmarks/streaming.md)
    import inspect

    adwin = ADWIN()
    method = adwin.update
    assert method.__self__ is adwin._core
    assert not inspect.isfunction(method.__func__)  # compiled, not Python
    # HalfSpaceTrees: methods of the model's type (its compiled base reaches the core through a
    # C field), so CPython specialises model.score_one(x) as it does any method call
    hst = HalfSpaceTrees()
    for name in ("learn_one", "score_one"):
        method = getattr(hst, name)
        assert method.__self__ is hst and name not in vars(hst)
        assert not inspect.isfunction(method.__func__)


def test_the_class_methods_give_the_same_results_as_the_bound_ones():
    rng = np.random.default_rng(0)
    X = rng.random((40, 2))
    a = HalfSpaceTrees(n_trees=3, height=3, window_size=10, limits=[(0, 1), (0, 1)], seed=1)
    b = HalfSpaceTrees(n_trees=3, height=3, window_size=10, limits=[(0, 1), (0, 1)], seed=1)
    for x in X:
        assert HalfSpaceTrees.score_one(a, x) == b.score_one(x)
        HalfSpaceTrees.learn_one(a, x)
        b.learn_one(x)
    assert ADWIN.update(ADWIN(), 1.0) is ADWIN().update(1.0) is False


def test_a_model_is_freed_as_soon_as_it_is_dropped():
    # the core holds no reference back to its model: no cycle, so the nodes
    # are freed without waiting for the cyclic collector
    import gc
    import weakref

    gc.disable()
    try:
        model = HalfSpaceTrees(n_trees=2, height=2, window_size=5)
        model.learn_one({"a": 1.0})  # the slow path, through the core
        ref = weakref.ref(model)
        del model
        assert ref() is None
    finally:
        gc.enable()


def test_a_bound_method_keeps_its_model():
    learn = HalfSpaceTrees(n_trees=2, height=2, window_size=5).learn_one
    learn({"a": 1.0})  # the model lives as long as its bound method
    assert learn.__self__.n_features_in_ == 1


def test_the_old_attribute_names_of_half_space_trees_warn_and_agree():
    model = HalfSpaceTrees(n_trees=2, height=2, window_size=5)
    model.learn_one({"b": 1.0, "a": 2.0})
    with pytest.warns(FutureWarning, match="n_features_in_"):
        assert model.n_features_ == model.n_features_in_ == 2
    with pytest.warns(FutureWarning, match="feature_names_in_"):
        assert model.feature_names_ == model.feature_names_in_ == ["a", "b"]


def test_a_pickle_holds_parameters_fitted_attributes_and_the_core_state_only():
    model = HalfSpaceTrees(n_trees=2, height=2, window_size=5)
    model.learn_one(np.array([1.0, 2.0]))
    state = model.__getstate__()
    assert set(state) == {"params", "kernel"}
    assert "_core" not in state["params"] and "learn_one" not in state["params"]
    adwin_state = ADWIN().__getstate__()
    assert set(adwin_state["params"]) == {"delta", "clock", "max_buckets", "min_window_length", "grace_period"}


def test_a_model_without_its_core_raises_instead_of_crashing():
    bare = HalfSpaceTrees.__new__(HalfSpaceTrees)  # __init__ never ran: no core
    for method in (bare.learn_one, bare.score_one):
        with pytest.raises(RuntimeError, match="no compiled core"):
            method(np.zeros(2))
