"""Stub of the compiled module anomaly_fast._isolation: Isolation forest kernels (native/_isolation.pyx): tree building and scoring.

Kept in step with the .pyx by tests/test_stubs.py (same public names).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

AXIS_NODE_DTYPE: np.dtype[np.void]
TREE_ENTRY_DTYPE: np.dtype[np.void]
RANDOM_STATE_WORDS: int
HYPERPLANE_NODE_DTYPE: np.dtype[np.void]
EXPLAIN_NODE_DTYPE: np.dtype[np.void]
EXPLAIN_TABLE_WIDTH: int

def build_axis_trees(
    X: npt.NDArray[np.floating[Any]],
    seeds: npt.NDArray[np.uint64],
    max_samples: int,
    bootstrap: bool,
    weights: npt.NDArray[np.float64],
    cum_weights: npt.NDArray[np.float64],
    max_features: int,
    max_depth: int,
    nodes: npt.NDArray[Any],
    values: npt.NDArray[np.float64],
    missing: npt.NDArray[np.uint8],
    ranges: npt.NDArray[np.float64],
    n_nodes: npt.NDArray[np.int32],
    depths: npt.NDArray[np.int32],
    csr: Any = ...,
    entries: Any = ...,
) -> Any: ...
def block_rows_for(n_features: int) -> int: ...
def order_keys(values: npt.NDArray[np.float64]) -> Any: ...
def scoring_links(nodes: Any, block_rows: int) -> Any: ...
def heap_layout(
    nodes: Any,
    values: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    depths: npt.NDArray[np.int32],
    block_rows: int,
    missing: npt.NDArray[np.uint8] | None = ...,
    n_features: int = ...,
) -> Any: ...
def draw_tree_rows(
    seeds: npt.NDArray[np.uint64],
    n: int,
    max_samples: int,
    bootstrap: bool,
    weights: npt.NDArray[np.float64],
    cum_weights: npt.NDArray[np.float64],
    n_features: int,
    max_features: int,
    with_states: bool = ...,
) -> Any: ...
def csc_take_rows(
    data: npt.NDArray[np.floating[Any]],
    indices: npt.NDArray[np.integer[Any]],
    indptr: npt.NDArray[np.intp],
    n_rows: int,
    mask: npt.NDArray[np.uint8],
) -> Any: ...
def csc_tree_draws(
    n_rows: int,
    tree_rows: npt.NDArray[np.int32],
    seeds: npt.NDArray[np.uint64] | None = ...,
    states: npt.NDArray[np.uint64] | None = ...,
) -> TreeDraws: ...
def csc_tree_entries(
    data: npt.NDArray[np.floating[Any]],
    indices: npt.NDArray[np.integer[Any]],
    indptr: npt.NDArray[np.intp],
    draws: TreeDraws,
    col_lo: int,
    col_hi: int,
) -> TreeEntryChunks | None: ...
def _slots_popcnt(wanted: bool) -> bool: ...
def _spare_slabs_kept(cap: int | None = ...) -> int: ...

class TreeDraws:
    @property
    def n_trees(self) -> int: ...
    @property
    def n_draw(self) -> int: ...
    @property
    def n_subsample(self) -> int: ...

class TreeEntryChunks:
    @property
    def n_trees(self) -> int: ...
    @property
    def n_draw(self) -> int: ...
    def __init__(self, n_trees: int, n_draw: int, huge: bool = ...) -> None: ...
    def counts(self) -> npt.NDArray[np.intp]: ...
    def tree(self, t: int) -> npt.NDArray[np.void]: ...

def build_hyperplane_trees(
    X: npt.NDArray[np.floating[Any]],
    seeds: npt.NDArray[np.uint64],
    max_samples: int,
    bootstrap: bool,
    weights: npt.NDArray[np.float64],
    cum_weights: npt.NDArray[np.float64],
    max_features: int,
    n_terms: int,
    standardize: bool,
    range_intercept: bool,
    max_depth: int,
    nodes: npt.NDArray[Any],
    values: npt.NDArray[np.float64],
    normals: npt.NDArray[np.float64],
    terms: npt.NDArray[np.int32],
    n_nodes: npt.NDArray[np.int32],
    depths: npt.NDArray[np.int32],
) -> Any: ...

class AxisForest:
    @property
    def nodes(self) -> Any: ...
    @property
    def values(self) -> Any: ...
    @property
    def missing(self) -> Any: ...
    @property
    def offsets(self) -> Any: ...
    @property
    def depths(self) -> Any: ...
    @property
    def denominator(self) -> float: ...
    @property
    def block_rows(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def ready(self) -> bool: ...
    def __init__(
        self,
        nodes: Any,
        values: Any,
        offsets: Any,
        depths: Any,
        denominator: float,
        n_features: int,
        trusted: bool = ...,
        missing: Any = ...,
        ranges: Any = ...,
    ) -> None: ...
    @property
    def ranges(self) -> Any: ...
    @property
    def n_trees(self) -> int: ...
    @property
    def layout(self) -> str: ...
    def score_samples(self, X: Any, out: npt.NDArray[np.float64], has_missing: bool = ...) -> Any: ...
    def _score_split(self, X: Any, out: npt.NDArray[np.float64]) -> Any: ...
    def score_csr(self, csr: Any, start: int, stop: int, out: npt.NDArray[np.float64], *args: Any) -> Any: ...

class HyperplaneForest:
    @property
    def fills(self) -> Any: ...
    @property
    def missing_ready(self) -> bool: ...
    def score_csr(self, csr: Any, start: int, stop: int, out: npt.NDArray[np.float64], *args: Any) -> Any: ...
    @property
    def nodes(self) -> Any: ...
    @property
    def values(self) -> Any: ...
    @property
    def normals(self) -> Any: ...
    @property
    def terms(self) -> Any: ...
    @property
    def offsets(self) -> Any: ...
    @property
    def depths(self) -> Any: ...
    @property
    def denominator(self) -> float: ...
    @property
    def n_features(self) -> int: ...
    @property
    def dense(self) -> bool: ...
    @property
    def ready(self) -> bool: ...
    def __init__(
        self,
        nodes: Any,
        values: Any,
        normals: Any,
        terms: Any,
        offsets: Any,
        depths: Any,
        denominator: float,
        n_features: int,
        trusted: bool = ...,
    ) -> None: ...
    @property
    def n_trees(self) -> int: ...
    def score_samples(self, X: Any, out: npt.NDArray[np.float64]) -> Any: ...

def compact_rows(arr: Any, n_nodes: npt.NDArray[np.int32]) -> Any: ...
def dense_weights(normals: npt.NDArray[np.float64], terms: npt.NDArray[np.int32], n_features: int) -> Any: ...
def c_average_path_length(n: int) -> float: ...

class AxisExplainer:
    @property
    def nodes(self) -> Any: ...
    @property
    def table(self) -> Any: ...
    def __init__(self, forest: AxisForest, nodes: npt.NDArray[np.void], table: npt.NDArray[np.float64]) -> None: ...
    def explain(
        self, X: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], phi: npt.NDArray[np.float64]
    ) -> None: ...

def hyperplane_explain(
    nodes: npt.NDArray[np.void],
    values: npt.NDArray[np.float64],
    normals: npt.NDArray[np.float64],
    terms: npt.NDArray[np.int32],
    gains: npt.NDArray[np.float64],
    center: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    X: npt.NDArray[np.float64],
    denominator: float,
    scores: npt.NDArray[np.float64],
    phi: npt.NDArray[np.float64],
) -> None: ...
