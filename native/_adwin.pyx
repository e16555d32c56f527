# ADWIN2 drift detector (Bifet & Gavalda 2007): an exponential histogram of
# buckets with a cut check every ``clock`` updates.
#
# Bucket layout.  Row r holds buckets that each summarise 2**r consecutive
# values; a row keeps at most ``max_buckets`` of them between updates (one
# more while a merge is pending).  Rows are stored flat with a stride of
# 2 * (max_buckets + 1) slots: the buckets of row r, oldest first, are at
# ``r * stride + start[r] + j``; dropping old buckets moves ``start[r]`` and
# the row is compacted only when it reaches the end of its slots.  A new value enters row 0;
# when a row overflows, its two oldest buckets merge into one bucket of the
# next row.  The number of rows grows with log2(width), so memory is
# O(max_buckets * log W).
#
# The arithmetic (Welford-style window variance, bucket merges, the cut
# bound) is done in the same order as river's ADWIN so that detections are
# identical bit for bit, and, like river's ``ADWIN.update``, the window is
# emptied on the update that follows a detection.
#
# Values are bounded: |x| <= MAX_ABS_VALUE (1e120).  Within it no running sum
# can overflow for any window a float64 width can count (2**53 values): sums
# stay below 2**53 * 1e120 and every product of the variance updates and the
# cut check below 2**1012, so one huge glitch cannot turn the statistics into
# inf/NaN and blind the detector for good.
#
# Threads.  Every method that changes the state (update, _update_many, the
# bucket reallocation, _restore, _configure) runs with the GIL held from start
# to end and calls no Python code in between, so on CPython each call is
# atomic: a detector shared between threads sees one call at a time and is
# never read half-updated.  (Holding the GIL costs nothing per call; a lock
# would quadruple the cost of update.)  Not safe on a free-threaded build.
#
# The class validates nothing beyond the range of the values: parameters and
# restored states are checked by the Python class that holds it
# (``anomaly_fast.streaming.ADWIN``), which binds ``update`` as its own method
# (no Python frame per call).
import numpy as np

from libc.math cimport fabs, log, sqrt, ldexp
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset

from _types cimport float64_t, int64_t, intp_t


# 2**-r, exact; multiplying by it rounds exactly as dividing by 2**r does.
cdef enum:
    BATCH = 256  # values whose buckets _add_buckets merges together

# The largest |value| accepted (see above).
MAX_ABS_VALUE = 1e120
cdef float64_t MAX_ABS = 1e120

cdef float64_t INV_POW2[64]
cdef int _r
for _r in range(64):
    INV_POW2[_r] = ldexp(1.0, -_r)


# -- the division-free pre-test of the cut check -------------------------------
#
# With h = 1/n0 + 1/n1 = W / (n0 n1) (W = n0 + n1, the window width) and
# L >= 1, m >= h, so river's threshold is at least sqrt(2 h v d') + 2/3 d' h.
# Multiplying by n0 n1, a split surely does not cut when
#     Y - C <= sqrt(K n0 n1),   Y = |u0 n1 - u1 n0|,  C = 2/3 d' W,  K = 2 v d' W,
# i.e. when Y <= C or (Y - C)**2 <= K n0 n1.  Rounding: river's computed
# |u0/n0 - u1/n1| exceeds Y / (n0 n1) by at most a few units in the last
# place of (|u0| n1 + |u1| n0) / (n0 n1), and its computed threshold is below
# the exact one by a few relative units; a relative margin of 1e-12 (about
# 10,000 units) and an absolute 1e-300 (for subnormal products) cover both.
# Any doubt (NaN, infinity, a margin too thin) answers False and the exact
# computation decides.
cdef float64_t NO_CUT_MARGIN = 1e-12
cdef float64_t NO_CUT_TINY = 1e-300


cdef inline (float64_t, float64_t) _no_cut_scales(float64_t window_var, float64_t log_term,
                                                  float64_t width) noexcept nogil:
    """K and C of the pre-test, each rounded down by the margin (K = 0 when
    it is too small to be computed with a relative error)."""
    cdef float64_t k = 2.0 * window_var * log_term * width * (1.0 - NO_CUT_MARGIN)
    cdef float64_t c = 2.0 / 3.0 * log_term * width * (1.0 - NO_CUT_MARGIN)
    if not (k > 1e-250):
        k = 0.0
    if not (c > 1e-250):
        c = 0.0
    return k, c


cdef inline bint _surely_no_cut(float64_t u0, float64_t n0, float64_t u1, float64_t n1,
                                float64_t sqrt_scale, float64_t linear_scale) noexcept nogil:
    """True only if river's exact test surely finds no cut at this split
    (see above); False when it cannot tell."""
    cdef float64_t y = (fabs(u0 * n1 - u1 * n0)
                        + NO_CUT_MARGIN * (fabs(u0) * n1 + fabs(u1) * n0)) * (1.0 + NO_CUT_MARGIN)
    y += NO_CUT_TINY
    cdef float64_t z = y - linear_scale
    return (z <= 0.0) | (z * z * (1.0 + NO_CUT_MARGIN) <= sqrt_scale * (n0 * n1))  # no branch


cdef class AdaptiveWindow:
    """Compiled core of an ADWIN detector (held by :class:`anomaly_fast.ADWIN`,
    which validates)."""

    cdef float64_t _delta          # confidence of the cut test
    cdef int64_t _clock            # a cut check runs every ``clock`` updates
    cdef intp_t _max_buckets       # buckets kept per row between updates
    cdef float64_t _min_length     # smallest sub-window a cut may leave
    cdef float64_t _grace          # no check while width <= grace period
    cdef intp_t _row_capacity      # buckets a row can hold: max_buckets + 1
    cdef intp_t _stride            # slots per row: 2 * row_capacity

    cdef float64_t _total          # sum of the values in the window
    cdef float64_t _m2             # sum of squared deviations from the window mean
    cdef float64_t _width          # number of values in the window
    cdef int64_t _tick             # updates since the window was last emptied
    cdef int64_t _n_detections     # detections since construction or reset()
    cdef bint _drift               # the last update detected a drift

    cdef intp_t _n_rows            # rows in use
    cdef intp_t _rows_allocated    # rows the buffers below can hold
    cdef float64_t* _bucket_total  # per-bucket sum of values
    cdef float64_t* _bucket_m2     # per-bucket sum of squared deviations
    cdef intp_t* _bucket_count     # buckets in each row
    cdef intp_t* _bucket_start     # slot of the oldest bucket of each row
    cdef float64_t* _scratch       # 4 buffers of max_buckets + 1 + BATCH values for _add_buckets
    cdef float64_t* _splits        # per candidate split of a check: n0, n1, u0, u1 (4 blocks)
    cdef int64_t* _undecided       # per candidate split: 1 if the pre-test cannot rule out a cut

    def __cinit__(self):
        self._bucket_total = NULL
        self._bucket_m2 = NULL
        self._bucket_count = NULL
        self._bucket_start = NULL
        self._scratch = NULL
        self._splits = NULL
        self._undecided = NULL
        self._rows_allocated = 0
        self._n_rows = 0
        self._row_capacity = 0

    def __dealloc__(self):
        free(self._bucket_total)
        free(self._bucket_m2)
        free(self._bucket_count)
        free(self._bucket_start)
        free(self._scratch)
        free(self._splits)
        free(self._undecided)

    # -- set-up ----------------------------------------------------------------
    def _configure(self, float64_t delta, int64_t clock, intp_t max_buckets,
                   float64_t min_window_length, float64_t grace_period):
        """Set the parameters and empty the detector (counts included)."""
        self._delta = delta
        self._clock = clock
        self._max_buckets = max_buckets
        self._min_length = min_window_length
        self._grace = grace_period
        self._row_capacity = max_buckets + 1
        self._stride = 2 * self._row_capacity
        free(self._bucket_total)
        free(self._bucket_m2)
        free(self._bucket_count)
        free(self._bucket_start)
        self._bucket_total = NULL
        self._bucket_m2 = NULL
        self._bucket_count = NULL
        self._bucket_start = NULL
        free(self._scratch)
        self._scratch = <float64_t*>malloc(4 * (self._row_capacity + BATCH) * sizeof(float64_t))
        if self._scratch == NULL:
            raise MemoryError()
        self._rows_allocated = 0
        self._grow(8)
        self._clear_window()
        self._n_detections = 0

    cdef void _grow(self, intp_t n_rows) except *:
        cdef intp_t cap = self._stride
        cdef float64_t* t = <float64_t*>realloc(self._bucket_total, n_rows * cap * sizeof(float64_t))
        if t == NULL:
            raise MemoryError()
        self._bucket_total = t
        t = <float64_t*>realloc(self._bucket_m2, n_rows * cap * sizeof(float64_t))
        if t == NULL:
            raise MemoryError()
        self._bucket_m2 = t
        t = <float64_t*>realloc(self._splits, 4 * n_rows * self._row_capacity * sizeof(float64_t))
        if t == NULL:
            raise MemoryError()
        self._splits = t
        cdef int64_t* flags = <int64_t*>realloc(self._undecided, n_rows * self._row_capacity * sizeof(int64_t))
        if flags == NULL:
            raise MemoryError()
        self._undecided = flags
        cdef intp_t* c = <intp_t*>realloc(self._bucket_count, n_rows * sizeof(intp_t))
        if c == NULL:
            raise MemoryError()
        self._bucket_count = c
        memset(&self._bucket_count[self._rows_allocated], 0,
               (n_rows - self._rows_allocated) * sizeof(intp_t))
        c = <intp_t*>realloc(self._bucket_start, n_rows * sizeof(intp_t))
        if c == NULL:
            raise MemoryError()
        self._bucket_start = c
        memset(&self._bucket_start[self._rows_allocated], 0,
               (n_rows - self._rows_allocated) * sizeof(intp_t))
        self._rows_allocated = n_rows

    cdef void _clear_window(self) noexcept nogil:
        self._total = 0.0
        self._m2 = 0.0
        self._width = 0.0
        self._tick = 0
        self._drift = False
        self._n_rows = 1
        memset(self._bucket_count, 0, self._rows_allocated * sizeof(intp_t))
        memset(self._bucket_start, 0, self._rows_allocated * sizeof(intp_t))

    # -- the algorithm ---------------------------------------------------------
    cdef inline intp_t _oldest(self, intp_t row) noexcept nogil:
        """Slot of the oldest bucket of a row."""
        return row * self._stride + self._bucket_start[row]

    cdef inline void _push(self, intp_t row, float64_t total, float64_t m2) noexcept nogil:
        cdef intp_t base = row * self._stride, count = self._bucket_count[row], k
        cdef intp_t start = self._bucket_start[row]
        if start + count == self._stride:  # out of slots: move the row to its start
            for k in range(count):
                self._bucket_total[base + k] = self._bucket_total[base + start + k]
                self._bucket_m2[base + k] = self._bucket_m2[base + start + k]
            self._bucket_start[row] = start = 0
        cdef intp_t j = base + start + count
        self._bucket_total[j] = total
        self._bucket_m2[j] = m2
        self._bucket_count[row] += 1

    cdef inline void _drop_oldest(self, intp_t row, intp_t k) noexcept nogil:
        """Remove the k oldest buckets of a row."""
        cdef intp_t left = self._bucket_count[row] - k
        self._bucket_count[row] = left
        self._bucket_start[row] = self._bucket_start[row] + k if left else 0

    cdef void _add_to_statistics(self, const float64_t* values, intp_t n) noexcept nogil:
        """Window width, sum and sum of squared deviations after appending
        ``values`` (Welford's update, one value at a time, rounded as river
        rounds it).  Kept apart from the buckets and split in three loops:
        the running sum, then each value's increment of the squared
        deviations (independent of each other: the compiler vectorises the
        two divisions), then their sum in order."""
        cdef float64_t total = self._total, m2 = self._m2, width = self._width
        cdef float64_t diff, before
        cdef float64_t sum_before[256]
        cdef float64_t added[256]
        cdef intp_t i, j, start, stop, span
        for start in range(0, n, 256):
            stop = min(n, start + 256)
            span = stop - start
            for j in range(span):
                sum_before[j] = total
                total += values[start + j]
            for j in range(span):
                before = width + <float64_t>j  # values in the window before this one
                # (for the first value of an empty window the result is unused)
                diff = values[start + j] - sum_before[j] / before
                added[j] = before * diff * diff / (before + 1.0)
            for j in range(span):
                if width + <float64_t>j > 0.0:
                    m2 += added[j]
            width += <float64_t>span
        self._total = total
        self._m2 = m2
        self._width = width

    cdef int _insert(self, float64_t value) except -1:  # GIL held: may grow the buffers
        self._add_to_statistics(&value, 1)
        return self._add_bucket(value)

    cdef int _add_bucket(self, float64_t value) except -1:  # GIL held: may grow the buffers
        """Append a one-value bucket; merge the two oldest buckets of each
        overflowing row into the next row."""
        cdef float64_t size, mean_a, mean_b, a_total, b_total
        cdef intp_t row = 0, base
        self._push(0, value, 0.0)
        while self._bucket_count[row] == self._row_capacity:
            if row + 1 == self._rows_allocated:
                self._grow(2 * self._rows_allocated)
            if row + 1 == self._n_rows:
                self._n_rows += 1
            base = self._oldest(row)
            size = <float64_t>(<int64_t>1 << row)
            a_total = self._bucket_total[base]
            b_total = self._bucket_total[base + 1]
            mean_a = a_total * INV_POW2[row]  # == a_total / size: size is a power of two
            mean_b = b_total * INV_POW2[row]
            self._push(row + 1, a_total + b_total,
                       self._bucket_m2[base] + self._bucket_m2[base + 1]
                       + size * 0.5 * (mean_a - mean_b) * (mean_a - mean_b))
            self._drop_oldest(row, 2)
            row += 1
        return 0

    cdef int _add_buckets(self, const float64_t* values, intp_t n) except -1:  # GIL held: may grow the buffers
        """Append one-value buckets for n <= BATCH values at once, with the
        same merges as ``_add_bucket`` on each value in turn.

        Value by value, a row that reaches max_buckets + 1 buckets merges its
        two oldest into one bucket of the next row; over a run of values
        with no check in between, the same pairs of consecutive buckets are
        merged, in the same order, as when each row is taken once: its
        buckets followed by the incoming ones, pairs merged from the old end
        until at most max_buckets are left (arithmetic as in _add_bucket)."""
        cdef intp_t cap = self._row_capacity + BATCH
        cdef float64_t* seq_t = self._scratch
        cdef float64_t* seq_m = self._scratch + cap
        cdef float64_t* in_t = self._scratch + 2 * cap
        cdef float64_t* in_m = self._scratch + 3 * cap
        cdef const float64_t* src_t = values
        cdef const float64_t* src_m = NULL  # one-value buckets: m2 = 0
        cdef intp_t row = 0, k = n, c, total, pairs, j, base
        cdef float64_t size, inv, mean_a, mean_b
        while k > 0:
            if row == self._rows_allocated:
                self._grow(2 * self._rows_allocated)
            if row == self._n_rows:
                self._n_rows += 1
            c = self._bucket_count[row]
            base = self._oldest(row)
            total = c + k
            if total <= self._max_buckets:  # no merge: append
                base = row * self._stride
                if self._bucket_start[row] + total > self._stride:
                    for j in range(c):
                        self._bucket_total[base + j] = self._bucket_total[base + self._bucket_start[row] + j]
                        self._bucket_m2[base + j] = self._bucket_m2[base + self._bucket_start[row] + j]
                    self._bucket_start[row] = 0
                base += self._bucket_start[row] + c
                for j in range(k):
                    self._bucket_total[base + j] = src_t[j]
                    self._bucket_m2[base + j] = src_m[j] if src_m != NULL else 0.0
                self._bucket_count[row] = total
                break
            for j in range(c):
                seq_t[j] = self._bucket_total[base + j]
                seq_m[j] = self._bucket_m2[base + j]
            for j in range(k):
                seq_t[c + j] = src_t[j]
                seq_m[c + j] = src_m[j] if src_m != NULL else 0.0
            pairs = (total - self._max_buckets + 1) // 2
            size = <float64_t>(<int64_t>1 << row)
            inv = INV_POW2[row]
            for j in range(pairs):
                mean_a = seq_t[2 * j] * inv  # == total / size: size is a power of two
                mean_b = seq_t[2 * j + 1] * inv
                in_t[j] = seq_t[2 * j] + seq_t[2 * j + 1]
                in_m[j] = (seq_m[2 * j] + seq_m[2 * j + 1]
                           + size * 0.5 * (mean_a - mean_b) * (mean_a - mean_b))
            base = row * self._stride
            for j in range(total - 2 * pairs):
                self._bucket_total[base + j] = seq_t[2 * pairs + j]
                self._bucket_m2[base + j] = seq_m[2 * pairs + j]
            self._bucket_start[row] = 0
            self._bucket_count[row] = total - 2 * pairs
            src_t = in_t
            src_m = in_m
            k = pairs
            row += 1
        return 0

    cdef void _delete_oldest_bucket(self) noexcept nogil:
        cdef intp_t row = self._n_rows - 1
        cdef intp_t base = self._oldest(row)
        cdef float64_t size = <float64_t>(<int64_t>1 << row)
        cdef float64_t u = self._bucket_total[base]
        cdef float64_t m2 = self._bucket_m2[base]
        cdef float64_t mean = u * INV_POW2[row], window_mean
        self._width -= size
        self._total -= u
        window_mean = self._total / self._width
        self._m2 -= m2 + size * self._width * (mean - window_mean) * (mean - window_mean) / (size + self._width)
        self._drop_oldest(row, 1)
        # Drop empty trailing rows so the oldest bucket is always in the last
        # row.  (river keeps an empty trailing row here, which only matters
        # when the next cut would delete from it -- river then fails.)
        while self._n_rows > 1 and self._bucket_count[self._n_rows - 1] == 0:
            self._n_rows -= 1

    cdef bint _check(self) noexcept nogil:
        """Drop buckets from the old end while some split of the window has
        significantly different sub-window means.

        A split into an older part (n0 values, sum u0) and a newer part (n1,
        u1) is a cut when |u0/n0 - u1/n1| > sqrt(2 m v d') + 2/3 d' m, with
        m = 1/(n0 - L + 1) + 1/(n1 - L + 1), v the window variance and
        d' = ln(2 ln(width) / delta), computed exactly as river does, splits
        taken from the old end.  v and d' only change when a bucket is
        dropped, so they are computed once per pass (the same values,
        rounded the same way, as for every split).

        Each pass runs in three loops: the splits' running sums (in river's
        order, so with its rounding); the division-free pre-test of every
        split (``_surely_no_cut``, no branches: the compiler vectorises
        it); then river's exact arithmetic, in order, on the few splits the
        pre-test could not rule out.  Detections are river's.
        """
        cdef bint detected = False, again = True
        cdef float64_t n0, n1, u0, u1, size, t, mean_diff, log_term, window_var
        cdef float64_t m_recip, bound, length = self._min_length, mean0, recip0
        cdef float64_t sqrt_scale, linear_scale
        cdef intp_t row, k, count, base, i, n_splits
        cdef intp_t block = self._rows_allocated * self._row_capacity
        cdef float64_t* split_n0 = self._splits
        cdef float64_t* split_n1 = self._splits + block
        cdef float64_t* split_u0 = self._splits + 2 * block
        cdef float64_t* split_u1 = self._splits + 3 * block
        cdef int64_t* undecided = self._undecided
        while again:
            again = False
            # 1. every split but the last bucket's, oldest first
            n0 = 0.0
            n1 = self._width
            u0 = 0.0
            u1 = self._total
            n_splits = 0
            for row in range(self._n_rows - 1, -1, -1):
                size = <float64_t>(<int64_t>1 << row)
                count = self._bucket_count[row]
                base = self._oldest(row)
                for k in range(count):
                    n0 += size
                    n1 -= size
                    t = self._bucket_total[base + k]
                    u0 += t
                    u1 -= t
                    split_n0[n_splits] = n0
                    split_n1[n_splits] = n1
                    split_u0[n_splits] = u0
                    split_u1[n_splits] = u1
                    n_splits += 1
            n_splits -= 1  # the split after the newest bucket leaves nothing on the new side
            if n_splits <= 0:
                break
            log_term = log(2.0 * log(self._width) / self._delta)
            window_var = self._m2 / self._width
            sqrt_scale, linear_scale = _no_cut_scales(window_var, log_term, self._width)
            # 2. the pre-test (splits leaving less than L on a side never cut)
            for i in range(n_splits):
                undecided[i] = ((split_n0[i] >= length) & (split_n1[i] >= length)
                                & (not _surely_no_cut(split_u0[i], split_n0[i], split_u1[i],
                                                      split_n1[i], sqrt_scale, linear_scale)))
            # 3. river's test where the pre-test cannot tell
            for i in range(n_splits):
                if not undecided[i]:
                    continue
                n0 = split_n0[i]
                n1 = split_n1[i]
                u0 = split_u0[i]
                u1 = split_u1[i]
                mean0 = u0 / n0
                recip0 = 1.0 / (n0 - length + 1.0)
                mean_diff = fabs(mean0 - (u1 / n1))
                m_recip = recip0 + 1.0 / (n1 - length + 1.0)
                bound = 2.0 / 3.0 * log_term * m_recip
                # The square root is >= 0, so mean_diff <= bound never cuts.
                if not (mean_diff > bound):
                    continue
                if mean_diff > sqrt(2.0 * m_recip * window_var * log_term) + bound:
                    again = True
                    detected = True
                    if self._width > 0.0:
                        self._delete_oldest_bucket()
                        break
        return detected

    cdef int _update(self, float64_t value) except -1:  # GIL held: may grow the buffers
        if self._drift:
            self._clear_window()
        self._insert(value)
        self._tick += 1
        self._drift = False
        if self._tick % self._clock == 0 and self._width > self._grace:
            self._drift = self._check()
        if self._drift:
            self._n_detections += 1
        return 0

    # -- Python entry points ---------------------------------------------------
    def update(self, float64_t x):
        """Add one value; return True when a drift is detected at it."""
        if not (fabs(x) <= MAX_ABS):  # NaN fails too
            raise ValueError(f"ADWIN.update: x must be a finite number with |x| <= 1e120, got {x!r}")
        self._update(x)
        return self._drift

    def _update_many(self, const float64_t[::1] values, bint stop_at_drift=False):
        """Feed every value in turn; return the indices where a drift was
        detected.  With ``stop_at_drift``, stop right after the first
        detection (the values after it are not fed).  The caller guarantees
        |value| <= MAX_ABS_VALUE.  Runs with the GIL held (it changes the
        state; see the top of this file)."""
        cdef intp_t n = values.shape[0], i = 0, j, span, n_found = 0
        cdef int64_t[::1] found = np.empty(n, dtype=np.int64)
        cdef const float64_t* v = &values[0] if n else NULL
        # Values up to the next check form a span: its statistics, then
        # its buckets, then the check -- the same operations as update()
        # on each value, grouped (statistics and buckets do not interact).
        while i < n:
            if self._drift:
                self._clear_window()
                self._drift = False
            span = min(n - i, <intp_t>(self._clock - self._tick % self._clock), <intp_t>BATCH)
            self._add_to_statistics(v + i, span)
            self._add_buckets(v + i, span)
            self._tick += span
            i += span
            if self._tick % self._clock == 0 and self._width > self._grace:
                self._drift = self._check()
                if self._drift:
                    self._n_detections += 1
                    found[n_found] = i - 1
                    n_found += 1
                    if stop_at_drift:
                        break
        return np.asarray(found[:n_found]).copy()

    def _state(self):
        """Everything needed to restore the detector exactly."""
        cdef intp_t cells = self._n_rows * self._row_capacity
        cdef float64_t[::1] totals = np.empty(cells, dtype=np.float64)
        cdef float64_t[::1] m2s = np.empty(cells, dtype=np.float64)
        cdef intp_t[::1] counts = np.empty(self._n_rows, dtype=np.intp)
        cdef intp_t r, k, cap = self._row_capacity
        totals[:] = 0.0
        m2s[:] = 0.0
        for r in range(self._n_rows):  # row r's buckets, oldest first, at r * cap
            counts[r] = self._bucket_count[r]
            for k in range(counts[r]):
                totals[r * cap + k] = self._bucket_total[self._oldest(r) + k]
                m2s[r * cap + k] = self._bucket_m2[self._oldest(r) + k]
        return {
            "params": (self._delta, self._clock, self._max_buckets, self._min_length, self._grace),
            "scalars": (self._total, self._m2, self._width, self._tick, self._n_detections, self._drift),
            "bucket_total": np.asarray(totals),
            "bucket_m2": np.asarray(m2s),
            "bucket_count": np.asarray(counts),
        }

    def _restore(self, state):
        """Inverse of ``_state``, for a state the caller has validated
        (``anomaly_fast.streaming.adwin._check_state``)."""
        cdef const intp_t[::1] counts = np.ascontiguousarray(state["bucket_count"], dtype=np.intp)
        cdef const float64_t[::1] totals = np.ascontiguousarray(state["bucket_total"], dtype=np.float64)
        cdef const float64_t[::1] m2s = np.ascontiguousarray(state["bucket_m2"], dtype=np.float64)
        cdef intp_t r, k, n_rows = counts.shape[0], cap
        self._configure(*state["params"])
        cap = self._row_capacity
        if n_rows > self._rows_allocated:
            self._grow(n_rows)
        for r in range(n_rows):
            self._bucket_count[r] = counts[r]
            self._bucket_start[r] = 0
            for k in range(counts[r]):
                self._bucket_total[r * self._stride + k] = totals[r * cap + k]
                self._bucket_m2[r * self._stride + k] = m2s[r * cap + k]
        self._n_rows = max(n_rows, 1)
        (self._total, self._m2, self._width, self._tick,
         self._n_detections, self._drift) = state["scalars"]

    # -- read-only state -------------------------------------------------------
    @property
    def drift_detected(self):
        """True when the last update detected a drift."""
        return self._drift

    @property
    def width(self):
        """Number of values in the current window."""
        return <int64_t>self._width

    @property
    def total(self):
        """Sum of the values in the current window."""
        return self._total

    @property
    def estimation(self):
        """Mean of the current window (0.0 when it is empty)."""
        return self._total / self._width if self._width > 0.0 else 0.0

    @property
    def variance(self):
        """Sum of squared deviations from the mean over the current window
        (0.0 when it is empty), as river's ``ADWIN.variance``."""
        return self._m2 if self._width > 0.0 else 0.0

    @property
    def variance_in_window(self):
        """Population variance of the current window, ``variance / width``
        (0.0 when it is empty), as river's ``variance_in_window``."""
        return self._m2 / self._width if self._width > 0.0 else 0.0

    @property
    def n_detections(self):
        """Drifts detected since construction or the last reset()."""
        return self._n_detections

    @property
    def bucket_counts(self):
        """Buckets in each row of the histogram (row r summarises 2**r values
        per bucket), as an int array; never more than max_buckets per row."""
        return np.array([self._bucket_count[r] for r in range(self._n_rows)], dtype=np.intp)
