"""pytest-benchmark micro benchmarks of the streaming detectors (not part of
the test suite):

    python -m pytest benchmarks/test_micro_streaming.py --benchmark-only

Each group times anomaly_fast next to river on the same synthetic stream in
the same process.  ``anomaly-fast bench-streaming`` prints the full tables.
"""

import numpy as np
import pytest

from anomaly_fast import ADWIN, HalfSpaceTrees

river_drift = pytest.importorskip("river.drift")
river_anomaly = pytest.importorskip("river.anomaly")

RNG = np.random.default_rng(0)
VALUES = RNG.normal(np.repeat(RNG.normal(0, 1, 21), 5000)[:100_000], 1.0)
VALUE_LIST = VALUES.tolist()
X = np.clip(RNG.normal(0.5, 0.1, size=(20_000, 10)), 0, 1)
ROWS = list(X)
DICTS = [dict(enumerate(row)) for row in X.tolist()]
UNIT = [(0.0, 1.0)] * 10


@pytest.mark.benchmark(group="ADWIN 100k values")
def test_adwin_river_loop(benchmark):
    def run():
        det = river_drift.ADWIN()
        for v in VALUE_LIST:
            det.update(v)

    benchmark(run)


@pytest.mark.benchmark(group="ADWIN 100k values")
def test_adwin_update_loop(benchmark):
    def run():
        update = ADWIN().update
        for v in VALUE_LIST:
            update(v)

    benchmark(run)


@pytest.mark.benchmark(group="ADWIN 100k values")
def test_adwin_update_many(benchmark):
    benchmark(lambda: ADWIN().update_many(VALUES))


def _score_then_learn(make_model, points):
    """score_one then learn_one on each point, from a fresh model."""

    def run():
        model = make_model()
        for x in points:
            model.score_one(x)
            model.learn_one(x)

    return run


@pytest.mark.benchmark(group="HST defaults, 2k points score+learn")
def test_hst_river_dict(benchmark):
    benchmark(_score_then_learn(lambda: river_anomaly.HalfSpaceTrees(seed=0), DICTS[:2000]))


@pytest.mark.benchmark(group="HST defaults, 2k points score+learn")
def test_hst_one_numpy_row(benchmark):
    benchmark(_score_then_learn(lambda: HalfSpaceTrees(seed=0, limits=UNIT), ROWS[:2000]))


@pytest.mark.benchmark(group="HST defaults, 2k points score+learn")
def test_hst_one_dict(benchmark):
    benchmark(_score_then_learn(lambda: HalfSpaceTrees(seed=0, limits=UNIT), DICTS[:2000]))


@pytest.mark.benchmark(group="HST defaults, 2k points score+learn")
def test_hst_score_learn_many(benchmark):
    benchmark(lambda: HalfSpaceTrees(seed=0, limits=UNIT).score_learn_many(X[:2000]))


@pytest.mark.benchmark(group="HST 25 trees height 15, 20k points")
def test_hst_big_score_learn_many(benchmark):
    def setup():
        model = HalfSpaceTrees(n_trees=25, height=15, window_size=250, seed=0, limits=UNIT)
        model.learn_one(X[0])
        return (model,), {}

    benchmark.pedantic(lambda model: model.score_learn_many(X), setup=setup, rounds=3)
