import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from anomaly_fast.timeseries import STLDetector, stl_anomaly_detection

from conftest import seasonal

COLUMNS = ["value", "trend", "seasonal", "residual", "z_score", "is_anomaly", "score", "alarm"]


def alarms(out):
    return np.flatnonzero(out["alarm"].to_numpy()).tolist()


@pytest.fixture
def fitted(series):
    return STLDetector().fit(series.iloc[: 24 * 10])


def test_columns_index_and_finite(fitted, series):
    out = fitted.detect(series)
    assert list(out.columns) == COLUMNS
    assert out.index.equals(series.index)
    assert np.isfinite(out.drop(columns=["is_anomaly", "alarm"]).to_numpy(dtype=float)).all()
    assert (out["score"] >= 0).all()
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > 1)
    assert fitted.period_ == 24


def test_clean_series_raises_no_alarm_where_textbook_floods(fitted, series):
    assert alarms(fitted.detect(series)) == []
    assert stl_anomaly_detection(series)["is_anomaly"].sum() > 20


def test_spike(fitted, series):
    y = series.copy()
    y.iloc[600] += 6.0
    assert alarms(fitted.detect(y)) == [600]


@pytest.mark.parametrize("jump", [5.0, -5.0])
def test_level_shift_raises_one_alarm_near_the_shift(fitted, series, jump):
    y = series.copy()
    y.iloc[600:] += jump
    found = alarms(fitted.detect(y))
    assert len(found) == 1
    assert abs(found[0] - 600) <= 12  # STL's trend is centred: it may lead by half a window


def test_flat_line(fitted, series):
    y = series.copy()
    y.iloc[600:640] = y.iloc[600]
    found = alarms(fitted.detect(y))
    assert len(found) >= 1 and all(595 <= t <= 640 for t in found)


def test_recurring_spikes_stop_alarming(series):
    y = series.copy()
    y.iloc[5::24] += 6.0  # every day at 05:00: part of the pattern
    out = STLDetector().fit(y).detect(y)
    assert len(alarms(out)) <= 1


def test_min_spacing_and_novelty_parameters(fitted, series):
    y = series.copy()
    y.iloc[[600, 610]] += 8.0
    assert alarms(fitted.detect(y)) == [600]  # 610 is within one period
    assert alarms(clone(fitted).set_params(min_spacing=5).fit(series.iloc[:240]).detect(y)) == [600, 610]


def test_regression_numbers(fitted, series):
    y = series.copy()
    y.iloc[600] += 6.0
    out = fitted.detect(y)
    assert fitted.residual_scale_ == fitted.forecast_scale_ == pytest.approx(0.60099, abs=1e-4)
    assert out["score"].iloc[600] == pytest.approx(2.0382, abs=1e-3)
    assert int(out["is_anomaly"].sum()) == 1
    batch = STLDetector(mode="batch").fit(series.iloc[: 24 * 10])
    assert batch.residual_scale_ == pytest.approx(0.31808, abs=1e-4)
    assert batch.detect(y)["score"].iloc[600] == pytest.approx(2.3641, abs=1e-3)


@pytest.mark.parametrize("change", ["spike", "shift"])
def test_batch_mode_centred_stl_finds_a_spike_and_a_shift(series, change):
    y = series.copy()
    if change == "spike":
        y.iloc[600] += 6.0
    else:
        y.iloc[600:] += 5.0
    found = alarms(STLDetector(mode="batch").fit(series.iloc[: 24 * 10]).detect(y))
    assert len(found) == 1 and abs(found[0] - 600) <= 12  # centred STL may lead a shift by half a window


def test_a_slow_drift_is_flagged_by_the_online_trend_channel(series):
    y = series.copy()
    y.iloc[600:] += 0.05 * np.arange(len(y) - 600)  # 1.2 per day: no single point stands out
    det = STLDetector().fit(series.iloc[: 24 * 10])
    assert det.forecast_trend_scale_ is not None
    found = alarms(det.detect(y))
    assert len(found) == 1 and 600 < found[0] <= 600 + 5 * 24
    det.forecast_trend_scale_ = det.forecast_trend_center_ = None  # the channel off: the drift goes unseen
    assert alarms(det.detect(y)) == []


def test_the_online_trend_channel_needs_six_training_periods(series):
    assert STLDetector().fit(series.iloc[: 24 * 5]).forecast_trend_scale_ is None
    assert STLDetector().fit(series.iloc[: 24 * 7]).forecast_trend_scale_ is not None


def test_constant_and_noiseless_series_are_finite_and_quiet():
    index = pd.date_range("2024-01-01", periods=24 * 14, freq="h")
    for values in (np.full(len(index), 45.0), np.tile(np.r_[np.zeros(12), np.full(12, 20.0)], 14)):
        y = pd.Series(values, index=index)
        out = STLDetector().fit(y).detect(y)
        assert np.isfinite(out["score"]).all()
        assert alarms(out) == []
        assert (out["z_score"] == 0).all()


def test_missing_timestamps_and_nans(fitted, series):
    y = series.drop(series.index[300:306]).copy()
    y.iloc[100] = np.nan
    out = fitted.detect(y)
    assert out.index.equals(y.index)
    assert np.isfinite(out["score"]).all()
    assert alarms(out) == []


def test_period_from_constructor_and_arrays(series):
    det = STLDetector(period=24).fit(series.to_numpy())
    out = det.detect(series.to_numpy())
    assert isinstance(out.index, pd.RangeIndex)
    with pytest.raises(ValueError, match="pass period"):
        STLDetector().fit(series.to_numpy())


def test_errors(series):
    with pytest.raises(NotFittedError):
        STLDetector().detect(series)
    with pytest.raises(ValueError, match="threshold"):
        STLDetector(threshold=-1).fit(series)
    with pytest.raises(ValueError, match="novelty_quantile"):
        STLDetector(novelty_quantile=1.0).fit(series)
    with pytest.raises(ValueError, match="at least 2 periods"):
        STLDetector().fit(series).detect(series.iloc[:30])
    with pytest.raises(TypeError, match="numbers"):
        STLDetector(period=3).fit(["a", "b"] * 10)


def test_same_alarms_on_a_different_noise_draw():
    y = seasonal(seed=1)
    y.iloc[700] -= 6.0
    assert alarms(STLDetector().fit(y.iloc[:240]).detect(y)) == [700]


def test_online_mode_scores_from_the_past_only(series):
    y = series.copy()
    y.iloc[600] += 8.0  # 6.0 is borderline for the 4-period forecast (score 0.96)
    y.iloc[800:] += 5.0
    det = STLDetector(mode="online").fit(series.iloc[: 24 * 10])
    out = det.detect(y)
    assert list(out.columns) == COLUMNS
    assert np.isfinite(out.drop(columns=["is_anomaly", "alarm"]).to_numpy(dtype=float)).all()
    assert alarms(out) == [600, 800]
    assert (out["score"].iloc[:48] == 0).all()
    # no look-ahead: changing the future leaves earlier scores untouched
    changed = y.copy()
    changed.iloc[700:] += 50.0
    np.testing.assert_array_equal(det.detect(changed)["score"].iloc[:700], out["score"].iloc[:700])


def test_online_mode_needs_three_training_periods(series):
    with pytest.raises(ValueError, match="at least 3 periods"):
        STLDetector(mode="online").fit(series.iloc[:60])
    with pytest.raises(ValueError, match="mode"):
        STLDetector(mode="stream").fit(series)


def test_duplicated_and_jittered_timestamps_are_accepted_and_reported_back(fitted, series):
    y = series.copy()
    y.iloc[600] += 8.0
    jittered = y.copy()
    jittered.index = y.index + pd.to_timedelta(np.where(np.arange(len(y)) % 7 == 3, 4, 0), unit="min")
    doubled = pd.concat([jittered, jittered.iloc[[600]]])  # the spike's row twice
    out = fitted.detect(doubled)
    assert out.index.equals(doubled.index)
    # one alarm, on the first of the two rows
    assert np.flatnonzero(out["alarm"].to_numpy()).tolist() == [600]
    assert out["score"].iloc[600] == out["score"].iloc[-1] > 1


def test_a_filled_stretch_never_raises_an_alarm_on_its_own(fitted, series):
    y = series.copy()
    y.iloc[598] = 28.0  # the last value before a hole ...
    y.iloc[599:615] = np.nan  # ... is carried into the hole by interpolation
    out = fitted.detect(y)
    rows = alarms(out)
    assert all(np.isfinite(y.iloc[r]) for r in rows)
    assert not out["is_anomaly"].iloc[599:615].any()


def test_a_gap_longer_than_max_gap_restarts_the_detector(fitted, series):
    long = pd.concat([series, seasonal(n=24 * 10, seed=3, start="2024-03-01")])
    out = fitted.detect(long)  # a gap of ~18 days: two segments
    assert out.index.equals(long.index)
    assert np.isfinite(out["score"]).all()
    assert alarms(out) == []
    short = pd.concat([series, seasonal(n=24, seed=3, start="2024-03-01")])
    with pytest.warns(UserWarning, match="shorter than three periods"):
        out = fitted.detect(short)
    assert (out["score"].iloc[-24:] == 0).all()


def test_shorter_than_two_periods_is_a_clear_error(fitted, series):
    with pytest.raises(ValueError, match="at least 2 periods"):
        fitted.detect(series.iloc[:47])
    with pytest.raises(ValueError, match="at least 2 periods"):
        STLDetector(mode="batch").fit(series.iloc[:30])
    with pytest.raises(ValueError, match="at least 3 periods"):  # online (default): 3 periods to learn from
        STLDetector().fit(series.iloc[:60])


# ------------------------------------------------------------------ update()
def _stream(det, y):
    scores, found = [], []
    for t, v in y.items():
        scores.append(det.update(v, t))
        found.append(det.alarm_detected)
    return np.array(scores), found


@pytest.fixture
def messy(series):
    """A spike, a shift, a filled hole, a NaN, a duplicated row and a gap longer than a period."""
    y = series.copy()
    y.iloc[600] += 8.0
    y.iloc[800:] += 5.0
    y.iloc[400] = np.nan
    y = y.drop(y.index[300:305])
    y = pd.concat([y.iloc[:700], y.iloc[[699]], y.iloc[700:]])  # online keeps a cell's first value
    later = seasonal(n=24 * 6, seed=4, start="2024-03-01")
    return pd.concat([y, later])


def test_update_point_by_point_equals_online_detect(series, messy):
    det = STLDetector(mode="online").fit(series.iloc[: 24 * 10])
    batch = det.detect(messy)
    scores, found = _stream(det, messy)
    valid = np.isfinite(messy.to_numpy())  # NaN values are skipped online (score NaN)
    np.testing.assert_allclose(scores[valid], batch["score"].to_numpy()[valid], rtol=1e-12, atol=1e-12)
    assert np.isnan(scores[~valid]).all()
    assert found == batch["alarm"].tolist()
    assert np.flatnonzero(found).tolist() == [595, 796]  # the spike and the shift (rows moved by hole and duplicate)


def test_update_of_a_batch_mode_detector_scores_as_online_mode(series, messy):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    online = STLDetector(mode="online").fit(series.iloc[: 24 * 10])
    assert det.forecast_scale_ == online.forecast_scale_ == online.residual_scale_
    assert _stream(det, messy)[1] == online.detect(messy)["alarm"].tolist()


def test_update_restarts_after_a_long_gap(series):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    for t, v in series.iloc[:100].items():
        det.update(v, t)
    assert det._stream.count == 100
    assert det.update(20.0, series.index[99] + pd.Timedelta(days=3)) == 0.0  # warm-up again
    assert det._stream.count == 1


def test_update_needs_three_training_periods(series):
    det = STLDetector(mode="batch").fit(series.iloc[:60])
    assert det.forecast_scale_ is None
    with pytest.raises(ValueError, match="at least 3 periods"):
        det.update(1.0, series.index[0])


def test_update_memory_is_bounded(series):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    long = seasonal(n=24 * 80, seed=2)
    for t, v in long.items():
        det.update(v, t)
    stream = det._stream
    assert stream.values.shape == (4 * 24,)
    assert len(stream.scores.ring) == 7 * 24 and len(stream.scores.sorted) <= 7 * 24
    assert stream.deviation_ring.shape == (21 * 24 + 3,)


def test_pickled_online_state_resumes_identically(series, messy):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    for t, v in messy.iloc[:650].items():
        det.update(v, t)
    copy = pickle.loads(pickle.dumps(det))
    rest = messy.iloc[650:]
    a, b = _stream(det, rest), _stream(copy, rest)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


@pytest.mark.parametrize(
    "field, bad, match",
    [
        ("count", -3, "count"),
        ("values", np.zeros(5), "values"),
        ("seasonal", np.full(24, np.inf), "seasonal"),
        ("deviation_ring", np.zeros(7), "deviation_ring"),
        ("trend", float("nan"), "trend"),
        ("previous_trend", None, "previous_trend"),
        ("quiet", -1, "quiet"),
        ("block_flagged", 1, "block_flagged"),
        ("period", 12, "period"),
        ("scores", None, "scores"),
        ("last_value", "x", "last_value"),
    ],
)
def test_a_bad_restored_online_state_is_a_value_error_naming_the_field(series, field, bad, match):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    for t, v in series.iloc[:80].items():
        det.update(v, t)
    setattr(det._stream, field, bad)
    with pytest.raises(ValueError, match=match):
        pickle.loads(pickle.dumps(det))


def test_a_bad_rolling_window_in_the_state_is_a_value_error(series):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    for t, v in series.iloc[:80].items():
        det.update(v, t)
    det._stream.deviations.head = 10**6
    with pytest.raises(ValueError, match="head"):
        pickle.loads(pickle.dumps(det))


@pytest.mark.parametrize("field, bad", [("period_", -3), ("residual_scale_", float("nan")), ("n_train_", "12")])
def test_a_bad_restored_fitted_attribute_is_a_value_error_naming_it(series, field, bad):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    state = det.__getstate__()
    state[field] = bad
    with pytest.raises(ValueError, match=field):
        STLDetector.__new__(STLDetector).__setstate__(state)


def _weekly(weeks, seed=3):
    """Hourly daily cycle whose level is 3 higher on weekends (2024-01-06 is a Saturday)."""
    y = seasonal(n=24 * 7 * weeks, seed=seed)
    return y + 3.0 * (y.index.day_of_week >= 5)


def test_weekend_level_changes_stop_raising_the_trend_channel_once_three_weeks_are_seen():
    y = _weekly(9)
    det = STLDetector().fit(y.iloc[: 24 * 14])
    assert det.forecast_trend_scale_ is not None
    found = alarms(det.detect(y))
    # before 3 + 21 days only the training centre is known: weekend edges are level changes
    assert found and min(found) < 24 * 24
    assert [t for t in found if t >= 24 * 25] == []  # then each change is compared with the same weekday's
    shifted = y.copy()
    shifted.iloc[24 * 50 + 5 :] -= 6.0  # a level shift on a Wednesday is still flagged, at its onset
    later = [t for t in alarms(det.detect(shifted)) if t >= 24 * 25]
    assert len(later) == 1 and 24 * 50 + 5 <= later[0] <= 24 * 51


def test_online_equals_batch_with_the_weekly_reference_and_a_shift():
    y = _weekly(9)
    y.iloc[24 * 50 + 5 :] -= 6.0
    det = STLDetector().fit(y.iloc[: 24 * 14])
    batch = det.detect(y)
    scores, found = _stream(det, y)
    np.testing.assert_allclose(scores, batch["score"].to_numpy(), rtol=1e-12, atol=1e-12)
    assert found == batch["alarm"].tolist()
    assert np.isfinite(det._stream.changes).all()  # 22 level changes seen


def test_a_gap_of_up_to_two_periods_is_filled_not_restarted(series):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    gappy = series.drop(series.index[500:536])  # 36 steps: 1.5 periods
    out = det.detect(gappy)
    assert (out["score"].iloc[500:572] > 0).all()  # no warm-up after the gap
    for t, v in gappy.iloc[:501].items():
        det.update(v, t)
    assert det._stream.count == 537  # the 36 missing cells were filled, the stream went on
    longer = series.drop(series.index[500:549])  # 49 steps > two periods: a restart
    assert (det.detect(longer)["score"].iloc[500 : 500 + 72] == 0).all()
    assert STLDetector(max_gap=24).fit(series.iloc[: 24 * 10]).detect(gappy)["score"].iloc[500:572].eq(0).all()


def test_a_stream_pickled_before_the_weekly_reference_restores(series):
    det = STLDetector().fit(series.iloc[: 24 * 10])
    for t, v in series.iloc[:300].items():
        det.update(v, t)
    del det._stream.changes  # as pickled by the previous version
    copy = pickle.loads(pickle.dumps(det))
    assert np.isnan(copy._stream.changes).all()
    copy.update(series.iloc[300], series.index[300])
