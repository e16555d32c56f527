# Shared C type names for every kernel in native/.  Cimport from here; do not
# declare a DTYPE_t per file.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

ctypedef double float64_t
ctypedef float float32_t
ctypedef Py_ssize_t intp_t
ctypedef size_t uintp_t

ctypedef fused floating_t:
    float
    double
