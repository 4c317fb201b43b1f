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
import sys

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
      config:   OpenBLAS's configuration string, "" for another BLAS;
      shares_pool: True when the core's two-thread splits run their second
                half on this BLAS's own pool thread (src/parallel.h), False
                when on a worker thread of crnn's.
    """
    cdef const crnn_blas_runtime_info *info = crnn_runtime_blas_info()
    return {
        "source": info.source.decode("ascii"),
        "library": os.fsdecode(<bytes>info.library),
        "int_bits": info.int_bits,
        "config": info.config.decode("utf-8", "replace"),
        "shares_pool": bool(info.shares_pool),
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



def _share_blas_pool(on):
    """Test hook: run the core's two-thread splits' second half on the BLAS's
    own pool thread (True, the default where the BLAS has one) or on crnn's
    worker thread (False). Returns whether the BLAS has a pool to share.
    Not while a crnn call runs."""
    return bool(crnn_runtime_blas_share_pool(1 if on else 0))


def _fuse_row_steps(on):
    """Test hook: run a one-sequence LSTM or GRU step with its recurrent
    product and cell fused (True, the default; src/row_step.h) or unfused
    (False): the same bits either way. Returns the previous setting. Not
    while a crnn call runs."""
    return bool(crnn_row_step_enable(1 if on else 0))


def _fuse_row_backward(on):
    """Test hook: run a one-sequence LSTM's backward step with its cell
    gradients and recurrent product fused (True, the default;
    src/row_step.h) or unfused (False): the same gate gradients, dh summed
    in another order. Returns the previous setting. Not while a crnn call
    runs."""
    return bool(crnn_row_back_enable(1 if on else 0))


def _check_crowding(on):
    """Test hook: let splits judge whether another thread kept one of their
    two threads from a core, and then run alone for a while (True, the
    default; src/parallel.h), or never (False). Also forgets past
    judgments."""
    crnn_parallel_check_crowding(1 if on else 0)


def _split_counts():
    """Test hook: (on the BLAS's pool, on crnn's worker): splits run on two
    threads so far in this process."""
    cdef long on_pool = 0, on_worker = 0
    crnn_parallel_split_counts(&on_pool, &on_worker)
    return on_pool, on_worker

# ---------------------------------------------------------------------------
# Kernels: bindings to src/*.c go below; pass crnn_runtime_blas() to the core.
#
# Each binding takes buffers that crnn/_c_kernels.py has allocated and
# shaped, checks only what keeps memory safe (dtype, C order, enough
# elements), releases the GIL for the whole sequence and maps the C status
# to an exception. Shapes, lengths and options were validated by the layer.

cimport numpy as cnp
from libc.string cimport memset

cnp.import_array()

ctypedef struct _ptrs5:          # the layout of crnn_grads_*
    void *p0
    void *p1
    void *p2
    void *p3
    void *p4


ctypedef struct _ptrs8:          # the layout of crnn_weights_*: W_ih .. W_hr, W_ih_packed .. W_hr_packed
    void *p0
    void *p1
    void *p2
    void *p3
    void *p4
    void *p5
    void *p6
    void *p7


class KernelError(RuntimeError):
    """The C core refused a call (its status code is in .status)."""

    def __init__(self, status, message):
        super().__init__(f"crnn C core: {message} (status {status})")
        self.status = status


cdef void *_ptr(object a, int typenum, Py_ssize_t n, bint writable, str name) except? NULL:
    """Data of a C-contiguous array of typenum with >= n elements; None -> NULL."""
    if a is None:
        return NULL
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected an ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise TypeError(f"{name}: expected a C-contiguous array of the call's dtype")
    if cnp.PyArray_SIZE(arr) < n:
        raise ValueError(f"{name}: {cnp.PyArray_SIZE(arr)} elements, expected {n}")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name}: array is read-only")
    return cnp.PyArray_DATA(arr)


cdef void *_req(object a, int typenum, Py_ssize_t n, bint writable, str name) except NULL:
    """As _ptr, for a buffer that must be given."""
    if a is None:
        raise ValueError(f"{name}: a buffer is required")
    return _ptr(a, typenum, n, writable, name)


cdef int _typenum(object x) except -1:
    if not isinstance(x, np.ndarray):
        raise TypeError("x: expected an ndarray")
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        raise TypeError("x: expected float32 or float64")
    return tn


cdef size_t _size(object a):
    return 0 if a is None else <size_t>cnp.PyArray_SIZE(<cnp.ndarray>a)


cdef int _check(crnn_status st) except -1:
    if st != CRNN_OK:
        raise KernelError(<int>st, crnn_status_string(st).decode("ascii"))
    return 0


cdef int _weights(_ptrs8 *w, int tn, Py_ssize_t GH, Py_ssize_t I, Py_ssize_t P, Py_ssize_t H,
                  W_ih, W_hh, b_ih, b_hh, W_hr) except -1:
    w.p0 = _req(W_ih, tn, GH * I, False, "W_ih")
    w.p1 = _req(W_hh, tn, GH * P, False, "W_hh")
    w.p2 = _ptr(b_ih, tn, GH, False, "b_ih")
    w.p3 = _ptr(b_hh, tn, GH, False, "b_hh")
    w.p4 = _ptr(W_hr, tn, P * H, False, "W_hr")
    w.p5 = w.p6 = w.p7 = NULL    # no packed copies: the core packs what pays per call
    return 0


cdef int _grads(_ptrs5 *g, int tn, Py_ssize_t GH, Py_ssize_t I, Py_ssize_t P, Py_ssize_t H,
                dW_ih, dW_hh, db_ih, db_hh, dW_hr) except -1:
    g.p0 = _ptr(dW_ih, tn, GH * I, True, "dW_ih")
    g.p1 = _ptr(dW_hh, tn, GH * P, True, "dW_hh")
    g.p2 = _ptr(db_ih, tn, GH, True, "db_ih")
    g.p3 = _ptr(db_hh, tn, GH, True, "db_hh")
    g.p4 = _ptr(dW_hr, tn, P * H, True, "dW_hr")
    return 0


# --- sizes -----------------------------------------------------------------

cdef crnn_rnn_desc _rnn_desc(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                             bint relu, bint reverse) noexcept:
    cdef crnn_rnn_desc d
    memset(&d, 0, sizeof(d))
    d.steps, d.batch, d.input_size, d.hidden_size = T, B, I, H
    d.activation = CRNN_RELU if relu else CRNN_TANH
    d.reverse = reverse
    return d


cdef crnn_lstm_desc _lstm_desc(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                               Py_ssize_t P, bint reverse) noexcept:
    cdef crnn_lstm_desc d
    memset(&d, 0, sizeof(d))
    d.steps, d.batch, d.input_size, d.hidden_size = T, B, I, H
    d.proj_size = P if P != H else 0
    d.reverse = reverse
    return d


cdef crnn_gru_desc _gru_desc(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                             bint reverse) noexcept:
    cdef crnn_gru_desc d
    memset(&d, 0, sizeof(d))
    d.steps, d.batch, d.input_size, d.hidden_size = T, B, I, H
    d.reverse = reverse
    return d


def rnn_sizes(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, bint relu=False):
    """Elements needed: (workspace infer, workspace train, workspace backward, tape)."""
    cdef crnn_rnn_desc d = _rnn_desc(T, B, I, H, relu, False)
    return (crnn_rnn_workspace_size(&d, CRNN_PASS_INFER), crnn_rnn_workspace_size(&d, CRNN_PASS_TRAIN),
            crnn_rnn_workspace_size(&d, CRNN_PASS_BACKWARD), crnn_rnn_tape_size(&d))


def lstm_sizes(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P):
    """Elements needed: (workspace infer, workspace train, workspace backward, tape)."""
    cdef crnn_lstm_desc d = _lstm_desc(T, B, I, H, P, False)
    return (crnn_lstm_workspace_size(&d, CRNN_PASS_INFER), crnn_lstm_workspace_size(&d, CRNN_PASS_TRAIN),
            crnn_lstm_workspace_size(&d, CRNN_PASS_BACKWARD), crnn_lstm_tape_size(&d))


def gru_sizes(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H):
    """Elements needed: (workspace infer, workspace train, workspace backward, tape)."""
    cdef crnn_gru_desc d = _gru_desc(T, B, I, H, False)
    return (crnn_gru_workspace_size(&d, CRNN_PASS_INFER), crnn_gru_workspace_size(&d, CRNN_PASS_TRAIN),
            crnn_gru_workspace_size(&d, CRNN_PASS_BACKWARD), crnn_gru_tape_size(&d))


# --- one kernel call: run now, or beside another ------------------------------
#
# Each binding below checks its arrays into a _call. Without defer it runs
# the call at once. Given a list as defer, it appends the call, as a Call
# holding the arrays alive, for run_pair to run beside another one: the two
# directions of a bidirectional layer on the two cores (crnn_parallel_pair).

cdef enum _KernelId:
    _RNN_FORWARD, _RNN_BACKWARD, _LSTM_FORWARD, _LSTM_BACKWARD, _GRU_FORWARD, _GRU_BACKWARD


ctypedef struct _call:
    _KernelId kernel
    bint f64
    const crnn_blas *blas
    crnn_rnn_desc rnn              # the one of the three descs the kernel reads
    crnn_lstm_desc lstm
    crnn_gru_desc gru
    _ptrs8 w
    _ptrs5 g
    const int64_t *lens
    void *x                        # the arrays the kernel reads or writes; NULL for None
    void *h0
    void *c0
    void *y
    void *h_n
    void *c_n
    void *dy
    void *dh_n
    void *dc_n
    void *dx
    void *dh0
    void *dc0
    void *tape                     # NULL in a forward: inference
    void *ws
    size_t ntape, nws
    crnn_status status


cdef crnn_status _run_f32(_call *c) noexcept nogil:
    cdef const crnn_weights_f32 *w = <const crnn_weights_f32 *>&c.w
    cdef const crnn_grads_f32 *g = <const crnn_grads_f32 *>&c.g
    if c.kernel == _RNN_FORWARD and c.tape == NULL:
        return crnn_rnn_forward_f32(c.blas, &c.rnn, w, c.lens, <float *>c.x, <float *>c.h0,
                                    <float *>c.y, <float *>c.h_n, <float *>c.ws, c.nws)
    if c.kernel == _RNN_FORWARD:
        return crnn_rnn_forward_train_f32(c.blas, &c.rnn, w, c.lens, <float *>c.x, <float *>c.h0,
                                          <float *>c.y, <float *>c.h_n, <float *>c.tape, c.ntape,
                                          <float *>c.ws, c.nws)
    if c.kernel == _RNN_BACKWARD:
        return crnn_rnn_backward_f32(c.blas, &c.rnn, w, c.lens, <float *>c.x, <float *>c.tape, c.ntape,
                                     <float *>c.dy, <float *>c.dh_n, <float *>c.dx, <float *>c.dh0,
                                     g, <float *>c.ws, c.nws)
    if c.kernel == _LSTM_FORWARD and c.tape == NULL:
        return crnn_lstm_forward_f32(c.blas, &c.lstm, w, c.lens, <float *>c.x, <float *>c.h0, <float *>c.c0,
                                     <float *>c.y, <float *>c.h_n, <float *>c.c_n, <float *>c.ws, c.nws)
    if c.kernel == _LSTM_FORWARD:
        return crnn_lstm_forward_train_f32(c.blas, &c.lstm, w, c.lens, <float *>c.x, <float *>c.h0,
                                           <float *>c.c0, <float *>c.y, <float *>c.h_n, <float *>c.c_n,
                                           <float *>c.tape, c.ntape, <float *>c.ws, c.nws)
    if c.kernel == _LSTM_BACKWARD:
        return crnn_lstm_backward_f32(c.blas, &c.lstm, w, c.lens, <float *>c.x, <float *>c.tape, c.ntape,
                                      <float *>c.dy, <float *>c.dh_n, <float *>c.dc_n, <float *>c.dx,
                                      <float *>c.dh0, <float *>c.dc0, g, <float *>c.ws, c.nws)
    if c.kernel == _GRU_FORWARD and c.tape == NULL:
        return crnn_gru_forward_f32(c.blas, &c.gru, w, c.lens, <float *>c.x, <float *>c.h0,
                                    <float *>c.y, <float *>c.h_n, <float *>c.ws, c.nws)
    if c.kernel == _GRU_FORWARD:
        return crnn_gru_forward_train_f32(c.blas, &c.gru, w, c.lens, <float *>c.x, <float *>c.h0,
                                          <float *>c.y, <float *>c.h_n, <float *>c.tape, c.ntape,
                                          <float *>c.ws, c.nws)
    return crnn_gru_backward_f32(c.blas, &c.gru, w, c.lens, <float *>c.x, <float *>c.tape, c.ntape,
                                 <float *>c.dy, <float *>c.dh_n, <float *>c.dx, <float *>c.dh0,
                                 g, <float *>c.ws, c.nws)


cdef crnn_status _run_f64(_call *c) noexcept nogil:
    cdef const crnn_weights_f64 *w = <const crnn_weights_f64 *>&c.w
    cdef const crnn_grads_f64 *g = <const crnn_grads_f64 *>&c.g
    if c.kernel == _RNN_FORWARD and c.tape == NULL:
        return crnn_rnn_forward_f64(c.blas, &c.rnn, w, c.lens, <double *>c.x, <double *>c.h0,
                                    <double *>c.y, <double *>c.h_n, <double *>c.ws, c.nws)
    if c.kernel == _RNN_FORWARD:
        return crnn_rnn_forward_train_f64(c.blas, &c.rnn, w, c.lens, <double *>c.x, <double *>c.h0,
                                          <double *>c.y, <double *>c.h_n, <double *>c.tape, c.ntape,
                                          <double *>c.ws, c.nws)
    if c.kernel == _RNN_BACKWARD:
        return crnn_rnn_backward_f64(c.blas, &c.rnn, w, c.lens, <double *>c.x, <double *>c.tape, c.ntape,
                                     <double *>c.dy, <double *>c.dh_n, <double *>c.dx, <double *>c.dh0,
                                     g, <double *>c.ws, c.nws)
    if c.kernel == _LSTM_FORWARD and c.tape == NULL:
        return crnn_lstm_forward_f64(c.blas, &c.lstm, w, c.lens, <double *>c.x, <double *>c.h0,
                                     <double *>c.c0, <double *>c.y, <double *>c.h_n, <double *>c.c_n,
                                     <double *>c.ws, c.nws)
    if c.kernel == _LSTM_FORWARD:
        return crnn_lstm_forward_train_f64(c.blas, &c.lstm, w, c.lens, <double *>c.x, <double *>c.h0,
                                           <double *>c.c0, <double *>c.y, <double *>c.h_n, <double *>c.c_n,
                                           <double *>c.tape, c.ntape, <double *>c.ws, c.nws)
    if c.kernel == _LSTM_BACKWARD:
        return crnn_lstm_backward_f64(c.blas, &c.lstm, w, c.lens, <double *>c.x, <double *>c.tape, c.ntape,
                                      <double *>c.dy, <double *>c.dh_n, <double *>c.dc_n, <double *>c.dx,
                                      <double *>c.dh0, <double *>c.dc0, g, <double *>c.ws, c.nws)
    if c.kernel == _GRU_FORWARD and c.tape == NULL:
        return crnn_gru_forward_f64(c.blas, &c.gru, w, c.lens, <double *>c.x, <double *>c.h0,
                                    <double *>c.y, <double *>c.h_n, <double *>c.ws, c.nws)
    if c.kernel == _GRU_FORWARD:
        return crnn_gru_forward_train_f64(c.blas, &c.gru, w, c.lens, <double *>c.x, <double *>c.h0,
                                          <double *>c.y, <double *>c.h_n, <double *>c.tape, c.ntape,
                                          <double *>c.ws, c.nws)
    return crnn_gru_backward_f64(c.blas, &c.gru, w, c.lens, <double *>c.x, <double *>c.tape, c.ntape,
                                 <double *>c.dy, <double *>c.dh_n, <double *>c.dx, <double *>c.dh0,
                                 g, <double *>c.ws, c.nws)


cdef void _run(void *call) noexcept nogil:
    """A crnn_call_fn: runs the call, keeping its status."""
    cdef _call *c = <_call *>call
    c.status = _run_f64(c) if c.f64 else _run_f32(c)


cdef class Call:
    """A checked kernel call not yet run (defer=), and the arrays it uses."""
    cdef _call c
    cdef object arrays     # alive while the call may run
    cdef bint ran


cdef int _start(_call *c, _KernelId kernel, x) except -1:
    """A zeroed call of `kernel` on x's dtype; returns that dtype's typenum."""
    memset(c, 0, sizeof(_call))
    cdef int tn = _typenum(x)
    c.kernel = kernel
    c.f64 = tn == cnp.NPY_FLOAT64
    c.blas = crnn_runtime_blas()
    return tn


cdef object _launch(_call *c, defer, tuple arrays):
    """Runs the call now (defer None), or appends it to defer for run_pair."""
    if defer is None:
        with nogil:
            _run(c)
        return _check(c.status)
    cdef Call call = Call.__new__(Call)
    call.c = c[0]
    call.arrays = arrays
    defer.append(call)
    return None


def run_pair(Call a, Call b):
    """Runs two deferred calls that share no output, one per core when the BLAS
    has two threads (crnn_parallel_pair: each computes as with one thread,
    whichever runs where), else one after the other. Raises KernelError for
    either's refusal, after both ran."""
    if a.ran or b.ran or a is b:
        raise ValueError("run_pair: each call runs once")
    a.ran = b.ran = True
    with nogil:
        crnn_parallel_pair(a.c.blas, _run, &a.c, &b.c)
    _check(a.c.status)
    return _check(b.c.status)


# --- simple RNN --------------------------------------------------------------

def rnn_forward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, bint relu, bint reverse,
                x, h0, W_ih, W_hh, b_ih, b_hh, lengths, y, h_n, workspace, tape=None, defer=None):
    """crnn_rnn_forward_* (tape None) or crnn_rnn_forward_train_* into y, h_n, tape."""
    cdef _call c
    cdef int tn = _start(&c, _RNN_FORWARD, x)
    c.rnn = _rnn_desc(T, B, I, H, relu, reverse)
    _weights(&c.w, tn, H, I, H, H, W_ih, W_hh, b_ih, b_hh, None)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.h0 = _ptr(h0, tn, B * H, False, "h0")
    c.y = _req(y, tn, T * B * H, True, "y")
    c.h_n = _req(h_n, tn, B * H, True, "h_n")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.tape = _ptr(tape, tn, 0, True, "tape")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, h0, W_ih, W_hh, b_ih, b_hh, lengths, y, h_n, workspace, tape))


def rnn_backward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, bint relu, bint reverse,
                 x, W_ih, W_hh, b_ih, b_hh, lengths, tape, dy, dh_n, dx, dh0,
                 dW_ih, dW_hh, db_ih, db_hh, workspace, defer=None):
    """crnn_rnn_backward_*: dx, dh0 assigned; parameter gradients accumulated (+=)."""
    cdef _call c
    cdef int tn = _start(&c, _RNN_BACKWARD, x)
    c.rnn = _rnn_desc(T, B, I, H, relu, reverse)
    _weights(&c.w, tn, H, I, H, H, W_ih, W_hh, b_ih, b_hh, None)
    _grads(&c.g, tn, H, I, H, H, dW_ih, dW_hh, db_ih, db_hh, None)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.tape = _req(tape, tn, 0, False, "tape")
    c.dy = _req(dy, tn, T * B * H, False, "dy")
    c.dh_n = _ptr(dh_n, tn, B * H, False, "dh_n")
    c.dx = _ptr(dx, tn, T * B * I, True, "dx")
    c.dh0 = _ptr(dh0, tn, B * H, True, "dh0")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, W_ih, W_hh, b_ih, b_hh, lengths, tape, dy, dh_n, dx, dh0,
                               dW_ih, dW_hh, db_ih, db_hh, workspace))


# --- LSTM ----------------------------------------------------------------------

def lstm_forward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P, bint reverse,
                 x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, lengths, y, h_n, c_n, workspace, tape=None,
                 defer=None):
    """crnn_lstm_forward_* (tape None) or crnn_lstm_forward_train_* into y, h_n, c_n, tape."""
    cdef _call c
    cdef int tn = _start(&c, _LSTM_FORWARD, x)
    c.lstm = _lstm_desc(T, B, I, H, P, reverse)
    _weights(&c.w, tn, 4 * H, I, P, H, W_ih, W_hh, b_ih, b_hh, W_hr)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.h0 = _ptr(h0, tn, B * P, False, "h0")
    c.c0 = _ptr(c0, tn, B * H, False, "c0")
    c.y = _req(y, tn, T * B * P, True, "y")
    c.h_n = _req(h_n, tn, B * P, True, "h_n")
    c.c_n = _req(c_n, tn, B * H, True, "c_n")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.tape = _ptr(tape, tn, 0, True, "tape")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, lengths, y, h_n, c_n,
                               workspace, tape))


def lstm_backward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P, bint reverse,
                  x, W_ih, W_hh, b_ih, b_hh, W_hr, lengths, tape, dy, dh_n, dc_n, dx, dh0, dc0,
                  dW_ih, dW_hh, db_ih, db_hh, dW_hr, workspace, defer=None):
    """crnn_lstm_backward_*: dx, dh0, dc0 assigned; parameter gradients accumulated (+=)."""
    cdef _call c
    cdef int tn = _start(&c, _LSTM_BACKWARD, x)
    c.lstm = _lstm_desc(T, B, I, H, P, reverse)
    _weights(&c.w, tn, 4 * H, I, P, H, W_ih, W_hh, b_ih, b_hh, W_hr)
    _grads(&c.g, tn, 4 * H, I, P, H, dW_ih, dW_hh, db_ih, db_hh, dW_hr)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.tape = _req(tape, tn, 0, False, "tape")
    c.dy = _req(dy, tn, T * B * P, False, "dy")
    c.dh_n = _ptr(dh_n, tn, B * P, False, "dh_n")
    c.dc_n = _ptr(dc_n, tn, B * H, False, "dc_n")
    c.dx = _ptr(dx, tn, T * B * I, True, "dx")
    c.dh0 = _ptr(dh0, tn, B * P, True, "dh0")
    c.dc0 = _ptr(dc0, tn, B * H, True, "dc0")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, W_ih, W_hh, b_ih, b_hh, W_hr, lengths, tape, dy, dh_n, dc_n,
                               dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr, workspace))


# --- GRU -------------------------------------------------------------------------

def gru_forward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, bint reverse,
                x, h0, W_ih, W_hh, b_ih, b_hh, lengths, y, h_n, workspace, tape=None, defer=None):
    """crnn_gru_forward_* (tape None) or crnn_gru_forward_train_* into y, h_n, tape."""
    cdef _call c
    cdef int tn = _start(&c, _GRU_FORWARD, x)
    c.gru = _gru_desc(T, B, I, H, reverse)
    _weights(&c.w, tn, 3 * H, I, H, H, W_ih, W_hh, b_ih, b_hh, None)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.h0 = _ptr(h0, tn, B * H, False, "h0")
    c.y = _req(y, tn, T * B * H, True, "y")
    c.h_n = _req(h_n, tn, B * H, True, "h_n")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.tape = _ptr(tape, tn, 0, True, "tape")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, h0, W_ih, W_hh, b_ih, b_hh, lengths, y, h_n, workspace, tape))


def gru_backward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, bint reverse,
                 x, W_ih, W_hh, b_ih, b_hh, lengths, tape, dy, dh_n, dx, dh0,
                 dW_ih, dW_hh, db_ih, db_hh, workspace, defer=None):
    """crnn_gru_backward_*: dx, dh0 assigned; parameter gradients accumulated (+=)."""
    cdef _call c
    cdef int tn = _start(&c, _GRU_BACKWARD, x)
    c.gru = _gru_desc(T, B, I, H, reverse)
    _weights(&c.w, tn, 3 * H, I, H, H, W_ih, W_hh, b_ih, b_hh, None)
    _grads(&c.g, tn, 3 * H, I, H, H, dW_ih, dW_hh, db_ih, db_hh, None)
    c.lens = <const int64_t *>_ptr(lengths, cnp.NPY_INT64, B, False, "lengths")
    c.x = _req(x, tn, T * B * I, False, "x")
    c.tape = _req(tape, tn, 0, False, "tape")
    c.dy = _req(dy, tn, T * B * H, False, "dy")
    c.dh_n = _ptr(dh_n, tn, B * H, False, "dh_n")
    c.dx = _ptr(dx, tn, T * B * I, True, "dx")
    c.dh0 = _ptr(dh0, tn, B * H, True, "dh0")
    c.ws = _req(workspace, tn, 0, True, "workspace")
    c.nws, c.ntape = _size(workspace), _size(tape)
    return _launch(&c, defer, (x, W_ih, W_hh, b_ih, b_hh, lengths, tape, dy, dh_n, dx, dh0,
                               dW_ih, dW_hh, db_ih, db_hh, workspace))


# --- streaming: one step of a stack of one-direction layers -----------------------

from cpython.ref cimport PyObject, Py_XDECREF, Py_INCREF
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(PyObject *o)

cdef extern from "numpy/ndarraytypes.h":
    ctypedef struct PyArrayObject_fields:
        PyObject *weakreflist

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef enum _Kind:
    _RNN = 0
    _LSTM = 1
    _GRU = 2


def pack_pays(Py_ssize_t batch, Py_ssize_t rows, Py_ssize_t cols):
    """crnn_pack_pays_f32: whether this CPU has the packed kernel and it beats the
    BLAS for products of `batch` rows by a (rows, cols) float32 weight."""
    return bool(crnn_pack_pays_f32(batch, rows, cols))


# A step of fewer multiply-adds (a few microseconds) keeps the GIL. Releasing
# and taking it back cost 50-70 ns a step (RNN I=32, H=64: 0.37 -> 0.32 us),
# and bought nothing at that size: two threads stepping their own streams made
# no more steps per second with it released.
_NOGIL_MACS = 1 << 18

# A stream remembers its last _KEPT_OUTPUTS outputs. When one of them is
# known to nobody else any more (the stream holds its only reference) and
# is as the stream made it (_untouched), a later step writes its output
# into that array and returns it again instead of making a new one. At
# these sizes making and freeing a NumPy array is a good part of a step.
# Measured from Python (I = 32, H = 64, B = 1, 1 thread, one process,
# alternating with the step that always makes a new array), a loop that
# drops each output before the next step: LSTM 1.12 against 1.21 us,
# GRU 0.77 against 0.89, RNN 0.31 against 0.39; a loop that keeps every
# output (the bench's) cannot reuse any: 0.91-1.03x over three runs, noise.
# CPython only: elsewhere (PyPy's cpyext) a reference count of 1 does not
# mean that no Python code holds the array.
cdef enum:
    _KEPT_OUTPUTS = 4
cdef bint _REUSE_OUTPUTS = sys.implementation.name == "cpython"


cdef inline bint _untouched(cnp.ndarray a, int nd, cnp.npy_intp *dims, int tn) noexcept:
    """A kept output still as the stream made it: its shape, its dtype, its own
    writeable contiguous data, no base and no weak reference (a weak reference
    would see the array live on with new values)."""
    cdef int need = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_WRITEABLE | cnp.NPY_ARRAY_OWNDATA
    if cnp.PyArray_NDIM(a) != nd or cnp.PyArray_TYPE(a) != tn or (cnp.PyArray_FLAGS(a) & need) != need:
        return False
    if (<PyArrayObject_fields *>a).weakreflist != NULL or cnp.PyArray_BASE(a) != NULL:
        return False
    for k in range(nd):
        if cnp.PyArray_DIMS(a)[k] != dims[k]:
            return False
    return True


cdef class StreamCore:
    """Steps a stack of one-direction layers one time step per call; holds the state.

    Built by crnn.streaming.Stream, which validates the layer. step() runs
    every layer's T=1 forward in C (the GIL released for steps of at least
    _NOGIL_MACS multiply-adds), updating the state in place (the core allows
    h_n == h0), and returns the last layer's output (a new array, or one of
    its earlier outputs that nobody holds any more: _KEPT_OUTPUTS). Not for
    concurrent use: a stream is one sequence's state.

    Float32, where the packed kernel pays (crnn_pack_pays_f32): W_ih, W_hh
    (and W_hr) of every layer are packed once into memory the core holds (the
    W_*_packed of crnn.h), so a step makes no BLAS call. They are packed
    again by pack_weights(), and before the next step whenever the layer's
    weights_version (a 1-element int64 array that load_state_dict bumps)
    has changed. Float64 steps through the BLAS and reads the weights live.
    """

    cdef int kind, tn, relu, unbatched
    cdef Py_ssize_t L, B, n_in, H, P, itemsize   # n_in: I (a C macro name)
    cdef crnn_rnn_desc rdesc0, rdesc
    cdef crnn_lstm_desc ldesc0, ldesc
    cdef crnn_gru_desc gdesc0, gdesc
    cdef _ptrs8 *weights                 # (L,) weight pointers per layer
    cdef void **h                        # (L,) -> (B, P) state, updated in place
    cdef void **c                        # (L,) -> (B, H) LSTM cell state
    cdef void **y                        # (L,) -> (B, P) layer outputs
    cdef void *workspace
    cdef size_t workspace_size
    cdef float *packed_weights           # the packed copies, layer after layer, or NULL
    cdef const int64_t *version          # the layer's weights_version[0], or NULL
    cdef int64_t packed_version          # its value when the copies were packed
    cdef bint release_gil                # for steps of at least _NOGIL_MACS
    cdef readonly object arrays          # keeps every buffer and weight alive
    cdef readonly object h_state, c_state
    cdef PyObject *kept[_KEPT_OUTPUTS]   # the last outputs (owned references, or NULL)
    cdef int kept_next                   # the slot the next step looks at

    def __cinit__(self):
        self.weights = NULL
        self.h = self.c = self.y = NULL
        self.packed_weights = NULL
        self.version = NULL

    def __dealloc__(self):
        for k in range(_KEPT_OUTPUTS):
            Py_XDECREF(self.kept[k])
        free(self.weights)
        free(self.h)
        free(self.c)
        free(self.y)
        free(self.packed_weights)

    def __init__(self, str kind, bint relu, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P,
                 list layer_weights, h_state, c_state, bint unbatched, weights_version=None):
        """layer_weights: per layer (W_ih, W_hh, b_ih, b_hh, W_hr) C-contiguous arrays (or None);
        h_state (L, B, P), c_state (L, B, H) (None unless LSTM): C-contiguous, owned by the stream;
        weights_version: the layer's (1,) int64 counter of weight loads, or None."""
        self.kind = {"rnn": _RNN, "lstm": _LSTM, "gru": _GRU}[kind]
        self.relu, self.unbatched = relu, unbatched
        self.L, self.B, self.n_in, self.H, self.P = len(layer_weights), B, I, H, P
        self.tn = cnp.PyArray_TYPE(<cnp.ndarray>h_state)
        self.itemsize = 4 if self.tn == cnp.NPY_FLOAT32 else 8
        self.rdesc0 = _rnn_desc(1, B, I, H, relu, False)
        self.rdesc = _rnn_desc(1, B, P, H, relu, False)
        self.ldesc0 = _lstm_desc(1, B, I, H, P, False)
        self.ldesc = _lstm_desc(1, B, P, H, P, False)
        self.gdesc0 = _gru_desc(1, B, I, H, False)
        self.gdesc = _gru_desc(1, B, P, H, False)
        G = (1, 4, 3)[self.kind]
        self.weights = <_ptrs8 *>calloc(self.L, sizeof(_ptrs8))
        self.h = <void **>calloc(self.L, sizeof(void *))
        self.c = <void **>calloc(self.L, sizeof(void *))
        self.y = <void **>calloc(self.L, sizeof(void *))
        if self.weights == NULL or self.h == NULL or self.c == NULL or self.y == NULL:
            raise MemoryError()
        dtype = np.float32 if self.tn == cnp.NPY_FLOAT32 else np.float64
        outputs = [np.zeros((B, P), dtype=dtype) for _ in range(self.L)]
        sizes = [self._workspace_elements(l) for l in range(self.L)]
        workspace = np.empty(max(sizes), dtype=dtype)
        self.arrays = (layer_weights, h_state, c_state, outputs, workspace, weights_version)
        self.h_state, self.c_state = h_state, c_state
        for l in range(self.L):
            W_ih, W_hh, b_ih, b_hh, W_hr = layer_weights[l]
            _weights(&self.weights[l], self.tn, G * H, I if l == 0 else P, P, H, W_ih, W_hh, b_ih, b_hh, W_hr)
            self.h[l] = _req(h_state[l], self.tn, B * P, True, "h")
            if self.kind == _LSTM:
                self.c[l] = _req(c_state[l], self.tn, B * H, True, "c")
            self.y[l] = _req(outputs[l], self.tn, B * P, True, "y")
        self.workspace = _req(workspace, self.tn, 0, True, "workspace")
        self.workspace_size = <size_t>workspace.size
        macs = sum(B * G * H * ((I if l == 0 else P) + P) for l in range(self.L))
        self.release_gil = macs >= _NOGIL_MACS
        if self.tn == cnp.NPY_FLOAT32:
            self._alloc_packed()
        if self.packed_weights != NULL and weights_version is not None:
            self.version = <const int64_t *>_req(weights_version, cnp.NPY_INT64, 1, False, "weights_version")
        self.pack_weights()

    cdef size_t _pack(self, float *dst) noexcept:
        """Packs W_ih, W_hh (and W_hr) of every layer where that pays, one after the other
        from dst, and points the weights at the copies; dst NULL only counts.
        Returns the elements used."""
        cdef Py_ssize_t GH = (1, 4, 3)[self.kind] * self.H
        cdef size_t used = 0
        cdef Py_ssize_t l, K
        for l in range(self.L):
            K = self.n_in if l == 0 else self.P
            if crnn_pack_pays_f32(self.B, GH, K):
                if dst != NULL:
                    crnn_pack_f32(GH, K, <const float *>self.weights[l].p0, dst + used)
                    self.weights[l].p5 = dst + used
                used += crnn_packed_size_f32(GH, K)
            if crnn_pack_pays_f32(self.B, GH, self.P):
                if dst != NULL:
                    crnn_pack_f32(GH, self.P, <const float *>self.weights[l].p1, dst + used)
                    self.weights[l].p6 = dst + used
                used += crnn_packed_size_f32(GH, self.P)
            if self.weights[l].p4 != NULL and crnn_pack_pays_f32(self.B, self.P, self.H):   # W_hr
                if dst != NULL:
                    crnn_pack_f32(self.P, self.H, <const float *>self.weights[l].p4, dst + used)
                    self.weights[l].p7 = dst + used
                used += crnn_packed_size_f32(self.P, self.H)
        return used

    cdef int _alloc_packed(self) except -1:
        cdef size_t total = self._pack(NULL)
        # cache-line aligned: every packed copy is whole panel rows of 16 floats,
        # so each then starts a line and no load of the kernel splits two
        if total > 0 and posix_memalign(<void **>&self.packed_weights, 64, total * sizeof(float)) != 0:
            self.packed_weights = NULL
            raise MemoryError()
        return 0

    @property
    def packed(self):
        """True when steps run on packed copies of the weights (no BLAS call)."""
        return self.packed_weights != NULL

    def pack_weights(self):
        """Pack W_ih and W_hh of every layer again (after their arrays changed in place)."""
        if self.packed_weights == NULL:
            return
        self._pack(self.packed_weights)
        if self.version != NULL:
            self.packed_version = self.version[0]

    cdef size_t _workspace_elements(self, Py_ssize_t l):
        if self.kind == _RNN:
            return crnn_rnn_workspace_size(&self.rdesc0 if l == 0 else &self.rdesc, CRNN_PASS_INFER)
        if self.kind == _LSTM:
            return crnn_lstm_workspace_size(&self.ldesc0 if l == 0 else &self.ldesc, CRNN_PASS_INFER)
        return crnn_gru_workspace_size(&self.gdesc0 if l == 0 else &self.gdesc, CRNN_PASS_INFER)

    cdef crnn_status _layer_step(self, Py_ssize_t l, const void *x) noexcept nogil:
        cdef const crnn_blas *blas = crnn_runtime_blas()
        cdef float *ws32 = <float *>self.workspace
        cdef double *ws64 = <double *>self.workspace
        if self.kind == _LSTM:
            if self.tn == cnp.NPY_FLOAT32:
                return crnn_lstm_forward_f32(blas, &self.ldesc0 if l == 0 else &self.ldesc,
                                             <crnn_weights_f32 *>&self.weights[l], NULL, <const float *>x,
                                             <float *>self.h[l], <float *>self.c[l], <float *>self.y[l],
                                             <float *>self.h[l], <float *>self.c[l], ws32, self.workspace_size)
            return crnn_lstm_forward_f64(blas, &self.ldesc0 if l == 0 else &self.ldesc,
                                         <crnn_weights_f64 *>&self.weights[l], NULL, <const double *>x,
                                         <double *>self.h[l], <double *>self.c[l], <double *>self.y[l],
                                         <double *>self.h[l], <double *>self.c[l], ws64, self.workspace_size)
        if self.kind == _GRU:
            if self.tn == cnp.NPY_FLOAT32:
                return crnn_gru_forward_f32(blas, &self.gdesc0 if l == 0 else &self.gdesc,
                                            <crnn_weights_f32 *>&self.weights[l], NULL, <const float *>x,
                                            <float *>self.h[l], <float *>self.y[l], <float *>self.h[l],
                                            ws32, self.workspace_size)
            return crnn_gru_forward_f64(blas, &self.gdesc0 if l == 0 else &self.gdesc,
                                        <crnn_weights_f64 *>&self.weights[l], NULL, <const double *>x,
                                        <double *>self.h[l], <double *>self.y[l], <double *>self.h[l],
                                        ws64, self.workspace_size)
        if self.tn == cnp.NPY_FLOAT32:
            return crnn_rnn_forward_f32(blas, &self.rdesc0 if l == 0 else &self.rdesc,
                                        <crnn_weights_f32 *>&self.weights[l], NULL, <const float *>x,
                                        <float *>self.h[l], <float *>self.y[l], <float *>self.h[l],
                                        ws32, self.workspace_size)
        return crnn_rnn_forward_f64(blas, &self.rdesc0 if l == 0 else &self.rdesc,
                                    <crnn_weights_f64 *>&self.weights[l], NULL, <const double *>x,
                                    <double *>self.h[l], <double *>self.y[l], <double *>self.h[l],
                                    ws64, self.workspace_size)

    cdef crnn_status _layers_step(self, const void *x) noexcept nogil:
        cdef crnn_status st = CRNN_OK
        cdef Py_ssize_t l
        for l in range(self.L):
            st = self._layer_step(l, x if l == 0 else self.y[l - 1])
            if st != CRNN_OK:
                break
        return st

    def _step_shape(self):
        if self.unbatched:
            return (self.n_in,)
        return (self.B, self.n_in)

    def step(self, x):
        """One time step: x (B, I) (or (I,) for an unbatched stream) -> output (B, H_out) / (H_out,).

        Raises TypeError for a wrong dtype or a non-array, ValueError for a wrong shape.
        """
        if not isinstance(x, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>x) != self.tn:
            raise TypeError(f"x must be an ndarray of {'float32' if self.tn == cnp.NPY_FLOAT32 else 'float64'}"
                            f" (the stream's dtype), got {getattr(x, 'dtype', type(x).__name__)}")
        cdef cnp.ndarray arr = <cnp.ndarray>x
        cdef int nd = cnp.PyArray_NDIM(arr)
        if ((self.unbatched and (nd != 1 or arr.shape[0] != self.n_in))
                or (not self.unbatched and (nd != 2 or arr.shape[0] != self.B or arr.shape[1] != self.n_in))):
            raise ValueError(f"x has shape {x.shape}, expected "
                             f"{self._step_shape()} for one step")
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            arr = np.ascontiguousarray(arr)
        cdef const void *px = cnp.PyArray_DATA(arr)
        if self.version != NULL and self.version[0] != self.packed_version:
            self.pack_weights()          # the layer loaded new weights in place
        cdef crnn_status st
        if self.release_gil:
            with nogil:
                st = self._layers_step(px)
        else:
            st = self._layers_step(px)
        _check(st)
        cdef cnp.npy_intp dims[2]
        if self.unbatched:
            dims[0] = self.P
        else:
            dims[0], dims[1] = self.B, self.P
        cdef int out_nd = 1 if self.unbatched else 2
        cdef size_t nbytes = self.B * self.P * self.itemsize
        cdef PyObject *old = self.kept[self.kept_next]
        if (old != NULL and _REUSE_OUTPUTS and Py_REFCNT(old) == 1
                and _untouched(<cnp.ndarray>old, out_nd, dims, self.tn)):
            out = <object>old
        else:
            out = cnp.PyArray_EMPTY(out_nd, dims, self.tn, 0)
            Py_XDECREF(old)
            Py_INCREF(out)
            self.kept[self.kept_next] = <PyObject *>out
        self.kept_next = (self.kept_next + 1) % _KEPT_OUTPUTS
        memcpy(cnp.PyArray_DATA(<cnp.ndarray>out), self.y[self.L - 1], nbytes)
        return out
