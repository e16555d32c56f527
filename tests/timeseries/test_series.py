import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast.timeseries import infer_period
from anomaly_fast.timeseries._series import prepare_series


@pytest.mark.parametrize(
    "freq, period", [("5min", 288), ("30min", 48), ("h", 24), ("D", 7), ("12h", 2)]
)
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
    assert np.isnan(data.observed[200])
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
        prepare_series(pd.concat([series, series.iloc[:1]]))
    with pytest.raises(ValueError, match="not increasing"):
        prepare_series(series.iloc[::-1])
    shifted = series.copy()
    shifted.index = shifted.index.where(np.arange(len(series)) != 10, shifted.index[10] + pd.Timedelta("7min"))
    with pytest.raises(ValueError, match="regular grid"):
        prepare_series(shifted)
    with pytest.raises(ValueError, match="DatetimeIndex"):
        prepare_series(series.to_numpy())


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
