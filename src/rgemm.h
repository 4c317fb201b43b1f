/* rgemm.h -- the recurrent product with its weights packed once per call. Internal.
 *
 *     C = A @ W.T (+ C)      A (M, K) = h_{t-1} of the batch, W (N, K) = W_hh,
 *                            C (M, N) = the gates of one step
 *
 * A BLAS gemm re-packs W (N*K, the biggest operand) on every call, i.e. on
 * every time step, and for small M its call overhead and matrix-vector
 * path dominate (measured: the packing alone was a third of an LSTM
 * forward). Here W is packed once per sequence into caller memory and each
 * step runs a register-tiled kernel over it: float32 where crnn_vmath_simd()
 * holds (AVX2/FMA, or AVX-512), float64 on AVX-512 CPUs; callers fall back
 * to the BLAS seam otherwise (rgemm_prepare_* in common.h decide).
 *
 * Packed layout: panels of RGEMM_NR = 16 rows of W (16 outputs), each panel
 * k-major: Wp[p*16*K + k*16 + c] = W[p*16 + c, k]; the last panel is
 * padded with zeros.
 */
#ifndef CRNN_RGEMM_H
#define CRNN_RGEMM_H

#include <stddef.h>

#include "blas.h"  /* crnn_trans */

enum { RGEMM_NR = 16 };

/* Elements of the packed copy of an (N, K) matrix, plus one panel row of
 * slack: rgemm_prepare_* (common.h) start the copy on a cache line (the
 * zmm loads of the kernels then never straddle two lines). Always a
 * multiple of RGEMM_NR. */
static inline size_t crnn_rgemm_packed_size(ptrdiff_t N, ptrdiff_t K)
{
    return (size_t)((N + RGEMM_NR - 1) / RGEMM_NR) * RGEMM_NR * (size_t)K + RGEMM_NR;
}

/* Wp = the packed copy of W, an (N, K) matrix given row-major as W (N, K)
 * (trans_w = CRNN_TRANS: the product is A @ W.T) or as its transpose
 * (K, N) (CRNN_NO_TRANS: the product is A @ W, as in backward's dh). */
void crnn_rgemm_pack_f32(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const float *W, float *Wp);

/* C = A @ W.T, or C += A @ W.T if accumulate; W given packed.
 * Only when crnn_vmath_simd() is true. */
void crnn_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                    const float *Wp, int accumulate, float *C, ptrdiff_t ldc);

/* c = a @ W.T (+ c) for one row a (K,), W given packed: a panel (AVX2) or
 * two adjacent panels (AVX-512) at a time, W read in order, where
 * crnn_rgemm_mv_pays(1, N, K) (W read from L2, at least 12 panels;
 * rgemm.c). Sums each element in four chains over k mod 4, not in k order
 * as crnn_rgemm_f32 does: the bits differ from it by rounding,
 * but not between CPUs with and without AVX-512 (nor with W on or off a
 * cache line). Only when crnn_vmath_simd() is true. */
void crnn_rgemm_mv_f32(ptrdiff_t N, ptrdiff_t K, const float *a, const float *Wp, int accumulate, float *c);
int crnn_rgemm_mv_pays(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K);

/* 1 when, on this CPU, the packed kernel is faster than OpenBLAS's sgemm for
 * the product of an (M, K) by a (K, N) per step (measured crossovers, see
 * rgemm.c); 0 also where there is no kernel (no AVX2/FMA). */
int crnn_rgemm_faster(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K);

/* The same for float64 (a panel of 16 columns is two AVX-512 vectors of 8
 * doubles). AVX-512 only: elsewhere crnn_rgemm_faster_f64 is 0 and callers
 * use the BLAS. Measured against OpenBLAS's dgemm per step (1 thread, LSTM,
 * H = 128..512): 2.2x faster at M = 4, 1.05-1.15x at M = 32-64, a tie at
 * M = 128; hence M <= RGEMM_F64_MAX_M. */
enum { RGEMM_F64_MAX_M = 64 };
void crnn_rgemm_pack_f64(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const double *W, double *Wp);
void crnn_rgemm_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda,
                    const double *Wp, int accumulate, double *C, ptrdiff_t ldc);
int crnn_rgemm_faster_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K);

#endif /* CRNN_RGEMM_H */
