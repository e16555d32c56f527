# A small, fast, seedable PRNG shared by the kernels (xoshiro256** seeded by
# splitmix64).  One ``RandomState`` per tree or per model keeps results
# independent of how work is split over threads.
from libc.math cimport log, sqrt, cos, sin, M_PI
from libc.stdint cimport uint64_t

cdef struct RandomState:
    uint64_t s0  # xoshiro256** state word 0
    uint64_t s1  # state word 1
    uint64_t s2  # state word 2
    uint64_t s3  # state word 3
    double spare    # the second normal of the last Box-Muller pair
    int has_spare   # spare holds an unused normal


cdef inline uint64_t _splitmix64(uint64_t* x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void rng_seed(RandomState* rng, uint64_t seed) noexcept nogil:
    cdef uint64_t x = seed
    rng.s0 = _splitmix64(&x)
    rng.s1 = _splitmix64(&x)
    rng.s2 = _splitmix64(&x)
    rng.s3 = _splitmix64(&x)
    rng.spare = 0.0
    rng.has_spare = 0


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t rng_next(RandomState* rng) noexcept nogil:
    cdef uint64_t result = _rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = _rotl(rng.s3, 45)
    return result


cdef inline double rng_uniform(RandomState* rng) noexcept nogil:
    """Uniform double in [0, 1)."""
    return (rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef inline Py_ssize_t rng_below(RandomState* rng, Py_ssize_t n) noexcept nogil:
    """Uniform integer in [0, n) for 0 < n < 2**32 (Lemire's multiply-shift)."""
    return <Py_ssize_t>(((rng_next(rng) >> 32) * <uint64_t>n) >> 32)


cdef inline double rng_normal(RandomState* rng) noexcept nogil:
    """Standard normal draw (Box-Muller: each pair of uniforms gives two
    normals, the second kept for the next call)."""
    if rng.has_spare:
        rng.has_spare = 0
        return rng.spare
    cdef double u1 = 1.0 - rng_uniform(rng)  # in (0, 1]
    cdef double u2 = rng_uniform(rng)
    cdef double radius = sqrt(-2.0 * log(u1))
    cdef double angle = 2.0 * M_PI * u2
    rng.spare = radius * sin(angle)
    rng.has_spare = 1
    return radius * cos(angle)
