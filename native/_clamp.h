/* Branch-free clamps of doubles for native/_isolation.pyx (the explain credit).
 *
 * With SSE2 (every x86-64) they are one maxsd/minsd each, whose result is the second operand
 * when the comparison fails, NaN included: af_max0(x) = x > 0 ? x : 0 (0 for NaN),
 * af_min1(x) = x < 1 ? x : 1 (1 for NaN).  GCC turns Cython's conditional expressions into
 * branches, which data decide at random (a value inside or outside a node's range).  Elsewhere
 * the same expressions in C, which give the same results.
 */
#ifndef ANOMALY_FAST_CLAMP_H
#define ANOMALY_FAST_CLAMP_H

#if defined(__SSE2__)
#include <emmintrin.h>
static inline double af_max0(double x)
{
    return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(x), _mm_setzero_pd()));
}
static inline double af_min1(double x)
{
    return _mm_cvtsd_f64(_mm_min_sd(_mm_set_sd(x), _mm_set_sd(1.0)));
}
#else
static inline double af_max0(double x) { return x > 0.0 ? x : 0.0; }
static inline double af_min1(double x) { return x < 1.0 ? x : 1.0; }
#endif

#endif
