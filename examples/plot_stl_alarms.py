"""
STL decomposition with alarms on a NAB-like series
==================================================

An hourly series with a daily and a weekly season, like many of the NAB series: a spike, a level
shift and a stretch where the sensor is stuck. :class:`~anomaly_fast.STLDetector` decomposes it
(trend, seasonal, residual), scores each residual against a local robust scale (``score`` > 1 is
flagged) and raises one alarm per anomalous run. The shaded windows are where the anomalies were
injected. The spike and the level shift are flagged at their onset; the stuck stretch is not: its
score peaks at 0.85, below the threshold of 1, since a flat line near the series' level is
unusual in shape more than in value.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anomaly_fast import STLDetector

rng = np.random.RandomState(1)
index = pd.date_range("2024-03-04", periods=24 * 7 * 5, freq="h")
hours = np.arange(len(index))
values = 40 + 8 * np.sin(2 * np.pi * hours / 24) + 3 * np.sin(2 * np.pi * hours / (24 * 7))
values += rng.normal(0, 0.8, len(index))
windows = []
values[420] += 12  # spike
windows.append((410, 430))
values[600:] += 7  # level shift
windows.append((590, 640))
values[760:790] = values[760]  # stuck sensor
windows.append((755, 800))
series = pd.Series(values, index=index)

detector = STLDetector().fit(series[: 24 * 14])
out = detector.detect(series)
alarms = out.index[out["alarm"]]

panels = [
    ("value", "series"),
    ("trend", "trend"),
    ("seasonal", "seasonal"),
    ("residual", "residual"),
    ("score", "score (> 1 flagged)"),
]
fig, axes = plt.subplots(len(panels), 1, figsize=(11, 9), sharex=True)
for ax, (column, label) in zip(axes, panels):
    ax.plot(out.index, out[column], lw=0.7, color="0.25")
    ax.set_ylabel(label, fontsize=9)
    for a, b in windows:
        ax.axvspan(index[a], index[b], color="tab:orange", alpha=0.2)
    for when in alarms:
        ax.axvline(when, color="tab:red", lw=1.2)
axes[-1].axhline(1.0, color="black", ls="--", lw=0.8)
axes[0].scatter(alarms, out.loc[alarms, "value"], color="tab:red", zorder=3, label="alarm")
axes[0].legend(loc="upper left", fontsize=8)
axes[0].set_title("STLDetector on an hourly series: injected windows (orange) and alarms (red)")
fig.tight_layout()

for when in alarms:
    print("alarm at", when)
