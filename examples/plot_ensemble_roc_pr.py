"""
ROC and precision-recall curves: the ensemble against its members
=================================================================

Two kinds of anomalies in one data set: scattered points far from everything (which an
isolation forest finds easily) and a small tight group next to a dense cluster (local anomalies,
which the local outlier factor finds). :class:`~anomaly_fast.AnomalyEnsemble` maps each member's
scores to [0, 1] with a calibration fitted on the training scores and averages them; the curves
are computed on held-out rows with scikit-learn's metrics.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

from anomaly_fast import AnomalyEnsemble
from anomaly_fast.evaluation import evaluate_detector

rng = np.random.RandomState(0)
dense = rng.normal(0, 0.3, size=(1500, 2))
wide = rng.normal([6, 0], 2.0, size=(1500, 2))
scattered = rng.uniform(-10, 14, size=(40, 2))
local = rng.normal([1.6, 1.6], 0.08, size=(40, 2))
X_train = np.vstack([dense[:1000], wide[:1000]])
X_test = np.vstack([dense[1000:], wide[1000:], scattered, local])
y_test = np.r_[np.zeros(1000), np.ones(80)]

ensemble = AnomalyEnsemble(random_state=0).fit(X_train)
curves = ensemble.score_components(X_test)  # {member: its calibrated scores in [0, 1]}
curves["AnomalyEnsemble (mean)"] = ensemble.anomaly_score(X_test)

fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.8))
for name, scores in curves.items():
    RocCurveDisplay.from_predictions(y_test, scores, name=name, ax=roc)
    PrecisionRecallDisplay.from_predictions(y_test, scores, name=name, ax=pr)
roc.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
roc.set_title("ROC (held-out rows)")
pr.set_title("precision-recall (held-out rows)")
for ax in (roc, pr):
    ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
fig.tight_layout()

for name, scores in curves.items():
    metrics = evaluate_detector(scores, y_test)
    print(f"{name:<24} ROC-AUC {metrics['auc_roc']:.3f}  AP {metrics['average_precision']:.3f}")
