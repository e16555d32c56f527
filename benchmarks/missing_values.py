"""Missing values, sparse input and the NaN-free A/B of issue 11; results in
``benchmarks/missing_values.md``.

    python benchmarks/missing_values.py --data-dir ../shared/data accuracy
    python benchmarks/missing_values.py --data-dir ../shared/data nan-speed
    python benchmarks/missing_values.py sparse
    python benchmarks/missing_values.py --data-dir ../shared/data ab --baseline /path/to/main/checkout

``accuracy``: every ADBench set, entries set to NaN completely at random
(MCAR, ``--rates``), ``--seeds`` seeds, the same masks for every model: mean
ROC-AUC of our IsolationForest vs scikit-learn's, and of our
ExtendedIsolationForest vs isotree ``ndim=d`` with its default
``missing_action`` (on all rows, or a uniform sample of ``--max-rows``).
``nan-speed``: scoring time with 10% NaN on http and cover, one thread each.
``sparse``: a random 200,000 x 2,000 CSR matrix at 1% density: fit (CSC; both
sides at their default n_jobs=None, then both at n_jobs=2) and scoring against
scikit-learn, and our sparse scores against our dense path.
``ab``: NaN-free scoring on http and cover, this checkout against a
``--baseline`` checkout with its kernels built in place, in alternating
subprocesses (``--runs`` each).
Peers run in the same process; absolute times depend on the machine's load.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIG = ("cover", "donors", "http", "skin", "smtp")


def _load(data_dir, name):
    from anomaly_fast.bench._data import adbench_file, load_adbench_file

    return load_adbench_file(adbench_file(data_dir, name))


def _datasets(data_dir):
    from anomaly_fast.bench._data import adbench_root

    return sorted(adbench_root(data_dir).glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))


def _mcar(X, rate, seed):
    X = X.copy()
    X[np.random.RandomState(1000 + seed).rand(*X.shape) < rate] = np.nan
    return X


def _best(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def accuracy(args):
    import isotree
    from sklearn.ensemble import IsolationForest as SklearnIF
    from sklearn.metrics import roc_auc_score

    from anomaly_fast import ExtendedIsolationForest, IsolationForest

    print("| set | n x d | NaN | af IF | sklearn IF | diff | af EIF | isotree ndim=d | diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for path in _datasets(args.data_dir):
        from anomaly_fast.bench._data import load_adbench_file

        X0, y0 = load_adbench_file(path)
        for rate in args.rates:
            auc = {k: [] for k in ("af_if", "sk_if", "af_eif", "iso_eif")}
            for seed in range(args.seeds):
                X, y = X0, y0
                if X.shape[0] > args.max_rows:
                    rows = np.random.RandomState(seed).choice(X.shape[0], args.max_rows, replace=False)
                    X, y = X[rows], y[rows]
                X = _mcar(X, rate, seed)
                auc["af_if"].append(roc_auc_score(y, -IsolationForest(random_state=seed).fit(X).score_samples(X)))
                auc["sk_if"].append(roc_auc_score(y, -SklearnIF(random_state=seed).fit(X).score_samples(X)))
                auc["af_eif"].append(
                    roc_auc_score(y, -ExtendedIsolationForest(random_state=seed).fit(X).score_samples(X))
                )
                iso = isotree.IsolationForest(
                    ndim=X.shape[1], sample_size=256, ntrees=100, nthreads=1, random_seed=seed
                ).fit(X)
                auc["iso_eif"].append(roc_auc_score(y, iso.predict(X)))
            m = {k: float(np.mean(v)) for k, v in auc.items()}
            for k, v in m.items():
                totals.setdefault((rate, k), []).append(v)
            name = path.stem
            print(
                f"| {name} | {X0.shape[0]} x {X0.shape[1]} | {rate:.0%} | {m['af_if']:.3f} | {m['sk_if']:.3f} | "
                f"{m['af_if'] - m['sk_if']:+.3f} | {m['af_eif']:.3f} | {m['iso_eif']:.3f} | "
                f"{m['af_eif'] - m['iso_eif']:+.3f} |",
                flush=True,
            )
    for rate in args.rates:
        m = {k: float(np.mean(totals[(rate, k)])) for k in ("af_if", "sk_if", "af_eif", "iso_eif")}
        print(
            f"| **mean** | | {rate:.0%} | {m['af_if']:.3f} | {m['sk_if']:.3f} | {m['af_if'] - m['sk_if']:+.3f} | "
            f"{m['af_eif']:.3f} | {m['iso_eif']:.3f} | {m['af_eif'] - m['iso_eif']:+.3f} |"
        )


def nan_speed(args):
    import isotree
    from sklearn.ensemble import IsolationForest as SklearnIF

    from anomaly_fast import ExtendedIsolationForest, IsolationForest

    print(
        "| set | rows scored | af IF | sklearn IF | isotree ndim=1 | af EIF | isotree ndim=d | "
        "IF vs sklearn | IF vs isotree | EIF vs isotree |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("http", "cover"):
        X, _ = _load(args.data_dir, name)
        X = _mcar(X, 0.1, 0)
        d = X.shape[1]
        models = {
            "af_if": IsolationForest(random_state=0).fit(X),
            "sk_if": SklearnIF(random_state=0).fit(X),
            "iso_if": isotree.IsolationForest(ndim=1, sample_size=256, ntrees=100, nthreads=1, random_seed=0).fit(X),
            "af_eif": ExtendedIsolationForest(random_state=0).fit(X),
            "iso_eif": isotree.IsolationForest(ndim=d, sample_size=256, ntrees=100, nthreads=1, random_seed=0).fit(X),
        }
        t = {}
        for key, model in models.items():
            score = model.predict if key.startswith("iso") else model.score_samples
            t[key], _ = _best(lambda score=score, X=X: score(X), 1 if key == "sk_if" else 3)
        print(
            f"| {name} | {X.shape[0]} | {t['af_if']:.3f} s | {t['sk_if']:.3f} s | {t['iso_if']:.3f} s | "
            f"{t['af_eif']:.3f} s | {t['iso_eif']:.3f} s | {t['sk_if'] / t['af_if']:.1f}x | "
            f"{t['iso_if'] / t['af_if']:.1f}x | {t['iso_eif'] / t['af_eif']:.1f}x |",
            flush=True,
        )


def sparse(args):
    import scipy.sparse as sp
    from sklearn.ensemble import IsolationForest as SklearnIF

    from anomaly_fast import IsolationForest

    n, d = args.sparse_rows, 2000
    X = sp.random(n, d, density=0.01, format="csr", random_state=0, dtype=np.float64)
    X.data = np.random.RandomState(1).normal(size=X.data.shape[0])
    csc = X.tocsc()
    ours = IsolationForest(random_state=0)
    theirs = SklearnIF(random_state=0)
    # a first fit on each side outside the timings (the first validate_data call of a
    # process scans narwhals' entry points, ~16 ms); then the best of 9 fits of ours and
    # of 5 of scikit-learn's (a fit of ours is short: the machine's noise moves it most)
    ours.fit(csc)
    theirs.fit(csc)
    fit_ours, _ = _best(lambda: ours.fit(csc), 9)
    fit_ours_csr, _ = _best(lambda: ours.fit(X), 3)
    fit_theirs, _ = _best(lambda: theirs.fit(csc), 5)
    # both sides on two threads (scikit-learn: its trees through joblib)
    fit_ours2, _ = _best(lambda: IsolationForest(random_state=0, n_jobs=2).fit(csc), 9)
    fit_theirs2, _ = _best(lambda: SklearnIF(random_state=0, n_jobs=2).fit(csc), 5)
    score_ours, s_sparse = _best(lambda: ours.score_samples(X), 3)
    score_theirs, _ = _best(lambda: theirs.score_samples(X), 1)
    # our dense path, 10,000 rows at a time (the whole dense matrix is 3.2 GB)
    s_dense = np.concatenate([ours.score_samples(X[i : i + 10_000].toarray()) for i in range(0, n, 10_000)])
    print(f"sparse {n} x {d} CSR, density 1% ({X.nnz} stored values)")
    print(
        f"fit (CSC, n_jobs=None both): anomaly_fast {fit_ours * 1e3:.1f} ms, scikit-learn {fit_theirs * 1e3:.0f} ms: "
        f"{fit_theirs / fit_ours:.1f}x"
    )
    print(
        f"fit (CSC, n_jobs=2 both):    anomaly_fast {fit_ours2 * 1e3:.1f} ms, scikit-learn {fit_theirs2 * 1e3:.0f} ms: "
        f"{fit_theirs2 / fit_ours2:.1f}x"
    )
    print(
        f"fit (CSR):   anomaly_fast {fit_ours_csr * 1e3:.1f} ms "
        f"({fit_theirs / fit_ours_csr:.1f}x scikit-learn's CSC fit)"
    )
    print(
        f"score (CSR): anomaly_fast {score_ours:.3f} s, scikit-learn {score_theirs:.3f} s: "
        f"{score_theirs / score_ours:.1f}x"
    )
    print(f"sparse scores equal our dense path bit for bit: {np.array_equal(s_sparse, s_dense)}")


AB_SCRIPT = r"""
import sys, time, numpy as np
import anomaly_fast
from anomaly_fast import IsolationForest
X = np.ascontiguousarray(np.load(sys.argv[1])["X"], dtype=np.float64)
model = IsolationForest(random_state=0).fit(X)
best = np.inf
for _ in range(5):
    t0 = time.perf_counter(); model.score_samples(X); best = min(best, time.perf_counter() - t0)
print(anomaly_fast.__file__, best)
"""


def ab(args):
    from anomaly_fast.bench._data import adbench_file

    if args.baseline is None:
        raise SystemExit("ab needs --baseline (a checkout with its kernels built in place)")
    builds = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    for name in ("http", "cover"):
        path = str(adbench_file(args.data_dir, name))
        times = {key: [] for key in builds}
        for _ in range(args.runs):
            for key, where in builds.items():  # alternating
                out = subprocess.run(
                    [sys.executable, "-c", AB_SCRIPT, path],
                    cwd=where,
                    capture_output=True,
                    text=True,
                    check=True,
                    env=dict(os.environ, PYTHONPATH=where),
                )
                file, best = out.stdout.split()
                assert file.startswith(where), file
                times[key].append(float(best))
        this, base = np.median(times["this"]), np.median(times["baseline"])
        print(
            f"{name}: this {this * 1e3:.1f} ms, baseline {base * 1e3:.1f} ms (medians of {args.runs} alternating "
            f"runs, best of 5 calls each): {100 * (this / base - 1):+.1f}%; "
            f"per run this {[round(t * 1e3, 1) for t in times['this']]}, "
            f"baseline {[round(t * 1e3, 1) for t in times['baseline']]}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("section", choices=["accuracy", "nan-speed", "sparse", "ab"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--max-rows", type=int, default=10**9)
    parser.add_argument("--sparse-rows", type=int, default=200_000)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if args.section != "sparse" and args.data_dir is None:
        raise SystemExit(f"{args.section} needs --data-dir")
    {"accuracy": accuracy, "nan-speed": nan_speed, "sparse": sparse, "ab": ab}[args.section](args)


if __name__ == "__main__":
    main()
