import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest

from anomaly_fast import ExtendedIsolationForest, IsolationForest, ModelRegistry
from anomaly_fast.registry import data_fingerprint, load_model, model_version, save_model


@pytest.fixture
def data(rng):
    return rng.normal(size=(300, 4))


@pytest.mark.parametrize(
    "make",
    [
        lambda: IsolationForest(n_estimators=20, random_state=0),
        lambda: IsolationForest(n_estimators=20, max_features=2, contamination=0.1, random_state=1),
        lambda: ExtendedIsolationForest(n_estimators=20, random_state=0),
        lambda: ExtendedIsolationForest(n_estimators=20, extension_level=1, random_state=2),
    ],
)
def test_round_trip_identical_scores(make, data, rng, tmp_path):
    model = make().fit(data)
    registry = ModelRegistry(tmp_path / "models")
    version = registry.save(model, data, feature_names=list("abcd"))
    loaded = registry.load(version)
    X = rng.normal(size=(500, 4)) * 2
    assert type(loaded) is type(model)
    assert list(loaded.feature_names_in_) == list("abcd")
    del loaded.feature_names_in_  # compare on plain arrays, without sklearn's name warning
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params() == model.get_params()
    for attr in ("offset_", "max_samples_", "n_features_in_", "_max_features", "_max_depth"):
        assert getattr(loaded, attr) == getattr(model, attr)
    if isinstance(model, ExtendedIsolationForest):
        assert loaded.extension_level_ == model.extension_level_
    loaded.feature_names_in_ = np.asarray(list("abcd"), dtype=object)
    assert model_version(loaded) == version


def test_feature_names_round_trip(data, tmp_path):
    import pandas as pd

    df = pd.DataFrame(data, columns=list("abcd"))
    model = IsolationForest(n_estimators=10, random_state=0).fit(df)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert list(loaded.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(loaded.score_samples(df), model.score_samples(df))


def test_versions_are_content_derived(data, tmp_path):
    registry = ModelRegistry(tmp_path)
    a = IsolationForest(n_estimators=10, random_state=0).fit(data)
    b = IsolationForest(n_estimators=10, random_state=0).fit(data)
    c = IsolationForest(n_estimators=10, random_state=1).fit(data)
    va, vb, vc = registry.save(a, data), registry.save(b, data), registry.save(c, data)
    assert va == vb != vc
    assert va.startswith("v-") and len(va) == 18
    listed = registry.list_versions()
    assert [v["version"] for v in listed] == [va, vc]
    assert listed[0]["params"]["n_estimators"] == 10
    assert registry.load("latest").random_state == 1


def test_metadata_fingerprint(data, tmp_path):
    registry = ModelRegistry(tmp_path)
    version = registry.save(IsolationForest(n_estimators=5, random_state=0).fit(data), data, tags={"team": "x"})
    meta = registry.metadata(version)
    fp = meta["training_data"]
    assert fp == data_fingerprint(data)
    assert fp["n_samples"] == 300 and fp["n_features"] == 4
    assert fp["min"] == data.min(axis=0).tolist()
    assert data_fingerprint(data + 1e-12)["sha256"] != fp["sha256"]
    assert meta["tags"] == {"team": "x"}
    assert meta["format"] == "anomaly_fast.forest/1"


def test_no_pickle_in_forest_files(data, tmp_path):
    model = IsolationForest(n_estimators=5, random_state=0).fit(data)
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["meta.json", "model.npz"]
    with zipfile.ZipFile(tmp_path / "m" / "model.npz") as z:
        for name in z.namelist():  # every member is a plain .npy, no object arrays
            with z.open(name) as f:
                header = f.read(256)
                assert b"'O'" not in header and b"object" not in header


def test_other_estimators_fall_back_to_joblib(data, tmp_path):
    sk = SkIsolationForest(n_estimators=10, random_state=0).fit(data)
    registry = ModelRegistry(tmp_path)
    with pytest.warns(UserWarning, match="joblib"):
        version = registry.save(sk, data)
    assert registry.metadata(version)["format"] == "joblib"
    with pytest.raises(ValueError, match="allow_pickle=True"):
        registry.load(version)
    with pytest.warns(UserWarning, match="pickled"):
        loaded = registry.load(version, allow_pickle=True)
    np.testing.assert_array_equal(loaded.score_samples(data), sk.score_samples(data))


def _corrupt(tmp_path, data, mutate):
    model = IsolationForest(n_estimators=5, random_state=0).fit(data)
    folder = tmp_path / "m"
    save_model(model, folder)
    with np.load(folder / "model.npz") as f:
        arrays = {k: f[k].copy() for k in f.files}
    mutate(arrays)
    np.savez(folder / "model.npz", **arrays)
    return folder


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: a["nodes"]["left"].__setitem__(0, 10_000), "nodes.left"),
        (lambda a: a["nodes"]["feature"].__setitem__(0, 99), "nodes.feature"),
        (lambda a: a.__setitem__("offsets", a["offsets"][::-1].copy()), "offsets"),
        (lambda a: a.__setitem__("values", a["values"][:-1]), "values"),
        (lambda a: a.pop("depths"), "expected .*depths.npy"),
        (lambda a: a.__setitem__("nodes", a["nodes"]["threshold"].copy()), "dtype"),
    ],
)
def test_corrupt_arrays_raise(data, tmp_path, mutate, match):
    folder = _corrupt(tmp_path, data, mutate)
    with pytest.raises(ValueError, match=match):
        load_model(folder)


def test_bad_registry_use(data, tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match="holds no model"):
        registry.load()
    with pytest.raises(ValueError, match="no model version"):
        registry.load("v-doesnotexist")
    with pytest.raises(ValueError, match="not fitted"):
        registry.save(IsolationForest())
    folder = tmp_path / "weird"
    save_model(IsolationForest(n_estimators=5).fit(data), folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["class"] = "os.system"
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown model format"):
        load_model(folder)
