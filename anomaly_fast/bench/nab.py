"""``anomaly-fast bench nab``: window recall and false-alarm runs on NAB series.

For each series and method, a labelled window counts as detected when any
alarm falls inside it; a false alarm is a run of consecutive alarmed points
outside every window, reported per 1000 points outside the windows (pooled
over all series).  Methods:

- ``textbook``: :func:`~anomaly_fast.timeseries.stl_anomaly_detection`
  (robust STL, |modified z| > 3), run on the whole series; alarms =
  ``is_anomaly``.
- ``stl``: :class:`~anomaly_fast.timeseries.STLDetector`, fitted on and run
  over the whole series (unsupervised, like the textbook recipe); alarms =
  ``alarm``.
- ``stl-online``: ``STLDetector(mode="online")`` (the default mode) fitted
  on the first ``--train-fraction`` of each series (at least three periods),
  then every point scored from its past only.
- ``lstm``: :class:`~anomaly_fast.timeseries.LSTMDetector` trained on the
  first ``--train-fraction`` of each series (NAB's probationary period);
  alarms = ``predict == -1``.  ``lstm+alarms`` passes the same errors through
  the alarm spacing of ``STLDetector`` (one alarm per run, at most one per
  period).

Without ``--data-dir`` the command runs on small synthetic series (seasonal
hourly data with an injected spike, level shift and flat line).
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli import HelpFormatter, existing_folder, progress
from ..evaluation import false_alarm_runs, window_hits, window_masks
from ._data import RESULTS, write_json

__all__ = ["Case", "load_nab", "main", "messy_cases", "synthetic_cases"]

METHODS = ("textbook", "stl", "stl-online", "lstm")


@dataclass
class Case:
    """One series with its labelled anomaly windows."""

    name: str
    series: pd.Series  # values on a DatetimeIndex
    windows: list  # [(start, end)] timestamps, inclusive


def load_nab(data_dir):
    """Read every NAB csv listed in ``labels_windows.json`` under ``data_dir``.

    Rows with a repeated timestamp are dropped (one NAB file steps back an
    hour once) and the rest sorted.
    """
    root = Path(existing_folder(data_dir))
    if (root / "nab").is_dir():
        root = root / "nab"
    if not (root / "labels_windows.json").is_file():
        raise SystemExit(f"no NAB labels_windows.json in {root}")
    labels = json.loads((root / "labels_windows.json").read_text())
    cases = []
    for name, windows in sorted(labels.items()):
        frame = pd.read_csv(root / name, index_col="timestamp", parse_dates=True)
        frame = frame[~frame.index.duplicated(keep="first")].sort_index()
        cases.append(Case(name, frame["value"].astype(float), [tuple(w) for w in windows]))
    return cases


def synthetic_cases(seed=0, weeks=6):
    """Hourly seasonal series with one injected spike, level shift and flat line."""
    rng = np.random.RandomState(seed)
    n = weeks * 7 * 24
    index = pd.date_range("2024-01-01", periods=n, freq="h")
    hour = np.arange(n)
    base = 50 + 10 * np.sin(2 * np.pi * hour / 24) + 3 * np.sin(2 * np.pi * hour / (24 * 7))
    cases = []
    for k, kind in enumerate(("spike", "level_shift", "flat_line")):
        y = base + rng.normal(scale=1.0, size=n)
        at = n // 2 + 37 * k
        if kind == "spike":
            y[at] += 15
        elif kind == "level_shift":
            y[at:] += 12
        else:
            y[at : at + 36] = y[at]
        window = (index[at - 12], index[min(at + 36, n - 1)])
        cases.append(Case(f"synthetic/{kind}", pd.Series(y, index=index), [window]))
    return cases


MESSY_KINDS = ("spike", "level_shift", "variance_change", "trend_change")


def messy_cases(seed=2026, per_kind=6, clean=8):
    """Seasonal series as real feeds deliver them, with one labelled anomaly each (and clean ones).

    A generator of its own (``numpy.random.default_rng``, not the unit
    tests'): per series a sampling step (5 min, 30 min or 1 h; the period is
    a day), two daily harmonics, for half of them a weekend level, a slow
    drift, gaussian or Student-t (3 dof) noise, and for half of them real
    timestamps: jittered by up to 10% of a step, 5% of the points missing,
    a gap of 1.5 periods in the first third and 1% duplicated timestamps
    (other values).  Anomaly kinds: a spike (8 noise sd), a level shift
    (5 sd), a variance change (x4 for one period), a trend change (6 sd per
    two periods from then on).  Windows as NAB's: from a quarter period
    before the onset to one period after it (three for a trend change).
    Groups: ``messy-anomaly/...`` and ``messy-clean/...`` (no windows: every
    alarm there is false).
    """
    rng = np.random.default_rng(seed)
    kinds = [k for k in MESSY_KINDS for _ in range(per_kind)] + [None] * clean
    cases = []
    for i, kind in enumerate(kinds):
        step, period = [("5min", 288), ("30min", 48), ("1h", 24)][rng.integers(3)]
        days = {288: 16, 48: 40, 24: 60}[period]
        n = days * period
        index = pd.date_range("2025-03-03", periods=n, freq=step)
        phase = np.arange(n) / period
        y = rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * phase + rng.uniform(0, 6.3))
        y += rng.uniform(0.0, 0.8) * np.sin(4 * np.pi * phase + rng.uniform(0, 6.3))
        if rng.random() < 0.5:  # weekends
            y += rng.uniform(0.3, 1.0) * (index.day_of_week >= 5)
        y += rng.uniform(-0.5, 0.5) * phase / days  # slow drift over the series
        sd = rng.uniform(0.05, 0.3)
        noise = rng.standard_t(3, n) / np.sqrt(3) if rng.random() < 0.5 else rng.normal(size=n)
        y = 10 + y + sd * noise
        windows = []
        if kind is not None:
            at = int(rng.uniform(0.4, 0.85) * n)
            if kind == "spike":
                y[at] += rng.choice([-1, 1]) * 8 * sd
            elif kind == "level_shift":
                y[at:] += rng.choice([-1, 1]) * 5 * sd
            elif kind == "variance_change":
                y[at : at + period] = y[at : at + period] + 3 * sd * rng.normal(size=min(period, n - at))
            else:
                y[at:] += rng.choice([-1, 1]) * 3 * sd * np.arange(n - at) / period
            after = 3 * period if kind == "trend_change" else period
            windows = [(index[max(at - period // 4, 0)], index[min(at + after, n - 1)])]
        series = pd.Series(y, index=index)
        if rng.random() < 0.5:  # real timestamps
            keep = rng.random(n) >= 0.05
            gap = int(rng.uniform(0.05, 0.33) * n)
            keep[gap : gap + 3 * period // 2] = False
            if windows:  # the labelled window keeps its points
                keep[(index >= windows[0][0]) & (index <= windows[0][1])] = True
            series = series[keep]
            jitter = rng.uniform(-0.1, 0.1, len(series)) * pd.Timedelta(step).value
            series.index = series.index + pd.to_timedelta(jitter.astype(np.int64), unit="ns")
            dup = series.sample(frac=0.01, random_state=int(rng.integers(2**31)))
            series = pd.concat([series, dup + sd * rng.normal(size=len(dup))]).sort_index(kind="stable")
        group = "messy-clean" if kind is None else "messy-anomaly"
        cases.append(Case(f"{group}/{i:02d}_{kind or 'clean'}_{step}", series, windows))
    return cases


def run_methods(case, methods, args):
    """Alarms of each method on one case: {method: (alarms, seconds)}."""
    from anomaly_fast.timeseries import STLDetector, alarm_onsets, infer_period, stl_anomaly_detection

    out = {}
    series = case.series
    if "textbook" in methods:
        start = time.perf_counter()
        flags = stl_anomaly_detection(series)["is_anomaly"].to_numpy()
        out["textbook"] = (flags, time.perf_counter() - start)
    if "stl" in methods:
        start = time.perf_counter()
        flags = STLDetector().fit(series).detect(series)["alarm"].to_numpy()
        out["stl"] = (flags, time.perf_counter() - start)
    if "stl-online" in methods:
        start = time.perf_counter()
        period = infer_period(series.index)
        n_train = max(int(args.train_fraction * len(series)), 3 * period)
        detector = STLDetector(mode="online").fit(series.iloc[:n_train])
        flags = detector.detect(series)["alarm"].to_numpy()
        out["stl-online"] = (flags, time.perf_counter() - start)
    if "lstm" in methods:
        from anomaly_fast.timeseries import LSTMDetector

        start = time.perf_counter()
        n_train = max(int(args.train_fraction * len(series)), 64)
        values = series.to_numpy()
        lstm = LSTMDetector(epochs=args.lstm_epochs, random_state=0, progress_bar=args.progress)
        lstm.fit(values[:n_train])
        error = lstm.prediction_error(values)
        seconds = time.perf_counter() - start
        out["lstm"] = (error > lstm.error_threshold_, seconds)
        period = infer_period(series.index)
        out["lstm+alarms"] = (alarm_onsets(error / lstm.error_threshold_, period), seconds)
    return out


def _time_lstm_fit(case, args):
    """Time one LSTMDetector fit with default network parameters."""
    from anomaly_fast.timeseries import LSTMDetector

    values = case.series.to_numpy()[: args.lstm_fit_points]
    lstm = LSTMDetector(epochs=args.lstm_epochs, random_state=0, progress_bar=args.progress)
    start = time.perf_counter()
    lstm.fit(values)
    seconds = time.perf_counter() - start
    import torch

    print(
        f"LSTMDetector fit on {len(values)} points of {case.name}: {seconds:.1f} s "
        f"(window={lstm.window}, hidden_size={lstm.hidden_size}, n_layers={lstm.n_layers}, "
        f"epochs={lstm.epochs}, torch threads={torch.get_num_threads()}; "
        f"final training loss {lstm.train_loss_[-1]:.4f})"
    )
    return {"points": len(values), "seconds": seconds, "final_loss": lstm.train_loss_[-1]}


def _plot(case, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.4 * len(names)), sharex=True, squeeze=False)
    series = case.series
    for ax, name in zip(axes[:, 0], names):
        ax.plot(series.index, series.to_numpy(), lw=0.6, color="0.3")
        for a, b in case.windows:
            ax.axvspan(pd.Timestamp(a), pd.Timestamp(b), color="tab:orange", alpha=0.25)
        flags = results[name][0]
        ax.scatter(series.index[flags], series.to_numpy()[flags], s=12, color="tab:red", zorder=3)
        ax.set_title(f"{case.name}: {name} ({int(flags.sum())} alarmed points)", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


DEFAULT_PLOT = f"{RESULTS}/nab.png"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="anomaly-fast bench nab",
        description=__doc__.split("\n")[0].replace("``", ""),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--data-dir", help="NAB root (holding labels_windows.json), or its parent (default: built-in synthetic series)"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of textbook,stl,stl-online,lstm")
    parser.add_argument("--series", default="", help="only series whose name contains this")
    parser.add_argument("--train-fraction", type=float, default=0.15, help="LSTM and online-STL training prefix")
    parser.add_argument("--lstm-epochs", type=int, default=10, help="LSTMDetector training epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared machines: 1)")
    parser.add_argument("--progress", action="store_true", help="show the LSTM training bar")
    parser.add_argument("--per-series", action="store_true", help="print a row per series")
    parser.add_argument(
        "--plot",
        nargs="?",
        const=DEFAULT_PLOT,
        default=None,
        metavar="PNG",
        help=f"plot one series with its windows and alarms (to {DEFAULT_PLOT} when no path is given) (default: no plot)",
    )
    parser.add_argument("--plot-series", default="machine_temperature", help="series to plot (substring)")
    parser.add_argument("--json", help="write the summary as JSON here (default: no JSON)")
    parser.add_argument(
        "--lstm-fit-points",
        type=int,
        default=0,
        help="also time one LSTMDetector fit (default parameters) on this many points of the first series",
    )
    args = parser.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    if "lstm" in methods:
        try:
            import torch
        except ImportError:
            print("nab-eval: torch is not installed; skipping lstm (pip install 'anomaly_fast[deep]')", file=sys.stderr)
            methods.remove("lstm")
        else:
            torch.set_num_threads(args.threads)

    if args.data_dir:
        cases = load_nab(args.data_dir)
    else:
        print(
            "no --data-dir: running on built-in synthetic hourly series (spike, level shift, flat line); "
            "pass --data-dir with the NAB folder for the real series"
        )
        cases = synthetic_cases()
    cases = [c for c in cases if args.series in c.name]
    if not cases:
        parser.error("no series selected")

    totals = {}
    plotted = None
    for case in progress(cases, desc="nab"):
        masks, inside = window_masks(case.series.index, case.windows)
        results = run_methods(case, methods, args)
        for name, (flags, seconds) in results.items():
            row = totals.setdefault(name, dict(hits=0, windows=0, runs=0, outside=0, seconds=0.0))
            hits, runs = window_hits(flags, masks), false_alarm_runs(flags, inside)
            row["hits"] += hits
            row["windows"] += len(masks)
            row["runs"] += runs
            row["outside"] += int((~inside).sum())
            row["seconds"] += seconds
            if args.per_series:
                rate = 1000 * runs / max(int((~inside).sum()), 1)
                print(
                    f"{case.name:<58} {name:<12} windows {hits}/{len(masks)}  false runs {runs:>5} ({rate:6.2f}/1000)"
                )
        if args.plot and plotted is None and args.plot_series in case.name:
            _plot(case, results, args.plot)
            plotted = case.name
    if args.plot and plotted is None:
        case = next(c for c in cases if c.windows)
        _plot(case, run_methods(case, methods, args), args.plot)
        plotted = case.name

    n_points = sum(len(c.series) for c in cases)
    print(
        f"\n{len(cases)} series, {n_points} points, {sum(len(c.windows) for c in cases)} windows"
        f" ({'NAB: ' + str(args.data_dir) if args.data_dir else 'synthetic'})"
    )
    print(f"{'method':<14}{'recall':>8}{'windows':>9}{'false runs':>12}{'per 1000':>10}{'seconds':>9}")
    summary = {}
    for name, row in totals.items():
        recall = row["hits"] / row["windows"] if row["windows"] else float("nan")
        rate = 1000 * row["runs"] / max(row["outside"], 1)
        summary[name] = dict(row, recall=recall, false_runs_per_1000=rate)
        print(
            f"{name:<14}{recall:>8.2f}{row['hits']:>5}/{row['windows']:<3}{row['runs']:>12}{rate:>10.2f}{row['seconds']:>9.1f}"
        )
    if plotted:
        print(f"plot of {plotted} written to {args.plot}")
    if args.lstm_fit_points and "lstm" in methods:
        summary["lstm_fit"] = _time_lstm_fit(cases[0], args)
    if args.json:
        write_json(summary, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
