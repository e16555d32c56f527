import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from anomaly_fast.timeseries import LSTMDetector  # noqa: E402

SMALL = dict(window=12, hidden_size=8, n_layers=1, epochs=2, batch_size=2, learning_rate=1e-2, progress_bar=False)


def wave(n=300, seed=0):
    rng = np.random.RandomState(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 20) + 0.05 * rng.normal(size=n)


@pytest.fixture(scope="module")
def fitted():
    return LSTMDetector(random_state=0, **SMALL).fit(wave())


def test_conventions(fitted):
    y = wave(seed=1)
    y[200] += 4.0
    error = fitted.prediction_error(y)
    assert error.shape == (300,)
    assert (error[: fitted.window] == 0).all() and (error >= 0).all()
    np.testing.assert_allclose(fitted.score_samples(y), -error)
    np.testing.assert_allclose(fitted.decision_function(y), -error - fitted.offset_)
    assert fitted.offset_ == -fitted.error_threshold_
    assert set(np.unique(fitted.predict(y))) <= {-1, 1}
    np.testing.assert_array_equal(fitted.predict(y) == -1, error > fitted.error_threshold_)
    score = fitted.anomaly_score(y)
    assert ((score >= 0) & (score < 1)).all()
    np.testing.assert_array_equal(score > 0.5, error > fitted.error_threshold_)


def test_finds_spike(fitted):
    y = wave(seed=1)
    y[200] += 4.0
    assert int(np.argmax(fitted.anomaly_score(y))) == 200
    assert fitted.predict(y)[200] == -1


def test_training_quantile_threshold(fitted):
    errors = fitted.prediction_error(wave())[fitted.window :]
    assert fitted.error_threshold_ == pytest.approx(np.quantile(errors, 0.99), rel=1e-6)
    assert np.mean(errors > fitted.error_threshold_) <= 0.011
    assert len(fitted.train_loss_) == 2


def test_deterministic_with_random_state(fitted):
    again = LSTMDetector(random_state=0, **SMALL).fit(wave())
    np.testing.assert_array_equal(again.prediction_error(wave()), fitted.prediction_error(wave()))
    other = LSTMDetector(random_state=1, **SMALL).fit(wave())
    assert not np.array_equal(other.prediction_error(wave()), fitted.prediction_error(wave()))


def test_does_not_touch_the_global_torch_rng(fitted):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LSTMDetector(random_state=0, **SMALL).fit(wave(100))
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_multivariate():
    X = np.column_stack([wave(), np.cos(np.arange(300) / 5)])
    det = LSTMDetector(random_state=0, **SMALL).fit(X)
    assert det.n_features_in_ == 2 and det.mean_.shape == (2,)
    assert det.prediction_error(X).shape == (300,)
    with pytest.raises(ValueError, match="features"):
        det.predict(wave())


def test_save_load_and_pickle(fitted, tmp_path):
    y = wave(seed=2)
    path = tmp_path / "lstm.pt"
    fitted.save(path)
    loaded = LSTMDetector.load(path)
    np.testing.assert_array_equal(loaded.prediction_error(y), fitted.prediction_error(y))
    assert loaded.get_params() == fitted.get_params()
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(copy.prediction_error(y), fitted.prediction_error(y))


def test_progress_bar(capsys):
    LSTMDetector(random_state=0, **dict(SMALL, epochs=1, progress_bar=True)).fit(wave(100))
    assert "LSTMDetector" in capsys.readouterr().err
    LSTMDetector(random_state=0, **dict(SMALL, epochs=1)).fit(wave(100))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.full(50, np.nan), ValueError, "only NaN"),
        (np.r_[wave(50), np.inf], ValueError, "infinite"),
        (wave(10), ValueError, "13 steps"),
        (np.array(["a"] * 30), TypeError, "numbers"),
        (np.c_[wave(50), wave(50)] * np.r_[np.ones(99), np.nan].reshape(50, 2), ValueError, "NaN"),
    ],
)
def test_input_errors(X, error, match):
    with pytest.raises(error, match=match):
        LSTMDetector(**SMALL).fit(X)


def test_parameter_errors():
    with pytest.raises(ValueError, match="quantile"):
        LSTMDetector(quantile=1.5).fit(wave())
    with pytest.raises(ValueError, match="window"):
        LSTMDetector(window=0).fit(wave())


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LSTMDetector().predict(wave())


def test_importing_the_package_does_not_import_torch():
    code = "import sys, anomaly_fast, anomaly_fast.timeseries; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _expected_failures(estimator):
    why = "rows are consecutive time steps: a row's score depends on the rows before it"
    return {
        "check_methods_sample_order_invariance": why,
        "check_methods_subset_invariance": why,
        "check_fit1d": "a 1-D array is accepted as a univariate series",
    }


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks(
    [LSTMDetector(window=2, hidden_size=4, n_layers=1, epochs=1, random_state=0, progress_bar=False)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def trained():
    """Trained long enough (6 epochs) to have learnt the wave's shape."""
    return LSTMDetector(random_state=0, **dict(SMALL, epochs=6, hidden_size=16)).fit(wave())


def test_finds_level_shift_and_flat_line(trained):
    shifted = wave(seed=1)
    shifted[200:] += 3.0
    assert trained.predict(shifted)[200] == -1
    assert (trained.predict(shifted)[trained.window : 200] == 1).mean() > 0.95
    flat = wave(seed=1)
    flat[200:240] = flat[200]
    flagged = np.flatnonzero(trained.predict(flat) == -1)
    assert np.mean((flagged >= 200) & (flagged < 240)) > 0.7
    error = trained.prediction_error(flat)
    assert error[200:240].mean() > 10 * error[100:140].mean()


# ------------------------------------------------- the shared series input path
import pandas as pd  # noqa: E402


def timed(values, start="2024-01-01", freq="h"):
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq))


def test_a_timestamped_series_with_nan_duplicates_and_jitter_is_accepted(fitted):
    y = timed(wave(seed=1))
    y.iloc[200] += 4.0
    y.iloc[50:55] = np.nan
    y.index = y.index + pd.to_timedelta(np.where(np.arange(300) % 7 == 3, 3, 0), unit="min")
    doubled = pd.concat([y, y.iloc[[120]]])
    out = fitted.detect(doubled)
    assert out.index.equals(doubled.index)
    assert list(out.columns) == ["value", "error", "score", "is_anomaly", "alarm"]
    assert np.isfinite(out["score"]).all()
    assert np.flatnonzero(out["alarm"].to_numpy()).tolist()[0] == 200
    assert not out["is_anomaly"].iloc[50:55].any()  # filled cells never flag on their own
    assert out["error"].iloc[-1] == out["error"].iloc[120]  # the duplicate reads its cell
    np.testing.assert_array_equal(fitted.prediction_error(doubled), out["error"].to_numpy())


def test_the_same_series_as_array_and_on_timestamps_scores_the_same(fitted):
    y = wave(seed=2)
    np.testing.assert_allclose(fitted.prediction_error(timed(y)), fitted.prediction_error(y), rtol=1e-6)


def test_a_gap_longer_than_max_gap_restarts_the_history(fitted):
    y = timed(wave(seed=1))
    later = timed(wave(seed=3), start="2024-03-01")
    error = fitted.prediction_error(pd.concat([y, later]))
    assert (error[300 : 300 + fitted.window] == 0).all()  # no history window crosses the gap
    assert (error[300 + fitted.window :] > 0).all()


def test_fit_on_timestamps_learns_the_alarm_spacing():
    det = LSTMDetector(random_state=0, **SMALL).fit(timed(wave(), freq="5min"))
    assert det.period_ == 288
    assert LSTMDetector(random_state=0, **SMALL).fit(wave()).period_ == SMALL["window"]
    with pytest.raises(ValueError, match="univariate"):
        det.detect(np.c_[wave(), wave()])


def test_fit_and_scoring_leave_the_callers_torch_thread_count_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        det = LSTMDetector(random_state=0, **SMALL).fit(wave())
        det.prediction_error(wave())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
