"""Stub of the compiled module anomaly_fast._lof: Local Outlier Factor kernels (native/_lof.pyx): k-d tree and densities.

Kept in step with the .pyx by tests/test_stubs.py (same public names).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

METRICS: dict[str, int]
SIMD: bool  # the AVX2 copy of the k-NN search is in use

def use_simd(wanted: bool) -> bool: ...
def kd_tree_levels(n: int, leaf_size: int) -> int: ...
def build_kd_tree(X: npt.NDArray[np.float64], n_levels: int) -> Any: ...
def node_bounds(
    points: npt.NDArray[np.float64],
    start: npt.NDArray[np.intp],
    end: npt.NDArray[np.intp],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
) -> Any: ...

class LOFIndex:
    @property
    def columns(self) -> Any: ...
    @property
    def start(self) -> Any: ...
    @property
    def end(self) -> Any: ...
    @property
    def lower(self) -> Any: ...
    @property
    def upper(self) -> Any: ...
    @property
    def k_distance(self) -> Any: ...
    @property
    def lrd(self) -> Any: ...
    @property
    def norms(self) -> Any: ...
    @property
    def k(self) -> int: ...
    def __init__(
        self,
        columns: Any,
        start: Any,
        end: Any,
        lower: Any,
        upper: Any,
        metric: int,
        p: float,
        k: int,
        k_distance: Any,
        lrd: Any,
    ) -> None: ...
    def training_neighbors(
        self,
        points: npt.NDArray[np.float64],
        group: npt.NDArray[np.intp],
        first: int,
        stop: int,
        dist: npt.NDArray[np.float64],
        pos: npt.NDArray[np.intp],
    ) -> Any: ...
    def leaves(self, X: npt.NDArray[np.float64], out: npt.NDArray[np.intp]) -> Any: ...
    def score_samples(self, X: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> Any: ...
    def score_grouped(
        self, X: npt.NDArray[np.float64], group: npt.NDArray[np.intp], out: npt.NDArray[np.float64]
    ) -> Any: ...

def reachability_densities(
    dist: npt.NDArray[np.float64], pos: npt.NDArray[np.intp], lrd: npt.NDArray[np.float64]
) -> Any: ...
def outlier_factors(pos: npt.NDArray[np.intp], lrd: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> Any: ...
