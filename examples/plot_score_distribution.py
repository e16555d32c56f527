"""
Score distribution and the threshold
====================================

An :class:`~anomaly_fast.IsolationForest` fitted on Gaussian inliers with 3% scattered outliers.
The histogram splits the rows by their (normally unknown) labels; the dashed line is the
threshold that ``predict`` uses (``offset_``, set by ``contamination``), drawn on the
``anomaly_score`` scale (in [0, 1], higher = more anomalous: ``anomaly_score = -score_samples``,
so the threshold is ``-offset_``). :func:`~anomaly_fast.evaluation.score_distribution_report`
tells without labels whether a separate group of high scores exists.
"""

import matplotlib.pyplot as plt
import numpy as np

from anomaly_fast import IsolationForest
from anomaly_fast.evaluation import plot_score_histogram, score_distribution_report

rng = np.random.RandomState(0)
inliers = rng.normal(size=(2000, 4))
outliers = rng.uniform(-6, 6, size=(60, 4))
X = np.vstack([inliers, outliers])
labels = np.r_[np.zeros(len(inliers)), np.ones(len(outliers))]

clf = IsolationForest(contamination=0.03, random_state=0).fit(X)
scores = clf.anomaly_score(X)
threshold = -clf.offset_

fig, ax = plt.subplots(figsize=(7, 4))
plot_score_histogram(scores, threshold=threshold, labels=labels, bins=60, ax=ax)
ax.annotate(
    f"threshold = {threshold:.3f}\n(contamination=0.03)",
    xy=(threshold, ax.get_ylim()[1] * 0.8),
    xytext=(10, 0),
    textcoords="offset points",
    fontsize=9,
)
flagged = clf.predict(X) == -1
ax.set_title(
    f"IsolationForest anomaly scores: {flagged.sum()} rows flagged, "
    f"{int(flagged[labels == 1].sum())} of {len(outliers)} outliers"
)
fig.tight_layout()

# %%
# The label-free report: a bimodality coefficient above 0.555 and Ashman's D above 2 say that
# the high scores form a group of their own.
report = score_distribution_report(scores, threshold=threshold)
for key in ("bimodality_coefficient", "ashman_d", "upper_fraction", "fraction_above_threshold"):
    print(f"{key:<26} {report[key]:.3f}")
