"""Before/after timing of the layout change (issue 12): the per-call paths and throughputs the move could
affect, through the public API only, so the same script times any checkout.

    python benchmarks/layout_ab.py --tree PATH/TO/CHECKOUT --data-dir /work/shared/data/adbench

prints one JSON object (a figure name -> seconds, or events/s).  ``benchmarks/layout.md`` runs it
alternately on the commit before the move and on the branch, in fresh processes, and compares the
medians; scikit-learn and river are timed in the same process as peers.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def per_call(fn, args, repeat):
    """Best over ``repeat`` passes of the mean time per call of ``fn`` over ``args``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for a in args:
            fn(a)
        best = min(best, (time.perf_counter() - start) / len(args))
    return best


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def percentiles(fn, rows):
    t = np.empty(len(rows))
    for i, row in enumerate(rows):
        start = time.perf_counter()
        fn(row, i)
        t[i] = time.perf_counter() - start
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


def load(data_dir, name):
    path = sorted(Path(data_dir).glob(f"*{name}*.npz"))[0]
    with np.load(path) as npz:
        return np.ascontiguousarray(npz["X"], dtype=np.float64)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tree", required=True, help="checkout whose in-place build is imported")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    start = time.perf_counter()
    import anomaly_fast

    out = {"import_s": time.perf_counter() - start}
    from river.anomaly import HalfSpaceTrees as RiverHST
    from river.drift import ADWIN as RiverADWIN
    from sklearn.ensemble import IsolationForest as SkIF

    from anomaly_fast import (
        ADWIN,
        AnomalyEnsemble,
        AnomalyPipeline,
        ExtendedIsolationForest,
        HalfSpaceTrees,
        IsolationForest,
    )

    assert Path(anomaly_fast.__file__).resolve().is_relative_to(Path(args.tree).resolve()), anomaly_fast.__file__
    r = args.repeat
    rng = np.random.RandomState(0)

    # forests: fit and batch scoring on ADBench, one row (the pipeline's and a service's path)
    for name in ("cover", "http"):
        X = load(args.data_dir, name)
        out[f"IF fit {name}"] = best(lambda X=X: IsolationForest(random_state=0, n_jobs=1).fit(X), r)
        model = IsolationForest(random_state=0, n_jobs=1).fit(X)
        out[f"IF score_samples {name}"] = best(lambda X=X, m=model: m.score_samples(X), r)
        sk = SkIF(random_state=0, n_jobs=1).fit(X)
        out[f"peer sklearn IF score_samples {name}"] = best(lambda X=X, m=sk: m.score_samples(X), 2)
    rows = [X[i : i + 1] for i in range(2000)]
    out["IF anomaly_score one row"] = per_call(model.anomaly_score, rows, r)
    X = load(args.data_dir, "shuttle")
    out["EIF fit shuttle"] = best(lambda: ExtendedIsolationForest(random_state=0, n_jobs=1).fit(X), r)
    eif = ExtendedIsolationForest(random_state=0, n_jobs=1).fit(X)
    out["EIF score_samples shuttle"] = best(lambda: eif.score_samples(X), r)
    out["EIF anomaly_score one row"] = per_call(eif.anomaly_score, [X[i : i + 1] for i in range(2000)], r)

    # streaming: ADWIN update, HST one point (numpy row, dict), batch
    values = np.concatenate([rng.normal(0, 1, 50_000), rng.normal(2, 1, 50_000)]).tolist()
    adwin = ADWIN()
    out["ADWIN update"] = per_call(adwin.update, values, r)
    array = np.asarray(values)
    out["ADWIN update_many per value"] = best(lambda: ADWIN().update_many(array), r) / len(values)
    river_adwin = RiverADWIN()
    out["peer river ADWIN update"] = per_call(river_adwin.update, values, 2)
    Z = load(args.data_dir, "cover")[:20_000]
    Z = (Z - Z.min(0)) / np.maximum(Z.max(0) - Z.min(0), 1e-12)
    hst = HalfSpaceTrees(limits=[(0.0, 1.0)] * 10, seed=0)
    rows = list(Z[:5000])

    def one(x, h=hst):
        h.score_one(x)
        h.learn_one(x)

    out["HST score_one+learn_one numpy row"] = per_call(one, rows, r)
    dicts = [dict(enumerate(x.tolist())) for x in Z[:5000]]
    hst_d = HalfSpaceTrees(limits=[(0.0, 1.0)] * 10, seed=0)
    out["HST score_one+learn_one dict"] = per_call(lambda x, h=hst_d: (h.score_one(x), h.learn_one(x)), dicts, r)
    out["HST score_learn_many per row"] = (
        best(lambda: HalfSpaceTrees(limits=[(0.0, 1.0)] * 10, seed=0).score_learn_many(Z), r) / Z.shape[0]
    )
    river_hst = RiverHST(seed=0)
    out["peer river HST score_one+learn_one dict"] = per_call(
        lambda x, h=river_hst: (h.score_one(x), h.learn_one(x)), dicts[:2000], 1
    )

    # pipeline: process (no alert) and process_batch, in-memory store
    train = rng.normal(size=(10_000, 8))
    events = rng.normal(size=(100_000, 8))
    model = IsolationForest(random_state=0).fit(train)
    threshold = float(np.quantile(model.anomaly_score(events), 0.99))
    entities = np.array([f"e{i}" for i in range(1000)])[np.arange(events.shape[0]) % 1000]
    stamps = 1.7e9 + np.arange(events.shape[0], dtype=np.float64)

    def pipeline():
        return AnomalyPipeline(model, threshold=threshold, suppression_window=300.0, reference=train)

    def batches():
        pipe = pipeline()
        for s in range(0, events.shape[0], 10_000):
            sl = slice(s, s + 10_000)
            pipe.process_batch(events[sl], {"entity_id": entities[sl], "timestamp": stamps[sl]})

    out["pipeline process_batch events/s"] = events.shape[0] / best(batches, 3)
    quiet = events[model.anomaly_score(events) < threshold][:10_000]
    pipe = pipeline()
    out["pipeline process p50"], out["pipeline process p99"] = percentiles(
        lambda row, i: pipe.process(row, {"entity_id": entities[i], "timestamp": stamps[i]}), quiet
    )

    # ensemble: one row (IF + LOF members)
    X = rng.normal(size=(5000, 8))
    ens = AnomalyEnsemble(random_state=0).fit(X)
    rows = [X[i : i + 1] for i in range(3000)]
    out["ensemble anomaly_score one row p50"], out["ensemble anomaly_score one row p99"] = percentiles(
        lambda row, i: ens.anomaly_score(row), rows
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
