# Local Outlier Factor kernels: exact k-nearest-neighbour search (k-d tree or
# brute force), local reachability densities and novelty scores, computed the
# way scikit-learn's LocalOutlierFactor computes them.
#
# Kernels never validate: callers hand them C-contiguous float64 arrays of the
# right shapes.  Everything below runs without the GIL; callers spread row
# chunks over threads.
#
# Layout.  The n fitted points sit in *tree order*, stored by feature:
# ``columns`` is d x n, row f holding feature f of every point.  The k-d tree
# is a complete binary tree in heap numbering (children of node i are 2i + 1
# and 2i + 2); node i owns the points start[i]..end[i]-1, contiguous in every
# row of ``columns``.  Nodes >= first_leaf are leaves; ``lower``/``upper``
# (n_nodes x d) are each node's bounding box, all a search needs to prune.
# Brute force is the same layout with no nodes (identity order).  The search
# itself (distances, pruning, the k-best heap) is C in _knn.h: stored by
# feature, eight consecutive points are compared with a query side by side,
# each sum over the features in order (the arithmetic of scikit-learn's
# trees, so the distances are bit for bit theirs), and a block of eight is
# dropped as soon as all its partial sums exceed the k-th best so far.
#
# A point is named by its position in tree order; among neighbours at exactly
# the same distance the smaller position wins, so results do not depend on
# the search order, the pruning or the thread that ran the query.  A search
# keeps the k best (reduced distance, position) pairs in a max-heap ordered
# lexicographically; reduced distances (the sum of squares for p = 2) become
# distances only at the end, as in scikit-learn's trees.
import numpy as np

from libc.math cimport floor, log2, INFINITY
from libc.stdlib cimport malloc, free

from _types cimport float64_t, intp_t

cdef extern from "_knn.h" nogil:
    enum:
        BLOCK "AF_KNN_BLOCK"
        GROUP "AF_KNN_GROUP"
        METRIC_EUCLIDEAN "AF_KNN_EUCLIDEAN"
        METRIC_MANHATTAN "AF_KNN_MANHATTAN"
        METRIC_CHEBYSHEV "AF_KNN_CHEBYSHEV"
        METRIC_MINKOWSKI "AF_KNN_MINKOWSKI"
    ctypedef struct Index "af_knn_index":
        const float64_t* columns
        const intp_t* start
        const intp_t* end
        const float64_t* lower
        const float64_t* upper
        const float64_t* norms
        float64_t max_norm
        intp_t n
        intp_t d
        intp_t n_nodes
        intp_t first_leaf
        int metric
        float64_t p
    ctypedef struct Scratch "af_knn_scratch":
        float64_t* heap_dist
        intp_t* heap_pos
        intp_t* stack_node
        float64_t* stack_bound
        intp_t* active
        float64_t* centre
        float64_t* qnorm
    void knn "af_knn"(const Index* ix, Scratch* s, intp_t k, const float64_t* q, intp_t skip)
    void knn_many "af_knn_many"(const Index* ix, Scratch* s, intp_t k, const float64_t* Q,
                                const intp_t* group, intp_t m, intp_t skip0,
                                float64_t* out_dist, intp_t* out_pos)
    intp_t knn_leaf "af_knn_leaf"(const Index* ix, const float64_t* q)
    int af_knn_use_simd(int wanted)

METRICS = {"euclidean": METRIC_EUCLIDEAN, "manhattan": METRIC_MANHATTAN,
           "chebyshev": METRIC_CHEBYSHEV, "minkowski": METRIC_MINKOWSKI}

# scikit-learn adds this to the mean reachability distance before inverting
# it (duplicates would otherwise give an infinite density).
cdef float64_t LRD_EPSILON = 1e-10

SIMD = bool(af_knn_use_simd(1))  # the AVX2 copy of the search, where the CPU has it


def use_simd(bint wanted):
    """Search with the AVX2 copy of the kernel (when the CPU has it) or the
    portable one; both give bit-identical results.  Returns whether AVX2 is
    now used.  For tests and benchmarks: it switches every search in the
    process."""
    return bool(af_knn_use_simd(wanted))


cdef intp_t tree_levels(intp_t n_nodes) noexcept nogil:
    cdef intp_t levels = 0
    while n_nodes > 0:
        levels += 1
        n_nodes //= 2
    return levels


cdef bint scratch_alloc(Scratch* s, const Index* ix, intp_t k) noexcept nogil:
    cdef intp_t depth = tree_levels(ix.n_nodes) + 2
    # GROUP heaps: af_knn_many searches up to GROUP queries together
    s.heap_dist = <float64_t*>malloc(GROUP * k * sizeof(float64_t))
    s.heap_pos = <intp_t*>malloc(GROUP * k * sizeof(intp_t))
    s.stack_node = <intp_t*>malloc(2 * depth * sizeof(intp_t))
    s.stack_bound = <float64_t*>malloc(2 * depth * sizeof(float64_t))
    s.active = <intp_t*>malloc(GROUP * (depth + 1) * sizeof(intp_t))  # a list per tree level
    s.centre = <float64_t*>malloc(ix.d * sizeof(float64_t))
    s.qnorm = <float64_t*>malloc(GROUP * sizeof(float64_t))
    return (s.heap_dist != NULL and s.heap_pos != NULL and s.stack_node != NULL
            and s.stack_bound != NULL and s.active != NULL
            and s.centre != NULL and s.qnorm != NULL)


cdef void scratch_free(Scratch* s) noexcept nogil:
    free(s.heap_dist)
    free(s.heap_pos)
    free(s.stack_node)
    free(s.stack_bound)
    free(s.active)
    free(s.centre)
    free(s.qnorm)


# --------------------------------------------------------------------------
# Tree construction
# --------------------------------------------------------------------------

cdef void select_nth(float64_t* keys, intp_t* order, intp_t n, intp_t nth) noexcept nogil:
    """Reorder keys/order (together) so that keys[nth] is the nth smallest,
    with nothing larger before it and nothing smaller after it (Hoare
    quickselect, median-of-three pivot)."""
    cdef intp_t lo = 0, hi = n - 1, i, j, mid, ti
    cdef float64_t pivot, tk
    while hi > lo:
        mid = lo + (hi - lo) // 2
        # median of three into keys[mid]
        if keys[mid] < keys[lo]:
            keys[mid], keys[lo] = keys[lo], keys[mid]
            order[mid], order[lo] = order[lo], order[mid]
        if keys[hi] < keys[lo]:
            keys[hi], keys[lo] = keys[lo], keys[hi]
            order[hi], order[lo] = order[lo], order[hi]
        if keys[hi] < keys[mid]:
            keys[hi], keys[mid] = keys[mid], keys[hi]
            order[hi], order[mid] = order[mid], order[hi]
        pivot = keys[mid]
        i = lo - 1
        j = hi + 1
        while True:
            i += 1
            while keys[i] < pivot:
                i += 1
            j -= 1
            while keys[j] > pivot:
                j -= 1
            if i >= j:
                break
            tk = keys[i]; keys[i] = keys[j]; keys[j] = tk
            ti = order[i]; order[i] = order[j]; order[j] = ti
        # keys[lo..j] <= pivot <= keys[j+1..hi]
        if nth <= j:
            hi = j
        else:
            lo = j + 1


def kd_tree_levels(intp_t n, intp_t leaf_size):
    """Levels of the complete tree over n points (scikit-learn's rule: leaves
    hold between leaf_size / 2 and leaf_size points where possible)."""
    cdef intp_t ratio = (n - 1) // leaf_size
    if ratio < 1:
        ratio = 1
    return 1 + <intp_t>floor(log2(<float64_t>ratio))


def build_kd_tree(const float64_t[:, ::1] X, intp_t n_levels):
    """Order the rows of X into a k-d tree of ``n_levels`` levels.

    Each internal node splits its rows at the median of the coordinate with
    the largest spread.  Returns ``order`` (row of X at each tree position)
    and the ``start``/``end`` slice of each node (int arrays of 2**n_levels - 1
    nodes); bounding boxes come from :func:`node_bounds` on ``X[order]``.
    """
    cdef intp_t n = X.shape[0], d = X.shape[1]
    cdef intp_t n_nodes = (1 << n_levels) - 1
    cdef intp_t first_leaf = (1 << (n_levels - 1)) - 1
    order_arr = np.arange(n, dtype=np.intp)
    start_arr = np.empty(n_nodes, dtype=np.intp)
    end_arr = np.empty(n_nodes, dtype=np.intp)
    keys_arr = np.empty(n, dtype=np.float64)
    cdef intp_t[::1] order = order_arr
    cdef intp_t[::1] start = start_arr
    cdef intp_t[::1] end = end_arr
    cdef float64_t[::1] keys = keys_arr
    cdef intp_t node, s, e, f, j, best, mid
    cdef float64_t lo, hi, spread, best_spread, v
    with nogil:
        start[0] = 0
        end[0] = n
        for node in range(first_leaf):
            s = start[node]
            e = end[node]
            best = 0
            best_spread = -1.0
            for f in range(d):
                lo = INFINITY
                hi = -INFINITY
                for j in range(s, e):
                    v = X[order[j], f]
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
                spread = hi - lo
                if spread > best_spread:
                    best_spread = spread
                    best = f
            for j in range(s, e):
                keys[j] = X[order[j], best]
            # the median, moved to a multiple of BLOCK so leaves start on one
            mid = ((s + (e - s) // 2 + BLOCK // 2) // BLOCK) * BLOCK
            if mid <= s or mid >= e:
                mid = s + (e - s) // 2
            select_nth(&keys[s], &order[s], e - s, mid - s)
            start[2 * node + 1] = s
            end[2 * node + 1] = mid
            start[2 * node + 2] = mid
            end[2 * node + 2] = e
    return order_arr, start_arr, end_arr


def node_bounds(const float64_t[:, ::1] points, const intp_t[::1] start,
                const intp_t[::1] end, float64_t[:, ::1] lower, float64_t[:, ::1] upper):
    """Bounding box of every node: leaves from their points, internal nodes
    from their children (points in tree order)."""
    cdef intp_t n_nodes = start.shape[0], d = points.shape[1]
    cdef intp_t first_leaf = n_nodes // 2
    cdef intp_t node, f, j, c
    cdef float64_t v
    with nogil:
        for node in range(n_nodes - 1, -1, -1):
            for f in range(d):
                lower[node, f] = INFINITY
                upper[node, f] = -INFINITY
            if node >= first_leaf:
                for j in range(start[node], end[node]):
                    for f in range(d):
                        v = points[j, f]
                        if v < lower[node, f]:
                            lower[node, f] = v
                        if v > upper[node, f]:
                            upper[node, f] = v
            else:
                for c in range(2 * node + 1, 2 * node + 3):
                    for f in range(d):
                        if lower[c, f] < lower[node, f]:
                            lower[node, f] = lower[c, f]
                        if upper[c, f] > upper[node, f]:
                            upper[node, f] = upper[c, f]


# --------------------------------------------------------------------------
# Fitted model: neighbours of the fitted points, densities, scores
# --------------------------------------------------------------------------

cdef class LOFIndex:
    """Fitted points (tree order, stored by feature), their k-d tree (or
    none: brute force) and, once known, each point's k-distance and local
    reachability density.

    ``training_neighbors`` finds the k nearest other points of fitted points;
    ``score_samples(X, out)`` writes scikit-learn's
    ``LocalOutlierFactor(novelty=True).score_samples`` of the rows of X.
    No validation: arrays must be C-contiguous, of matching shapes, and the
    tree consistent with the points (built by :func:`build_kd_tree` and
    :func:`node_bounds`).
    """
    cdef readonly object columns, start, end, lower, upper, k_distance, lrd, norms
    cdef readonly intp_t k
    cdef Index ix
    cdef const float64_t* kdist_ptr
    cdef const float64_t* lrd_ptr

    def __init__(self, columns, start, end, lower, upper, int metric, float64_t p,
                 intp_t k, k_distance, lrd):
        cdef const float64_t[:, ::1] cols = columns
        cdef const intp_t[::1] st = start
        cdef const intp_t[::1] en = end
        cdef const float64_t[:, ::1] lo = lower
        cdef const float64_t[:, ::1] hi = upper
        cdef const float64_t[::1] kd = k_distance
        cdef const float64_t[::1] dens = lrd
        self.columns, self.start, self.end = columns, start, end
        self.lower, self.upper = lower, upper
        self.k_distance, self.lrd = k_distance, lrd
        self.k = k
        self.ix.columns = &cols[0, 0]
        self.ix.d = cols.shape[0]
        self.ix.n = cols.shape[1]
        self.ix.n_nodes = st.shape[0]
        self.ix.first_leaf = st.shape[0] // 2
        self.ix.metric = metric
        self.ix.p = p
        self.ix.start = &st[0] if st.shape[0] > 0 else NULL
        self.ix.end = &en[0] if st.shape[0] > 0 else NULL
        self.ix.lower = &lo[0, 0] if st.shape[0] > 0 else NULL
        self.ix.upper = &hi[0, 0] if st.shape[0] > 0 else NULL
        self.kdist_ptr = &kd[0] if kd.shape[0] > 0 else NULL
        self.lrd_ptr = &dens[0] if dens.shape[0] > 0 else NULL
        # squared norms of the points, for the many-query search's filter
        self.norms = np.zeros(cols.shape[1])
        cdef float64_t[::1] norms = self.norms
        cdef intp_t f, j
        with nogil:
            for f in range(cols.shape[0]):
                for j in range(cols.shape[1]):
                    norms[j] += cols[f, j] * cols[f, j]
            self.ix.max_norm = 0.0
            for j in range(cols.shape[1]):
                if norms[j] > self.ix.max_norm:
                    self.ix.max_norm = norms[j]
        self.ix.norms = &norms[0] if cols.shape[1] > 0 else NULL

    def training_neighbors(self, const float64_t[:, ::1] points, const intp_t[::1] group,
                           intp_t first, intp_t stop, float64_t[:, ::1] dist, intp_t[:, ::1] pos):
        """Rows first..stop-1 of dist/pos: the k nearest *other* fitted
        points of fitted points first..stop-1 (ascending distance).
        ``points`` are the fitted points by row (n x d, tree order) and
        ``group`` their leaf (searched together: see af_knn_many)."""
        cdef Scratch s
        cdef intp_t k = self.k
        cdef bint ok
        if stop <= first:
            return
        with nogil:
            ok = scratch_alloc(&s, &self.ix, k)
            if ok:
                knn_many(&self.ix, &s, k, &points[first, 0], &group[first], stop - first, first,
                         &dist[first, 0], &pos[first, 0])
            scratch_free(&s)
        if not ok:
            raise MemoryError("not enough memory for a neighbour search")

    def leaves(self, const float64_t[:, ::1] X, intp_t[::1] out):
        """out[i]: the leaf row i of X falls in (0 for brute force); scoring
        rows ordered by leaf lets nearby rows share a search."""
        cdef intp_t i
        with nogil:
            for i in range(X.shape[0]):
                out[i] = knn_leaf(&self.ix, &X[i, 0])

    cdef inline float64_t novelty_score(self, const float64_t* dist, const intp_t* pos) noexcept nogil:
        """-mean(lrd(neighbour) / lrd(row)) of a row with neighbours pos at
        distances dist (scikit-learn's novelty ``score_samples``)."""
        cdef intp_t j, k = self.k
        cdef float64_t reach, total = 0.0, row_lrd
        for j in range(k):
            reach = self.kdist_ptr[pos[j]]
            if dist[j] > reach:
                reach = dist[j]
            total += reach
        row_lrd = 1.0 / (total / k + LRD_EPSILON)
        total = 0.0
        for j in range(k):
            total += self.lrd_ptr[pos[j]] / row_lrd
        return -(total / k)

    def score_samples(self, const float64_t[:, ::1] X, float64_t[::1] out):
        """Scores of the rows of X into out, one search per row (the path of
        a few rows: no grouping)."""
        cdef Scratch s
        cdef intp_t i, m = X.shape[0]
        cdef bint ok
        if m == 0:
            return
        with nogil:
            ok = scratch_alloc(&s, &self.ix, self.k)
            if ok:
                for i in range(m):
                    knn(&self.ix, &s, self.k, &X[i, 0], -1)
                    out[i] = self.novelty_score(s.heap_dist, s.heap_pos)
            scratch_free(&s)
        if not ok:
            raise MemoryError("not enough memory for a neighbour search")

    def score_grouped(self, const float64_t[:, ::1] X, const intp_t[::1] group, float64_t[::1] out):
        """Scores of the rows of X into out, rows with the same ``group``
        (their leaf, from :meth:`leaves`; rows ordered by it) searched
        together: the same scores as :meth:`score_samples`."""
        cdef Scratch s
        cdef intp_t i, b, width, m = X.shape[0], k = self.k
        cdef intp_t batch = 4096 if m > 4096 else m
        cdef float64_t* dist
        cdef intp_t* pos
        cdef bint ok
        if m == 0:
            return
        with nogil:
            dist = <float64_t*>malloc(batch * k * sizeof(float64_t))
            pos = <intp_t*>malloc(batch * k * sizeof(intp_t))
            ok = scratch_alloc(&s, &self.ix, k) and dist != NULL and pos != NULL
            if ok:
                b = 0
                while b < m:
                    width = m - b if m - b < batch else batch
                    knn_many(&self.ix, &s, k, &X[b, 0], &group[b], width, -1, dist, pos)
                    for i in range(width):
                        out[b + i] = self.novelty_score(&dist[i * k], &pos[i * k])
                    b += width
            scratch_free(&s)
            free(dist)
            free(pos)
        if not ok:
            raise MemoryError("not enough memory for a neighbour search")


def reachability_densities(const float64_t[:, ::1] dist, const intp_t[:, ::1] pos,
                           float64_t[::1] lrd):
    """lrd[i] = 1 / (mean_j max(dist[i, j], k_distance[pos[i, j]]) + 1e-10),
    with k_distance = dist[:, k - 1] (scikit-learn's formula)."""
    cdef intp_t n = dist.shape[0], k = dist.shape[1], i, j
    cdef float64_t total, reach
    with nogil:
        for i in range(n):
            total = 0.0
            for j in range(k):
                reach = dist[pos[i, j], k - 1]
                if dist[i, j] > reach:
                    reach = dist[i, j]
                total += reach
            lrd[i] = 1.0 / (total / k + LRD_EPSILON)


def outlier_factors(const intp_t[:, ::1] pos, const float64_t[::1] lrd,
                    float64_t[::1] out):
    """out[i] = -mean_j(lrd[pos[i, j]] / lrd[i]): scikit-learn's
    ``negative_outlier_factor_`` of the fitted points."""
    cdef intp_t n = pos.shape[0], k = pos.shape[1], i, j
    cdef float64_t total
    with nogil:
        for i in range(n):
            total = 0.0
            for j in range(k):
                total += lrd[pos[i, j]] / lrd[i]
            out[i] = -(total / k)

