"""The streaming package's old module paths and old pickles."""

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


@pytest.mark.parametrize("old, new", OLD_PATHS.items())
def test_an_old_module_path_warns_and_gives_the_same_objects(old, new):
    # a fresh interpreter: the warning is emitted once, at first import
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        f"import {new} as new\n"
        "try:\n"
        f"    import {old}\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("warned:") and new in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    assert old_module.__all__ == new_module.__all__
    for name in new_module.__all__ + ["_check_state"]:
        assert getattr(old_module, name) is getattr(new_module, name)


def test_importing_the_package_warns_about_nothing():
    code = "import warnings; warnings.filterwarnings('error', 'anomaly_fast', DeprecationWarning); import anomaly_fast"
    subprocess.run([sys.executable, "-c", code], check=True)


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
