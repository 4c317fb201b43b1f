/* blas_naive.c -- crnn_blas_naive(): the BLAS seam as plain loops.
 *
 * For the C tests (no BLAS needed), for embedding without a BLAS, and as the
 * runtime's fallback for products an LP64 BLAS cannot express. Slow but
 * exact to the usual rounding: each element is one dot product accumulated
 * in the element type, in order p = 0..k-1.
 *
 * It follows the reference BLAS contract, so results can be swapped with a
 * real BLAS:
 *   - beta == 0 overwrites C without reading it (NaN or Inf in C vanish);
 *   - alpha == 0 or k == 0 reads neither A nor B (C = beta * C);
 *   - m == 0 or n == 0 touches nothing.
 */
#include "blas.h"

/* op(X)[r, c] for a row-major X with row stride ld, transposed or not. */
#define OP_AT(X, trans, ld, r, c) \
    ((trans) == CRNN_NO_TRANS ? (X)[(r) * (ld) + (c)] : (X)[(c) * (ld) + (r)])

static void naive_sgemm(crnn_trans trans_a, crnn_trans trans_b,
                        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        float alpha, const float *A, ptrdiff_t lda,
                        const float *B, ptrdiff_t ldb,
                        float beta, float *C, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            /* NumPy: C[i, j] = alpha * op(A)[i, :] @ op(B)[:, j] + beta * C[i, j] */
            float acc = 0.0f;
            if (alpha != 0.0f)
                for (ptrdiff_t p = 0; p < k; p++)
                    acc += OP_AT(A, trans_a, lda, i, p) * OP_AT(B, trans_b, ldb, p, j);
            float *c = &C[i * ldc + j];
            *c = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *c;
        }
    }
}

static void naive_dgemm(crnn_trans trans_a, crnn_trans trans_b,
                        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        double alpha, const double *A, ptrdiff_t lda,
                        const double *B, ptrdiff_t ldb,
                        double beta, double *C, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            /* NumPy: C[i, j] = alpha * op(A)[i, :] @ op(B)[:, j] + beta * C[i, j] */
            double acc = 0.0;
            if (alpha != 0.0)
                for (ptrdiff_t p = 0; p < k; p++)
                    acc += OP_AT(A, trans_a, lda, i, p) * OP_AT(B, trans_b, ldb, p, j);
            double *c = &C[i * ldc + j];
            *c = (beta == 0.0) ? alpha * acc : alpha * acc + beta * *c;
        }
    }
}

static const crnn_blas naive_blas = { naive_sgemm, naive_dgemm, NULL, NULL };

const crnn_blas *crnn_blas_naive(void)
{
    return &naive_blas;
}
