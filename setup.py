"""Build the Cython kernels in ``native/`` into ``anomaly_fast._*`` extensions.

Cython directives live here and only here.  Set ``ANOMALY_FAST_DEBUG=1`` while
building to turn bounds checks, wraparound checks and C-division checks back
on (used by the test build; slower, but an out-of-range index raises instead
of reading garbage).
"""

import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ANOMALY_FAST_DEBUG", "0") not in ("", "0", "false", "False")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": True,  # kernels divide only non-negative ints; C semantics always
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "embedsignature": True,
}

NATIVE = Path("native")
extensions = [
    Extension(
        f"anomaly_fast.{pyx.stem}",
        [str(pyx)],
        include_dirs=[np.get_include(), str(NATIVE)],
        depends=[str(h) for h in sorted(NATIVE.glob("*.h"))],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for pyx in sorted(NATIVE.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        include_path=[str(NATIVE)],
    ),
)
