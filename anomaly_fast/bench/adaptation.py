"""``anomaly-fast bench adaptation``: drift adaptation (issue 18) -> the figures
of benchmarks/adaptation.md.

    nice anomaly-fast bench adaptation [--n 20000] [--shift-at 6000] [--only timing|stall]

Streams: N(0, I) in d = 2, 5, 10 dimensions, 50 entities, a permanent mean
shift of 3 or 5 sigma on every feature at ``--shift-at``, 10-sigma anomalies
(every feature) planted at 0.5% before and after.  The champion is an
IsolationForest fitted on 2000 pre-shift points; the threshold is the 99.5th
percentile of its training scores; suppression is off, so alerts = events at
or above the threshold.  Also: a 200-event incident burst from 3 entities, a
gradual mean walk, and the latency of ``process`` / throughput of
``process_batch`` with and without ``adapt`` over a stream with a promotion.
"""

import argparse
import threading
import time

import numpy as np

from ..cli import HelpFormatter
from ..forest.isolation_forest import IsolationForest
from ..pipeline import AnomalyPipeline
from ..pipeline.adaptation import AdaptationPolicy, fit_challenger

__all__ = ["main", "stream"]


def stream(d, n, shift_at, shift, seed=0, walk=False, n_entities=50):
    """(X, metadata, planted): N(0, I) then a mean shift of ``shift`` sigma on
    every feature at ``shift_at`` (with ``walk``: a linear walk to it over
    the rest of the stream); 10-sigma anomalies planted at 0.5%."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    if walk:
        X[shift_at:] += np.linspace(0.0, shift, n - shift_at)[:, None]
    else:
        X[shift_at:] += shift
    planted = rng.rand(n) < 0.005
    X[planted] += 10.0 * rng.choice([-1.0, 1.0], (int(planted.sum()), d))
    meta = {
        "entity_id": np.array([f"h{k}" for k in rng.randint(0, n_entities, n)], dtype=object),
        "timestamp": np.arange(n, dtype=np.float64),
    }
    return X, meta, planted


def pipeline(d, adapt):
    train = np.random.RandomState(100).normal(size=(2000, d))
    model = IsolationForest(random_state=0).fit(train)
    threshold = float(np.quantile(model.anomaly_score(train), 0.995))
    return AnomalyPipeline(model, threshold=threshold, suppression_window=0.0, monitor_features=False, adapt=adapt)


def feed_batches(pipe, X, meta, batch=100):
    flags = np.zeros(X.shape[0], dtype=bool)
    for s in range(0, X.shape[0], batch):
        for a in pipe.process_batch(X[s : s + batch], {k: v[s : s + batch] for k, v in meta.items()}):
            flags[int(a.timestamp)] = True
    return flags


def settled_at(flags, start, bound, width=1000):
    """First event from which every later 1000-event window's alert rate is <= bound."""
    rates = np.convolve(flags.astype(float), np.ones(width) / width, mode="valid")  # rates[i]: events i..i+width-1
    bad = np.flatnonzero(rates[start:] > bound)
    return start + (int(bad[-1]) + 1 if bad.shape[0] else 0)


def shift_rows(n, shift_at):
    policy = AdaptationPolicy()
    budget = policy.window + 2000
    print(
        f"| d | shift | pre-shift rate | no adapt: rate after shift | promotion at (events after shift) "
        f"| rate after promotion | rate from shift + {budget} on "
        f"| settled <= 2x base at (events after shift) | planted alerted after promotion | changes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in (2, 5, 10):
        for shift in (3.0, 5.0):
            X, meta, planted = stream(d, n, shift_at, shift)
            fixed = feed_batches(pipeline(d, None), X, meta)
            pipe = pipeline(d, AdaptationPolicy())
            flags = feed_batches(pipe, X, meta)
            base = flags[:shift_at].mean()
            promotions = [c["event_index"] for c in pipe.model_changes() if c["kind"] == "promotion"]
            p = promotions[0] if promotions else n
            after = slice(p + 1, n)
            settled = settled_at(flags, shift_at, 2 * base) - shift_at
            kinds = ",".join(c["kind"] for c in pipe.model_changes()[1:])
            print(
                f"| {d} | {shift:g} | {base:.4f} | {fixed[shift_at + 500 :].mean():.4f} | {p - shift_at} "
                f"| {flags[after].mean():.4f} | {flags[shift_at + budget :].mean():.4f} | {settled} | {flags[after][planted[after]].mean():.3f} "
                f"({int(planted[after].sum())}) | {kinds} |"
            )


def incident(n):
    X, meta, _ = stream(2, n, n, 0.0)
    burst = slice(n // 2, n // 2 + 200)
    X[burst] = 10.0 + np.random.RandomState(1).normal(size=(200, 2))
    meta["entity_id"][burst] = np.array(["h1", "h2", "h3"] * 67, dtype=object)[:200]
    pipe = pipeline(2, AdaptationPolicy())
    flags = feed_batches(pipe, X, meta)
    print(
        f"- incident burst (200 events from 3 entities at event {n // 2}): {int(flags[burst].sum())} of 200 "
        f"alerted; changes: {[c['kind'] for c in pipe.model_changes()]}"
    )
    for c in pipe.model_changes():
        if c["kind"] == "incident":
            print(f"  - incident at event {c['event_index']}: {c['reason']}")


def walk(n, shift_at):
    for d in (2, 10):
        X, meta, _ = stream(d, n, shift_at, 5.0, walk=True)
        pipe = pipeline(d, AdaptationPolicy())
        feed_batches(pipe, X, meta)
        promos = [c["event_index"] for c in pipe.model_changes() if c["kind"] == "promotion"]
        sigma = [round(5.0 * (p - shift_at) / (n - shift_at), 2) for p in promos]
        print(
            f"- gradual walk, d={d}, 0 -> 5 sigma over events {shift_at}..{n}: promotions at events {promos} "
            f"(mean displaced by {sigma} sigma at those events)"
        )


def timing(n, shift_at, repeats=3):
    """process latency and process_batch throughput, with and without adapt, alternating runs
    (``repeats`` each; medians reported) so that machine load hits both alike."""
    d = 5
    X, meta, _ = stream(d, n, shift_at, 4.0)
    calm, calm_meta, _ = stream(d, n, n, 0.0)
    rows = [{"entity_id": e, "timestamp": t} for e, t in zip(meta["entity_id"], meta["timestamp"].tolist())]
    results = {"adapt=None": [], "adapt=AdaptationPolicy()": []}
    shadow = AdaptationPolicy().shadow
    for _ in range(repeats):
        for name, runs in results.items():
            make = (lambda: None) if name == "adapt=None" else AdaptationPolicy
            pipe = pipeline(d, make())
            lat = np.empty(n)
            for i in range(n):
                t = time.perf_counter_ns()
                pipe.process(X[i], rows[i])
                lat[i] = time.perf_counter_ns() - t
            t = time.perf_counter()
            feed_batches(pipeline(d, make()), X, meta, batch=1000)
            rate = n / (time.perf_counter() - t)
            t = time.perf_counter()
            feed_batches(pipeline(d, make()), calm, calm_meta, batch=1000)
            calm_rate = n / (time.perf_counter() - t)
            q = list(np.percentile(lat, [50, 99, 99.9]) / 1e3)
            promo = [c["event_index"] for c in pipe.model_changes() if c["kind"] == "promotion"] if pipe.adapt else []
            fit = slice(promo[0] - shadow, promo[0] - shadow + 50) if promo else slice(0, 0)
            extra = [lat[promo[0]] / 1e3, np.median(lat[fit]) / 1e3, lat[fit].max() / 1e3] if promo else [np.nan] * 3
            runs.append(q + [lat.max() / 1e3, rate, calm_rate] + extra)
    print(
        "| pipeline (medians of 3 alternating runs) | process p50 (us) | p99 (us) | p99.9 (us) | max (us) "
        "| process_batch, shift + promotion (events/s) | process_batch, no shift (events/s) "
        "| promotion event (us) | 50 events after the fit starts: median / max (us) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        m = np.median(np.array(runs), axis=0)
        print(
            f"| {name} | {m[0]:.1f} | {m[1]:.0f} | {m[2]:.0f} | {m[3]:.0f} | {m[4]:,.0f} | {m[5]:,.0f} "
            f"| {m[6]:.0f} | {m[7]:.1f} / {m[8]:.0f} |"
        )


def fit_stall(repeats=7, d=5):
    """The slowest ``process`` call while a challenger (2000 rows) is fitted in a thread, against a
    stretch of as many calls without a fit and against fitting synchronously (one call's stall)."""
    rng = np.random.RandomState(0)
    window = rng.normal(size=(2000, d))
    model = IsolationForest(random_state=0).fit(window)
    pipe = AnomalyPipeline(model, threshold=0.99, monitor_features=False)
    X = rng.normal(size=(10000, d))

    def calls(thread, at_least):
        out, i = [], 0
        while (thread is not None and thread.is_alive()) or i < at_least:
            t = time.perf_counter_ns()
            pipe.process(X[i % 10000], {"entity_id": "a", "timestamp": float(i)})
            out.append(time.perf_counter_ns() - t)
            i += 1
        return np.array(out) / 1e3

    rows = []
    for _ in range(repeats):
        t = time.perf_counter()
        fit_challenger(model, window, 0)
        sync = time.perf_counter() - t
        thread = threading.Thread(target=fit_challenger, args=(model, window, 0))
        thread.start()
        during = calls(thread, 0)
        thread.join()
        quiet = calls(None, len(during))
        idle = threading.Thread(target=time.sleep, args=(sync,))  # a thread that holds no GIL, as long
        idle.start()
        beside_idle = calls(idle, 0)
        rows.append((len(during), during.max(), quiet.max(), beside_idle.max(), sync * 1e6))
    m = np.median(np.array(rows), axis=0)
    print(
        f"- fit off the hot path (d={d}, medians of {repeats}): {m[0]:.0f} process calls ran during a threaded "
        f"fit, the slowest took {m[1]:,.0f} us; as many calls without a thread: slowest {m[2]:,.0f} us; "
        f"beside a thread that only sleeps as long as a fit: slowest {m[3]:,.0f} us; a synchronous fit "
        f"stalls one call for {m[4]:,.0f} us"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="anomaly-fast bench adaptation",
        description="Drift adaptation (issue 18): mean shifts of 3 and 5 sigma in "
        "2-10 dimensions, an incident burst, gradual walks, and the cost "
        "on the hot path (figures of benchmarks/adaptation.md).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--n", type=int, default=20000, help="events per stream")
    parser.add_argument("--shift-at", type=int, default=6000, help="event of the mean shift")
    parser.add_argument(
        "--only", choices=("timing", "stall"), default=None, help="run one part only (default: every part)"
    )
    args = parser.parse_args(argv)
    if args.only is None:
        shift_rows(args.n, args.shift_at)
        print()
        incident(args.n)
        walk(30000, 4000)
        print()
    if args.only != "stall":
        timing(args.n, args.shift_at)
    fit_stall()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
