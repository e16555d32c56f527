"""pytest-benchmark micro benchmarks (not part of the test suite):

    python -m pytest benchmarks/ --benchmark-only

Each group times anomaly_fast next to scikit-learn (and isotree where
installed) on the same synthetic data in the same process.
"""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SklearnIsolationForest

from anomaly_fast import ExtendedIsolationForest, IsolationForest

isotree = pytest.importorskip("isotree")

RNG = np.random.RandomState(0)
X_BATCH = RNG.normal(size=(50_000, 8))
ROW = np.ascontiguousarray(X_BATCH[:1])


def _iso(ndim):
    return isotree.IsolationForest(
        ndim=ndim, sample_size=256, ntrees=100, nthreads=1, random_seed=0, missing_action="fail"
    )


MODELS = {
    "anomaly_fast": lambda: IsolationForest(random_state=0),
    "sklearn": lambda: SklearnIsolationForest(random_state=0),
    "isotree": lambda: _iso(1),
}


def _score(name, model, X):
    return model.predict(X) if name == "isotree" else model.score_samples(X)


@pytest.mark.benchmark(group="fit 50k x 8")
@pytest.mark.parametrize("name", MODELS)
def test_fit(benchmark, name):
    benchmark(lambda: MODELS[name]().fit(X_BATCH))


@pytest.mark.benchmark(group="score_samples 50k x 8")
@pytest.mark.parametrize("name", MODELS)
def test_score_batch(benchmark, name):
    model = MODELS[name]().fit(X_BATCH)
    benchmark(_score, name, model, X_BATCH)


@pytest.mark.benchmark(group="score_samples one row")
@pytest.mark.parametrize("name", MODELS)
def test_score_one_row(benchmark, name):
    model = MODELS[name]().fit(X_BATCH)
    benchmark(_score, name, model, ROW)


@pytest.mark.benchmark(group="EIF score_samples 50k x 8")
@pytest.mark.parametrize("name", ["anomaly_fast", "isotree"])
def test_eif_score_batch(benchmark, name):
    if name == "isotree":
        model = _iso(X_BATCH.shape[1]).fit(X_BATCH)
    else:
        model = ExtendedIsolationForest(random_state=0).fit(X_BATCH)
    benchmark(_score, name, model, X_BATCH)
