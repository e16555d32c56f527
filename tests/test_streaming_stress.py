"""Threads sharing one ADWIN, HalfSpaceTrees or FeatureMonitor: no crash and
a consistent state afterwards.  Each run is a subprocess, so a crash fails
the test instead of killing the test run."""

import subprocess
import sys
import textwrap

import pytest

ADWIN_SCRIPT = """
import threading
import numpy as np
from anomaly_fast import ADWIN
from anomaly_fast.streaming.adwin import _check_state

for clock in (10**9, 32, 1):  # never / sometimes / always checked
    det = ADWIN(clock=clock, max_buckets=3)
    chunks = [np.random.default_rng(t).integers(-5, 6, size=(30, 3000)).astype(float) for t in range(8)]
    start = threading.Barrier(8)

    def work(t):
        start.wait()
        for row in chunks[t]:
            det.update_many(row)
            det.update(1.0)
            det.width, det.total, det.variance, det.bucket_counts

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    _check_state(det.__getstate__())
    fed = sum(c.size for c in chunks) + 8 * 30
    if clock == 10**9:  # no check, no cut: the window holds every value fed
        assert det.width == fed, (det.width, fed)
        assert det.total == sum(c.sum() for c in chunks) + 8 * 30
    else:
        assert 0 < det.width <= fed
print("ok")
"""

HST_SCRIPT = """
import threading
import numpy as np
from anomaly_fast import HalfSpaceTrees
from anomaly_fast.streaming.half_space_trees import _check_state

for n_jobs, limits in ((1, [(0, 1)] * 3), (2, [(0, 1)] * 3), (2, None)):
    model = HalfSpaceTrees(n_trees=6, height=6, window_size=300, limits=limits, seed=1, n_jobs=n_jobs)
    data = [np.random.default_rng(t).random((5000, 3)) for t in range(8)]
    learned = [0] * 8
    start = threading.Barrier(8)

    def work(t):
        start.wait()
        X = data[t]
        for i in range(0, 4000, 400):
            kind = (t + i // 400) % 4
            if kind == 0:
                for row in X[i:i + 100]:
                    model.score_one(row)
                    model.learn_one(row)
                learned[t] += 100
            elif kind == 1:
                model.learn_many(X[i:i + 400])
                learned[t] += 400
            elif kind == 2:
                model.score_many(X[:4500])  # threaded when n_jobs=2
            else:
                model.score_learn_many(np.vstack([X[i:i + 400]] * 12))  # threaded when n_jobs=2
                learned[t] += 4800
            for row in X[i:i + 20]:
                model.learn_one(dict(enumerate(row.tolist())))
                model.score_one(dict(enumerate(row.tolist())))
            learned[t] += 20
            model.mass_profile()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    _check_state(model.__getstate__())  # masses add up, counters in range
    total = sum(learned)
    assert model._core._window_index * 300 + model._core._n_seen_in_window == total, (model._core._window_index, total)
    reference, latest = model.mass_profile()
    assert (latest[:, 0] == total % 300).all() and (reference[:, 0] == 300).all()
print("ok")
"""

MONITOR_SCRIPT = """
import threading
import numpy as np
from anomaly_fast.streaming.feature_monitor import FeatureMonitor, _check_state

rng = np.random.default_rng(0)
monitor = FeatureMonitor(["a", "b", "c"], reference=rng.normal(size=(500, 3)), quality_window=97)
data = [np.random.default_rng(t).normal(size=(1200, 3)) for t in range(8)]
for X in data:
    X[::50] = np.inf
    X[::70, 1] = np.nan
start = threading.Barrier(8)

def work(t):
    start.wait()
    X = data[t]
    for i in range(0, 1200, 100):
        if (t + i) % 2:
            monitor.update_many(X[i:i + 100], np.arange(i, i + 100.0))
        else:
            for j in range(i, i + 100):
                monitor.update(X[j], float(j))
        monitor.feature_report()

threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
[th.start() for th in threads]
[th.join() for th in threads]
_check_state(monitor.__getstate__())
report = monitor.feature_report()
assert all(r["n_seen"] == 8 * 1200 for r in report)
assert report[1]["n_missing"] == 8 * len(range(0, 1200, 70))
assert report[0]["n_out_of_range"] >= 8 * len(range(0, 1200, 50))
assert all(0 < r["window_width"] <= 8 * 1200 for r in report)
print("ok")
"""


@pytest.mark.parametrize(
    "script", [ADWIN_SCRIPT, HST_SCRIPT, MONITOR_SCRIPT], ids=["ADWIN", "HalfSpaceTrees", "FeatureMonitor"]
)
def test_eight_threads_on_one_detector_no_crash_and_a_consistent_state(script):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stdout.strip().endswith("ok")
