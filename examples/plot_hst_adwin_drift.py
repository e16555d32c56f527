"""
Half-Space Trees on a drifting stream, with ADWIN detections
============================================================

A stream of 2-D points whose distribution moves twice (at 3000 and at 6000), with a few
outliers sprinkled in. :class:`~anomaly_fast.HalfSpaceTrees` scores each point, then learns it
(``score_learn_many``: the river loop in compiled code). Scores are in [0, 1], higher = more
anomalous; the first window (250 points) scores 0 while the model fills it. After each move the
new region scores high until the reference window catches up (one to two windows);
an :class:`~anomaly_fast.ADWIN` watching the first feature marks the moves it detects.
"""

import matplotlib.pyplot as plt
import numpy as np

from anomaly_fast import ADWIN, HalfSpaceTrees

rng = np.random.default_rng(0)
centres = [(0.3, 0.3), (0.6, 0.5), (0.4, 0.75)]
X = np.vstack([rng.normal(c, 0.04, size=(3000, 2)) for c in centres])
outliers = rng.choice(len(X), size=30, replace=False)
X[outliers] = rng.uniform(0, 1, size=(30, 2))
X = np.clip(X, 0, 1)

hst = HalfSpaceTrees(n_trees=25, height=6, window_size=250, limits=[(0, 1)] * 2, seed=0)
scores = hst.score_learn_many(X)
detections = ADWIN(delta=0.002).update_many(X[:, 0])

fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[2, 1])
t = np.arange(len(X))
top.plot(t, scores, lw=0.5, color="0.35", label="HST score")
top.scatter(outliers, scores[outliers], s=14, color="tab:red", zorder=3, label="injected outliers")
top.set_ylabel("anomaly score")
top.set_title("HalfSpaceTrees(n_trees=25, height=6, window_size=250): score, then learn")
bottom.plot(t, X[:, 0], lw=0.4, color="tab:blue", label="feature x0")
bottom.set_ylabel("x0")
bottom.set_xlabel("point")
for ax in (top, bottom):
    for k, d in enumerate(detections):
        ax.axvline(d, color="tab:orange", lw=1.5, ls="--", label="ADWIN detection on x0" if k == 0 else None)
    for change in (3000, 6000):
        ax.axvspan(change - 5, change + 5, color="tab:green", alpha=0.3)
top.set_ylim(0, 1.35)
top.legend(loc="upper left", fontsize=8, ncol=3)
bottom.set_ylim(0, 1.15)
bottom.legend(loc="upper left", fontsize=8, ncol=2)
fig.tight_layout()

print("true changes at 3000, 6000; ADWIN detections at", list(detections))
