"""Old module paths of the issue-12 layout keep working for one release."""

import importlib
import io
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest

import anomaly_fast
from anomaly_fast import ExtendedIsolationForest, IsolationForest

MOVED = [
    ("anomaly_fast.isolation_forest", "IsolationForest", "anomaly_fast.forest.isolation_forest"),
    (
        "anomaly_fast.extended_isolation_forest",
        "ExtendedIsolationForest",
        "anomaly_fast.forest.extended_isolation_forest",
    ),
    ("anomaly_fast._forest", "average_path_length", "anomaly_fast.forest.base"),
    ("anomaly_fast._forest_format", "check_forest", "anomaly_fast.forest.format"),
    ("anomaly_fast.alert_store", "SQLiteAlertStore", "anomaly_fast.pipeline.alert_store"),
    ("anomaly_fast.registry", "load_model", "anomaly_fast.pipeline.registry"),
    ("anomaly_fast.pipeline_cli", "stream_main", "anomaly_fast.pipeline.cli"),
]


@pytest.mark.parametrize("old, name, new", MOVED)
def test_an_old_path_gives_the_new_object_with_a_deprecation_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_an_unknown_name_on_an_old_path_is_an_attribute_error_naming_both_paths():
    module = importlib.import_module("anomaly_fast.registry")
    with pytest.raises(AttributeError, match="anomaly_fast.pipeline.registry"):
        module.no_such_name  # noqa: B018


def test_the_new_paths_and_the_package_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from anomaly_fast.forest import IsolationForest as IF  # noqa: F401
        from anomaly_fast.pipeline import AnomalyPipeline, parse_timestamp  # noqa: F401

        for name in anomaly_fast.__all__:
            getattr(anomaly_fast, name)


@pytest.mark.parametrize(
    "cls, old",
    [
        (IsolationForest, "anomaly_fast.isolation_forest"),
        (ExtendedIsolationForest, "anomaly_fast.extended_isolation_forest"),
    ],
)
@pytest.mark.parametrize("dump, load", [(pickle.dumps, pickle.loads), ("joblib", "joblib")])
def test_a_pickle_naming_the_old_class_path_still_loads(monkeypatch, cls, old, dump, load):
    X = np.random.default_rng(0).normal(size=(200, 3))
    model = cls(n_estimators=10, random_state=0).fit(X)
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pickling looks the class up at its old path
        m.setattr(cls, "__module__", old)
        if dump == "joblib":
            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            blob = buffer.getvalue()
        else:
            blob = dump(model)
    assert old.encode() in blob
    with pytest.warns(DeprecationWarning):
        restored = joblib.load(io.BytesIO(blob)) if load == "joblib" else load(blob)
    assert type(restored) is cls
    np.testing.assert_array_equal(restored.score_samples(X), model.score_samples(X))


def test_import_anomaly_fast_does_not_import_scikit_learn():
    # the public names are imported on first use: `import anomaly_fast` and the CLI stay quick
    code = "import sys, anomaly_fast; print(sorted(m for m in ('sklearn', 'pandas', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_submodules_are_reachable_as_attributes_after_a_bare_import():
    code = (
        "import anomaly_fast as af; print(af.timeseries.STLDetector.__name__, af.evaluation.window_hits.__name__, "
        "af.pipeline.AnomalyPipeline.__name__, hasattr(af, 'no_such_module'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["STLDetector", "window_hits", "AnomalyPipeline", "False"]
