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


# -- PostgreSQL ----------------------------------------------------------------------------
POSTGRES_ENV = "ANOMALY_FAST_TEST_POSTGRES"


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server for the tests (``.ci/postgres start DIR``
    exports it as ANOMALY_FAST_TEST_POSTGRES; ``.ci/run`` does).  Skips only
    when none is configured; a configured server that is down fails."""
    import os

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f'no PostgreSQL server: set {POSTGRES_ENV} (eval "$(.ci/postgres start DIR)")')
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install '.[postgres]')")
    return url


@pytest.fixture
def new_postgres_store(postgres_url):
    """Factory of PostgresAlertStore objects, each in a fresh schema (pass
    ``schema=`` to open one again); the schemas are dropped afterwards."""
    import uuid

    from anomaly_fast.pipeline.alert_store_postgres import PostgresAlertStore

    opened, schemas = [], set()

    def make(schema=None, **kwargs):
        schema = schema or f"t_{uuid.uuid4().hex[:16]}"
        schemas.add(schema)
        store = PostgresAlertStore(postgres_url, schema=schema, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if schemas:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
