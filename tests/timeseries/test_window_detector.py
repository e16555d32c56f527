import pickle

import numpy as np
import pandas as pd
import pytest

from anomaly_fast import HalfSpaceTrees
from anomaly_fast.timeseries import WindowDetector


@pytest.fixture
def spiky(series):
    y = series.copy()
    y.iloc[600:603] += 15.0
    return y


@pytest.fixture
def fitted(series):
    return WindowDetector().fit(series.iloc[: 24 * 14])


def test_finds_the_anomaly_and_reports_on_the_callers_index(fitted, spiky):
    out = fitted.detect(spiky)
    assert out.index.equals(spiky.index)
    assert list(out.columns) == ["value", "anomaly_score", "score", "is_anomaly", "alarm"]
    assert fitted.window_ == 24 and fitted.period_ == 24  # the daily cycle, from the autocorrelation
    (alarm,) = np.flatnonzero(out["alarm"].to_numpy())
    assert 600 <= alarm <= 602
    assert ((out["anomaly_score"] >= 0) & (out["anomaly_score"] <= 1)).all()


def test_online_scores_and_alarms_equal_batch(fitted, spiky):
    gappy = spiky.drop(spiky.index[300:310])  # a filled hole on the way
    batch = fitted.detect(gappy)
    scores, alarms = [], []
    for t, v in gappy.items():
        scores.append(fitted.update(v, t))
        alarms.append(fitted.alarm_detected)
    np.testing.assert_allclose(scores, batch["score"].to_numpy(), rtol=0, atol=1e-12)
    assert alarms == batch["alarm"].tolist()


def test_online_restarts_after_a_long_gap(fitted, series):
    for t, v in series.iloc[:100].items():
        fitted.update(v, t)
    assert fitted._stream.filled == 24
    fitted.update(20.0, series.index[99] + pd.Timedelta(days=3))
    assert fitted._stream.filled == 1


def test_pickled_stream_resumes_identically(fitted, spiky):
    for t, v in spiky.iloc[:500].items():
        fitted.update(v, t)
    copy = pickle.loads(pickle.dumps(fitted))
    rest = spiky.iloc[500:]
    assert [fitted.update(v, t) for t, v in rest.items()] == [copy.update(v, t) for t, v in rest.items()]


@pytest.mark.parametrize(
    "field, bad, match",
    [("head", 99, "head"), ("filled", -1, "filled"), ("buffer", np.zeros(3), "buffer"), ("window", 5, "window")],
)
def test_a_bad_restored_stream_is_a_value_error_naming_the_field(fitted, series, field, bad, match):
    for t, v in series.iloc[:50].items():
        fitted.update(v, t)
    state = fitted.__getstate__()
    setattr(state["_stream"], field, bad)
    with pytest.raises(ValueError, match=match):
        pickle.loads(pickle.dumps(fitted))


def test_half_space_trees_stream_and_batch_run(series, spiky):
    det = WindowDetector(estimator=HalfSpaceTrees(seed=0, window_size=100)).fit(series.iloc[:500])
    out = det.detect(spiky)
    assert np.isfinite(out["score"]).all()
    assert out["score"].iloc[600:603].max() > out["score"].iloc[:590].quantile(0.99)
    assert np.isfinite([det.update(v, t) for t, v in spiky.iloc[:200].items()]).all()


def test_constant_series_is_quiet():
    y = pd.Series(np.full(24 * 10, 3.0), index=pd.date_range("2024-01-01", periods=240, freq="h"))
    out = WindowDetector().fit(y).detect(y)
    assert np.isfinite(out["score"]).all() and not out["alarm"].any()


def test_too_short_for_the_window_is_a_clear_error():
    with pytest.raises(ValueError, match="full windows"):
        WindowDetector(window=50, period=24).fit(np.arange(60.0))


def test_duplicates_and_nan(fitted, spiky):
    y = pd.concat([spiky, spiky.iloc[[10]]])
    y.iloc[50:55] = np.nan
    out = fitted.detect(y)
    assert out.index.equals(y.index) and np.isfinite(out["score"]).all()
    assert not out["alarm"].iloc[50:55].any()
