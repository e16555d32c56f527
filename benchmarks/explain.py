"""Benchmark of explain() (issue 17): planted anomalies and speed, with SHAP.

Correctness: synthetic backgrounds (Gaussian, correlated, clustered; d = 5,
20, 50; 4,000 rows) in which 100 rows are replaced by anomalies made by
shifting one random feature (or 2-3 features) by +-7 of its standard
deviations.  A forest is fitted on all 4,000 rows; for each anomaly we check
whether the planted feature is ranked first by ``explain`` (one feature) or
whether all planted features are in the top 3 (2-3 features).  The peer is
SHAP's ``TreeExplainer`` on scikit-learn's ``IsolationForest`` fitted on the
same data with the same settings.

Speed (same process, so ratios hold on a loaded machine): one-row ``explain``
against one-row ``score_samples``; batch ``explain`` on 10,000 rows against
SHAP on a subset (extrapolated, said so); the pipeline's ``process`` for an
alerting event with ``explain=0`` and ``explain=5`` on a MemoryAlertStore
(no commit cost), and the explanation step timed alone.

    pip install 'anomaly_fast[bench]'      # shap among others
    python benchmarks/explain.py           # about 5 minutes on a quiet 2-core box
    python benchmarks/explain.py --quick   # fewer configurations and calls
"""

import argparse
import os
import time
import warnings

import numpy as np

from anomaly_fast import AnomalyPipeline, ExtendedIsolationForest, IsolationForest
from anomaly_fast.pipeline.alert_store import MemoryAlertStore

N_ROWS = 4000
N_ANOMALIES = 100
SHIFT = 7.0


def background(kind, d, rng):
    """4,000 rows of a Gaussian, correlated (factor model) or clustered
    (5 Gaussian clusters) background."""
    if kind == "gaussian":
        return rng.normal(size=(N_ROWS, d)) * rng.uniform(0.5, 5.0, size=d) + rng.uniform(-10, 10, size=d)
    if kind == "correlated":
        k = max(1, d // 4)
        loadings = rng.normal(size=(k, d))
        X = rng.normal(size=(N_ROWS, k)) @ loadings + 0.5 * rng.normal(size=(N_ROWS, d))
        return X * rng.uniform(0.5, 5.0, size=d)
    if kind == "clustered":
        centers = rng.normal(scale=4.0, size=(5, d))
        labels = rng.randint(5, size=N_ROWS)
        return centers[labels] + rng.normal(size=(N_ROWS, d))
    raise ValueError(kind)


def plant(X, n_shifted, rng):
    """Replace N_ANOMALIES rows by copies shifted by +-7 sd in ``n_shifted``
    (an int, or a (low, high) range) random features; returns (X, rows,
    list of planted feature sets)."""
    X = X.copy()
    sd = X.std(axis=0)
    rows = rng.choice(X.shape[0], N_ANOMALIES, replace=False)
    planted = []
    for r in rows:
        k = n_shifted if isinstance(n_shifted, int) else rng.randint(n_shifted[0], n_shifted[1] + 1)
        feats = rng.choice(X.shape[1], k, replace=False)
        X[r, feats] += SHIFT * sd[feats] * rng.choice([-1.0, 1.0], size=k)
        planted.append({int(f) for f in feats})
    return X, rows, planted


def hit_rate(contributions, planted, top):
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
    return float(np.mean([p <= set(o.tolist()) for o, p in zip(order, planted)]))


def shap_values(X_fit, rows, n_estimators, max_samples, seed):
    import shap
    from sklearn.ensemble import IsolationForest as SkIF

    model = SkIF(n_estimators=n_estimators, max_samples=max_samples, random_state=seed).fit(X_fit)
    explainer = shap.TreeExplainer(model)
    # SHAP explains the forest's path-length output: larger = more normal, so negate
    return -np.asarray(explainer.shap_values(rows))


def accuracy(args):
    print("## Planted anomalies: share of the 100 anomalies whose planted feature(s) rank as required")
    print(f"(4,000 rows; shift +-{SHIFT:g} sd; forests of 100 trees, max_samples=256 unless stated)\n")
    print(
        "| background | d | IF top-1 | EIF top-1 | SHAP (sklearn IF) top-1 | IF 2-3 shifted all in top 3 "
        "| SHAP 2-3 in top 3 | IF 1,024-row trees top-1 | SHAP same trees top-1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    dims = (5, 20) if args.quick else (5, 20, 50)
    for kind in ("gaussian", "correlated", "clustered"):
        for d in dims:
            rng = np.random.RandomState(args.seed + d)
            base = background(kind, d, rng)
            X1, rows1, planted1 = plant(base, 1, rng)
            X3, rows3, planted3 = plant(base, (2, 3), rng)
            cells = []
            for model in (IsolationForest(random_state=args.seed), ExtendedIsolationForest(random_state=args.seed)):
                cells.append(hit_rate(model.fit(X1).explain(X1[rows1]), planted1, 1))
            cells.append(hit_rate(shap_values(X1, X1[rows1], 100, 256, args.seed), planted1, 1))
            cells.append(hit_rate(IsolationForest(random_state=args.seed).fit(X3).explain(X3[rows3]), planted3, 3))
            cells.append(hit_rate(shap_values(X3, X3[rows3], 100, 256, args.seed), planted3, 3))
            big = IsolationForest(max_samples=1024, random_state=args.seed).fit(X1)
            cells.append(hit_rate(big.explain(X1[rows1]), planted1, 1))
            cells.append(hit_rate(shap_values(X1, X1[rows1], 100, 1024, args.seed), planted1, 1))
            print(f"| {kind} | {d} | " + " | ".join(f"{100 * c:.0f}%" for c in cells) + " |", flush=True)
    print()


def _p50_us(func, args, calls):
    """p50 of ``func(args[i % len(args)])``: distinct rows walk distinct
    paths (a repeated row would keep its path in cache)."""
    times = np.empty(calls)
    for i in range(calls):
        arg = args[i % len(args)]
        t = time.perf_counter()
        func(arg)
        times[i] = time.perf_counter() - t
    return 1e6 * float(np.median(times))


def speed(args):
    calls = 500 if args.quick else 3000
    print(f"## Speed (load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    print("| one row, 100 trees | explain p50 us | score_samples p50 us | ratio |")
    print("|---|---|---|---|")
    rng = np.random.RandomState(args.seed)
    for name, cls, d in (
        ("IF", IsolationForest, 10),
        ("EIF", ExtendedIsolationForest, 10),
        ("EIF", ExtendedIsolationForest, 50),
    ):
        X = rng.normal(size=(N_ROWS, d))
        model = cls(random_state=args.seed).fit(X)
        rows = [np.ascontiguousarray(r.reshape(1, -1)) for r in rng.normal(size=(997, d)) * 2]
        model.explain(rows[0])  # per-node gains computed once
        e = _p50_us(model.explain, rows, calls)
        s = _p50_us(model.score_samples, rows, calls)
        print(f"| {name} d={d} | {e:.1f} | {s:.1f} | {e / s:.2f} |", flush=True)

    d = 10
    X = rng.normal(size=(N_ROWS, d))
    batch = rng.normal(size=(10_000, d))
    model = IsolationForest(random_state=args.seed).fit(X)
    model.explain(batch[:1])
    t = time.perf_counter()
    model.explain(batch)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    model.score_samples(batch)
    score_time = time.perf_counter() - t
    subset = 200 if args.quick else 1000
    import shap
    from sklearn.ensemble import IsolationForest as SkIF

    explainer = shap.TreeExplainer(SkIF(random_state=args.seed).fit(X))
    t = time.perf_counter()
    explainer.shap_values(batch[:subset])
    theirs = (time.perf_counter() - t) * batch.shape[0] / subset
    print(
        f"\n| 10,000 rows, IF d=10, 100 trees | seconds |\n|---|---|\n"
        f"| anomaly_fast explain | {ours:.4f} |\n| anomaly_fast score_samples | {score_time:.4f} |\n"
        f"| SHAP TreeExplainer on sklearn IF (timed on {subset} rows, x{batch.shape[0] // subset}) | {theirs:.2f} |\n"
        f"| **ratio SHAP / explain** | **{theirs / ours:.0f}x** |\n",
        flush=True,
    )

    print(
        "| pipeline process(), IF d=10, MemoryAlertStore (no commit cost) | explain=0 p50 us | explain=5 p50 us "
        "| added us |"
    )
    print("|---|---|---|---|")
    points = np.ascontiguousarray(rng.normal(size=(calls, d)) * 3)
    for label, threshold in (("alerting event", 0.0), ("event below the threshold", 1.0)):
        pipes = {
            k: AnomalyPipeline(
                model,
                threshold=threshold,
                store=MemoryAlertStore(max_alerts=1000),
                monitor_features=False,
                explain=k,
                suppression_window=0.0,
            )
            for k in (0, 5)
        }
        results = {k: np.empty(calls) for k in pipes}
        for i in range(calls):  # interleaved: both see the same load
            for k, pipe in pipes.items():
                md = {"entity_id": f"e{i}", "timestamp": float(i)}
                t = time.perf_counter()
                alert = pipe.process(points[i], md)
                results[k][i] = time.perf_counter() - t
                assert (alert is not None) == (threshold == 0.0)
        p0, p5 = (1e6 * float(np.median(results[k])) for k in (0, 5))
        print(f"| {label} | {p0:.1f} | {p5:.1f} | {p5 - p0:.1f} |")
    rows = [points[i : i + 1] for i in range(calls)]
    alone = _p50_us(lambda X: pipes[5]._explanation(X, 0), rows, calls)
    print(f"\nTop-5 explanation by a separate explain call (what process_batch does per alert): {alone:.1f} us p50\n")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations and calls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("accuracy", "speed"), default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.only != "speed":
        accuracy(args)
    if args.only != "accuracy":
        speed(args)


if __name__ == "__main__":
    main()
