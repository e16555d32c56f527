/* Exact k-nearest-neighbour search for native/_lof.pyx (layout described there).
 *
 * One search: the k fitted points nearest to a query q (optionally leaving one
 * position out), as (distance, position) pairs in neighbour order: ascending
 * distance, then ascending position among equal distances.  The result does not
 * depend on the order in which points are visited, so a k-d tree, brute force,
 * either instruction set and any thread give the same neighbours.
 *
 * Speed comes from three things:
 * - the metric is a compile-time constant in each copy of the search (one copy
 *   per metric), so the inner loops have no branches on it;
 * - points are compared with q eight at a time, stored by feature, and a block
 *   is abandoned as soon as all eight partial sums exceed the current k-th best
 *   (partial sums over the features in order only grow, in floating point too,
 *   so this never drops a neighbour and the distances of the points kept are
 *   computed in full, in scikit-learn's order);
 * - on x86-64 CPUs with AVX2 a second copy of the search compiled for AVX2 is
 *   chosen at import (af_knn_init).  It does the same IEEE operations in the
 *   same order (no fused multiply-add), so both copies give bit-identical
 *   distances; af_knn_use_simd switches between them (tests compare them).
 */
#ifndef ANOMALY_FAST_KNN_H
#define ANOMALY_FAST_KNN_H
#include <float.h>
#include <math.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>

#define AF_KNN_BLOCK 8
#define AF_KNN_GROUP 64  /* queries searched together by af_knn_many */
#define AF_KNN_EUCLIDEAN 0  /* minkowski p = 2: reduced distance = sum of squares */
#define AF_KNN_MANHATTAN 1  /* p = 1 */
#define AF_KNN_CHEBYSHEV 2  /* p = inf: reduced distance = max */
#define AF_KNN_MINKOWSKI 3  /* any other p >= 1: sum of |diff| ** p */
#define AF_KNN_NO_POINT PTRDIFF_MAX  /* position of an empty heap slot */

typedef ptrdiff_t af_intp;

typedef struct {
    const double *columns;  /* d x n fitted points by feature, tree order */
    const af_intp *start;   /* node i owns points start[i]..end[i]-1 (NULL: brute force) */
    const af_intp *end;
    const double *lower;    /* n_nodes x d per-node minimum of each coordinate */
    const double *upper;    /* n_nodes x d per-node maximum */
    const double *norms;    /* n squared norms of the points (NULL: not used) */
    double max_norm;        /* their maximum */
    af_intp n;              /* fitted points */
    af_intp d;              /* features */
    af_intp n_nodes;        /* 0 for brute force */
    af_intp first_leaf;     /* nodes >= first_leaf are leaves */
    int metric;             /* AF_KNN_* */
    double p;               /* Minkowski power (AF_KNN_MINKOWSKI only) */
} af_knn_index;

typedef struct {
    double *heap_dist;      /* k reduced distances (max-heap), then sorted distances */
    af_intp *heap_pos;      /* their positions */
    af_intp *stack_node;    /* pending nodes of a tree search */
    double *stack_bound;    /* their reduced lower bounds */
    af_intp *active;        /* AF_KNN_GROUP x (tree levels + 1): a group's queries still searching, per level */
    double *centre;         /* d: the centre of a group's box */
    double *qnorm;          /* AF_KNN_GROUP squared norms of a group's queries */
} af_knn_scratch;

#if defined(__GNUC__) || defined(__clang__)
#define AF_KNN_INLINE static inline __attribute__((always_inline))
#else
#define AF_KNN_INLINE static inline
#endif

/* -- reduced distances ------------------------------------------------------ */

AF_KNN_INLINE double af_knn_add(const int metric, double acc, double diff, double p)
{
    double t;
    switch (metric) {
    case AF_KNN_EUCLIDEAN:
        return acc + diff * diff;
    case AF_KNN_MANHATTAN:
        return acc + fabs(diff);
    case AF_KNN_CHEBYSHEV:
        t = fabs(diff);
        return t > acc ? t : acc;
    default:
        return acc + pow(fabs(diff), p);
    }
}

AF_KNN_INLINE double af_knn_rdist(const af_knn_index *ix, const int metric,
                                  const double *q, af_intp j)
{
    const double *c = ix->columns + j;
    double acc = 0.0;
    af_intp f;
    for (f = 0; f < ix->d; f++)
        acc = af_knn_add(metric, acc, q[f] - c[f * ix->n], ix->p);
    return acc;
}

AF_KNN_INLINE double af_knn_to_dist(const int metric, double r, double p)
{
    if (metric == AF_KNN_EUCLIDEAN)
        return sqrt(r);
    if (metric == AF_KNN_MINKOWSKI)
        return pow(r, 1.0 / p);
    return r;
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define AF_KNN_HAVE_AVX2 1
#include <immintrin.h>
#define AF_KNN_AVX2 static inline __attribute__((target("avx2")))

/* Four coordinate differences into the reduced-distance sums (or maxima) acc:
 * lane by lane the IEEE operations of af_knn_add. */
AF_KNN_AVX2 __m256d af_knn_add4(const int metric, __m256d acc, __m256d diff)
{
    const __m256d sign = _mm256_set1_pd(-0.0);
    switch (metric) {
    case AF_KNN_EUCLIDEAN:
        return _mm256_add_pd(acc, _mm256_mul_pd(diff, diff));
    case AF_KNN_MANHATTAN:
        return _mm256_add_pd(acc, _mm256_andnot_pd(sign, diff));
    default: /* AF_KNN_CHEBYSHEV: |diff| where |diff| > acc, else acc */
        return _mm256_max_pd(_mm256_andnot_pd(sign, diff), acc);
    }
}

/* af_knn_box for the three metrics above, four features at a time (sums in
 * another order than the points': see af_knn_box). */
AF_KNN_AVX2 double af_knn_box_avx2(const af_knn_index *ix, const int metric,
                                   af_intp node, const double *q)
{
    const double *lo = ix->lower + node * ix->d;
    const double *hi = ix->upper + node * ix->d;
    const __m256d zero = _mm256_setzero_pd();
    __m256d lanes = zero, qv, gap;
    double out[4], acc, t, u;
    af_intp f;
    for (f = 0; f + 4 <= ix->d; f += 4) {
        qv = _mm256_loadu_pd(q + f);
        gap = _mm256_max_pd(_mm256_sub_pd(_mm256_loadu_pd(lo + f), qv),
                            _mm256_sub_pd(qv, _mm256_loadu_pd(hi + f)));
        lanes = af_knn_add4(metric, lanes, _mm256_max_pd(gap, zero));
    }
    _mm256_storeu_pd(out, lanes);
    if (metric == AF_KNN_CHEBYSHEV) {
        acc = out[0] > out[1] ? out[0] : out[1];
        t = out[2] > out[3] ? out[2] : out[3];
        acc = acc > t ? acc : t;
    } else {
        acc = (out[0] + out[1]) + (out[2] + out[3]);
    }
    for (; f < ix->d; f++) {
        t = lo[f] - q[f];
        u = q[f] - hi[f];
        t = t > u ? t : u;
        t = t > 0.0 ? t : 0.0;
        acc = af_knn_add(metric, acc, t, ix->p);
    }
    return acc;
}

/* af_knn_block for the three metrics above: the eight points as two groups of
 * four lanes. */
AF_KNN_AVX2 int af_knn_block_avx2(const af_knn_index *ix, const int metric, const double *q,
                                  af_intp j, double bound, double *acc)
{
    const double *col = ix->columns + j;
    const af_intp n = ix->n, d = ix->d;
    const __m256d bv = _mm256_set1_pd(bound);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, qv;
    af_intp f = 0;
    while (f < d) {
        qv = _mm256_broadcast_sd(q + f);
        a0 = af_knn_add4(metric, a0, _mm256_sub_pd(qv, _mm256_loadu_pd(col + f * n)));
        a1 = af_knn_add4(metric, a1, _mm256_sub_pd(qv, _mm256_loadu_pd(col + f * n + 4)));
        f++;
        if (!(f & 1) && f < d
            && !_mm256_movemask_pd(_mm256_cmp_pd(_mm256_min_pd(a0, a1), bv, _CMP_LE_OQ)))
            return 0;
    }
    _mm256_storeu_pd(acc, a0);
    _mm256_storeu_pd(acc + 4, a1);
    return 1;
}
#else
#define AF_KNN_HAVE_AVX2 0
#endif

/* Reduced distance from q to the bounding box of a node: a lower bound on the
 * reduced distance to each of its points.  Summed four features at a time (an
 * order other than the points'), so for sums it is shrunk by a relative
 * 4 * d * DBL_EPSILON, more than the rounding of either order can move it. */
AF_KNN_INLINE double af_knn_box(const af_knn_index *ix, const int metric, const int simd,
                                af_intp node, const double *q)
{
    const double *lo = ix->lower + node * ix->d;
    const double *hi = ix->upper + node * ix->d;
    double acc = 0.0, t, u;
    af_intp f = 0;
#if AF_KNN_HAVE_AVX2
    if (simd && metric != AF_KNN_MINKOWSKI)
        acc = af_knn_box_avx2(ix, metric, node, q);
    else
#endif
    for (; f < ix->d; f++) {
        t = lo[f] - q[f];
        u = q[f] - hi[f];
        t = t > u ? t : u;
        t = t > 0.0 ? t : 0.0;
        acc = af_knn_add(metric, acc, t, ix->p);
    }
    if (metric == AF_KNN_CHEBYSHEV)
        return acc;
    return acc * (1.0 - 4.0 * (double)ix->d * DBL_EPSILON);
}
/* Reduced distances from q to the AF_KNN_BLOCK points j.. into acc, each summed
 * over the features in order.  Returns 0, leaving acc partial, as soon as every
 * partial sum exceeds bound after an even number of features (then so do the
 * full sums; checking after every feature, or less often, measured slower). */
AF_KNN_INLINE int af_knn_block(const af_knn_index *ix, const int metric, const int simd,
                               const double *q, af_intp j, double bound, double *acc)
{
    const double *col = ix->columns + j;
    const af_intp n = ix->n, d = ix->d;
    double qf, low;
    af_intp f;
    int b;
#if AF_KNN_HAVE_AVX2
    if (simd && metric != AF_KNN_MINKOWSKI)
        return af_knn_block_avx2(ix, metric, q, j, bound, acc);
#endif
    for (b = 0; b < AF_KNN_BLOCK; b++)
        acc[b] = 0.0;
    for (f = 0; f < d; f++) {
        qf = q[f];
        for (b = 0; b < AF_KNN_BLOCK; b++)
            acc[b] = af_knn_add(metric, acc[b], qf - col[f * n + b], ix->p);
        if ((f & 1) && f + 1 < d) {
            low = acc[0];
            for (b = 1; b < AF_KNN_BLOCK; b++)
                low = acc[b] < low ? acc[b] : low;
            if (low > bound)
                return 0;
        }
    }
    return 1;
}

/* -- the k best candidates: a max-heap on (reduced distance, position) ------- */

AF_KNN_INLINE int af_knn_worse(double da, af_intp ia, double db, af_intp ib)
{
    return da > db || (da == db && ia > ib);
}

AF_KNN_INLINE void af_knn_offer_to(double *hd, af_intp *hp, af_intp k, double r, af_intp pos)
{
    af_intp t = 0, child;
    if (!af_knn_worse(hd[0], hp[0], r, pos))
        return;
    for (;;) {
        child = 2 * t + 1;
        if (child >= k)
            break;
        if (child + 1 < k && af_knn_worse(hd[child + 1], hp[child + 1], hd[child], hp[child]))
            child++;
        if (!af_knn_worse(hd[child], hp[child], r, pos))
            break;
        hd[t] = hd[child];
        hp[t] = hp[child];
        t = child;
    }
    hd[t] = r;
    hp[t] = pos;
}

AF_KNN_INLINE void af_knn_offer(af_knn_scratch *s, af_intp k, double r, af_intp pos)
{
    af_knn_offer_to(s->heap_dist, s->heap_pos, k, r, pos);
}

/* Offer the points begin..stop-1 (except skip) to the heap. */
AF_KNN_INLINE void af_knn_scan(const af_knn_index *ix, const int metric, const int simd,
                               af_knn_scratch *s, af_intp k, const double *q,
                               af_intp begin, af_intp stop, af_intp skip)
{
    double acc[AF_KNN_BLOCK];
    af_intp j = begin, width;
    double r;
    int b;
    /* a last, partial block reads (and ignores) the points after it, if any */
    while (j < stop && j + AF_KNN_BLOCK <= ix->n) {
        if (af_knn_block(ix, metric, simd, q, j, s->heap_dist[0], acc)) {
            width = stop - j < AF_KNN_BLOCK ? stop - j : AF_KNN_BLOCK;
            for (b = 0; b < width; b++)
                if (acc[b] <= s->heap_dist[0] && j + b != skip)
                    af_knn_offer(s, k, acc[b], j + b);
        }
        j += AF_KNN_BLOCK;
    }
    for (; j < stop; j++) {
        if (j == skip)
            continue;
        r = af_knn_rdist(ix, metric, q, j);
        if (r <= s->heap_dist[0])
            af_knn_offer(s, k, r, j);
    }
}

/* A heap of k candidates into neighbour order (insertion sort: k is small),
 * reduced distances into distances. */
AF_KNN_INLINE void af_knn_finish(double *hd, af_intp *hp, af_intp k, const int metric, double p)
{
    af_intp a, c, pv;
    double dv;
    for (a = 1; a < k; a++) {
        dv = hd[a];
        pv = hp[a];
        c = a - 1;
        while (c >= 0 && af_knn_worse(hd[c], hp[c], dv, pv)) {
            hd[c + 1] = hd[c];
            hp[c + 1] = hp[c];
            c--;
        }
        hd[c + 1] = dv;
        hp[c + 1] = pv;
    }
    for (a = 0; a < k; a++)
        hd[a] = af_knn_to_dist(metric, hd[a], p);
}

AF_KNN_INLINE void af_knn_body(const af_knn_index *ix, const int metric, const int simd,
                               af_knn_scratch *s,
                               af_intp k, const double *q, af_intp skip)
{
    double *hd = s->heap_dist, dv, bound, b_near, b_far;
    af_intp *hp = s->heap_pos, a, top, node, near, far;
    for (a = 0; a < k; a++) {
        hd[a] = INFINITY;
        hp[a] = AF_KNN_NO_POINT;
    }
    if (ix->n_nodes == 0) {
        af_knn_scan(ix, metric, simd, s, k, q, 0, ix->n, skip);
    } else {
        s->stack_node[0] = 0;
        s->stack_bound[0] = af_knn_box(ix, metric, simd, 0, q);
        top = 1;
        while (top > 0) {
            top--;
            node = s->stack_node[top];
            bound = s->stack_bound[top];
            if (bound > hd[0])  /* equal may still win on position */
                continue;
            /* go down to the nearer child, leaving the farther one on the stack */
            while (node < ix->first_leaf) {
                near = 2 * node + 1;
                far = near + 1;
                b_near = af_knn_box(ix, metric, simd, near, q);
                b_far = af_knn_box(ix, metric, simd, far, q);
                if (b_far < b_near) {
                    near = far;
                    far = near - 1;
                    dv = b_near;
                    b_near = b_far;
                    b_far = dv;
                }
                if (b_far <= hd[0]) {
                    s->stack_node[top] = far;
                    s->stack_bound[top] = b_far;
                    top++;
                }
                if (b_near > hd[0])
                    break;
                node = near;
            }
            if (node >= ix->first_leaf)
                af_knn_scan(ix, metric, simd, s, k, q, ix->start[node], ix->end[node], skip);
        }
    }
    af_knn_finish(hd, hp, k, metric, ix->p);
}

#define AF_KNN_DEFINE(NAME, SIMD, ATTRIBUTES)                                                   \
    ATTRIBUTES static void NAME(const af_knn_index *ix, af_knn_scratch *s, af_intp k,     \
                                const double *q, af_intp skip)                            \
    {                                                                                     \
        switch (ix->metric) {                                                             \
        case AF_KNN_EUCLIDEAN: af_knn_body(ix, AF_KNN_EUCLIDEAN, SIMD, s, k, q, skip); break;   \
        case AF_KNN_MANHATTAN: af_knn_body(ix, AF_KNN_MANHATTAN, SIMD, s, k, q, skip); break;   \
        case AF_KNN_CHEBYSHEV: af_knn_body(ix, AF_KNN_CHEBYSHEV, SIMD, s, k, q, skip); break;   \
        default: af_knn_body(ix, AF_KNN_MINKOWSKI, SIMD, s, k, q, skip); break;                 \
        }                                                                                 \
    }

AF_KNN_DEFINE(af_knn_portable, 0, )

typedef void (*af_knn_search_fn)(const af_knn_index *, af_knn_scratch *, af_intp,
                                 const double *, af_intp);

#if AF_KNN_HAVE_AVX2
AF_KNN_DEFINE(af_knn_avx2, 1, __attribute__((target("avx2"))))
#endif

static af_knn_search_fn af_knn_chosen = af_knn_portable;

/* The k nearest fitted points to q except position skip (-1: none), into
 * s->heap_dist (distances, ascending) / s->heap_pos. */
static inline void af_knn(const af_knn_index *ix, af_knn_scratch *s, af_intp k,
                          const double *q, af_intp skip)
{
    af_knn_chosen(ix, s, k, q, skip);
}

/* -- many queries at once (af_knn_many) -------------------------------------
 *
 * Queries near each other (rows of one leaf, or with brute force any rows)
 * form a group of up to AF_KNN_GROUP that walks the tree together: at each
 * node every query of the group checks its own distance to the node's box
 * against its own k-th best, and only the queries left go on down (the
 * pruning of the one-query search, per query).  At a leaf the queries left are
 * compared with the leaf's rows in tiles of 4 queries x 8 rows held in AVX2
 * registers, through |q|^2 + |t|^2 - 2 q.t with fused multiply-adds (about a
 * third of the instructions of the one-query search per pair).  That value
 * is only a filter with a proven rounding margin (af_knn_tiles): a row that
 * passes is recomputed exactly by af_knn_rdist (differences, squares, sum in
 * feature order, no fused multiply-add: scikit-learn's arithmetic) and
 * offered to the query's heap.  So every distance kept is bit for bit the one
 * of the one-query search, and the neighbours are the same (same tie rule),
 * whatever the grouping, the thread or the instruction set. */

/* The leaf a query falls in: down the tree, into the child whose box is
 * nearer (the left one on a tie).  0 for brute force. */
static af_intp af_knn_leaf(const af_knn_index *ix, const double *q)
{
    af_intp node = 0;
    while (node < ix->first_leaf) {
        node = 2 * node + 1;
        if (af_knn_box(ix, ix->metric, 0, node + 1, q) < af_knn_box(ix, ix->metric, 0, node, q))
            node++;
    }
    return node;
}

#if AF_KNN_HAVE_AVX2
#define AF_KNN_FMA static inline __attribute__((target("avx2,fma")))

/* Offer to query a's heap the rows j + b of a tile whose fused sums passed the
 * filter (bits b of mask), recomputed exactly.  Compiled for AVX2 without FMA
 * and never inlined into the FMA code, so the compiler cannot fuse the exact
 * sums either. */
__attribute__((target("avx2"), noinline)) static void
af_knn_tile_offer(const af_knn_index *ix, af_knn_scratch *s, af_intp k, const double *q,
                  af_intp a, unsigned mask, af_intp j, af_intp stop, af_intp skip)
{
    double *hd = s->heap_dist + a * k, r;
    af_intp *hp = s->heap_pos + a * k, jj;
    while (mask) {
        jj = j + __builtin_ctz(mask);
        mask &= mask - 1;
        if (jj >= stop || jj == skip)
            continue;
        r = af_knn_rdist(ix, AF_KNN_EUCLIDEAN, q, jj);
        if (r <= hd[0])
            af_knn_offer_to(hd, hp, k, r, jj);
    }
}

/* Compare the queries act[0..na-1] of the group (rows of Q) with the fitted
 * rows begin..stop-1 (euclidean), 4 queries x 8 rows at a time, through
 * |q|^2 + |t|^2 - 2 q.t (fused multiply-adds): a filter only.  That value F
 * and the exact sum r of the squared differences (computed by
 * af_knn_tile_offer as scikit-learn does) are both within a few d DBL_EPSILON
 * of the true squared distance T: |r - T| <= (d + 3) u T and
 * |F - T| <= (d + 2) DBL_EPSILON (|q|^2 + |t|^2) (u = DBL_EPSILON / 2).  A row with
 * r <= bound therefore has F <= bound (1 + 2 (d + 4) DBL_EPSILON)
 * + 2 (d + 4) DBL_EPSILON (|q|^2 + max |t|^2), the limit used below (twice
 * the sum of the error bounds).  A NaN F (squares overflowing) always passes. */
AF_KNN_FMA void af_knn_tiles(const af_knn_index *ix, af_knn_scratch *s, af_intp k,
                             const double *Q, const af_intp *act, af_intp na,
                             af_intp begin, af_intp stop, af_intp skip0)
{
    const af_intp n = ix->n, d = ix->d;
    const double grow = 1.0 + 2.0 * (double)(d + 4) * DBL_EPSILON;
    const double slack = 2.0 * (double)(d + 4) * DBL_EPSILON;
    const __m256d two = _mm256_set1_pd(2.0);
    const double *q[4], *col;
    af_intp i, j, f, c, a[4], width;
    __m256d t0, t1, qv, n0, n1, base, lim, x0, x1, y0, y1, z0, z1, w0, w1;
    unsigned mask;
    for (i = 0; i < na; i += 4) {
        width = na - i < 4 ? na - i : 4;
        for (c = 0; c < 4; c++) {
            a[c] = act[i + (c < width ? c : width - 1)];
            q[c] = Q + a[c] * d;
        }
        for (j = begin; j < stop; j += AF_KNN_BLOCK) {
            if (j + AF_KNN_BLOCK > n) {  /* the last rows: each one exactly */
                for (c = 0; c < width; c++)
                    af_knn_tile_offer(ix, s, k, q[c], a[c], (1u << (stop - j)) - 1u, j, stop,
                                      skip0 >= 0 ? skip0 + a[c] : -1);
                break;
            }
            col = ix->columns + j;
            /* written out query by query: with arrays of accumulators GCC kept
             * them in memory (stores in the inner loop, measured 20 % slower) */
            x0 = x1 = y0 = y1 = z0 = z1 = w0 = w1 = _mm256_setzero_pd();
            for (f = 0; f < d; f++) {
                t0 = _mm256_loadu_pd(col + f * n);
                t1 = _mm256_loadu_pd(col + f * n + 4);
                qv = _mm256_broadcast_sd(q[0] + f);
                x0 = _mm256_fmadd_pd(qv, t0, x0);
                x1 = _mm256_fmadd_pd(qv, t1, x1);
                qv = _mm256_broadcast_sd(q[1] + f);
                y0 = _mm256_fmadd_pd(qv, t0, y0);
                y1 = _mm256_fmadd_pd(qv, t1, y1);
                qv = _mm256_broadcast_sd(q[2] + f);
                z0 = _mm256_fmadd_pd(qv, t0, z0);
                z1 = _mm256_fmadd_pd(qv, t1, z1);
                qv = _mm256_broadcast_sd(q[3] + f);
                w0 = _mm256_fmadd_pd(qv, t0, w0);
                w1 = _mm256_fmadd_pd(qv, t1, w1);
            }
            n0 = _mm256_loadu_pd(ix->norms + j);
            n1 = _mm256_loadu_pd(ix->norms + j + 4);
#define AF_KNN_TILE_ROW(C, A0, A1)                                                         \
            if (C < width) {                                                               \
                qv = _mm256_set1_pd(s->qnorm[a[C]]);                                       \
                lim = _mm256_set1_pd(s->heap_dist[a[C] * k] * grow                         \
                                     + slack * (s->qnorm[a[C]] + ix->max_norm));           \
                base = _mm256_fnmadd_pd(two, A0, _mm256_add_pd(qv, n0));                   \
                mask = ~(unsigned)_mm256_movemask_pd(_mm256_cmp_pd(base, lim, _CMP_GT_OQ)) & 15u; \
                base = _mm256_fnmadd_pd(two, A1, _mm256_add_pd(qv, n1));                   \
                mask |= (~(unsigned)_mm256_movemask_pd(_mm256_cmp_pd(base, lim, _CMP_GT_OQ)) & 15u) << 4; \
                if (mask)                                                                  \
                    af_knn_tile_offer(ix, s, k, q[C], a[C], mask, j, stop,                 \
                                      skip0 >= 0 ? skip0 + a[C] : -1);                     \
            }
            AF_KNN_TILE_ROW(0, x0, x1)
            AF_KNN_TILE_ROW(1, y0, y1)
            AF_KNN_TILE_ROW(2, z0, z1)
            AF_KNN_TILE_ROW(3, w0, w1)
#undef AF_KNN_TILE_ROW
        }
    }
}

/* Search the subtree of node for the queries act[0..na-1] of the group: each
 * goes on down only while its own distance to the node's box can still beat
 * its k-th best; children in order of distance from the group's centre mid.
 * act has room for the active lists of every level below. */
AF_KNN_FMA void af_knn_descend(const af_knn_index *ix, af_knn_scratch *s, af_intp k,
                               const double *Q, af_intp *act, af_intp na, af_intp node,
                               const double *mid, af_intp skip0)
{
    af_intp *next = act + na, nn = 0, a, near;
    for (a = 0; a < na; a++)
        if (af_knn_box(ix, AF_KNN_EUCLIDEAN, 1, node, Q + act[a] * ix->d)
            <= s->heap_dist[act[a] * k])
            next[nn++] = act[a];
    if (nn == 0)
        return;
    if (node >= ix->first_leaf) {
        af_knn_tiles(ix, s, k, Q, next, nn, ix->start[node], ix->end[node], skip0);
        return;
    }
    near = 2 * node + 1;
    if (af_knn_box(ix, AF_KNN_EUCLIDEAN, 1, near + 1, mid) < af_knn_box(ix, AF_KNN_EUCLIDEAN, 1, near, mid))
        near++;
    af_knn_descend(ix, s, k, Q, next, nn, near, mid, skip0);
    af_knn_descend(ix, s, k, Q, next, nn, near % 2 ? near + 1 : near - 1, mid, skip0);
}

/* The k nearest fitted rows of the g queries Q (rows, g <= AF_KNN_GROUP),
 * query a leaving out position skip0 + a when skip0 >= 0, into the heaps of s
 * (query a's at heap_dist + a * k), sorted, as distances. */
AF_KNN_FMA void af_knn_group(const af_knn_index *ix, af_knn_scratch *s, af_intp k,
                             const double *Q, af_intp g, af_intp skip0)
{
    const af_intp d = ix->d;
    double *mid = s->centre, lo, hi, v;
    af_intp a, f;
    for (a = 0; a < g * k; a++) {
        s->heap_dist[a] = INFINITY;
        s->heap_pos[a] = AF_KNN_NO_POINT;
    }
    for (a = 0; a < g; a++) {
        s->active[a] = a;
        v = 0.0;
        for (f = 0; f < d; f++)
            v += Q[a * d + f] * Q[a * d + f];
        s->qnorm[a] = v;
    }
    if (ix->n_nodes == 0) {
        af_knn_tiles(ix, s, k, Q, s->active, g, 0, ix->n, skip0);
    } else {
        for (f = 0; f < d; f++) {
            lo = hi = Q[f];
            for (a = 1; a < g; a++) {
                v = Q[a * d + f];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            mid[f] = 0.5 * lo + 0.5 * hi;
        }
        af_knn_descend(ix, s, k, Q, s->active, g, 0, mid, skip0);
    }
    for (a = 0; a < g; a++)
        af_knn_finish(s->heap_dist + a * k, s->heap_pos + a * k, k, AF_KNN_EUCLIDEAN, ix->p);
}
#endif

static int af_knn_groups_on = 0;
  /* af_knn_many searches in groups (AVX2 + FMA, euclidean) */

/* Use the AVX2 copy when asked and the CPU has it; returns whether it is used. */
static int af_knn_use_simd(int wanted)
{
    af_knn_chosen = af_knn_portable;
    af_knn_groups_on = 0;
#if AF_KNN_HAVE_AVX2
    __builtin_cpu_init();
    if (wanted && __builtin_cpu_supports("avx2")) {
        af_knn_chosen = af_knn_avx2;
        af_knn_groups_on = __builtin_cpu_supports("fma");
    }
#endif
    return af_knn_chosen != af_knn_portable;
}

/* The k nearest fitted rows of each of the m queries Q (rows of d), query i
 * leaving out position skip0 + i when skip0 >= 0, into rows i of out_dist
 * and out_pos (k each; the results of af_knn).  Consecutive queries with the
 * same group[i] (NULL: any) are searched together, AF_KNN_GROUP at most:
 * callers order the queries by leaf (af_knn_leaf) so that groups are tight.
 * s must hold AF_KNN_GROUP heaps of k. */
static void af_knn_many(const af_knn_index *ix, af_knn_scratch *s, af_intp k, const double *Q,
                        const af_intp *group, af_intp m, af_intp skip0,
                        double *out_dist, af_intp *out_pos)
{
    af_intp i = 0, g;
#if AF_KNN_HAVE_AVX2
    if (af_knn_groups_on && ix->metric == AF_KNN_EUCLIDEAN && ix->norms != NULL) {
        while (i < m) {
            g = 1;
            while (i + g < m && g < AF_KNN_GROUP && (group == NULL || group[i + g] == group[i]))
                g++;
            af_knn_group(ix, s, k, Q + i * ix->d, g, skip0 >= 0 ? skip0 + i : -1);
            memcpy(out_dist + i * k, s->heap_dist, (size_t)(g * k) * sizeof(double));
            memcpy(out_pos + i * k, s->heap_pos, (size_t)(g * k) * sizeof(af_intp));
            i += g;
        }
        return;
    }
#endif
    (void)g;
    for (; i < m; i++) {
        af_knn(ix, s, k, Q + i * ix->d, skip0 >= 0 ? skip0 + i : -1);
        memcpy(out_dist + i * k, s->heap_dist, (size_t)k * sizeof(double));
        memcpy(out_pos + i * k, s->heap_pos, (size_t)k * sizeof(af_intp));
    }
}

#endif
