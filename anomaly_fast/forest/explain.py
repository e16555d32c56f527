"""Per-feature explanations of isolation-forest scores (path-based credit).

One home for how :meth:`IsolationForest.explain
<anomaly_fast.IsolationForest.explain>` and :meth:`ExtendedIsolationForest.explain
<anomaly_fast.ExtendedIsolationForest.explain>` attribute a score to features,
and for the top-k summaries alerts carry (:func:`top_features`).

The attribution (DIFFI-style, Carletti et al. 2023, made additive): the
expected remaining path length of a node holding ``n`` training rows is
``V = c(n)``.  A row that steps from a node into a child gains
``V(node) - 1 - V(child)`` of isolation: positive when the step cuts it off
from most of the node (a short expected remaining path), negative when it
stays with the crowd.  The step credits that gain to the split's feature
(an axis split) or shares it among the normal's features in proportion to
``|w_j (x_j - center_j)|`` (a hyperplane split; ``center`` is the training
mean).  Along a path the gains telescope to ``c(max_samples_) - h(x)``, so
summed over the trees and divided by ``n_trees * c(max_samples_)`` a row's
credits add up to ``1 - E[h(x)] / c(max_samples_) = log2(2 *
anomaly_score(x))``: zero at the paper's threshold 0.5, positive above it.

This file computes the per-node gains once per fitted forest (numpy, loops
over tree levels only); the compiled walks live in ``native/_isolation.pyx``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _isolation
from .base import average_path_length
from .format import node_sizes, walked_depth

__all__ = ["axis_explain_nodes", "node_gains", "top_features"]


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


def axis_explain_nodes(forest: _isolation.AxisForest, gains: npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    """The axis forest's nodes with the gains of both children, in the
    explain kernel's layout (``EXPLAIN_NODE_DTYPE``): a step reads one
    record; a leaf keeps threshold +inf, gains (0, its path length)."""
    nodes = forest.nodes
    n = nodes.shape[0]
    start = np.repeat(forest.offsets, np.diff(np.r_[forest.offsets, n]))
    left = start + nodes["left"].astype(np.int64)
    internal = left != np.arange(n)
    out = np.empty(n, dtype=_isolation.EXPLAIN_NODE_DTYPE)
    out["threshold"] = nodes["threshold"]
    out["gain"][:, 0] = np.where(internal, gains[np.where(internal, left, 0)], 0.0)
    out["gain"][:, 1] = np.where(internal, gains[np.where(internal, left + 1, 0)], forest.values)
    out["feature"] = nodes["feature"]
    out["left"] = nodes["left"]
    return out


def top_features(
    contributions: npt.ArrayLike, values: npt.ArrayLike, k: int, feature_names: Sequence[Hashable] | None = None
) -> list[dict[str, Any]]:
    """The ``k`` largest contributions of one row as a list of dicts
    ``{"feature", "contribution", "value"}``, largest first (ties: lower
    index first); ``feature`` is the name when ``feature_names`` is given,
    else the column index.  Non-finite values are kept as floats (the
    store writes JSON that allows them)."""
    contributions = np.asarray(contributions, dtype=np.float64)
    k = min(int(k), contributions.shape[0])
    if k <= 0:
        return []
    order = np.argsort(-contributions, kind="stable")[:k].tolist()
    c, v = contributions.tolist(), np.asarray(values, dtype=np.float64).tolist()
    if feature_names is None:
        return [{"feature": j, "contribution": c[j], "value": v[j]} for j in order]
    return [{"feature": str(feature_names[j]), "contribution": c[j], "value": v[j]} for j in order]
