"""``anomaly-fast bench evaluate``: ROC-AUC / AP / precision@k of IF, EIF, LOF and
the AnomalyEnsemble on the ADBench sets (or on synthetic data).

Protocol, per data set: stratified subsample to ``--max-rows`` rows when
larger (every detector sees the same rows), stratified train/test split
(``--test-size``), features standardized with the training mean/std, each
detector fitted on the unlabelled training rows and evaluated on the test
rows with :func:`anomaly_fast.evaluation.evaluate_detector` (k = number of
test anomalies).  Also shown, from the same fitted IF and LOF: the PyOD
recipe of z-scoring each detector over the scored batch and averaging
(``batch-z``), which cannot score one row on its own.
"""

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from ..cli import HelpFormatter, progress
from ..ensemble import AnomalyEnsemble, raw_anomaly_scores
from ..evaluation import evaluate_detector
from ..forest.extended_isolation_forest import ExtendedIsolationForest
from ..forest.isolation_forest import IsolationForest
from ._data import RESULTS, adbench_root, load_adbench_file, write_json

__all__ = ["main"]

DETECTORS = ("IF", "EIF", "LOF", "ensemble", "batch-z")


def synthetic_sets(seed):
    """Three labelled synthetic sets: scattered, local and clustered anomalies."""
    rng = np.random.RandomState(seed)
    sets = {}
    X = rng.normal(size=(3000, 8))
    A = rng.uniform(-5, 5, size=(90, 8))
    sets["synthetic-scattered"] = (np.vstack([X, A]), np.r_[np.zeros(3000), np.ones(90)])
    dense = rng.normal(0, 0.3, size=(1500, 4))
    sparse = rng.normal(6, 2.0, size=(1500, 4))
    near = rng.normal(0, 0.3, size=(60, 4)) + rng.choice([-1.5, 1.5], size=(60, 4))
    sets["synthetic-local"] = (np.vstack([dense, sparse, near]), np.r_[np.zeros(3000), np.ones(60)])
    X = rng.normal(size=(3000, 5))
    A = rng.normal(4.0, 0.1, size=(60, 5))
    sets["synthetic-clustered"] = (np.vstack([X, A]), np.r_[np.zeros(3000), np.ones(60)])
    return sets


def _adbench_key(path):
    match = re.match(r"(\d+)_", path.name)
    return (int(match.group(1)) if match else 10**6, path.name)


def load_sets(data_dir, names, seed):
    if data_dir is None:
        sets = synthetic_sets(seed)
    else:
        root = adbench_root(data_dir)
        files = sorted(root.glob("*.npz"), key=_adbench_key)
        if not files:
            raise SystemExit(f"no .npz files in {root}")
        sets = {}
        for path in files:
            stem = path.stem
            if names and not any(n.lower() in (stem.lower(), stem.split("_", 1)[-1].lower()) for n in names):
                continue
            sets[stem] = load_adbench_file(path)
        return sets
    return {k: v for k, v in sets.items() if not names or k in names}


def _pyod_batch_z_average():
    """PyOD's batch recipe (its standardizer fitted on the scored batch,
    then the mean, which is what PyOD's ``average`` computes); an
    equivalent inline version when PyOD is not installed."""
    try:
        from pyod.utils.utility import standardizer

        return (lambda scores: standardizer(scores).mean(axis=1)), "PyOD standardizer, then mean"
    except ImportError:

        def inline(scores):
            std = scores.std(axis=0)
            std[std == 0] = 1.0
            return ((scores - scores.mean(axis=0)) / std).mean(axis=1)

        return inline, "inline z-score + mean, PyOD not installed"


def evaluate_set(X, y, args, batch_z):
    n_total = X.shape[0]
    note = ""
    if n_total > args.max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=args.max_rows, stratify=y, random_state=args.seed)
        note = f"subsampled {args.max_rows} of {n_total} rows"
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    models = {
        "IF": IsolationForest(n_estimators=args.n_estimators, random_state=args.seed),
        "EIF": ExtendedIsolationForest(n_estimators=args.n_estimators, random_state=args.seed),
        "LOF": LocalOutlierFactor(novelty=True),
        "ensemble": AnomalyEnsemble(random_state=args.seed),
    }
    results, scores = {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train)
        if name == "ensemble":
            s = model.anomaly_score(X_test)
        else:
            s = raw_anomaly_scores(model, X_test)
        seconds = time.perf_counter() - start
        scores[name] = s
        results[name] = {**evaluate_detector(s, y_test), "seconds": seconds}
    s = batch_z(np.column_stack([scores["IF"], scores["LOF"]]))
    results["batch-z"] = {
        **evaluate_detector(s, y_test),
        "seconds": results["IF"]["seconds"] + results["LOF"]["seconds"],
    }
    info = {
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "anomaly_pct": 100.0 * float(np.mean(y)),
        "test_rows": int(X_test.shape[0]),
        "note": note,
    }
    return info, results


def print_tables(table, out):
    width = max(len(n) for n in table) + 2
    for metric, label in (("auc_roc", "ROC-AUC"), ("average_precision", "AP"), ("precision_at_k", "P@k")):
        print(f"\n{label} (test rows; k = number of test anomalies)", file=out)
        print(
            f"{'dataset':<{width}}{'rows':>8}{'dims':>6}{'anom%':>7}" + "".join(f"{d:>10}" for d in DETECTORS), file=out
        )
        for name, (info, res) in table.items():
            cells = "".join(f"{res[d][metric]:>10.3f}" for d in DETECTORS)
            print(f"{name:<{width}}{info['rows']:>8}{info['features']:>6}{info['anomaly_pct']:>7.1f}{cells}", file=out)
        means = "".join(f"{np.mean([res[d][metric] for _, res in table.values()]):>10.3f}" for d in DETECTORS)
        print(f"{'mean':<{width}}{'':>21}{means}", file=out)
    print("\nfit + score seconds", file=out)
    for name, (info, res) in table.items():
        cells = "".join(f"{res[d]['seconds']:>10.2f}" for d in DETECTORS[:4])
        print(f"{name:<{width}}{cells}  {info['note']}", file=out)


def save_plot(table, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install anomaly_fast[plot]); no plot saved"
    names = list(table)
    x = np.arange(len(names))
    shown = DETECTORS
    bar = 0.8 / len(shown)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.6 * len(names) + 3), 7), sharex=True)
    for ax, metric, label in zip(axes, ("auc_roc", "average_precision"), ("ROC-AUC", "average precision")):
        for j, det in enumerate(shown):
            ax.bar(x + (j - (len(shown) - 1) / 2) * bar, [table[n][1][det][metric] for n in names], bar, label=det)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(shown), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot saved to {path}"


DEFAULT_PLOT = f"{RESULTS}/evaluation.png"


def build_parser():
    description = __doc__.split("\n\n")[0].replace("``", "")
    p = argparse.ArgumentParser(
        prog="anomaly-fast bench evaluate", description=description, formatter_class=HelpFormatter
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with ADBench .npz files (or holding adbench/) (default: built-in synthetic data)",
    )
    p.add_argument("--datasets", default="", help="comma-separated names, e.g. 'cardio,16_http' (default: all)")
    p.add_argument("--max-rows", type=int, default=20000, help="stratified subsample of larger sets")
    p.add_argument("--test-size", type=float, default=0.4, help="test fraction of the stratified split")
    p.add_argument("--n-estimators", type=int, default=100, help="trees of IF and EIF")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample, the split and the detectors")
    p.add_argument(
        "--plot",
        nargs="?",
        const=DEFAULT_PLOT,
        default=None,
        metavar="PNG",
        help=f"save a bar chart of ROC-AUC and AP (to {DEFAULT_PLOT} when no path is given; needs matplotlib) (default: no plot)",
    )
    p.add_argument("--json", default="", help="also write the results as JSON to this path (default: no JSON)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.max_rows < 20 or not 0 < args.test_size < 1:
        print("evaluate: --max-rows must be >= 20 and --test-size in (0, 1)", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    sets = load_sets(args.data_dir, names, args.seed)
    if not sets:
        print(f"evaluate: no data set matches {names}", file=sys.stderr)
        return 2
    batch_z, source = _pyod_batch_z_average()
    if args.data_dir is None:
        print(
            f"no --data-dir: running on built-in synthetic data ({', '.join(sets)}); "
            "pass --data-dir with a folder of ADBench .npz files for the real sets"
        )
    print(
        f"anomaly-fast evaluate: {len(sets)} data sets, seed {args.seed}, test fraction {args.test_size}, "
        f"sets above {args.max_rows} rows subsampled (stratified) for every detector\n"
        f"IF/EIF: {args.n_estimators} trees; LOF: scikit-learn LocalOutlierFactor(novelty=True); "
        f"ensemble: AnomalyEnsemble() = IF + LOF, rank-normalized on training scores, mean; "
        f"batch-z: IF + LOF z-scored over the test batch and averaged ({source})"
    )
    table = {}
    for name, (X, y) in progress(sets.items(), total=len(sets), desc="evaluate"):
        table[name] = evaluate_set(X, y, args, batch_z)
        print(f"  done {name} ({table[name][0]['rows']} rows) {table[name][0]['note']}", flush=True)
    print_tables(table, sys.stdout)
    if args.plot:
        print("\n" + save_plot(table, args.plot))
    if args.json:
        write_json({n: {"info": i, "results": r} for n, (i, r) in table.items()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
