# Half-Space Trees (Tan, Ting & Liu 2011): complete random trees of fixed
# height whose nodes count how many points of a window pass through them.
#
# Tree layout.  Tree t is a complete binary tree in 1-based heap order: slot
# 1 is the root, node i has children 2i (x[feature] < threshold) and 2i + 1,
# and slots 2**height .. 2**(height+1) - 1 are the leaves; slot 0 is unused.
# Nodes are 32 bytes and each tree starts on a 64-byte boundary, so the two
# children of a node share one cache line.
#
# Walks are interleaved: a group of independent walks ("lanes": the trees
# for one point, or a block of points in one tree) advance one level at a
# time, so their memory loads overlap instead of forming one long chain.
#
# Window pivot in O(1).  A node stores the index of the window its ``latest``
# count belongs to.  When the forest moves to window w + 1 nothing is
# touched: a node last written in window w is read as reference = latest,
# latest = 0, and a node last written before that as reference = latest = 0.
# A node is brought up to date the next time a point passes through it.
#
# Threads.  Learning (learn_one, learn_many, score_learn_many on one thread)
# runs with the GIL held from start to end and calls no Python code, so each
# call is atomic on CPython: counts are never lost between threads.  The GIL
# is released only (1) by score_many, which reads, and (2) by the tree ranges
# of a multi-threaded batch (n_jobs), each thread writing its own trees.  Two
# counters, changed with the GIL held, guard those sections: ``_readers``
# (nogil sections in progress) and ``_writers`` (multi-threaded learning
# batches in progress).  A learning call waits while ``_writers`` > 0 (so
# counts are never written by two threads at once), and anything that frees
# or reshapes the nodes (_configure, _build, _load_nodes) waits until both
# are 0 (so no nogil section ever walks freed memory).  Waiting sleeps with
# the GIL released; the checks cost one comparison per call.  A score taken
# while another thread learns reads counts mid-update: a valid score of a
# model between two states, never a crash.  Not safe on a free-threaded build.
#
# The class validates nothing: the Python class that holds it
# (``anomaly_fast.streaming.HalfSpaceTrees``) checks parameters, input and
# restored states before calling the ``_``-prefixed entry points (which check
# only that a row's length matches the trees, so a race between threads can
# never make a walk read past a row).  The model's ``learn_one``/``score_one``
# (methods of ``HalfSpaceModelBase`` below, which reaches the core through a C
# field) take only a finite float64 1-D array (or a dict with exactly the
# model's keys) of the right length here, and hand anything else to the
# model's validating slow path (``_learn_other`` / ``_score_other``).
import time

import numpy as np
cimport cython
cimport numpy as cnp

from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_CheckExact
from cpython.ref cimport PyObject
from libc.math cimport isfinite
from libc.stdlib cimport malloc, free
from posix.stdlib cimport posix_memalign
from libc.string cimport memcmp, memcpy, memset

from _types cimport float64_t, int32_t, int64_t, intp_t

cnp.import_array()

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void* address) noexcept nogil

cdef extern from "Python.h":
    # without Cython's error check: the caller looks for (and clears) the error
    double _int_as_double "PyLong_AsDouble"(object number) noexcept


cdef struct HSTNode:
    float64_t threshold  # points with x[feature] < threshold go left (internal nodes only)
    int64_t window       # index of the window ``latest`` counts points of
    int32_t feature      # split feature (internal nodes only)
    int32_t latest       # points of window ``window`` that passed through the node
    int32_t reference    # points of window ``window - 1`` that passed through the node
    int32_t unused       # padding to 32 bytes

NODE_DTYPE = np.dtype(
    [("threshold", np.float64), ("window", np.int64), ("feature", np.int32),
     ("latest", np.int32), ("reference", np.int32), ("unused", np.int32)],
    align=True,
)

cdef float64_t PADDING = 0.15  # a split is drawn in the middle 70% of the node's range
cdef enum:
    LANES = 32        # walks advanced together, level by level
    ROW_CHUNK = 4096  # rows every tree walks before the next rows (they stay in cache)


cdef inline int32_t _reference(const HSTNode* node, int64_t w) noexcept nogil:
    """Reference mass (points of window w - 1) of a node, read lazily.
    (Written as selects, which compile to conditional moves: which case
    applies is hard to predict.)"""
    cdef int64_t window = node.window
    return node.reference if window == w else (node.latest if window == w - 1 else 0)


cdef inline int32_t _latest(const HSTNode* node, int64_t w) noexcept nogil:
    """Latest mass (points of window w so far) of a node, read lazily."""
    return node.latest if node.window == w else 0


cdef inline void _learn_node(HSTNode* node, int64_t w) noexcept nogil:
    """Count one more point of window w at a node, first bringing its counts
    to window w (the lazy pivot); branch-free."""
    cdef int64_t window = node.window
    cdef int32_t latest = node.latest
    node.reference = node.reference if window == w else (latest if window == w - 1 else 0)
    node.latest = latest + 1 if window == w else 1
    node.window = w


cdef int _draw_subtree(HSTNode* tree, intp_t node, intp_t depth, intp_t height,
                       intp_t n_features, float64_t* unit_lo, float64_t* unit_hi,
                       float64_t* cumulative, object uniform,
                       const float64_t* lo, const float64_t* width) except -1:
    """Draw the splits of a subtree in pre-order (left before right), in the
    unit cube: a feature is picked with probability proportional to its side
    in the node (``uniform() * total`` located in the cumulative sides), and a
    threshold ``t`` uniformly in the middle 70% of that side.  The stored
    threshold is ``lo + t * width`` in the feature's own units (exactly ``t``
    for limits (0, 1)).  Features with zero width have a zero side and are
    never picked.  ``uniform`` is a Python ``random.Random.random``: with it,
    the draws are those of river's padded trees for the same seed."""
    cdef intp_t f, pick, first, last, mid
    cdef float64_t acc, u, a, b, start, stop, t, saved
    tree[node].window = -2
    tree[node].latest = 0
    tree[node].reference = 0
    tree[node].unused = 0
    tree[node].feature = 0
    tree[node].threshold = 0.0
    if depth == height:
        return 0
    acc = 0.0
    for f in range(n_features):
        acc = acc + (unit_hi[f] - unit_lo[f])
        cumulative[f] = acc
    u = <float64_t>uniform() * (cumulative[n_features - 1] + 0.0)
    first = 0  # the first f in [0, n_features - 1) with cumulative[f] > u, else the last
    last = n_features - 1
    while first < last:
        mid = (first + last) // 2
        if u < cumulative[mid]:
            last = mid
        else:
            first = mid + 1
    pick = first
    a = unit_lo[pick]
    b = unit_hi[pick]
    start = a + PADDING * (b - a)
    stop = b - PADDING * (b - a)
    t = start + (stop - start) * <float64_t>uniform()
    tree[node].feature = <int32_t>pick
    tree[node].threshold = lo[pick] + t * width[pick]
    saved = unit_hi[pick]
    unit_hi[pick] = t
    _draw_subtree(tree, 2 * node, depth + 1, height, n_features, unit_lo, unit_hi,
                  cumulative, uniform, lo, width)
    unit_hi[pick] = saved
    saved = unit_lo[pick]
    unit_lo[pick] = t
    _draw_subtree(tree, 2 * node + 1, depth + 1, height, n_features, unit_lo, unit_hi,
                  cumulative, uniform, lo, width)
    unit_lo[pick] = saved
    return 0


cdef inline void _walk_lanes(HSTNode** trees, const float64_t** rows, intp_t n_lanes,
                             intp_t height, float64_t limit, bint path_sum, bint learn,
                             bint score, int64_t w, float64_t* s,
                             intp_t* path=NULL) noexcept nogil:
    """Walk lane b down tree ``trees[b]`` with point ``rows[b]``, all lanes one
    level at a time.  If ``learn``, add 1 to the latest mass of every node on
    each path; if ``score``, set ``s[b]`` to the lane's raw score: the sum of
    ``reference_mass * 2**depth`` over the walk (``path_sum``) or its value at
    the node where the walk stops (a leaf, or reference mass below ``limit``).
    When scoring only, a non-NULL ``path`` makes every lane walk down to its
    leaf (scoring as before) and receives lane b's node at each depth in
    ``path[b * (height + 1) + depth]``.
    Inlined with constant flags, so each use compiles to its own loop."""
    cdef intp_t node[LANES]
    cdef int active[LANES]
    cdef intp_t b, depth, n_active
    cdef int stop
    cdef float64_t weight, r
    cdef HSTNode* nd
    if score and learn:
        # One walk: score until the walk stops, learn down to the leaf.
        weight = 1.0
        for b in range(n_lanes):
            node[b] = 1
            active[b] = 1
            s[b] = 0.0
        for depth in range(height + 1):
            for b in range(n_lanes):
                nd = trees[b] + node[b]
                r = _reference(nd, w)
                stop = active[b] & ((r < limit) | (depth == height))
                if path_sum:
                    s[b] += active[b] * r * weight
                else:
                    s[b] += stop * r * weight
                active[b] &= 1 - stop
                _learn_node(nd, w)
                if depth < height:
                    node[b] = 2 * node[b] + (rows[b][nd.feature] >= nd.threshold)
                    prefetch(trees[b] + 2 * node[b])
            weight *= 2.0
        return
    if score:
        # Scoring only: stop as soon as every lane has stopped.
        n_active = n_lanes
        weight = 1.0
        for b in range(n_lanes):
            node[b] = 1
            active[b] = 1
            s[b] = 0.0
        for depth in range(height + 1):
            for b in range(n_lanes):
                if path != NULL:
                    path[b * (height + 1) + depth] = node[b]
                # branch-free: whether a walk stops here is unpredictable
                nd = trees[b] + node[b]
                r = _reference(nd, w)
                stop = active[b] & ((r < limit) | (depth == height))
                if path_sum:
                    s[b] += active[b] * r * weight
                else:
                    s[b] += stop * r * weight
                active[b] &= 1 - stop
                n_active -= stop
                if depth < height:
                    node[b] = 2 * node[b] + (rows[b][nd.feature] >= nd.threshold)
                    prefetch(trees[b] + 2 * node[b])
            if n_active == 0 and path == NULL:
                break
            weight *= 2.0
    if learn:
        for b in range(n_lanes):
            node[b] = 1
        for depth in range(height + 1):
            for b in range(n_lanes):
                nd = trees[b] + node[b]
                _learn_node(nd, w)
                if depth < height:
                    node[b] = 2 * node[b] + (rows[b][nd.feature] >= nd.threshold)
                    # The children of the next node share one cache line:
                    # fetch it now, it is needed when this lane comes round.
                    prefetch(trees[b] + 2 * node[b])


cdef class HalfSpaceForest:
    """Compiled core of a Half-Space Trees model (held by
    :class:`anomaly_fast.HalfSpaceTrees`, which validates)."""

    cdef HSTNode* _nodes          # n_trees * nodes_per_tree nodes
    cdef intp_t _n_trees          # trees in the forest
    cdef intp_t _height           # depth of the leaves
    cdef intp_t _slots            # node slots per tree: 2**(height + 1), slot 0 unused
    cdef intp_t _n_features       # features the splits were drawn over
    cdef int32_t _window_size     # points per window
    cdef float64_t _size_limit    # a walk stops at a node with reference mass below this
    cdef bint _path_sum           # score sums r * 2**depth along the path (river) or at the stop node only
    cdef float64_t _max_score     # the largest raw score; scores are 1 - raw / max
    cdef int64_t _window          # index of the current window (0 = first)
    cdef int32_t _count           # points learned in the current window
    cdef bint _built              # the trees have been drawn
    cdef tuple _keys              # dict keys in feature order (None until the features are known)
    cdef float64_t* _dict_buffer  # n_features values: a dict point converted by _dict_row
    cdef intp_t* _path            # n_trees * (height + 1) nodes: the walks of the last point scored
    cdef float64_t* _path_point   # n_features values: that point
    cdef bint _path_valid         # _path holds the walks of _path_point in the current trees
    cdef int _readers             # sections running without the GIL (scoring or a threaded batch)
    cdef int _writers             # multi-threaded learning batches in progress

    def __cinit__(self):
        self._nodes = NULL
        self._built = False
        self._dict_buffer = NULL
        self._path = NULL
        self._path_point = NULL
        self._path_valid = False
        self._readers = 0
        self._writers = 0

    def __dealloc__(self):
        free(self._nodes)
        free(self._dict_buffer)
        free(self._path)
        free(self._path_point)

    cdef int _new_trees(self, intp_t n_features) except -1:
        """Size the buffers of the last scored point's walks for trees just
        built or loaded (and forget any walks recorded before)."""
        self._path_valid = False
        free(self._path)
        free(self._path_point)
        self._path = <intp_t*>malloc(self._n_trees * (self._height + 1) * sizeof(intp_t))
        self._path_point = <float64_t*>malloc(max(n_features, 1) * sizeof(float64_t))
        if self._path == NULL or self._path_point == NULL:
            raise MemoryError()
        return 0

    cdef int _wait(self, bint for_readers) except -1:
        """Return (GIL held) once no multi-threaded learning batch runs -- and,
        with ``for_readers``, no section without the GIL either (see the top
        of this file).  Sleeps with the GIL released meanwhile."""
        while self._writers > 0 or (for_readers and self._readers > 0):
            time.sleep(2e-5)
        return 0

    cdef int _check_width(self, intp_t d) except -1:
        """A row of d values may be walked through the current trees."""
        if not self._built:
            raise ValueError("HalfSpaceTrees: the trees are not built")
        if d != self._n_features:
            raise ValueError(f"HalfSpaceTrees: rows have {d} features, the trees {self._n_features}")
        return 0

    def _begin_threads(self, bint learn):
        """Before a multi-threaded batch (``_run_tree_range`` on every thread,
        then ``_finish_batch``, then ``_end_threads``)."""
        if learn:
            self._wait(False)
            self._writers += 1
        self._readers += 1

    def _end_threads(self, bint learn):
        self._readers -= 1
        if learn:
            self._writers -= 1

    def _configure(self, intp_t n_trees, intp_t height, int32_t window_size, bint path_sum):
        """Set the shape of the forest and forget any trees."""
        self._wait(True)
        free(self._nodes)
        self._nodes = NULL
        self._built = False
        self._n_trees = n_trees
        self._height = height
        self._slots = <intp_t>2 << height
        self._window_size = window_size
        self._size_limit = 0.1 * window_size
        self._path_sum = path_sum
        if path_sum:
            self._max_score = <float64_t>n_trees * window_size * <float64_t>(self._slots - 1)
        else:
            self._max_score = <float64_t>n_trees * window_size * <float64_t>(<intp_t>1 << height)
        self._window = 0
        self._count = 0
        self._n_features = 0
        self._keys = None
        self._path_valid = False

    def _set_key_order(self, tuple keys):
        """The keys of dict points, in feature order (read by the dict
        fast path of ``learn_one`` / ``score_one``)."""
        free(self._dict_buffer)
        self._dict_buffer = <float64_t*>malloc(max(len(keys), 1) * sizeof(float64_t))
        if self._dict_buffer == NULL:
            raise MemoryError()
        self._keys = keys

    def _build(self, object uniform, const float64_t[::1] lo, const float64_t[::1] hi):
        """Draw the trees over the work space [lo, hi], one after another, with
        the uniform [0, 1) generator ``uniform`` (see ``_draw_subtree``)."""
        cdef intp_t d = lo.shape[0], t, f
        cdef size_t n_nodes = <size_t>self._n_trees * <size_t>self._slots
        cdef void* mem = NULL
        self._wait(True)
        free(self._nodes)
        self._nodes = NULL
        self._built = False
        if posix_memalign(&mem, 64, n_nodes * sizeof(HSTNode)) != 0:
            raise MemoryError(f"HalfSpaceTrees: cannot allocate {n_nodes} nodes")
        self._nodes = <HSTNode*>mem
        cdef float64_t[:, ::1] scratch = np.zeros((4, d), dtype=np.float64)
        for f in range(d):
            scratch[3, f] = hi[f] - lo[f]
        self._n_features = d
        for t in range(self._n_trees):
            for f in range(d):
                scratch[0, f] = 0.0
                scratch[1, f] = 1.0 if scratch[3, f] > 0.0 else 0.0
            memset(self._nodes + t * self._slots, 0, sizeof(HSTNode))  # slot 0
            _draw_subtree(self._nodes + t * self._slots, 1, 0, self._height, d,
                          &scratch[0, 0], &scratch[1, 0], &scratch[2, 0], uniform,
                          &lo[0], &scratch[3, 0])
        self._new_trees(d)
        self._built = True
        self._window = 0
        self._count = 0

    cdef void _run_trees(self, const float64_t* X, intp_t n, intp_t d, intp_t t0, intp_t t1,
                         bint learn, bint score, float64_t* raw) noexcept nogil:
        """Score and/or learn n rows in order in trees t0 .. t1 - 1, adding
        each row's raw score to ``raw[i]`` (trees in order); the window
        position is not moved (see ``_finish``).

        Rows are taken in chunks that stay in cache while every tree walks
        them; in a tree, blocks of up to LANES rows within one window walk
        together.  Each row is scored with the model as it stood before that
        row was learned: within a window, scoring reads only reference masses
        and learning writes only latest ones, so the order inside a block
        does not matter."""
        cdef HSTNode* trees[LANES]
        cdef const float64_t* rows[LANES]
        cdef float64_t s[LANES]
        cdef intp_t t, i, b, m, i0 = 0, i1
        cdef int64_t w, w0 = self._window, count, count0 = self._count
        cdef HSTNode* tree
        cdef bint scoring
        while i0 < n:
            i1 = min(n, i0 + <intp_t>ROW_CHUNK)
            for t in range(t0, t1):
                tree = self._nodes + t * self._slots
                w = w0
                count = count0
                i = i0
                while i < i1:
                    m = min(<intp_t>LANES, i1 - i)
                    if learn:
                        m = min(m, <intp_t>(self._window_size - count))
                    scoring = score and w > 0
                    if scoring or learn:
                        for b in range(m):
                            trees[b] = tree
                            rows[b] = X + (i + b) * d
                        if learn and scoring:
                            _walk_lanes(trees, rows, m, self._height, self._size_limit,
                                        self._path_sum, True, True, w, s)
                        elif learn:
                            _walk_lanes(trees, rows, m, self._height, self._size_limit,
                                        self._path_sum, True, False, w, s)
                        else:
                            _walk_lanes(trees, rows, m, self._height, self._size_limit,
                                        self._path_sum, False, True, w, s)
                        if scoring:
                            for b in range(m):
                                raw[i + b] += s[b]
                    if learn:
                        count += m
                        if count == self._window_size:
                            count = 0
                            w += 1
                    i += m
            if learn:
                count0 += i1 - i0
                w0 += count0 // self._window_size
                count0 = count0 % self._window_size
            i0 = i1

    cdef void _finish(self, intp_t n, bint learn, bint score, float64_t* out) noexcept nogil:
        """Turn raw scores into scores and move the window position past the
        n rows just run."""
        cdef intp_t i
        cdef int64_t w = self._window, count = self._count
        if score:
            for i in range(n):
                out[i] = 1.0 - out[i] / self._max_score if w > 0 else 0.0
                if learn:
                    count += 1
                    if count == self._window_size:
                        count = 0
                        w += 1
        if learn:
            count = self._count + n
            self._window += count // self._window_size
            self._count = <int32_t>(count % self._window_size)

    cdef void _run(self, const float64_t* X, intp_t n, intp_t d, bint learn, bint score,
                   float64_t* out) noexcept nogil:
        """Score and/or learn n rows in order in every tree (one thread)."""
        cdef intp_t i
        if score:
            for i in range(n):
                out[i] = 0.0
        self._run_trees(X, n, d, 0, self._n_trees, learn, score, out)
        self._finish(n, learn, score, out)

    cdef inline void _advance(self) noexcept nogil:
        self._count += 1
        if self._count == self._window_size:
            self._count = 0
            self._window += 1

    cdef bint _learn_scored_point(self, const float64_t* x) noexcept nogil:
        """Learn x along the walks recorded when it was last scored, if x is
        (bit for bit) that point: a walk depends only on the point and the
        splits, so the nodes are the ones a new walk would reach.  False
        (nothing done) otherwise."""
        cdef intp_t t, depth, levels = self._height + 1
        cdef HSTNode* tree
        cdef const intp_t* walk
        if not self._path_valid or memcmp(x, self._path_point, self._n_features * sizeof(float64_t)) != 0:
            return False
        cdef int64_t w = self._window
        cdef HSTNode* nd
        for t in range(self._n_trees):
            tree = self._nodes + t * self._slots
            walk = self._path + t * levels
            for depth in range(levels):
                nd = tree + walk[depth]
                # Usually the node has counted a point of this window already
                # (always near the root): then one store is enough.
                if nd.window == w:
                    nd.latest += 1
                else:
                    _learn_node(nd, w)
        self._advance()
        return True

    cdef void _learn_point(self, const float64_t* x) noexcept nogil:
        cdef HSTNode* trees[LANES]
        cdef const float64_t* rows[LANES]
        cdef float64_t s[LANES]
        cdef intp_t g, b, m
        if self._learn_scored_point(x):  # score_one(x) then learn_one(x): one walk
            return
        g = 0
        while g < self._n_trees:
            m = min(<intp_t>LANES, self._n_trees - g)
            for b in range(m):
                trees[b] = self._nodes + (g + b) * self._slots
                rows[b] = x
            _walk_lanes(trees, rows, m, self._height, self._size_limit, self._path_sum,
                        True, False, self._window, s)
            g += m
        self._advance()

    cdef float64_t _score_walks(self, const float64_t* x) noexcept nogil:
        """Raw score of x when every tree fits in one group of lanes: the
        walks of ``_walk_lanes`` (score only, with the path kept) written for
        one point, so the loop reads x directly and the score rule is fixed
        before it starts.  Every walk goes down to its leaf and its nodes are
        recorded in ``_path``; the sums are formed in the same order as in
        ``_walk_lanes``, so the result is the same bit for bit."""
        cdef intp_t node[LANES]
        cdef float64_t s[LANES]
        cdef int active[LANES]
        cdef intp_t t, depth, n = self._n_trees, height = self._height, levels = height + 1
        cdef intp_t slots = self._slots
        cdef int64_t w = self._window
        cdef int stop
        cdef float64_t weight = 1.0, r, limit = self._size_limit, total = 0.0
        cdef HSTNode* nodes = self._nodes
        cdef HSTNode* nd
        cdef intp_t* path = self._path
        cdef bint path_sum = self._path_sum
        for t in range(n):
            node[t] = 1
            active[t] = 1
            s[t] = 0.0
        for depth in range(height):
            for t in range(n):
                path[t * levels + depth] = node[t]
                nd = nodes + t * slots + node[t]
                r = _reference(nd, w)
                stop = active[t] & (r < limit)
                if path_sum:
                    s[t] += active[t] * r * weight
                else:
                    s[t] += stop * r * weight
                active[t] &= 1 - stop
                node[t] = 2 * node[t] + (x[nd.feature] >= nd.threshold)
            weight *= 2.0
        for t in range(n):  # the leaves: every walk still active stops here
            path[t * levels + height] = node[t]
            r = _reference(nodes + t * slots + node[t], w)
            s[t] += active[t] * r * weight
            total += s[t]
        return total

    cdef float64_t _score_point(self, const float64_t* x) noexcept nogil:
        cdef HSTNode* trees[LANES]
        cdef const float64_t* rows[LANES]
        cdef float64_t s[LANES]
        cdef float64_t total = 0.0
        cdef intp_t g, b, m
        if self._window == 0:
            return 0.0
        self._path_valid = False
        if self._n_trees <= LANES:
            total = self._score_walks(x)
            memcpy(self._path_point, x, self._n_features * sizeof(float64_t))
            self._path_valid = True
            return 1.0 - total / self._max_score
        g = 0
        while g < self._n_trees:
            m = min(<intp_t>LANES, self._n_trees - g)
            for b in range(m):
                trees[b] = self._nodes + (g + b) * self._slots
                rows[b] = x
            # the walks go down to the leaves and are kept for learn_one(x)
            _walk_lanes(trees, rows, m, self._height, self._size_limit, self._path_sum,
                        False, True, self._window, s, self._path + g * (self._height + 1))
            for b in range(m):
                total += s[b]
            g += m
        memcpy(self._path_point, x, self._n_features * sizeof(float64_t))
        self._path_valid = True
        return 1.0 - total / self._max_score

    # -- Python entry points ---------------------------------------------------
    def _learn_many(self, const float64_t[:, ::1] X):
        """Learn the rows of X (GIL held: see the top of this file)."""
        self._wait(False)
        self._check_width(X.shape[1])
        self._run(&X[0, 0], X.shape[0], X.shape[1], True, False, NULL)

    def _score_many(self, const float64_t[:, ::1] X):
        """Score the rows of X without learning (read-only: without the GIL)."""
        cdef float64_t[::1] out = np.empty(X.shape[0], dtype=np.float64)
        self._check_width(X.shape[1])
        self._readers += 1
        with nogil:
            self._run(&X[0, 0], X.shape[0], X.shape[1], False, True, &out[0])
        self._readers -= 1
        return np.asarray(out)

    def _run_tree_range(self, const float64_t[:, ::1] X, intp_t t0, intp_t t1, bint learn,
                        bint score, float64_t[::1] raw):
        """One thread's share of a batch: trees t0 .. t1 - 1 (see ``_run_trees``),
        between ``_begin_threads`` and ``_end_threads``, without the GIL."""
        self._check_width(X.shape[1])
        if not (0 <= t0 <= t1 <= self._n_trees) or (score and raw.shape[0] < X.shape[0]):
            raise ValueError("HalfSpaceTrees: bad tree range or score buffer")
        with nogil:
            self._run_trees(&X[0, 0], X.shape[0], X.shape[1], t0, t1, learn, score,
                            &raw[0] if score else NULL)

    def _finish_batch(self, intp_t n, bint learn, bint score, float64_t[::1] raw):
        """After every tree range has run: scores from the summed raw scores,
        and the window position moved past the batch."""
        if score and raw.shape[0] < n:
            raise ValueError("HalfSpaceTrees: bad score buffer")
        self._finish(n, learn, score, &raw[0] if score else NULL)

    @property
    def _exact_sums(self):
        """Raw scores are integers below 2**53, so partial sums over tree
        ranges add up exactly in any grouping."""
        return self._max_score < 2.0 ** 53

    def _score_learn_many(self, const float64_t[:, ::1] X):
        """Score then learn each row in turn (GIL held: see the top of this file)."""
        cdef float64_t[::1] out = np.empty(X.shape[0], dtype=np.float64)
        self._wait(False)
        self._check_width(X.shape[1])
        self._run(&X[0, 0], X.shape[0], X.shape[1], True, True, &out[0])
        return np.asarray(out)

    cdef const float64_t* _fast_row(self, object x) noexcept:
        """Data pointer of x when it is a finite C-contiguous float64 vector of
        the fitted length and the trees exist; NULL otherwise."""
        cdef cnp.ndarray arr
        cdef const float64_t* p
        cdef intp_t f
        if not self._built or type(x) is not cnp.ndarray:
            return NULL
        arr = <cnp.ndarray>x
        if (cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_TYPE(arr) != cnp.NPY_DOUBLE
                or cnp.PyArray_DIMS(arr)[0] != self._n_features
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            return NULL
        p = <const float64_t*>cnp.PyArray_DATA(arr)
        for f in range(self._n_features):
            if not isfinite(p[f]):
                return NULL
        return p

    cdef const float64_t* _dict_row(self, object x) noexcept:
        """For a dict with exactly the model's keys and finite float (or
        int) values, the values in feature order (in a buffer the object
        owns); NULL for anything else, left to the validating Python path.
        The key order is cached, so this is one lookup per feature, or none
        while the entries come in that order with the same key objects."""
        cdef tuple keys = self._keys
        cdef intp_t f, n
        cdef Py_ssize_t position = 0
        cdef PyObject* key
        cdef PyObject* item
        cdef bint in_order = True
        cdef float64_t v
        if keys is None or not self._built:
            return NULL
        n = len(keys)
        if n != self._n_features or PyDict_Size(x) != n:
            return NULL
        for f in range(n):
            # Dicts are usually built with the same keys in the same order:
            # while the entries come in feature order with the very key
            # objects seen first, take them in order without hashing.
            if in_order:
                PyDict_Next(x, &position, &key, &item)
                in_order = key == <PyObject*>keys[f]
            if not in_order:
                item = PyDict_GetItem(x, keys[f])
                if item == NULL:
                    return NULL
            if PyFloat_Check(<object>item):
                v = PyFloat_AS_DOUBLE(<object>item)
            elif PyLong_CheckExact(<object>item):
                v = _int_as_double(<object>item)  # too large: leave it to the Python path
                if v == -1.0 and PyErr_Occurred() != NULL:
                    PyErr_Clear()
                    return NULL
            else:
                return NULL
            if not isfinite(v):
                return NULL
            self._dict_buffer[f] = v
        return self._dict_buffer

    cdef inline const float64_t* _point(self, object x) noexcept:
        """A dict or array point the compiled code can take as is, else NULL."""
        if type(x) is dict:
            return self._dict_row(x)
        return self._fast_row(x)

    def _learn_row(self, const float64_t[::1] x):
        """Learn one validated row (the slow path's exit)."""
        self._wait(False)
        self._check_width(x.shape[0])
        self._learn_point(&x[0])

    def _score_row(self, const float64_t[::1] x):
        """Score one validated row (the slow path's exit)."""
        self._check_width(x.shape[0])
        return self._score_point(&x[0])

    # -- state -----------------------------------------------------------------
    @property
    def _is_built(self):
        return self._built

    @property
    def _n_seen_in_window(self):
        """Points learned in the current window."""
        return self._count

    @property
    def _window_index(self):
        """Index of the current window (0 while the first is being filled)."""
        return self._window

    def _node_array(self):
        """A copy of the nodes as a structured array of shape (n_trees, n_nodes)."""
        cdef intp_t n_trees = self._n_trees if self._built else 0
        out = np.empty((n_trees, self._slots), dtype=NODE_DTYPE)
        if n_trees:
            memcpy(cnp.PyArray_DATA(<cnp.ndarray>out), self._nodes,
                   n_trees * self._slots * sizeof(HSTNode))
        return out

    def _load_nodes(self, nodes, int64_t window, int32_t count, intp_t n_features):
        """Inverse of ``_node_array`` (plus the window position), for nodes the
        caller has validated (``anomaly_fast.streaming.half_space_trees._check_state``)."""
        cdef cnp.ndarray flat = np.ascontiguousarray(nodes, dtype=NODE_DTYPE).reshape(-1)
        cdef intp_t n = flat.shape[0]
        cdef void* mem = NULL
        if n != 0 and n != self._n_trees * self._slots:
            raise ValueError(f"HalfSpaceTrees: {n} nodes for {self._n_trees} trees of {self._slots} slots")
        self._wait(True)
        free(self._nodes)
        self._nodes = NULL
        if posix_memalign(&mem, 64, max(n, 1) * sizeof(HSTNode)) != 0:
            raise MemoryError()
        self._nodes = <HSTNode*>mem
        if n:
            memcpy(self._nodes, cnp.PyArray_DATA(flat), n * sizeof(HSTNode))
        self._n_features = n_features
        self._new_trees(n_features)
        self._window = window
        self._count = count
        self._built = n > 0

    def mass_profile(self):
        """Reference and latest masses of every node, each an int array of
        shape (n_trees, 2**(height + 1) - 1) in heap order (node i has children
        2i + 1 and 2i + 2).  The reference mass counts the points of the last
        complete window, the latest mass those of the current one."""
        cdef intp_t n_trees = self._n_trees if self._built else 0
        cdef intp_t per_tree = self._slots - 1, t, j
        cdef int32_t[:, ::1] ref = np.zeros((n_trees, per_tree), dtype=np.int32)
        cdef int32_t[:, ::1] lat = np.zeros((n_trees, per_tree), dtype=np.int32)
        cdef HSTNode* nd
        for t in range(n_trees):
            for j in range(per_tree):
                nd = self._nodes + t * self._slots + j + 1
                ref[t, j] = _reference(nd, self._window)
                lat[t, j] = _latest(nd, self._window)
        return np.asarray(ref), np.asarray(lat)


@cython.auto_pickle(False)
cdef class HalfSpaceModelBase:
    """Compiled base of :class:`anomaly_fast.HalfSpaceTrees` that gives the
    model ``learn_one`` / ``score_one`` as methods of its own type.

    CPython specialises a call ``model.score_one(x)`` only for a method found
    on the type: a compiled method bound to the core and kept in the model's
    ``__dict__`` costs an unspecialised look-up on every call (measured: about
    30 ns a call, 11% of a score-then-learn at the defaults).  These methods
    reach the core through a C field instead.  The class holds no state of its
    own: the core (``_set_core``) holds the trees, and the model pickles
    through its own ``__getstate__`` / ``__setstate__``."""
    cdef HalfSpaceForest _fast_core

    def _set_core(self, HalfSpaceForest core not None):
        self._fast_core = core

    def learn_one(self, x):
        """Learn one point.

        Parameters
        ----------
        x : dict or ndarray of shape (n_features,)
            Feature name -> value, or the values in the order of
            ``feature_names_in_``; finite numbers.
        """
        cdef HalfSpaceForest core = self._fast_core
        if core is None:
            raise RuntimeError("HalfSpaceTrees: the model has no compiled core (it was not initialised)")
        if core._writers:
            core._wait(False)
        cdef const float64_t* p = core._point(x)
        if p == NULL:
            return self._learn_other(x)
        core._learn_point(p)

    def score_one(self, x):
        """Anomaly score of one point with the current model, without
        learning it.

        Parameters
        ----------
        x : dict or ndarray of shape (n_features,)
            As for :meth:`learn_one`.

        Returns
        -------
        float
            In [0, 1], higher = more anomalous; 0.0 during the first window.
        """
        cdef HalfSpaceForest core = self._fast_core
        if core is None:
            raise RuntimeError("HalfSpaceTrees: the model has no compiled core (it was not initialised)")
        cdef const float64_t* p = core._point(x)
        if p == NULL:
            return self._score_other(x)
        return core._score_point(p)
