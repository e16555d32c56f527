"""
Recorded benchmark results as charts
====================================

The speed ratios recorded in ``benchmarks/*.md`` (measured on the 2-core development machine,
every library in the same process on the same data, one thread each unless stated), read from
the Markdown tables themselves: nothing is re-timed here (timings on the documentation builder
would say nothing). A ratio is the peer's time divided by anomaly_fast's: above 1, anomaly_fast
is faster. Note the logarithmic axes.
"""

import re
from pathlib import Path

import matplotlib.pyplot as plt

# the repository's benchmarks/ folder, from examples/ (where the gallery runs) or the root
BENCHMARKS = next(p for p in (Path("../benchmarks"), Path("benchmarks")) if (p / "forest.md").is_file())


def markdown_tables(path):
    """{heading: [row dicts]} of every pipe table in a Markdown file, under the
    nearest heading above it."""
    tables, heading, header = {}, None, None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
        elif line.startswith("|") and header is None:
            header = [c.strip() for c in line.strip("|").split("|")]
        elif line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            tables.setdefault(heading, []).append(dict(zip(header, cells)))
        elif not line.startswith("|"):
            header = None if not line.strip() else header
    return tables


def number(text):
    """The first number in a cell ('646,339 points/s' -> 646339.0, '8.6x' -> 8.6)."""
    return float(re.search(r"[\d,]*\.?\d+", text).group().replace(",", ""))


# %%
# Isolation forests against scikit-learn and isotree (``benchmarks/forest.md``)
# -----------------------------------------------------------------------------
forest = markdown_tables(BENCHMARKS / "forest.md")
speed = {h: rows for h, rows in forest.items() if h.startswith(("IF on", "EIF on"))}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, column, title in zip(axes, ("score ratio", "fit ratio"), ("score_samples", "fit")):
    labels, values, colours = [], [], []
    for heading, rows in speed.items():
        for row in rows:
            if row["library"] != "anomaly_fast":
                labels.append(f"{heading.split(' ')[0]} {heading.split(' ')[2]}\nvs {row['library']}")
                values.append(number(row[column]))
                colours.append("tab:blue" if row["library"] == "sklearn" else "tab:green")
    bars = ax.bar(range(len(values)), values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.1f}x" for v in values], fontsize=8)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.axhline(1, color="black", lw=0.8)
    ax.set_ylabel("peer time / anomaly_fast time")
    ax.set_title(f"{title}: how many times faster (log scale)")
fig.suptitle("benchmarks/forest.md: ADBench http (567k x 3), cover (286k x 10), shuttle (49k x 9)")
fig.tight_layout()

# %%
# Streaming detectors against river (``benchmarks/streaming.md``, the re-run on main)
# -----------------------------------------------------------------------------------
streaming = markdown_tables(BENCHMARKS / "streaming.md")
rerun = next(rows for heading, rows in streaming.items() if heading.startswith("Re-run"))
labels = [row["run"].replace("`", "").replace(", ", ",\n", 1) for row in rerun]
values = [number(row["ratio"]) for row in rerun]
fig, ax = plt.subplots(figsize=(11, 4.5))
bars = ax.barh(range(len(values)), values, color="tab:purple")
ax.bar_label(bars, labels=[f"{v:,.0f}x" if v >= 100 else f"{v:.1f}x" for v in values], fontsize=8, padding=3)
ax.set_yticks(range(len(values)), labels, fontsize=8)
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlim(1, max(values) * 4)
ax.set_xlabel("river time / anomaly_fast time (log scale)")
ax.set_title("benchmarks/streaming.md: ADWIN and Half-Space Trees vs river 0.26")
fig.tight_layout()

# %%
# Accuracy: mean ROC-AUC over the 22 ADBench sets (``benchmarks/forest.md``)
# --------------------------------------------------------------------------
accuracy = next(rows for heading, rows in forest.items() if heading.startswith("Accuracy"))
mean = next(row for row in accuracy if row["data set"] == "mean")
columns = [c for c in mean if c != "data set"]
fig, ax = plt.subplots(figsize=(11, 3.8))
values = [number(mean[c]) for c in columns]
bars = ax.bar(columns, values, color=["tab:blue" if c.startswith("af") else "0.6" for c in columns])
ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8)
ax.set_ylim(0.75, 0.87)
ax.set_ylabel("mean ROC-AUC (5 seeds)")
ax.set_title("mean ROC-AUC over 22 ADBench sets: anomaly_fast (blue) and its peers (grey); the axis starts at 0.75")
ax.tick_params(axis="x", labelsize=8)
fig.tight_layout()
