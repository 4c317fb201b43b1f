/* mv_panels.h -- the one-row product's sums on 16-column panels, kept in registers. Internal.
 *
 * One definition of the order in which a row a (K,) times a panel of the
 * packed W (rgemm.h) is summed, for every kernel that must give the
 * one-row product's bits: rgemm.c's tile512_mv (crnn_rgemm_mv_f32 on
 * AVX-512) and row_step.c's fused steps. Per panel: four chains over
 * k mod 4, chain 0 starting from c0, added as (0 + 1) + (2 + 3) at the
 * end; the AVX2 kernel (rgemm.c's tile_mv) sums in the same order. Several
 * panels are read at once, each its own stream, for more chains in flight.
 * x86 with GCC or Clang, AVX-512F only: callers check the CPU.
 */
#ifndef CRNN_MV_PANELS_H
#define CRNN_MV_PANELS_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#include <stddef.h>

#include "rgemm.h"  /* RGEMM_NR */

#ifndef AVX512
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

/* out[p] = a @ (panel p).T + c0[p] for NP (1 to 4) panels, panel p at
 * Wp + p * pstride, K lines of 16 floats each, on a cache line. */
static inline __attribute__((always_inline)) AVX512 void
mv_panels_ps16(const int NP, ptrdiff_t K, const float *a, const float *Wp, ptrdiff_t pstride, const __m512 *c0,
               __m512 *out)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        acc[p][0] = c0[p];
        acc[p][1] = acc[p][2] = acc[p][3] = _mm512_setzero_ps();
    }
    ptrdiff_t k = 0;
    for (; k + 4 <= K; k += 4)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const __m512 ak = _mm512_set1_ps(a[k + q]);
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++)
                acc[p][q] = _mm512_fmadd_ps(ak, _mm512_load_ps(Wp + p * pstride + (k + q) * RGEMM_NR), acc[p][q]);
        }
    for (int q = 0; k < K; k++, q++) {
        const __m512 ak = _mm512_set1_ps(a[k]);
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++)
            acc[p][q] = _mm512_fmadd_ps(ak, _mm512_load_ps(Wp + p * pstride + k * RGEMM_NR), acc[p][q]);
    }
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++)
        out[p] = _mm512_add_ps(_mm512_add_ps(acc[p][0], acc[p][1]), _mm512_add_ps(acc[p][2], acc[p][3]));
}

#endif /* x86 */
#endif /* CRNN_MV_PANELS_H */
