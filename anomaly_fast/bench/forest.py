"""Isolation-forest benchmark: anomaly_fast against scikit-learn and isotree.

Every figure compares libraries measured side by side in this process, on
the same data, one thread each unless stated.  Run:

    anomaly-fast bench                                # built-in synthetic data
    anomaly-fast bench --data-dir PATH/TO/adbench     # the ADBench .npz sets
    anomaly-fast bench --data-dir PATH --accuracy     # + the ROC-AUC table

It prints tables and writes every measurement to a JSON file (--out).
"""

import argparse
import os
import pickle
import platform
import sys

import numpy as np

from .. import ExtendedIsolationForest, IsolationForest
from .._scores import negated_scores
from ..cli import HelpFormatter, progress
from ._data import RESULTS, adbench_file, adbench_root, load_adbench_file, write_json
from ._timing import best_time, latency

__all__ = ["main"]


# -- data ---------------------------------------------------------------------


def synthetic(name, n, d, seed=0):
    """Gaussian inliers with 1% uniform outliers; labels 1 = outlier."""
    rng = np.random.RandomState(seed)
    n_out = max(1, n // 100)
    X = np.vstack([rng.normal(size=(n - n_out, d)), rng.uniform(-6, 6, size=(n_out, d))])
    y = np.r_[np.zeros(n - n_out), np.ones(n_out)]
    perm = rng.permutation(n)
    return name, np.ascontiguousarray(X[perm]), y[perm]


def load_adbench(data_dir, name):
    X, y = load_adbench_file(adbench_file(data_dir, name))
    return name, X, y


def adbench_names(data_dir):
    return sorted(p.stem for p in adbench_root(data_dir).glob("*.npz"))


# -- peers ----------------------------------------------------------------------


def _version(package):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover
        return None


def _isotree():
    try:
        import isotree
    except ImportError:  # pragma: no cover - optional peer
        return None
    return isotree


def peers(d, seed=0, extended=False):
    """{name: unfitted model} for the IF (or EIF) comparison, one thread each."""
    from sklearn.ensemble import IsolationForest as SklearnIF

    models = {}
    if extended:
        models["anomaly_fast"] = ExtendedIsolationForest(random_state=seed)
    else:
        models["anomaly_fast"] = IsolationForest(random_state=seed)
        models["sklearn"] = SklearnIF(random_state=seed)
    iso = _isotree()
    if iso is not None:
        models["isotree"] = iso.IsolationForest(
            ndim=d if extended else 1,
            sample_size=256,
            ntrees=100,
            nthreads=1,
            random_seed=seed,
            missing_action="fail",
            **({"coefs": "normal", "standardize_data": False} if extended else {}),
        )
    return models


def anomaly_scores(name, model, X):
    """Higher = more anomalous, whatever the library."""
    if name == "isotree":
        return model.predict(X)  # isotree's predict is its anomaly score
    return negated_scores(model, X)


# -- timing ---------------------------------------------------------------------


def speed_suite(dataset, repeat, extended=False, single_row=True):
    """fit / score_samples / single-row latency / pickle size for one dataset
    (a progress bar on stderr when it is a terminal)."""
    name, X, _ = dataset
    n, d = X.shape
    row = np.ascontiguousarray(X[:1])
    models = peers(d, extended=extended)
    result = {"dataset": name, "shape": [n, d], "model": "EIF" if extended else "IF", "peers": {}}
    for peer, model in progress(models.items(), total=len(models), desc=f"{name}: timing"):
        fit_s, fitted = best_time(lambda: model.fit(X), repeat)
        score_s, _ = best_time(lambda: anomaly_scores(peer, fitted, X), repeat)
        entry = {"fit_s": fit_s, "score_s": score_s, "pickle_bytes": len(pickle.dumps(fitted))}
        if single_row:
            calls = 100 if peer == "sklearn" else 2000
            entry["row_p50_us"], entry["row_p99_us"] = latency(lambda: anomaly_scores(peer, fitted, row), calls)
        result["peers"][peer] = entry
    ours = result["peers"]["anomaly_fast"]
    if not extended:
        threaded = IsolationForest(random_state=0, n_jobs=-1).fit(X)
        ours["score_s_all_cores"], _ = best_time(lambda: threaded.score_samples(X), repeat)
        ours["cores"] = os.cpu_count()
    return result


def accuracy_suite(datasets, seeds):
    """Mean ROC-AUC over seeds per dataset for IF and EIF against peers."""
    from sklearn.ensemble import IsolationForest as SklearnIF
    from sklearn.metrics import roc_auc_score

    iso = _isotree()
    rows = []
    for name, X, y in datasets:
        d = X.shape[1]
        aucs = {k: [] for k in ACCURACY_COLUMNS}
        for seed in seeds:
            aucs["af_IF"].append(roc_auc_score(y, IsolationForest(random_state=seed).fit(X).anomaly_score(X)))
            aucs["sklearn_IF"].append(roc_auc_score(y, -SklearnIF(random_state=seed).fit(X).score_samples(X)))
            aucs["af_EIF"].append(roc_auc_score(y, ExtendedIsolationForest(random_state=seed).fit(X).anomaly_score(X)))
            raw = ExtendedIsolationForest(standardize=False, random_state=seed).fit(X)
            aucs["af_EIF_raw"].append(roc_auc_score(y, raw.anomaly_score(X)))
            ranged = ExtendedIsolationForest(intercept="range", random_state=seed).fit(X)
            aucs["af_EIF_range"].append(roc_auc_score(y, ranged.anomaly_score(X)))
            if iso is not None:
                common = dict(ndim=d, sample_size=256, ntrees=100, nthreads=1, random_seed=seed, missing_action="fail")
                m = iso.IsolationForest(coefs="normal", standardize_data=False, **common).fit(X)
                aucs["isotree_EIF_raw"].append(roc_auc_score(y, m.predict(X)))
                m = iso.IsolationForest(**common).fit(X)
                aucs["isotree_EIF_default"].append(roc_auc_score(y, m.predict(X)))
        row = {"dataset": name, "shape": list(X.shape)}
        row.update({k: float(np.mean(v)) for k, v in aucs.items() if v})
        rows.append(row)
        print(_accuracy_line(row), flush=True)
    return rows


# -- printing -------------------------------------------------------------------


def _ratio(a, b):
    return b / a if a > 0 else float("inf")


def print_speed_title(model, name, shape):
    print(f"\n== {model} on {name} {tuple(shape)} ==", flush=True)


def print_speed(result):
    p = result["peers"]
    ours = p["anomaly_fast"]
    print(
        f"{'library':<14}{'fit s':>10}{'score s':>10}{'row p50 us':>12}{'row p99 us':>12}{'pickle KB':>11}"
        f"{'fit x':>9}{'score x':>9}"
    )
    for peer, e in p.items():
        print(
            f"{peer:<14}{e['fit_s']:>10.4f}{e['score_s']:>10.3f}"
            f"{e.get('row_p50_us', float('nan')):>12.1f}{e.get('row_p99_us', float('nan')):>12.1f}"
            f"{e['pickle_bytes'] / 1024:>11.0f}"
            f"{_ratio(ours['fit_s'], e['fit_s']):>9.1f}{_ratio(ours['score_s'], e['score_s']):>9.1f}"
        )
    print("(fit x / score x: that library's time divided by anomaly_fast's: >1 means anomaly_fast is faster)")
    if "score_s_all_cores" in ours:
        print(
            f"anomaly_fast score_samples: n_jobs=1 {ours['score_s']:.3f} s, n_jobs=-1 ({ours['cores']} cores) "
            f"{ours['score_s_all_cores']:.3f} s: speed-up {ours['score_s'] / ours['score_s_all_cores']:.2f}x"
        )


ACCURACY_COLUMNS = {
    "af_IF": "af IF",
    "sklearn_IF": "sk IF",
    "af_EIF": "af EIF",
    "af_EIF_range": "af range",
    "isotree_EIF_default": "iso EIF",
    "af_EIF_raw": "af raw",
    "isotree_EIF_raw": "iso raw",
}
# (ours, peer) pairs compared in the summary
ACCURACY_PAIRS = [
    ("af_IF", "sklearn_IF"),
    ("af_EIF", "isotree_EIF_default"),
    ("af_EIF_range", "isotree_EIF_default"),
    ("af_EIF_raw", "isotree_EIF_raw"),
]


def _accuracy_line(row):
    return f"{row['dataset']:<18}" + "".join(f"{row.get(c, float('nan')):>10.4f}" for c in ACCURACY_COLUMNS)


def print_accuracy_header():
    print("\n== mean ROC-AUC over seeds ==")
    print(f"{'dataset':<18}" + "".join(f"{label:>10}" for label in ACCURACY_COLUMNS.values()))
    print(
        "(af EIF: standardize=True, intercept='box' (defaults); af range: intercept='range';\n"
        " iso EIF: isotree ndim=d defaults (standardize_data); af raw: standardize=False vs\n"
        " iso raw: isotree ndim=d, coefs='normal', standardize_data=False)"
    )


def print_accuracy_summary(rows):
    """Per (ours, peer) pair: on how many sets the two are within 0.01."""
    for ours, peer in ACCURACY_PAIRS:
        pairs = [(r[ours], r[peer]) for r in rows if ours in r and peer in r]
        if pairs:
            diff = np.array([a - b for a, b in pairs])
            print(
                f"{ACCURACY_COLUMNS[ours]} vs {ACCURACY_COLUMNS[peer]}: within 0.01 on "
                f"{int(np.sum(np.abs(diff) <= 0.01))}/{len(diff)} sets, higher by > 0.01 on "
                f"{int(np.sum(diff > 0.01))}, lower by > 0.01 on {int(np.sum(diff < -0.01))}; "
                f"mean difference {diff.mean():+.4f}"
            )


# -- main -----------------------------------------------------------------------

SPEED_SETS = ["16_http", "10_cover"]
EIF_SETS = ["32_shuttle"]


DEFAULT_OUT = f"{RESULTS}/bench_forest.json"
SYNTHETIC_NOTE = (
    "no --data-dir: running on built-in synthetic data (Gaussian inliers, 1% uniform outliers; "
    "{sets}); pass --data-dir with a folder of ADBench .npz files for the real sets"
)


def build_parser():
    from . import suites_text

    parser = argparse.ArgumentParser(
        prog="anomaly-fast bench",
        usage="anomaly-fast bench [SUITE] [options]",
        description=__doc__.split("\n\n", 1)[1] + "\n\n" + suites_text(),
        formatter_class=HelpFormatter,
    )
    parser._optionals.title = "options of the forest suite"
    parser.add_argument(
        "--data-dir",
        help="folder of ADBench .npz files (or its parent holding adbench/) (default: built-in synthetic data)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repeats per timing; the minimum is kept")
    parser.add_argument("--accuracy", action="store_true", help="also compute the ROC-AUC table")
    parser.add_argument("--seeds", type=int, default=5, help="seeds for the accuracy table")
    parser.add_argument("--datasets", nargs="*", help="ADBench names for the accuracy table (default: all)")
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy table")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON results file (its folder is created)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    if args.data_dir:
        adbench_root(args.data_dir)  # "no such folder: ..." before any work
    if args.data_dir and not args.skip_speed:
        speed_sets = [load_adbench(args.data_dir, n) for n in SPEED_SETS]
        eif_sets = [load_adbench(args.data_dir, n) for n in EIF_SETS]
    elif args.data_dir:
        speed_sets = eif_sets = []
    else:
        speed_sets = [synthetic("synthetic_500k_x3", 500_000, 3), synthetic("synthetic_250k_x10", 250_000, 10)]
        eif_sets = [synthetic("synthetic_50k_x9", 50_000, 9)]
        names = [s[0] for s in speed_sets + eif_sets]
        if args.accuracy:
            names.append("synthetic_20k_x5 for accuracy")
        print(SYNTHETIC_NOTE.format(sets=", ".join(names)), flush=True)

    import sklearn

    iso = _isotree()
    report = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": {
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "isotree": _version("isotree") if iso else None,
        },
        "speed": [],
        "accuracy": [],
    }
    if iso is None:
        print("isotree is not installed: its columns are skipped (pip install anomaly_fast[bench])")
    jobs = [] if args.skip_speed else [(ds, False) for ds in speed_sets] + [(ds, True) for ds in eif_sets]
    for ds, extended in jobs:
        print_speed_title("EIF" if extended else "IF", ds[0], ds[1].shape)
        res = speed_suite(ds, args.repeat, extended=extended)
        print_speed(res)
        report["speed"].append(res)

    if args.accuracy:
        if args.data_dir:
            names = args.datasets or adbench_names(args.data_dir)
            datasets = (load_adbench(args.data_dir, n) for n in names)
        else:
            names = ["synthetic_20k_x5"]
            datasets = [synthetic("synthetic_20k_x5", 20_000, 5, seed=1)]
        print_accuracy_header()
        report["accuracy"] = accuracy_suite(progress(datasets, total=len(names), desc="accuracy"), range(args.seeds))
        if report["accuracy"]:
            keys = [k for k in report["accuracy"][0] if k not in ("dataset", "shape")]
            means = {k: float(np.mean([r[k] for r in report["accuracy"] if k in r])) for k in keys}
            print(_accuracy_line({"dataset": "MEAN", **means}))
            report["accuracy_mean"] = means
            print_accuracy_summary(report["accuracy"])

    write_json(report, args.out)
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
