# Compiled top-k selection of one row's feature contributions, for the
# explanations alerts carry (anomaly_fast.forest.explain.top_features): one
# alert's explanation costs about a microsecond, where Python's sort and dict
# building took four.
cimport numpy as cnp
from libc.stdlib cimport malloc, free

from _types cimport float64_t, intp_t

cnp.import_array()


cdef inline bint _before(float64_t a, float64_t b) noexcept nogil:
    """``a`` ranks before ``b``: larger, NaN last (never before anything)."""
    return a > b or (a == a and b != b)


def top_k(cnp.ndarray contributions, cnp.ndarray values, intp_t k, object names=None):
    """The ``k`` largest of ``contributions`` as a list of dicts
    ``{"feature", "contribution", "value"}``, largest first, ties by lower
    index, NaN last (the order of a stable argsort of ``-contributions``);
    ``feature`` is ``str(names[j])`` when ``names`` is given, else ``j``.
    ``contributions`` and ``values``: 1-D C-contiguous float64 arrays of one
    length (checked)."""
    if (cnp.PyArray_TYPE(contributions) != cnp.NPY_FLOAT64 or cnp.PyArray_TYPE(values) != cnp.NPY_FLOAT64
            or contributions.ndim != 1 or values.ndim != 1 or values.shape[0] != contributions.shape[0]
            or not cnp.PyArray_IS_C_CONTIGUOUS(contributions) or not cnp.PyArray_IS_C_CONTIGUOUS(values)):
        raise ValueError("top_k takes two 1-D C-contiguous float64 arrays of one length")
    cdef intp_t n = contributions.shape[0], i, j, m = 0
    cdef const float64_t* c = <const float64_t*>cnp.PyArray_DATA(contributions)
    cdef const float64_t* v = <const float64_t*>cnp.PyArray_DATA(values)
    k = min(k, n)
    if k <= 0:
        return []
    cdef intp_t* top = <intp_t*>malloc(k * sizeof(intp_t))
    if top == NULL:
        raise MemoryError("not enough memory for the top features")
    for j in range(n):  # insertion into the ranked top[:m]; j goes after every entry it does not beat
        if m < k:
            i = m
            m += 1
        elif _before(c[j], c[top[k - 1]]):
            i = k - 1
        else:
            continue
        while i > 0 and _before(c[j], c[top[i - 1]]):
            top[i] = top[i - 1]
            i -= 1
        top[i] = j
    try:
        if names is None:
            return [{"feature": top[i], "contribution": c[top[i]], "value": v[top[i]]} for i in range(k)]
        return [{"feature": str(names[top[i]]), "contribution": c[top[i]], "value": v[top[i]]} for i in range(k)]
    finally:
        free(top)
