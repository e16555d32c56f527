import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest

from anomaly_fast import ExtendedIsolationForest, IsolationForest, ModelRegistry
from anomaly_fast.pipeline.registry import data_fingerprint, load_model, model_version, save_model


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
    assert meta["format"] == "anomaly_fast.forest/4"


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


# -- hardening (issue 10) -------------------------------------------------------------
@pytest.fixture
def saved(data, tmp_path):
    registry = ModelRegistry(tmp_path / "reg")
    version = registry.save(IsolationForest(n_estimators=5, random_state=0).fit(data), data)
    return registry, version


@pytest.mark.parametrize(
    "bad",
    ["v-0123456789abcdeg", "v-0123456789ABCDEF", "v-0123456789abcdef0", "../v-0123456789abcdef", "", 7, None],
)
def test_version_ids_other_than_v_and_16_hex_digits_are_refused(saved, bad):
    registry, _ = saved
    with pytest.raises(ValueError, match="no model version"):
        registry.load(bad)


def test_a_version_id_walking_out_of_the_registry_is_refused(saved, data, tmp_path):
    registry, version = saved
    elsewhere = ModelRegistry(tmp_path / "elsewhere")
    other = elsewhere.save(IsolationForest(n_estimators=5, random_state=1).fit(data))
    with pytest.raises(ValueError, match="no model version"):
        registry.load(f"{version}/../../elsewhere/{other}")


def test_a_symlinked_version_folder_is_refused(saved, data, tmp_path):
    registry, version = saved
    outside = tmp_path / "outside"
    save_model(IsolationForest(n_estimators=5, random_state=1).fit(data), outside)
    link = registry.root / "v-00000000000000aa"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="symlink"):
        registry.load("v-00000000000000aa")
    assert [v["version"] for v in registry.list_versions()] == [version]


def test_a_symlinked_model_file_is_refused(saved, tmp_path):
    registry, version = saved
    npz = registry.root / version / "model.npz"
    real = tmp_path / "real.npz"
    npz.rename(real)
    npz.symlink_to(real)
    with pytest.raises(ValueError, match="symlink"):
        registry.load(version)


def test_latest_is_the_last_saved_folder_whatever_its_meta_version_says(saved, data):
    registry, first_version = saved
    second = registry.save(IsolationForest(n_estimators=5, random_state=2).fit(data))
    meta_path = registry.root / second / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "../../etc"
    meta_path.write_text(json.dumps(meta))
    assert registry.list_versions()[-1]["version"] == second
    assert registry.metadata("latest")["version"] == second
    assert registry.load("latest").random_state == 2


def test_files_are_created_0600_and_folders_0700_by_default(saved):
    registry, version = saved
    folder = registry.root / version
    assert folder.stat().st_mode & 0o777 == 0o700
    assert registry.root.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {"meta.json": 0o600, "model.npz": 0o600}


def test_the_mode_parameter_sets_file_and_folder_permissions(data, tmp_path):
    registry = ModelRegistry(tmp_path / "shared", mode=0o640)
    version = registry.save(IsolationForest(n_estimators=5, random_state=0).fit(data))
    assert (registry.root / version).stat().st_mode & 0o777 == 0o750
    assert (registry.root / version / "meta.json").stat().st_mode & 0o777 == 0o640
    with pytest.raises(ValueError, match="mode"):
        ModelRegistry(tmp_path / "x", mode=0o044)


def test_feature_names_given_to_save_come_back_and_the_pipeline_shows_them(data, tmp_path):
    from anomaly_fast.pipeline import AnomalyPipeline

    registry = ModelRegistry(tmp_path)
    model = IsolationForest(n_estimators=10, random_state=0).fit(data)
    version = registry.save(model, data, feature_names=["cpu", "mem", "disk", "net"])
    loaded = registry.load(version)
    assert list(loaded.feature_names_in_) == ["cpu", "mem", "disk", "net"]
    assert model_version(loaded) == version
    pipeline = AnomalyPipeline(loaded)
    assert pipeline.feature_names == ["cpu", "mem", "disk", "net"]
    with pytest.raises(ValueError, match="feature_names"):
        registry.save(model, data, feature_names=["a", "b"])


def test_meta_feature_names_of_the_wrong_length_are_refused(saved):
    registry, version = saved
    meta_path = registry.root / version / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_names"] = ["a"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="feature_names"):
        registry.load(version)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda m: m.update(n_features=2**31, fitted={**m["fitted"], "n_features_in_": 2**31}), "n_features_in_"),
        (lambda m: m.update(n_features=40), "n_features"),
        (lambda m: m.update(denominator=float("inf")), "denominator"),
        (lambda m: m.update(surprise=1), "unknown keys"),
        (lambda m: m["params"].update(n_estimators=-1), "n_estimators"),
        (lambda m: m["params"].update(evil=1), "params"),
        (lambda m: m.update(saved_at="yesterday"), "saved_at"),
    ],
)
def test_edited_meta_fields_are_refused_naming_the_field(saved, edit, field):
    registry, version = saved
    meta_path = registry.root / version / "meta.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=field):
        load_model(registry.root / version)


def test_a_meta_json_with_nan_or_deep_nesting_is_refused(saved):
    registry, version = saved
    meta_path = registry.root / version / "meta.json"
    meta_path.write_text(meta_path.read_text().replace('"denominator": ', '"denominator": NaN, "x": '))
    with pytest.raises(ValueError):
        load_model(registry.root / version)
    meta_path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="JSON"):
        load_model(registry.root / version)


def test_compressed_or_oversized_npz_members_are_refused(saved):
    registry, version = saved
    folder = registry.root / version
    with np.load(folder / "model.npz") as f:
        arrays = {k: f[k].copy() for k in f.files}
    np.savez_compressed(folder / "model.npz", **arrays)
    with pytest.raises(ValueError, match="compressed"):
        load_model(folder)
    np.savez(folder / "model.npz", **arrays)
    raw = bytearray((folder / "model.npz").read_bytes())
    at = raw.index(b"'shape': (") + len(b"'shape': (")
    raw[at : at + 2] = b"99"  # declare far more data than the member holds
    (folder / "model.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        load_model(folder)


def test_a_truncated_npz_is_refused(saved):
    registry, version = saved
    npz = registry.root / version / "model.npz"
    npz.write_bytes(npz.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt"):
        registry.load(version)
