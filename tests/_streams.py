"""Test streams for the streaming detectors and river's ADWIN as the
reference (the tests' own copy: tests do not import the benchmark package,
whose ``bench streaming`` suite has the same generator for its runs)."""

import numpy as np


def synthetic_stream(kind, rng, n):
    """2n values of a test stream (``rng``: a numpy Generator): a drift half
    way (mean shift, Bernoulli rate change, gradual drift, variance change,
    integer shift) or none (constant)."""
    if kind == "mean_shift":
        return np.concatenate([rng.normal(0, 1, n), rng.normal(rng.uniform(0.3, 3), 1, n)])
    if kind == "bernoulli":
        p = np.r_[np.full(n, 0.1), np.full(n, rng.uniform(0.2, 0.6))]
        return (rng.random(2 * n) < p).astype(float)
    if kind == "gradual":
        return rng.normal(np.linspace(0, rng.uniform(1, 4), 2 * n), 1)
    if kind == "variance":
        return rng.normal(0, np.r_[np.ones(n), np.full(n, 5.0)])
    if kind == "constant":
        return np.full(2 * n, rng.normal())
    if kind == "integers":
        return np.concatenate([rng.integers(0, 2, n), rng.integers(4, 8, n)]).astype(float)
    raise ValueError(f"unknown stream kind {kind!r}")


def river_adwin_run(values, params):
    """river's ADWIN on ``values``: (indices of its detections, the detector
    at the end), or None when river's Rust core panics (it does on some
    ``max_buckets=1`` streams)."""
    from river import drift

    det = drift.ADWIN(**params)
    found = []
    try:
        for i, v in enumerate(values.tolist()):
            det.update(v)
            if det.drift_detected:
                found.append(i)
    except BaseException as exc:
        if "Panic" in type(exc).__name__:
            return None
        raise
    return found, det


def shifting_stream(d, n, shift_at, shift, seed=0, walk=False, n_entities=50):
    """(X, metadata, planted): N(0, I) then a mean shift of ``shift`` sigma on
    every feature at ``shift_at`` (with ``walk``: a linear walk to it over the
    rest of the stream); 10-sigma anomalies planted at 0.5%.  The tests' own
    copy of the adaptation benchmark's stream (tests do not import the bench
    package)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    if walk:
        X[shift_at:] += np.linspace(0.0, shift, n - shift_at)[:, None]
    else:
        X[shift_at:] += shift
    planted = rng.rand(n) < 0.005
    X[planted] += 10.0 * rng.choice([-1.0, 1.0], (int(planted.sum()), d))
    meta = {
        "entity_id": np.array([f"h{k}" for k in rng.randint(0, n_entities, n)], dtype=object),
        "timestamp": np.arange(n, dtype=np.float64),
    }
    return X, meta, planted
