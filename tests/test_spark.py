"""The Spark recipe of anomaly_fast.scale_out: ``mapInPandas`` with
:func:`spark_score_function`, run against pyspark in local mode."""

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from anomaly_fast import IsolationForest
from anomaly_fast.scale_out import spark_score_function


def _java_problem():
    """Why no Java runtime can run Spark here, or None."""
    if shutil.which("java") is None:
        return "no Java runtime on PATH (Debian: apt-get install default-jre-headless)"
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java -version failed: {exc}"
    return None


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'anomaly_fast[spark]')")
    problem = _java_problem()
    if problem:
        print(f"skipping the Spark tests: {problem}")
        pytest.skip(problem)
    session = (
        pyspark.sql.SparkSession.builder.master("local[2]")
        .appName("anomaly_fast-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def frame():
    rng = np.random.RandomState(42)
    X = np.vstack([rng.normal(size=(1_950, 3)), rng.uniform(-6, 6, size=(50, 3))])
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    df.insert(0, "entity_id", [f"e{i % 5}" for i in range(len(df))])
    df.insert(1, "event_id", np.arange(len(df), dtype=np.int64))
    return df


def test_map_in_pandas_scores_equal_the_in_memory_scores_exactly(spark, frame):
    model = IsolationForest(n_estimators=40, contamination=0.05, random_state=0).fit(frame[["a", "b", "c"]])
    sdf = spark.createDataFrame(frame).repartition(4)
    score = spark_score_function(
        model, keep=["entity_id", "event_id"], methods=["anomaly_score", "predict", "score_samples"]
    )
    assert score.broadcast is not None
    schema = score.output_schema(sdf.schema)
    assert schema.fieldNames() == ["entity_id", "event_id", "anomaly_score", "predict", "score_samples"]
    out = sdf.mapInPandas(score, schema=schema).toPandas().sort_values("event_id").reset_index(drop=True)
    assert len(out) == len(frame)
    np.testing.assert_array_equal(out["entity_id"].to_numpy(), frame["entity_id"].to_numpy())
    features = frame[["a", "b", "c"]]
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), model.anomaly_score(features))
    np.testing.assert_array_equal(out["predict"].to_numpy(), model.predict(features))
    np.testing.assert_array_equal(out["score_samples"].to_numpy(), model.score_samples(features))


def test_a_model_without_feature_names_scores_every_non_metadata_column(spark, frame):
    model = IsolationForest(n_estimators=20, random_state=1).fit(frame[["a", "b", "c"]].to_numpy())
    sdf = spark.createDataFrame(frame.drop(columns=["entity_id"]))
    score = spark_score_function(model, methods=["decision_function"])
    out = sdf.mapInPandas(score, schema=score.output_schema(sdf.schema)).toPandas()
    out = out.sort_values("event_id")
    np.testing.assert_array_equal(
        out["decision_function"].to_numpy(), model.decision_function(frame[["a", "b", "c"]].to_numpy())
    )


def test_the_helper_refuses_a_method_the_model_lacks(frame):
    model = IsolationForest(n_estimators=5, random_state=0).fit(frame[["a", "b", "c"]])
    with pytest.raises(ValueError, match="method must be one of"):
        spark_score_function(model, methods=["transform"])
