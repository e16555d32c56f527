# Compiled input checks for the API's small-batch fast paths (one service
# request = one row): the same checks as scikit-learn's validation, without
# its per-call overhead.  These are checks the API calls before a kernel;
# kernels themselves never validate.
cimport numpy as cnp
from libc.math cimport isfinite

from _types cimport intp_t

cnp.import_array()


def all_finite(cnp.ndarray X):
    """True when every entry of the C-contiguous float32/float64 array X is
    finite (no NaN, no +-inf)."""
    cdef intp_t i, n = cnp.PyArray_SIZE(X)
    cdef const double* d
    cdef const float* f
    if cnp.PyArray_TYPE(X) == cnp.NPY_FLOAT64:
        d = <const double*>cnp.PyArray_DATA(X)
        for i in range(n):
            if not isfinite(d[i]):
                return False
    else:
        f = <const float*>cnp.PyArray_DATA(X)
        for i in range(n):
            if not isfinite(f[i]):
                return False
    return True
