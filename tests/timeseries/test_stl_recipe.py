import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from statsmodels.tsa.seasonal import STL

from anomaly_fast.timeseries import modified_z_score, stl_anomaly_detection
from anomaly_fast.timeseries.stl_recipe import stl_windows

COLUMNS = ["value", "trend", "seasonal", "residual", "z_score", "is_anomaly"]


def test_modified_z_score_exact():
    np.testing.assert_allclose(modified_z_score([1.0, 2.0, 3.0, 4.0, 100.0]), [-1.349, -0.6745, 0.0, 0.6745, 65.4265])


def test_modified_z_score_mad_zero_falls_back_to_mean_deviation():
    z = modified_z_score([5.0, 5.0, 5.0, 9.0])
    # median 5, MAD 0, mean absolute deviation 1 -> 4 / 1.253314
    np.testing.assert_allclose(z, [0, 0, 0, 4 / 1.253314])
    np.testing.assert_array_equal(modified_z_score(np.full(7, 3.0)), np.zeros(7))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 80), elements=st.integers(-1000, 1000).map(float)),
    st.floats(0.01, 100),
    st.floats(-1e3, 1e3),
)
def test_modified_z_score_finite_and_affine_invariant(x, a, b):
    z = modified_z_score(x)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(modified_z_score(a * x + b), z, rtol=1e-6, atol=1e-6)


def test_reproduces_reference_computation(series):
    out = stl_anomaly_detection(series, period=24, threshold_sigma=3.0, robust=True)
    ref = STL(series.to_numpy(), period=24, robust=True, **stl_windows(24)).fit()
    r = ref.resid
    z = 0.6745 * (r - np.median(r)) / np.median(np.abs(r - np.median(r)))
    assert list(out.columns) == COLUMNS
    assert out.index.equals(series.index)
    np.testing.assert_allclose(out["trend"], ref.trend)
    np.testing.assert_allclose(out["seasonal"], ref.seasonal)
    np.testing.assert_allclose(out["residual"], r)
    np.testing.assert_allclose(out["z_score"], z)
    np.testing.assert_array_equal(out["is_anomaly"], np.abs(z) > 3.0)


def test_non_robust_and_threshold(series):
    out = stl_anomaly_detection(series, period=24, threshold_sigma=4.5, robust=False)
    ref = STL(series.to_numpy(), period=24, robust=False, **stl_windows(24)).fit()
    np.testing.assert_allclose(out["residual"], ref.resid)
    np.testing.assert_array_equal(out["is_anomaly"], np.abs(out["z_score"]) > 4.5)


def test_finds_spike_and_pins_numbers(series):
    y = series.copy()
    y.iloc[500] += 8.0
    out = stl_anomaly_detection(y)  # period inferred: hourly -> 24
    assert out["is_anomaly"].iloc[500]
    assert out["z_score"].iloc[500] == pytest.approx(27.1612, abs=1e-3)
    # the recipe's known weakness: plain noise crosses |z| > 3 too
    assert int(out["is_anomaly"].sum()) == 60


def test_flat_series_has_zero_scores():
    y = pd.Series(np.full(24 * 5, 7.0), index=pd.date_range("2024-01-01", periods=120, freq="h"))
    out = stl_anomaly_detection(y)
    assert np.isfinite(out[["trend", "seasonal", "residual", "z_score"]].to_numpy()).all()
    assert not out["is_anomaly"].any()


def test_exact_seasonal_series_mad_zero_is_finite():
    # residuals are (numerically) zero almost everywhere: MAD ~ 0
    y = np.tile(np.r_[np.zeros(12), np.ones(12)], 6).astype(float)
    y[70] = 5.0
    out = stl_anomaly_detection(y, period=24)
    assert np.isfinite(out["z_score"]).all()
    assert out["is_anomaly"].iloc[70]


def test_missing_timestamps_and_nan_keep_the_input_index(series):
    gappy = series.drop(series.index[300:310]).copy()
    gappy.iloc[50] = np.nan
    out = stl_anomaly_detection(gappy)
    assert out.index.equals(gappy.index)
    assert np.isnan(out["value"].iloc[50])
    assert np.isfinite(out.drop(columns="value").to_numpy(dtype=float)).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"threshold_sigma": 0}, "threshold_sigma"), ({"period": 1}, "period"), ({"robust": "yes"}, "robust")],
)
def test_parameter_errors(series, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stl_anomaly_detection(series, **kwargs)


def test_input_errors(series):
    with pytest.raises(ValueError, match="pass period"):
        stl_anomaly_detection(series.to_numpy())
    with pytest.raises(ValueError, match="at least 2 periods"):
        stl_anomaly_detection(series.iloc[:30])
    with pytest.raises(ValueError, match="infinite"):
        stl_anomaly_detection(np.r_[series.to_numpy(), np.inf], period=24)
