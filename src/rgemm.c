/* rgemm.c -- the recurrent product over weights packed once; see rgemm.h.
 *
 * Register tiles of MR rows of A x NP panels of 16 columns: 2*MR*NP ymm
 * accumulators, per k one broadcast of A per row and two loads per panel.
 * Panels are the outer loop, so a panel (16*K floats) stays in L1 while
 * every row block of A passes over it: W is read once per step.
 *     M <= 2  (matrix-vector)  1-2 rows x 4 panels: 8 independent FMA chains
 *     else                     6 rows x 1 panel (12 accumulators); tails MR < 6
 * An AVX-512 variant over the same packing (a panel is one zmm) is chosen at
 * run time where the CPU has it; see rgemm_avx512().
 */
#include <stdint.h>
#include <string.h>

#include "crnn.h"  /* the public crnn_pack_* */
#include "mv_panels.h"
#include "rgemm.h"
#include "vmath.h"

/* Panels [p0, npanels) of the packing, element by element. A whole panel
 * of a transposed W (K, N) is 16 consecutive floats of each of its K rows:
 * copied as such. */
static void pack_panels_f32(ptrdiff_t p0, ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const float *W, float *Wp)
{
    /* W[n, k] is W[n * K + k] as given (N, K), W[k * N + n] as its transpose */
    const ptrdiff_t sn = trans_w == CRNN_TRANS ? K : 1, sk = trans_w == CRNN_TRANS ? 1 : N;
    for (ptrdiff_t p = p0; p * RGEMM_NR < N; p++) {
        float *panel = Wp + p * RGEMM_NR * K;
        if (trans_w == CRNN_NO_TRANS && (p + 1) * RGEMM_NR <= N) {
            for (ptrdiff_t k = 0; k < K; k++)
                memcpy(panel + k * RGEMM_NR, W + k * N + p * RGEMM_NR, RGEMM_NR * sizeof(float));
            continue;
        }
        for (ptrdiff_t k = 0; k < K; k++)
            for (ptrdiff_t c = 0; c < RGEMM_NR; c++) {
                const ptrdiff_t n = p * RGEMM_NR + c;
                panel[k * RGEMM_NR + c] = n < N ? W[n * sn + k * sk] : 0.0f;
            }
    }
}

void crnn_rgemm_pack_f64(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const double *W, double *Wp)
{
    const ptrdiff_t sn = trans_w == CRNN_TRANS ? K : 1, sk = trans_w == CRNN_TRANS ? 1 : N;
    for (ptrdiff_t p = 0; p * RGEMM_NR < N; p++) {
        double *panel = Wp + p * RGEMM_NR * K;
        for (ptrdiff_t k = 0; k < K; k++)
            for (ptrdiff_t c = 0; c < RGEMM_NR; c++) {
                const ptrdiff_t n = p * RGEMM_NR + c;
                panel[k * RGEMM_NR + c] = n < N ? W[n * sn + k * sk] : 0.0;
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

/* The matrix-vector product c = a @ W.T (+ c), one row, on one panel:
 * its K lines read in order, the products of k = 0, 1, 2, 3 (mod 4) summed
 * in four chains (chain 0 starting from c when accumulating) and the chains
 * added as (0 + 1) + (2 + 3) at the end (crnn_rgemm_mv_f32). The AVX-512
 * twin, tile512_mv (mv_panels.h), sums in the same order: the same bits
 * whichever runs. */
static inline __attribute__((always_inline)) AVX2_FMA void
tile_mv(ptrdiff_t K, const float *a, const float *panel, float *c, ptrdiff_t ncols, int accumulate)
{
    for (int half = 0; half < 2; half++) {
        const ptrdiff_t col = 8 * half;
        if (col >= ncols)
            break;
        const __m256i mask = cols_mask(ncols - col);
        __m256 acc[4] = { accumulate ? _mm256_maskload_ps(c + col, mask) : _mm256_setzero_ps(),
                          _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
        const float *w = panel + col;
        ptrdiff_t k = 0;
        for (; k + 4 <= K; k += 4)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                acc[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k + q), _mm256_loadu_ps(w + (k + q) * RGEMM_NR),
                                         acc[q]);
        for (int q = 0; k < K; k++, q++)
            acc[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k), _mm256_loadu_ps(w + k * RGEMM_NR), acc[q]);
        _mm256_maskstore_ps(c + col, mask,
                            _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    }
}

static AVX2_FMA void rgemm_mv_avx2(ptrdiff_t N, ptrdiff_t K, const float *a, const float *Wp, int accumulate,
                                   float *c)
{
    for (ptrdiff_t p = 0; p * RGEMM_NR < N; p++)
        tile_mv(K, a, Wp + p * RGEMM_NR * K, c + p * RGEMM_NR, N - p * RGEMM_NR, accumulate);
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

#undef TILE

/* ---- AVX-512: the same packing, one zmm per 16-column panel ----
 *
 * Twice the lanes and 32 registers: tiles of up to MR = 8 rows x NP = 3
 * panels (24 accumulators); per k, 3 loads of W and MR broadcasts of A feed
 * MR*3 FMAs. M <= 2 (matrix-vector) takes NP = 4: 4-8 independent FMA
 * chains. Partial panels use a lane mask for C. For M <= 2 only on a W
 * aligned to a cache line (see crnn_rgemm_f32).
 *
 * A group of 3 panels (3*16*K floats, 192 KB at K = 1024) does not fit L1,
 * so each row block reads it from L2; that is fast enough (3 lines per 24
 * FMAs). What is not: a W of more than L2 (N*K*4 bytes; 16 MiB for an LSTM
 * of H = 1024) comes from L3 or memory, and the first row block of every
 * group waited on it: 64 x 4096 x 1024 ran at 85% of the L2-resident speed.
 * So with two or more row blocks, the first three of a group each fetch
 * one panel of the next group into L2 while they compute, a line (one k)
 * per k, long before it is needed. Measured 1.05-1.2x at M = 16..128 with
 * W of 4-16 MiB, no change where W fits L2. Splitting K into blocks that
 * keep a panel slice in L1 was no faster at any size (kc = 64..256; slower
 * at 64 and 128): the wait for W stays. One row block (M <= 8) is bound by
 * how fast W streams in, which prefetching did not raise (M = 1..8, W of
 * 16 MiB), so there it is left to the hardware. */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

static inline __attribute__((always_inline)) AVX512 __mmask16 panel_mask(ptrdiff_t valid)
{
    return valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
}

/* One tile: rows [0, MR) of A against panels [0, NP) of Wp over all of K;
 * ncols of its columns exist in C. pf: NULL, or a panel of the next group
 * to bring into L2 (K lines, one per k). cnext: NULL, or the C of the next
 * tile (cnext_rows rows of NP panels), to bring into L2 before it is read. */
static inline __attribute__((always_inline)) AVX512 void
tile512(const int MR, const int NP, ptrdiff_t K, const float *A, ptrdiff_t lda,
        const float *Wp, float *C, ptrdiff_t ldc, ptrdiff_t ncols, int accumulate, const float *pf,
        const float *cnext, ptrdiff_t cnext_rows)
{
    if (cnext != NULL)
        for (ptrdiff_t r = 0; r < cnext_rows; r++)
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++)
                _mm_prefetch((const char *)(cnext + r * ldc + RGEMM_NR * p), _MM_HINT_T1);
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++) {
            const ptrdiff_t col = RGEMM_NR * p;
            acc[r][p] = !accumulate || col >= ncols
                            ? _mm512_setzero_ps()
                            : _mm512_maskz_loadu_ps(panel_mask(ncols - col), C + r * ldc + col);
        }
    const ptrdiff_t pstride = RGEMM_NR * K;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512 w[4];
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++)
            w[p] = _mm512_loadu_ps(Wp + p * pstride + k * RGEMM_NR);
        if (pf != NULL)
            _mm_prefetch((const char *)(pf + k * RGEMM_NR), _MM_HINT_T1);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 8
            for (int p = 0; p < NP; p++)
                acc[r][p] = _mm512_fmadd_ps(a, w[p], acc[r][p]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++) {
            const ptrdiff_t col = RGEMM_NR * p;
            if (col < ncols)
                _mm512_mask_storeu_ps(C + r * ldc + col, panel_mask(ncols - col), acc[r][p]);
        }
}

/* tile_mv's AVX-512 twin: one row on NP (1 or 2) consecutive panels, each
 * with tile_mv's sums in tile_mv's order; ncols columns exist from the first.
 * Two panels at once read two lines per k from two streams: 8 chains in
 * flight instead of 4, which hides more of each panel's final sums (at
 * N x K = 256 x 32, in L1, 0.24 against 0.30 us; 128 x 128 and 256 x 256,
 * from L2, 5% faster; an Intel Xeon, 1 thread). */
static inline __attribute__((always_inline)) AVX512 void
tile512_mv(const int NP, ptrdiff_t K, const float *a, const float *panel, float *c, ptrdiff_t ncols,
           int accumulate)
{
    __m512 c0[2], out[2];
#pragma GCC unroll 2
    for (int p = 0; p < NP; p++)
        c0[p] = accumulate ? _mm512_maskz_loadu_ps(panel_mask(ncols - p * RGEMM_NR), c + p * RGEMM_NR)
                           : _mm512_setzero_ps();
    mv_panels_ps16(NP, K, a, panel, RGEMM_NR * K, c0, out);
#pragma GCC unroll 2
    for (int p = 0; p < NP; p++)
        _mm512_mask_storeu_ps(c + p * RGEMM_NR, panel_mask(ncols - p * RGEMM_NR), out[p]);
}

static AVX512 void rgemm_mv_avx512(ptrdiff_t N, ptrdiff_t K, const float *a, const float *Wp, int accumulate,
                                   float *c)
{
    ptrdiff_t p = 0;
    for (; (p + 2) * RGEMM_NR <= N; p += 2)
        tile512_mv(2, K, a, Wp + p * RGEMM_NR * K, c + p * RGEMM_NR, N - p * RGEMM_NR, accumulate);
    /* what is left: one panel, or a full one and a partial one */
    if (N - p * RGEMM_NR > RGEMM_NR)
        tile512_mv(2, K, a, Wp + p * RGEMM_NR * K, c + p * RGEMM_NR, N - p * RGEMM_NR, accumulate);
    else if (N - p * RGEMM_NR > 0)
        tile512_mv(1, K, a, Wp + p * RGEMM_NR * K, c + p * RGEMM_NR, N - p * RGEMM_NR, accumulate);
}

/* Row block b = r0 / 8 prefetches panel p + np + b of the next group, if
 * there is one; the matrix-vector tiles (np = 4) never do, and have no test
 * for it in their loop. */
#define TILE(mr, np)                                                                                     \
    tile512(mr, np, K, A + r0 * lda, lda, Wp + p * RGEMM_NR * K, C + r0 * ldc + p * RGEMM_NR, ldc,       \
            ncols, accumulate, (np) < 4 && r0 / 8 < prefetch ? Wp + (p + np + r0 / 8) * RGEMM_NR * K : NULL, \
            cnext, M - r1 < 8 ? M - r1 : 8)

/* All rows, in blocks of up to 8, against one group of NP panels. When the
 * product accumulates, each tile starts by loading its C (24 lines at
 * 8 x 3), from L3 or memory in an RNN (the gates of a step, written by the
 * input product of its chunk): the tile before fetches them into L2. The
 * next tile is rows r1 of this group, or the first rows of a whole next
 * group. Measured 1.01-1.04x at M = 64..512 with W of 8-16 MiB, no change
 * elsewhere. */
#define ROWS(NP)                                                                           \
    for (ptrdiff_t r0 = 0; r0 < M; r0 += 8) {                                              \
        const ptrdiff_t r1 = r0 + 8 < M ? r0 + 8 : 0;                                      \
        const float *cnext = accumulate && M > 8 && (r1 > 0 || next >= (NP))               \
                                 ? C + r1 * ldc + (r1 > 0 ? p : p + (NP)) * RGEMM_NR : NULL; \
        switch (M - r0 < 8 ? M - r0 : 8) {                                                 \
        case 1: TILE(1, NP); break;                                                        \
        case 2: TILE(2, NP); break;                                                        \
        case 3: TILE(3, NP); break;                                                        \
        case 4: TILE(4, NP); break;                                                        \
        case 5: TILE(5, NP); break;                                                        \
        case 6: TILE(6, NP); break;                                                        \
        case 7: TILE(7, NP); break;                                                        \
        default: TILE(8, NP); break;                                                       \
        }                                                                                  \
    }

static AVX512 void rgemm_avx512(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                                const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    const ptrdiff_t npanels = (N + RGEMM_NR - 1) / RGEMM_NR;
    ptrdiff_t np;
    for (ptrdiff_t p = 0; p < npanels; p += np) {
        const ptrdiff_t left = npanels - p;
        np = M <= 2 && left >= 4 ? 4 : left >= 3 ? 3 : left;
        const ptrdiff_t ncols = (N - p * RGEMM_NR) < np * RGEMM_NR ? N - p * RGEMM_NR : np * RGEMM_NR;
        /* panels of the next group to prefetch: up to 3, none for one row
         * block, none past this call's panels */
        const ptrdiff_t next = left - np, prefetch = M <= 8 ? 0 : next < 3 ? next : 3;
        switch (np) {
        case 4: ROWS(4); break;
        case 3: ROWS(3); break;
        case 2: ROWS(2); break;
        default: ROWS(1); break;
        }
    }
}

#undef ROWS
#undef TILE

/* ---- float64, AVX-512 only: a 16-column panel is two zmm of 8 doubles ----
 *
 * Tiles of MR rows x NP panels, 2*MR*NP accumulators: MR <= 6 x 2 panels
 * in general (24 accumulators; per k 4 loads of W, MR broadcasts, 4*MR
 * FMAs), 1-2 rows x 4 panels for the matrix-vector case (8 independent
 * chains). As for float32, with two or more row blocks the first four of a
 * group each bring a half of the next group (a line per k) into L2.
 * Measured against 6 x 1 tiles without prefetching (bench_rgemm -d, 1
 * thread, two runs on a machine shared with other work, so roughly): 1.08x
 * at M = 4, 1.13-1.22x at M = 16..64 with W of 2 MiB, 1.2-1.6x with W of
 * 4-32 MiB; M = 1 unchanged. */
static inline __attribute__((always_inline)) AVX512 __mmask8 half_mask(ptrdiff_t valid)
{
    return valid >= 8 ? (__mmask8)0xFF : valid <= 0 ? (__mmask8)0 : (__mmask8)((1u << valid) - 1);
}

/* pf: NULL, or K lines (one per k) of the next group to bring into L2. */
static inline __attribute__((always_inline)) AVX512 void
tile512d(const int MR, const int NP, ptrdiff_t K, const double *A, ptrdiff_t lda,
         const double *Wp, double *C, ptrdiff_t ldc, ptrdiff_t ncols, int accumulate, const double *pf)
{
    __m512d acc[6][8];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < 2 * NP; c++) {
            const ptrdiff_t col = 8 * c;
            acc[r][c] = !accumulate || col >= ncols
                            ? _mm512_setzero_pd()
                            : _mm512_maskz_loadu_pd(half_mask(ncols - col), C + r * ldc + col);
        }
    const ptrdiff_t pstride = RGEMM_NR * K;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512d w[8];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            w[2 * p] = _mm512_loadu_pd(Wp + p * pstride + k * RGEMM_NR);
            w[2 * p + 1] = _mm512_loadu_pd(Wp + p * pstride + k * RGEMM_NR + 8);
        }
        if (pf != NULL)
            _mm_prefetch((const char *)(pf + k * 8), _MM_HINT_T1);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const __m512d a = _mm512_set1_pd(A[r * lda + k]);
#pragma GCC unroll 8
            for (int c = 0; c < 2 * NP; c++)
                acc[r][c] = _mm512_fmadd_pd(a, w[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < 2 * NP; c++) {
            const ptrdiff_t col = 8 * c;
            if (col < ncols)
                _mm512_mask_storeu_pd(C + r * ldc + col, half_mask(ncols - col), acc[r][c]);
        }
}

/* Row block b = r0 / 6 prefetches the b-th K lines (8 doubles each) of the
 * next group, if there are that many. */
#define TILE(mr, np)                                                                                \
    tile512d(mr, np, K, A + r0 * lda, lda, Wp + p * RGEMM_NR * K, C + r0 * ldc + p * RGEMM_NR, ldc, \
             ncols, accumulate, r0 / 6 < prefetch ? Wp + (p + np) * RGEMM_NR * K + r0 / 6 * 8 * K : NULL)

/* All rows, in blocks of up to 6, against one group of NP panels. */
#define ROWS(NP)                                       \
    for (ptrdiff_t r0 = 0; r0 < M; r0 += 6) {          \
        switch (M - r0 < 6 ? M - r0 : 6) {             \
        case 1: TILE(1, NP); break;                    \
        case 2: TILE(2, NP); break;                    \
        case 3: TILE(3, NP); break;                    \
        case 4: TILE(4, NP); break;                    \
        case 5: TILE(5, NP); break;                    \
        default: TILE(6, NP); break;                   \
        }                                              \
    }

static AVX512 void rgemm_avx512_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda,
                                    const double *Wp, int accumulate, double *C, ptrdiff_t ldc)
{
    const ptrdiff_t npanels = (N + RGEMM_NR - 1) / RGEMM_NR;
    ptrdiff_t np;
    for (ptrdiff_t p = 0; p < npanels; p += np) {
        const ptrdiff_t left = npanels - p;
        np = M <= 2 && left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const ptrdiff_t ncols = (N - p * RGEMM_NR) < np * RGEMM_NR ? N - p * RGEMM_NR : np * RGEMM_NR;
        /* halves of panels of the next group to prefetch: up to 4, none for
         * one row block, none past this call's panels */
        const ptrdiff_t next = left - np, prefetch = M <= 6 ? 0 : next < 2 ? 2 * next : 4;
        if (np == 4) {
            for (ptrdiff_t r0 = 0; r0 < M; r0 += 2) {
                if (M - r0 == 1) TILE(1, 4); else TILE(2, 4);
            }
        } else if (np == 2) {
            ROWS(2);
        } else {
            ROWS(1);
        }
    }
}

#undef ROWS
#undef TILE

static int have_avx512(void)
{
    static int have = -1;  /* a benign race: every thread computes the same */
    if (have < 0)
        have = __builtin_cpu_supports("avx512f") && crnn_vmath_simd();
    return have;
}

/* The whole panels of W given (N, K): 16 rows by 16 columns at a time,
 * transposed in registers (unpack pairs, then quads, then 128-bit lanes),
 * so that each of the 16 stores writes one k of the panel. Packing runs
 * on every call of a cell (W changes between calls in training); element
 * by element it took 3% of a stacked LSTM's inference. */
static AVX512 void pack_rows_avx512(ptrdiff_t N, ptrdiff_t K, const float *W, float *Wp)
{
    for (ptrdiff_t p = 0; (p + 1) * RGEMM_NR <= N; p++) {
        const float *rows = W + p * RGEMM_NR * K;
        float *panel = Wp + p * RGEMM_NR * K;
        ptrdiff_t k0 = 0;
        for (; k0 + 16 <= K; k0 += 16) {
            __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
            for (int c = 0; c < 16; c++)
                r[c] = _mm512_loadu_ps(rows + c * K + k0);
            /* t: rows 2i, 2i+1 interleaved, per 128-bit lane L: k = 4L, 4L+1 (lo), 4L+2, 4L+3 (hi) */
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            /* u[4j + m]: rows 4j..4j+3, lane L holding k = 4L + m */
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512d lo0 = _mm512_castps_pd(t[4 * j]), lo1 = _mm512_castps_pd(t[4 * j + 2]);
                const __m512d hi0 = _mm512_castps_pd(t[4 * j + 1]), hi1 = _mm512_castps_pd(t[4 * j + 3]);
                u[4 * j] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
                u[4 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
                u[4 * j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
                u[4 * j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
            }
            /* k = m + 4L: lane L of u[m], u[4 + m], u[8 + m], u[12 + m] */
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++) {
                const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);      /* lanes 0, 2 */
                const __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);      /* lanes 1, 3 */
                const __m512 w0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
                const __m512 w1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
                float *out = panel + (k0 + m) * RGEMM_NR;
                _mm512_storeu_ps(out, _mm512_shuffle_f32x4(v0, w0, 0x88));                  /* k0 + m */
                _mm512_storeu_ps(out + 4 * RGEMM_NR, _mm512_shuffle_f32x4(v1, w1, 0x88));   /* + 4 */
                _mm512_storeu_ps(out + 8 * RGEMM_NR, _mm512_shuffle_f32x4(v0, w0, 0xDD));   /* + 8 */
                _mm512_storeu_ps(out + 12 * RGEMM_NR, _mm512_shuffle_f32x4(v1, w1, 0xDD));  /* + 12 */
            }
        }
        for (; k0 < K; k0++)
            for (int c = 0; c < 16; c++)
                panel[k0 * RGEMM_NR + c] = rows[c * K + k0];
    }
}

void crnn_rgemm_pack_f32(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const float *W, float *Wp)
{
    ptrdiff_t p0 = 0;
    if (trans_w == CRNN_TRANS && have_avx512()) {
        pack_rows_avx512(N, K, W, Wp);
        p0 = N / RGEMM_NR;  /* a partial last panel, with its zeros, below */
    }
    pack_panels_f32(p0, N, K, trans_w, W, Wp);
}

void crnn_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                    const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    /* One or two rows are a matrix-vector product bound by reading W from
     * L2. Where W starts a cache line (every zmm load then reads one line)
     * the zmm kernel is 1.25-1.8x faster than the AVX2 tile (M = 1, N x K =
     * 256 x 64 .. 512 x 128); where it does not, every zmm load spans two
     * lines and it measured up to 4x slower, so those stay on the AVX2 tile
     * (rgemm_prepare_* in common.h aligns the copies it makes). */
    if (have_avx512() && (M > 2 || (uintptr_t)Wp % 64 == 0))
        rgemm_avx512(M, N, K, A, lda, Wp, accumulate, C, ldc);
    else if (crnn_vmath_simd())
        rgemm_avx2(M, N, K, A, lda, Wp, accumulate, C, ldc);
}

void crnn_rgemm_mv_f32(ptrdiff_t N, ptrdiff_t K, const float *a, const float *Wp, int accumulate, float *c)
{
    /* zmm loads of W need it on a cache line, as for crnn_rgemm_f32 */
    if (have_avx512() && (uintptr_t)Wp % 64 == 0)
        rgemm_mv_avx512(N, K, a, Wp, accumulate, c);
    else if (crnn_vmath_simd())
        rgemm_mv_avx2(N, K, a, Wp, accumulate, c);
}

/* Where one row's product reads W from L2, a panel at a time in one
 * sequential stream is faster than the 4-panel tile's four interleaved
 * streams (AVX-512 now takes two adjacent panels at a time: tile512_mv;
 * not measured on Zen 5). Measured 1 thread, M = 1, on a Zen 5 core: the kernel alone
 * (bench_rgemm) 1.3-1.8x at N x K = 384 x 128 .. 1024 x 128 and 1.2x at
 * 512 x 256; in place, small_seq LSTM and GRU (N = 512, 384, K = 128) 10%
 * faster per call, and a stream step, whose W_ih and W_hh (LSTM I = 32,
 * H = 64: 32 and 64 KiB, N = 256) take turns in L1 and so both come from
 * L2, 15% (LSTM) and 12% (GRU) faster. Not taken: N < 192 (a simple RNN of
 * H = 128 ran 2-5% slower per call: too few panels to hide each one's final
 * sums), K < 16 (the same per panel), W past 512 KiB (from L3 four streams
 * do better: 0.96x at 2048 x 512), two rows (0.86-0.95x). */
int crnn_rgemm_mv_pays(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    const double bytes = 4.0 * (double)N * (double)K;
    return M == 1 && N >= 192 && K >= 16 && bytes <= 512.0 * 1024 && crnn_vmath_simd();
}

void crnn_rgemm_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda,
                    const double *Wp, int accumulate, double *C, ptrdiff_t ldc)
{
    if (have_avx512())
        rgemm_avx512_f64(M, N, K, A, lda, Wp, accumulate, C, ldc);
}

/* Crossovers against OpenBLAS 0.3.x sgemm, 1 thread, measured per step with
 * N = G*H, K = H for H = 64..1024, G = 1, 3, 4 (an Intel Xeon with
 * AVX-512): the AVX-512 kernel wins up to M = 128 at every H and ties at
 * M = 256; the AVX2 kernel (vs OpenBLAS's AVX-512 sgemm) wins up to M = 64
 * for K <= 64, M = 32 for K <= 256 and M = 16 beyond. */
int crnn_rgemm_faster(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    (void)N;
    if (have_avx512())
        return M <= 128;
    if (crnn_vmath_simd())
        return M <= (K <= 64 ? 64 : K <= 256 ? 32 : 16);
    return 0;
}

/* Against OpenBLAS's dgemm, 1 thread: see crnn_rgemm_faster_f64 in rgemm.h. */
int crnn_rgemm_faster_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    (void)N, (void)K;
    return have_avx512() && M <= RGEMM_F64_MAX_M;
}

#else

void crnn_rgemm_pack_f32(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const float *W, float *Wp)
{
    pack_panels_f32(0, N, K, trans_w, W, Wp);
}

void crnn_rgemm_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda,
                    const double *Wp, int accumulate, double *C, ptrdiff_t ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Wp, (void)accumulate, (void)C, (void)ldc;
}

int crnn_rgemm_faster_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    (void)M, (void)N, (void)K;
    return 0;
}

void crnn_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                    const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Wp, (void)accumulate, (void)C, (void)ldc;
}

void crnn_rgemm_mv_f32(ptrdiff_t N, ptrdiff_t K, const float *a, const float *Wp, int accumulate, float *c)
{
    (void)N, (void)K, (void)a, (void)Wp, (void)accumulate, (void)c;
}

int crnn_rgemm_mv_pays(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    (void)M, (void)N, (void)K;
    return 0;
}

int crnn_rgemm_faster(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    (void)M, (void)N, (void)K;
    return 0;
}

#endif

/* ---- the public packing of crnn.h (W_ih_packed, W_hh_packed) ---- */

int crnn_pack_pays_f32(ptrdiff_t batch, ptrdiff_t rows, ptrdiff_t cols)
{
    return crnn_rgemm_faster(batch, rows, cols);
}

size_t crnn_packed_size_f32(ptrdiff_t rows, ptrdiff_t cols)
{
    return rows < 1 || cols < 1 ? 0 : crnn_rgemm_packed_size(rows, cols);
}

crnn_status crnn_pack_f32(ptrdiff_t rows, ptrdiff_t cols, const float *W, float *packed)
{
    if (rows < 1 || cols < 1 || W == NULL || packed == NULL)
        return CRNN_EINVAL;
    crnn_rgemm_pack_f32(rows, cols, CRNN_TRANS, W, packed);
    return CRNN_OK;
}
