"""``anomaly-fast ensemble-latency``: one-row latency and batch consistency of
AnomalyEnsemble (IF + LOF, calibrated at train time) next to PyOD's batch
rescaling (each detector z-scored over the scored batch, then averaged).

Both pipelines score with the same fitted IsolationForest and
LocalOutlierFactor(novelty=True, algorithm="kd_tree"); when PyOD is installed
its ``standardizer`` does the batch rescaling (then the mean, as PyOD's
``average``), and PyOD's own
``IForest`` + ``LOF`` are timed as a third, all-PyOD pipeline.
"""

import argparse
import sys
import time

import numpy as np

from ..ensemble import AnomalyEnsemble, raw_anomaly_scores
from ._data import adbench_file, load_adbench_file

__all__ = ["main"]


def load_rows(data_dir, dataset, n_train, n_query, n_features, seed):
    rng = np.random.RandomState(seed)
    if data_dir is None:
        X = rng.normal(size=(n_train + n_query, n_features))
        source = f"synthetic N(0, 1), {n_features} features"
    else:
        path = adbench_file(data_dir, dataset)
        X, _ = load_adbench_file(path)
        if X.shape[0] < n_train + n_query:
            raise SystemExit(f"{path.name} has {X.shape[0]} rows, fewer than {n_train + n_query}")
        X = X[rng.permutation(X.shape[0])[: n_train + n_query]]
        X = (X - X[:n_train].mean(axis=0)) / np.where(X[:n_train].std(axis=0) > 0, X[:n_train].std(axis=0), 1.0)
        source = f"{path.stem}, {X.shape[1]} features, standardized"
    return X[:n_train], X[n_train:], source


def batch_rescaler():
    try:
        from pyod.utils.utility import standardizer

        return (lambda columns: standardizer(np.column_stack(columns)).mean(axis=1)), "PyOD standardizer, then mean"
    except ImportError:

        def inline(columns):
            scores = np.column_stack(columns)
            std = scores.std(axis=0)
            std[std == 0] = 1.0
            return ((scores - scores.mean(axis=0)) / std).mean(axis=1)

        return inline, "inline z-score over the batch + mean (PyOD not installed)"


def per_call_us(func, rows, repeats):
    """p50 / p90 of one call per row, in microseconds."""
    times = np.empty(repeats)
    for i in range(repeats):
        row = rows[i % rows.shape[0] : i % rows.shape[0] + 1]
        start = time.perf_counter()
        func(row)
        times[i] = time.perf_counter() - start
    return np.percentile(times, 50) * 1e6, np.percentile(times, 90) * 1e6


def build_parser():
    p = argparse.ArgumentParser(prog="anomaly-fast ensemble-latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder with ADBench .npz files; synthetic rows when omitted")
    p.add_argument("--dataset", default="magic.gamma", help="ADBench set for --data-dir (default magic.gamma)")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-features", type=int, default=10, help="synthetic data only")
    p.add_argument("--repeats", type=int, default=300, help="one-row calls timed per pipeline")
    p.add_argument("--batch", type=int, default=100, help="batch size for the consistency check")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.n_train < 50 or args.repeats < 1 or args.batch < 2:
        print("ensemble-latency: need --n-train >= 50, --repeats >= 1, --batch >= 2", file=sys.stderr)
        return 2
    n_query = max(2 * args.batch, 200)
    X_train, X_query, source = load_rows(args.data_dir, args.dataset, args.n_train, n_query, args.n_features, args.seed)
    rescale, how = batch_rescaler()

    start = time.perf_counter()
    ens = AnomalyEnsemble(random_state=args.seed).fit(X_train)
    fit_seconds = time.perf_counter() - start
    iforest, lof = ens.named_estimators_.iforest, ens.named_estimators_.lof

    def batch_z(X):
        return rescale([raw_anomaly_scores(iforest, X), raw_anomaly_scores(lof, X)])

    pipelines = [
        ("AnomalyEnsemble.anomaly_score", ens.anomaly_score),
        ("same IF + LOF, batch z-score", batch_z),
        ("  IsolationForest alone", iforest.score_samples),
        ("  LocalOutlierFactor alone", lof.score_samples),
    ]
    try:
        from pyod.models.iforest import IForest
        from pyod.models.lof import LOF

        p_if = IForest(random_state=args.seed).fit(X_train)
        p_lof = LOF(algorithm="kd_tree").fit(X_train)
        pipelines.append(
            ("PyOD IForest + LOF, batch z-score", lambda X: rescale([p_if.decision_function(X), p_lof.decision_function(X)]))
        )
    except ImportError:
        pass

    print(f"anomaly-fast ensemble-latency: {args.n_train} training rows ({source}); ensemble fit {fit_seconds:.2f} s")
    print(f"batch rescaling: {how}; {args.repeats} one-row calls per pipeline, n_jobs=1\n")
    print(f"{'pipeline':<36}{'1 row p50 us':>14}{'p90 us':>10}{'1000 rows ms':>14}")
    big = np.tile(X_query, (1000 // n_query + 1, 1))[:1000]
    for name, func in pipelines:
        func(X_query[:1])  # warm-up
        p50, p90 = per_call_us(func, X_query, args.repeats)
        start = time.perf_counter()
        func(big)
        batch_ms = (time.perf_counter() - start) * 1e3
        print(f"{name:<36}{p50:>14.0f}{p90:>10.0f}{batch_ms:>14.1f}")

    # The same rows scored alone, and inside two different batches.
    rows = X_query[: args.batch]
    others = X_query[args.batch : 2 * args.batch]
    print(f"\nsame {args.batch} rows scored alone / in a batch of {args.batch} / in a batch of {2 * args.batch} with other rows")
    for name, func in pipelines[:2] + pipelines[4:]:
        alone = np.array([func(rows[i : i + 1])[0] for i in range(args.batch)])
        in_batch = func(rows)
        mixed = func(np.vstack([rows, others]))[: args.batch]
        print(
            f"{name:<36} max |alone - batch| {np.max(np.abs(alone - in_batch)):.3g}, "
            f"max |batch - mixed batch| {np.max(np.abs(in_batch - mixed)):.3g}, "
            f"distinct one-row scores {len(np.unique(alone))}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
