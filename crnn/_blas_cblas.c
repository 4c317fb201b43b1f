/* _blas_cblas.c -- the seam's sgemm/dgemm as calls into a run-time CBLAS.
 *
 * Two flavours, picked by the integer width of the library found:
 *   ILP64 (NumPy 2.x wheels: scipy_cblas_sgemm64_): ptrdiff_t -> int64_t,
 *         exact on every 64-bit platform;
 *   LP64  (the vendored scipy-openblas32: scipy_cblas_sgemm): ptrdiff_t ->
 *         int32_t. A size or leading dimension above INT32_MAX cannot be
 *         expressed; such a product (a matrix of more than 2^31 rows or
 *         columns, > 8 GB, not expected in practice and refused earlier by
 *         the Python layer) is computed by crnn_blas_naive() instead: slow
 *         but correct, never truncated, never skipped.
 *
 * Both hand k == 0 and alpha == 0 to the naive loops too (C = beta * C, A
 * and B unread, as the reference BLAS specifies): OpenBLAS reads A and B
 * anyway when alpha == 0 (NaN leaks into C), and rejects lda = 0 (k == 0)
 * with a message on stderr and no result.
 * The seam's lda/ldb/ldc are otherwise passed through unchecked: they must
 * be valid (>= the stored row length, >= 1), as for any BLAS.
 */
#include "_blas_cblas.h"

#include <stdint.h>

_Static_assert(sizeof(ptrdiff_t) <= sizeof(int64_t),
               "the ILP64 adapter passes ptrdiff_t sizes as int64_t");

/* CBLAS enum values (cblas.h): fixed by the CBLAS standard. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm64_fn)(int order, int ta, int tb,
                           int64_t m, int64_t n, int64_t k,
                           float alpha, const float *A, int64_t lda,
                           const float *B, int64_t ldb,
                           float beta, float *C, int64_t ldc);
typedef void (*dgemm64_fn)(int order, int ta, int tb,
                           int64_t m, int64_t n, int64_t k,
                           double alpha, const double *A, int64_t lda,
                           const double *B, int64_t ldb,
                           double beta, double *C, int64_t ldc);
typedef void (*sgemm32_fn)(int order, int ta, int tb,
                           int32_t m, int32_t n, int32_t k,
                           float alpha, const float *A, int32_t lda,
                           const float *B, int32_t ldb,
                           float beta, float *C, int32_t ldc);
typedef void (*dgemm32_fn)(int order, int ta, int tb,
                           int32_t m, int32_t n, int32_t k,
                           double alpha, const double *A, int32_t lda,
                           const double *B, int32_t ldb,
                           double beta, double *C, int32_t ldc);

/* The bound symbols. The seam's function type has no context argument, so
 * the library's entry points live here (one BLAS per process). */
static sgemm64_fn s64;
static dgemm64_fn d64;
static sgemm32_fn s32;
static dgemm32_fn d32;
static ptrdiff_t lp64_limit = INT32_MAX;

static int cblas_trans(crnn_trans t)
{
    return t == CRNN_TRANS ? CBLAS_TRANS : CBLAS_NO_TRANS;
}

/* True when every integer of the call fits the LP64 BLAS. */
static int fits_lp64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     ptrdiff_t lda, ptrdiff_t ldb, ptrdiff_t ldc)
{
    ptrdiff_t lim = lp64_limit;
    return m <= lim && n <= lim && k <= lim
        && lda <= lim && ldb <= lim && ldc <= lim;
}

static void ilp64_sgemm(crnn_trans ta, crnn_trans tb,
                        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        float alpha, const float *A, ptrdiff_t lda,
                        const float *B, ptrdiff_t ldb,
                        float beta, float *C, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0) {
        crnn_blas_naive()->sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* NumPy: C[:m, :n] = alpha * (A.T if ta else A) @ (B.T if tb else B) + beta * C[:m, :n] */
    s64(CBLAS_ROW_MAJOR, cblas_trans(ta), cblas_trans(tb),
        (int64_t)m, (int64_t)n, (int64_t)k, alpha, A, (int64_t)lda,
        B, (int64_t)ldb, beta, C, (int64_t)ldc);
}

static void ilp64_dgemm(crnn_trans ta, crnn_trans tb,
                        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        double alpha, const double *A, ptrdiff_t lda,
                        const double *B, ptrdiff_t ldb,
                        double beta, double *C, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0) {
        crnn_blas_naive()->dgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* NumPy: C[:m, :n] = alpha * (A.T if ta else A) @ (B.T if tb else B) + beta * C[:m, :n] */
    d64(CBLAS_ROW_MAJOR, cblas_trans(ta), cblas_trans(tb),
        (int64_t)m, (int64_t)n, (int64_t)k, alpha, A, (int64_t)lda,
        B, (int64_t)ldb, beta, C, (int64_t)ldc);
}

static void lp64_sgemm(crnn_trans ta, crnn_trans tb,
                       ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                       float alpha, const float *A, ptrdiff_t lda,
                       const float *B, ptrdiff_t ldb,
                       float beta, float *C, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0 || !fits_lp64(m, n, k, lda, ldb, ldc)) {
        crnn_blas_naive()->sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* NumPy: C[:m, :n] = alpha * (A.T if ta else A) @ (B.T if tb else B) + beta * C[:m, :n] */
    s32(CBLAS_ROW_MAJOR, cblas_trans(ta), cblas_trans(tb),
        (int32_t)m, (int32_t)n, (int32_t)k, alpha, A, (int32_t)lda,
        B, (int32_t)ldb, beta, C, (int32_t)ldc);
}

static void lp64_dgemm(crnn_trans ta, crnn_trans tb,
                       ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                       double alpha, const double *A, ptrdiff_t lda,
                       const double *B, ptrdiff_t ldb,
                       double beta, double *C, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0 || !fits_lp64(m, n, k, lda, ldb, ldc)) {
        crnn_blas_naive()->dgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* NumPy: C[:m, :n] = alpha * (A.T if ta else A) @ (B.T if tb else B) + beta * C[:m, :n] */
    d32(CBLAS_ROW_MAJOR, cblas_trans(ta), cblas_trans(tb),
        (int32_t)m, (int32_t)n, (int32_t)k, alpha, A, (int32_t)lda,
        B, (int32_t)ldb, beta, C, (int32_t)ldc);
}

int crnn_cblas_bind(void *sgemm, void *dgemm, int int_bits, crnn_blas *out)
{
    if (sgemm == NULL || dgemm == NULL || out == NULL)
        return -1;
    /* dlsym returns void *; POSIX guarantees the cast to a function pointer. */
    if (int_bits == 64) {
        s64 = (sgemm64_fn)sgemm;
        d64 = (dgemm64_fn)dgemm;
        out->sgemm = ilp64_sgemm;
        out->dgemm = ilp64_dgemm;
    } else if (int_bits == 32) {
        s32 = (sgemm32_fn)sgemm;
        d32 = (dgemm32_fn)dgemm;
        out->sgemm = lp64_sgemm;
        out->dgemm = lp64_dgemm;
    } else {
        return -1;
    }
    return 0;
}

ptrdiff_t crnn_cblas_lp64_limit(ptrdiff_t limit)
{
    ptrdiff_t old = lp64_limit;
    if (limit >= 1)
        lp64_limit = limit < INT32_MAX ? limit : INT32_MAX;
    return old;
}
