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
    double *query;          /* d coordinates of a fitted point used as query */
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

AF_KNN_INLINE void af_knn_offer(af_knn_scratch *s, af_intp k, double r, af_intp pos)
{
    double *hd = s->heap_dist;
    af_intp *hp = s->heap_pos;
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

AF_KNN_INLINE void af_knn_body(const af_knn_index *ix, const int metric, const int simd,
                               af_knn_scratch *s,
                               af_intp k, const double *q, af_intp skip)
{
    double *hd = s->heap_dist, dv, bound, b_near, b_far;
    af_intp *hp = s->heap_pos, a, c, pv, top, node, near, far;
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
    /* neighbour order (insertion sort: k is small), then distances */
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
        hd[a] = af_knn_to_dist(metric, hd[a], ix->p);
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

/* Use the AVX2 copy when asked and the CPU has it; returns whether it is used. */
static int af_knn_use_simd(int wanted)
{
    af_knn_chosen = af_knn_portable;
#if AF_KNN_HAVE_AVX2
    __builtin_cpu_init();
    if (wanted && __builtin_cpu_supports("avx2"))
        af_knn_chosen = af_knn_avx2;
#endif
    return af_knn_chosen != af_knn_portable;
}

#endif
