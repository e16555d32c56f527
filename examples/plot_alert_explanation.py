"""
Why is this an anomaly? An alert's feature contributions
=========================================================

A service with eight metrics is monitored by an :class:`~anomaly_fast.IsolationForest`
behind an :class:`~anomaly_fast.AnomalyPipeline` with ``explain=3``: every alert carries the
three features that contributed most to its score (``alert.explanation``), stored with it.
The bar chart shows :meth:`~anomaly_fast.IsolationForest.explain` for the alerting event,
all eight features: a positive bar pushes the event towards anomalous, a negative one keeps it
with the crowd. Each bar sums, over the splits on that feature along the event's paths, the
isolation a split is expected to bring given where the value lies in the split's training range;
a value far outside the range is isolated almost for certain and earns the most.
"""

import matplotlib.pyplot as plt
import numpy as np

from anomaly_fast import AnomalyPipeline, IsolationForest

rng = np.random.RandomState(0)
names = ["cpu", "memory", "disk_io", "net_in", "net_out", "latency_ms", "errors", "queue"]
# correlated metrics: one load factor drives most of them
load = rng.gamma(4.0, 1.0, size=(5000, 1))
X = load * [10, 4, 2, 30, 25, 8, 0.2, 1] + rng.normal(size=(5000, 8)) * [3, 2, 1, 8, 8, 3, 0.3, 1]
model = IsolationForest(random_state=0).fit(X)

pipe = AnomalyPipeline(model, threshold=0.55, feature_names=names, explain=3, monitor_features=False)
event = X[np.argmin(np.abs(load[:, 0] - np.median(load)))].copy()  # an ordinary-load moment
event[5] = 120.0  # latency spike
event[6] = 4.0  # with errors
alert = pipe.process(event, {"entity_id": "api-1", "timestamp": 1.7e9})
print(f"score {alert.score:.3f} ({alert.tier})")
for item in alert.explanation:
    print(f"  {item['feature']:<10} contribution {item['contribution']:+.3f}  value {item['value']:.2f}")

contributions = model.explain(event.reshape(1, -1))[0]
print(f"largest contribution: {names[int(np.argmax(contributions))]}")

# %%
order = np.argsort(contributions)
colors = ["tab:red" if c > 0 else "tab:blue" for c in contributions[order]]
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
ax.barh([names[j] for j in order], contributions[order], color=colors)
ax.axvline(0.0, color="black", linewidth=0.8)
ax.margins(x=0.12)
for y, j in enumerate(order):
    ax.annotate(
        f"{event[j]:.1f}",
        (contributions[j], y),
        xytext=(4 if contributions[j] >= 0 else -4, 0),
        textcoords="offset points",
        va="center",
        ha="left" if contributions[j] >= 0 else "right",
        fontsize=8,
    )
ax.set_xlabel("contribution to the anomaly score (positive = towards anomalous)")
ax.set_title(f"Alert on api-1: anomaly score {alert.score:.3f} ({alert.tier}); labels: feature values")
plt.show()
