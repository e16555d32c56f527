"""Per-feature explanations of isolation-forest scores (path-based credit).

One home for how :meth:`IsolationForest.explain
<anomaly_fast.IsolationForest.explain>` and :meth:`ExtendedIsolationForest.explain
<anomaly_fast.ExtendedIsolationForest.explain>` attribute a score to features,
and for the top-k summaries alerts carry (:func:`top_features`).

The attribution (DIFFI-style, Carletti et al. 2023): the expected
remaining path length of a node holding ``n`` training rows is ``V =
c(n)``.  A row that steps from a node into a child gains ``V(node) - 1 -
V(child)`` of isolation: positive when the step cuts it off from most of
the node (a short expected remaining path), negative when it stays with
the crowd.

* Axis splits (:func:`axis_explain_layout`) credit the split's feature with
  that gain *expected* over the threshold's draw (uniform in the node's
  training range ``[lo, hi]`` of the feature, recorded at fit), for the
  row's position in the range (:func:`expected_gain_table`); a row outside
  the range is isolated for certain when the threshold of the range
  extended to it falls between them.  Not additive.
* Hyperplane splits (:func:`node_gains`) share a positive realized gain
  among the normal's features in proportion to ``|w_j (x_j - center_j)|``
  (``center`` is the training mean) and spread a negative one evenly over
  all features (staying with the crowd is no feature's doing).  Along a path the gains telescope to
  ``c(max_samples_) - h(x)``, so summed over the trees and divided by
  ``n_trees * c(max_samples_)`` a row's credits add up to ``1 - E[h(x)] /
  c(max_samples_) = log2(2 * anomaly_score(x))``.

This file computes the per-node tables once per fitted forest (numpy, loops
over tree levels only); the compiled walks live in ``native/_isolation.pyx``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _isolation, _top_k
from .base import average_path_length
from .format import node_sizes, walked_depth

__all__ = ["axis_explain_layout", "expected_gain_table", "node_gains", "split_ranges", "top_features"]


def node_gains(
    forest: _isolation.AxisForest | _isolation.HyperplaneForest, max_samples: int
) -> npt.NDArray[np.float64]:
    """``gains[node]``: the isolation a row gains stepping into ``node``,
    ``V(parent) - 1 - V(node)`` (0 at roots), for a fitted kernel forest."""
    nodes, values, offsets = forest.nodes, forest.values, forest.offsets
    depth = walked_depth(nodes, offsets)
    size, left, internal = node_sizes(nodes, values, offsets, depth, max_samples)
    expected = np.where(internal, average_path_length(size), values - depth)
    expected[offsets] = average_path_length(max_samples)
    gains = np.zeros(nodes.shape[0], dtype=np.float64)
    parents = np.flatnonzero(internal)
    for side in (0, 1):
        child = left[parents] + side
        gains[child] = expected[parents] - 1.0 - expected[child]
    return gains


def split_ranges(forest: _isolation.AxisForest) -> npt.NDArray[np.float64]:
    """The ``(n_nodes, 2)`` training range ``[lo, hi]`` of each axis split's
    feature (0, 0 at leaves): the forest's own, recorded at fit, or for a
    forest saved before ranges existed a stand-in derived from the trees:
    the cell the node's ancestors cut on that feature, its open ends closed
    by the feature's lowest and highest threshold in the forest."""
    if forest.ranges is not None:
        return forest.ranges
    nodes, offsets = forest.nodes, forest.offsets
    n = nodes.shape[0]
    start = np.repeat(offsets, np.diff(np.r_[offsets, n]))
    left = start + nodes["left"].astype(np.int64)
    internal = left != np.arange(n)
    feature, threshold = nodes["feature"].astype(np.int64), nodes["threshold"]
    parent = np.full(n, -1, dtype=np.int64)
    splits = np.flatnonzero(internal)
    parent[left[splits]] = splits
    parent[left[splits] + 1] = splits
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    at = np.arange(n)
    while True:  # one step up the ancestors per pass (at most the depth)
        up = parent[at]
        live = internal & (up >= 0)
        if not live.any():
            break
        u = np.where(live, up, 0)
        same = live & (feature[u] == feature)
        right = at == left[u] + 1
        lo = np.where(same & right, np.maximum(lo, threshold[u]), lo)
        hi = np.where(same & ~right, np.minimum(hi, threshold[u]), hi)
        at = np.where(live, up, at)
        internal = live
    n_features = int(feature.max()) + 1
    inner = left != np.arange(n)
    fmin = np.full(n_features, np.inf)
    fmax = np.full(n_features, -np.inf)
    np.minimum.at(fmin, feature[inner], threshold[inner])
    np.maximum.at(fmax, feature[inner], threshold[inner])
    ranges = np.zeros((n, 2))
    ranges[inner, 0] = np.where(np.isfinite(lo), lo, fmin[feature])[inner]
    ranges[inner, 1] = np.where(np.isfinite(hi), hi, fmax[feature])[inner]
    return ranges


def expected_gain_table(sizes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rows of ``_isolation.EXPLAIN_TABLE_WIDTH`` entries, one per node size in
    ``sizes``: entry i (0 <= i <= B, B = width - 2) is the expected gain
    ``c(n) - 1 - E[c(child)]`` of a split of a node of ``n`` rows spread
    evenly over [lo, hi] whose threshold is uniform in [lo, hi], for a point
    at ``lo + (i / B) (hi - lo)``; the last entry is ``E[c(child)]`` at an
    end, the gain that certain isolation (a child of one row) adds."""
    width = _isolation.EXPLAIN_TABLE_WIDTH
    bins = width - 2
    sizes = np.asarray(sizes, dtype=np.int64)
    table = np.zeros((sizes.shape[0], width))
    p = np.arange(bins + 1) / bins
    exact = sizes <= _EXACT_TABLE_SIZE
    if exact.any():
        top = int(sizes[exact].max())
        c = average_path_length(np.arange(top + 1))  # c[0] unused
        cum = np.cumsum(np.r_[0.0, c[1:]])  # cum[m] = c(1) + ... + c(m)
        n = sizes[exact][:, None]
        pos = p[None, :] * (n - 1)
        j = np.minimum(np.floor(pos).astype(np.int64), n - 2)  # gap of the point (0-based)
        frac = pos - j
        below = cum[n - 1] - cum[n - j - 1]  # gaps below the point: it goes right
        above = cum[n - 1] - cum[j + 1]  # gaps above: it goes left
        child = (below + above + frac * c[n - j - 1] + (1 - frac) * c[j + 1]) / (n - 1)
        table[exact, : bins + 1] = c[n] - 1.0 - child
        table[exact, bins + 1] = cum[n[:, 0] - 1] / (n[:, 0] - 1)
    if (~exact).any():  # the continuum limit: 1 - 2 H(p) in nats, E[c(child)] = c(n) - 2
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.nan_to_num(p * np.log(p)) - np.nan_to_num((1 - p) * np.log(1 - p))
        table[~exact, : bins + 1] = 1.0 - 2.0 * h
        table[~exact, bins + 1] = average_path_length(sizes[~exact]) - 2.0
    return table


_EXACT_TABLE_SIZE = 1 << 16  # larger nodes take the continuum limit (within 1e-4)


def axis_explain_layout(
    forest: _isolation.AxisForest, max_samples: int
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.float64]]:
    """``(nodes, table)`` that the axis explain kernel reads: the nodes in
    ``EXPLAIN_NODE_DTYPE`` (threshold; the split's range as ``lo`` and
    ``scale = 1 / (hi - lo)``; ``base``, the node size's row in ``table``;
    a leaf keeps lo = its path length, scale 0, base 0) and the flat table of
    :func:`expected_gain_table` rows after a row of zeros."""
    nodes, offsets = forest.nodes, forest.offsets
    depth = walked_depth(nodes, offsets)
    size, left, internal = node_sizes(nodes, forest.values, offsets, depth, max_samples)
    ranges = split_ranges(forest)
    sizes, row = np.unique(size[internal], return_inverse=True)
    table = np.vstack([np.zeros((1, _isolation.EXPLAIN_TABLE_WIDTH)), expected_gain_table(sizes)])
    span = ranges[:, 1] - ranges[:, 0]
    with np.errstate(divide="ignore", over="ignore"):
        scale = np.where(internal & (span > 0), 1.0 / np.where(span > 0, span, 1.0), 0.0)
    out = np.zeros(nodes.shape[0], dtype=_isolation.EXPLAIN_NODE_DTYPE)
    out["threshold"] = nodes["threshold"]
    out["lo"] = np.where(internal, ranges[:, 0], forest.values)
    out["scale"] = np.minimum(scale, np.finfo(np.float32).max)
    out["base"][internal] = (row.reshape(-1) + 1) * _isolation.EXPLAIN_TABLE_WIDTH
    out["feature"] = nodes["feature"]
    out["left"] = nodes["left"]
    return out, np.ascontiguousarray(table.reshape(-1))


def top_features(
    contributions: npt.ArrayLike, values: npt.ArrayLike, k: int, feature_names: Sequence[Hashable] | None = None
) -> list[dict[str, Any]]:
    """The ``k`` largest contributions of one row as a list of dicts
    ``{"feature", "contribution", "value"}``, largest first (ties: lower
    index first; NaN last: the order of a stable argsort of
    ``-contributions``); ``feature`` is the name when ``feature_names`` is
    given, else the column index.  Non-finite values are kept as floats (the
    store writes JSON that allows them).  Compiled (``_top_k``): an alert's
    explanation costs about a microsecond."""
    contributions = np.ascontiguousarray(contributions, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    if contributions.ndim != 1 or values.shape != contributions.shape:
        raise ValueError(
            f"top_features takes one row: contributions and values of one length, got shapes "
            f"{contributions.shape} and {values.shape}"
        )
    return _top_k.top_k(contributions, values, int(k), feature_names)
