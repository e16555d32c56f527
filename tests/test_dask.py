"""anomaly_fast.scale_out on Dask: a LocalCluster with 2 worker processes
scores Dask collections exactly like the in-memory model, ships the model
once per worker, and fits reproducibly from a uniform sample."""

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask", reason="dask is not installed (pip install 'anomaly_fast[dask]')")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

from anomaly_fast import AnomalyEnsemble, ExtendedIsolationForest, IsolationForest  # noqa: E402
from anomaly_fast.scale_out import (  # noqa: E402
    METHODS,
    DaskScorer,
    default_sample_rows,
    fit_dask,
    sample_dask,
)

# Unpickles of CountingIsolationForest in this process (each worker process
# has its own copy of this module, hence its own count).
LOADS = [0]


class CountingIsolationForest(IsolationForest):
    """An IsolationForest that counts how often it is unpickled in a process."""

    def __setstate__(self, state):
        LOADS[0] += 1
        super().__setstate__(state)


def _loads_on_worker():
    return LOADS[0]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="1GiB"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def table():
    rng = np.random.RandomState(42)
    X = np.vstack([rng.normal(size=(3_900, 4)), rng.uniform(-6, 6, size=(100, 4))])
    return X[rng.permutation(len(X))]


@pytest.fixture(scope="module")
def model(table):
    return IsolationForest(n_estimators=50, contamination=0.05, random_state=0).fit(table)


def _frame(X):
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    df.insert(0, "entity_id", np.arange(len(X)) % 7)
    df.index = pd.RangeIndex(1000, 1000 + len(X), name="row")
    return df


@pytest.mark.parametrize("method", METHODS)
def test_scores_of_a_dask_array_equal_the_in_memory_scores_exactly(client, table, model, method):
    X = da.from_array(table, chunks=(700, 2))  # column chunks are merged
    result = getattr(DaskScorer(model, client), method)(X)
    assert result.chunks == ((700,) * 5 + (500,),)
    np.testing.assert_array_equal(result.compute(), getattr(model, method)(table))


@pytest.mark.parametrize("method", METHODS)
def test_scores_of_a_dask_dataframe_keep_its_index_and_divisions(client, table, model, method):
    df = _frame(table)
    ddf = dd.from_pandas(df, npartitions=5)
    result = getattr(DaskScorer(model, client), method)(ddf)
    assert result.divisions == ddf.divisions
    assert result.name == method
    computed = result.compute()
    pd.testing.assert_index_equal(computed.index, df.index)
    np.testing.assert_array_equal(computed.to_numpy(), getattr(model, method)(table))


def test_a_model_fitted_with_feature_names_is_given_its_columns_by_name(client, table):
    df = _frame(table)
    named = ExtendedIsolationForest(n_estimators=20, random_state=1).fit(df[["f3", "f1", "f0", "f2"]])
    ddf = dd.from_pandas(df, npartitions=3)
    result = DaskScorer(named, client).anomaly_score(ddf).compute()
    np.testing.assert_array_equal(result.to_numpy(), named.anomaly_score(df[["f3", "f1", "f0", "f2"]]))


def test_score_frame_keeps_entity_id_and_scores_every_method_in_one_pass(client, table, model):
    ddf = dd.from_pandas(_frame(table), npartitions=4)
    frame = DaskScorer(model, client).score_frame(ddf, methods=METHODS)
    assert list(frame.columns) == ["entity_id", *METHODS]
    assert frame.divisions == ddf.divisions
    out = frame.compute()
    np.testing.assert_array_equal(out["entity_id"].to_numpy(), np.arange(len(table)) % 7)
    for method in METHODS:
        np.testing.assert_array_equal(out[method].to_numpy(), getattr(model, method)(table))


def test_a_parquet_dataset_path_is_scored_like_the_table(client, table, model, tmp_path):
    df = _frame(table)
    for i, start in enumerate(range(0, len(df), 1_500)):
        # index=True: dask cannot read pandas' metadata-only RangeIndex
        df.iloc[start : start + 1_500].to_parquet(tmp_path / f"part.{i}.parquet", index=True)
    result = DaskScorer(model, client).predict(str(tmp_path))
    assert result.npartitions == 3
    computed = result.compute()
    assert computed.index.name == "row"
    np.testing.assert_array_equal(computed.index.to_numpy(), df.index.to_numpy())
    np.testing.assert_array_equal(computed.to_numpy(), model.predict(table))


def test_the_model_is_transferred_once_per_worker(client, table):
    counting = CountingIsolationForest(n_estimators=30, random_state=0).fit(table)
    client.run(lambda: LOADS.__setitem__(0, 0))
    scorer = DaskScorer(counting, client)
    ddf = dd.from_pandas(_frame(table), npartitions=16)
    first = scorer.score_samples(ddf).compute()
    second = scorer.predict(da.from_array(table, chunks=(250, 4))).compute()
    loads = client.run(_loads_on_worker)
    assert sorted(loads.values()) == [1, 1], loads
    np.testing.assert_array_equal(first.to_numpy(), counting.score_samples(table))
    np.testing.assert_array_equal(second, counting.predict(table))
    # the broadcast put it on both workers (the loads above); dask's active
    # memory manager may since have dropped one replica (ReduceReplicas runs
    # every 2 s), so only that it is still held somewhere is certain
    holders = client.who_has(scorer.model_ref)[scorer.model_ref.key]
    assert 1 <= len(holders) <= 2


def test_without_a_client_the_threads_share_the_model(table, model):
    scorer = DaskScorer(model, client=False)
    assert scorer.model_ref is model
    result = scorer.decision_function(da.from_array(table, chunks=(1_000, 4)))
    np.testing.assert_array_equal(result.compute(scheduler="threads"), model.decision_function(table))


def test_scoring_rejects_data_of_the_wrong_width_or_kind(client, table, model):
    scorer = DaskScorer(model, client)
    with pytest.raises(ValueError, match="the data has 3 features, the model 4"):
        scorer.score_samples(da.from_array(table[:, :3], chunks=(1_000, 3)))
    with pytest.raises(ValueError, match="columns not in the data"):
        scorer.score_samples(dd.from_pandas(_frame(table), npartitions=2), columns=["f0", "nope"])
    with pytest.raises(TypeError, match="expected a dask Array"):
        scorer.score_samples(table)
    with pytest.raises(ValueError, match="method must be one of"):
        scorer.score_frame(dd.from_pandas(_frame(table), npartitions=2), methods=["fit"])


def test_an_unfitted_model_cannot_be_scattered(client):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DaskScorer(IsolationForest(), client)


def test_a_sample_is_reproducible_for_a_seed_and_a_partitioning(client):
    ids = np.arange(10_000, dtype=np.float64)[:, None]
    X = da.from_array(ids, chunks=(1_500, 1))
    first = sample_dask(X, 500, random_state=3)
    assert first.shape == (500, 1)
    assert len(np.unique(first)) == 500
    np.testing.assert_array_equal(first, sample_dask(X, 500, random_state=3))
    assert not np.array_equal(first, sample_dask(X, 500, random_state=4))
    assert sample_dask(X, 50_000, random_state=3).shape == (10_000, 1)


def test_a_sample_draws_from_each_partition_in_proportion_to_its_rows(client):
    # partitions of 1,000 and 9,000 rows: a uniform sample of 2,000 takes about
    # 200 from the first (hypergeometric, sd ~12.7)
    ids = np.arange(10_000, dtype=np.float64)[:, None]
    X = da.from_array(ids, chunks=((1_000, 9_000), (1,)))
    counts = [int((sample_dask(X, 2_000, random_state=s) < 1_000).sum()) for s in range(5)]
    assert all(abs(c - 200) < 60 for c in counts), counts
    assert abs(np.mean(counts) - 200) < 30, counts


def test_fit_from_a_dask_dataframe_with_a_fixed_seed_is_reproducible(client, table):
    ddf = dd.from_pandas(_frame(table), npartitions=6)
    first = fit_dask(IsolationForest(n_estimators=20, random_state=5), ddf)
    second = fit_dask(IsolationForest(n_estimators=20, random_state=5), ddf)
    assert list(first.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    assert first.max_samples_ == 256
    probe = _frame(table)[["f0", "f1", "f2", "f3"]]
    np.testing.assert_array_equal(first.score_samples(probe), second.score_samples(probe))
    other = fit_dask(IsolationForest(n_estimators=20, random_state=5), ddf, random_state=6)
    assert not np.array_equal(first.score_samples(probe), other.score_samples(probe))


def test_the_default_sample_is_n_estimators_times_max_samples():
    assert default_sample_rows(IsolationForest()) == 25_600
    assert default_sample_rows(IsolationForest(n_estimators=10, max_samples=64)) == 640
    assert default_sample_rows(IsolationForest(max_samples=0.5)) == 100_000
    assert default_sample_rows(AnomalyEnsemble()) == 100_000


def test_the_ensemble_calibration_is_fitted_on_the_sample(client, table):
    X = da.from_array(table, chunks=(800, 4))
    ens = fit_dask(AnomalyEnsemble(random_state=0), X, n_rows=1_500, random_state=2)
    again = fit_dask(AnomalyEnsemble(random_state=0), X, n_rows=1_500, random_state=2)
    assert ens.n_features_in_ == 4
    assert all(c["sorted"].shape == (1_500,) for c in ens.calibrations_)
    assert ens.threshold_ == again.threshold_
    np.testing.assert_array_equal(ens.anomaly_score(table), again.anomaly_score(table))
    sample = sample_dask(X, 1_500, random_state=2)
    np.testing.assert_array_equal(
        ens.anomaly_score(table), AnomalyEnsemble(random_state=0).fit(sample).anomaly_score(table)
    )


def test_parallel_post_fit_of_dask_ml_predicts_like_the_model(client, table):
    try:
        from dask_ml.wrappers import ParallelPostFit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        print(f"dask-ml not importable: {exc}")
        pytest.skip(f"dask-ml not importable: {exc}")
    wrapped = ParallelPostFit(IsolationForest(n_estimators=30, random_state=0)).fit(table)
    result = wrapped.predict(da.from_array(table, chunks=(1_000, 4)))
    reference = IsolationForest(n_estimators=30, random_state=0).fit(table)
    np.testing.assert_array_equal(result.compute(), reference.predict(table))


# -- the command line --------------------------------------------------------------
@pytest.fixture
def parquet_folder(table, tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    df = _frame(table).reset_index(drop=True)
    for i, start in enumerate(range(0, len(df), 1_000)):
        df.iloc[start : start + 1_000].to_parquet(folder / f"day-{i}.parquet", index=False)
    return folder, df


def test_score_dask_writes_one_parquet_file_of_scores_per_partition(client, parquet_folder, tmp_path, capsys):
    from anomaly_fast.pipeline.cli import fit_main, score_main

    folder, df = parquet_folder
    df.to_csv(tmp_path / "train.csv", index=False)
    assert fit_main([str(tmp_path / "train.csv"), "-o", str(tmp_path / "models"), "--n-estimators", "30"]) == 0
    capsys.readouterr()
    out = tmp_path / "scores"
    argv = [str(tmp_path / "models"), str(folder / "day-*.parquet"), "--dask", client.scheduler.address, "-o", str(out)]
    assert score_main(argv) == 0
    assert "wrote 4,000 rows in 4 Parquet files" in capsys.readouterr().err
    files = sorted(out.glob("part.*.parquet"))
    assert len(files) == 4
    scored = pd.concat([pd.read_parquet(f) for f in files])
    assert list(scored.columns) == ["entity_id", "anomaly_score", "is_outlier"]
    in_memory = tmp_path / "in_memory.csv"
    assert score_main([str(tmp_path / "models"), str(tmp_path / "train.csv"), "-o", str(in_memory)]) == 0
    expected = pd.read_csv(in_memory)
    np.testing.assert_array_equal(scored["anomaly_score"].to_numpy(), expected["anomaly_score"].to_numpy())
    np.testing.assert_array_equal(scored["is_outlier"].to_numpy(), expected["is_outlier"].to_numpy())
    np.testing.assert_array_equal(scored["entity_id"].to_numpy(), df["entity_id"].to_numpy())
    assert score_main(argv) == 2  # the output folder is not empty any more
    assert "is not an empty folder" in capsys.readouterr().err


def test_score_dask_without_an_address_starts_a_local_cluster_and_drops_missing_rows(
    client, parquet_folder, tmp_path, capsys
):
    from anomaly_fast.pipeline.cli import score_main
    from anomaly_fast.pipeline.registry import ModelRegistry

    folder, df = parquet_folder
    holes = df.iloc[:1_000].copy()
    holes.loc[[3, 7], "f1"] = np.nan
    holes.to_parquet(folder / "day-0.parquet", index=False)
    features = ["f0", "f1", "f2", "f3"]
    model = IsolationForest(n_estimators=20, random_state=0).fit(df[features].to_numpy())
    ModelRegistry(tmp_path / "models").save(model, df[features].to_numpy(), feature_names=features)
    # IsolationForest takes missing values (scikit-learn's semantics): rows with NaN are scored
    assert (
        score_main(
            [str(tmp_path / "models"), str(folder), "--dask", client.scheduler.address, "-o", str(tmp_path / "a")]
        )
        == 0
    )
    with_nan = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "a").glob("*.parquet"))])
    assert len(with_nan) == len(df)  # day-0 replaced by the copy with holes
    assert np.isfinite(with_nan["anomaly_score"].to_numpy()).all()
    out = tmp_path / "b"
    assert score_main([str(tmp_path / "models"), str(folder), "--dask", "--dropna", "-o", str(out)]) == 0
    scored = pd.concat([pd.read_parquet(f) for f in sorted(out.glob("*.parquet"))])
    assert len(scored) == 3_998
    kept = holes.drop([3, 7])
    np.testing.assert_array_equal(
        scored["anomaly_score"].to_numpy()[:998], model.anomaly_score(kept[features].to_numpy())
    )


def test_score_dask_needs_an_output_folder(tmp_path, capsys):
    from anomaly_fast.pipeline.cli import score_main
    from anomaly_fast.pipeline.registry import ModelRegistry

    X = np.random.RandomState(0).normal(size=(50, 2))
    ModelRegistry(tmp_path / "m").save(IsolationForest(n_estimators=5).fit(X), X)
    assert score_main([str(tmp_path / "m"), str(tmp_path / "nothing"), "--dask"]) == 2
    assert "give it with -o FOLDER" in capsys.readouterr().err
    assert score_main([str(tmp_path / "m"), str(tmp_path / "nothing"), "--dask", "-o", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
