# _ext.pxd -- the C declarations crnn/_ext.pyx uses, written once.
# Mirrors src/blas.h and crnn/_blas_runtime.h; kernel headers go here too.
# Cython includes this file into _ext.pyx automatically (same name).

from libc.stddef cimport ptrdiff_t

cdef extern from "blas.h" nogil:
    ctypedef enum crnn_trans:
        CRNN_NO_TRANS
        CRNN_TRANS

    ctypedef void (*crnn_sgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                                   ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   float alpha, const float *A, ptrdiff_t lda,
                                   const float *B, ptrdiff_t ldb,
                                   float beta, float *C, ptrdiff_t ldc) noexcept nogil
    ctypedef void (*crnn_dgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                                   ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   double alpha, const double *A, ptrdiff_t lda,
                                   const double *B, ptrdiff_t ldb,
                                   double beta, double *C, ptrdiff_t ldc) noexcept nogil

    ctypedef struct crnn_blas:
        crnn_sgemm_fn sgemm
        crnn_dgemm_fn dgemm

    const crnn_blas *crnn_blas_naive()


cdef extern from "_blas_runtime.h" nogil:
    ctypedef enum crnn_blas_from:
        CRNN_BLAS_FROM_ANY
        CRNN_BLAS_FROM_NUMPY
        CRNN_BLAS_FROM_VENDORED

    enum:
        CRNN_RT_OK
        CRNN_RT_NOT_FOUND
        CRNN_RT_UNSUPPORTED
        CRNN_RT_NO_THREAD_API
        CRNN_RT_BAD_ARG

    ctypedef struct crnn_blas_runtime_info:
        const char *source
        const char *library
        int int_bits
        const char *config

    int crnn_runtime_blas_init(crnn_blas_from source, const char *numpy_dir,
                               const char *vendored, char *err, size_t err_len)
    # The seam bound at import: what kernel bindings pass to the C core.
    const crnn_blas *crnn_runtime_blas()
    const crnn_blas_runtime_info *crnn_runtime_blas_info()
    int crnn_runtime_blas_set_num_threads(int n)
    int crnn_runtime_blas_get_num_threads()


cdef extern from "_blas_cblas.h" nogil:
    ptrdiff_t crnn_cblas_lp64_limit(ptrdiff_t limit)
