"""``anomaly-fast bench scale-out``: scoring a Parquet dataset on a Dask
LocalCluster with :class:`anomaly_fast.scale_out.DaskScorer`.

Four measurements, peers in the same run (results in
``benchmarks/scale_out.md``):

(a) a dataset larger than the workers' memory (``--gib`` of float64 on disk,
    2 workers capped at ``--memory-limit``): completes, peak worker memory,
    rows/s;
(b) rows/s with 1 vs 2 workers (one thread each) on the first
    ``--subset-gib``, with the shares of Parquet I/O, scoring and
    scheduling (task-stream busy time vs wall time; I/O vs scoring timed
    inside the tasks), the CPU other processes took meanwhile, and the
    kernel's parallel ceiling (in-memory scoring, one task per worker at
    once: what the machine allows, whatever Dask does);
(c) against ``dask_ml.wrappers.ParallelPostFit(sklearn IsolationForest)``
    on the first ``--peer-gib``: end-to-end and scoring-only ratios;
(d) per-partition cost, scheduler overhead per task and model broadcast
    time, from which the cost at 10 and 100 workers is projected.

The data is synthetic (Gaussian rows plus 1% uniform outliers), written to
``--scratch`` (a temporary folder by default) and deleted at the end unless
``--keep``.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._data import RESULTS, write_json

__all__ = ["main"]

MiB = 2**20


def _write_dataset(folder, gib, n_features, rows_per_file, seed=0):
    """Write ``gib`` GiB of float64 features as uncompressed Parquet files of
    ``rows_per_file`` rows; the list of files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    n_files = max(1, int(round(gib * 2**30 / (rows_per_file * n_features * 8))))
    names = [f"f{j}" for j in range(n_features)]
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n_files):
        X = rng.standard_normal((rows_per_file, n_features))
        outliers = rng.random(rows_per_file) < 0.01
        X[outliers] = rng.uniform(-6, 6, size=(int(outliers.sum()), n_features))
        path = folder / f"part.{i:05d}.parquet"
        pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), path, compression="none")
        files.append(path)
    return files


def _peak_memory(dask_worker):
    return float(max(dask_worker.monitor.quantities["memory"]))


def _summarise(part):
    import pandas as pd

    return pd.DataFrame({"rows": [len(part)], "outliers": [int((part["predict"] == -1).sum())]})


def _timed_partition(path, model):
    """(seconds reading one file, seconds scoring it, rows) inside a task."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    X = pq.read_table(path).to_pandas().to_numpy(dtype=np.float64)
    read = time.perf_counter() - start
    start = time.perf_counter()
    model.score_samples(X)
    return read, time.perf_counter() - start, X.shape[0]


def _scoring_only(path, ours, theirs):
    """Seconds of ours.score_samples and theirs.score_samples on one file's rows."""
    import pyarrow.parquet as pq

    X = pq.read_table(path).to_pandas().to_numpy(dtype=np.float64)
    times = []
    for model in (ours, theirs):
        start = time.perf_counter()
        model.score_samples(X)
        times.append(time.perf_counter() - start)
    return times[0], times[1], X.shape[0]


def _cpu_seconds():
    """(CPU seconds the whole machine spent busy, CPU seconds of this process
    and its children, e.g. a LocalCluster's workers) since boot: their
    difference over a run is what other processes took (Linux; zeros
    elsewhere)."""
    import os

    import psutil

    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    ours = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        ours += t.user + t.system
    return busy, ours


def _in_memory_scoring(model, seed):
    """Seconds of scoring one partition's worth of rows already in memory
    (no I/O, no Dask work inside the timing): the machine's parallel
    capacity for this kernel."""
    X = np.random.default_rng(seed).standard_normal((262_144, model.n_features_in_))
    model.score_samples(X[:1000])
    start = time.perf_counter()
    model.score_samples(X)
    return time.perf_counter() - start


def _busy_seconds(stream):
    return sum(sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute") for t in stream)


def _cluster(n_workers, memory_limit):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=":0"
    )
    client = Client(cluster, set_as_default=False)
    client.run(_warm_up)  # imports outside the timed runs
    return cluster, client


def _warm_up():
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import anomaly_fast.scale_out  # noqa: F401


def _score_run(client, model, files, methods=("anomaly_score", "predict")):
    """(wall seconds, rows, outliers, task-stream busy seconds) of scoring
    ``files`` with DaskScorer, the scores reduced per partition."""
    import dask.dataframe as dd

    from ..scale_out import DaskScorer

    since = time.time()
    start = time.perf_counter()
    scorer = DaskScorer(model, client)
    ddf = dd.read_parquet([str(f) for f in files])
    frame = scorer.score_frame(ddf, methods)
    counts = client.compute(frame.map_partitions(_summarise, meta={"rows": int, "outliers": int})).result()
    wall = time.perf_counter() - start
    busy = _busy_seconds(client.get_task_stream(start=since))
    return wall, int(counts["rows"].sum()), int(counts["outliers"].sum()), busy


def _part_a(files, model, memory_limit):
    cluster, client = _cluster(2, memory_limit)
    try:
        workers = set(client.scheduler_info()["workers"])
        wall, rows, outliers, busy = _score_run(client, model, files)
        peaks = client.run(_peak_memory)
        restarted = workers != set(client.scheduler_info()["workers"])
    finally:
        client.close()
        cluster.close()
    size = sum(f.stat().st_size for f in files)
    return {
        "files": len(files),
        "bytes_on_disk": size,
        "rows": rows,
        "outliers": outliers,
        "seconds": wall,
        "rows_per_s": rows / wall,
        "peak_worker_memory": sorted(peaks.values()),
        "memory_limit": memory_limit,
        "workers_restarted": restarted,
        "busy_s": busy,
    }


def _part_b(files, model, memory_limit, repeats):
    out = {}
    for n_workers in (1, 2):
        cluster, client = _cluster(n_workers, memory_limit)
        try:
            machine0, ours0 = _cpu_seconds()
            start = time.perf_counter()
            runs = [_score_run(client, model, files) for _ in range(repeats)]
            machine1, ours1 = _cpu_seconds()
            others = max(0.0, (machine1 - machine0) - (ours1 - ours0)) / (time.perf_counter() - start)
            wall, rows, _, busy = min(runs)
            shared = client.scatter(model, broadcast=True)
            timed = client.gather(client.map(_timed_partition, files, model=shared, pure=False))
            # one in-memory scoring task per worker at once, pinned: the kernel's parallel ceiling now
            calibration = client.gather(
                [
                    client.submit(_in_memory_scoring, shared, seed, workers=[w], pure=False)
                    for seed, w in enumerate(sorted(client.scheduler_info()["workers"]))
                ]
            )
        finally:
            client.close()
            cluster.close()
        read = sum(t[0] for t in timed)
        score = sum(t[1] for t in timed)
        capacity = wall * n_workers
        busy_share = min(busy / capacity, 1.0)
        out[n_workers] = {
            "seconds": wall,
            "all_seconds": [r[0] for r in runs],
            "rows": rows,
            "rows_per_s": rows / wall,
            "share_io": busy_share * read / (read + score),
            "share_scoring": busy_share * score / (read + score),
            "share_scheduling_idle": 1.0 - busy_share,
            "per_partition_read_s": read / len(files),
            "per_partition_score_s": score / len(files),
            "other_processes_cores": others,
            "in_memory_scoring_s": calibration,
        }
    out["speedup"] = out[2]["rows_per_s"] / out[1]["rows_per_s"]
    # what the machine allowed: 2 workers' in-memory scoring throughput over 1 worker's (2.0 on 2 free cores)
    out["kernel_ceiling"] = 2 * out[1]["in_memory_scoring_s"][0] / np.mean(out[2]["in_memory_scoring_s"])
    return out


def _part_c(files, ours, sample, memory_limit):
    import dask.dataframe as dd
    from dask_ml.wrappers import ParallelPostFit
    from sklearn.ensemble import IsolationForest as SkIsolationForest

    from ..scale_out import DaskScorer

    theirs = ParallelPostFit(SkIsolationForest(n_estimators=ours.n_estimators, random_state=0)).fit(sample)
    cluster, client = _cluster(2, memory_limit)
    try:
        ddf = dd.read_parquet([str(f) for f in files])
        start = time.perf_counter()
        mine = client.compute(DaskScorer(ours, client).predict(ddf)).result()
        ours_wall = time.perf_counter() - start
        start = time.perf_counter()
        with _as_default(client):
            peer = theirs.predict(ddf).compute()
        theirs_wall = time.perf_counter() - start
        only = client.gather(client.map(_scoring_only, files[:2], ours=ours, theirs=theirs.estimator, pure=False))
    finally:
        client.close()
        cluster.close()
    ours_only, theirs_only = sum(t[0] for t in only), sum(t[1] for t in only)
    rows = len(mine)
    return {
        "rows": rows,
        "ours_s": ours_wall,
        "parallelpostfit_s": theirs_wall,
        "end_to_end_ratio": theirs_wall / ours_wall,
        "scoring_only_ours_s": ours_only,
        "scoring_only_sklearn_s": theirs_only,
        "scoring_only_ratio": theirs_only / ours_only,
        "outlier_fraction_ours": float(np.mean(np.asarray(mine) == -1)),
        "outlier_fraction_sklearn": float(np.mean(np.asarray(peer) == -1)),
    }


class _as_default:
    """Make ``client`` the default scheduler inside a ``with`` block."""

    def __init__(self, client):
        self.client = client

    def __enter__(self):
        import dask

        self._config = dask.config.set(scheduler=self.client)
        self._config.__enter__()

    def __exit__(self, *exc):
        self._config.__exit__(*exc)


def _noop(x):
    return x


def _part_d(model, per_partition_s, memory_limit, n_partitions_a):
    import pickle

    cluster, client = _cluster(2, memory_limit)
    try:
        n_tasks = 2_000
        start = time.perf_counter()
        client.gather(client.map(_noop, range(n_tasks), pure=False))
        per_task = (time.perf_counter() - start) / n_tasks
        start = time.perf_counter()
        client.scatter(model, broadcast=True, hash=False).result()
        broadcast = time.perf_counter() - start
    finally:
        client.close()
        cluster.close()
    model_bytes = len(pickle.dumps(model))
    projection = {}
    for workers in (1, 2, 10, 100):
        # P partitions: workers in parallel, the scheduler serial (per_task
        # each); the broadcast sends to the workers concurrently (a 0.3 MB
        # model: latency-bound), so it is taken as constant
        compute = n_partitions_a * per_partition_s / workers
        scheduling = n_partitions_a * per_task
        projection[workers] = {
            "compute_s": compute,
            "scheduler_s": scheduling,
            "broadcast_s": broadcast,
            "wall_s": max(compute, scheduling) + broadcast,
        }
    return {
        "scheduler_s_per_task": per_task,
        "broadcast_2_workers_s": broadcast,
        "model_bytes": model_bytes,
        "per_partition_s": per_partition_s,
        "partitions": n_partitions_a,
        "projection": projection,
    }


def main(argv=None):
    from ..cli import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="anomaly-fast bench scale-out",
        formatter_class=HelpFormatter,
        description="Dask scoring of a synthetic Parquet dataset on LocalClusters: (a) data larger than the "
        "workers' memory, (b) 1 vs 2 workers, (c) against dask-ml ParallelPostFit(scikit-learn "
        "IsolationForest), (d) scheduler overhead and a projection to 10 and 100 workers. Needs "
        "pip install 'anomaly_fast[dask]' dask-ml.",
    )
    parser.add_argument("--gib", type=float, default=0.5, help="size of (a)'s dataset on disk, GiB")
    parser.add_argument("--subset-gib", type=float, default=0.25, help="data of (b), GiB (first files)")
    parser.add_argument("--peer-gib", type=float, default=0.0625, help="data of (c), GiB (first files)")
    parser.add_argument("--features", type=int, default=16, help="float64 feature columns")
    parser.add_argument("--rows-per-file", type=int, default=262_144, help="rows per Parquet file (= partition)")
    parser.add_argument("--memory-limit", default="1GiB", help="memory cap of each worker")
    parser.add_argument("--repeats", type=int, default=3, help="runs of (b) per cluster size (best kept)")
    parser.add_argument("--parts", default="abcd", help="which measurements to run")
    parser.add_argument("--scratch", default=None, help="folder for the Parquet data (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet data")
    parser.add_argument("--output", default=f"{RESULTS}/scale_out.json", help="results file (JSON)")
    args = parser.parse_args(argv)
    from ..forest.isolation_forest import IsolationForest
    from ..scale_out import fit_dask, sample_dask

    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="af-scale-out-"))
    results = {"config": vars(args)}
    try:
        start = time.perf_counter()
        files = _write_dataset(scratch / "data", args.gib, args.features, args.rows_per_file)
        results["write_s"] = time.perf_counter() - start
        print(
            f"wrote {len(files)} files, {sum(f.stat().st_size for f in files) / 2**30:.2f} GiB in "
            f"{results['write_s']:.0f} s",
            file=sys.stderr,
        )
        per_file = args.rows_per_file * args.features * 8 / 2**30
        subset = files[: max(1, int(round(args.subset_gib / per_file)))]
        peer = files[: max(2, int(round(args.peer_gib / per_file)))]
        cluster, client = _cluster(2, args.memory_limit)
        try:
            with _as_default(client):
                start = time.perf_counter()
                model = fit_dask(IsolationForest(random_state=0), str(scratch / "data"))
                results["fit_dask_s"] = time.perf_counter() - start
                sample = sample_dask(str(scratch / "data"), 25_600, random_state=0)
        finally:
            client.close()
            cluster.close()
        if "a" in args.parts:
            results["a"] = _part_a(files, model, args.memory_limit)
            print(json.dumps({"a": results["a"]}, default=str), file=sys.stderr)
        if "b" in args.parts:
            results["b"] = _part_b(subset, model, args.memory_limit, args.repeats)
            print(json.dumps({"b": results["b"]}, default=str), file=sys.stderr)
        if "c" in args.parts:
            results["c"] = _part_c(peer, model, sample.to_numpy(), args.memory_limit)
            print(json.dumps({"c": results["c"]}, default=str), file=sys.stderr)
        if "d" in args.parts:
            per_partition = (results["b"][1]["seconds"] / len(subset)) if "b" in results else None
            if per_partition is not None:
                results["d"] = _part_d(model, per_partition, args.memory_limit, len(files))
                print(json.dumps({"d": results["d"]}, default=str), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    write_json(results, args.output)
    print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
