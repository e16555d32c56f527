# Isolation-forest kernels: tree construction on a subsample and path-length
# scoring, for axis-parallel trees (Isolation Forest) and hyperplane trees
# (Extended Isolation Forest).
#
# Kernels never validate: callers hand them C-contiguous arrays of the right
# dtype and shape.  Everything below runs without the GIL.
#
# Tree layout.  The trees of a forest are concatenated into one flat node
# array; ``offsets[t]`` is where tree t starts, and child indices are relative
# to it.  The two children of a node are adjacent (right = left + 1), so a
# step is ``node = left + (x > threshold)``.  A leaf points at itself with an
# infinite threshold, so a walk of exactly ``depths[t]`` steps always ends at
# the right leaf: no branch per node, and a block of rows walks each tree
# level by level while the tree stays in L1 cache.  ``values`` holds, at each
# leaf, depth + c(leaf size): the path length a point ending there gets.
#
# Infinities.  Split values are always finite, drawn over the node's finite
# values only, so +inf goes right of every split and -inf left of it (axis
# trees; hyperplane trees: see _robust_dot).  Data without infinities takes
# exactly the code path it took before they were accepted.
import numpy as np
cimport cython

from libc.math cimport log, exp2, sqrt, nextafter, isfinite, fabs, fmax, fmin, INFINITY
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint8_t

from _types cimport float64_t, int32_t, int64_t, intp_t, uintp_t, uint32_t, uint64_t, floating_t
from _random cimport RandomState, rng_seed, rng_uniform, rng_below, rng_normal


cdef struct AxisNode:
    float64_t threshold  # a point goes right when x[feature] > threshold; +inf at a leaf
    int32_t feature      # split feature; 0 at a leaf
    int32_t left         # left child (tree-relative); right child is left + 1; a leaf points at itself


cdef struct HyperplaneNode:
    float64_t offset     # a point goes right when dot(normal, x) > offset; +inf at a leaf
    int32_t left         # left child (tree-relative); right child is left + 1; a leaf points at itself
    int32_t n_terms      # non-zero coordinates of the normal (0 at a leaf)


cdef struct TreeEntry:
    int32_t col    # data feature of a stored entry of a tree's subsample
    int32_t pos    # position of the entry's row in the subsample
    float64_t val  # stored value


TREE_ENTRY_DTYPE = np.dtype([("col", np.int32), ("pos", np.int32), ("val", np.float64)], align=True)
AXIS_NODE_DTYPE = np.dtype(
    [("threshold", np.float64), ("feature", np.int32), ("left", np.int32)], align=True
)
HYPERPLANE_NODE_DTYPE = np.dtype(
    [("offset", np.float64), ("left", np.int32), ("n_terms", np.int32)], align=True
)

cdef enum:
    ROW_BLOCK = 256  # rows walked through one tree together
cdef float64_t EULER_GAMMA = 0.5772156649015329


cdef inline float64_t average_path_length(intp_t n) noexcept nogil:
    """c(n): the mean path length of an unsuccessful BST search among n points."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n


# --------------------------------------------------------------------------
# Subsampling
# --------------------------------------------------------------------------

cdef inline bint _set_insert(intp_t* table, intp_t mask, intp_t value) noexcept nogil:
    """Insert into an open-addressing set of non-negative ints; False if present."""
    cdef intp_t h = <intp_t>((<uint64_t>value * <uint64_t>0x9E3779B97F4A7C15) >> 20) & mask
    while table[h] != -1:
        if table[h] == value:
            return False
        h = (h + 1) & mask
    table[h] = value
    return True


cdef void _draw_rows(RandomState* rng, intp_t n, intp_t m, bint bootstrap,
                     const float64_t* weights, const float64_t* cum_weights,
                     intp_t* rows, intp_t* table, intp_t table_size,
                     float64_t* keys) noexcept nogil:
    """Draw m row indices from range(n), uniformly or with probability
    proportional to ``weights`` (NULL for uniform).

    Uniform: with replacement, or without it by Floyd's algorithm (O(m) time
    and memory whatever n is).  Weighted: with replacement by bisection on
    ``cum_weights``; without it by Efraimidis-Spirakis keys -log(u)/w, keeping
    the m smallest in a max-heap (O(n log m); the same distribution as drawing
    one at a time and renormalising).  Zero-weight rows are never drawn.
    """
    cdef intp_t j, t, k = 0, lo, hi, mid, child
    cdef float64_t target, key
    if weights != NULL:
        if bootstrap:
            for j in range(m):
                target = rng_uniform(rng) * cum_weights[n - 1]
                lo = 0
                hi = n - 1
                while lo < hi:  # first index whose cumulative weight exceeds target
                    mid = (lo + hi) // 2
                    if cum_weights[mid] > target:
                        hi = mid
                    else:
                        lo = mid + 1
                rows[j] = lo
            return
        for j in range(n):
            if weights[j] <= 0.0:
                continue
            key = -log(1.0 - rng_uniform(rng)) / weights[j]
            if k < m:  # heap not full: sift up
                t = k
                k += 1
                while t > 0 and keys[(t - 1) // 2] < key:
                    keys[t] = keys[(t - 1) // 2]
                    rows[t] = rows[(t - 1) // 2]
                    t = (t - 1) // 2
                keys[t] = key
                rows[t] = j
            elif key < keys[0]:  # replace the largest key: sift down
                t = 0
                while True:
                    child = 2 * t + 1
                    if child >= m:
                        break
                    if child + 1 < m and keys[child + 1] > keys[child]:
                        child += 1
                    if keys[child] <= key:
                        break
                    keys[t] = keys[child]
                    rows[t] = rows[child]
                    t = child
                keys[t] = key
                rows[t] = j
        return
    if bootstrap:
        for j in range(m):
            rows[j] = rng_below(rng, n)
        return
    if m == n:
        for j in range(n):
            rows[j] = j
        return
    for j in range(table_size):
        table[j] = -1
    for j in range(n - m, n):
        t = rng_below(rng, j + 1)
        if not _set_insert(table, table_size - 1, t):
            _set_insert(table, table_size - 1, j)
            t = j
        rows[k] = t
        k += 1


cdef intp_t _table_size(intp_t m) noexcept nogil:
    cdef intp_t size = 16
    while size < 2 * m:
        size *= 2
    return size


cdef void _draw_features(RandomState* rng, intp_t n_features, intp_t k,
                         int32_t* out) noexcept nogil:
    """The first k entries of ``out`` become k distinct features (partial
    Fisher-Yates over 0..n_features-1); all features when k == n_features."""
    cdef intp_t j, r
    cdef int32_t tmp
    for j in range(n_features):
        out[j] = <int32_t>j
    if k >= n_features:
        return
    for j in range(k):
        r = j + rng_below(rng, n_features - j)
        tmp = out[j]
        out[j] = out[r]
        out[r] = tmp


# --------------------------------------------------------------------------
# Scratch memory for building one tree
# --------------------------------------------------------------------------

cdef struct BuildScratch:
    intp_t* rows        # the subsample's row indices into X
    intp_t* table       # hash set for sampling without replacement
    intp_t table_size   # entries in table (power of two)
    intp_t* order       # node membership: a node owns order[start:end]
    intp_t* spare       # partition scratch, as long as order
    float64_t* columns  # subsample copy, column-major: columns[f * m + i]
    float64_t* proj     # per-sample projections (hyperplane trees)
    float64_t* lo       # per-feature minimum in the current node
    float64_t* hi       # per-feature maximum in the current node
    float64_t* sd       # per-feature standard deviation in the current node
    float64_t* mean     # per-feature mean of the node's finite values (a missing value's fill)
    int32_t* position   # per data feature: its index among the tree's features, or -1 (CSR gather)
    int32_t* features   # features this tree may split on (first n_tree_features)
    unsigned char* has_missing  # per tree feature: the subsample holds a NaN in it
    int32_t* candidates # scratch list of candidate features in a node
    int32_t* picks      # the candidates a node rejected, in turn (to restore the list)
    intp_t* stack       # pending nodes: (node, start, end, depth) quadruples
    # axis trees built from their own stored entries (TreeEntries):
    intp_t* col_start   # per data feature: where its entries start (n_features + 1)
    intp_t* where       # per subsample row i: its index in ``order``
    float64_t* key      # the split feature's values of the node's rows, by subsample row
    bint columns_zero   # ``columns`` is all zeros (the entries' dense fallback)


cdef bint _scratch_alloc(BuildScratch* s, intp_t m, intp_t d) noexcept nogil:
    s.table_size = _table_size(m)
    s.rows = <intp_t*>malloc(m * sizeof(intp_t))
    s.table = <intp_t*>malloc(s.table_size * sizeof(intp_t))
    s.order = <intp_t*>malloc(m * sizeof(intp_t))
    s.spare = <intp_t*>malloc(m * sizeof(intp_t))
    s.columns = <float64_t*>malloc(m * d * sizeof(float64_t))
    s.proj = <float64_t*>malloc(m * sizeof(float64_t))
    s.lo = <float64_t*>malloc(d * sizeof(float64_t))
    s.hi = <float64_t*>malloc(d * sizeof(float64_t))
    s.sd = <float64_t*>malloc(d * sizeof(float64_t))
    s.mean = <float64_t*>malloc(d * sizeof(float64_t))
    s.position = <int32_t*>malloc(d * sizeof(int32_t))
    s.features = <int32_t*>malloc(d * sizeof(int32_t))
    s.has_missing = <unsigned char*>malloc(d + 1)
    s.candidates = <int32_t*>malloc(d * sizeof(int32_t))
    s.picks = <int32_t*>malloc(d * sizeof(int32_t))
    s.stack = <intp_t*>malloc(4 * (2 * m + 2) * sizeof(intp_t))
    s.col_start = <intp_t*>malloc((d + 1) * sizeof(intp_t))
    s.where = <intp_t*>malloc(m * sizeof(intp_t))
    s.key = <float64_t*>malloc(m * sizeof(float64_t))
    s.columns_zero = False
    return (s.col_start != NULL and s.where != NULL and s.key != NULL and s.rows != NULL and s.table != NULL and s.order != NULL and s.spare != NULL
            and s.columns != NULL
            and s.proj != NULL and s.lo != NULL and s.hi != NULL and s.features != NULL
            and s.candidates != NULL and s.picks != NULL and s.stack != NULL and s.has_missing != NULL
            and s.sd != NULL and s.mean != NULL and s.position != NULL)


cdef void _scratch_free(BuildScratch* s) noexcept nogil:
    free(s.rows)
    free(s.table)
    free(s.order)
    free(s.spare)
    free(s.columns)
    free(s.proj)
    free(s.lo)
    free(s.hi)
    free(s.sd)
    free(s.mean)
    free(s.position)
    free(s.features)
    free(s.has_missing)
    free(s.candidates)
    free(s.picks)
    free(s.stack)
    free(s.col_start)
    free(s.where)
    free(s.key)


cdef void _gather(const floating_t[:, ::1] X, BuildScratch* s, intp_t m,
                  intp_t n_tree_features) noexcept nogil:
    """Copy the subsample's allowed features into the column-major buffer."""
    cdef intp_t i, j
    cdef int32_t f
    cdef float64_t v
    for j in range(n_tree_features):
        f = s.features[j]
        s.has_missing[j] = 0
        for i in range(m):
            v = X[s.rows[i], f]
            s.columns[j * m + i] = v
            if v != v:
                s.has_missing[j] = 1
    for i in range(m):
        s.order[i] = i


# --------------------------------------------------------------------------
# Sparse input (CSR rows).  A CSR matrix in canonical form (sorted, no
# duplicate entries) stands for the dense matrix with zeros elsewhere: fit
# gathers the subsample's rows from it into the same column-major buffer as
# the dense path, and scoring densifies a few rows at a time into a scratch
# block that the dense kernels then walk, so sparse and dense input give the
# same trees and the same scores bit for bit.
# --------------------------------------------------------------------------

cdef struct CSRRows:
    const float64_t* data   # non-zero values (explicit NaN/inf kept)
    const intp_t* indices   # column of each value, ascending within a row
    const intp_t* indptr    # row r owns data[indptr[r]:indptr[r + 1]]
    intp_t n_rows           # rows of the matrix
    intp_t n_cols           # columns of the matrix
    # Fit on some rows of a larger matrix (csc_take_rows): trees draw from
    # range(n_draw) and row r of the larger matrix is row slots[r] here
    # (slots NULL: n_draw == n_rows and the identity).
    const intp_t* slots
    intp_t n_draw


cdef inline intp_t _csr_row(const CSRRows* X, intp_t drawn) noexcept nogil:
    return X.slots[drawn] if X.slots != NULL else drawn


cdef inline void _map_tree_features(BuildScratch* s, intp_t d, intp_t n_tree_features) noexcept nogil:
    """``s.position[j]``: the column of data feature j in the tree's column
    buffer (-1 when the tree does not use it); the buffer's NaN flags
    cleared.  For laying out stored entries (_gather_csr, _entries_prepare)."""
    cdef intp_t j
    for j in range(d):
        s.position[j] = -1
    for j in range(n_tree_features):
        s.position[s.features[j]] = <int32_t>j
        s.has_missing[j] = 0


cdef void _gather_csr(const CSRRows* X, BuildScratch* s, intp_t m,
                      intp_t n_tree_features) noexcept nogil:
    """_gather for CSR input: the subsample's allowed features, zeros
    where the matrix stores nothing.  ``s.columns`` must be all zeros (the
    builder zeroes it once and _clear_csr undoes each tree's writes): the
    cost is the subsample's stored entries, not m * n_features."""
    cdef intp_t i, j, p, r
    cdef int32_t pos
    cdef float64_t v
    _map_tree_features(s, X.n_cols, n_tree_features)
    for i in range(m):
        r = _csr_row(X, s.rows[i])
        for p in range(X.indptr[r], X.indptr[r + 1]):
            pos = s.position[X.indices[p]]
            if pos >= 0:
                v = X.data[p]
                s.columns[pos * m + i] = v
                if v != v:
                    s.has_missing[pos] = 1
    for i in range(m):
        s.order[i] = i


cdef void _clear_csr(const CSRRows* X, BuildScratch* s, intp_t m) noexcept nogil:
    """Zero what _gather_csr wrote into ``s.columns``."""
    cdef intp_t i, p, r
    cdef int32_t pos
    for i in range(m):
        r = _csr_row(X, s.rows[i])
        for p in range(X.indptr[r], X.indptr[r + 1]):
            pos = s.position[X.indices[p]]
            if pos >= 0:
                s.columns[pos * m + i] = 0.0


cdef void _densify_rows(const CSRRows* X, intp_t r0, intp_t nb, float64_t* out) noexcept nogil:
    """Rows r0 .. r0 + nb of X as a dense C-contiguous block (nb, n_cols)."""
    cdef intp_t r, p
    cdef float64_t* row
    memset(out, 0, nb * X.n_cols * sizeof(float64_t))
    for r in range(nb):
        row = out + r * X.n_cols
        for p in range(X.indptr[r0 + r], X.indptr[r0 + r + 1]):
            row[X.indices[p]] = X.data[p]


cdef bint _csr_view(object csr, CSRRows* out) except False:
    """Fill ``out`` from a (data float64, indices intp, indptr intp, n_cols)
    tuple of C-contiguous arrays, or (..., slots intp, n_draw) for rows taken
    from a larger matrix (see CSRRows); the arrays must outlive ``out``."""
    cdef const float64_t[::1] data = csr[0]
    cdef const intp_t[::1] indices = csr[1]
    cdef const intp_t[::1] indptr = csr[2]
    cdef const intp_t[::1] slots
    out.data = &data[0] if data.shape[0] > 0 else NULL
    out.indices = &indices[0] if indices.shape[0] > 0 else NULL
    out.indptr = &indptr[0]
    out.n_rows = indptr.shape[0] - 1
    out.n_cols = csr[3]
    out.slots = NULL
    out.n_draw = out.n_rows
    if len(csr) > 4:
        slots = csr[4]
        out.slots = &slots[0]
        out.n_draw = slots.shape[0]
    return True


cdef enum:
    CSR_BLOCK_VALUES = 32768  # values per densified block of CSR rows (256 KiB)


cdef intp_t _csr_block_rows(intp_t n_cols) noexcept nogil:
    return max(1, min(4096, CSR_BLOCK_VALUES // max(n_cols, 1)))


# --------------------------------------------------------------------------
# Fit from CSC without converting the whole matrix: the rows every tree will
# draw are drawn first (draw_tree_rows, the builders' own draws), and only
# their union is taken from the CSC matrix (csc_take_rows), in one compiled
# pass over its row indices, into a small CSR matrix the builders read
# through ``slots`` (CSRRows).
# --------------------------------------------------------------------------

ctypedef fused csc_index_t:
    int32_t
    int64_t


def draw_tree_rows(const uint64_t[::1] seeds, intp_t n, intp_t max_samples, bint bootstrap,
                   const float64_t[::1] weights, const float64_t[::1] cum_weights,
                   intp_t n_features, intp_t max_features, bint with_states=False):
    """The (n_trees, max_samples) int32 rows of range(n) (n < 2**31) that
    the trees of ``seeds`` draw, in the order drawn: the builders' first
    draws (features, then rows) with the same arguments as
    build_axis_trees / build_hyperplane_trees.  ``with_states``: also each
    tree's random state after those draws, (rows, states) with states a
    (n_trees, RANDOM_STATE_WORDS) uint64 array (for csc_tree_draws, whose
    builds then need not draw the rows again)."""
    out_arr = np.empty((seeds.shape[0], max_samples), dtype=np.int32)
    states_arr = np.empty((seeds.shape[0] if with_states else 0, RANDOM_STATE_WORDS), dtype=np.uint64)
    cdef uint64_t[:, ::1] states = states_arr
    cdef int32_t[:, ::1] out = out_arr
    cdef RandomState rng
    cdef intp_t t, i
    cdef intp_t table_size = _table_size(max_samples)
    cdef const float64_t* w = NULL
    cdef const float64_t* cw = NULL
    if weights.shape[0] > 0:
        w = &weights[0]
        cw = &cum_weights[0]
    cdef int32_t* features = <int32_t*>malloc(max(n_features, 1) * sizeof(int32_t))
    cdef intp_t* rows = <intp_t*>malloc(max_samples * sizeof(intp_t))
    cdef intp_t* table = <intp_t*>malloc(table_size * sizeof(intp_t))
    cdef float64_t* keys = <float64_t*>malloc(max_samples * sizeof(float64_t))
    cdef bint ok = features != NULL and rows != NULL and table != NULL and keys != NULL
    if ok:
        with nogil:
            for t in range(seeds.shape[0]):
                rng_seed(&rng, seeds[t])
                _draw_features(&rng, n_features, max_features, features)
                _draw_rows(&rng, n, max_samples, bootstrap, w, cw, rows, table, table_size, keys)
                for i in range(max_samples):
                    out[t, i] = <int32_t>rows[i]
                if with_states:
                    memcpy(&states[t, 0], &rng, sizeof(RandomState))
    free(features)
    free(rows)
    free(table)
    free(keys)
    if not ok:
        raise MemoryError("not enough memory to draw the trees' rows")
    return (out_arr, states_arr) if with_states else out_arr


cdef extern from *:
    """
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define AF_ALWAYS_INLINE inline __attribute__((always_inline))
    #else
    #define AF_ALWAYS_INLINE inline
    #endif
    static AF_ALWAYS_INLINE int af_popcount64(uint64_t x) {
    #if defined(__POPCNT__)
        return __builtin_popcountll(x);
    #else  /* SWAR, inline: the baseline x86-64 target has no popcnt (a libgcc call) */
        x = x - ((x >> 1) & 0x5555555555555555ULL);
        x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (int)((x * 0x0101010101010101ULL) >> 56);
    #endif
    }
    /* how many bits of the bitset lie below bit r, from the rank of r's word */
    #define AF_RANK_BELOW(bits, rank, r, POPCOUNT) \
        ((rank)[(r) >> 6] + POPCOUNT((bits)[(r) >> 6] & ((((uint64_t)1) << ((r) & 63)) - 1)))
    static AF_ALWAYS_INLINE Py_ssize_t af_rank_below(const uint64_t* bits, const Py_ssize_t* rank, Py_ssize_t r) {
        return AF_RANK_BELOW(bits, rank, r, af_popcount64);
    }
    /* finite and not -0.0 (whose sign the dense min/max may keep): integer
       tests on the bits, so the loop over a tree's entries vectorizes */
    static AF_ALWAYS_INLINE int af_plain_value(double v) {
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        return ((u & 0x7FF0000000000000ULL) != 0x7FF0000000000000ULL) & (u != 0x8000000000000000ULL);
    }
    /* memory for a large buffer filled once: in 2 MiB pages where Linux
       offers them (as numpy does for its large arrays), so that filling it
       faults a few large pages instead of many small ones; free() frees it */
    static void* af_alloc_filled(size_t size, int huge) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        void* p = NULL;
        if (huge && size % ((size_t)1 << 21) == 0) {
            if (posix_memalign(&p, (size_t)1 << 21, size) != 0)
                return NULL;
            madvise(p, size, MADV_HUGEPAGE);
            return p;
        }
    #endif
        return malloc(size);
    }
    static inline void af_prefetch_write(const void* address) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(address, 1);
    #endif
    }
    static inline void af_prefetch(const void* address) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(address);
    #endif
    }
    /* into L2 (x86: prefetcht1), for data read a little later */
    static inline void af_prefetch_l2(const void* address) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(address, 0, 2);
    #endif
    }
    /* rows[:k], rows of the bitset, replaced by their slots (rank), each
       slot's two int32 uses asked for early (prefetched); with the popcnt
       instruction where the CPU has one (the baseline x86-64 target has none) */
    #define AF_SLOTS_BODY(POPCOUNT)                                              \
        Py_ssize_t i, r, s;                                                      \
        for (i = 0; i < k; i++) {                                                \
            r = rows[i];                                                         \
            s = AF_RANK_BELOW(bits, rank, r, POPCOUNT);                          \
            rows[i] = (int32_t)s;                                                \
            af_prefetch(&slot_use[2 * s]);                                       \
        }
    static void af_slots_plain(int32_t* rows, Py_ssize_t k, const uint64_t* bits,
                               const Py_ssize_t* rank, const int32_t* slot_use) {
        AF_SLOTS_BODY(af_popcount64)
    }
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__POPCNT__)
    #define AF_SLOTS_DISPATCH 1
    __attribute__((target("popcnt"))) static void af_slots_popcnt(
            int32_t* rows, Py_ssize_t k, const uint64_t* bits, const Py_ssize_t* rank,
            const int32_t* slot_use) {
        AF_SLOTS_BODY(__builtin_popcountll)
    }
    static int af_have_popcnt = -1;  /* set once; threads racing set the same value */
    #endif
    static inline void af_slots(int32_t* rows, Py_ssize_t k, const uint64_t* bits,
                                const Py_ssize_t* rank, const int32_t* slot_use) {
    #if defined(AF_SLOTS_DISPATCH)
        if (af_have_popcnt < 0) {
            __builtin_cpu_init();
            af_have_popcnt = __builtin_cpu_supports("popcnt") != 0;
        }
        if (af_have_popcnt) {
            af_slots_popcnt(rows, k, bits, rank, slot_use);
            return;
        }
    #endif
        af_slots_plain(rows, k, bits, rank, slot_use);
    }
    /* tests: use the popcnt copy (when the CPU has it) or not; whether it was */
    static int af_slots_use_popcnt(int wanted) {
    #if defined(AF_SLOTS_DISPATCH)
        int was;
        __builtin_cpu_init();
        if (af_have_popcnt < 0)  /* not chosen yet: as at first use */
            af_have_popcnt = __builtin_cpu_supports("popcnt") != 0;
        was = af_have_popcnt;
        af_have_popcnt = wanted && __builtin_cpu_supports("popcnt");
        return was;
    #else
        (void)wanted;
        return 0;
    #endif
    }
    """
    int _popcount64 "af_popcount64"(uint64_t x) noexcept nogil
    int _rank_below "af_rank_below"(const uint64_t* bits, const intp_t* rank, intp_t r) noexcept nogil
    void _prefetch "af_prefetch"(const void* address) noexcept nogil
    void _prefetch_write "af_prefetch_write"(const void* address) noexcept nogil
    void _prefetch_l2 "af_prefetch_l2"(const void* address) noexcept nogil
    bint _plain_value "af_plain_value"(float64_t v) noexcept nogil
    void* _alloc_filled "af_alloc_filled"(size_t size, int huge) noexcept nogil
    int _slots_use_popcnt "af_slots_use_popcnt"(int wanted) noexcept nogil
    void _slots "af_slots"(int32_t* rows, intp_t k, const uint64_t* bits, const intp_t* rank,
                           const int32_t* slot_use) noexcept nogil


cdef struct RowSet:
    # A set of rows of range(n) as a bitset with the rank of each word's
    # first bit: a row's slot (its index among the set's rows, ascending)
    # is a few instructions on arrays that stay in L1 cache (n / 8 and
    # n / 16 bytes), not a lookup in an n-entry table.
    const uint64_t* bits
    const intp_t* rank
    intp_t word_mask  # words - 1 (a power of two): any index masked with it is a word


cdef inline uint64_t _rowset_has(const RowSet* t, intp_t r) noexcept nogil:
    """Whether row r is in the set, for a row index not yet checked: the
    word read is masked into the bitset, so any r reads inside it (the
    takes check a column's rows as they pick, and drop what a bad column
    picked: _bad_column says why)."""
    return (t.bits[(r >> 6) & t.word_mask] >> (r & 63)) & 1


cdef int _bad_column(const csc_index_t* indices, intp_t p0, intp_t p1, intp_t n_rows) noexcept nogil:
    """Why a CSC column's row indices indices[p0:p1] failed the take's
    checks: -1 when one is out of range, else -2 (not strictly increasing)."""
    cdef intp_t p
    for p in range(p0, p1):
        if indices[p] < 0 or indices[p] >= n_rows:
            return -1
    return -2


cdef intp_t _csc_take(const csc_index_t* indices, const intp_t* indptr, intp_t n_cols,
                      intp_t n_rows, const RowSet* taken, intp_t* entry_pos,
                      int32_t* entry_row) noexcept nogil:
    """Positions (and rows) of the CSC matrix's entries whose row is
    ``taken``, in column order, picked branch-free as each column's rows
    are checked (strictly increasing, so in range when the last is).
    ``entry_pos``/``entry_row`` have room for one more entry than are
    taken.  Returns how many, -1 when a row index is out of range, -2 when a
    column's rows are not strictly increasing (not canonical)."""
    cdef intp_t c, p, r, prev, k = 0
    cdef bint bad
    for c in range(n_cols):
        prev = -1
        bad = False
        for p in range(indptr[c], indptr[c + 1]):
            r = <intp_t>indices[p]
            bad |= r <= prev
            prev = r
            entry_pos[k] = p
            entry_row[k] = <int32_t>r
            k += _rowset_has(taken, r)
        if bad | (prev >= n_rows):
            return _bad_column(indices, indptr[c], indptr[c + 1], n_rows)
    return k


cdef inline intp_t _column_of(const intp_t* indptr, intp_t c, intp_t p) noexcept nogil:
    """The column of entry ``p`` of a CSC matrix, searching forward from
    column ``c`` (entries visited in order)."""
    while p >= indptr[c + 1]:
        c += 1
    return c


@cython.internal
cdef class _Taken:
    """The entries of a CSC matrix in a set of rows (_take_entries)."""
    cdef intp_t k            # how many; -2 when the matrix is not canonical
    cdef intp_t n_slots      # rows in the set
    cdef RowSet rows         # the set (into bits_arr, rank_arr)
    cdef const intp_t[::1] pos  # entry positions, in column order
    cdef int32_t[::1] row    # their rows (callers may overwrite them with slots)
    cdef object bits_arr, rank_arr


cdef void _row_set(_Taken taken, intp_t n_rows, mask, const int32_t* drawn=NULL,
                   intp_t n_drawn=0) except *:
    """Set ``taken``'s row set (bits, ranks, n_slots) to the rows where the
    uint8 ``mask`` is 1, or (``mask`` None) to the rows drawn[:n_drawn] (of
    range(n_rows), checked by the caller)."""
    cdef intp_t i
    cdef intp_t n_words = 1  # a power of two whose last word holds no row: rank's end
    while (n_words - 1) * 64 < n_rows:
        n_words *= 2
    taken.bits_arr = np.zeros(n_words, dtype=np.uint64)
    if mask is not None:
        packed = np.packbits(mask, bitorder="little")
        taken.bits_arr.view(np.uint8)[: packed.shape[0]] = packed
    taken.rank_arr = np.zeros(n_words, dtype=np.intp)
    cdef uint64_t[::1] bits = taken.bits_arr
    for i in range(n_drawn):
        bits[drawn[i] >> 6] |= (<uint64_t>1) << (drawn[i] & 63)
    cdef intp_t[::1] rank = taken.rank_arr
    for i in range(n_words - 1):  # rank of each word's first bit
        rank[i + 1] = rank[i] + _popcount64(bits[i])
    taken.n_slots = rank[n_words - 1]
    taken.rows.bits = &bits[0]
    taken.rows.rank = &rank[0]
    taken.rows.word_mask = n_words - 1


cdef _Taken _take_entries(const csc_index_t[::1] indices, const intp_t[::1] indptr, intp_t n_rows,
                          mask):
    """The entries of a CSC matrix in the rows where the uint8 ``mask`` is
    1, in column order (_csc_take); ValueError for a row index out of
    range.  The position arrays have room for every entry, but only the
    first k + 1 are written (the untouched rest costs no memory)."""
    cdef _Taken taken = _Taken()
    cdef intp_t n_cols = indptr.shape[0] - 1
    cdef intp_t nnz = indptr[n_cols]
    _row_set(taken, n_rows, mask)
    taken.pos = np.empty(nnz + 1, dtype=np.intp)
    taken.row = np.empty(nnz + 1, dtype=np.int32)
    taken.k = 0
    if n_cols > 0 and nnz > 0 and n_rows > 0:
        with nogil:
            taken.k = _csc_take(&indices[0], &indptr[0], n_cols, n_rows, &taken.rows,
                                <intp_t*>&taken.pos[0], &taken.row[0])
    if taken.k == -1:
        raise ValueError("sparse matrix has inconsistent indptr/indices arrays: a row index is out of range")
    return taken


cdef enum:
    TAKE_BUCKET_SHIFT = 7  # 2**7 consecutive rows per bucket of csc_take_rows' sort


def csc_take_rows(const floating_t[::1] data, const csc_index_t[::1] indices,
                  const intp_t[::1] indptr, intp_t n_rows, const uint8_t[::1] mask):
    """The rows of an (n_rows, len(indptr) - 1) CSC matrix where ``mask`` is
    1, as canonical CSR arrays for the builders: (data, indices, indptr,
    n_cols, slots, n_rows), ``slots[r]`` the row of row r (-1 when not
    taken).  None when the matrix is not canonical (then convert it whole).
    ``indptr`` must be checked by the caller (starts at 0, non-decreasing,
    within data and indices); row indices are checked here (ValueError).
    """
    cdef intp_t n_cols = indptr.shape[0] - 1
    cdef intp_t i, s, c = 0
    cdef _Taken taken = _take_entries(indices, indptr, n_rows, np.asarray(mask))
    if taken.k == -2:
        return None
    cdef intp_t k = taken.k, n_slots = taken.n_slots
    cdef const RowSet* rows = &taken.rows
    cdef int32_t[::1] e_row = taken.row
    cdef const intp_t[::1] e_pos = taken.pos
    out_indptr = np.zeros(n_slots + 1, dtype=np.intp)
    out_indices = np.empty(k, dtype=np.intp)
    out_data = np.empty(k, dtype=np.float64)
    cdef intp_t[::1] fill = out_indptr
    cdef intp_t[::1] o_ind = out_indices
    cdef float64_t[::1] o_data = out_data
    # Stable counting sort by slot in two passes that keep their writes
    # local: entries go first to buckets of 2**TAKE_BUCKET_SHIFT consecutive
    # slots (a few hundred sequential write streams), then from each bucket
    # to their rows, whose output is one contiguous stretch.  (One pass
    # straight to the rows scatters every write over the whole output.)
    cdef intp_t n_buckets = (n_slots >> TAKE_BUCKET_SHIFT) + 1, b
    bucket_arr = np.zeros(n_buckets + 1, dtype=np.intp)
    b_slot_arr = np.empty(max(k, 1), dtype=np.int32)
    b_col_arr = np.empty(max(k, 1), dtype=np.int32)
    b_data_arr = np.empty(max(k, 1), dtype=np.float64)
    cdef intp_t[::1] bucket = bucket_arr
    cdef int32_t[::1] b_slot = b_slot_arr
    cdef int32_t[::1] b_col = b_col_arr
    cdef float64_t[::1] b_data = b_data_arr
    with nogil:
        for i in range(k):
            s = _rank_below(rows.bits, rows.rank, e_row[i])
            e_row[i] = <int32_t>s  # from here on, the entry's slot
            fill[s + 1] += 1
            bucket[(s >> TAKE_BUCKET_SHIFT) + 1] += 1
        for s in range(n_slots):
            fill[s + 1] += fill[s]
        for b in range(n_buckets):
            bucket[b + 1] += bucket[b]
        for i in range(k):
            s = e_row[i]
            b = bucket[s >> TAKE_BUCKET_SHIFT]
            c = _column_of(&indptr[0], c, e_pos[i])
            b_slot[b] = <int32_t>s
            b_col[b] = <int32_t>c
            b_data[b] = <float64_t>data[e_pos[i]]
            bucket[s >> TAKE_BUCKET_SHIFT] = b + 1
        for i in range(k):
            s = b_slot[i]
            o_ind[fill[s]] = b_col[i]
            o_data[fill[s]] = b_data[i]
            fill[s] += 1
        for s in range(n_slots, 0, -1):  # fill[s] is now where row s ends: shift back
            fill[s] = fill[s - 1]
        fill[0] = 0
    slots_arr = np.full(n_rows, -1, dtype=np.intp)
    slots_arr[np.flatnonzero(mask)] = np.arange(n_slots)
    return out_data, out_indices, out_indptr, n_cols, slots_arr, n_rows


# a RandomState as uint64 words (draw_tree_rows' states)
RANDOM_STATE_WORDS = (sizeof(RandomState) + 7) // 8


cdef enum:
    CHUNK_SHIFT = 9  # 2**9 entries (8 KiB) per chunk of a tree's entries
    SLAB_SHIFT = 8   # 2**8 chunks (2 MiB, a large page) per allocation
    HAND_BLOCK = 1024  # a column's entries looked at together (their taken ones stay in L1)
    HAND_AHEAD = 2048  # entries asked for this far ahead of the pick (its streams)
    COPY_AHEAD = 128   # a tree's entries asked for this far ahead of their copy


cdef struct ChunkStore:
    # Trees' entries in chunks of 2**CHUNK_SHIFT (TreeEntryChunks)
    TreeEntry** slabs
    intp_t n_slabs, slabs_cap
    int32_t* next      # per chunk: the tree's next chunk, -1 after its last
    intp_t n_chunks, next_cap
    int32_t* first     # per tree: its first and last chunk (-1: none)
    int32_t* last
    intp_t* count      # per tree: how many entries
    bint huge          # slabs in large pages (when many are expected)


cdef inline TreeEntry* _store_chunk(const ChunkStore* st, intp_t c) noexcept nogil:
    return st.slabs[c >> SLAB_SHIFT] + ((c & ((1 << SLAB_SHIFT) - 1)) << CHUNK_SHIFT)


cdef TreeEntry* _store_new_chunk(ChunkStore* st, intp_t t) noexcept nogil:
    """A new chunk at the end of tree t's chain, asked for when its last
    one is full (counted in count[t]; the writer adds the entries of the
    last one when done); NULL without memory."""
    cdef intp_t c = st.n_chunks, cap
    cdef void* grown
    if c >= st.next_cap:
        cap = max(2 * st.next_cap, 1 << SLAB_SHIFT)
        if cap > 0x7FFFFFFF:
            return NULL
        grown = realloc(st.next, cap * sizeof(int32_t))
        if grown == NULL:
            return NULL
        st.next = <int32_t*>grown
        st.next_cap = cap
    if (c >> SLAB_SHIFT) >= st.n_slabs:
        if st.n_slabs >= st.slabs_cap:
            cap = max(2 * st.slabs_cap, 8)
            grown = realloc(st.slabs, cap * sizeof(TreeEntry*))
            if grown == NULL:
                return NULL
            st.slabs = <TreeEntry**>grown
            st.slabs_cap = cap
        st.slabs[st.n_slabs] = <TreeEntry*>_alloc_filled(sizeof(TreeEntry) << (SLAB_SHIFT + CHUNK_SHIFT), st.huge)
        if st.slabs[st.n_slabs] == NULL:
            return NULL
        st.n_slabs += 1
    st.n_chunks = c + 1
    st.next[c] = -1
    if st.last[t] < 0:
        st.first[t] = <int32_t>c
    else:
        st.next[st.last[t]] = <int32_t>c
        st.count[t] += 1 << CHUNK_SHIFT
    st.last[t] = <int32_t>c
    return _store_chunk(st, c)


cdef TreeEntry* _store_copy_scan(const ChunkStore* st, intp_t t, TreeEntry* out, const TreeEntry* first,
                                 intp_t* col_start, bint* plain) noexcept nogil:
    """_store_copy_tree for a build, to ``out`` of the tree's entries from
    ``first``: as it copies, each entry's column end ``col_start[col + 1]``
    is set (entries come in column order: the last of a column sets it, a
    store per entry and no count to read back; ``col_start`` zeroed before)
    and ``plain`` cleared unless every value is plain (_plain_value)."""
    cdef intp_t c = st.first[t], left = st.count[t], n, j, q
    cdef intp_t e = out - first
    cdef const TreeEntry* src
    cdef const TreeEntry* after  # the next chunk: its first lines asked for ahead
    cdef bint ok = plain[0]
    while left > 0:
        n = min(left, 1 << CHUNK_SHIFT)
        src = _store_chunk(st, c)
        after = _store_chunk(st, st.next[c]) if left > n else NULL
        for q in range(0, n, 4):  # a 64-byte line of entries at a time
            if q + COPY_AHEAD < n:
                _prefetch_l2(src + q + COPY_AHEAD)
            elif after != NULL and q + COPY_AHEAD - n < left - n:
                _prefetch_l2(after + q + COPY_AHEAD - n)
            for j in range(q, min(q + 4, n)):
                out[j] = src[j]
                ok &= _plain_value(src[j].val)
                col_start[src[j].col + 1] = e + j + 1
        out += n
        e += n
        left -= n
        c = st.next[c]
    plain[0] = ok
    return out


cdef TreeEntry* _store_copy_tree(const ChunkStore* st, intp_t t, TreeEntry* out) noexcept nogil:
    """Tree t's entries into ``out`` (room for count[t]); returns the end."""
    cdef intp_t c = st.first[t], left = st.count[t], n
    while left > 0:
        n = min(left, 1 << CHUNK_SHIFT)
        memcpy(out, _store_chunk(st, c), n * sizeof(TreeEntry))
        out += n
        left -= n
        c = st.next[c]
    return out


cdef enum:
    SPARE_SLABS = 16  # large-page slabs kept for the next take (32 MiB at most)

# Slabs of large pages that taken entries freed, for the next take: the
# kernel zeroes a fresh page on first touch (about 1 ms of a 10 ms take of
# 8 MiB), a kept one is written over.  Only touched with the GIL held (when
# a TreeEntryChunks is freed, before a take releases it).
cdef TreeEntry* _spare_slabs[SPARE_SLABS]
cdef intp_t _n_spare = 0
cdef intp_t _spare_cap = SPARE_SLABS


cdef void _take_spare_slabs(ChunkStore* st, intp_t wanted) noexcept:
    """Give a new store of large-page slabs up to ``wanted`` kept ones
    (with the GIL); without memory for the list it simply gets none."""
    global _n_spare
    wanted = min(wanted, _n_spare)
    if wanted <= 0 or not st.huge or st.slabs != NULL:
        return
    st.slabs = <TreeEntry**>malloc(SPARE_SLABS * sizeof(TreeEntry*))
    if st.slabs == NULL:
        return
    st.slabs_cap = SPARE_SLABS
    while st.n_slabs < wanted:
        _n_spare -= 1
        st.slabs[st.n_slabs] = _spare_slabs[_n_spare]
        st.n_slabs += 1


def _spare_slabs_kept(cap=None):
    """Tests: how many freed slabs are kept for the next take; ``cap`` (0 to
    SPARE_SLABS) sets how many may be from now on, freeing any beyond it."""
    global _spare_cap, _n_spare
    if cap is not None:
        if not 0 <= cap <= SPARE_SLABS:
            raise ValueError(f"cap must be in [0, {SPARE_SLABS}]")
        _spare_cap = cap
        while _n_spare > _spare_cap:
            _n_spare -= 1
            free(_spare_slabs[_n_spare])
    return int(_n_spare)


@cython.final
cdef class TreeEntryChunks:
    """Each tree's stored entries (TreeEntry, in column order) in a range
    of a CSC matrix's columns, taken by csc_tree_entries, in chunks of
    2**CHUNK_SHIFT entries: tree t's are ``count[t]`` entries along its
    chain of chunks.  Chunks let the one pass over the matrix hand each
    entry to its trees before any tree's count is known, in memory that
    nothing else touches (no per-entry staging).  Freed, its large-page
    slabs are kept for the next take (SPARE_SLABS at most)."""
    cdef ChunkStore st
    cdef readonly intp_t n_trees, n_draw
    cdef object draws  # the TreeDraws it was taken for (csc_tree_entries), or None

    def __cinit__(self, intp_t n_trees, intp_t n_draw, bint huge=False):
        self.n_trees = n_trees
        self.n_draw = n_draw
        self.st.huge = huge
        self.st.first = <int32_t*>malloc(max(n_trees, 1) * sizeof(int32_t))
        self.st.last = <int32_t*>malloc(max(n_trees, 1) * sizeof(int32_t))
        self.st.count = <intp_t*>calloc(max(n_trees, 1), sizeof(intp_t))
        if self.st.first == NULL or self.st.last == NULL or self.st.count == NULL:
            raise MemoryError("not enough memory for the trees' entries")
        memset(self.st.first, -1, max(n_trees, 1) * sizeof(int32_t))
        memset(self.st.last, -1, max(n_trees, 1) * sizeof(int32_t))

    def __dealloc__(self):
        cdef intp_t i
        global _n_spare
        if self.st.slabs != NULL:
            for i in range(self.st.n_slabs):  # kept for the next take, or freed
                if self.st.huge and _n_spare < _spare_cap:
                    _spare_slabs[_n_spare] = self.st.slabs[i]
                    _n_spare += 1
                else:
                    free(self.st.slabs[i])
        free(self.st.slabs)
        free(self.st.next)
        free(self.st.first)
        free(self.st.last)
        free(self.st.count)

    def counts(self):
        """How many entries each tree holds."""
        return np.asarray(<intp_t[:max(self.n_trees, 1)]>self.st.count)[: self.n_trees].copy()

    def tree(self, intp_t t):
        """Tree t's entries, a TREE_ENTRY_DTYPE array (a copy)."""
        if not 0 <= t < self.n_trees:
            raise IndexError(f"tree {t} out of range for {self.n_trees} trees")
        out = np.empty(max(self.st.count[t], 1), dtype=TREE_ENTRY_DTYPE)
        cdef TreeEntry[::1] view = out
        _store_copy_tree(&self.st, t, &view[0])
        return out[: self.st.count[t]]


cdef inline bint _append_entry(ChunkStore* chunks, TreeEntry** cur, TreeEntry** end, intp_t t,
                               int32_t col, int32_t pos, float64_t val) noexcept nogil:
    """Append (col, pos, val) to tree t's chunks, where ``cur[t]`` is
    written up to ``end[t]``; False without memory."""
    cdef TreeEntry* o = cur[t]
    if o == end[t]:
        o = _store_new_chunk(chunks, t)
        if o == NULL:
            return False
        end[t] = o + (1 << CHUNK_SHIFT)
    _prefetch_write(o + 4)  # the tree's next cache line: no wait when it gets there
    o.col = col
    o.pos = pos
    o.val = val
    cur[t] = o + 1
    return True


cdef int _hand_out(const floating_t* data, const csc_index_t* indices, const intp_t* indptr,
                   intp_t col_lo, intp_t col_hi, intp_t n_rows, const RowSet* taken, const int32_t* slot_use,
                   const int32_t* more_use, ChunkStore* chunks, TreeEntry** cur,
                   TreeEntry** end) noexcept nogil:
    """Hand each entry of the CSC matrix's columns col_lo:col_hi whose row
    is ``taken`` to the trees that drew the row (``slot_use``/``more_use`` of the row's slot, as
    csc_tree_entries sets them up), appending (column, position, value) to
    each tree's chunks (``cur``/``end``: where the tree's current chunk is
    written / ends).  A block of a column's entries at a time: its taken
    entries are picked branch-free into a small buffer (in L1) in the loop
    that checks its rows, and handed out from there once they pass.  0, or -1 when a row index is out
    of range, -2 when a column's rows are not strictly increasing (not
    canonical), -3 without memory."""
    cdef float64_t buf_val[HAND_BLOCK]
    cdef int32_t buf_row[HAND_BLOCK]  # the rows, then their slots
    cdef intp_t c, p, q, p0, p1, pe, r, prev, k, i, s, u
    cdef intp_t p_last = indptr[col_hi]  # the range's end: nothing asked for beyond it
    cdef int32_t use
    cdef float64_t v
    cdef bint bad
    for c in range(col_lo, col_hi):
        p0 = indptr[c]
        p1 = indptr[c + 1]
        prev = -1
        while p0 < p1:
            pe = p0 + HAND_BLOCK if p1 - p0 > HAND_BLOCK else p1
            # its taken entries picked branch-free, as its rows are checked
            # (strictly increasing from the block before; _rowset_has reads
            # inside the bitset for any row until they pass)
            # (16 at a time, asking for the streams' lines HAND_AHEAD entries on:
            # the hardware's prefetch alone falls behind while entries are handed out)
            k = 0
            bad = False
            for q in range(p0, pe, 16):
                if q + HAND_AHEAD + 16 <= p_last:
                    _prefetch_l2(&indices[q + HAND_AHEAD])
                    _prefetch_l2(&indices[q + HAND_AHEAD + 8])
                    _prefetch_l2(&data[q + HAND_AHEAD])
                    _prefetch_l2(&data[q + HAND_AHEAD + 8])
                for p in range(q, min(q + 16, pe)):
                    r = <intp_t>indices[p]
                    bad |= r <= prev
                    prev = r
                    buf_val[k] = <float64_t>data[p]
                    buf_row[k] = <int32_t>r
                    k += _rowset_has(taken, r)
            if bad | (prev >= n_rows):
                return _bad_column(indices, indptr[c], indptr[c + 1], n_rows)
            _slots(buf_row, k, taken.bits, taken.rank, slot_use)  # their uses asked for early
            for i in range(k):
                s = buf_row[i]
                v = buf_val[i]
                use = slot_use[2 * s]
                if use >= 0:  # the row is drawn once
                    if not _append_entry(chunks, cur, end, use, <int32_t>c, slot_use[2 * s + 1], v):
                        return -3
                    continue
                for u in range(-1 - use, -1 - use + slot_use[2 * s + 1]):
                    if not _append_entry(chunks, cur, end, more_use[2 * u], <int32_t>c, more_use[2 * u + 1], v):
                        return -3
            p0 = pe
    return 0


def _slots_popcnt(bint wanted):
    """Tests: whether csc_tree_entries ranks rows with the popcnt
    instruction (where the CPU has it, chosen at first use) or the portable
    code; returns whether it did."""
    return bool(_slots_use_popcnt(wanted))


@cython.final
cdef class TreeDraws:
    """The rows the trees of a fit draw, as csc_tree_entries hands entries
    out to them (csc_tree_draws)."""
    cdef _Taken taken        # the set of drawn rows; a row's slot is its rank in it
    cdef object slot_use_arr, more_use_arr
    cdef object seeds_arr, states_arr  # the trees' seeds and states after the draws, or None
    cdef readonly intp_t n_trees, n_draw, n_subsample


def csc_tree_draws(intp_t n_rows, const int32_t[:, ::1] tree_rows, seeds=None, states=None):
    """The draws ``tree_rows`` (the (n_trees, m) rows of range(n_rows) each
    tree draws, from draw_tree_rows) set up for csc_tree_entries: the set of
    drawn rows and the uses of each, as (tree, position) pairs (int32: fewer
    than 2**31 draws).  Most rows are drawn once, and slot_use[s] holds that
    one use; a row drawn u > 1 times holds (-1 - j, u), its uses being
    more_use[j:j + u].  So an entry finds its row's use in one read.
    ``seeds`` and ``states`` (draw_tree_rows' with_states): the trees'
    random states after their draws, which build_axis_trees then takes up
    for the trees of these seeds instead of drawing their rows again."""
    cdef TreeDraws draws = TreeDraws()
    cdef intp_t n_trees = tree_rows.shape[0], m = tree_rows.shape[1]
    cdef intp_t i, t, s, u, n_more = 0
    draws.n_trees = n_trees
    draws.n_draw = n_rows
    draws.n_subsample = m
    if (seeds is None) != (states is None):
        raise ValueError("seeds and states go together")
    if seeds is not None:
        draws.seeds_arr = np.array(seeds, dtype=np.uint64, copy=True)
        draws.states_arr = np.array(states, dtype=np.uint64, order="C", copy=True)
        if draws.seeds_arr.shape != (n_trees,) or draws.states_arr.shape != (n_trees, RANDOM_STATE_WORDS):
            raise ValueError(f"seeds and states must be ({n_trees},) and ({n_trees}, {RANDOM_STATE_WORDS})")
    drawn = np.asarray(tree_rows).ravel()
    if drawn.shape[0] > 0 and (drawn.min() < 0 or drawn.max() >= n_rows):
        raise ValueError(f"tree_rows must be rows of range({n_rows})")
    draws.taken = _Taken()
    _row_set(draws.taken, n_rows, None, &tree_rows[0, 0] if n_trees * m > 0 else NULL, n_trees * m)
    cdef intp_t n_slots = draws.taken.n_slots
    cdef const RowSet* rows = &draws.taken.rows
    draws.slot_use_arr = np.zeros((n_slots + 1, 2), dtype=np.int32)
    draws.more_use_arr = np.empty((max(n_trees * m, 1), 2), dtype=np.int32)
    cdef int32_t[:, ::1] slot_use = draws.slot_use_arr
    cdef int32_t[:, ::1] more_use = draws.more_use_arr
    slots_arr = np.array(tree_rows, dtype=np.int32, order="C")  # each draw's slot, below
    cdef int32_t[:, ::1] slots = slots_arr
    with nogil:
        if n_trees * m > 0:
            _slots(&slots[0, 0], n_trees * m, rows.bits, rows.rank, &slot_use[0, 0])
        for t in range(n_trees):  # uses per slot
            for i in range(m):
                slot_use[slots[t, i], 1] += 1
        for s in range(n_slots):  # room for the rows drawn more than once
            if slot_use[s, 1] > 1:
                slot_use[s, 0] = <int32_t>(-1 - n_more)
                n_more += slot_use[s, 1]
                slot_use[s, 1] = 0  # filled below
        for t in range(n_trees):
            for i in range(m):
                s = slots[t, i]
                if slot_use[s, 0] >= 0:  # drawn once
                    slot_use[s, 0] = <int32_t>t
                    slot_use[s, 1] = <int32_t>i
                else:
                    u = -1 - slot_use[s, 0] + slot_use[s, 1]
                    more_use[u, 0] = <int32_t>t
                    more_use[u, 1] = <int32_t>i
                    slot_use[s, 1] += 1
    return draws


def csc_tree_entries(const floating_t[::1] data, const csc_index_t[::1] indices,
                     const intp_t[::1] indptr, TreeDraws draws, intp_t col_lo, intp_t col_hi):
    """Each tree's subsample taken from the columns col_lo:col_hi of a
    (draws.n_draw, len(indptr) - 1) CSC matrix as the tree's own stored
    entries, for build_axis_trees' ``entries``: a TreeEntryChunks holding,
    per tree, TREE_ENTRY_DTYPE entries in column order: ``col``, ``pos`` the
    position of the entry's row in the subsample (the tree's row of the
    draws; a row drawn twice gives its entries twice) and ``val``.  One pass
    over the columns hands each entry of a drawn row to the trees that drew
    it (_hand_out); releases the GIL, so that column ranges can be taken in
    threads.  None when the matrix is not canonical (then convert it whole);
    ``indptr`` checked as for csc_take_rows, row indices checked here."""
    cdef intp_t n_trees = draws.n_trees, n_rows = draws.n_draw
    cdef intp_t n_cols = indptr.shape[0] - 1
    cdef intp_t t
    cdef int status = 0
    if not 0 <= col_lo <= col_hi <= n_cols:
        raise ValueError(f"columns {col_lo}:{col_hi} out of range for {n_cols} columns")
    cdef const int32_t[:, ::1] slot_use = draws.slot_use_arr
    cdef const int32_t[:, ::1] more_use = draws.more_use_arr
    cdef const RowSet* rows = &draws.taken.rows
    # large pages when the entries should fill several (their expected count)
    cdef double expected = (<double>draws.n_trees * draws.n_subsample * (indptr[col_hi] - indptr[col_lo])
                            / max(n_rows, 1))
    cdef bint huge = expected > 2.0 * (1 << (SLAB_SHIFT + CHUNK_SHIFT))
    cdef TreeEntryChunks chunks = TreeEntryChunks(n_trees, n_rows, huge)
    cdef ChunkStore* st = &chunks.st
    chunks.draws = draws
    _take_spare_slabs(st, 1 + <intp_t>(expected / (1 << (SLAB_SHIFT + CHUNK_SHIFT))))
    cdef TreeEntry** cur = <TreeEntry**>calloc(max(n_trees, 1), sizeof(TreeEntry*))
    cdef TreeEntry** end = <TreeEntry**>calloc(max(n_trees, 1), sizeof(TreeEntry*))
    if cur == NULL or end == NULL:
        free(cur)
        free(end)
        raise MemoryError("not enough memory for the trees' entries")
    with nogil:
        if col_hi > col_lo and n_rows > 0 and indptr[col_hi] > indptr[col_lo]:
            status = _hand_out(&data[0], &indices[0], &indptr[0], col_lo, col_hi, n_rows, rows,
                               &slot_use[0, 0], &more_use[0, 0], st, cur, end)
        for t in range(n_trees):  # the full chunks are counted: add the last one's entries
            if st.last[t] >= 0:
                st.count[t] += cur[t] - _store_chunk(st, st.last[t])
    free(cur)
    free(end)
    if status == -1:
        raise ValueError("sparse matrix has inconsistent indptr/indices arrays: a row index is out of range")
    if status == -3:
        raise MemoryError("not enough memory for the trees' entries")
    if status == -2:
        return None
    return chunks


cdef inline intp_t _partition(intp_t* order, intp_t* spare, const float64_t* key,
                              intp_t start, intp_t end, float64_t split,
                              bint missing_left=False) noexcept nogil:
    """Stable, branch-free partition of order[start:end]: entries whose key is
    <= split first, and NaN keys too when ``missing_left`` (else last).
    ``spare`` is scratch of the same length as ``order``.  Returns the cut."""
    cdef intp_t i, v, n_left = start, n_right = 0
    cdef intp_t goes_left
    for i in range(start, end):
        v = order[i]
        goes_left = key[v] <= split or (missing_left and key[v] != key[v])
        order[n_left] = v
        spare[n_right] = v
        n_left += goes_left
        n_right += 1 - goes_left
    for i in range(n_right):
        order[n_left + i] = spare[i]
    return n_left


cdef inline void _push(intp_t* stack, intp_t* top, intp_t node, intp_t start,
                       intp_t end, intp_t depth) noexcept nogil:
    """Push a pending node that owns order[start:end] at ``depth``."""
    cdef intp_t* slot = stack + 4 * top[0]
    slot[0] = node
    slot[1] = start
    slot[2] = end
    slot[3] = depth
    top[0] += 1


cdef inline void _pop(const intp_t* stack, intp_t* top, intp_t* node, intp_t* start,
                      intp_t* end, intp_t* depth) noexcept nogil:
    top[0] -= 1
    cdef const intp_t* slot = stack + 4 * top[0]
    node[0] = slot[0]
    start[0] = slot[1]
    end[0] = slot[2]
    depth[0] = slot[3]


# --------------------------------------------------------------------------
# Axis-parallel trees (Isolation Forest)
# --------------------------------------------------------------------------

cdef int _finite_range(const float64_t* col, const intp_t* order, intp_t start,
                       intp_t end, float64_t* lo, float64_t* hi) noexcept nogil:
    """For a node whose values of a feature include +-inf and are not all
    equal: set lo/hi to the min/max of its finite values.  Returns 1 when a
    split is drawn in [lo, hi) as usual, 2 when ``lo`` itself is the (finite)
    split, 0 when no finite split separates the values.

    With one finite value v: v when +inf is present (v and -inf go left),
    else the double just below v (-inf left, v right).  With no finite
    value (both infinities): 0.0.  Values that are NaN are ignored."""
    cdef float64_t a = INFINITY, b = -INFINITY, v
    cdef bint pos = False
    cdef intp_t i
    for i in range(start, end):
        v = col[order[i]]
        if v == INFINITY:
            pos = True
        elif v > -INFINITY:  # finite (NaN fails every comparison)
            a = v if v < a else a
            b = v if v > b else b
    if b > a:
        lo[0] = a
        hi[0] = b
        return 1
    if a > b:  # no finite value: both infinities
        lo[0] = 0.0
        return 2
    lo[0] = a if pos else nextafter(a, -INFINITY)
    return 2 if lo[0] > -INFINITY else 0


cdef int _range_with_missing(const float64_t* col, const intp_t* order, intp_t start,
                            intp_t end, float64_t* lo, float64_t* hi,
                            intp_t* n_missing) noexcept nogil:
    """As the split search's min/max for a feature whose subsample holds NaN
    (scikit-learn 1.9's random splitter): the range of the node's non-missing
    values; the feature is unusable when all are missing, or when the others
    are all equal and none is missing.  When the non-missing values are all
    equal (and some are missing) they all go left of the split (returns 2).
    Returns the mode of _finite_range."""
    cdef float64_t a = INFINITY, b = -INFINITY, v
    cdef intp_t i, n_nan = 0
    for i in range(start, end):
        v = col[order[i]]
        if v != v:
            n_nan += 1
        else:
            a = v if v < a else a
            b = v if v > b else b
    n_missing[0] = n_nan
    if n_nan == end - start:
        return 0
    if b > a:
        lo[0] = a
        hi[0] = b
        if a == -INFINITY or b == INFINITY:
            return _finite_range(col, order, start, end, lo, hi)
        return 1
    if n_nan == 0:
        return 0
    lo[0] = a if isfinite(a) else 0.0  # an infinity lies on its side of 0.0
    return 2


cdef inline void _make_axis_leaf(AxisNode* nodes, float64_t* values, intp_t node,
                                 intp_t depth, intp_t size) noexcept nogil:
    nodes[node].threshold = INFINITY
    nodes[node].feature = 0
    nodes[node].left = <int32_t>node
    values[node] = depth + average_path_length(size)


# --------------------------------------------------------------------------
# Axis trees from their own stored entries (csc_tree_entries): a tree keeps
# its subsample as the stored entries of its drawn rows, by column, and a
# node tests a candidate feature on the feature's entries alone: the
# feature is constant in the node unless the node holds one of them, and
# its range is that of the node's entries, widened to 0 when some node row
# stores nothing.  Only the chosen feature's values are laid out for the
# partition.  The draws and each node's rows are those of the dense build,
# so the tree is the same bit for bit.  A tree whose entries are not all
# finite, or hold a -0.0 (whose sign the dense min/max may keep), is built
# by the dense code from its entries laid out in the column buffer.
# --------------------------------------------------------------------------

cdef struct TreeEntries:
    const TreeEntry* e    # the tree's entries, ``col`` ascending
    intp_t n
    intp_t n_draw         # the trees drew their rows from range(n_draw)
    bint plain            # every value is plain (_plain_value), as read while copied


cdef bint _entries_prepare(const TreeEntries* te, BuildScratch* s, intp_t m, intp_t d,
                           intp_t n_tree_features) noexcept nogil:
    """Set up the tree's build from its entries: True for the sparse-aware
    build (``col_start``, ``where``), False after laying the entries out in
    the zeroed column buffer as _gather would (undone by _entries_clear)."""
    cdef intp_t e, i, j
    cdef int32_t pos
    cdef float64_t v
    cdef bint plain = te.plain
    # col_start[c + 1] was set as the entries were copied in (_store_copy_scan)
    for i in range(m):
        s.order[i] = i
        s.where[i] = i
    if plain:
        for j in range(d):
            s.col_start[j + 1] = s.col_start[j + 1] if s.col_start[j + 1] > s.col_start[j] else s.col_start[j]
        return True
    if not s.columns_zero:
        memset(s.columns, 0, m * d * sizeof(float64_t))
        s.columns_zero = True
    _map_tree_features(s, d, n_tree_features)
    for e in range(te.n):
        pos = s.position[te.e[e].col]
        if pos >= 0:
            v = te.e[e].val
            s.columns[pos * m + te.e[e].pos] = v
            if v != v:
                s.has_missing[pos] = 1
    return False


cdef void _entries_clear(const TreeEntries* te, BuildScratch* s, intp_t m) noexcept nogil:
    """Zero what _entries_prepare laid out in the column buffer."""
    cdef intp_t e
    cdef int32_t pos
    for e in range(te.n):
        pos = s.position[te.e[e].col]
        if pos >= 0:
            s.columns[pos * m + te.e[e].pos] = 0.0


cdef inline int _entries_range(const TreeEntries* te, const BuildScratch* s, int32_t f,
                               intp_t start, intp_t end, float64_t* lo,
                               float64_t* hi) noexcept nogil:
    """Feature ``f``'s min/max over the node's rows order[start:end] from
    its entries: 1 when they differ, else 0 (the feature is constant)."""
    cdef intp_t e, size = end - start, n_in = 0
    cdef float64_t a = INFINITY, b = -INFINITY, v
    for e in range(s.col_start[f], s.col_start[f + 1]):
        if <uintp_t>(s.where[te.e[e].pos] - start) < <uintp_t>size:
            v = te.e[e].val
            n_in += 1
            a = v if v < a else a
            b = v if v > b else b
    if n_in < size:  # a node row stores nothing: a 0
        a = 0.0 if 0.0 < a else a
        b = 0.0 if 0.0 > b else b
    lo[0] = a
    hi[0] = b
    return b > a


cdef const float64_t* _entries_key(const TreeEntries* te, BuildScratch* s, int32_t f,
                                   intp_t start, intp_t end) noexcept nogil:
    """Feature ``f``'s values of the node's rows, indexed by subsample row
    (other rows' entries are stale)."""
    cdef intp_t i, e
    for i in range(start, end):
        s.key[s.order[i]] = 0.0
    for e in range(s.col_start[f], s.col_start[f + 1]):
        s.key[te.e[e].pos] = te.e[e].val
    return s.key


cdef void _build_axis_tree(const floating_t[:, ::1] X, const CSRRows* csr,
                           const TreeEntries* te, uint64_t seed, const RandomState* drawn, intp_t m,
                           bint bootstrap, const float64_t* weights,
                           const float64_t* cum_weights, intp_t n_tree_features,
                           intp_t max_depth, intp_t capacity,
                           BuildScratch* s, AxisNode* nodes, float64_t* values,
                           uint8_t* missing, float64_t* ranges,
                           int32_t* n_nodes_out, int32_t* depth_out) noexcept nogil:
    cdef RandomState rng
    cdef intp_t n = X.shape[0], d = X.shape[1]
    cdef intp_t top = 0, next_free = 1, tree_depth = 0
    cdef intp_t node, start, end, depth, size, i, n_left, n_cand, pick, cut
    cdef int32_t f, tmp
    cdef float64_t lo, hi, v, threshold
    cdef const float64_t* col
    cdef int mode = 1  # how the split is drawn (see _finite_range)
    cdef intp_t n_missing = 0  # NaN in the chosen feature in this node
    cdef bint missing_left
    cdef bint sparse = False  # built from ``te`` by the sparse-aware tests
    cdef const float64_t* key

    if csr != NULL:
        n = csr.n_draw
    if te != NULL:
        n = te.n_draw
    rng_seed(&rng, seed)
    _draw_features(&rng, d, n_tree_features, s.features)
    if drawn != NULL:  # the rows were drawn before (draw_tree_rows): their state after
        rng = drawn[0]
    else:
        _draw_rows(&rng, n, m, bootstrap, weights, cum_weights, s.rows, s.table,
                   s.table_size, s.proj)
    if te != NULL:
        sparse = _entries_prepare(te, s, m, d, n_tree_features)
    elif csr != NULL:
        _gather_csr(csr, s, m, n_tree_features)
    else:
        _gather(X, s, m, n_tree_features)

    # Each node draws features without replacement from the candidates in
    # this order; the few places a node's draws change are put back after
    # it, instead of writing all n_tree_features again per node.
    for i in range(n_tree_features):
        s.candidates[i] = <int32_t>i
    _push(s.stack, &top, 0, 0, m, 0)  # the root holds the whole subsample
    while top > 0:
        _pop(s.stack, &top, &node, &start, &end, &depth)
        size = end - start
        if depth > tree_depth:
            tree_depth = depth
        ranges[2 * node] = 0.0  # a leaf's; a split's is set below
        ranges[2 * node + 1] = 0.0
        if size <= 1 or depth >= max_depth or next_free + 2 > capacity:
            _make_axis_leaf(nodes, values, node, depth, size)
            missing[node] = 0
            continue
        # Draw features without replacement until one is not constant here.
        n_cand = n_tree_features
        f = -1
        while n_cand > 0:
            pick = rng_below(&rng, n_cand)
            col = s.columns + s.candidates[pick] * m
            n_missing = 0
            if sparse:
                mode = _entries_range(te, s, s.features[s.candidates[pick]], start, end, &lo, &hi)
            elif s.has_missing[s.candidates[pick]]:
                mode = _range_with_missing(col, s.order, start, end, &lo, &hi, &n_missing)
            else:
                lo = col[s.order[start]]
                hi = lo
                for i in range(start + 1, end):
                    v = col[s.order[i]]
                    lo = v if v < lo else lo
                    hi = v if v > hi else hi
                mode = 0
                if hi > lo:
                    mode = 1
                    if lo == -INFINITY or hi == INFINITY:
                        mode = _finite_range(col, s.order, start, end, &lo, &hi)
            if mode != 0:
                f = s.candidates[pick]
                break
            n_cand -= 1
            s.picks[n_tree_features - 1 - n_cand] = <int32_t>pick
            tmp = s.candidates[pick]
            s.candidates[pick] = s.candidates[n_cand]
            s.candidates[n_cand] = tmp
        # the rejected picks and the tail they were swapped into: in order again
        for i in range(n_tree_features - n_cand):
            s.candidates[s.picks[i]] = s.picks[i]
        for i in range(n_cand, n_tree_features):
            s.candidates[i] = <int32_t>i
        if f < 0:  # all points in this node are identical
            _make_axis_leaf(nodes, values, node, depth, size)
            missing[node] = 0
            continue
        if mode == 1:
            threshold = lo + rng_uniform(&rng) * (hi - lo)
            if threshold >= hi:  # rounding; keep both children non-empty
                threshold = lo
        else:
            threshold = lo
        if n_missing > 0:
            # scikit-learn: the node's missing values go to a side drawn at random
            missing_left = rng_below(&rng, 2) == 1
            cut = _partition(s.order, s.spare, s.columns + f * m, start, end,
                             threshold, missing_left)
            if cut == start or cut == end:  # one side empty: rejected, a leaf
                _make_axis_leaf(nodes, values, node, depth, size)
                missing[node] = 0
                continue
        else:
            key = s.columns + f * m
            if sparse:
                key = _entries_key(te, s, s.features[f], start, end)
            cut = _partition(s.order, s.spare, key, start, end, threshold)
            if sparse:
                for i in range(start, end):
                    s.where[s.order[i]] = i
            # no NaN here at fit: a NaN later follows the larger side (ties right)
            missing_left = cut - start > end - cut
        nodes[node].threshold = threshold
        nodes[node].feature = s.features[f]
        nodes[node].left = <int32_t>next_free
        values[node] = 0.0
        missing[node] = missing_left
        # the node's range of the split feature, the threshold's draw (explain's)
        ranges[2 * node] = lo if mode == 1 else threshold
        ranges[2 * node + 1] = hi if mode == 1 else threshold
        # push right then left, so the left subtree is built first
        _push(s.stack, &top, next_free + 1, cut, end, depth + 1)
        _push(s.stack, &top, next_free, start, cut, depth + 1)
        next_free += 2
    n_nodes_out[0] = <int32_t>next_free
    depth_out[0] = <int32_t>tree_depth
    if te != NULL and not sparse:
        _entries_clear(te, s, m)
    elif csr != NULL:
        _clear_csr(csr, s, m)


def build_axis_trees(const floating_t[:, ::1] X, const uint64_t[::1] seeds,
                     intp_t max_samples, bint bootstrap,
                     const float64_t[::1] weights, const float64_t[::1] cum_weights,
                     intp_t max_features,
                     intp_t max_depth, AxisNode[:, ::1] nodes,
                     float64_t[:, ::1] values, uint8_t[:, ::1] missing,
                     float64_t[:, ::1] ranges,
                     int32_t[::1] n_nodes, int32_t[::1] depths, csr=None, entries=None):
    """Build ``len(seeds)`` isolation trees, tree t into row t of the outputs.
    Rows are drawn uniformly, or proportionally to ``weights`` when it is not
    empty (``cum_weights`` its cumulative sum).

    Each tree uses only its own seed, so the forest does not depend on how
    trees are spread over calls (threads).  ``missing[t, node]`` is 1 when a
    NaN in the node's feature goes left (scikit-learn 1.9's rule: a side
    drawn at random where the node held NaN at fit, else the side that
    received more rows, ties to the right), 0 when it goes right or at a leaf.
    ``ranges[t, 2 * node : 2 * node + 2]``: the (finite) range [lo, hi] of the
    split feature's values in the node, which the threshold was drawn from
    (lo = hi = threshold for a split that separates infinities or missing
    values); 0, 0 at a leaf.
    ``csr``: (data, indices, indptr, n_cols) of a canonical CSR matrix read
    instead of ``X`` (then an empty (0, n_cols) array), see _gather_csr.
    ``entries``: (parts, t0), the TreeEntryChunks of csc_tree_entries for
    the whole forest, one per range of columns in column order, and the
    index in them of these trees' first, read instead of ``X`` (then an
    empty (0, n_cols) array).
    """
    cdef BuildScratch s
    cdef intp_t t
    cdef bint ok
    cdef const float64_t* w = NULL
    cdef const float64_t* cw = NULL
    cdef CSRRows rows_csr
    cdef const CSRRows* c = NULL
    cdef TreeEntryChunks part
    cdef intp_t e_t0 = 0, e_max = 0, n_parts = 0, i, n_tree
    cdef const ChunkStore** stores = NULL
    cdef TreeEntry* e_buf = NULL
    cdef TreeEntry* e_end
    cdef TreeEntries te
    cdef TreeDraws drawn_by
    cdef const uint64_t[:, ::1] states
    cdef const uint64_t* drawn = NULL  # per tree: its state after its draws (RANDOM_STATE_WORDS)
    cdef intp_t words = RANDOM_STATE_WORDS
    cdef bint has_entries = entries is not None
    if has_entries:
        parts, e_t0 = entries
        parts = tuple(parts)  # alive (a local) while their stores are read
        n_parts = len(parts)
        if n_parts == 0 or not all(isinstance(part, TreeEntryChunks) for part in parts):
            raise TypeError("entries must hold TreeEntryChunks")
        for part in parts:
            if e_t0 < 0 or e_t0 + seeds.shape[0] > part.n_trees or part.n_draw != parts[0].n_draw:
                raise ValueError("entries do not match the trees")
        stores = <const ChunkStore**>malloc(n_parts * sizeof(ChunkStore*))
        if stores == NULL:
            raise MemoryError("not enough memory to build isolation trees")
        for i in range(n_parts):
            part = parts[i]
            stores[i] = &part.st
        te.n_draw = parts[0].n_draw
        # the trees' states after their draws, when the parts were taken for
        # the draws of these very seeds and subsample size
        drawn_by = (<TreeEntryChunks>parts[0]).draws
        if (drawn_by is not None and drawn_by.states_arr is not None and drawn_by.n_subsample == max_samples
                and all((<TreeEntryChunks>part).draws is drawn_by for part in parts)
                and np.array_equal(drawn_by.seeds_arr[e_t0 : e_t0 + seeds.shape[0]], np.asarray(seeds))):
            states = drawn_by.states_arr
            if seeds.shape[0] > 0:
                drawn = &states[e_t0, 0]
        for t in range(seeds.shape[0]):
            n_tree = 0
            for i in range(n_parts):
                n_tree += stores[i].count[e_t0 + t]
            e_max = max(e_max, n_tree)
    if csr is not None:
        _csr_view(csr, &rows_csr)
        c = &rows_csr
    if weights.shape[0] > 0:  # empty arrays mean "no sample weights"
        w = &weights[0]
        cw = &cum_weights[0]
    with nogil:
        ok = _scratch_alloc(&s, max_samples, X.shape[1])
        if ok and c != NULL:  # _gather_csr's zeros
            memset(s.columns, 0, max_samples * X.shape[1] * sizeof(float64_t))
        if ok and has_entries:  # each tree's entries laid out here in turn
            e_buf = <TreeEntry*>malloc(max(e_max, 1) * sizeof(TreeEntry))
            ok = e_buf != NULL
        if ok:
            for t in range(seeds.shape[0]):
                if has_entries:  # the parts' columns in turn: column order
                    memset(s.col_start, 0, (X.shape[1] + 1) * sizeof(intp_t))
                    te.plain = True
                    e_end = e_buf
                    for i in range(n_parts):
                        e_end = _store_copy_scan(stores[i], e_t0 + t, e_end, e_buf, s.col_start, &te.plain)
                    te.e = e_buf
                    te.n = e_end - e_buf
                _build_axis_tree(X, c, &te if has_entries else NULL, seeds[t],
                                 <const RandomState*>(drawn + t * words) if drawn != NULL else NULL,
                                 max_samples, bootstrap, w, cw, max_features,
                                 max_depth, nodes.shape[1], &s, &nodes[t, 0], &values[t, 0],
                                 &missing[t, 0], &ranges[t, 0], &n_nodes[t], &depths[t])
        _scratch_free(&s)
        free(e_buf)
    free(stores)
    if not ok:
        raise MemoryError("not enough memory to build isolation trees")


cdef enum:
    ROW_GROUP = 12  # rows walked together: their node indices fill the free registers


def block_rows_for(intp_t n_features):
    """Rows per transposed scoring block: a multiple of ROW_GROUP whose block
    (n_features columns of 8-byte values) stays near 16 KiB, so that the
    block and one tree fit in L1 together."""
    cdef intp_t rows = (16384 // (8 * max(n_features, 1))) // ROW_GROUP * ROW_GROUP
    return max(ROW_GROUP, min(256 // ROW_GROUP * ROW_GROUP, rows))


# Axis trees are scored in one of two layouts, both over a block of rows
# transposed column by column (block[f * block_rows + r], 8 bytes a value):
#
# * "heap" (every tree of depth <= HEAP_MAX_DEPTH, i.e. max_samples <= 256):
#   complete trees in heap order, thresholds and row values as uint64 order
#   keys; a step is p = p + p + (x > threshold), four instructions.
# * "links" (deeper trees): the compact nodes, a leaf linking to itself with
#   a +inf threshold; a step is left[p] + (x > threshold) on doubles.
#
# Either way every row takes exactly ``depth`` branch-free steps per tree.

cdef extern from "_heap_step.h" nogil:
    # the heap step is in C: on x86-64 its compare feeds an ``adc``
    enum: AF_HEAP_COLUMNS
    uintp_t _heap_step "af_heap_step"(const char* tree, uintp_t node, const char* cell,
                                      int offset)


cdef enum:
    HEAP_MAX_DEPTH = 8  # deepest tree scored in the heap layout (max_samples <= 256)
    # Per tree, one region: threshold keys (uint64) from byte 0, column byte
    # offsets (uint32) from byte AF_HEAP_COLUMNS = 8 << HEAP_MAX_DEPTH.  The
    # fixed distance lets one base register address both arrays.
    HEAP_REGION = 12 << HEAP_MAX_DEPTH

if AF_HEAP_COLUMNS != 8 << HEAP_MAX_DEPTH:
    raise ImportError("_heap_step.h and _isolation.pyx disagree on the heap region layout")


cdef struct AxisScoring:
    # "links" layout
    const float64_t* thresholds  # per compact node
    const uint32_t* links        # per compact node: column byte offset, left child
    const float64_t* values      # per compact node: path length at a leaf
    const int64_t* offsets       # first compact node of each tree
    # "heap" layout (regions == NULL: use links)
    const char* regions          # HEAP_REGION bytes per tree
    const float64_t* leaves      # 2**(HEAP_MAX_DEPTH + 1) per tree, by final heap index
    # both
    const int32_t* depths
    intp_t n_trees


cdef inline uint64_t _order_key(float64_t v) noexcept nogil:
    """A uint64 whose unsigned order is the order of non-NaN doubles: set
    the sign bit of positives, flip every bit of negatives; -0.0 is first
    made +0.0 so that the two zeros compare equal, as they do as doubles."""
    cdef uint64_t b
    cdef uint64_t sign = (<uint64_t>1) << 63
    v = v + 0.0
    memcpy(&b, &v, 8)
    return ~b if b & sign else b | sign


def order_keys(const float64_t[::1] values):
    """_order_key of each value (exposed for tests)."""
    out = np.empty(values.shape[0], dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef intp_t i
    for i in range(values.shape[0]):
        o[i] = _order_key(values[i])
    return out


def scoring_links(nodes, intp_t block_rows):
    """The "links" layout of axis nodes: per node, the byte offset of its
    split feature's column in a transposed row block and its left child's
    index, side by side (uint32, shape (n_nodes, 2)).  With the thresholds in
    their own float64 array, one node index addresses both arrays."""
    out = np.empty((nodes.shape[0], 2), dtype=np.uint32)
    out[:, 0] = nodes["feature"].astype(np.int64) * (block_rows * 8)
    out[:, 1] = nodes["left"]
    return out


def heap_layout(nodes, const float64_t[::1] values, const int64_t[::1] offsets,
                const int32_t[::1] depths, intp_t block_rows, missing=None,
                intp_t n_features=0):
    """The "heap" scoring layout of axis trees, or None when there are no
    trees or a tree is deeper than HEAP_MAX_DEPTH.

    Tree t of depth D becomes a complete binary tree in heap order: internal
    node p (1 <= p < 2**D) has children 2p and 2p+1, so a step loads no child
    link.  A leaf above depth D is stretched down its leftmost path (+inf
    thresholds send every row left) and its value lands at level D.
    Thresholds are stored as order keys (:func:`order_keys`) and rows are
    transposed into keys too: the comparison is an unsigned integer compare.
    Returns (regions, leaves): tree t owns bytes ``[t*HEAP_REGION,
    (t+1)*HEAP_REGION)`` of ``regions`` (threshold keys as uint64 from byte
    0, column byte offsets into a transposed block as uint32 from byte
    AF_HEAP_COLUMNS) and ``leaves[t*2**(HEAP_MAX_DEPTH+1):]``, indexed by the
    heap index a walk ends at (2**D .. 2**(D+1) - 1; the entries below are
    unused).

    ``missing`` (uint8 per compact node, 1 = a NaN goes left) and
    ``n_features``: the layout for rows that may hold NaN, whose block has
    two columns per feature
    (see _transpose_block_missing): an internal node whose NaN goes right
    reads feature f from column n_features + f, where a NaN is the largest
    key; every other position reads column f, where a NaN is key 0.
    """
    cdef intp_t n_trees = offsets.shape[0]
    cdef intp_t t, D
    if n_trees == 0:
        return None
    for t in range(n_trees):
        if depths[t] > HEAP_MAX_DEPTH:
            return None
    region_arr = np.zeros(n_trees * HEAP_REGION // 8, dtype=np.uint64)
    leaf_arr = np.zeros(n_trees << (HEAP_MAX_DEPTH + 1), dtype=np.float64)
    cdef uint64_t[::1] region_view = region_arr
    cdef char* regions = <char*>&region_view[0]
    cdef float64_t[::1] leaf = leaf_arr
    cdef uint64_t* thr
    cdef uint32_t* col
    cdef const float64_t[::1] node_thr = np.ascontiguousarray(nodes["threshold"])
    cdef const int32_t[::1] node_feat = np.ascontiguousarray(nodes["feature"])
    cdef const int32_t[::1] node_left = np.ascontiguousarray(nodes["left"])
    cdef intp_t[::1] ids = np.empty(2 << HEAP_MAX_DEPTH, dtype=np.intp)
    cdef intp_t p, n_int, base, node, k, column
    cdef const uint8_t[::1] miss = missing if missing is not None else np.zeros(1, dtype=np.uint8)
    for t in range(n_trees):
        D = depths[t]
        n_int = (1 << D) - 1
        base = offsets[t]
        thr = <uint64_t*>(regions + t * HEAP_REGION)
        col = <uint32_t*>(regions + t * HEAP_REGION + AF_HEAP_COLUMNS)
        ids[1] = 0  # ids[p]: the compact node (tree-relative) at heap position p
        for p in range(1, n_int + 1):
            node = ids[p]
            k = base + node
            thr[p] = _order_key(node_thr[k])
            column = node_feat[k]
            if missing is not None and node_left[k] != node and miss[k] == 0:
                column += n_features  # NaN goes right: the column where NaN is the largest key
            col[p] = <uint32_t>(column * block_rows * 8)
            if node_left[k] == node:  # leaf: stays itself down the left path
                ids[2 * p] = node
                ids[2 * p + 1] = node
            else:
                ids[2 * p] = node_left[k]
                ids[2 * p + 1] = node_left[k] + 1
        for p in range(n_int + 1):
            leaf[(t << (HEAP_MAX_DEPTH + 1)) + n_int + 1 + p] = values[base + ids[n_int + 1 + p]]
    return region_arr, leaf_arr


cdef void _transpose_block(const floating_t* X, intp_t n_cols, intp_t r0, intp_t nb,
                           intp_t block_rows, bint keys, uint64_t* block) noexcept nogil:
    """block[f * block_rows + r] = X[r0 + r, f] as a double's bits, or as its
    order key when ``keys``; rows up to the next multiple of ROW_GROUP are 0."""
    cdef intp_t r, f
    cdef const floating_t* row
    cdef float64_t v
    if keys:
        for r in range(nb):
            row = X + (r0 + r) * n_cols
            for f in range(n_cols):
                block[f * block_rows + r] = _order_key(<float64_t>row[f])
    else:
        for r in range(nb):
            row = X + (r0 + r) * n_cols
            for f in range(n_cols):
                v = <float64_t>row[f]
                memcpy(&block[f * block_rows + r], &v, 8)
    cdef intp_t padded = min(block_rows, (nb + ROW_GROUP - 1) // ROW_GROUP * ROW_GROUP)
    for f in range(n_cols):
        for r in range(nb, padded):
            block[f * block_rows + r] = 0


cdef void _transpose_block_missing(const floating_t* X, intp_t n_cols, intp_t r0, intp_t nb,
                                   intp_t block_rows, uint64_t* block) noexcept nogil:
    """_transpose_block (order keys) for rows that may hold NaN, into two
    columns per feature: column f holds a NaN as key 0 (left of every split),
    column n_cols + f as the largest key (right of every split); other values
    have their order key in both.  With heap_layout's ``missing`` layout a
    NaN goes to its node's missing side in the same branch-free step."""
    cdef intp_t r, f
    cdef const floating_t* row
    cdef float64_t v
    cdef uint64_t key
    cdef uint64_t* right = block + n_cols * block_rows
    for r in range(nb):
        row = X + (r0 + r) * n_cols
        for f in range(n_cols):
            v = <float64_t>row[f]
            key = _order_key(v)
            block[f * block_rows + r] = key if v == v else 0
            right[f * block_rows + r] = key if v == v else <uint64_t>0xFFFFFFFFFFFFFFFF
    cdef intp_t padded = min(block_rows, (nb + ROW_GROUP - 1) // ROW_GROUP * ROW_GROUP)
    for f in range(2 * n_cols):
        for r in range(nb, padded):
            block[f * block_rows + r] = 0


cdef inline intp_t _links_step(const float64_t* thresholds, const uint32_t* links,
                               intp_t node, const char* cell) noexcept nogil:
    """One step in the "links" layout: ``cell`` points at this row's entry of
    column 0 in the transposed block.  (Unsigned 32-bit links load
    zero-extended: no sign extension.)"""
    return <intp_t>links[2 * node + 1] + (
        (<const float64_t*>(cell + links[2 * node]))[0] > thresholds[node])


cdef float64_t _path_sum_one_row(const AxisScoring* f, const char* cell) noexcept nogil:
    """Sum of path lengths of one row over all trees, eight trees walked
    together (for single rows, where there are no other rows to overlap).
    Past the last tree a member repeats it and its result is ignored; each
    member walks only down to its own tree's depth."""
    cdef float64_t total = 0.0
    cdef intp_t t = 0, level, depth, g, tt
    cdef intp_t idx[8]
    cdef intp_t dg[8]
    cdef intp_t base[8]
    cdef bint heap = f.regions != NULL
    while t < f.n_trees:
        depth = 0
        for g in range(8):
            tt = min(t + g, f.n_trees - 1)
            base[g] = tt * HEAP_REGION if heap else f.offsets[tt]
            dg[g] = f.depths[tt]
            depth = max(depth, dg[g])
            idx[g] = 1 if heap else 0
        for level in range(depth):
            for g in range(8):
                if level < dg[g]:
                    if heap:
                        idx[g] = _heap_step(f.regions + base[g], idx[g], cell, 0)
                    else:
                        idx[g] = _links_step(f.thresholds + base[g], f.links + 2 * base[g],
                                             idx[g], cell)
        for g in range(min(8, f.n_trees - t)):
            if heap:
                total += f.leaves[((t + g) << (HEAP_MAX_DEPTH + 1)) + idx[g]]
            else:
                total += f.values[base[g] + idx[g]]
        t += 8
    return total


cdef inline void _add_leaves(float64_t* acc, const float64_t* leaf,
                             uintp_t i0, uintp_t i1, uintp_t i2, uintp_t i3,
                             uintp_t i4, uintp_t i5, uintp_t i6, uintp_t i7,
                             uintp_t i8, uintp_t i9, uintp_t i10, uintp_t i11) noexcept nogil:
    acc[0] += leaf[i0]
    acc[1] += leaf[i1]
    acc[2] += leaf[i2]
    acc[3] += leaf[i3]
    acc[4] += leaf[i4]
    acc[5] += leaf[i5]
    acc[6] += leaf[i6]
    acc[7] += leaf[i7]
    acc[8] += leaf[i8]
    acc[9] += leaf[i9]
    acc[10] += leaf[i10]
    acc[11] += leaf[i11]


cdef inline void _heap_tree(const AxisScoring* f, intp_t t, const uint64_t* block, intp_t nb,
                            float64_t* acc) noexcept nogil:
    """acc[r] += path length in tree t of block row r ("heap" layout), twelve
    rows at a time with their node indices in registers so that twelve
    independent chains of loads overlap."""
    cdef const char* tree = f.regions + t * HEAP_REGION
    cdef intp_t depth = f.depths[t], level, r = 0
    # the leaf reached at (1-based) heap index i is leaf[i]
    cdef const float64_t* leaf = f.leaves + (t << (HEAP_MAX_DEPTH + 1))
    cdef const char* cell
    cdef uintp_t i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11
    while r < nb:
        cell = <const char*>(block + r)
        i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = i8 = i9 = i10 = i11 = 1
        for level in range(depth):
            i0 = _heap_step(tree, i0, cell, 0)
            i1 = _heap_step(tree, i1, cell, 8)
            i2 = _heap_step(tree, i2, cell, 16)
            i3 = _heap_step(tree, i3, cell, 24)
            i4 = _heap_step(tree, i4, cell, 32)
            i5 = _heap_step(tree, i5, cell, 40)
            i6 = _heap_step(tree, i6, cell, 48)
            i7 = _heap_step(tree, i7, cell, 56)
            i8 = _heap_step(tree, i8, cell, 64)
            i9 = _heap_step(tree, i9, cell, 72)
            i10 = _heap_step(tree, i10, cell, 80)
            i11 = _heap_step(tree, i11, cell, 88)
        _add_leaves(acc + r, leaf, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11)
        r += ROW_GROUP


cdef inline void _links_tree(const AxisScoring* f, intp_t t, const uint64_t* block, intp_t nb,
                             float64_t* acc) noexcept nogil:
    """As _heap_tree, in the "links" layout."""
    cdef const float64_t* thr = f.thresholds + f.offsets[t]
    cdef const uint32_t* lnk = f.links + 2 * f.offsets[t]
    cdef const float64_t* leaf = f.values + f.offsets[t]
    cdef intp_t depth = f.depths[t], level, r = 0
    cdef const char* cell
    cdef uintp_t i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11
    while r < nb:
        cell = <const char*>(block + r)
        i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = i8 = i9 = i10 = i11 = 0
        for level in range(depth):
            i0 = _links_step(thr, lnk, i0, cell + 0)
            i1 = _links_step(thr, lnk, i1, cell + 8)
            i2 = _links_step(thr, lnk, i2, cell + 16)
            i3 = _links_step(thr, lnk, i3, cell + 24)
            i4 = _links_step(thr, lnk, i4, cell + 32)
            i5 = _links_step(thr, lnk, i5, cell + 40)
            i6 = _links_step(thr, lnk, i6, cell + 48)
            i7 = _links_step(thr, lnk, i7, cell + 56)
            i8 = _links_step(thr, lnk, i8, cell + 64)
            i9 = _links_step(thr, lnk, i9, cell + 72)
            i10 = _links_step(thr, lnk, i10, cell + 80)
            i11 = _links_step(thr, lnk, i11, cell + 88)
        _add_leaves(acc + r, leaf, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11)
        r += ROW_GROUP


cdef int _axis_score(const AxisScoring* f, const floating_t* X, intp_t n_rows,
                     intp_t n_cols, intp_t block_rows, float64_t denominator,
                     float64_t* out, bint missing=False) noexcept nogil:
    """out[r] = -2 ** (-sum_t h_t(x_r) / denominator), sklearn's score_samples.

    Rows are copied, block by block, into a transposed buffer; the block then
    walks one tree at a time (block and tree stay in L1), twelve rows at
    once.  ``missing``: rows may hold NaN, ``f`` is the "heap" layout built
    with heap_layout's ``missing`` and ``block_rows`` is for 2 * n_cols
    columns (_transpose_block_missing).  Returns -1 when out of memory.
    """
    cdef bint heap = f.regions != NULL
    cdef uint64_t* block = <uint64_t*>malloc(block_rows * n_cols * (2 if missing else 1)
                                             * sizeof(uint64_t))
    cdef float64_t* acc = <float64_t*>malloc(block_rows * sizeof(float64_t))
    cdef intp_t r0, r, nb, t
    if block == NULL or acc == NULL:
        free(block)
        free(acc)
        return -1
    r0 = 0
    while r0 < n_rows:
        nb = min(block_rows, n_rows - r0)
        if missing:
            _transpose_block_missing(X, n_cols, r0, nb, block_rows, block)
        else:
            _transpose_block(X, n_cols, r0, nb, block_rows, heap, block)
        if nb < ROW_GROUP:
            # Too few rows to fill a group: walk eight trees at once instead.
            for r in range(nb):
                acc[r] = _path_sum_one_row(f, <const char*>(block + r))
        else:
            for r in range(block_rows):
                acc[r] = 0.0
            for t in range(f.n_trees):
                if heap:
                    _heap_tree(f, t, block, nb, acc)
                else:
                    _links_tree(f, t, block, nb, acc)
        for r in range(nb):
            out[r0 + r] = -exp2(-acc[r] / denominator) if denominator > 0.0 else -0.5
        r0 += block_rows
    free(block)
    free(acc)
    return 0


cdef enum:
    WALK_GROUP = 8  # rows walked through a tree together by _walk_group


cdef inline void _walk_group(const AxisNode* nodes, const float64_t* values,
                             const uint8_t* missing, const int64_t* offsets,
                             const int32_t* depths, intp_t n_trees, const float64_t* cells,
                             intp_t row_stride, intp_t feature_stride, intp_t nb,
                             float64_t* acc) noexcept nogil:
    """acc[g] = sum over trees, in tree order, of the path length of row g
    (feature f of row g at cells[g * row_stride + f * feature_stride]), for
    nb <= WALK_GROUP rows that may hold NaN: the compact nodes are walked
    ``depths[t]`` steps by all rows together (a leaf holds still: its
    threshold is +inf, and a NaN there stays too); a NaN goes to the side
    ``missing`` stores for its node.  The same leaves, summed in the same
    order, as the NaN-free layouts: the same scores."""
    cdef intp_t t, level, g, base, node, left
    cdef intp_t idx[WALK_GROUP]
    cdef float64_t v
    cdef const AxisNode* tree
    for g in range(nb):
        acc[g] = 0.0
    for t in range(n_trees):
        base = offsets[t]
        tree = nodes + base
        for g in range(nb):
            idx[g] = 0
        for level in range(depths[t]):
            for g in range(nb):
                # branch-free: right when v > threshold, or when v is NaN at
                # an internal node whose missing values go right
                node = idx[g]
                left = tree[node].left
                v = cells[g * row_stride + tree[node].feature * feature_stride]
                idx[g] = left + ((v > tree[node].threshold)
                                 | ((v != v) & (left != node) & (missing[base + node] == 0)))
        for g in range(nb):
            acc[g] += values[base + idx[g]]


cdef void _axis_score_missing(const AxisNode* nodes, const float64_t* values,
                              const uint8_t* missing, const int64_t* offsets,
                              const int32_t* depths, intp_t n_trees, const float64_t* X,
                              intp_t n_rows, intp_t n_cols, float64_t denominator,
                              float64_t* out) noexcept nogil:
    """score_samples for dense rows that may hold NaN (_walk_group on
    WALK_GROUP rows at a time).  Used only for batches holding NaN; the
    layouts above stay NaN-free."""
    cdef intp_t r0, nb, g
    cdef float64_t acc[WALK_GROUP]
    r0 = 0
    while r0 < n_rows:
        nb = min(<intp_t>WALK_GROUP, n_rows - r0)
        if nb == WALK_GROUP:  # a constant group size: the walk unrolls
            _walk_group(nodes, values, missing, offsets, depths, n_trees, X + r0 * n_cols,
                        n_cols, 1, WALK_GROUP, acc)
        else:
            _walk_group(nodes, values, missing, offsets, depths, n_trees, X + r0 * n_cols,
                        n_cols, 1, nb, acc)
        for g in range(nb):
            out[r0 + g] = -exp2(-acc[g] / denominator) if denominator > 0.0 else -0.5
        r0 += nb


cdef enum:
    NO_DEVIATION = 255  # _axis_score_csr_rows: the row follows the tree's zero path to its leaf


cdef bint _csr_rows_pay(const AxisScoring* f, const CSRRows* X, intp_t start, intp_t stop) noexcept nogil:
    """Whether _axis_score_csr_rows suits rows start..stop: the heap layout,
    and rows sparse enough that on average at most a quarter of the trees
    meet one of a row's stored features on their zero path (each of a row's
    entries meets about sum(depths) / n_cols zero-path nodes)."""
    cdef intp_t t, steps = 0
    if f.regions == NULL or stop <= start or X.n_cols == 0:
        return False
    for t in range(f.n_trees):
        steps += f.depths[t]
    return (<float64_t>(X.indptr[stop] - X.indptr[start]) / (stop - start)
            * steps / X.n_cols <= 0.25 * f.n_trees)


cdef inline void _walk_touched(const AxisScoring* f, const int32_t* touched, intp_t n_touched,
                               const uint8_t* deviation, const uint32_t* zpath,
                               const int32_t* feat, const uint64_t* keys,
                               float64_t* leafval) noexcept nogil:
    """leafval[t] for the trees ``touched`` by one row (see
    _axis_score_csr_rows): each walked from its zero path's node at level
    ``deviation[t]`` down to its depth with the row's ``keys``, eight trees
    at once so that their chains of loads overlap."""
    cdef intp_t q0, g, m, step, most, t
    cdef uintp_t idx[8]
    cdef intp_t rem[8]
    cdef intp_t tree[8]
    cdef const uint64_t* thr
    q0 = 0
    while q0 < n_touched:
        m = min(8, n_touched - q0)
        most = 0
        for g in range(m):
            t = touched[q0 + g]
            tree[g] = t
            idx[g] = zpath[t * (HEAP_MAX_DEPTH + 1) + deviation[t]]
            rem[g] = f.depths[t] - deviation[t]
            most = max(most, rem[g])
        for step in range(most):
            for g in range(m):
                if step < rem[g]:
                    t = tree[g]
                    thr = <const uint64_t*>(f.regions + t * HEAP_REGION)
                    idx[g] = idx[g] + idx[g] + (keys[feat[t * (1 << HEAP_MAX_DEPTH) + idx[g]]] > thr[idx[g]])
        for g in range(m):
            leafval[tree[g]] = f.leaves[(tree[g] << (HEAP_MAX_DEPTH + 1)) + idx[g]]
        q0 += m


cdef enum:
    CSR_ROWS_GROUP = 4  # _axis_score_csr_rows: rows summed together (independent chains of adds)


cdef int _axis_score_csr_rows(const AxisScoring* f, const CSRRows* X, intp_t start,
                              intp_t stop, intp_t block_rows, float64_t denominator,
                              float64_t* out) noexcept nogil:
    """score_samples of NaN-free CSR rows start..stop (heap layout), from
    the trees' zero paths: a row none of whose stored features is tested on
    a tree's all-zero path (the path of a row of zeros) ends at that path's
    leaf; otherwise it follows the zero path down to the first node testing
    one of its stored features and walks on from there with its own values
    (_walk_touched).  An inverted index (feature -> the trees and levels of
    the zero-path nodes testing it) finds those nodes from the row's
    entries, so a sparse row takes a few steps in a few trees instead of
    ``depth`` steps in every tree.  The same comparisons of the same keys as
    the dense walk, and each row's path lengths summed from 0 in tree order
    as _heap_tree does (CSR_ROWS_GROUP rows at a time): the same scores bit
    for bit.  Returns -1 when out of memory."""
    cdef intp_t n_trees = f.n_trees, d = X.n_cols, stride = block_rows * 8
    cdef intp_t t, k, p, q, r, r0, g, nb, D, n_paths = 0, level
    cdef uintp_t i
    cdef uint64_t zero = _order_key(0.0)
    cdef const char* tree
    cdef const uint64_t* thr
    cdef const uint32_t* col
    cdef float64_t acc[CSR_ROWS_GROUP]
    cdef intp_t n_touched[CSR_ROWS_GROUP]
    # per tree: the heap node of the zero path at each level (HEAP_MAX_DEPTH + 1 slots), the
    # feature of every internal heap node, the zero path's leaf value; per row of a group: its
    # path length in every tree (leafval, the zero path's unless touched), the trees it touches
    cdef uint32_t* zpath = <uint32_t*>malloc(n_trees * (HEAP_MAX_DEPTH + 1) * sizeof(uint32_t))
    cdef int32_t* feat = <int32_t*>malloc(n_trees * (1 << HEAP_MAX_DEPTH) * sizeof(int32_t))
    cdef float64_t* zleaf = <float64_t*>malloc(n_trees * sizeof(float64_t))
    cdef intp_t* index_ptr = <intp_t*>calloc(d + 1, sizeof(intp_t))
    cdef int32_t* index = <int32_t*>malloc((n_trees * HEAP_MAX_DEPTH + 1) * sizeof(int32_t))
    cdef uint64_t* keys = <uint64_t*>malloc(d * sizeof(uint64_t))
    cdef uint8_t* deviation = <uint8_t*>malloc(n_trees * sizeof(uint8_t))
    cdef int32_t* touched = <int32_t*>malloc(CSR_ROWS_GROUP * n_trees * sizeof(int32_t))
    cdef float64_t* leafval = <float64_t*>malloc(CSR_ROWS_GROUP * n_trees * sizeof(float64_t))
    cdef int status = 0
    cdef int32_t* row_touched
    cdef float64_t* row_leafval
    if (zpath == NULL or feat == NULL or zleaf == NULL or index_ptr == NULL or index == NULL
            or keys == NULL or deviation == NULL or touched == NULL or leafval == NULL):
        status = -1
    else:
        # zero paths, node features, and the count of zero-path nodes per feature
        for t in range(n_trees):
            tree = f.regions + t * HEAP_REGION
            thr = <const uint64_t*>tree
            col = <const uint32_t*>(tree + AF_HEAP_COLUMNS)
            D = f.depths[t]
            for i in range(1, <uintp_t>1 << D):
                feat[t * (1 << HEAP_MAX_DEPTH) + i] = <int32_t>(col[i] // stride)
            i = 1
            for level in range(D):
                zpath[t * (HEAP_MAX_DEPTH + 1) + level] = <uint32_t>i
                index_ptr[feat[t * (1 << HEAP_MAX_DEPTH) + i] + 1] += 1
                n_paths += 1
                i = i + i + (zero > thr[i])
            zpath[t * (HEAP_MAX_DEPTH + 1) + D] = <uint32_t>i
            zleaf[t] = f.leaves[(t << (HEAP_MAX_DEPTH + 1)) + i]
            deviation[t] = NO_DEVIATION
            for g in range(CSR_ROWS_GROUP):
                leafval[g * n_trees + t] = zleaf[t]
        for k in range(d):
            index_ptr[k + 1] += index_ptr[k]
        # the index: (tree << 4 | level) of each zero-path node, by feature (a counting sort
        # filled from each feature's end, so that index_ptr[k + 1] ends at feature k's start)
        for t in range(n_trees - 1, -1, -1):
            for level in range(f.depths[t] - 1, -1, -1):
                k = feat[t * (1 << HEAP_MAX_DEPTH) + zpath[t * (HEAP_MAX_DEPTH + 1) + level]]
                index_ptr[k + 1] -= 1
                index[index_ptr[k + 1]] = <int32_t>((t << 4) | level)
        for k in range(d):
            index_ptr[k] = index_ptr[k + 1]
        index_ptr[d] = n_paths
        for k in range(d):
            keys[k] = zero
        r0 = start
        while r0 < stop:
            nb = min(<intp_t>CSR_ROWS_GROUP, stop - r0)
            for g in range(nb):
                r = r0 + g
                row_touched = touched + g * n_trees
                n_touched[g] = 0
                for p in range(X.indptr[r], X.indptr[r + 1]):
                    k = X.indices[p]
                    keys[k] = _order_key(X.data[p])
                    for q in range(index_ptr[k], index_ptr[k + 1]):
                        t = index[q] >> 4
                        level = index[q] & 15
                        if deviation[t] == NO_DEVIATION:
                            row_touched[n_touched[g]] = <int32_t>t
                            n_touched[g] += 1
                            deviation[t] = <uint8_t>level
                        elif level < deviation[t]:
                            deviation[t] = <uint8_t>level
                _walk_touched(f, row_touched, n_touched[g], deviation, zpath, feat, keys,
                              leafval + g * n_trees)
                for q in range(n_touched[g]):
                    deviation[row_touched[q]] = NO_DEVIATION
                for p in range(X.indptr[r], X.indptr[r + 1]):
                    keys[X.indices[p]] = zero
            if nb == CSR_ROWS_GROUP:  # four independent chains of adds
                acc[0] = acc[1] = acc[2] = acc[3] = 0.0
                for t in range(n_trees):
                    acc[0] += leafval[t]
                    acc[1] += leafval[n_trees + t]
                    acc[2] += leafval[2 * n_trees + t]
                    acc[3] += leafval[3 * n_trees + t]
            else:
                for g in range(nb):
                    acc[g] = 0.0
                    for t in range(n_trees):
                        acc[g] += leafval[g * n_trees + t]
            for g in range(nb):
                out[r0 - start + g] = -exp2(-acc[g] / denominator) if denominator > 0.0 else -0.5
                row_touched = touched + g * n_trees
                row_leafval = leafval + g * n_trees
                for q in range(n_touched[g]):
                    row_leafval[row_touched[q]] = zleaf[row_touched[q]]
            r0 += nb
    free(zpath)
    free(feat)
    free(zleaf)
    free(index_ptr)
    free(index)
    free(keys)
    free(deviation)
    free(touched)
    free(leafval)
    return status


cdef int _axis_score_csr_blocks(const AxisScoring* f, const CSRRows* X, intp_t start,
                                intp_t stop, intp_t block_rows, float64_t denominator,
                                float64_t* out) noexcept nogil:
    """score_samples of NaN-free CSR rows start..stop in the dense kernel's
    layouts: the transposed block is filled with zeros once; each block of
    rows scatters only its stored entries into it (as order keys in the
    "heap" layout) and clears them after the walk.  The same walk and sums
    as _axis_score on the dense rows: the same scores bit for bit.
    Returns -1 when out of memory."""
    cdef bint heap = f.regions != NULL
    cdef intp_t d = X.n_cols, r0, r, nb, t, p, i
    cdef uint64_t zero = _order_key(0.0) if heap else 0  # +0.0's bits are 0
    cdef float64_t v
    cdef uint64_t* block = <uint64_t*>malloc(block_rows * d * sizeof(uint64_t))
    cdef float64_t* acc = <float64_t*>malloc(block_rows * sizeof(float64_t))
    if block == NULL or acc == NULL:
        free(block)
        free(acc)
        return -1
    for i in range(block_rows * d):
        block[i] = zero
    r0 = start
    while r0 < stop:
        nb = min(block_rows, stop - r0)
        for r in range(nb):
            for p in range(X.indptr[r0 + r], X.indptr[r0 + r + 1]):
                v = X.data[p]
                if heap:
                    block[X.indices[p] * block_rows + r] = _order_key(v)
                else:
                    memcpy(&block[X.indices[p] * block_rows + r], &v, 8)
        if nb < ROW_GROUP:
            for r in range(nb):
                acc[r] = _path_sum_one_row(f, <const char*>(block + r))
        else:
            for r in range(block_rows):
                acc[r] = 0.0
            for t in range(f.n_trees):
                if heap:
                    _heap_tree(f, t, block, nb, acc)
                else:
                    _links_tree(f, t, block, nb, acc)
        for r in range(nb):
            out[r0 - start + r] = -exp2(-acc[r] / denominator) if denominator > 0.0 else -0.5
            for p in range(X.indptr[r0 + r], X.indptr[r0 + r + 1]):
                block[X.indices[p] * block_rows + r] = zero
        r0 += nb
    free(block)
    free(acc)
    return 0


cdef int _axis_score_csr(const AxisNode* nodes, const float64_t* values,
                         const uint8_t* missing, const int64_t* offsets,
                         const int32_t* depths, intp_t n_trees, const CSRRows* X,
                         intp_t start, intp_t stop, float64_t denominator,
                         float64_t* out) noexcept nogil:
    """score_samples of CSR rows start..stop, without densifying them: the
    stored entries of a group of WALK_GROUP rows are scattered into a zeroed
    block, feature-major (block[f * WALK_GROUP + g]: one feature of the
    group shares a cache line), walked by _walk_group, and cleared
    afterwards.  The same scores as the dense rows bit for bit.  Returns -1
    when out of memory."""
    cdef intp_t d = X.n_cols, r0, nb, g, p
    cdef float64_t acc[WALK_GROUP]
    cdef float64_t* block = <float64_t*>calloc(WALK_GROUP * d, sizeof(float64_t))
    if block == NULL:
        return -1
    r0 = start
    while r0 < stop:
        nb = min(<intp_t>WALK_GROUP, stop - r0)
        for g in range(nb):
            for p in range(X.indptr[r0 + g], X.indptr[r0 + g + 1]):
                block[X.indices[p] * WALK_GROUP + g] = X.data[p]
        if nb == WALK_GROUP:  # a constant group size: the walk unrolls
            _walk_group(nodes, values, missing, offsets, depths, n_trees, block, 1, WALK_GROUP,
                        WALK_GROUP, acc)
        else:
            _walk_group(nodes, values, missing, offsets, depths, n_trees, block, 1, WALK_GROUP,
                        nb, acc)
        for g in range(nb):
            out[r0 - start + g] = -exp2(-acc[g] / denominator) if denominator > 0.0 else -0.5
            for p in range(X.indptr[r0 + g], X.indptr[r0 + g + 1]):
                block[X.indices[p] * WALK_GROUP + g] = 0.0
        r0 += nb
    free(block)
    return 0


# --------------------------------------------------------------------------
# Hyperplane trees (Extended Isolation Forest)
# --------------------------------------------------------------------------

cdef inline void _make_hyperplane_leaf(HyperplaneNode* nodes, float64_t* values,
                                       float64_t* normals, int32_t* terms, float64_t* fills,
                                       intp_t k, intp_t node, intp_t depth,
                                       intp_t size) noexcept nogil:
    cdef intp_t j
    nodes[node].offset = INFINITY
    nodes[node].left = <int32_t>node
    nodes[node].n_terms = 0
    for j in range(k):
        normals[node * k + j] = 0.0
        terms[node * k + j] = 0
        fills[node * k + j] = 0.0
    values[node] = depth + average_path_length(size)


cdef inline void _robust_add(float64_t wx, float64_t* finite, int* signs) noexcept nogil:
    """One product of a dot product under _robust_dot's rule."""
    if wx == INFINITY:
        signs[0] |= 1
    elif wx == -INFINITY:
        signs[0] |= 2
    elif wx == wx:  # NaN (a 0 * inf product, a missing value) is skipped
        finite[0] += wx


cdef inline float64_t _robust_result(float64_t finite, int signs) noexcept nogil:
    if signs == 1:
        return INFINITY
    if signs == 2:
        return -INFINITY
    return finite


cdef float64_t _robust_dot(const float64_t* w, const int32_t* terms, intp_t k,
                           const floating_t* x, const float64_t* fills) noexcept nogil:
    """A hyperplane's dot(w, x) when the plain sum is not finite (x holds an
    infinity or a NaN): terms with weight 0 are skipped; a missing (NaN)
    coordinate takes its ``fills`` value (the node's training mean); when the
    infinite products all have one sign the result is that infinity (x is
    beyond the hyperplane on that side), otherwise (+inf and -inf products)
    the sum of the finite products.  ``terms`` NULL: ``w`` and ``fills`` are
    dense over k features.  Products are added in feature order, as when the
    tree was built."""
    cdef float64_t finite = 0.0, v
    cdef int signs = 0
    cdef intp_t j
    for j in range(k):
        if w[j] != 0.0:
            v = x[j if terms == NULL else terms[j]]
            if v != v:
                v = fills[j]
            _robust_add(w[j] * v, &finite, &signs)
    return _robust_result(finite, signs)


cdef inline float64_t _filled_dot(const float64_t* w, const int32_t* terms, intp_t k,
                                  const floating_t* x, const float64_t* fills) noexcept nogil:
    """dot(w, x) with each missing (NaN) coordinate replaced by its
    ``fills`` value, products added in feature order: _robust_dot's result
    for a row without infinities (up to the sign of a zero), without its
    branches.  ``terms`` NULL: dense, as _robust_dot."""
    cdef float64_t dot = 0.0, v
    cdef intp_t j
    for j in range(k):
        v = x[j if terms == NULL else terms[j]]
        dot = dot + w[j] * (v if v == v else fills[j])
    return dot


cdef inline float64_t _nonfinite_dot(const float64_t* w, const int32_t* terms, intp_t k,
                                     const floating_t* x, const float64_t* fills) noexcept nogil:
    """A hyperplane's projection of a row whose plain dot product is not
    finite: the filled dot when that is finite (the row only misses
    values), else _robust_dot (infinities)."""
    cdef float64_t dot = _filled_dot(w, terms, k, x, fills)
    if isfinite(dot):
        return dot
    return _robust_dot(w, terms, k, x, fills)


cdef void _finite_box(const float64_t* col, const intp_t* order, intp_t start,
                      intp_t end, float64_t* lo, float64_t* hi, float64_t* sd,
                      float64_t* mean) noexcept nogil:
    """Bounding box, spread and mean of a node's finite values of a feature
    that holds +-inf or NaN: min, max, standard deviation (else max - min,
    else 1) and mean (0 when there is no finite value)."""
    cdef float64_t a = INFINITY, b = -INFINITY, sm = 0.0, sq = 0.0, v
    cdef intp_t i, n = 0
    for i in range(start, end):
        v = col[order[i]]
        if isfinite(v):
            a = v if v < a else a
            b = v if v > b else b
            sm += v
            sq += v * v
            n += 1
    if n == 0:
        a = b = 0.0
        n = 1
    lo[0] = a
    hi[0] = b
    sm = sm / n
    mean[0] = sm
    sd[0] = sqrt(max(sq / n - sm * sm, 0.0))
    if sd[0] <= 0.0:
        sd[0] = b - a
    if sd[0] <= 0.0:
        sd[0] = 1.0


cdef bint _missing_box(const float64_t* col, const intp_t* order, intp_t start,
                       intp_t end, float64_t* lo, float64_t* hi, float64_t* sd,
                       float64_t* mean) noexcept nogil:
    """The node's box, spread and mean of a feature whose subsample holds
    NaN, over its non-missing values (finite ones for the box, as
    _finite_box); True when those values are not all equal (a feature whose
    non-missing values are all equal stays constant once its missing values
    take their fill, the mean)."""
    cdef float64_t a = INFINITY, b = -INFINITY, v
    cdef intp_t i
    for i in range(start, end):
        v = col[order[i]]
        if v == v:
            a = v if v < a else a
            b = v if v > b else b
    _finite_box(col, order, start, end, lo, hi, sd, mean)
    return b > a


cdef void _build_hyperplane_tree(const floating_t[:, ::1] X, const CSRRows* csr, uint64_t seed, intp_t m,
                                 bint bootstrap, const float64_t* weights,
                                 const float64_t* cum_weights, intp_t n_tree_features,
                                 intp_t k, bint standardize, bint range_intercept,
                                 intp_t max_depth, intp_t capacity, BuildScratch* s,
                                 HyperplaneNode* nodes, float64_t* values,
                                 float64_t* normals, int32_t* terms, float64_t* fills,
                                 int32_t* n_nodes_out, int32_t* depth_out) noexcept nogil:
    cdef RandomState rng
    cdef intp_t n = X.shape[0], d = X.shape[1]
    cdef intp_t top = 0, next_free = 1, tree_depth = 0
    cdef intp_t node, start, end, depth, size, i, j, n_cand, n_use, pick, cut
    cdef int32_t f, tmp
    cdef float64_t v, w, offset, lo, hi, sm, sq
    cdef int signs
    cdef const float64_t* col

    if csr != NULL:
        n = csr.n_draw
    rng_seed(&rng, seed)
    _draw_features(&rng, d, n_tree_features, s.features)
    _draw_rows(&rng, n, m, bootstrap, weights, cum_weights, s.rows, s.table,
               s.table_size, s.proj)
    if csr != NULL:
        _gather_csr(csr, s, m, n_tree_features)
    else:
        _gather(X, s, m, n_tree_features)

    _push(s.stack, &top, 0, 0, m, 0)  # the root holds the whole subsample
    while top > 0:
        _pop(s.stack, &top, &node, &start, &end, &depth)
        size = end - start
        if depth > tree_depth:
            tree_depth = depth
        if size <= 1 or depth >= max_depth or next_free + 2 > capacity:
            _make_hyperplane_leaf(nodes, values, normals, terms, fills, k, node, depth, size)
            continue
        # Bounding box of the node; the normal uses non-constant features only.
        n_cand = 0
        for j in range(n_tree_features):
            col = s.columns + j * m
            if s.has_missing[j]:
                if _missing_box(col, s.order, start, end, &s.lo[j], &s.hi[j], &s.sd[j],
                                &s.mean[j]):
                    s.candidates[n_cand] = <int32_t>j
                    n_cand += 1
                continue
            s.lo[j] = col[s.order[start]]
            s.hi[j] = s.lo[j]
            lo = s.lo[j]
            hi = lo
            sm = 0.0
            sq = 0.0
            for i in range(start, end):
                v = col[s.order[i]]
                lo = v if v < lo else lo
                hi = v if v > hi else hi
                sm += v
                sq += v * v
            s.lo[j] = lo
            s.hi[j] = hi
            sm = sm / size
            s.mean[j] = sm
            s.sd[j] = sqrt(max(sq / size - sm * sm, 0.0))
            if s.sd[j] <= 0.0:
                s.sd[j] = hi - lo
            if hi > lo and (lo == -INFINITY or hi == INFINITY):
                _finite_box(col, s.order, start, end, &s.lo[j], &s.hi[j], &s.sd[j], &s.mean[j])
            if hi > lo:
                s.candidates[n_cand] = <int32_t>j
                n_cand += 1
        if n_cand == 0:
            _make_hyperplane_leaf(nodes, values, normals, terms, fills, k, node, depth, size)
            continue
        n_use = k if k < n_cand else n_cand
        offset = 0.0
        for i in range(start, end):
            s.proj[s.order[i]] = 0.0
        for j in range(k):
            normals[node * k + j] = 0.0
            terms[node * k + j] = 0
            fills[node * k + j] = 0.0
        for j in range(n_use):
            pick = j + rng_below(&rng, n_cand - j)
            tmp = s.candidates[j]
            s.candidates[j] = s.candidates[pick]
            s.candidates[pick] = tmp
            f = s.candidates[j]
            w = rng_normal(&rng)
            if standardize:  # Gaussian weights on node-standardised features
                w = w / s.sd[f]
            if not range_intercept:
                # intercept coordinate drawn uniformly inside the node's bounding box
                offset += w * (s.lo[f] + rng_uniform(&rng) * (s.hi[f] - s.lo[f]))
            normals[node * k + j] = w
            terms[node * k + j] = s.features[f]
            fills[node * k + j] = s.mean[f]
        # Order the terms by feature so every dot product (here and when
        # scoring, sparse or dense) adds the same products in the same order.
        for j in range(1, n_use):
            i = j
            while i > 0 and terms[node * k + i - 1] > terms[node * k + i]:
                terms[node * k + i - 1], terms[node * k + i] = terms[node * k + i], terms[node * k + i - 1]
                normals[node * k + i - 1], normals[node * k + i] = normals[node * k + i], normals[node * k + i - 1]
                fills[node * k + i - 1], fills[node * k + i] = fills[node * k + i], fills[node * k + i - 1]
                s.candidates[i - 1], s.candidates[i] = s.candidates[i], s.candidates[i - 1]
                i -= 1
        for j in range(n_use):
            w = normals[node * k + j]
            col = s.columns + s.candidates[j] * m
            for i in range(start, end):
                s.proj[s.order[i]] += w * col[s.order[i]]
        for i in range(start, end):
            if not isfinite(s.proj[s.order[i]]):  # an infinity or a NaN: _robust_dot's rule
                sm = 0.0
                signs = 0
                for j in range(n_use):
                    v = s.columns[s.candidates[j] * m + s.order[i]]
                    if v != v:  # missing: the node's mean
                        v = fills[node * k + j]
                    _robust_add(normals[node * k + j] * v, &sm, &signs)
                s.proj[s.order[i]] = _robust_result(sm, signs)
        if range_intercept:
            # the split value drawn uniformly between the node's smallest and
            # largest finite projection (isotree's rule)
            lo = INFINITY
            hi = -INFINITY
            for i in range(start, end):
                v = s.proj[s.order[i]]
                if isfinite(v):
                    lo = v if v < lo else lo
                    hi = v if v > hi else hi
            if lo > hi:  # every projection infinite
                lo = hi = 0.0
            offset = lo + rng_uniform(&rng) * (hi - lo)
        cut = _partition(s.order, s.spare, s.proj, start, end, offset)
        nodes[node].offset = offset
        nodes[node].left = <int32_t>next_free
        nodes[node].n_terms = <int32_t>n_use
        values[node] = 0.0
        # push right then left, so the left subtree is built first
        _push(s.stack, &top, next_free + 1, cut, end, depth + 1)
        _push(s.stack, &top, next_free, start, cut, depth + 1)
        next_free += 2
    n_nodes_out[0] = <int32_t>next_free
    depth_out[0] = <int32_t>tree_depth
    if csr != NULL:
        _clear_csr(csr, s, m)


def build_hyperplane_trees(const floating_t[:, ::1] X, const uint64_t[::1] seeds,
                           intp_t max_samples, bint bootstrap,
                           const float64_t[::1] weights, const float64_t[::1] cum_weights,
                           intp_t max_features,
                           intp_t n_terms, bint standardize, bint range_intercept,
                           intp_t max_depth, HyperplaneNode[:, ::1] nodes, float64_t[:, ::1] values,
                           float64_t[:, ::1] normals, int32_t[:, ::1] terms,
                           float64_t[:, ::1] fills,
                           int32_t[::1] n_nodes, int32_t[::1] depths, csr=None):
    """Build ``len(seeds)`` extended isolation trees whose split normals have at
    most ``n_terms`` non-zero coordinates; tree t goes into row t of the outputs.
    With ``standardize`` each coordinate is divided by the feature's standard
    deviation in the node (scale-free hyperplanes).  The intercept is a point
    drawn uniformly in the node's bounding box, or with ``range_intercept``
    a value drawn uniformly between the node's extreme projections.
    ``normals``/``terms`` hold ``n_terms`` (weight, feature) pairs per node
    and ``fills`` the value a missing coordinate takes in the projection
    (the node's mean of the feature's finite training values).  ``csr``: as
    :func:`build_axis_trees`."""
    cdef BuildScratch s
    cdef intp_t t
    cdef intp_t width = nodes.shape[1]
    cdef bint ok
    cdef const float64_t* w = NULL
    cdef const float64_t* cw = NULL
    cdef CSRRows rows_csr
    cdef const CSRRows* c = NULL
    if csr is not None:
        _csr_view(csr, &rows_csr)
        c = &rows_csr
    if weights.shape[0] > 0:  # empty arrays mean "no sample weights"
        w = &weights[0]
        cw = &cum_weights[0]
    with nogil:
        ok = _scratch_alloc(&s, max_samples, X.shape[1])
        if ok and c != NULL:  # _gather_csr's zeros
            memset(s.columns, 0, max_samples * X.shape[1] * sizeof(float64_t))
        if ok:
            for t in range(seeds.shape[0]):
                _build_hyperplane_tree(X, c, seeds[t], max_samples, bootstrap, w, cw,
                                       max_features,
                                       n_terms, standardize, range_intercept, max_depth,
                                       nodes.shape[1], &s, &nodes[t, 0],
                                       &values[t, 0],
                                       &normals[t, 0], &terms[t, 0], &fills[t, 0],
                                       &n_nodes[t], &depths[t])
        _scratch_free(&s)
    if not ok:
        raise MemoryError("not enough memory to build extended isolation trees")


cdef enum:
    HYPERPLANE_GROUP = 8  # rows walked together through a hyperplane tree


cdef inline float64_t _dense_dot(const float64_t* w, const floating_t* x,
                                 intp_t d) noexcept nogil:
    cdef float64_t dot = 0.0
    cdef intp_t f
    for f in range(d):
        dot = dot + w[f] * x[f]
    return dot


cdef inline float64_t _sparse_dot(const float64_t* w, const int32_t* terms,
                                  const floating_t* x, intp_t k) noexcept nogil:
    cdef float64_t dot = 0.0
    cdef intp_t j
    for j in range(k):
        dot = dot + w[j] * x[terms[j]]
    return dot


cdef float64_t _hyperplane_path_sum_one_row(
        const HyperplaneNode* nodes, const float64_t* values, const float64_t* weights,
        const float64_t* fills,
        const int32_t* terms, intp_t k, bint dense, const int64_t* offsets,
        const int32_t* depths, intp_t n_trees, const floating_t* row,
        intp_t n_cols) noexcept nogil:
    """Sum of path lengths of one row over all trees, four trees at a time."""
    cdef float64_t total = 0.0, dot
    cdef intp_t t = 0, level, depth, g, base, width = n_cols if dense else k
    cdef intp_t idx[4]
    cdef intp_t bases[4]
    while t < n_trees:
        depth = 0
        for g in range(4):
            # past the last tree, repeat it and ignore the result
            bases[g] = offsets[min(t + g, n_trees - 1)]
            depth = max(depth, depths[min(t + g, n_trees - 1)])
            idx[g] = 0
        for level in range(depth):
            for g in range(4):
                base = bases[g] + idx[g]
                if dense:
                    dot = _dense_dot(weights + base * width, row, n_cols)
                else:
                    dot = _sparse_dot(weights + base * k, terms + base * k, row, k)
                if not isfinite(dot):
                    dot = (_nonfinite_dot(weights + base * width, NULL, n_cols, row,
                                          fills + base * width) if dense else
                           _nonfinite_dot(weights + base * k, terms + base * k, k, row,
                                          fills + base * k))
                idx[g] = nodes[base].left + (dot > nodes[base].offset)
        for g in range(min(4, n_trees - t)):
            total += values[bases[g] + idx[g]]
        t += 4
    return total


cdef void _hyperplane_score(const HyperplaneNode* nodes, const float64_t* values,
                            const float64_t* weights, const float64_t* fills,
                            const int32_t* terms, intp_t k,
                            bint dense, const int64_t* offsets, const int32_t* depths,
                            intp_t n_trees, const floating_t* X, intp_t n_rows,
                            intp_t n_cols, float64_t denominator,
                            float64_t* out) noexcept nogil:
    """score_samples for hyperplane trees.  ``dense``: ``weights`` holds
    n_cols weights per node (zeros off the normal's support) and ``terms`` is
    unused; otherwise ``weights``/``terms`` hold k (weight, feature) pairs per
    node.  HYPERPLANE_GROUP rows walk each tree together (independent
    dot-product chains overlap); a leaf has zero weights and offset +inf, so
    it holds still."""
    cdef float64_t acc[HYPERPLANE_GROUP]
    cdef intp_t idx[HYPERPLANE_GROUP]
    cdef const floating_t* rows[HYPERPLANE_GROUP]
    cdef intp_t r0, t, level, depth, base, g, f, width = n_cols if dense else k
    cdef float64_t dots[HYPERPLANE_GROUP]
    cdef const float64_t* wg[HYPERPLANE_GROUP]
    cdef const int32_t* tg[HYPERPLANE_GROUP]
    cdef const HyperplaneNode* tree
    cdef const float64_t* w
    cdef const int32_t* tt
    r0 = 0
    while r0 < n_rows:
        if n_rows - r0 < HYPERPLANE_GROUP:
            # Too few rows left to fill a group: walk the trees of one row
            # several at a time instead.
            for g in range(n_rows - r0):
                acc[g] = _hyperplane_path_sum_one_row(
                    nodes, values, weights, fills, terms, k, dense, offsets, depths, n_trees,
                    X + (r0 + g) * n_cols, n_cols)
                out[r0 + g] = -exp2(-acc[g] / denominator) if denominator > 0.0 else -0.5
            break
        for g in range(HYPERPLANE_GROUP):
            rows[g] = X + (r0 + g) * n_cols
            acc[g] = 0.0
        for t in range(n_trees):
            base = offsets[t]
            tree = nodes + base
            w = weights + base * width
            tt = terms + base * k
            depth = depths[t]
            for g in range(HYPERPLANE_GROUP):
                idx[g] = 0
            for level in range(depth):
                if dense:
                    # feature by feature across the group's rows: each row's
                    # products are still added in feature order
                    for g in range(HYPERPLANE_GROUP):
                        wg[g] = w + idx[g] * width
                        dots[g] = 0.0
                    for f in range(n_cols):
                        for g in range(HYPERPLANE_GROUP):
                            dots[g] = dots[g] + wg[g][f] * rows[g][f]
                else:
                    for g in range(HYPERPLANE_GROUP):
                        wg[g] = w + idx[g] * k
                        tg[g] = tt + idx[g] * k
                        dots[g] = 0.0
                    for f in range(k):
                        for g in range(HYPERPLANE_GROUP):
                            dots[g] = dots[g] + wg[g][f] * rows[g][tg[g][f]]
                for g in range(HYPERPLANE_GROUP):
                    if not isfinite(dots[g]):
                        dots[g] = (_nonfinite_dot(wg[g], NULL, n_cols, rows[g],
                                                  fills + (base + idx[g]) * width) if dense else
                                   _nonfinite_dot(wg[g], tg[g], k, rows[g],
                                                  fills + (base + idx[g]) * k))
                    idx[g] = tree[idx[g]].left + (dots[g] > tree[idx[g]].offset)
            for g in range(HYPERPLANE_GROUP):
                acc[g] += values[base + idx[g]]
        for g in range(HYPERPLANE_GROUP):
            out[r0 + g] = -exp2(-acc[g] / denominator) if denominator > 0.0 else -0.5
        r0 += HYPERPLANE_GROUP


# --------------------------------------------------------------------------
# Fitted forests: hold the flat arrays, score without the GIL
# --------------------------------------------------------------------------

cdef class AxisForest:
    """A fitted forest of axis-parallel isolation trees (flat arrays).

    ``score_samples(X, out)`` writes scikit-learn's ``score_samples`` for the
    rows of C-contiguous float32/float64 ``X`` into ``out``; no validation.
    ``missing`` (uint8 per node, 1 = a NaN goes left) serves rows with NaN,
    walked by ``score_samples(X, out, has_missing=True)``: in a second "heap"
    layout whose nodes read each feature from one of two columns (a NaN
    left or right of every split, see heap_layout), else (deeper trees) by
    the missing-aware walk of the compact nodes for the rows with NaN.
    The compact ``nodes``/``values`` are what is pickled; the scoring layout
    ("heap" for trees of depth <= 8, else "links") is derived from them.

    The layout is built only when ``trusted`` is true: the arrays come from
    the build kernels or passed ``anomaly_fast._forest_format``'s structural
    checks.  Otherwise (e.g. a kernel object unpickled on its own) the arrays
    are only stored and ``score_samples`` raises until the estimator rebuilds
    the forest from checked arrays.
    """
    cdef readonly object nodes, values, missing, offsets, depths, ranges
    cdef readonly float64_t denominator
    cdef readonly intp_t block_rows, n_features
    cdef readonly bint ready  # the scoring layout is built
    cdef object _keep  # arrays the AxisScoring pointers point into
    cdef AxisScoring _f
    # "heap" layout for rows with NaN (regions == NULL: none; see heap_layout)
    cdef AxisScoring _nan
    cdef intp_t _nan_block_rows

    def __init__(self, nodes, values, offsets, depths, float64_t denominator,
                 intp_t n_features, bint trusted=False, missing=None, ranges=None):
        self.nodes = nodes
        self.values = values
        self.missing = missing
        self.ranges = ranges  # (n_nodes, 2) training range of each split, read by explain
        self.offsets = offsets
        self.depths = depths
        self.denominator = denominator
        self.n_features = n_features
        memset(&self._f, 0, sizeof(AxisScoring))
        memset(&self._nan, 0, sizeof(AxisScoring))
        self._keep = ()
        self.ready = trusted
        if not trusted:
            return
        self.block_rows = block_rows_for(n_features)
        cdef const int32_t[::1] d = depths
        cdef const int64_t[::1] o = offsets
        cdef const float64_t[::1] v = values
        cdef const uint64_t[::1] regions
        cdef const float64_t[::1] leaves
        cdef const float64_t[::1] thresholds
        cdef const uint32_t[:, ::1] links
        self._f.n_trees = o.shape[0]
        if self._f.n_trees == 0:
            return
        self._f.depths = &d[0]
        self._f.offsets = &o[0]
        self._f.values = &v[0]
        heap = heap_layout(nodes, values, offsets, depths, self.block_rows)
        if heap is not None:
            regions, leaves = heap
            self._f.regions = <const char*>&regions[0]
            self._f.leaves = &leaves[0]
            self._keep = heap
            if missing is not None:
                self._nan_block_rows = block_rows_for(2 * n_features)
                regions = heap_layout(nodes, values, offsets, depths, self._nan_block_rows,
                                      missing, n_features)[0]
                self._nan = self._f
                self._nan.regions = <const char*>&regions[0]
                self._keep = heap + (regions.base,)
        else:
            thresholds = np.ascontiguousarray(nodes["threshold"])
            links = scoring_links(nodes, self.block_rows)
            self._f.thresholds = &thresholds[0]
            self._f.links = &links[0, 0]
            self._keep = (thresholds.base, links.base)

    def __reduce__(self):
        return (AxisForest, (self.nodes, self.values, self.offsets, self.depths,
                             self.denominator, self.n_features, False, self.missing,
                             self.ranges))

    @property
    def n_trees(self):
        return len(self.offsets)

    @property
    def layout(self):
        """The scoring layout: "heap" (complete trees, depth <= 8) or "links"."""
        return "heap" if self._f.regions != NULL else "links"

    def score_samples(self, X, float64_t[::1] out, bint has_missing=False):
        """``has_missing``: X may hold NaN (the missing-aware walk)."""
        cdef int status
        if not self.ready:
            raise RuntimeError("forest arrays were not checked; rebuild the estimator from them")
        cdef bint nan_heap = has_missing and self._nan.regions != NULL
        if has_missing and not nan_heap:  # rare: float32 is widened (exactly)
            self._score_split(np.ascontiguousarray(X, dtype=np.float64), np.asarray(out))
            return
        if X.dtype == np.float32:
            status = self._score_f32(X, out, nan_heap)
        else:
            status = self._score_f64(X, out, nan_heap)
        if status != 0:
            raise MemoryError("not enough memory to score")

    cdef int _score_f32(self, const float[:, ::1] X, float64_t[::1] out, bint missing=False):
        cdef int status = 0
        cdef const AxisScoring* layout = &self._nan if missing else &self._f
        cdef intp_t block_rows = self._nan_block_rows if missing else self.block_rows
        if X.shape[0] > 0:
            with nogil:
                status = _axis_score(layout, &X[0, 0], X.shape[0], X.shape[1], block_rows, self.denominator,
                                     &out[0], missing)
        return status

    cdef int _score_f64(self, const double[:, ::1] X, float64_t[::1] out, bint missing=False):
        cdef int status = 0
        cdef const AxisScoring* layout = &self._nan if missing else &self._f
        cdef intp_t block_rows = self._nan_block_rows if missing else self.block_rows
        if X.shape[0] > 0:
            with nogil:
                status = _axis_score(layout, &X[0, 0], X.shape[0], X.shape[1], block_rows, self.denominator,
                                     &out[0], missing)
        return status

    def _score_split(self, X, out):
        """Rows of float64 ``X`` without NaN through the NaN-free layout, the
        others through the missing-aware walk: the same leaves either way."""
        nan_rows = np.isnan(X).any(axis=1)
        if nan_rows.all():
            self._score_missing(X, out)
            return
        clean = np.flatnonzero(~nan_rows)
        part = np.empty(clean.shape[0])
        if self._score_f64(np.ascontiguousarray(X[clean]), part) != 0:
            raise MemoryError("not enough memory to score")
        out[clean] = part
        dirty = np.flatnonzero(nan_rows)
        part = np.empty(dirty.shape[0])
        self._score_missing(np.ascontiguousarray(X[dirty]), part)
        out[dirty] = part

    cdef void _score_missing(self, const double[:, ::1] X, float64_t[::1] out):
        cdef const AxisNode[::1] nodes = self.nodes
        cdef const float64_t[::1] values = self.values
        cdef const uint8_t[::1] missing = self.missing
        cdef const int64_t[::1] offsets = self.offsets
        if X.shape[0] > 0 and offsets.shape[0] > 0:
            with nogil:
                _axis_score_missing(&nodes[0], &values[0], &missing[0], &offsets[0],
                                    self._f.depths, offsets.shape[0], &X[0, 0], X.shape[0],
                                    X.shape[1],
                                    self.denominator, &out[0])


    def score_csr(self, csr, intp_t start, intp_t stop, float64_t[::1] out,
                  bint has_missing=False, int walk=0):
        """score_samples of rows ``start:stop`` of a canonical CSR matrix
        ``csr`` = (data, indices, indptr, n_cols) into ``out`` (stop - start
        values), equal bit for bit to the dense matrix's scores: when
        ``has_missing`` is false, from the trees' zero paths for sparse rows
        in the heap layout (_axis_score_csr_rows), else in the dense
        kernel's layout (_axis_score_csr_blocks); with NaN, the missing-aware
        walk (_axis_score_csr).  ``walk`` (tests): 0 chooses, 1 forces the
        blocks, 2 the zero paths (heap layout only)."""
        cdef CSRRows X
        cdef int status = 0
        cdef const AxisNode[::1] nodes = self.nodes
        cdef const float64_t[::1] values = self.values
        cdef const uint8_t[::1] missing = self.missing
        if not self.ready:
            raise RuntimeError("forest arrays were not checked; rebuild the estimator from them")
        _csr_view(csr, &X)
        if walk == 2 and self._f.regions == NULL:
            raise ValueError("the zero-path walk needs the heap layout")
        if stop <= start or self._f.n_trees == 0:
            return
        with nogil:
            if has_missing:
                status = _axis_score_csr(&nodes[0], &values[0], &missing[0], self._f.offsets,
                                         self._f.depths, self._f.n_trees, &X, start, stop,
                                         self.denominator, &out[0])
            elif walk == 2 or (walk == 0 and _csr_rows_pay(&self._f, &X, start, stop)):
                status = _axis_score_csr_rows(&self._f, &X, start, stop, self.block_rows,
                                              self.denominator, &out[0])
            else:
                status = _axis_score_csr_blocks(&self._f, &X, start, stop, self.block_rows,
                                                self.denominator, &out[0])
        if status != 0:
            raise MemoryError("not enough memory to score")


cdef class HyperplaneForest:
    """A fitted forest of hyperplane isolation trees (flat arrays); see
    :class:`AxisForest`.  ``normals``/``terms`` hold ``n_terms`` (weight,
    feature) pairs per node, features ascending.  When the normals use at
    least half of the features, scoring uses a dense copy of the weights.
    ``fills`` (n_nodes, k): the value a missing coordinate takes (None for a
    forest saved before missing values were supported: ``missing_ready`` is
    then False and rows with NaN must not be scored)."""
    cdef readonly object nodes, values, normals, terms, offsets, depths, fills
    cdef readonly float64_t denominator
    cdef readonly intp_t n_features
    cdef readonly bint dense
    cdef readonly bint ready  # the scoring arrays are built (see AxisForest)
    cdef object _weights_arr, _fills_arr
    cdef const float64_t[::1] _fills
    cdef const HyperplaneNode[::1] _nodes
    cdef const float64_t[::1] _values
    cdef const float64_t[::1] _weights
    cdef const int32_t[::1] _terms
    cdef const int64_t[::1] _offsets
    cdef const int32_t[::1] _depths
    cdef intp_t _k

    def __init__(self, nodes, values, normals, terms, offsets, depths,
                 float64_t denominator, intp_t n_features, bint trusted=False, fills=None):
        self.nodes = nodes
        self.values = values
        self.normals = normals
        self.terms = terms
        self.fills = fills
        self.offsets = offsets
        self.depths = depths
        self.denominator = denominator
        self.n_features = n_features
        self.ready = trusted
        if not trusted:
            return
        self._k = normals.shape[1]
        self.dense = 2 * self._k >= n_features
        if self.dense:
            self._weights_arr = dense_weights(np.ascontiguousarray(normals),
                                              np.ascontiguousarray(terms), n_features)
        else:
            self._weights_arr = np.ascontiguousarray(normals).ravel()
        self._weights = self._weights_arr
        # without fills (an old forest) NaN rows are refused by the estimator;
        # the kernel then reads NaN fills, i.e. ignores the coordinate
        fill_values = (np.full(normals.shape, np.nan) if fills is None
                       else np.ascontiguousarray(fills, dtype=np.float64))
        if self.dense:
            self._fills_arr = dense_weights(fill_values, np.ascontiguousarray(terms), n_features)
        else:
            self._fills_arr = fill_values.ravel()
        self._fills = self._fills_arr
        self._terms = np.ascontiguousarray(terms).ravel()
        self._nodes = nodes
        self._values = values
        self._offsets = offsets
        self._depths = depths

    def __reduce__(self):
        return (HyperplaneForest, (self.nodes, self.values, self.normals, self.terms,
                                   self.offsets, self.depths, self.denominator,
                                   self.n_features, False, self.fills))

    @property
    def missing_ready(self):
        """Whether the forest stores fills, i.e. can score rows with NaN."""
        return self.fills is not None

    @property
    def n_trees(self):
        return len(self.offsets)

    def score_samples(self, X, float64_t[::1] out, bint has_missing=False):
        """``has_missing`` is accepted for symmetry with AxisForest: NaN rows
        take the same kernel (a NaN dot product falls to _robust_dot)."""
        if not self.ready:
            raise RuntimeError("forest arrays were not checked; rebuild the estimator from them")
        if X.dtype == np.float32:
            self._score_f32(X, out)
        else:
            self._score_f64(X, out)

    cdef void _score_f32(self, const float[:, ::1] X, float64_t[::1] out):
        if X.shape[0] == 0:
            return
        with nogil:
            _hyperplane_score(&self._nodes[0], &self._values[0], &self._weights[0],
                              &self._fills[0],
                              &self._terms[0], self._k, self.dense, &self._offsets[0],
                              &self._depths[0], self._offsets.shape[0], &X[0, 0],
                              X.shape[0], X.shape[1], self.denominator, &out[0])

    cdef void _score_f64(self, const double[:, ::1] X, float64_t[::1] out):
        if X.shape[0] == 0:
            return
        with nogil:
            _hyperplane_score(&self._nodes[0], &self._values[0], &self._weights[0],
                              &self._fills[0],
                              &self._terms[0], self._k, self.dense, &self._offsets[0],
                              &self._depths[0], self._offsets.shape[0], &X[0, 0],
                              X.shape[0], X.shape[1], self.denominator, &out[0])


    def score_csr(self, csr, intp_t start, intp_t stop, float64_t[::1] out,
                  bint has_missing=False):
        """As :meth:`AxisForest.score_csr`."""
        cdef CSRRows X
        cdef intp_t r0, nb, block = _csr_block_rows(csr[3])
        cdef float64_t* dense
        cdef bint failed = False
        if not self.ready:
            raise RuntimeError("forest arrays were not checked; rebuild the estimator from them")
        _csr_view(csr, &X)
        if stop <= start:
            return
        with nogil:
            dense = <float64_t*>malloc(block * X.n_cols * sizeof(float64_t))
            failed = dense == NULL
            r0 = start
            while not failed and r0 < stop:
                nb = min(block, stop - r0)
                _densify_rows(&X, r0, nb, dense)
                _hyperplane_score(&self._nodes[0], &self._values[0], &self._weights[0],
                                  &self._fills[0], &self._terms[0], self._k, self.dense,
                                  &self._offsets[0], &self._depths[0], self._offsets.shape[0],
                                  <const float64_t*>dense, nb, X.n_cols, self.denominator,
                                  &out[r0 - start])
                r0 += nb
            free(dense)
        if failed:
            raise MemoryError("not enough memory to score")


def compact_rows(arr, const int32_t[::1] n_nodes):
    """The first ``n_nodes[t]`` entries of row t of ``arr`` (shape (n_trees,
    width, ...)), rows one after another: shape (sum(n_nodes), ...).  A copy
    per tree with memcpy (boolean-mask indexing of structured arrays is
    several times slower)."""
    arr = np.ascontiguousarray(arr)
    cdef intp_t n_trees = arr.shape[0], t, total = 0, pos = 0
    cdef intp_t entry = arr.itemsize
    for extent in arr.shape[2:]:
        entry *= extent
    for t in range(n_trees):
        total += n_nodes[t]
    out = np.empty((total,) + arr.shape[2:], dtype=arr.dtype)
    if total == 0:
        return out
    cdef const unsigned char[:, ::1] src = arr.reshape(n_trees, -1).view(np.uint8)
    cdef unsigned char[::1] dst = out.reshape(-1).view(np.uint8)
    for t in range(n_trees):
        memcpy(&dst[pos], &src[t, 0], n_nodes[t] * entry)
        pos += n_nodes[t] * entry
    return out


def dense_weights(const float64_t[:, ::1] normals, const int32_t[:, ::1] terms,
                  intp_t n_features):
    """The dense (n_nodes * n_features) weights of sparse normals: entry
    (node, terms[node, j]) += normals[node, j] (padding terms carry weight 0.0
    on feature 0, so they are added, never written over a real weight)."""
    out = np.zeros(normals.shape[0] * n_features, dtype=np.float64)
    cdef float64_t[::1] o = out
    cdef intp_t node, j
    for node in range(normals.shape[0]):
        for j in range(normals.shape[1]):
            o[node * n_features + terms[node, j]] += normals[node, j]
    return out


def c_average_path_length(intp_t n):
    """The kernel's c(n), exposed so tests can compare it with the Python helper."""
    return average_path_length(n)


# --------------------------------------------------------------------------
# Explanations: per-feature credit along each row's path (issue 17)
# --------------------------------------------------------------------------
#
# Axis trees (anomaly_fast.forest.explain builds the tables once per forest):
# a step through a split on feature f whose node held n training rows with f
# in [lo, hi] credits f with the isolation the step is EXPECTED to bring over
# the threshold's draw, given where x[f] lies relative to [lo, hi]:
#     credit = table[base + bin(q)] + g * table[base + EXPLAIN_BINS + 1]
# with t = (x[f] - lo) * scale (scale = 1 / (hi - lo)), q = t clipped to
# [0, 1], g = 1 - 1 / (1 + o) the share of the range extended to x that lies
# between x and the node's rows (o = how far t is outside [0, 1]).  Row
# ``base`` of the table belongs to the node's size n: entry i is the expected
# gain c(n) - 1 - E[c(child)] at q = i / EXPLAIN_BINS, the last entry the
# extra gain of certain isolation.  Leaves point at row 0 (all zeros) with
# scale 0, so the branch-free self-steps of a leaf credit nothing; a leaf's
# ``lo`` holds its path length.  The walks also sum the path lengths, so the
# score comes out of the same walk.
#
# Hyperplane trees: ``gains[node]`` is the realized isolation V(parent) - 1 -
# V(node) of the step into ``node`` (V = c(size)), shared among the normal's
# features; these telescope to the score.

cdef struct ExplainNode:
    float64_t threshold  # a point goes right when x[feature] > threshold; +inf at a leaf
    float64_t lo         # low end of the node's training range of feature; a leaf: its path length
    float scale          # 1 / (hi - lo), 0 when hi == lo and at a leaf
    int32_t base         # first table entry of the node's size; 0 (a row of zeros) at a leaf
    int32_t feature      # split feature; 0 at a leaf
    int32_t left         # left child (tree-relative); right child is left + 1; a leaf points at itself


cdef enum:
    EXPLAIN_BLOCK = 64  # rows walked through one tree together by the explain kernels
    EXPLAIN_TREES = 8   # trees one row walks together when a block has too few rows
    EXPLAIN_MAX_DEPTH = 32  # deepest tree the one-row walk records (max_samples <= 2**32)
    EXPLAIN_BINS = 32   # positions in [lo, hi] the expected-gain table resolves


EXPLAIN_NODE_DTYPE = np.dtype(
    [("threshold", np.float64), ("lo", np.float64), ("scale", np.float32), ("base", np.int32),
     ("feature", np.int32), ("left", np.int32)],
    align=True,
)
EXPLAIN_TABLE_WIDTH = EXPLAIN_BINS + 2  # entries per node size in the expected-gain table


cdef extern from "_clamp.h" nogil:
    # branch-free clamps (maxsd/minsd): a branch on where a value lies is a coin flip
    float64_t _max0 "af_max0"(float64_t x)  # x > 0 ? x : 0, NaN: 0
    float64_t _min1 "af_min1"(float64_t x)  # x < 1 ? x : 1


cdef inline float64_t _credit(float64_t lo, float64_t scale, const float64_t* row,
                              float64_t v) noexcept nogil:
    """The expected gain of one step (see above) from a split's ``lo``,
    ``scale`` and table row; NaN-safe comparisons, so an infinite ``v`` at a
    leaf (t = NaN) credits 0 and at a split is isolated for certain (g = 1)."""
    cdef intp_t b
    cdef float64_t outside = _credit_place(lo, scale, v, &b)
    return _credit_sum(row[b], outside, row[EXPLAIN_BINS + 1])


cdef inline float64_t _credit_place(float64_t lo, float64_t scale, float64_t v, intp_t* b) noexcept nogil:
    """Where ``v`` lies: sets ``b`` to the table entry of its position
    clipped to the range, returns 1 + o (o: how far outside, NaN: 0)."""
    cdef float64_t t = (v - lo) * scale
    cdef float64_t q = _min1(_max0(t))  # t clipped to [0, 1] (NaN: 0)
    b[0] = <intp_t>(q * EXPLAIN_BINS + 0.5)
    return 1.0 + _max0(fabs(t - 0.5) - 0.5)


cdef inline float64_t _credit_sum(float64_t near, float64_t outside, float64_t gain) noexcept nogil:
    """_credit from its table entries and _credit_place's 1 + o."""
    return near + (1.0 - 1.0 / outside) * gain


cdef inline float64_t _expected_credit(const ExplainNode* node, float64_t v,
                                       const float64_t* table) noexcept nogil:
    return _credit(node.lo, node.scale, table + node.base, v)


cdef inline void _axis_explain_missing(const ExplainNode* tree, const uint8_t* missing,
                                       const float64_t* table, const float64_t* row,
                                       float64_t* out, float64_t* acc) noexcept nogil:
    """One tree, one row that holds NaN: a plain walk; a step a NaN routed
    (``missing`` side of its node) credits no feature."""
    cdef intp_t node = 0, f, go
    cdef float64_t v
    while tree[node].left != node:
        f = tree[node].feature
        v = row[f]
        if v != v:
            node = tree[node].left + 1 - missing[node]
        else:
            out[f] += _expected_credit(&tree[node], v, table)
            node = tree[node].left + (v > tree[node].threshold)
    acc[0] += tree[node].lo


cdef void _credit_paths(const ExplainNode* const* walked, const float64_t* seen,
                        const intp_t* lengths, intp_t n_paths, const float64_t* table,
                        float64_t* out) noexcept nogil:
    """out[feature] += the credit of each step of ``n_paths`` (<=
    EXPLAIN_TREES) paths of one row (the few-rows walk): path g is
    ``walked[g * EXPLAIN_MAX_DEPTH + l]`` with the value ``seen[...]`` it
    read, for l < ``lengths[g]``, added path by path, step by step.  A
    leaf's self-steps (base 0) are dropped first (they credit +0.0: the sums
    are the same bit for bit), and the divisions then run over all the steps
    at once, which the compiler vectorizes."""
    cdef intp_t g, level, n = 0, j
    cdef const ExplainNode* at
    cdef int32_t feature[EXPLAIN_TREES * EXPLAIN_MAX_DEPTH]
    cdef float64_t near[EXPLAIN_TREES * EXPLAIN_MAX_DEPTH]
    cdef float64_t gain[EXPLAIN_TREES * EXPLAIN_MAX_DEPTH]
    cdef float64_t outside[EXPLAIN_TREES * EXPLAIN_MAX_DEPTH]
    cdef intp_t entry
    for g in range(n_paths):
        for level in range(lengths[g]):
            at = walked[g * EXPLAIN_MAX_DEPTH + level]
            outside[n] = _credit_place(at.lo, at.scale, seen[g * EXPLAIN_MAX_DEPTH + level], &entry)
            near[n] = table[at.base + entry]
            gain[n] = table[at.base + EXPLAIN_BINS + 1]
            feature[n] = at.feature
            n += at.base != 0  # a leaf's self-step is overwritten by the next step
    for j in range(n):
        near[j] = _credit_sum(near[j], outside[j], gain[j])
    for j in range(n):
        out[feature[j]] += near[j]


cdef void _axis_explain(const ExplainNode* nodes, const uint8_t* missing,
                        const float64_t* table,
                        const int64_t* offsets, const int32_t* depths, intp_t n_trees,
                        const float64_t* X, intp_t n_rows, intp_t n_cols,
                        float64_t denominator, float64_t* scores, float64_t* phi) noexcept nogil:
    """Scores and credits of axis trees: each step credits its split feature
    with its expected gain.  Rows without NaN take exactly ``depths[t]``
    branch-free steps (a leaf steps onto itself and credits 0) level by
    level: a block of rows through one tree, or, for fewer rows,
    EXPLAIN_TREES trees at once, so that independent walks overlap their
    memory accesses.  Rows with NaN take the plain walk.  Every tree is at
    most EXPLAIN_MAX_DEPTH deep (AxisExplainer checks it)."""
    cdef intp_t r, r0, nb, t, t0, nt, g, level, depth, node, f
    cdef float64_t v, scale = 1.0 / denominator if denominator > 0.0 else 0.0
    cdef float64_t acc[EXPLAIN_BLOCK]
    cdef bint nan_row[EXPLAIN_BLOCK]
    cdef intp_t idx[EXPLAIN_BLOCK]
    cdef intp_t lengths[EXPLAIN_TREES]
    cdef const ExplainNode* trees[EXPLAIN_TREES]
    # the nodes and values of the steps walked, credited after the walk (a
    # lean walk keeps more independent node loads in flight)
    cdef const ExplainNode* walked[EXPLAIN_BLOCK * EXPLAIN_MAX_DEPTH]
    cdef float64_t seen[EXPLAIN_BLOCK * EXPLAIN_MAX_DEPTH]
    cdef const float64_t* row
    cdef const ExplainNode* tree
    cdef const ExplainNode* at
    cdef float64_t* out
    for f in range(n_rows * n_cols):
        phi[f] = 0.0
    r0 = 0
    while r0 < n_rows:
        nb = min(<intp_t>EXPLAIN_BLOCK, n_rows - r0)
        for r in range(nb):
            acc[r] = 0.0
            row = X + (r0 + r) * n_cols
            nan_row[r] = False
            for f in range(n_cols):
                if row[f] != row[f]:
                    nan_row[r] = True
                    break
        if nb >= EXPLAIN_TREES:
            for t in range(n_trees):
                tree = nodes + offsets[t]
                for r in range(nb):
                    idx[r] = 0
                    if nan_row[r]:
                        _axis_explain_missing(tree, missing + offsets[t], table, X + (r0 + r) * n_cols,
                                              phi + (r0 + r) * n_cols, &acc[r])
                depth = depths[t]
                for level in range(depth):
                    for r in range(nb):
                        if nan_row[r]:
                            continue
                        at = &tree[idx[r]]
                        v = X[(r0 + r) * n_cols + at.feature]
                        walked[r * EXPLAIN_MAX_DEPTH + level] = at
                        seen[r * EXPLAIN_MAX_DEPTH + level] = v
                        idx[r] = at.left + (v > at.threshold)
                for r in range(nb):
                    if nan_row[r]:
                        continue
                    out = phi + (r0 + r) * n_cols
                    for level in range(depth):
                        at = walked[r * EXPLAIN_MAX_DEPTH + level]
                        out[at.feature] += _expected_credit(at, seen[r * EXPLAIN_MAX_DEPTH + level], table)
                    acc[r] += tree[idx[r]].lo
        else:
            for r in range(nb):
                row = X + (r0 + r) * n_cols
                out = phi + (r0 + r) * n_cols
                if nan_row[r]:
                    for t in range(n_trees):
                        _axis_explain_missing(nodes + offsets[t], missing + offsets[t], table, row, out,
                                              &acc[r])
                    continue
                t0 = 0
                while t0 < n_trees:
                    nt = min(<intp_t>EXPLAIN_TREES, n_trees - t0)
                    depth = 0
                    for g in range(nt):
                        trees[g] = nodes + offsets[t0 + g]
                        idx[g] = 0
                        depth = max(depth, <intp_t>depths[t0 + g])
                    for level in range(depth):
                        for g in range(nt):
                            at = &trees[g][idx[g]]
                            v = row[at.feature]
                            walked[g * EXPLAIN_MAX_DEPTH + level] = at
                            seen[g * EXPLAIN_MAX_DEPTH + level] = v
                            idx[g] = at.left + (v > at.threshold)
                    for g in range(nt):
                        lengths[g] = depths[t0 + g]
                    _credit_paths(walked, seen, lengths, nt, table, out)  # tree by tree, as the block walk
                    for g in range(nt):
                        acc[r] += trees[g][idx[g]].lo
                    t0 += nt
        for r in range(nb):
            out = phi + (r0 + r) * n_cols
            for f in range(n_cols):
                out[f] *= scale
            scores[r0 + r] = -exp2(-acc[r] / denominator) if denominator > 0.0 else -0.5
        r0 += nb


cdef void _hyperplane_explain(const HyperplaneNode* nodes, const float64_t* values,
                              const float64_t* normals, const int32_t* terms, intp_t k,
                              const float64_t* gains, const float64_t* center,
                              const int64_t* offsets, intp_t n_trees, const float64_t* X,
                              intp_t n_rows, intp_t n_cols, float64_t denominator,
                              float64_t* scores, float64_t* phi,
                              float64_t* share) noexcept nogil:
    """Scores and credits of hyperplane trees: a step's positive gain is
    shared among the normal's features in proportion to |w_j (x_j -
    center_j)| (equally among the infinite ones when some are infinite,
    equally among the non-zero weights when all are 0); a negative gain is
    summed per row and spread evenly over all n_cols features at the end.
    ``share``: scratch of k doubles.  The
    dot product is the scoring kernels' (terms in feature order, _robust_dot
    when not finite), so rows go where scoring sends them."""
    cdef intp_t r, r0, nb, t, node, child, base, j, n_inf, n_nonzero
    cdef float64_t dot, total, g, s, wj, xj, scale = 1.0 / denominator if denominator > 0.0 else 0.0
    cdef float64_t acc[EXPLAIN_BLOCK]
    cdef float64_t loss[EXPLAIN_BLOCK]
    cdef const float64_t* row
    cdef const float64_t* w
    cdef const int32_t* tt
    cdef float64_t* out
    for j in range(n_rows * n_cols):
        phi[j] = 0.0
    r0 = 0
    while r0 < n_rows:  # a block of rows walks each tree while it is in cache
        nb = min(<intp_t>EXPLAIN_BLOCK, n_rows - r0)
        for r in range(nb):
            acc[r] = 0.0
            loss[r] = 0.0
        for t in range(n_trees):
            base = offsets[t]
            for r in range(nb):
                row = X + (r0 + r) * n_cols
                out = phi + (r0 + r) * n_cols
                node = 0
                while nodes[base + node].left != node:
                    w = normals + (base + node) * k
                    tt = terms + (base + node) * k
                    dot = 0.0
                    total = 0.0
                    for j in range(k):  # the dot product as _sparse_dot adds it, and the shares
                        wj = w[j]
                        xj = row[tt[j]]
                        dot = dot + wj * xj
                        s = fabs(wj * (xj - center[tt[j]]))
                        share[j] = s
                        total += s
                    if not isfinite(dot):
                        dot = _robust_dot(w, tt, k, row, NULL)  # no NaN here: the API refuses it (fills unused)
                    child = nodes[base + node].left + (dot > nodes[base + node].offset)
                    g = gains[base + child]
                    loss[r] += fmin(g, 0.0)  # a loss is no feature's: spread evenly at the end
                    if total > 0.0 and isfinite(total):
                        g = fmax(g, 0.0) / total  # no branch on the sign: half the steps are losses
                        for j in range(k):
                            out[tt[j]] += g * share[j]
                    elif g > 0.0:  # an infinite coordinate (or 0 * inf padding), or x == center
                        n_inf = 0
                        n_nonzero = 0
                        for j in range(k):
                            if w[j] != 0.0:
                                n_nonzero += 1
                                n_inf += fabs(w[j] * (row[tt[j]] - center[tt[j]])) == INFINITY
                        for j in range(k):
                            if w[j] == 0.0:
                                continue
                            if n_inf > 0:
                                if fabs(w[j] * (row[tt[j]] - center[tt[j]])) == INFINITY:
                                    out[tt[j]] += g / n_inf
                            else:
                                out[tt[j]] += g / n_nonzero
                    node = child
                acc[r] += values[base + node]
        for r in range(nb):
            out = phi + (r0 + r) * n_cols
            g = loss[r] / n_cols
            for j in range(n_cols):
                out[j] = (out[j] + g) * scale
            scores[r0 + r] = -exp2(-acc[r] / denominator) if denominator > 0.0 else -0.5
        r0 += nb


cdef class AxisExplainer:
    """What the axis explain kernel reads for one :class:`AxisForest`, with
    pointers into it, so that a call acquires no arrays but its own (nine
    typed memoryviews cost about 1.4 us a call): the ``nodes`` in
    EXPLAIN_NODE_DTYPE and the flat expected-gain ``table`` (see
    anomaly_fast.forest.explain.axis_explain_layout), checked structurally
    here: one node per forest node, every table row a node points at within
    ``table``, every tree at most EXPLAIN_MAX_DEPTH deep."""
    cdef readonly object nodes, table
    cdef AxisForest forest
    cdef const ExplainNode* _nodes
    cdef const float64_t* _table
    cdef const uint8_t* _missing

    def __init__(self, AxisForest forest, nodes, table):
        cdef const ExplainNode[::1] n = nodes
        cdef const float64_t[::1] tab = table
        cdef const uint8_t[::1] miss = forest.missing
        cdef const int32_t[::1] depths = forest.depths
        cdef intp_t i, t
        if not forest.ready:
            raise RuntimeError("forest arrays were not checked; rebuild the estimator from them")
        if n.shape[0] != len(forest.nodes) or miss.shape[0] != n.shape[0]:
            raise ValueError("explain nodes and missing sides must have one entry per forest node")
        for i in range(n.shape[0]):
            if n[i].base < 0 or n[i].base > tab.shape[0] - EXPLAIN_TABLE_WIDTH:
                raise ValueError(f"explain node {i} points outside the expected-gain table")
        for t in range(depths.shape[0]):  # max_samples < 2**31 keeps trees within it
            if depths[t] > EXPLAIN_MAX_DEPTH:
                raise ValueError(f"explain walks trees of depth <= {EXPLAIN_MAX_DEPTH}")
        self.forest, self.nodes, self.table = forest, nodes, table
        self._nodes, self._table, self._missing = NULL, NULL, NULL
        if n.shape[0] > 0:
            self._nodes, self._table, self._missing = &n[0], &tab[0], &miss[0]

    def explain(self, const float64_t[:, ::1] X, float64_t[::1] scores, float64_t[:, ::1] phi):
        """Write score_samples into ``scores`` and per-feature credits into
        ``phi`` for the rows of ``X`` (shapes checked, values not; see
        _axis_explain)."""
        cdef const AxisScoring* f = &self.forest._f
        if (X.shape[1] != self.forest.n_features or scores.shape[0] != X.shape[0] or phi.shape[0] != X.shape[0]
                or phi.shape[1] != X.shape[1]):
            raise ValueError(f"explain takes X of {self.forest.n_features} columns and outputs of its shape")
        if X.shape[0] == 0 or f.n_trees == 0:
            return
        with nogil:
            _axis_explain(self._nodes, self._missing, self._table, f.offsets, f.depths, f.n_trees,
                          &X[0, 0], X.shape[0], X.shape[1], self.forest.denominator, &scores[0], &phi[0, 0])


def hyperplane_explain(const HyperplaneNode[::1] nodes, const float64_t[::1] values,
                       const float64_t[:, ::1] normals, const int32_t[:, ::1] terms,
                       const float64_t[::1] gains, const float64_t[::1] center,
                       const int64_t[::1] offsets, const float64_t[:, ::1] X,
                       float64_t denominator, float64_t[::1] scores, float64_t[:, ::1] phi):
    """As :meth:`AxisExplainer.explain` for hyperplane trees (see _hyperplane_explain)."""
    cdef intp_t k = normals.shape[1]
    if X.shape[0] == 0 or offsets.shape[0] == 0:
        return
    cdef float64_t* share = <float64_t*>malloc(k * sizeof(float64_t))
    if share == NULL:
        raise MemoryError("not enough memory to explain")
    with nogil:
        _hyperplane_explain(&nodes[0], &values[0], &normals[0, 0], &terms[0, 0], k,
                            &gains[0], &center[0], &offsets[0], offsets.shape[0],
                            &X[0, 0], X.shape[0], X.shape[1], denominator,
                            &scores[0], &phi[0, 0], share)
    free(share)

