"""
The production pipeline: alerts over time per tier, and what was suppressed
===========================================================================

Six hours of events, one a minute, from three hosts, scored by an
:class:`~anomaly_fast.IsolationForest` inside an :class:`~anomaly_fast.AnomalyPipeline`
(threshold 0.62, tiers warning / critical / emergency from 0.62 / 0.68 / 0.74, a 30-minute
suppression window per host, by event time). Host ``db-2`` misbehaves twice: its repeats within
the window are suppressed (grey crosses) unless they reach a higher tier, which escalates.
"""

import matplotlib.pyplot as plt
import numpy as np

from anomaly_fast import AnomalyPipeline, IsolationForest

rng = np.random.RandomState(0)
X_train = rng.normal(size=(5000, 4))
model = IsolationForest(random_state=0).fit(X_train)

hosts = ["web-1", "web-2", "db-2"]
minutes = np.arange(6 * 60)
events = []
for minute in minutes:
    for host in hosts:
        x = rng.normal(size=4)
        if host == "db-2" and (60 <= minute < 100 or 240 <= minute < 250):
            x = x * 1.6 + (minute - 50) / 25 * np.sign(x)  # a growing fault, then a short burst
        elif rng.rand() < 0.002:
            x = x * 4  # a rare one-off glitch
        events.append((minute, host, x))

tiers = {"warning": 0.62, "critical": 0.68, "emergency": 0.74}
pipe = AnomalyPipeline(model, threshold=0.62, tiers=tiers, suppression_window=30 * 60.0, reference=X_train)
points = np.array([x for _, _, x in events])
scores = model.anomaly_score(points)
shown = {name: [] for name in tiers}
suppressed = []
for (minute, host, x), score in zip(events, scores):
    alert = pipe.process(x, {"entity_id": host, "timestamp": 1.7e9 + 60.0 * minute})
    if alert is not None:
        shown[alert.tier].append((minute, hosts.index(host), alert.context["reason"]))
    elif score >= pipe.threshold:
        suppressed.append((minute, hosts.index(host)))

fig, ax = plt.subplots(figsize=(11, 3.8))
colours = {"warning": "gold", "critical": "darkorange", "emergency": "red"}
for tier, rows in shown.items():
    if rows:
        m, h, reasons = zip(*rows)
        ax.scatter(m, h, s=90, color=colours[tier], edgecolors="black", zorder=3, label=f"{tier} ({len(rows)})")
        for mm, hh, reason in rows:
            if reason == "escalation":
                ax.annotate("escalation", (mm, hh), xytext=(0, 9), textcoords="offset points", ha="center", fontsize=7)
if suppressed:
    m, h = zip(*suppressed)
    ax.scatter(m, h, marker="x", s=30, color="0.5", zorder=2, label=f"suppressed ({len(suppressed)})")
ax.set_yticks(range(len(hosts)), hosts)
ax.set_ylim(-0.6, len(hosts) - 0.3)
ax.set_xlabel("minute (event time)")
ax.set_title("AnomalyPipeline alerts per host and tier; suppression window 30 min")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=8, frameon=False)
ax.grid(axis="x", alpha=0.3)
fig.tight_layout()

print(pipe.stats)
