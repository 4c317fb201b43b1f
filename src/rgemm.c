/* rgemm.c -- the recurrent product over weights packed once; see rgemm.h.
 *
 * Register tiles of MR rows of A x NP panels of 16 columns: 2*MR*NP ymm
 * accumulators, per k one broadcast of A per row and two loads per panel.
 * Panels are the outer loop, so a panel (16*K floats) stays in L1 while
 * every row block of A passes over it: W is read once per step.
 *     M <= 2  (matrix-vector)  1-2 rows x 4 panels: 8 independent FMA chains
 *     else                     6 rows x 1 panel (12 accumulators); tails MR < 6
 */
#include <string.h>

#include "rgemm.h"
#include "vmath.h"

void crnn_rgemm_pack_f32(ptrdiff_t N, ptrdiff_t K, const float *W, float *Wp)
{
    for (ptrdiff_t p = 0; p * RGEMM_NR < N; p++) {
        float *panel = Wp + p * RGEMM_NR * K;
        for (ptrdiff_t c = 0; c < RGEMM_NR; c++) {
            const ptrdiff_t n = p * RGEMM_NR + c;
            for (ptrdiff_t k = 0; k < K; k++)
                panel[k * RGEMM_NR + c] = n < N ? W[n * K + k] : 0.0f;
        }
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define AVX2_FMA __attribute__((target("avx2,fma")))

/* Columns [col, col + 8) of a row, of which `valid` exist. */
static inline __attribute__((always_inline)) AVX2_FMA __m256i cols_mask(ptrdiff_t valid)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(valid < 8 ? valid : 8)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* One tile: rows [0, MR) of A, panels [0, NP) of Wp; ncols of its columns
 * exist in C (the last panel may be partial). MR, NP are constants after
 * inlining, so acc[][] lives in registers. */
static inline __attribute__((always_inline)) AVX2_FMA void
tile(const int MR, const int NP, ptrdiff_t K, const float *A, ptrdiff_t lda,
     const float *Wp, float *C, ptrdiff_t ldc, ptrdiff_t ncols, int accumulate)
{
    /* start from C when accumulating: each product then rounds into it once */
    __m256 acc[6][8];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < 2 * NP; c++) {
            const ptrdiff_t col = 8 * c;
            const float *cp = C + r * ldc + col;
            if (!accumulate || col >= ncols)
                acc[r][c] = _mm256_setzero_ps();
            else if (ncols - col >= 8)
                acc[r][c] = _mm256_loadu_ps(cp);
            else
                acc[r][c] = _mm256_maskload_ps(cp, cols_mask(ncols - col));
        }
    const ptrdiff_t pstride = RGEMM_NR * K;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m256 w[8];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            w[2 * p] = _mm256_loadu_ps(Wp + p * pstride + k * RGEMM_NR);
            w[2 * p + 1] = _mm256_loadu_ps(Wp + p * pstride + k * RGEMM_NR + 8);
        }
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
#pragma GCC unroll 8
            for (int c = 0; c < 2 * NP; c++)
                acc[r][c] = _mm256_fmadd_ps(a, w[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < 2 * NP; c++) {
            const ptrdiff_t col = 8 * c;
            if (col >= ncols)
                break;
            float *cp = C + r * ldc + col;
            if (ncols - col >= 8)
                _mm256_storeu_ps(cp, acc[r][c]);
            else
                _mm256_maskstore_ps(cp, cols_mask(ncols - col), acc[r][c]);
        }
}

#define TILE(mr, np) \
    tile(mr, np, K, A + r0 * lda, lda, Wp + p * RGEMM_NR * K, C + r0 * ldc + p * RGEMM_NR, ldc, ncols, accumulate)

static AVX2_FMA void rgemm_avx2(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                                const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    const ptrdiff_t npanels = (N + RGEMM_NR - 1) / RGEMM_NR;
    ptrdiff_t np;
    for (ptrdiff_t p = 0; p < npanels; p += np) {
        np = M <= 2 && npanels - p >= 4 ? 4 : 1;
        const ptrdiff_t ncols = (N - p * RGEMM_NR) < np * RGEMM_NR ? N - p * RGEMM_NR : np * RGEMM_NR;
        for (ptrdiff_t r0 = 0; r0 < M; r0 += 6) {
            const ptrdiff_t mr = M - r0 < 6 ? M - r0 : 6;
            if (np == 4) {
                if (mr == 1) TILE(1, 4); else TILE(2, 4);
                continue;
            }
            switch (mr) {
            case 1: TILE(1, 1); break;
            case 2: TILE(2, 1); break;
            case 3: TILE(3, 1); break;
            case 4: TILE(4, 1); break;
            case 5: TILE(5, 1); break;
            default: TILE(6, 1); break;
            }
        }
    }
}

void crnn_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                    const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    if (crnn_vmath_simd())
        rgemm_avx2(M, N, K, A, lda, Wp, accumulate, C, ldc);
}

#else

void crnn_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                    const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Wp, (void)accumulate, (void)C, (void)ldc;
}

#endif
