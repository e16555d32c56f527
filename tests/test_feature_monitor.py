import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast.streaming.feature_monitor import DriftEvent, FeatureMonitor


@pytest.fixture
def train(rng):
    return rng.normal(size=(1000, 3))


def test_drift_event_on_shifted_feature(rng, train):
    stream = rng.normal(size=(4000, 3))
    stream[2000:, 2] += 3.0
    monitor = FeatureMonitor(["a", "b", "c"], reference=train)
    events = monitor.update_many(stream, np.arange(4000.0))
    drifts = [e for e in events if e.kind == "drift"]
    assert [e.feature for e in drifts] == ["c"]
    assert 2000 <= drifts[0].timestamp <= 2100
    # window mean in training-range units moved up after the shift
    report = {r["feature"]: r for r in monitor.feature_report()}
    assert report["c"]["n_drifts"] == 1 and report["a"]["n_drifts"] == 0
    assert report["c"]["window_mean"] > report["a"]["window_mean"] + 0.2
    assert report["c"]["last_drift"] == drifts[0].timestamp
    # out-of-range report once (when the window turns bad), not per window
    oor = [e for e in events if e.kind == "out_of_range"]
    assert [e.feature for e in oor] == ["c"] and oor[0].timestamp == 2999.0


def test_pinned_detection(rng, train):
    stream = rng.normal(size=(3000, 3))
    stream[1500:, 0] -= 1.0
    monitor = FeatureMonitor(["a", "b", "c"], reference=train)
    events = monitor.update_many(stream, np.arange(3000.0))
    assert [(e.kind, e.feature, e.timestamp) for e in events] == [("drift", "a", 1631.0)]


def test_stationary_stream_no_events(rng, train):
    monitor = FeatureMonitor(["a", "b", "c"], reference=train)
    assert monitor.update_many(rng.normal(size=(5000, 3)), np.arange(5000.0)) == []


def test_nan_rate(rng, train):
    stream = rng.normal(size=(3000, 3))
    stream[1000:1500, 1] = np.nan
    monitor = FeatureMonitor(["a", "b", "c"], reference=train, quality_window=500, max_nan_rate=0.1)
    events = monitor.update_many(stream, np.arange(3000.0))
    assert [(e.kind, e.feature, e.timestamp, e.value) for e in events] == [("nan_rate", "b", 1499.0, 1.0)]
    report = monitor.feature_report()[1]
    assert report["n_missing"] == 500 and report["missing_rate"] == pytest.approx(500 / 3000)
    assert isinstance(events[0], DriftEvent) and "missing" in events[0].detail


def test_out_of_range_without_reference_is_off(rng):
    monitor = FeatureMonitor(["a"], quality_window=10)
    events = monitor.update_many(rng.normal(size=(100, 1)) * 100, np.arange(100.0))
    assert [e for e in events if e.kind == "out_of_range"] == []
    assert monitor.feature_report()[0]["train_min"] is None


def test_reference_dict(train):
    ref = {"min": train.min(axis=0).tolist(), "max": train.max(axis=0).tolist()}
    a = FeatureMonitor(["a", "b", "c"], reference=ref)
    b = FeatureMonitor(["a", "b", "c"], reference=train)
    np.testing.assert_array_equal(a.low_, b.low_)
    np.testing.assert_array_equal(a.high_, b.high_)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 400),
    st.floats(-3, 3),
    st.floats(0, 0.3),
    st.integers(1, 60),
    st.integers(0, 2**31 - 1),
)
def test_update_many_equals_update(n, shift, nan_share, window, seed):
    rng = np.random.RandomState(seed)
    train = rng.normal(size=(50, 2))
    stream = rng.normal(size=(n, 2))
    stream[n // 2 :, 0] += shift
    stream[rng.rand(n, 2) < nan_share] = np.nan
    ts = np.arange(n, dtype=float)
    one = FeatureMonitor(["a", "b"], reference=train, quality_window=window, delta=0.1)
    expected = [e for i in range(n) for e in one.update(stream[i], ts[i])]
    many = FeatureMonitor(["a", "b"], reference=train, quality_window=window, delta=0.1)
    split = n // 3
    got = many.update_many(stream[:split], ts[:split]) + many.update_many(stream[split:], ts[split:])
    assert got == expected
    assert many.feature_report() == one.feature_report()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"feature_names": []}, "at least one"),
        ({"delta": 0.0}, "delta"),
        ({"quality_window": 0}, "quality_window"),
        ({"max_nan_rate": 2.0}, "max_nan_rate"),
        ({"reference": np.zeros((5, 2))}, "expected 3"),
        ({"reference": {"min": [0, 0, 0]}}, "'max'"),
    ],
)
def test_bad_parameters(kwargs, match):
    params = {"feature_names": ["a", "b", "c"], **kwargs}
    with pytest.raises(ValueError, match=match):
        FeatureMonitor(**params)


def test_bad_batch_shape():
    with pytest.raises(ValueError, match="shape"):
        FeatureMonitor(["a"]).update_many(np.zeros((3, 2)), np.arange(3.0))


@pytest.mark.parametrize("glitch", [1e308, -1e308, np.inf, -np.inf])
@pytest.mark.parametrize("batch", [False, True])
def test_two_huge_glitches_do_not_blind_a_feature(glitch, batch, rng, train):
    """Two readings of 1e308 (or inf) used to make ADWIN's total inf for good;
    they are now out of range and fed clipped, so a real drift after them is
    still detected."""
    stream = rng.normal(size=(4000, 3))
    stream[[300, 301], 1] = glitch
    stream[2500:, 1] += 2.0
    monitor = FeatureMonitor(["a", "b", "c"], reference=train)
    ts = np.arange(4000.0)
    if batch:
        events = monitor.update_many(stream, ts)
    else:
        events = [e for i in range(4000) for e in monitor.update(stream[i], ts[i])]
    drifts = [e.timestamp for e in events if e.kind == "drift" and e.feature == "b"]
    assert any(2500 <= t <= 2700 for t in drifts), drifts
    report = monitor.feature_report()[1]
    assert np.isfinite(report["window_mean"]) and report["n_missing"] == 0
    assert report["n_out_of_range"] >= 2


def test_infinities_count_as_out_of_range_not_missing(rng, train):
    stream = rng.normal(size=(20, 3)) * 0.1
    stream[3, 0], stream[5, 0], stream[7, 0] = np.inf, -np.inf, np.nan
    for reference in (train, None):
        monitor = FeatureMonitor(["a", "b", "c"], reference=reference)
        monitor.update_many(stream, np.arange(20.0))
        report = monitor.feature_report()[0]
        assert (report["n_missing"], report["n_out_of_range"]) == (1, 2)
        # with a range, the infinities are fed clipped; without one, they are not fed
        assert report["window_width"] == (19 if reference is not None else 17)


def test_update_and_update_many_agree_on_glitches(rng, train):
    stream = rng.normal(size=(600, 3))
    stream[rng.rand(600, 3) < 0.05] = 1e300
    stream[rng.rand(600, 3) < 0.05] = -np.inf
    one, many = FeatureMonitor(["a", "b", "c"], reference=train), FeatureMonitor(["a", "b", "c"], reference=train)
    ts = np.arange(600.0)
    assert [e for i in range(600) for e in one.update(stream[i], ts[i])] == many.update_many(stream, ts)
    assert one.feature_report() == many.feature_report()


def test_pickle_round_trip_and_corrupted_pickles(rng, train):
    import pickle

    stream = rng.normal(size=(3000, 3))
    stream[1500:, 0] += 1.0
    monitor = FeatureMonitor(["a", "b", "c"], reference=train, quality_window=400)
    monitor.update_many(stream[:1700], np.arange(1700.0))
    copy = pickle.loads(pickle.dumps(monitor))
    rest = np.arange(1700.0, 3000.0)
    assert copy.update_many(stream[1700:], rest) == monitor.update_many(stream[1700:], rest)
    assert copy.feature_report() == monitor.feature_report()
    for field, value, match in [
        ("_block_n", 10**6, "_block_n"),
        ("_block_nan", [1, 2], "_block_nan"),
        ("low_", np.array([0.0, np.nan, 0.0]), "low_"),
        ("_adwins", [None] * 3, "_adwins"),
        ("_nan", np.array([-1, 0, 0]), "_nan"),
        ("delta", 2.0, "delta"),
        ("surprise", 1, "unknown"),
    ]:
        state = monitor.__getstate__()
        state[field] = value
        with pytest.raises(ValueError, match=match):
            FeatureMonitor.__new__(FeatureMonitor).__setstate__(state)
