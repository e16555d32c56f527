"""Tests of anomaly_fast.ensemble (AnomalyEnsemble and its helpers)."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.utils.estimator_checks import parametrize_with_checks

from anomaly_fast import AnomalyEnsemble, ExtendedIsolationForest, IsolationForest
from anomaly_fast import LocalOutlierFactor as CompiledLocalOutlierFactor
from anomaly_fast.ensemble import (
    COMBINATIONS,
    NORMALIZATIONS,
    apply_calibration,
    combine_scores,
    fit_calibration,
)


@pytest.fixture
def seed():
    return 0


@pytest.fixture
def data(seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(300, 3))
    X_new = np.vstack([rng.normal(size=(37, 3)) * 1.5, [[6.0, 6.0, 6.0], [0.0, 0.0, 9.0]]])
    return X, X_new


def three_detectors(seed=0):
    return [
        ("iforest", IsolationForest(n_estimators=50, random_state=seed)),
        ("eif", ExtendedIsolationForest(n_estimators=50, random_state=seed)),
        ("lof", LocalOutlierFactor(novelty=True, n_neighbors=15)),
    ]


def combination_params(combination):
    if combination == "mean":
        return {"weights": [2.0, 1.0, 0.5]}
    if combination in ("aom", "moa"):
        return {"groups": [["iforest", "eif"], ["lof"]]}
    return {}


# -- scikit-learn conformance ------------------------------------------------------
@parametrize_with_checks(
    [
        AnomalyEnsemble(),
        AnomalyEnsemble(normalization="zscore", combination="max", contamination=0.2),
        AnomalyEnsemble(normalization="minmax", combination="median"),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -- the central promise: a row scores the same alone and in any batch --------------
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_single_row_equals_batch(data, normalization, combination):
    X, X_new = data
    ens = AnomalyEnsemble(
        three_detectors(),
        normalization=normalization,
        combination=combination,
        **combination_params(combination),
    ).fit(X)
    batch = ens.anomaly_score(X_new)
    single = np.array([ens.anomaly_score(X_new[i : i + 1])[0] for i in range(len(X_new))])
    np.testing.assert_array_equal(single, batch)
    assert np.all((batch >= 0.0) & (batch <= 1.0))
    # the far-away rows score above every ordinary new row
    assert batch[-2:].min() > np.median(batch[:-2])


def test_single_row_equals_batch_on_wide_data_with_default_detectors():
    # Brute-force LOF distances go through BLAS and can differ in the last
    # bit between batch sizes; the default LOF uses a k-d tree.
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 40))
    X_new = rng.normal(size=(60, 40)) * 1.2
    ens = AnomalyEnsemble(normalization="zscore", random_state=0).fit(X)
    batch = ens.anomaly_score(X_new)
    single = np.array([ens.anomaly_score(X_new[i : i + 1])[0] for i in range(len(X_new))])
    np.testing.assert_array_equal(single, batch)


@pytest.fixture(scope="module")
def fitted_zscore():
    rng = np.random.RandomState(3)
    X = rng.normal(size=(250, 2))
    pool = np.vstack([rng.normal(size=(60, 2)) * 2.0, [[5.0, -5.0]]])
    ens = AnomalyEnsemble(normalization="zscore", random_state=0).fit(X)
    return ens, pool, ens.anomaly_score(pool)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=40))
def test_batch_composition_never_changes_a_row_score(fitted_zscore, rows):
    ens, pool, reference = fitted_zscore
    np.testing.assert_array_equal(ens.anomaly_score(pool[rows]), reference[rows])


# -- calibration helpers --------------------------------------------------------------
def test_rank_calibration_is_the_training_ecdf(seed):
    rng = np.random.RandomState(seed)
    train = rng.normal(size=101)
    new = np.concatenate([rng.normal(size=50), train[:5], [-10.0, 10.0]])
    mapped = apply_calibration(fit_calibration(train, "rank"), new)
    expected = np.array([(train <= v).mean() for v in new])
    np.testing.assert_array_equal(mapped, expected)
    assert mapped[-2] == 0.0 and mapped[-1] == 1.0


def test_zscore_calibration_is_robust_and_squashed():
    train = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, MAD 1
    cal = fit_calibration(train, "zscore")
    assert cal["center"] == 3.0
    assert cal["scale"] == pytest.approx(1.482602218505602)
    mapped = apply_calibration(cal, [3.0, 3.0 + 1.482602218505602, -1e9, 1e9])
    np.testing.assert_allclose(mapped, [0.5, 0.8413447460685429, 0.0, 1.0])


def test_zscore_calibration_degenerate_spreads():
    # MAD 0 -> mean absolute deviation; everything constant -> step at the value
    cal = fit_calibration([5.0, 5.0, 5.0, 9.0], "zscore")
    assert cal["scale"] == pytest.approx(1.2533141373155003 * 1.0)
    const = fit_calibration([2.0, 2.0, 2.0], "zscore")
    np.testing.assert_array_equal(apply_calibration(const, [1.0, 2.0, 3.0]), [0.0, 0.5, 1.0])


def test_minmax_calibration_clips():
    cal = fit_calibration([2.0, 4.0, 6.0], "minmax")
    np.testing.assert_array_equal(apply_calibration(cal, [0.0, 2.0, 5.0, 6.0, 7.0]), [0, 0, 0.75, 1, 1])
    const = fit_calibration([2.0, 2.0], "minmax")
    np.testing.assert_array_equal(apply_calibration(const, [1.0, 2.0, 3.0]), [0.0, 0.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(NORMALIZATIONS),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
    st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=50),
)
def test_calibrations_are_monotone_maps_into_unit_interval(normalization, train, new):
    cal = fit_calibration(np.array(train), normalization)
    new = np.sort(np.array(new))
    mapped = apply_calibration(cal, new)
    assert np.all((mapped >= 0.0) & (mapped <= 1.0))
    assert np.all(np.diff(mapped) >= 0.0)
    # one value at a time gives the same numbers
    np.testing.assert_array_equal([apply_calibration(cal, new[i : i + 1])[0] for i in range(len(new))], mapped)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(COMBINATIONS),
    st.integers(1, 4).flatmap(
        lambda m: st.lists(st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5), min_size=m, max_size=m)
    ),
)
def test_combinations_stay_between_the_component_extremes(combination, columns):
    comps = [np.array(c) for c in columns]
    combined = combine_scores(comps, combination)
    stacked = np.stack(comps)
    assert np.all(combined >= stacked.min(axis=0) - 1e-15)
    assert np.all(combined <= stacked.max(axis=0) + 1e-15)


def test_combinations_by_hand():
    a, b, c = np.array([0.1, 0.9]), np.array([0.5, 0.2]), np.array([0.3, 0.4])
    comps = [a, b, c]
    np.testing.assert_allclose(combine_scores(comps, "mean"), [0.3, 0.5])
    np.testing.assert_array_equal(combine_scores(comps, "max"), [0.5, 0.9])
    np.testing.assert_array_equal(combine_scores(comps, "median"), [0.3, 0.4])
    w = np.array([1.0, 2.0, 1.0])
    np.testing.assert_allclose(combine_scores(comps, "mean", weights=w), np.average(np.stack(comps), axis=0, weights=w))
    groups = [[0, 1], [2]]
    np.testing.assert_allclose(combine_scores(comps, "aom", groups=groups), [(0.5 + 0.3) / 2, (0.9 + 0.4) / 2])
    np.testing.assert_allclose(combine_scores(comps, "moa", groups=groups), [0.3, 0.55])
    # without groups every detector is its own group
    np.testing.assert_allclose(combine_scores(comps, "aom"), combine_scores(comps, "mean"))
    np.testing.assert_array_equal(combine_scores(comps, "moa"), combine_scores(comps, "max"))


# -- estimator behaviour ------------------------------------------------------------------
def test_default_detectors_and_lof_calibrated_without_self_match(data):
    X, _ = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    assert list(ens.named_estimators_) == ["iforest", "lof"]
    assert isinstance(ens.named_estimators_.iforest, IsolationForest)
    lof = ens.named_estimators_.lof
    assert isinstance(lof, CompiledLocalOutlierFactor) and lof.n_samples_fit_ == 256
    # rows the LOF was fitted on are scored without themselves, the others as new rows
    fitted = np.zeros(len(X), dtype=bool)
    fitted[lof.sample_indices_] = True
    expected = np.empty(len(X))
    expected[fitted] = -lof.negative_outlier_factor_
    expected[~fitted] = -lof.score_samples(X[~fitted])
    np.testing.assert_array_equal(ens.calibrations_[1]["sorted"], np.sort(expected))


def test_components_are_monotone_in_the_reference_scores(data):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    parts = ens.score_components(X_new)
    rows = ens.named_estimators_.lof.sample_indices_  # scikit-learn's LOF on the same rows
    reference = -LocalOutlierFactor(novelty=True, algorithm="kd_tree").fit(X[rows]).score_samples(X_new)
    order = np.argsort(reference, kind="stable")
    assert np.all(np.diff(parts["lof"][order]) >= 0)
    np.testing.assert_array_equal(ens.anomaly_score(X_new), (parts["iforest"] + parts["lof"]) / 2.0)


def test_score_components_as_frame(data):
    pd = pytest.importorskip("pandas")
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    frame = ens.score_components(pd.DataFrame(X_new, columns=["a", "b", "c"], index=np.arange(100, 139)), as_frame=True)
    assert list(frame.columns) == ["iforest", "lof"]
    assert list(frame.index) == list(range(100, 139))
    assert frame.to_numpy().min() >= 0 and frame.to_numpy().max() <= 1


def test_sklearn_score_conventions(data):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    a = ens.anomaly_score(X_new)
    np.testing.assert_array_equal(ens.score_samples(X_new), -a)
    np.testing.assert_array_equal(ens.decision_function(X_new), -a - ens.offset_)
    np.testing.assert_array_equal(ens.predict(X_new) == -1, a > ens.threshold_)
    assert ens.threshold_ == -ens.offset_


@pytest.mark.parametrize("contamination, expected", [("auto", 30), (0.05, 15), (0.2, 60)])
def test_contamination_flags_that_share_of_training_rows(data, contamination, expected):
    X, _ = data
    ens = AnomalyEnsemble(three_detectors(), normalization="zscore", contamination=contamination).fit(X)
    assert np.sum(ens.predict(X) == -1) == expected


def test_predict_threshold_override(data):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    a = ens.anomaly_score(X_new)
    t = float(np.median(a))
    np.testing.assert_array_equal(ens.predict(X_new, threshold=t), np.where(a > t, -1, 1))
    assert np.all(ens.predict(X_new, threshold=1.0) == 1)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        ens.predict(X_new, threshold=1.5)
    with pytest.raises(TypeError, match="threshold must be a real number"):
        ens.predict(X_new, threshold="high")


def test_planted_anomalies_are_found(seed):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(500, 4)), rng.uniform(-6, 6, size=(25, 4))])
    y = np.r_[np.zeros(500), np.ones(25)]
    ens = AnomalyEnsemble(random_state=0).fit(X)
    assert roc_auc_score(y, ens.anomaly_score(X)) > 0.95


def test_regression_scores_pinned():
    rng = np.random.RandomState(7)
    X = rng.normal(size=(200, 2))
    ens = AnomalyEnsemble(combination="max", random_state=0).fit(X)
    got = ens.anomaly_score([[0.0, 0.0], [1.5, -1.0], [3.0, 3.0]])
    # rank normalization: fractions of the 200 training rows
    np.testing.assert_array_equal(got, [0.44, 0.875, 1.0])


def test_nested_params_and_pickle(data):
    X, X_new = data
    ens = AnomalyEnsemble(three_detectors(), n_jobs=2)
    assert ens.get_params()["iforest__n_estimators"] == 50
    ens.set_params(iforest__n_estimators=20, lof__n_neighbors=10).fit(X)
    assert ens.named_estimators_.iforest.n_estimators == 20
    assert ens.named_estimators_.lof.n_neighbors == 10
    clone = pickle.loads(pickle.dumps(ens))
    np.testing.assert_array_equal(clone.anomaly_score(X_new), ens.anomaly_score(X_new))


def test_n_jobs_does_not_change_scores(data):
    X, _ = data
    big = np.tile(X, (5, 1))  # 1500 rows: scored on threads
    one = AnomalyEnsemble(three_detectors(), n_jobs=1).fit(X)
    two = AnomalyEnsemble(three_detectors(), n_jobs=2).fit(X)
    np.testing.assert_array_equal(one.anomaly_score(big), two.anomaly_score(big))


def test_validation_fast_path_agrees_with_full_validation(data):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    fast = ens.anomaly_score(X_new)  # small float64 ndarray: fast path
    np.testing.assert_array_equal(ens.anomaly_score(X_new.tolist()), fast)
    np.testing.assert_array_equal(
        ens.anomaly_score(X_new.astype(np.float32)), ens.anomaly_score(X_new.astype(np.float32).astype(np.float64))
    )
    big = np.tile(X_new, (30, 1))  # 1170 rows: full validation
    np.testing.assert_array_equal(ens.anomaly_score(big), np.tile(fast, 30))
    with pytest.raises(ValueError, match="infinity"):
        ens.anomaly_score(np.array([[np.inf, 0.0, 0.0]]))


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"detectors": []}, ValueError, "at least one"),
        ({"detectors": [IsolationForest()]}, TypeError, r"\(str, estimator\) tuples"),
        ({"detectors": [("a", IsolationForest()), ("a", IsolationForest())]}, ValueError, "unique"),
        ({"detectors": [("a__b", IsolationForest())]}, ValueError, "without '__'"),
        ({"detectors": [("lof", LocalOutlierFactor())]}, TypeError, "novelty=True"),
        ({"detectors": [("weights", IsolationForest())]}, ValueError, "clash"),
        ({"weights": [1.0, 1.0], "combination": "max"}, ValueError, "combination='mean' only"),
        ({"weights": [1.0]}, ValueError, "one value per detector"),
        ({"weights": [1.0, -1.0]}, ValueError, "non-negative"),
        ({"weights": [0.0, 0.0]}, ValueError, "not all zero"),
        ({"groups": [["iforest"], ["lof"]]}, ValueError, "'aom' or 'moa' only"),
        ({"groups": [["iforest"]], "combination": "aom"}, ValueError, "exactly one group"),
        ({"groups": [["iforest", "x"], ["lof"]], "combination": "moa"}, ValueError, "unknown detectors"),
        ({"normalization": "robust"}, ValueError, "normalization"),
        ({"combination": "sum"}, ValueError, "combination"),
        ({"contamination": 0.7}, ValueError, "contamination"),
    ],
)
def test_bad_parameters_raise(data, params, error, match):
    X, _ = data
    with pytest.raises(error, match=match):
        AnomalyEnsemble(**params).fit(X)


def test_bad_input_raises(data):
    X, _ = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    with pytest.raises(ValueError, match="infinity"):
        ens.anomaly_score([[np.inf, 0.0, 0.0]])
    with pytest.raises(ValueError, match="infinity"):
        AnomalyEnsemble().fit(np.vstack([X, [[np.inf, 0, 0]]]))
    with pytest.raises(ValueError, match="3 features"):
        ens.anomaly_score([[0.0, 0.0]])
    with pytest.raises(ValueError, match="1 sample"):
        AnomalyEnsemble().fit([[0.0, 1.0]])
    with pytest.raises(ValueError):
        ens.anomaly_score([["a", "b", "c"]])
    with pytest.raises(ValueError, match="0 sample"):
        ens.anomaly_score(np.empty((0, 3)))


def test_missing_values_reach_forests_as_nan_and_other_members_as_training_medians(data):
    X, _ = data
    X = X.copy()
    X[np.random.RandomState(1).rand(*X.shape) < 0.1] = np.nan
    ens = AnomalyEnsemble(random_state=0).fit(X)
    assert ens.__sklearn_tags__().input_tags.allow_nan
    rows = X[:50]
    medians = np.nanmedian(X, axis=0)  # every row is a calibration row here
    np.testing.assert_array_equal(ens.fill_values_, medians)
    forest, lof = ens.estimators_
    imputed = np.where(np.isnan(rows), medians, rows)
    components = ens.score_components(rows)
    np.testing.assert_array_equal(
        components["iforest"], apply_calibration(ens.calibrations_[0], forest.anomaly_score(rows))
    )
    np.testing.assert_array_equal(
        components["lof"], apply_calibration(ens.calibrations_[1], -lof.score_samples(imputed))
    )
    scores = ens.anomaly_score(rows)
    assert np.isfinite(scores).all()
    one_by_one = np.concatenate([ens.anomaly_score(rows[i : i + 1]) for i in range(rows.shape[0])])
    np.testing.assert_array_equal(one_by_one, scores)  # the lean single-row path agrees


def test_ensemble_pickled_before_fill_values_refuses_nan_clearly(data):
    X, _ = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    state = ens.__getstate__()
    del state["fill_values_"]
    old = AnomalyEnsemble.__new__(AnomalyEnsemble)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.anomaly_score(X[:5]), ens.anomaly_score(X[:5]))
    with pytest.raises(ValueError, match="refit"):
        old.anomaly_score([[np.nan, 0.0, 0.0]])


class _NaNDetector:
    """A broken detector whose scores are NaN."""

    def fit(self, X):
        return self

    def score_samples(self, X):
        return np.full(len(X), np.nan)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def test_a_detector_returning_nan_is_named(data):
    X, _ = data
    with pytest.raises(ValueError, match="detector 'broken' returned non-finite scores"):
        AnomalyEnsemble([("iforest", IsolationForest()), ("broken", _NaNDetector())]).fit(X)


class _DistanceDetector:
    """Only decision_function: distance to the training mean, negated and shifted."""

    def fit(self, X):
        self.center_ = np.asarray(X).mean(axis=0)
        return self

    def decision_function(self, X):
        return 3.0 - np.linalg.norm(np.asarray(X) - self.center_, axis=1)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def test_decision_function_only_detector(data):
    X, X_new = data
    ens = AnomalyEnsemble([("dist", _DistanceDetector())], normalization="minmax").fit(X)
    distance = np.linalg.norm(X - X.mean(axis=0), axis=1)
    expected = np.clip((np.linalg.norm(X_new - X.mean(axis=0), axis=1) - distance.min()) / np.ptp(distance), 0, 1)
    np.testing.assert_allclose(ens.anomaly_score(X_new), expected, rtol=0, atol=1e-12)


def test_positional_signature_follows_the_issue():
    ens = AnomalyEnsemble(None, "zscore", "max", 0.1, 2)
    assert (ens.normalization, ens.combination, ens.contamination, ens.n_jobs) == ("zscore", "max", 0.1, 2)
    with pytest.raises(TypeError):
        AnomalyEnsemble(None, "rank", "mean", "auto", None, [1.0, 1.0])  # weights is keyword-only


# -- the compiled LOF member, calibration sample, one validation per call ----------------------
def test_default_lof_member_is_subsampled_and_its_component_is_its_calibrated_score(seed):
    rng = np.random.RandomState(seed)
    X, X_new = rng.normal(size=(5000, 3)), rng.normal(size=(40, 3))
    ens = AnomalyEnsemble(random_state=0).fit(X)
    lof = ens.named_estimators_.lof
    assert lof.n_samples_fit_ == 256
    expected = apply_calibration(ens.calibrations_[1], -lof.score_samples(X_new))
    np.testing.assert_array_equal(ens.score_components(X_new)["lof"], expected)


def test_members_score_through_the_private_path_without_validating_again(data, monkeypatch):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0).fit(X)
    expected = ens.anomaly_score(X_new)

    def refuse(self, X):
        raise AssertionError("a member validated its input again")

    monkeypatch.setattr(CompiledLocalOutlierFactor, "score_samples", refuse)
    monkeypatch.setattr(IsolationForest, "score_samples", refuse)
    np.testing.assert_array_equal(ens.anomaly_score(X_new), expected)


def test_scikit_learn_lof_is_still_usable_as_a_member(data):
    X, X_new = data
    sk = LocalOutlierFactor(novelty=True, algorithm="kd_tree")
    ens = AnomalyEnsemble([("iforest", IsolationForest(random_state=0)), ("lof", sk)]).fit(X)
    ours = AnomalyEnsemble(
        [("iforest", IsolationForest(random_state=0)), ("lof", CompiledLocalOutlierFactor(max_samples=None))]
    ).fit(X)
    fitted = ens.named_estimators_.lof
    np.testing.assert_array_equal(ens.calibrations_[1]["sorted"], np.sort(-fitted.negative_outlier_factor_))
    # the compiled member on every row: the same calibration and LOF scores (no ties in this data)
    np.testing.assert_allclose(ours.calibrations_[1]["sorted"], ens.calibrations_[1]["sorted"], rtol=1e-12)
    np.testing.assert_allclose(fitted.score_samples(X_new), ours.named_estimators_.lof.score_samples(X_new), rtol=1e-12)
    np.testing.assert_allclose(ours.anomaly_score(X_new), ens.anomaly_score(X_new), rtol=1e-12)


def test_calibration_and_offset_use_a_bounded_sample_of_training_rows(seed, monkeypatch):
    import anomaly_fast.ensemble as ensemble_module

    monkeypatch.setattr(ensemble_module, "CALIBRATION_ROWS", 150)
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(600, 3))
    ens = AnomalyEnsemble(three_detectors(), contamination=0.2, random_state=3).fit(X)
    assert all(cal["sorted"].shape == (150,) for cal in ens.calibrations_)
    # the offset flags 20% of the 150 calibration rows, so about 20% of all rows
    assert abs(np.mean(ens.predict(X) == -1) - 0.2) < 0.08
    again = AnomalyEnsemble(three_detectors(), contamination=0.2, random_state=3).fit(X)
    assert again.offset_ == ens.offset_  # random_state seeds the sample


# -- restored state is validated -----------------------------------------------------------------
def _ensemble_state(data):
    X, _ = data
    return AnomalyEnsemble(random_state=0).fit(X).__getstate__()


def test_pickle_leaves_the_live_model_alone_and_restores_derived_fields(data):
    X, X_new = data
    ens = AnomalyEnsemble(random_state=0, weights=[2.0, 1.0]).fit(X)
    clone = pickle.loads(pickle.dumps(ens))
    assert "named_estimators_" in ens.__dict__ and ens._weights is not None
    np.testing.assert_array_equal(clone.anomaly_score(X_new), ens.anomaly_score(X_new))
    assert clone.threshold_ == ens.threshold_ and list(clone.named_estimators_) == ["iforest", "lof"]
    np.testing.assert_array_equal(clone._weights, [2.0, 1.0])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.update(surprise=1), "unknown fields"),
        (lambda s: s.pop("calibrations_"), "lacks fitted fields"),
        (lambda s: s.update(normalization="robust"), "normalization"),
        (lambda s: s.update(_names=["iforest", "other"]), "_names must be"),
        (lambda s: s.update(estimators_=s["estimators_"][:1]), "estimators_ must be a list of 2"),
        (lambda s: s.update(estimators_=[s["estimators_"][1], s["estimators_"][0]]), "must be a IsolationForest"),
        (lambda s: s.update(estimators_=[s["estimators_"][0], CompiledLocalOutlierFactor()]), "'lof' is not fitted"),
        (lambda s: s.update(n_features_in_=4), "has 3 features, not 4"),
        (lambda s: s["calibrations_"][0].update(kind="zscore"), "must be a 'rank' calibration"),
        (lambda s: s["calibrations_"][1].update(sorted=s["calibrations_"][1]["sorted"][::-1].copy()), "non-decreasing"),
        (lambda s: s["calibrations_"][1]["sorted"].__setitem__(0, np.nan), "finite"),
        (lambda s: s["calibrations_"][1].update(sorted=np.array([], dtype=np.float64)), "non-empty"),
        (lambda s: s.update(offset_=0.5), r"offset_ must be a finite number in \[-1, 0\]"),
        (lambda s: s.update(offset_=float("nan")), "offset_ must be"),
        (lambda s: s.update(weights=[1.0]), "one value per detector"),
        (lambda s: s.update(n_features_in_=True), "n_features_in_ must be an int"),
    ],
)
def test_a_corrupted_pickle_is_rejected_naming_the_field(data, mutate, match):
    state = _ensemble_state(data)
    mutate(state)
    restored = AnomalyEnsemble.__new__(AnomalyEnsemble)
    with pytest.raises(ValueError, match=match):
        restored.__setstate__(state)


def test_an_unfitted_ensemble_pickles(data):
    ens = pickle.loads(pickle.dumps(AnomalyEnsemble(normalization="zscore")))
    assert ens.normalization == "zscore" and not hasattr(ens, "estimators_")


def test_the_lean_default_path_equals_the_general_path(seed):
    rng = np.random.RandomState(seed)
    X, X_new = rng.normal(size=(2000, 3)), rng.normal(size=(1200, 3))
    ens = AnomalyEnsemble(random_state=0).fit(X)
    assert ens._lean_members is not None  # rank + mean + anomaly_fast members
    general = combine_scores(ens._components(X_new), "mean")  # 1200 rows: not the lean path
    np.testing.assert_array_equal(ens.anomaly_score(X_new), general)
    np.testing.assert_array_equal(ens.anomaly_score(X_new[:7]), general[:7])  # lean
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ens)).anomaly_score(X_new[:7]), general[:7])
    assert AnomalyEnsemble(normalization="zscore").fit(X)._lean_members is None
    assert AnomalyEnsemble(three_detectors()).fit(X)._lean_members is None
