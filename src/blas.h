/* blas.h -- the one seam between the crnn core and a BLAS.
 *
 * The core never names a BLAS symbol: it calls the matrix products through
 * a struct of function pointers that the caller fills in (the scikit-learn /
 * liblinear pattern). The Python binding plugs in the OpenBLAS that NumPy
 * has already loaded (or a vendored copy); a C user plugs in any CBLAS; the
 * C tests plug in crnn_blas_naive(), a triple loop that needs no BLAS at all.
 *
 * Every product is row-major:
 *     C = alpha * op(A) @ op(B) + beta * C
 * with op(A) of shape (m, k), op(B) of shape (k, n), C of shape (m, n), and
 * op(X) = X or X^T as trans_* says. lda/ldb/ldc are row strides in elements
 * of A, B, C as stored (before op). NumPy: C = alpha * (A.T if ta else A) @ (B.T if tb else B) + beta * C
 */
#ifndef CRNN_BLAS_H
#define CRNN_BLAS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CRNN_NO_TRANS = 0, CRNN_TRANS = 1 } crnn_trans;

typedef void (*crnn_sgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                              ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                              float alpha, const float *A, ptrdiff_t lda,
                              const float *B, ptrdiff_t ldb,
                              float beta, float *C, ptrdiff_t ldc);

typedef void (*crnn_dgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                              ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                              double alpha, const double *A, ptrdiff_t lda,
                              const double *B, ptrdiff_t ldb,
                              double beta, double *C, ptrdiff_t ldc);

typedef struct crnn_blas {
    crnn_sgemm_fn sgemm;
    crnn_dgemm_fn dgemm;
    /* Threads the BLAS gives one call, or NULL (taken as 1). With threads to
     * give, the BLAS beats the core's single-threaded recurrent kernel on
     * large products, so the core asks before choosing. */
    int (*num_threads)(void);
    /* Sets the threads the BLAS gives each call from now on, process-wide,
     * or NULL. A pass the core splits over its own two threads, both of
     * which call the BLAS, sets 1 while it runs and the number before after
     * it (parallel.h): two callers of one pool would wait for each other's
     * pool threads, and a pool thread left spinning takes a core from them. */
    void (*set_num_threads)(int n);
} crnn_blas;

/* A BLAS-free reference: plain loops, slow, exact to the usual rounding.
 * For tests and for embedding where no BLAS is available. */
const crnn_blas *crnn_blas_naive(void);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_BLAS_H */
