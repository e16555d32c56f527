import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast.timeseries import infer_period
from anomaly_fast.timeseries._series import acf_period, prepare_series


@pytest.mark.parametrize("freq, period", [("5min", 288), ("30min", 48), ("h", 24), ("D", 7), ("12h", 2)])
def test_infer_period(freq, period):
    assert infer_period(pd.date_range("2024-01-01", periods=50, freq=freq)) == period


@pytest.mark.parametrize("index", [pd.date_range("2024-01-01", periods=50, freq="7D"), pd.RangeIndex(50)])
def test_infer_period_errors(index):
    with pytest.raises(ValueError, match="period"):
        infer_period(index)


def test_prepare_fills_missing_timestamps_and_nans(series):
    gappy = series.drop(series.index[100:105]).copy()
    gappy.iloc[200] = np.nan
    data = prepare_series(gappy)
    assert data.period == 24
    assert data.values.shape == (len(series),)
    assert data.positions[100] == 105
    assert np.isfinite(data.values).all()
    # a linear fill between the neighbours of the gap
    expected = np.interp(np.arange(100, 105), [99, 105], series.to_numpy()[[99, 105]])
    np.testing.assert_allclose(data.values[100:105], expected)
    assert np.isnan(data.input_values[200])
    # filled cells (missing timestamps, the NaN) are marked, the rest observed
    assert np.flatnonzero(~data.observed).tolist() == [100, 101, 102, 103, 104, 205]
    assert data.index.equals(gappy.index)


def test_prepare_accepts_arrays_and_single_columns():
    y = np.arange(60.0)
    for value in (y, list(y), y[:, None], pd.DataFrame({"v": y})):
        data = prepare_series(value, period=12)
        np.testing.assert_array_equal(data.values, y)


@pytest.mark.parametrize(
    "value, error, match",
    [
        (np.array([]), ValueError, "empty"),
        (np.r_[np.ones(60), np.inf], ValueError, "infinite"),
        (np.full(60, np.nan), ValueError, "only NaN"),
        (np.array(["a"] * 60), TypeError, "numbers"),
        (np.ones(60, dtype=bool), TypeError, "numbers"),
        (np.ones((60, 2)), ValueError, "one-dimensional"),
        (pd.DataFrame(np.ones((60, 2))), ValueError, "one column"),
        (np.ones(20), ValueError, "at least 2 periods"),
    ],
)
def test_prepare_errors(value, error, match):
    with pytest.raises(error, match=match):
        prepare_series(value, period=12)


def test_prepare_timestamp_errors(series):
    with pytest.raises(ValueError, match="duplicated"):
        prepare_series(pd.concat([series, series.iloc[:1]]), duplicates="raise")
    with pytest.raises(ValueError, match="duplicates must be"):
        prepare_series(series, duplicates="first")
    with pytest.raises(ValueError, match="DatetimeIndex"):
        prepare_series(series.to_numpy())
    with pytest.raises(ValueError, match="NaT"):
        prepare_series(pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2024-01-01", None])), period=2)


def test_unsorted_timestamps_are_sorted_and_results_keep_the_callers_order(series):
    shuffled = series.sample(frac=1.0, random_state=0)
    data = prepare_series(shuffled)
    np.testing.assert_array_equal(data.values, series.to_numpy())
    np.testing.assert_array_equal(data.values[data.positions], shuffled.to_numpy())


def test_one_jittered_timestamp_keeps_the_grid(series):
    shifted = series.copy()
    shifted.index = shifted.index.where(np.arange(len(series)) != 10, shifted.index[10] + pd.Timedelta("7min"))
    data = prepare_series(shifted)
    assert data.period == 24 and data.values.shape == (len(series),)
    assert data.step == pd.Timedelta("1h")
    assert data.positions[10] == 10
    # the value at the on-grid time of cell 10 is interpolated in time
    t = np.array([9 * 60, 10 * 60 + 7, 11 * 60], dtype=float)
    expected = np.interp(600.0, t, series.to_numpy()[9:12])
    assert data.values[10] == pytest.approx(expected)


def test_irregular_sampling_uses_the_median_step():
    # mostly 5-minute steps, some 1-minute bursts: the grid step stays 5 minutes
    rng = np.random.RandomState(0)
    steps = np.where(rng.uniform(size=3000) < 0.2, 1.0, 5.0)
    index = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(steps), unit="min")
    data = prepare_series(pd.Series(rng.normal(size=3000), index=index))
    assert data.step == pd.Timedelta("5min")
    assert data.period == 288
    span = (index[-1] - index[0]) / pd.Timedelta("5min")
    assert abs(data.values.shape[0] - (span + 1)) <= 1


def test_jittered_sampling_does_not_drift():
    rng = np.random.RandomState(1)
    regular = pd.date_range("2024-01-01", periods=5000, freq="5min")
    index = regular + pd.to_timedelta(rng.uniform(-60, 60, size=5000), unit="s")
    data = prepare_series(pd.Series(np.arange(5000.0), index=index))
    assert data.values.shape == (5000,)
    assert np.array_equal(data.positions, np.arange(5000))
    assert abs((data.times - regular).total_seconds()).max() < 60


@pytest.mark.parametrize("how, expected", [("mean", 2.0), ("last", 3.0)])
def test_duplicated_timestamps_are_aggregated(series, how, expected):
    extra = pd.Series([1.0, 3.0], index=[series.index[5]] * 2)
    doubled = pd.concat([series.drop(series.index[5]), extra])
    data = prepare_series(doubled, duplicates=how)
    assert data.values.shape == (len(series),)
    assert data.values[5] == expected
    # both rows map to cell 5; only the first carries alarms
    assert data.positions[-2:].tolist() == [5, 5]
    assert data.carrier[-2:].tolist() == [True, False]


def test_nan_among_duplicates_is_ignored_by_mean(series):
    extra = pd.Series([np.nan, 4.0], index=[series.index[5]] * 2)
    data = prepare_series(pd.concat([series.drop(series.index[5]), extra]))
    assert data.values[5] == 4.0 and data.observed[5]


def test_nan_run_is_filled_and_marked(series):
    holed = series.copy()
    holed.iloc[300:310] = np.nan
    data = prepare_series(holed)
    assert not data.observed[300:310].any() and data.observed[299] and data.observed[310]
    expected = np.interp(np.arange(300, 310), [299, 310], series.to_numpy()[[299, 310]])
    np.testing.assert_allclose(data.values[300:310], expected)


def test_gap_longer_than_the_limit_splits_the_series(series):
    gappy = series.drop(series.index[400:460])  # 60 steps > one period (24)
    data = prepare_series(gappy)
    assert data.segments.tolist() == [[0, 400], [400, len(series) - 60]]
    assert data.observed.all()  # nothing interpolated across the gap
    assert data.positions[399] == 399 and data.positions[400] == 400
    # a limit above the gap fills it instead
    filled = prepare_series(gappy, max_gap=61)
    assert filled.segments.tolist() == [[0, len(series)]]
    assert (~filled.observed).sum() == 60


def test_too_short_is_a_clear_error(series):
    with pytest.raises(ValueError, match="at least 2 periods"):
        prepare_series(series.iloc[:40])
    # the longest segment counts: two short pieces are too short too
    pieces = pd.concat([series.iloc[:30], series.iloc[100:130]])
    with pytest.raises(ValueError, match="at least 2 periods"):
        prepare_series(pieces)


def test_acf_period_finds_the_cycle():
    t = np.arange(2000)
    assert acf_period(np.sin(2 * np.pi * t / 50)) == 50
    assert acf_period(np.ones(100)) == 125  # no cycle: TSB-AD's default


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 238), min_size=0, max_size=60, unique=True), st.integers(0, 2**16))
def test_prepare_property_gaps(dropped, seed):
    rng = np.random.RandomState(seed)
    index = pd.date_range("2024-01-01", periods=240, freq="h")
    values = pd.Series(rng.normal(size=240), index=index).drop(index[dropped])
    data = prepare_series(values)
    assert data.values.shape == (240,)
    np.testing.assert_array_equal(data.values[data.positions], values.to_numpy())
    assert values.min() <= data.values.min() and data.values.max() <= values.max()
