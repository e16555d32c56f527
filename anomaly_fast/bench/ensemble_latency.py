"""``anomaly-fast ensemble-latency``: speed of AnomalyEnsemble (IF + compiled
LOF) and of its LOF member, next to scikit-learn's LocalOutlierFactor and the
seed's design (the same ensemble with scikit-learn's LOF as member) measured
in the same run.

Sections (``--sections``, comma-separated; default all):

- ``latency``: one-row ``anomaly_score`` p50/p99 of the default ensemble at
  each ``--n-train`` (8 features), its members alone, scikit-learn's LOF alone
  and the seed's ensemble; and a 1000-row batch.
- ``consistency``: the same rows scored alone / in a batch / in a mixed batch,
  for the ensemble and for the PyOD recipe (each detector z-scored over the
  scored batch, then averaged; PyOD's ``standardizer`` when installed).
- ``throughput``: fit + score of ``--big`` rows x 10 features: our LOF on
  every row (``max_samples=None``) against scikit-learn's
  ``LocalOutlierFactor(novelty=True)`` (same scores), and the default
  ensemble against scikit-learn's LOF alone.
- ``lof-full``: the LOF member on every row (``max_samples=None``), fit +
  score of ``--big`` x 10, against scikit-learn's
  ``LocalOutlierFactor(novelty=True)`` (its default algorithm), each with
  n_jobs=1 and 2, ``--repeats`` alternating repeats (best and median), and
  where our time goes (tree build, the training rows' neighbours, densities,
  scoring).
- ``fit-1m``: fit of the default ensemble on 1,000,000 x 10 rows.
- ``crossover``: k-d tree against brute force (one-row query, fit) by n x d,
  which ``algorithm="auto"`` follows.
- ``pipeline``: AnomalyPipeline with the default ensemble as detector
  (trained on the first ``--n-train`` value): ``process`` p50/p99 (no alert
  written) and ``process_batch`` events/s, next to the same pipeline with an
  IsolationForest.

Data are synthetic N(0, 1) rows (``--data-dir``/``--dataset``: rows of an
ADBench set, standardized, for ``latency`` and ``consistency``).
"""

import argparse
import sys
import time

import numpy as np

from .. import _lof
from ..ensemble import AnomalyEnsemble, raw_anomaly_scores
from ..forest.isolation_forest import IsolationForest
from ..local_outlier_factor import LocalOutlierFactor, leaf_of_points
from ._data import adbench_file, load_adbench_file
from ._timing import percentiles_us, time_calls, timed

__all__ = ["main"]

SECTIONS = ("latency", "consistency", "throughput", "lof-full", "fit-1m", "crossover", "pipeline")


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
        scale = X[:n_train].std(axis=0)
        X = (X - X[:n_train].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
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


def one_row_us(func, rows, calls):
    """p50 / p99 of one call per row (microseconds), after a warm-up."""
    for i in range(min(50, calls)):
        func(rows[i % rows.shape[0]].reshape(1, -1))
    return percentiles_us(time_calls(lambda row, i: func(row.reshape(1, -1)), rows, calls))


def seed_ensemble(seed):
    """The seed's design: the same ensemble with scikit-learn's LOF as member."""
    from sklearn.neighbors import LocalOutlierFactor as SkLocalOutlierFactor

    return AnomalyEnsemble(
        [
            ("iforest", IsolationForest(random_state=seed)),
            ("lof", SkLocalOutlierFactor(novelty=True, algorithm="kd_tree")),
        ],
        random_state=seed,
    )


def section_latency(args, out):
    from sklearn.neighbors import LocalOutlierFactor as SkLocalOutlierFactor

    for n_train in args.n_train:
        X, Q, source = load_rows(args.data_dir, args.dataset, n_train, 1000, 8, args.seed)
        ens, fit_s = timed(lambda: AnomalyEnsemble(random_state=args.seed).fit(X))
        rows = [
            ("AnomalyEnsemble() (IF + compiled LOF)", ens.anomaly_score),
            ("  its IsolationForest alone", ens.named_estimators_.iforest.score_samples),
            ("  its LocalOutlierFactor alone", ens.named_estimators_.lof.score_samples),
        ]
        if n_train <= args.max_sklearn_rows:
            sk = SkLocalOutlierFactor(novelty=True).fit(X)
            seed = seed_ensemble(args.seed).fit(X)
            rows += [
                ("peer: sklearn LocalOutlierFactor(novelty=True)", sk.score_samples),
                ("peer: seed design (IF + sklearn LOF member)", seed.anomaly_score),
            ]
        print(
            f"\n[latency] {n_train} training rows ({source}); default ensemble fit {fit_s:.2f} s; "
            f"LOF fitted on {ens.named_estimators_.lof.n_samples_fit_} rows; {args.calls} one-row calls",
            file=out,
        )
        print(f"{'':<48}{'p50 us':>9}{'p99 us':>9}{'1000 rows ms':>14}", file=out)
        for name, func in rows:
            calls = args.calls if "peer" not in name else min(args.calls, 1000)
            p50, p99 = one_row_us(func, Q, calls)
            _, batch_s = timed(lambda: func(Q))
            print(f"{name:<48}{p50:>9.1f}{p99:>9.1f}{batch_s * 1e3:>14.1f}", file=out)


def section_consistency(args, out):
    X, Q, source = load_rows(args.data_dir, args.dataset, args.n_train[0], 200, 8, args.seed)
    rescale, how = batch_rescaler()
    ens = AnomalyEnsemble(random_state=args.seed).fit(X)
    iforest, lof = ens.named_estimators_.iforest, ens.named_estimators_.lof

    def batch_z(rows):
        return rescale([raw_anomaly_scores(iforest, rows), raw_anomaly_scores(lof, rows)])

    rows, others = Q[:100], Q[100:200]
    print(f"\n[consistency] {source}; the same 100 rows alone / in a batch / in a batch with 100 other rows", file=out)
    for name, func in (("AnomalyEnsemble.anomaly_score", ens.anomaly_score), (f"batch z-score ({how})", batch_z)):
        alone = np.array([func(rows[i : i + 1])[0] for i in range(100)])
        batch = func(rows)
        mixed = func(np.vstack([rows, others]))[:100]
        print(
            f"  {name}: max |alone - batch| {np.max(np.abs(alone - batch)):.3g}, max |batch - mixed| "
            f"{np.max(np.abs(batch - mixed)):.3g}, distinct one-row scores {len(np.unique(alone))}",
            file=out,
        )


def section_throughput(args, out):
    from sklearn.neighbors import LocalOutlierFactor as SkLocalOutlierFactor

    rng = np.random.RandomState(args.seed)
    X, Q = rng.normal(size=(args.big, 10)), rng.normal(size=(args.big, 10))
    print(f"\n[throughput] fit + score of {args.big} x 10 (synthetic N(0, 1)), new rows scored: {args.big}", file=out)
    sk, sk_fit = timed(lambda: SkLocalOutlierFactor(novelty=True).fit(X))
    sk_scores, sk_score = timed(lambda: sk.score_samples(Q))
    print(
        f"  peer: sklearn LocalOutlierFactor(novelty=True): fit {sk_fit:.2f} s + score {sk_score:.2f} s "
        f"= {sk_fit + sk_score:.2f} s",
        file=out,
    )
    for n_jobs in (1, 2):
        ours, fit_s = timed(lambda: LocalOutlierFactor(max_samples=None, n_jobs=n_jobs).fit(X))
        scores, score_s = timed(lambda: ours.score_samples(Q))
        rel = np.max(np.abs(scores - sk_scores) / np.abs(sk_scores))
        print(
            f"  LocalOutlierFactor(max_samples=None, n_jobs={n_jobs}) [{ours._fit_method}]: fit {fit_s:.2f} s + score "
            f"{score_s:.2f} s = {fit_s + score_s:.2f} s ({(sk_fit + sk_score) / (fit_s + score_s):.1f}x sklearn); "
            f"max relative score difference {rel:.1e}",
            file=out,
        )
    for n_jobs in (1, 2):
        ens, fit_s = timed(lambda: AnomalyEnsemble(random_state=args.seed, n_jobs=n_jobs).fit(X))
        _, score_s = timed(lambda: ens.anomaly_score(Q))
        print(
            f"  AnomalyEnsemble(n_jobs={n_jobs}): fit {fit_s:.2f} s + score {score_s:.2f} s = {fit_s + score_s:.2f} s "
            f"({(sk_fit + sk_score) / (fit_s + score_s):.1f}x sklearn's LOF alone)",
            file=out,
        )


def section_lof_full(args, out):
    from sklearn.neighbors import LocalOutlierFactor as SkLocalOutlierFactor

    rng = np.random.RandomState(args.seed)
    X, Q = rng.normal(size=(args.big, 10)), rng.normal(size=(args.big, 10))
    print(
        f"\n[lof-full] fit + score of {args.big} x 10 (synthetic N(0, 1)), {args.big} new rows; "
        f"{args.repeats} alternating repeats",
        file=out,
    )
    models = {}
    for n_jobs in (1, 2):
        models[f"peer: sklearn LocalOutlierFactor(novelty=True, n_jobs={n_jobs})"] = lambda n_jobs=n_jobs: (
            SkLocalOutlierFactor(novelty=True, n_jobs=n_jobs)
        )
        models[f"LocalOutlierFactor(max_samples=None, n_jobs={n_jobs})"] = lambda n_jobs=n_jobs: LocalOutlierFactor(
            max_samples=None, n_jobs=n_jobs
        )
    times = {name: [] for name in models}
    scores = {}
    for _ in range(args.repeats):
        for name, make in models.items():
            start = time.perf_counter()
            scores[name] = make().fit(X).score_samples(Q)
            times[name].append(time.perf_counter() - start)
    print(f"  {'':<58}{'best s':>8}{'median s':>10}{'vs sklearn (best / median)':>30}", file=out)
    for name, t in times.items():
        n_jobs = name[-2]
        peer = times[f"peer: sklearn LocalOutlierFactor(novelty=True, n_jobs={n_jobs})"]
        ratio = (
            "" if name.startswith("peer") else (f"{min(peer) / min(t):.1f}x / {np.median(peer) / np.median(t):.1f}x")
        )
        print(f"  {name:<58}{min(t):>8.2f}{np.median(t):>10.2f}{ratio:>30}", file=out)
    sk = scores["peer: sklearn LocalOutlierFactor(novelty=True, n_jobs=1)"]
    ours = scores["LocalOutlierFactor(max_samples=None, n_jobs=1)"]
    method, profile = lof_profile(X, Q)
    print(
        f"  max relative score difference {np.max(np.abs(ours - sk) / np.abs(sk)):.1e}; our search: "
        f"{method} ({'AVX2' if _lof.SIMD else 'portable'} kernel)",
        file=out,
    )
    for name, seconds in profile.items():
        print(f"  profile, one thread: {name:<40}{seconds:>8.2f} s", file=out)


def lof_profile(X, Q):
    """The search algorithm="auto" picks, and the seconds of each step of
    LocalOutlierFactor(max_samples=None, algorithm="kd_tree") fit + score on
    one thread (the steps of ``_build_index``, then scoring)."""
    lof = LocalOutlierFactor(max_samples=None)
    (order, start, end), build = timed(lambda: _lof.build_kd_tree(X, _lof.kd_tree_levels(X.shape[0], lof.leaf_size)))
    points = X[order]
    lower, upper = np.empty((start.shape[0], X.shape[1])), np.empty((start.shape[0], X.shape[1]))
    _, bounds = timed(lambda: _lof.node_bounds(points, start, end, lower, upper))
    columns = np.ascontiguousarray(points.T)
    k, m, empty = lof.n_neighbors, X.shape[0], np.empty(0)
    search = _lof.LOFIndex(columns, start, end, lower, upper, _lof.METRICS["euclidean"], 2.0, k, empty, empty)
    dist, pos = np.empty((m, k)), np.empty((m, k), dtype=np.intp)
    group = leaf_of_points(start, end)
    _, neighbours = timed(lambda: search.training_neighbors(points, group, 0, m, dist, pos))
    lrd, factors = np.empty(m), np.empty(m)
    _, densities = timed(lambda: (_lof.reachability_densities(dist, pos, lrd), _lof.outlier_factors(pos, lrd, factors)))
    model = LocalOutlierFactor(max_samples=None, algorithm="kd_tree").fit(X)
    _, score = timed(lambda: model.score_samples(Q))
    method = LocalOutlierFactor(max_samples=None).fit(X)._fit_method
    return method, {
        "k-d tree build and bounds": build + bounds,
        "neighbours of the training rows": neighbours,
        "densities and training scores": densities,
        f"scoring {Q.shape[0]} new rows": score,
    }


def section_fit_1m(args, out):
    X = np.random.RandomState(args.seed).normal(size=(1_000_000, 10))
    print("\n[fit-1m] AnomalyEnsemble().fit on 1,000,000 x 10 (synthetic N(0, 1))", file=out)
    for n_jobs in (2, 1):
        _, fit_s = timed(lambda: AnomalyEnsemble(random_state=args.seed, n_jobs=n_jobs).fit(X))
        print(f"  n_jobs={n_jobs}: {fit_s:.2f} s", file=out)


def section_crossover(args, out):
    rng = np.random.RandomState(args.seed)
    print("\n[crossover] k-d tree / brute force, k = 20: one-row query us (p50) and fit s (max_samples=None)", file=out)
    print(f"{'n':>8}{'d':>5}{'tree us':>10}{'brute us':>10}{'tree fit s':>12}{'brute fit s':>12}  faster", file=out)
    for n in args.crossover_n:
        for d in args.crossover_d:
            X, Q = rng.normal(size=(n, d)), rng.normal(size=(300, d))
            cells = []
            for algorithm in ("kd_tree", "brute"):
                model, fit_s = timed(lambda: LocalOutlierFactor(max_samples=None, algorithm=algorithm).fit(X))
                cells.append((one_row_us(model.score_samples, Q, 300)[0], fit_s))
            (t_q, t_f), (b_q, b_f) = cells
            print(
                f"{n:>8}{d:>5}{t_q:>10.1f}{b_q:>10.1f}{t_f:>12.3f}{b_f:>12.3f}  {'kd_tree' if t_q < b_q else 'brute'}",
                file=out,
            )


def section_pipeline(args, out):
    from ..pipeline import AnomalyPipeline
    from .pipeline import load_rows as pipeline_rows

    train, events, source = pipeline_rows(None, None, args.n_train[0], args.events, 8, args.seed)
    n = events.shape[0]
    entities = np.array([f"e{i}" for i in range(1000)])[np.arange(n) % 1000]
    timestamps = 1.7e9 + np.arange(n, dtype=np.float64)
    print(
        f"\n[pipeline] {source}, {train.shape[0]} training rows, {n} events, 1000 entities, monitoring on, in-memory store",
        file=out,
    )
    for name, model in (
        ("AnomalyEnsemble()", AnomalyEnsemble(random_state=args.seed)),
        ("IsolationForest()", IsolationForest(random_state=args.seed)),
    ):
        model.fit(train)
        scores = model.anomaly_score(events)
        threshold = float(np.quantile(scores, 0.99))
        pipe = AnomalyPipeline(model, threshold=threshold, suppression_window=300.0, reference=train)
        start = time.perf_counter()
        for s in range(0, n, 10000):
            sl = slice(s, s + 10000)
            pipe.process_batch(events[sl], {"entity_id": entities[sl], "timestamp": timestamps[sl]})
        rate = n / (time.perf_counter() - start)
        quiet = events[scores < threshold]
        pipe = AnomalyPipeline(model, threshold=threshold, suppression_window=300.0, reference=train)
        times = time_calls(
            lambda row, i: pipe.process(row, {"entity_id": entities[i % n], "timestamp": timestamps[i % n]}),
            quiet,
            args.calls,
        )
        p50, p99 = percentiles_us(times)
        print(
            f"  {name:<20} process_batch {rate:>10,.0f} events/s; process (no alert) p50 {p50:.1f} us, p99 {p99:.1f} us",
            file=out,
        )


def build_parser():
    from ..cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="anomaly-fast bench ensemble-latency",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--data-dir", default=None, help="folder with ADBench .npz files (default: synthetic rows)")
    p.add_argument("--dataset", default="magic.gamma", help="ADBench set for --data-dir")
    p.add_argument("--n-train", default="5000,100000", help="training rows for the latency section")
    p.add_argument("--calls", type=int, default=5000, help="one-row calls timed per detector")
    p.add_argument("--big", type=int, default=30000, help="rows of the throughput section")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats of the lof-full section")
    p.add_argument("--max-sklearn-rows", type=int, default=10000, help="largest --n-train for the sklearn peers")
    p.add_argument("--crossover-n", default="1000,4096,30000", help="training rows of the crossover section")
    p.add_argument("--crossover-d", default="2,4,8,12,16,24,32", help="features of the crossover section")
    p.add_argument("--events", type=int, default=100000, help="events of the pipeline section")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or args.calls < 1 or args.big < 50:
        print(f"ensemble-latency: unknown sections {unknown} or --calls < 1 or --big < 50", file=sys.stderr)
        return 2
    args.n_train = [int(v) for v in args.n_train.split(",")]
    args.crossover_n = [int(v) for v in args.crossover_n.split(",")]
    args.crossover_d = [int(v) for v in args.crossover_d.split(",")]
    print(f"anomaly-fast ensemble-latency: sections {', '.join(sections)}; one thread unless n_jobs is shown")
    for name in sections:
        globals()["section_" + name.replace("-", "_")](args, sys.stdout)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
