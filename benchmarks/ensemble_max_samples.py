"""How many rows the ensemble's LOF member needs: ADBench ROC-AUC of
AnomalyEnsemble (IF + compiled LOF) with LOF ``max_samples`` in a grid, next
to the full-data LOF ensemble (``max_samples=None``).

``python benchmarks/ensemble_max_samples.py --data-dir /work/shared/data``

Protocol as ``anomaly-fast evaluate`` (stratified subsample to ``--max-rows``,
stratified 60/40 split, features standardized on the training part, ROC-AUC on
the test rows), over ``--seeds`` seeds.  The sets are split in two halves by
their ADBench number (alternating): the default is chosen on the "choose"
half as the smallest grid value whose mean ROC-AUC is within 0.005 of the
full-data ensemble, and reported on the held-out half.
"""

import argparse
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from anomaly_fast import AnomalyEnsemble, IsolationForest, LocalOutlierFactor
from anomaly_fast.bench.evaluate import load_sets


def ensemble(max_samples, seed):
    return AnomalyEnsemble(
        [
            ("iforest", IsolationForest(random_state=seed)),
            ("lof", LocalOutlierFactor(max_samples=max_samples, random_state=seed)),
        ],
        random_state=seed,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--grid", default="256,512,1024,2048,4096")
    p.add_argument("--max-rows", type=int, default=20000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.005)
    args = p.parse_args(argv)
    grid = [int(g) for g in args.grid.split(",")]
    columns = ["full"] + [str(g) for g in grid]
    sets = load_sets(args.data_dir, [], 0)
    table, seconds = {}, {c: 0.0 for c in columns}
    for name, (X0, y0) in sets.items():
        aucs = {c: [] for c in columns}
        for seed in range(args.seeds):
            X, y = X0, y0
            if X.shape[0] > args.max_rows:
                X, _, y, _ = train_test_split(X, y, train_size=args.max_rows, stratify=y, random_state=seed)
            X_tr, X_te, _, y_te = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
            scaler = StandardScaler().fit(X_tr)
            X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
            for c, m in zip(columns, [None] + grid):
                start = time.perf_counter()
                s = ensemble(m, seed).fit(X_tr).anomaly_score(X_te)
                seconds[c] += time.perf_counter() - start
                aucs[c].append(roc_auc_score(y_te, s))
        table[name] = {c: float(np.mean(v)) for c, v in aucs.items()}
        print(f"  done {name} ({X0.shape[0]} rows)", flush=True)

    names = list(table)
    halves = {"choose": names[0::2], "held out": names[1::2]}
    print(
        f"\nROC-AUC of IF + LOF(max_samples=m), mean over {args.seeds} seeds; sets above "
        f"{args.max_rows} rows subsampled; 'full' = LOF on every training row"
    )
    print(f"{'dataset':<18}{'half':>10}" + "".join(f"{c:>9}" for c in columns))
    for name in names:
        half = "choose" if name in halves["choose"] else "held out"
        print(f"{name:<18}{half:>10}" + "".join(f"{table[name][c]:>9.3f}" for c in columns))
    means = {}
    for half, members in halves.items():
        means[half] = {c: float(np.mean([table[n][c] for n in members])) for c in columns}
        print(f"{'mean':<18}{half:>10}" + "".join(f"{means[half][c]:>9.3f}" for c in columns))
        gap = "".join(f"{means[half][c] - means[half]['full']:>+9.3f}" for c in columns)
        print(f"{'vs full':<18}{half:>10}{gap}")
    print(f"{'fit+score s':<28}" + "".join(f"{seconds[c]:>9.1f}" for c in columns))
    ok = [g for g in grid if means["choose"][str(g)] >= means["choose"]["full"] - args.tolerance]
    choice = min(ok) if ok else None
    print(f"\nchosen on the 'choose' half: max_samples = {choice} (smallest within {args.tolerance} of full)")
    if choice is not None:
        held = means["held out"][str(choice)] - means["held out"]["full"]
        print(
            f"held-out half: {held:+.4f} ROC-AUC vs full ({'within' if held >= -args.tolerance else 'NOT within'} {args.tolerance})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
