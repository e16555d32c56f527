import numpy as np
import pytest


@pytest.fixture
def seed():
    """The one seed the suite's random data derives from."""
    return 42


@pytest.fixture
def rng(seed):
    return np.random.RandomState(seed)


@pytest.fixture
def blobs(rng):
    """500 Gaussian inliers in 4-D plus 20 uniform outliers far away; labels
    are 1 for the outliers."""
    inliers = rng.normal(size=(500, 4))
    outliers = rng.uniform(4.0, 8.0, size=(20, 4)) * rng.choice([-1, 1], size=(20, 4))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(500), np.ones(20)]
    return X, y
