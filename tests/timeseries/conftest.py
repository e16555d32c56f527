import numpy as np
import pandas as pd
import pytest

PERIOD = 24


@pytest.fixture
def seed():
    return 0


def seasonal(n=PERIOD * 42, seed=0, noise=0.5, start="2024-01-01"):
    """Hourly series with a daily cycle and gaussian noise."""
    rng = np.random.RandomState(seed)
    hour = np.arange(n)
    values = 20 + 5 * np.sin(2 * np.pi * hour / PERIOD) + noise * rng.normal(size=n)
    return pd.Series(values, index=pd.date_range(start, periods=n, freq="h"))


@pytest.fixture
def series(seed):
    return seasonal(seed=seed)
