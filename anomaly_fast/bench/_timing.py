"""Timing helpers shared by every benchmark suite (written once here).

Wall times come from ``time.perf_counter``; a result is the best of
repeats or percentiles of single calls, never one measurement.
"""

import time

import numpy as np

__all__ = ["best_time", "latency", "percentiles_us", "time_calls", "timed", "wall_and_cpu"]


def timed(func):
    """``(func(), wall seconds)`` of one call."""
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def best_time(fn, repeat):
    """Minimum wall time of ``repeat`` calls (seconds) and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        out, seconds = timed(fn)
        best = min(best, seconds)
    return best, out


def wall_and_cpu(run):
    """(wall seconds, CPU seconds of this process) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_calls(func, rows, n):
    """Wall seconds of each of ``n`` calls ``func(rows[i % len(rows)], i)``."""
    times = np.empty(n)
    for i in range(n):
        row = rows[i % rows.shape[0]]
        start = time.perf_counter()
        func(row, i)
        times[i] = time.perf_counter() - start
    return times


def percentiles_us(times):
    """(p50, p99) of call times in seconds, as microseconds."""
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def latency(fn, n_calls):
    """p50 and p99 of ``n_calls`` single-call wall times of ``fn()`` after one
    warm-up call, in microseconds."""
    fn()  # warm up
    return percentiles_us(time_calls(lambda row, i: fn(), np.empty((1, 0)), n_calls))
