/* vmath_ps16.h -- sigmoid and tanh of one AVX-512 register of 16 floats. Internal.
 *
 * The lane kernels behind vmath.c's AVX-512 float path (the algorithm and
 * its accuracy: vmath.c), here so that a kernel which keeps its values in
 * registers (row_step.c) applies exactly the same functions, bit for bit,
 * as the array calls would. x86 with GCC or Clang only; callers check
 * crnn_vmath_path() == CRNN_VMATH_AVX512 before running them.
 */
#ifndef CRNN_VMATH_PS16_H
#define CRNN_VMATH_PS16_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#include <stdint.h>

#ifndef AVX512
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

static inline AVX512 __m512 exp_nonpos_ps16(__m512 y)
{
    y = _mm512_max_ps(y, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), y);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* sign of x or-ed into v (v >= 0) */
static inline AVX512 __m512 copysign_ps16(__m512 v, __m512 x)
{
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), sign));
}

/* x where x is NaN, else v */
static inline AVX512 __m512 keep_nan_ps16(__m512 v, __m512 x)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), v, x);
}

static inline AVX512 __m512 sigmoid_ps16(__m512 x)
{
    const __m512 e = exp_nonpos_ps16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ),
                                            e, _mm512_set1_ps(1.0f));
    return keep_nan_ps16(_mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), x);
}

static inline AVX512 __m512 tanh_ps16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 a = _mm512_abs_ps(x);
    /* a < 0.625: odd polynomial (Cephes tanhf) */
    const __m512 s = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), a, a);
    /* a >= 0.625: (1 - e) / (1 + e), e = exp(-2a) */
    const __m512 e = exp_nonpos_ps16(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    const __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    const __m512 v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ),
                                          big, small);
    return keep_nan_ps16(copysign_ps16(v, x), x);
}

#endif /* x86 */
#endif /* CRNN_VMATH_PS16_H */
