"""Tests for anomaly_fast.ADWIN: parity with river, API, pickling, properties."""

import doctest
import pickle

import numpy as np
import pytest
from _streams import river_adwin_run, synthetic_stream
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

import anomaly_fast.streaming.adwin as adwin_module
from anomaly_fast import ADWIN

pytest.importorskip("river.drift")


@pytest.fixture
def seed():
    return 20240607


def river_run(values, params):
    """Detections and final window of river's ADWIN, or None if river fails."""
    river = river_adwin_run(values, params)
    if river is None:
        return None
    found, det = river
    return found, det.width, det.total


KINDS = ["mean_shift", "bernoulli", "gradual", "variance", "constant", "integers"]
PARAMS = [
    {},
    {"delta": 0.05},
    {"delta": 0.3, "clock": 1},
    {"delta": 1e-5, "clock": 7},
    {"clock": 2, "max_buckets": 2},
    {"max_buckets": 9, "min_window_length": 1},
    {"max_buckets": 3, "min_window_length": 20, "grace_period": 100},
    {"delta": 0.1, "clock": 5, "grace_period": 0},
    {"delta": 0.01, "clock": 1, "max_buckets": 1, "min_window_length": 10},
]


@pytest.mark.parametrize("params", PARAMS, ids=[str(p) for p in PARAMS])
def test_detections_identical_to_river(params, seed):
    rng = np.random.default_rng(seed)
    compared = detections = 0
    for trial in range(12):
        kind = KINDS[trial % len(KINDS)]
        values = synthetic_stream(kind, rng, int(rng.integers(200, 2500)))
        expected = river_run(values, params)
        if expected is None:
            continue
        det = ADWIN(**params)
        found = [i for i, v in enumerate(values) if det.update(v)]
        assert found == expected[0], (kind, params)
        assert det.width == expected[1]
        assert det.total == expected[2]
        assert ADWIN(**params).update_many(values).tolist() == expected[0]
        compared += 1
        detections += len(found)
    assert compared >= 10
    if params.get("delta", 0.002) >= 0.002:
        assert detections > 0


def test_detections_identical_to_river_random_parameters(seed):
    rng = np.random.default_rng(seed + 1)
    compared = 0
    for trial in range(40):
        params = {
            "delta": float(rng.choice([1e-4, 0.002, 0.05, 0.3])),
            "clock": int(rng.choice([1, 3, 32])),
            "max_buckets": int(rng.choice([2, 5, 8])),
            "min_window_length": int(rng.choice([1, 5, 12])),
            "grace_period": int(rng.choice([0, 10, 60])),
        }
        values = synthetic_stream(KINDS[trial % len(KINDS)], rng, int(rng.integers(100, 1500)))
        expected = river_run(values, params)
        assert expected is not None
        assert ADWIN(**params).update_many(values).tolist() == expected[0], params
        compared += 1
    assert compared == 40


@pytest.mark.parametrize("scale", [1e-150, 1e-6, 1.0, 1e6, 1e100])
def test_detections_identical_to_river_at_any_scale_near_the_bound(scale, seed):
    """The division-free pre-test skips a split only when river's exact test
    surely finds no cut there: small shifts (many splits near the bound)
    at tiny and huge scales must still give river's detections.  (At tiny
    scales the bound's linear term wins and nothing is ever detected.  At
    1e150, with products near the float64 limit, the code before the
    pre-test already differed from river: that scale is not compared.)"""
    rng = np.random.default_rng(seed + 2)
    compared = detections = 0
    for _ in range(6):
        n = int(rng.integers(300, 1500))
        values = scale * np.concatenate([rng.normal(0, 1, n), rng.normal(rng.uniform(0.1, 0.4), 1, n)])
        params = {
            "delta": float(rng.choice([0.002, 0.3])),
            "clock": int(rng.choice([1, 32])),
            "min_window_length": int(rng.choice([1, 5])),
        }
        expected = river_run(values, params)
        assert ADWIN(**params).update_many(values).tolist() == expected[0], params
        compared += 1
        detections += len(expected[0])
    assert compared == 6 and (detections > 0 or scale < 1)


def test_docstring_example():
    result = doctest.testmod(adwin_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_regression_numbers(seed):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(1.5, 1, 3000), rng.normal(-1, 2, 3000)])
    det = ADWIN()
    assert det.update_many(values).tolist() == [3039, 6015]
    assert det.n_detections == 2
    assert det.width == 2984
    assert det.estimation == pytest.approx(-0.9552380, abs=1e-6)
    assert det.variance_in_window == pytest.approx(4.0811571, abs=1e-6)
    assert det.variance == pytest.approx(4.0811571 * 2984, rel=1e-6)


def test_update_many_equals_update_loop(seed):
    rng = np.random.default_rng(seed)
    values = synthetic_stream("mean_shift", rng, 3000)
    a, b = ADWIN(clock=4), ADWIN(clock=4)
    loop = [i for i, v in enumerate(values) if a.update(v)]
    many = np.concatenate([b.update_many(values[:1234]), 1234 + b.update_many(values[1234:])])
    assert loop == many.tolist() and len(loop) > 0
    assert (a.width, a.total, a.variance, a.n_detections, a.drift_detected) == (
        b.width,
        b.total,
        b.variance,
        b.n_detections,
        b.drift_detected,
    )
    assert np.array_equal(a.bucket_counts, b.bucket_counts)


def test_window_restarts_after_detection(seed):
    det = ADWIN(clock=1)
    rng = np.random.default_rng(seed)
    for v in np.r_[np.zeros(200), np.full(200, 10.0)] + rng.normal(0, 0.1, 400):
        if det.update(v):
            assert det.drift_detected and det.width > 0
            det.update(10.0)
            assert det.width == 1 and det.total == 10.0 and not det.drift_detected
            break
    else:
        pytest.fail("no drift detected")


def test_read_only_state():
    det = ADWIN()
    assert (det.width, det.total, det.estimation, det.variance, det.n_detections) == (0, 0.0, 0.0, 0.0, 0)
    for v in [1, 2, 3, 4, 5]:
        det.update(v)
    assert det.width == 5 and det.total == 15.0 and det.estimation == 3.0
    assert det.variance == pytest.approx(10.0)  # river's: the sum of squared deviations
    assert det.variance_in_window == pytest.approx(2.0)
    with pytest.raises(AttributeError):
        det.width = 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_value_rejected_state_unchanged(bad, seed):
    rng = np.random.default_rng(seed)
    values = synthetic_stream("mean_shift", rng, 500)
    det, twin = ADWIN(), ADWIN()
    det.update_many(values[:300])
    twin.update_many(values[:300])
    with pytest.raises(ValueError, match="finite"):
        det.update(bad)
    with pytest.raises(ValueError, match=r"values\[2\]"):
        det.update_many([1.0, 2.0, bad, 3.0])
    assert det.update_many(values[300:]).tolist() == twin.update_many(values[300:]).tolist()
    assert (det.width, det.total) == (twin.width, twin.total)


def test_bad_input_types():
    det = ADWIN()
    with pytest.raises(TypeError):
        det.update("a")
    with pytest.raises(TypeError, match="numeric"):
        det.update_many(["a", "b"])
    with pytest.raises(ValueError, match="1-D"):
        det.update_many(np.zeros((3, 2)))
    assert det.update_many([]).tolist() == []
    assert det.width == 0


@pytest.mark.parametrize(
    "params",
    [
        {"delta": 0},
        {"delta": 1.5},
        {"clock": 0},
        {"max_buckets": 0},
        {"min_window_length": 0},
        {"grace_period": -1},
        {"clock": 2.5},
        {"delta": "x"},
    ],
)
def test_invalid_parameters(params):
    with pytest.raises((ValueError, TypeError), match=next(iter(params))):
        ADWIN(**params)


def test_reset_and_set_params(seed):
    values = synthetic_stream("mean_shift", np.random.default_rng(seed), 1000)
    det = ADWIN()
    first = det.update_many(values).tolist()
    det.reset()
    assert det.width == 0 and det.n_detections == 0
    assert det.update_many(values).tolist() == first
    det.set_params(delta=0.3).reset()
    assert det.update_many(values).tolist() == ADWIN(delta=0.3).update_many(values).tolist()
    assert clone(det).get_params() == det.get_params()


@pytest.mark.parametrize("cut", [0, 57, 999, 1500])
def test_pickle_round_trip(cut, seed):
    values = synthetic_stream("variance", np.random.default_rng(seed), 1200)
    det = ADWIN(clock=3, max_buckets=3)
    det.update_many(values[:cut])
    copy = pickle.loads(pickle.dumps(det))
    assert copy.get_params() == det.get_params()
    assert (copy.width, copy.total, copy.variance, copy.n_detections, copy.drift_detected) == (
        det.width,
        det.total,
        det.variance,
        det.n_detections,
        det.drift_detected,
    )
    assert copy.update_many(values[cut:]).tolist() == det.update_many(values[cut:]).tolist()
    assert copy.total == det.total


def test_pickle_right_after_detection():
    det = ADWIN(clock=1)
    values = np.r_[np.zeros(100), np.ones(100)]
    for i, v in enumerate(values):  # noqa: B007 - i is read after the loop
        if det.update(v):
            break
    copy = pickle.loads(pickle.dumps(det))
    assert copy.drift_detected
    assert copy.update_many(values[i + 1 :]).tolist() == det.update_many(values[i + 1 :]).tolist()
    assert copy.width == det.width


def _full_state(det):
    state = det._core._state()
    return (
        state["scalars"],
        state["bucket_count"].tolist(),
        state["bucket_total"].tolist(),
        state["bucket_m2"].tolist(),
    )


@settings(max_examples=40, deadline=None)
@given(
    data_seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 1500),
    max_buckets=st.integers(1, 9),
    clock=st.sampled_from([1, 2, 5, 32, 300, 1000]),
    delta=st.sampled_from([0.002, 0.3]),
    scale=st.sampled_from([1e-200, 1.0, 1e6]),
)
def test_update_many_state_identical_to_update_loop(data_seed, n, max_buckets, clock, delta, scale):
    """update_many merges the buckets of a whole span at once (spans longer
    than its batch included) and pre-tests splits without divisions: every
    bucket, sum and detection must still be bit-identical to update()."""
    rng = np.random.default_rng(data_seed)
    values = scale * synthetic_stream("mean_shift", rng, n)
    params = dict(delta=delta, clock=clock, max_buckets=max_buckets, min_window_length=1, grace_period=3)
    a, b = ADWIN(**params), ADWIN(**params)
    loop = [i for i, v in enumerate(values) if a.update(v)]
    assert b.update_many(values).tolist() == loop
    assert _full_state(a) == _full_state(b)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=600),
    max_buckets=st.integers(1, 6),
    clock=st.integers(1, 40),
    delta=st.sampled_from([0.002, 0.1, 0.5]),
)
def test_window_properties(values, max_buckets, clock, delta):
    det = ADWIN(delta=delta, clock=clock, max_buckets=max_buckets, min_window_length=2, grace_period=5)
    arr = np.asarray(values)
    det.update_many(arr)
    width = det.width
    assert 1 <= width <= len(arr)
    window = arr[len(arr) - width :]
    assert det.total == pytest.approx(window.sum(), rel=1e-9, abs=1e-6)
    assert det.variance_in_window == pytest.approx(window.var(), rel=1e-6, abs=1e-5)
    assert det.variance == pytest.approx(window.var() * width, rel=1e-6, abs=1e-5 * width)
    counts = det.bucket_counts
    assert counts.max() <= max_buckets
    assert int(sum(c << r for r, c in enumerate(counts))) == width


# -- river's own regression expectations (river/drift/test_adwin_regression.py), on our ADWIN --


def _detections(det, values):
    return [i for i, v in enumerate(values) if det.update(v)]


def test_river_regression_basic_drift_at_1023():
    np.random.seed(12345)  # noqa: NPY002 - river's example stream, drawn as river draws it
    data = np.concatenate((np.random.randint(2, size=1000), np.random.randint(8, size=1000)))  # noqa: NPY002
    assert _detections(ADWIN(), data) == [1023]


def test_river_regression_multiple_drifts_at_1023_2015_3007():
    import random

    rng = random.Random(42)
    data = (
        rng.choices([0, 1], k=1000)
        + rng.choices(range(4, 8), k=1000)
        + rng.choices([0, 1], k=1000)
        + rng.choices(range(4, 8), k=1000)
    )
    assert _detections(ADWIN(), data) == [1023, 2015, 3007]
    assert ADWIN().update_many(data).tolist() == [1023, 2015, 3007]


def test_river_regression_width_total_estimation_and_empty_window():
    det = ADWIN()
    assert det.estimation == 0.0 and det.variance == 0.0
    for i in range(1, 101):
        det.update(1.0)
        assert det.width == i
    det = ADWIN()
    for v in [1.0, 2.0, 3.0, 4.0, 5.0]:
        det.update(v)
    assert (det.total, det.estimation, det.width) == (15.0, 3.0, 5)
    det = ADWIN()
    det.update(1.0)
    det.update(2.0)
    assert (det.width, det.total, det.estimation) == (2, 3.0, 1.5)


def test_variance_is_rivers_sum_of_squared_deviations():
    """river's test stream: variance = sum of squared deviations (1953.1),
    variance_in_window = variance / width (3.906)."""
    import random

    rng = random.Random(999)
    values = [rng.gauss(5, 2) for _ in range(500)]
    det = ADWIN()
    for v in values:
        det.update(v)
    mean = sum(values) / len(values)
    expected = sum((v - mean) ** 2 for v in values)
    assert det.variance == pytest.approx(expected, rel=1e-6)
    assert det.variance == pytest.approx(1953.1, abs=0.05)
    assert det.variance_in_window == pytest.approx(expected / 500, rel=1e-6)
    found, river = river_adwin_run(np.asarray(values), {})
    assert det.variance == river.variance and det.width == river.width and det.total == river.total


def test_river_regression_exact_statistics_without_checks():
    det = ADWIN(clock=1_000_000)
    values = [float(i % 7) for i in range(200)]
    for v in values:
        det.update(v)
    assert det.width == 200 and det.total == pytest.approx(sum(values))
    assert det.variance == pytest.approx(sum((v - sum(values) / 200) ** 2 for v in values), rel=1e-6)


def test_river_regression_grace_period_holds_detections_back():
    det = ADWIN(grace_period=100, clock=1)
    _detections(det, [0.0] * 50 + [1000.0] * 50)
    assert det.n_detections == 0


def test_river_regression_reset_after_drift():
    det = ADWIN(clock=1)
    _detections(det, [0.0] * 500)
    assert any(det.update(100.0) for _ in range(500))
    det.update(50.0)
    assert det.width == 1


def test_river_regression_large_negative_and_alternating_values():
    det = ADWIN()
    det.update_many(np.full(100, 1e15))
    assert det.width == 100 and det.estimation == pytest.approx(1e15)
    det = ADWIN()
    det.update_many(np.full(100, -5.0))
    assert det.estimation == pytest.approx(-5.0)
    det = ADWIN()
    det.update_many(np.arange(2000) % 2)
    assert det.n_detections <= 1


# -- huge values ---------------------------------------------------------------


@pytest.mark.parametrize("huge", [1e308, -1e308, 1.5e120, np.finfo(float).max])
def test_values_whose_sums_could_overflow_are_rejected_state_unchanged(huge, seed):
    values = synthetic_stream("mean_shift", np.random.default_rng(seed), 400)
    det, twin = ADWIN(), ADWIN()
    det.update_many(values[:200])
    twin.update_many(values[:200])
    for _ in range(2):
        with pytest.raises(ValueError, match="1e\\+?120"):
            det.update(huge)
        with pytest.raises(ValueError, match=r"values\[1\]"):
            det.update_many([0.0, huge])
    assert np.isfinite(det.total)
    assert _full_state(det) == _full_state(twin)
    assert det.update_many(values[200:]).tolist() == twin.update_many(values[200:]).tolist()


def test_values_at_the_bound_keep_every_statistic_finite():
    det = ADWIN(clock=1)
    det.update_many(np.tile([1e120, -1e120], 5000))
    assert det.update(1e120) in (True, False)
    assert np.isfinite([det.total, det.variance, det.estimation]).all()


# -- restored state is validated before the kernel sees it ----------------------


def _fed_state(seed):
    det = ADWIN(clock=4, max_buckets=3)
    det.update_many(synthetic_stream("mean_shift", np.random.default_rng(seed), 700))
    return det, det.__getstate__()


def _mutated(state, path, value):
    """A copy of state with state[path[0]][path[1]]... replaced (tuples too)."""
    import copy

    state = copy.deepcopy(state)

    def put(obj, keys):
        if len(keys) == 1:
            if isinstance(obj, tuple):
                return obj[: keys[0]] + (value,) + obj[keys[0] + 1 :]
            obj[keys[0]] = value
            return obj
        obj_k = put(obj[keys[0]], keys[1:])
        if isinstance(obj, tuple):
            return obj[: keys[0]] + (obj_k,) + obj[keys[0] + 1 :]
        obj[keys[0]] = obj_k
        return obj

    return put(state, list(path))


BAD_ADWIN_FIELDS = [
    (("kernel", "params", 1), 0, "clock"),  # was SIGFPE
    (("kernel", "params", 1), 2.0, "clock"),
    (("kernel", "params", 0), float("nan"), "delta"),
    (("kernel", "params", 2), 2**40, "cells"),
    (("kernel", "scalars", 3), -5, "tick"),
    (("kernel", "scalars", 2), 3.5, "width"),
    (("kernel", "scalars", 0), 1e300, "total"),
    (("kernel", "scalars", 0), float("inf"), "total"),
    (("kernel", "scalars", 1), float("nan"), "m2"),
    (("kernel", "scalars", 5), 1, "drift"),
    (("kernel", "bucket_count"), np.array([2**40], dtype=np.intp), "bucket_count"),  # was SIGSEGV
    (("kernel", "bucket_count"), np.zeros(3, dtype=np.int32), "bucket_count"),
    (("kernel", "bucket_total"), np.zeros(3), "bucket_total"),
    (("kernel", "bucket_m2"), "x", "bucket_m2"),
    (("params", "clock"), 0, "clock"),
    (("params", "surprise"), 1, "unknown"),
    (("kernel", "surprise"), 1, "unknown"),
]


@pytest.mark.parametrize("path, value, match", BAD_ADWIN_FIELDS, ids=[m for _, _, m in BAD_ADWIN_FIELDS])
def test_a_corrupted_pickle_gets_a_value_error_naming_the_field(path, value, match, seed):
    det, state = _fed_state(seed)
    live = ADWIN(clock=4, max_buckets=3)
    live.update_many([1.0, 2.0, 3.0])
    before = _full_state(live)
    with pytest.raises(ValueError, match=match):
        live.__setstate__(_mutated(state, path, value))
    assert _full_state(live) == before and live.clock == 4
    with pytest.raises(ValueError, match=match):
        ADWIN.__new__(ADWIN).__setstate__(_mutated(state, path, value))


def test_a_missing_key_or_a_truncated_array_is_named(seed):
    det, state = _fed_state(seed)
    del state["kernel"]["bucket_m2"]
    with pytest.raises(ValueError, match="missing \\['bucket_m2'\\]"):
        ADWIN.__new__(ADWIN).__setstate__(state)
    det, state = _fed_state(seed)
    state["kernel"]["bucket_total"] = state["kernel"]["bucket_total"][:-1]
    with pytest.raises(ValueError, match="bucket_total must have"):
        pickle.loads(pickle.dumps(det)).__setstate__(state)
