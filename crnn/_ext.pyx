"""crnn._ext -- the compiled core: the C kernels and the BLAS they call.

Importing this module binds the BLAS seam (src/blas.h) once, at run time;
the extension links against no BLAS:

- CRNN_BLAS unset or "auto": NumPy's own OpenBLAS (one thread pool shared
  with NumPy), else the OpenBLAS vendored in crnn/_vendor/;
- CRNN_BLAS=numpy: NumPy's or ImportError;
- CRNN_BLAS=vendored: the vendored copy or ImportError.

No BLAS at all is an ImportError that says where it looked (the package
then runs on its NumPy backend). Kernel bindings, added below the BLAS
section, take the bound seam from crnn_runtime_blas() and pass it to the
C core; they hold no logic of their own.

Compiler directives (boundscheck=False, ...) are set once in setup.py;
CRNN_CYTHON_DEBUG=1 at build time turns the checks on.
"""

import os

# NumPy first: its OpenBLAS must be loaded before the lookup below.
import numpy as np

# ---------------------------------------------------------------------------
# BLAS: binding at import, and its Python-level view

_VENDORED_LIBRARY = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_vendor", "libscipy_openblas.so")

_BLAS_FROM = {
    "auto": CRNN_BLAS_FROM_ANY,
    "numpy": CRNN_BLAS_FROM_NUMPY,
    "vendored": CRNN_BLAS_FROM_VENDORED,
}


cdef int _bind_blas() except -1:
    cdef char err[1024]
    wanted = os.environ.get("CRNN_BLAS", "").strip().lower() or "auto"
    if wanted not in _BLAS_FROM:
        raise ImportError(f"crnn._ext: CRNN_BLAS={wanted!r} is not one of "
                          f"{', '.join(_BLAS_FROM)}")
    numpy_dir = os.fsencode(os.path.dirname(os.path.abspath(np.__file__)))
    vendored = os.fsencode(_VENDORED_LIBRARY)
    err[0] = 0
    rc = crnn_runtime_blas_init(_BLAS_FROM[wanted], numpy_dir, vendored,
                                err, sizeof(err))
    if rc != CRNN_RT_OK:
        raise ImportError(f"crnn._ext: no BLAS could be bound "
                          f"(CRNN_BLAS={wanted}): "
                          f"{err.decode('utf-8', 'replace')}")
    return 0


_bind_blas()


def blas_info():
    """Describe the BLAS that the C core calls.

    Returns a dict:
      source:   "numpy" (NumPy's own OpenBLAS, thread pool shared with NumPy)
                or "vendored" (crnn's private copy of scipy-openblas32);
      library:  path of the shared library;
      int_bits: 64 (ILP64) or 32 (LP64) integer arguments;
      config:   OpenBLAS's configuration string, "" for another BLAS.
    """
    cdef const crnn_blas_runtime_info *info = crnn_runtime_blas_info()
    return {
        "source": info.source.decode("ascii"),
        "library": os.fsdecode(<bytes>info.library),
        "int_bits": info.int_bits,
        "config": info.config.decode("utf-8", "replace"),
    }


def set_num_threads(int n):
    """Set the thread count of the BLAS pool in use (n >= 1).

    With source "numpy" this is NumPy's pool too (one pool is the point).
    Raises ValueError for n < 1, RuntimeError when the library has no
    openblas_set_num_threads.
    """
    rc = crnn_runtime_blas_set_num_threads(n)
    if rc == CRNN_RT_BAD_ARG:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if rc != CRNN_RT_OK:
        raise RuntimeError("set_num_threads: the BLAS in use has no "
                           "openblas_set_num_threads; use threadpoolctl")


def get_num_threads():
    """Thread count of the BLAS pool in use (RuntimeError if unknown)."""
    n = crnn_runtime_blas_get_num_threads()
    if n < 0:
        raise RuntimeError("get_num_threads: the BLAS in use has no "
                           "openblas_get_num_threads; use threadpoolctl")
    return n


ctypedef fused real:
    float
    double


cdef inline const real *_data(const real[:, ::1] x) noexcept nogil:
    # &x[0, 0] of an empty view is out of bounds; the seam reads nothing then.
    if x.shape[0] == 0 or x.shape[1] == 0:
        return NULL
    return &x[0, 0]


cdef int _gemm(const crnn_blas *blas, crnn_trans ta, crnn_trans tb,
               real alpha, const real[:, ::1] a, const real[:, ::1] b,
               real beta, real[:, ::1] c) except -1:
    cdef ptrdiff_t m = c.shape[0], n = c.shape[1]
    cdef ptrdiff_t k = a.shape[0] if ta == CRNN_TRANS else a.shape[1]
    # Row strides of C-contiguous storage; at least 1, as BLAS demands.
    cdef ptrdiff_t lda = max(a.shape[1], 1), ldb = max(b.shape[1], 1)
    cdef ptrdiff_t ldc = max(c.shape[1], 1)
    with nogil:
        if real is float:
            # c[...] = alpha * op(a) @ op(b) + beta * c
            blas.sgemm(ta, tb, m, n, k, alpha, _data(a), lda, _data(b), ldb,
                       beta, <float *>_data(c), ldc)
        else:
            # c[...] = alpha * op(a) @ op(b) + beta * c
            blas.dgemm(ta, tb, m, n, k, alpha, _data(a), lda, _data(b), ldb,
                       beta, <double *>_data(c), ldc)
    return 0


def blas_gemm(a, b, trans_a=False, trans_b=False, *, alpha=1.0, beta=0.0,
              out=None, naive=False):
    """alpha * op(a) @ op(b) + beta * out through the BLAS seam (a test hook).

    a, b: 2-D C-contiguous arrays, both float32 or both float64;
    op(x) is x.T when the matching trans_* is true. out (optional, same
    dtype, C-contiguous, shape (m, n), not overlapping a or b) is written in
    place and returned; without it a new array is returned and beta must be
    0. beta == 0 overwrites out whatever it holds (NaN included), as BLAS.
    naive=True runs crnn_blas_naive() (the C tests' plain loops) instead
    of the bound BLAS. The GIL is released during the product.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"blas_gemm: a and b must both be float32 or both "
                        f"float64, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"blas_gemm: a and b must be 2-D, got {a.ndim}-D "
                         f"and {b.ndim}-D")
    if not (a.flags.c_contiguous and b.flags.c_contiguous):
        raise ValueError("blas_gemm: a and b must be C-contiguous")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k_b, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k_b:
        raise ValueError(f"blas_gemm: op(a) is {(m, k)} but op(b) is {(k_b, n)}")
    if out is None:
        if beta != 0:
            raise ValueError("blas_gemm: beta != 0 needs out")
        out = np.empty((m, n), dtype=a.dtype)
    elif (not isinstance(out, np.ndarray) or out.dtype != a.dtype
          or out.shape != (m, n) or not out.flags.c_contiguous
          or not out.flags.writeable):
        raise ValueError(f"blas_gemm: out must be a writeable C-contiguous "
                         f"{a.dtype} array of shape {(m, n)}")
    elif np.may_share_memory(out, a) or np.may_share_memory(out, b):
        raise ValueError("blas_gemm: out overlaps a or b")

    cdef const crnn_blas *blas = crnn_blas_naive() if naive else crnn_runtime_blas()
    cdef crnn_trans ta = CRNN_TRANS if trans_a else CRNN_NO_TRANS
    cdef crnn_trans tb = CRNN_TRANS if trans_b else CRNN_NO_TRANS
    if a.dtype == np.float32:
        _gemm[float](blas, ta, tb, alpha, a, b, beta, out)
    else:
        _gemm[double](blas, ta, tb, alpha, a, b, beta, out)
    return out


def _set_lp64_limit(limit):
    """Test hook: largest size handed to an LP64 BLAS (default 2**31 - 1).

    Larger products run on the naive loops instead. Returns the old limit;
    limit < 1 only reads it. No effect on an ILP64 BLAS.
    """
    return crnn_cblas_lp64_limit(limit)

# ---------------------------------------------------------------------------
# Kernels: bindings to src/*.c go below; pass crnn_runtime_blas() to the core.
