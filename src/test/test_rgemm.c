/* test_rgemm.c -- the packed recurrent product (rgemm.h) against a plain one.
 *
 *     make -C src test       builds and runs this with the other C tests
 *
 * For float32 and float64, C (M, N) = A (M, K) @ W.T (+ C) from packed W
 * against a triple loop in long double, for shapes that reach every path of
 * the kernels: M of 1-2 (matrix-vector tiles), row blocks with tails, and
 * past the 128 rows of a batch (the input product of a chunk of steps);
 * N of whole and partial panels, groups of 3 panels with 1 or 2 left over,
 * and enough panel groups that the next group is prefetched; K of 1 up to
 * past the L2 size of a panel group; lda > K, ldc > N; accumulate on and off.
 * Also:
 *  - nothing outside the M x N of C is written (guard values around it);
 *  - a call over a sub-range of panels (Wp at panel p, C at column 16p)
 *    gives the bits of the full call: results do not depend on how callers
 *    split the columns;
 *  - W packed off a cache line (other tiles at M <= 2) gives the same bits;
 *  - the packing of W and of its transpose (CRNN_NO_TRANS) is the layout
 *    of rgemm.h, element by element, for whole and partial panels and
 *    16-column blocks with remainders (the AVX-512 packing transposes
 *    16 x 16 blocks);
 *  - the one-row kernel (crnn_rgemm_mv_f32, float32) against the plain
 *    product, and the same bits on and off a cache line.
 * Where the CPU has no kernel (no AVX2/FMA for float32, no AVX-512 for
 * float64) the products are skipped. Exit status 0 iff every check passed.
 */
#ifndef CRNN_INSTANCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rgemm.h"
#include "vmath.h"

static int allok = 1;

static void check(int ok, const char *what, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, int accumulate)
{
    if (!ok) {
        printf("FAIL %s: M=%td N=%td K=%td accumulate=%d\n", what, M, N, K, accumulate);
        allok = 0;
    }
}

/* Reproducible values in [-1, 1), not round in binary. */
static double value(unsigned long *state)
{
    *state = *state * 6364136223846793005ul + 1442695040888963407ul;
    return (double)(*state >> 11) / (double)(1ul << 52) - 1.0;
}

static const double GUARD = 12345.0;  /* in C outside the product's M x N */

#endif /* part 1 */

/* ---- part 2: the checks, once per dtype ---- */
#ifdef CRNN_INSTANCE

/* C (M, N) of ldc, with guard values in the padding columns and rows. */
static real *FN(c_buffer)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t ldc, unsigned long *state)
{
    real *C = malloc((size_t)((M + 1) * ldc) * sizeof(real));
    for (ptrdiff_t i = 0; i < (M + 1) * ldc; i++)
        C[i] = i < M * ldc && i % ldc < N ? (real)value(state) : (real)GUARD;
    return C;
}

static void FN(check_product)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, int accumulate)
{
    unsigned long state = (unsigned long)(M * 1000003 + N * 1009 + K * 7 + accumulate);
    const ptrdiff_t lda = K + 3, ldc = N + 5, npanels = (N + RGEMM_NR - 1) / RGEMM_NR;
    real *A = malloc((size_t)(M * lda) * sizeof(real)), *W = malloc((size_t)(N * K) * sizeof(real));
    /* on a cache line, as callers pack (the AVX-512 matrix-vector path
     * needs it); misaligned below */
    const size_t size = crnn_rgemm_packed_size(N, K);
    real *Wp = aligned_alloc(64, (size * sizeof(real) + 63) / 64 * 64);
    for (ptrdiff_t i = 0; i < M * lda; i++)
        A[i] = (real)value(&state);
    for (ptrdiff_t i = 0; i < N * K; i++)
        W[i] = (real)value(&state);
    FN(crnn_rgemm_pack)(N, K, CRNN_TRANS, W, Wp);
    real *C = FN(c_buffer)(M, N, ldc, &state), *C0 = malloc((size_t)((M + 1) * ldc) * sizeof(real));
    memcpy(C0, C, (size_t)((M + 1) * ldc) * sizeof(real));

    FN(crnn_rgemm)(M, N, K, A, lda, Wp, accumulate, C, ldc);

    /* each element a dot product of K terms (+ C): its rounding error is
     * at most about (K + 1) eps times the sum of the terms' magnitudes */
    int close = 1, guarded = 1;
    for (ptrdiff_t m = 0; m < M + 1; m++)
        for (ptrdiff_t n = 0; n < ldc; n++) {
            const real got = C[m * ldc + n];
            if (m == M || n >= N) {
                guarded &= got == (real)GUARD;
                continue;
            }
            long double ref = accumulate ? C0[m * ldc + n] : 0, mag = fabsl(ref);
            for (ptrdiff_t k = 0; k < K; k++) {
                ref += (long double)A[m * lda + k] * W[n * K + k];
                mag += fabsl((long double)A[m * lda + k] * W[n * K + k]);
            }
            close &= fabsl(got - ref) <= (K + 2) * EPS * mag;
        }
    check(close, "product differs from the plain product by more than rounding", M, N, K, accumulate);
    check(guarded, "written outside C", M, N, K, accumulate);

    /* the same columns in two calls, split at a panel boundary: the same bits */
    for (ptrdiff_t split = 1; split < npanels; split += split < 4 ? 1 : 3) {
        real *Cs = malloc((size_t)((M + 1) * ldc) * sizeof(real));
        memcpy(Cs, C0, (size_t)((M + 1) * ldc) * sizeof(real));
        FN(crnn_rgemm)(M, split * RGEMM_NR, K, A, lda, Wp, accumulate, Cs, ldc);
        FN(crnn_rgemm)(M, N - split * RGEMM_NR, K, A, lda, Wp + split * RGEMM_NR * K, accumulate,
                    Cs + split * RGEMM_NR, ldc);
        check(memcmp(Cs, C, (size_t)((M + 1) * ldc) * sizeof(real)) == 0,
              "a call split over panels differs from the whole call", M, N, K, accumulate);
        free(Cs);
    }

    /* W off its cache line: the same bits (M <= 2 then runs other tiles) */
    real *Wp_off = malloc((size + 1) * sizeof(real)), *Co = malloc((size_t)((M + 1) * ldc) * sizeof(real));
    memcpy(Wp_off + 1, Wp, size * sizeof(real));
    memcpy(Co, C0, (size_t)((M + 1) * ldc) * sizeof(real));
    FN(crnn_rgemm)(M, N, K, A, lda, Wp_off + 1, accumulate, Co, ldc);
    check(memcmp(Co, C, (size_t)((M + 1) * ldc) * sizeof(real)) == 0,
          "W off a cache line gives other results", M, N, K, accumulate);
    free(Wp_off);
    free(Co);
    free(A);
    free(W);
    free(Wp);
    free(C);
    free(C0);
}

/* The one-row kernel (float32 only): against the plain product, and the
 * same bits with W off its cache line (where AVX-512 runs it, the AVX2
 * twin then does). */
#if CRNN_TEST_MV
static void check_mv(ptrdiff_t N, ptrdiff_t K, int accumulate)
{
    unsigned long state = (unsigned long)(N * 1009 + K * 7 + accumulate + 5);
    const size_t size = crnn_rgemm_packed_size(N, K);
    float *a = malloc((size_t)K * sizeof(float)), *W = malloc((size_t)(N * K) * sizeof(float));
    float *Wp = aligned_alloc(64, (size * sizeof(float) + 63) / 64 * 64);
    float *Wp_off = malloc((size + 1) * sizeof(float));
    for (ptrdiff_t k = 0; k < K; k++)
        a[k] = (float)value(&state);
    for (ptrdiff_t i = 0; i < N * K; i++)
        W[i] = (float)value(&state);
    crnn_rgemm_pack_f32(N, K, CRNN_TRANS, W, Wp);
    memcpy(Wp_off + 1, Wp, size * sizeof(float));
    float *c = FN(c_buffer)(1, N, N + 5, &state), *c0 = malloc((size_t)(2 * (N + 5)) * sizeof(float));
    float *co = malloc((size_t)(2 * (N + 5)) * sizeof(float));
    memcpy(c0, c, (size_t)(2 * (N + 5)) * sizeof(float));
    memcpy(co, c, (size_t)(2 * (N + 5)) * sizeof(float));
    crnn_rgemm_mv_f32(N, K, a, Wp, accumulate, c);
    crnn_rgemm_mv_f32(N, K, a, Wp_off + 1, accumulate, co);
    int close = 1, guarded = 1;
    for (ptrdiff_t n = 0; n < 2 * (N + 5); n++) {
        if (n >= N) {
            guarded &= c[n] == (float)GUARD;
            continue;
        }
        long double ref = accumulate ? c0[n] : 0, mag = fabsl(ref);
        for (ptrdiff_t k = 0; k < K; k++) {
            ref += (long double)a[k] * W[n * K + k];
            mag += fabsl((long double)a[k] * W[n * K + k]);
        }
        close &= fabsl(c[n] - ref) <= (K + 2) * 0x1p-24 * mag;
    }
    check(close, "one-row kernel differs from the plain product by more than rounding", 1, N, K, accumulate);
    check(guarded, "one-row kernel wrote outside c", 1, N, K, accumulate);
    check(memcmp(c, co, (size_t)(2 * (N + 5)) * sizeof(float)) == 0,
          "one-row kernel: W off a cache line gives other results", 1, N, K, accumulate);
    free(a), free(W), free(Wp), free(Wp_off), free(c), free(c0), free(co);
}
#endif

/* Packing W (N, K) and its transpose (K, N) gives the same copy, and that
 * copy is the layout of rgemm.h, element by element, zeros included. */
static void FN(check_pack_transposed)(ptrdiff_t N, ptrdiff_t K)
{
    unsigned long state = 99;
    const size_t size = crnn_rgemm_packed_size(N, K);
    real *W = malloc((size_t)(N * K) * sizeof(real)), *WT = malloc((size_t)(N * K) * sizeof(real));
    real *Wp = calloc(size, sizeof(real)), *WTp = calloc(size, sizeof(real));
    for (ptrdiff_t n = 0; n < N; n++)
        for (ptrdiff_t k = 0; k < K; k++)
            W[n * K + k] = WT[k * N + n] = (real)value(&state);
    FN(crnn_rgemm_pack)(N, K, CRNN_TRANS, W, Wp);
    FN(crnn_rgemm_pack)(N, K, CRNN_NO_TRANS, WT, WTp);
    check(memcmp(Wp, WTp, size * sizeof(real)) == 0, "packing the transpose differs", 0, N, K, 0);
    int layout = 1;
    for (ptrdiff_t p = 0; p * RGEMM_NR < N; p++)
        for (ptrdiff_t k = 0; k < K; k++)
            for (ptrdiff_t c = 0; c < RGEMM_NR; c++) {
                const ptrdiff_t n = p * RGEMM_NR + c;
                layout &= Wp[p * RGEMM_NR * K + k * RGEMM_NR + c] == (n < N ? W[n * K + k] : (real)0);
            }
    check(layout, "packed copy is not the layout of rgemm.h", 0, N, K, 0);
    free(W);
    free(WT);
    free(Wp);
    free(WTp);
}

#endif /* part 2 */

/* ---- part 3: instances and main ---- */
#ifndef CRNN_INSTANCE
#define CRNN_INSTANCE
#define real float
#define FN(name) name##_f32
#define EPS 0x1p-24
#define CRNN_TEST_MV 1
#include "test_rgemm.c"
#undef CRNN_TEST_MV
#define CRNN_TEST_MV 0
#undef real
#undef FN
#undef EPS
#define real double
#define FN(name) name##_f64
#define EPS 0x1p-53
#include "test_rgemm.c"
#undef real
#undef FN
#undef EPS
#undef CRNN_INSTANCE

int main(void)
{
    static const ptrdiff_t Ms[] = { 1, 2, 3, 7, 8, 9, 16, 17, 31, 64, 67, 128, 133 };
    static const ptrdiff_t Ns[] = { 1, 5, 16, 17, 32, 48, 63, 80, 100, 256 + 3 };
    static const ptrdiff_t Ks[] = { 1, 3, 16, 65, 1100 };
    const int f32 = crnn_vmath_simd(), f64 = crnn_rgemm_faster_f64(1, 16, 16);
    int products = 0;
    for (size_t i = 0; i < sizeof Ms / sizeof *Ms; i++)
        for (size_t j = 0; j < sizeof Ns / sizeof *Ns; j++)
            for (size_t l = 0; l < sizeof Ks / sizeof *Ks; l++)
                for (int accumulate = 0; accumulate < 2; accumulate++) {
                    const ptrdiff_t M = Ms[i], N = Ns[j], K = Ks[l];
                    /* the largest K only with a few M and N: it is slow in valgrind */
                    if (K > 1000 && (M % 8 != 1 || N < 80))
                        continue;
                    if (f32)
                        check_product_f32(M, N, K, accumulate);
                    if (f64)
                        check_product_f64(M, N, K, accumulate);
                    products++;
                }
    static const ptrdiff_t mv_Ns[] = { 5, 16, 63, 100, 259, 512 }, mv_Ks[] = { 1, 3, 5, 96, 130 };
    if (f32)
        for (size_t j = 0; j < sizeof mv_Ns / sizeof *mv_Ns; j++)
            for (size_t l = 0; l < sizeof mv_Ks / sizeof *mv_Ks; l++)
                for (int accumulate = 0; accumulate < 2; accumulate++)
                    check_mv(mv_Ns[j], mv_Ks[l], accumulate);
    /* whole and partial panels, 16-column blocks of W and their remainders */
    static const ptrdiff_t pack_Ns[] = { 1, 15, 16, 17, 37, 48, 100 }, pack_Ks[] = { 1, 15, 16, 17, 21, 64, 130 };
    for (size_t j = 0; j < sizeof pack_Ns / sizeof *pack_Ns; j++)
        for (size_t l = 0; l < sizeof pack_Ks / sizeof *pack_Ks; l++) {
            check_pack_transposed_f32(pack_Ns[j], pack_Ks[l]);
            check_pack_transposed_f64(pack_Ns[j], pack_Ks[l]);
        }
    printf("test_rgemm: %s: %d products (float32 %s, float64 %s), packing (and of the transpose)\n",
           allok ? "all ok" : "FAILED", products, f32 ? "checked" : "skipped: no kernel",
           f64 ? "checked" : "skipped: no kernel");
    return allok ? 0 : 1;
}
#endif /* part 3 */
