/* vmath.c -- sigmoid and tanh over arrays; see vmath.h for the contract.
 *
 * The SIMD kernels (AVX2/FMA: 8 floats or 4 doubles a vector; AVX-512F: 16
 * or 8) compute, lane by lane (a = |x|):
 *     exp(y), y <= 0:  y = n ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 split in
 *                      two so n*ln2_hi is exact), exp(r) by a polynomial
 *                      (float: Cephes expf, degree 7; double: Taylor to r^13,
 *                      truncation < 0.05 ulp), times 2^n applied as
 *                      2^(n/2) * 2^(n - n/2) so that results below 2^-126
 *                      (2^-1022) round once into the subnormals, as libm's do.
 *     sigmoid(x) = 1 / (1 + e)  for x >= 0,   e / (1 + e)  for x < 0,
 *                  with e = exp(-a) <= 1: nothing overflows, no cancellation.
 *     tanh(a)    = a + a^3 P(a^2) (float) or a + a^3 P(a^2)/Q(a^2) (double)
 *                  for a < 0.625 (Cephes tanhf / tanh: keeps relative accuracy
 *                  down to the subnormals, where it returns x), and
 *                  (1 - e) / (1 + e) with e = exp(-2a) <= 0.29 above; then
 *                  the sign of x is or-ed in (tanh is odd; -0 stays -0).
 * Both branches are computed and blended (branch-free); NaN lanes are put
 * back at the end (the clamps below would otherwise swallow them).
 * The tail (n modulo the width) goes through the same kernel with masked
 * loads and stores, so an element's result never depends on its position.
 * The AVX-512 kernels are the AVX2 ones with twice the lanes, operation for
 * operation, and give the same bits (src/test/test_vmath.c checks it).
 */
#include "vmath.h"
#include "common.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define VMATH_X86 1
#include <immintrin.h>
#define AVX2_FMA __attribute__((target("avx2,fma")))
#endif

/* ===== scalar: libm (portable fallback) ================================== */

/* in[k] + bias[k], or in[k] without a bias */
#define BIASED(in, bias, k) ((bias) != NULL ? (in)[k] + (bias)[k] : (in)[k])

static void vsigmoid_scalar_f32(ptrdiff_t n, const float *in, const float *bias, float *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = sigmoid_f32(BIASED(in, bias, k));
}

static void vtanh_scalar_f32(ptrdiff_t n, const float *in, const float *bias, float *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = tanhf(BIASED(in, bias, k));
}

static void vsigmoid_scalar_f64(ptrdiff_t n, const double *in, const double *bias, double *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = sigmoid_f64(BIASED(in, bias, k));
}

static void vtanh_scalar_f64(ptrdiff_t n, const double *in, const double *bias, double *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = tanh(BIASED(in, bias, k));
}

#ifdef VMATH_X86

/* ===== AVX2/FMA, float: 8 lanes ========================================== */

/* exp(y) for y <= 0 or -inf (NaN lanes are the caller's). */
static AVX2_FMA __m256 exp_nonpos_ps(__m256 y)
{
    /* below -104, exp(y) < 2^-150 rounds to 0; the clamp keeps n in range */
    y = _mm256_max_ps(y, _mm256_set1_ps(-104.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), y);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    /* times 2^n, n in [-150, 0], as two normal powers of two */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static AVX2_FMA __m256 abs_ps(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* x where x is NaN, else v */
static AVX2_FMA __m256 keep_nan_ps(__m256 v, __m256 x)
{
    return _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static AVX2_FMA __m256 sigmoid_ps(__m256 x)
{
    const __m256 e = exp_nonpos_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs_ps(x)));
    const __m256 num = _mm256_blendv_ps(e, _mm256_set1_ps(1.0f),
                                        _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return keep_nan_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), x);
}

static AVX2_FMA __m256 tanh_ps(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    const __m256 a = abs_ps(x);
    /* a < 0.625: odd polynomial (Cephes tanhf) */
    const __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), a, a);
    /* a >= 0.625: (1 - e) / (1 + e), e = exp(-2a) */
    const __m256 e = exp_nonpos_ps(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    const __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    /* tanh(|x|), then the sign of x (also of -0) */
    __m256 v = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    v = _mm256_or_ps(v, _mm256_and_ps(x, sign));
    return keep_nan_ps(v, x);
}

/* Lanes [0, rem) of a tail. */
static AVX2_FMA __m256i tail_mask_ps(ptrdiff_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define VMATH_LOOP_PS(name, fn)                                                               \
    static AVX2_FMA void name(ptrdiff_t n, const float *in, const float *bias, float *out)    \
    {                                                                                         \
        ptrdiff_t k = 0;                                                                      \
        for (; k + 8 <= n; k += 8) {                                                          \
            __m256 x = _mm256_loadu_ps(in + k);                                               \
            if (bias != NULL)                                                                 \
                x = _mm256_add_ps(x, _mm256_loadu_ps(bias + k));                              \
            _mm256_storeu_ps(out + k, fn(x));                                                 \
        }                                                                                     \
        if (k < n) {                                                                          \
            const __m256i m = tail_mask_ps(n - k);                                            \
            __m256 x = _mm256_maskload_ps(in + k, m);                                         \
            if (bias != NULL)                                                                 \
                x = _mm256_add_ps(x, _mm256_maskload_ps(bias + k, m));                        \
            _mm256_maskstore_ps(out + k, m, fn(x));                                           \
        }                                                                                     \
    }
VMATH_LOOP_PS(vsigmoid_avx2_f32, sigmoid_ps)
VMATH_LOOP_PS(vtanh_avx2_f32, tanh_ps)

/* ===== AVX2/FMA, double: 4 lanes ========================================= */

/* 2^k for integral k in [-1022, 1023]: k's bits via the 1.5*2^52 trick. */
static AVX2_FMA __m256d pow2i_pd(__m256d k)
{
    __m256i b = _mm256_castpd_si256(_mm256_add_pd(k, _mm256_set1_pd(6755399441055744.0)));
    b = _mm256_add_epi64(b, _mm256_set1_epi64x(1023));
    return _mm256_castsi256_pd(_mm256_slli_epi64(b, 52));
}

/* exp(r), |r| <= ln2/2, in double: the Taylor series sum r^k / k!, k = 0..13 */
static const double exp_inv_fact[12] = {
    1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
    1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
    1.0 / 24.0, 1.0 / 6.0, 0.5 };  /* 1/13! .. 1/2! */

/* exp(y) for y <= 0 or -inf (NaN lanes are the caller's). */
static AVX2_FMA __m256d exp_nonpos_pd(__m256d y)
{
    /* below -746, exp(y) < 2^-1076 rounds to 0 */
    y = _mm256_max_pd(y, _mm256_set1_pd(-746.0));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(y, _mm256_set1_pd(1.4426950408889634074)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93145751953125e-1), y);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.42860682030941723212e-6), r);
    __m256d p = _mm256_set1_pd(exp_inv_fact[0]);
    for (int k = 1; k < 12; k++)
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(exp_inv_fact[k]));
    p = _mm256_add_pd(_mm256_fmadd_pd(p, _mm256_mul_pd(r, r), r), _mm256_set1_pd(1.0));
    /* times 2^n, n in [-1076, 0], as two normal powers of two */
    const __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));
    const __m256d n2 = _mm256_sub_pd(n, n1);
    return _mm256_mul_pd(_mm256_mul_pd(p, pow2i_pd(n1)), pow2i_pd(n2));
}

static AVX2_FMA __m256d abs_pd(__m256d x)
{
    return _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
}

static AVX2_FMA __m256d keep_nan_pd(__m256d v, __m256d x)
{
    return _mm256_blendv_pd(v, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

static AVX2_FMA __m256d sigmoid_pd(__m256d x)
{
    const __m256d e = exp_nonpos_pd(_mm256_sub_pd(_mm256_setzero_pd(), abs_pd(x)));
    const __m256d num = _mm256_blendv_pd(e, _mm256_set1_pd(1.0),
                                         _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GE_OQ));
    return keep_nan_pd(_mm256_div_pd(num, _mm256_add_pd(_mm256_set1_pd(1.0), e)), x);
}

static AVX2_FMA __m256d tanh_pd(__m256d x)
{
    const __m256d one = _mm256_set1_pd(1.0), sign = _mm256_set1_pd(-0.0);
    const __m256d a = abs_pd(x);
    /* a < 0.625: x + x z P(z) / Q(z), z = x^2 (Cephes tanh) */
    const __m256d z = _mm256_mul_pd(x, x);
    __m256d P = _mm256_set1_pd(-9.64399179425052238628e-1);
    P = _mm256_fmadd_pd(P, z, _mm256_set1_pd(-9.92877231001918586564e1));
    P = _mm256_fmadd_pd(P, z, _mm256_set1_pd(-1.61468768441708447952e3));
    __m256d Q = _mm256_add_pd(z, _mm256_set1_pd(1.12811678491632931402e2));
    Q = _mm256_fmadd_pd(Q, z, _mm256_set1_pd(2.23548839060100448583e3));
    Q = _mm256_fmadd_pd(Q, z, _mm256_set1_pd(4.84406305325125486048e3));
    const __m256d small = _mm256_fmadd_pd(_mm256_div_pd(_mm256_mul_pd(z, P), Q), a, a);
    /* a >= 0.625: (1 - e) / (1 + e), e = exp(-2a) */
    const __m256d e = exp_nonpos_pd(_mm256_mul_pd(a, _mm256_set1_pd(-2.0)));
    const __m256d big = _mm256_div_pd(_mm256_sub_pd(one, e), _mm256_add_pd(one, e));
    /* tanh(|x|), then the sign of x (also of -0) */
    __m256d v = _mm256_blendv_pd(big, small, _mm256_cmp_pd(a, _mm256_set1_pd(0.625), _CMP_LT_OQ));
    v = _mm256_or_pd(v, _mm256_and_pd(x, sign));
    return keep_nan_pd(v, x);
}

static AVX2_FMA __m256i tail_mask_pd(ptrdiff_t rem)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)rem), _mm256_setr_epi64x(0, 1, 2, 3));
}

#define VMATH_LOOP_PD(name, fn)                                                               \
    static AVX2_FMA void name(ptrdiff_t n, const double *in, const double *bias, double *out) \
    {                                                                                         \
        ptrdiff_t k = 0;                                                                      \
        for (; k + 4 <= n; k += 4) {                                                          \
            __m256d x = _mm256_loadu_pd(in + k);                                              \
            if (bias != NULL)                                                                 \
                x = _mm256_add_pd(x, _mm256_loadu_pd(bias + k));                              \
            _mm256_storeu_pd(out + k, fn(x));                                                 \
        }                                                                                     \
        if (k < n) {                                                                          \
            const __m256i m = tail_mask_pd(n - k);                                            \
            __m256d x = _mm256_maskload_pd(in + k, m);                                        \
            if (bias != NULL)                                                                 \
                x = _mm256_add_pd(x, _mm256_maskload_pd(bias + k, m));                        \
            _mm256_maskstore_pd(out + k, m, fn(x));                                           \
        }                                                                                     \
    }
VMATH_LOOP_PD(vsigmoid_avx2_f64, sigmoid_pd)
VMATH_LOOP_PD(vtanh_avx2_f64, tanh_pd)

/* ===== AVX-512F, float: 16 lanes ========================================= *
 * The AVX2 kernels above, operation for operation, so both paths give the
 * same bits; AVX-512 only shortens them: 2^n is applied by one vscalefps
 * (p * 2^n rounded once, as the two-step product above, whose first factor
 * is exact), and selections use mask registers. About 2x the AVX2 kernels'
 * throughput in float on an Intel Xeon (0.26 vs 0.54 ns a sigmoid, 0.35 vs
 * 0.65 ns a tanh), 2x and 1.5x in double (tanh's two divisions).
 * A cost outside these functions: in a step whose other work is all 256-bit
 * (B <= 2, where the recurrent product stays on AVX2, see rgemm.c), any
 * 512-bit code slows the rest of the step, as the AVX-512 frequency licence
 * would. Sustained C loops (1 thread): a B = 1, H = 128 GRU step 4% slower
 * with these kernels (12% with the AVX2 ones plus one 16-lane call a step),
 * a B = 1 LSTM step 2% slower at H = 128 but 7% faster at H = 64, and 11-24%
 * faster at B >= 4, where rgemm.c already runs zmm. Keeping B <= 2 steps
 * on AVX2 measured mixed through the layers (small_seq from 1% slower to
 * 10% faster, stream 2% faster to 8% slower), so every step takes the
 * widest kernels. */

#include "vmath_ps16.h"  /* exp_nonpos_ps16 .. tanh_ps16: the lane kernels, shared with row_step.c */

#define VMATH_LOOP_PS16(name, fn)                                                             \
    static AVX512 void name(ptrdiff_t n, const float *in, const float *bias, float *out)      \
    {                                                                                         \
        ptrdiff_t k = 0;                                                                      \
        for (; k + 16 <= n; k += 16) {                                                        \
            __m512 x = _mm512_loadu_ps(in + k);                                               \
            if (bias != NULL)                                                                 \
                x = _mm512_add_ps(x, _mm512_loadu_ps(bias + k));                              \
            _mm512_storeu_ps(out + k, fn(x));                                                 \
        }                                                                                     \
        if (k < n) {                                                                          \
            const __mmask16 m = (__mmask16)((1u << (n - k)) - 1);                             \
            __m512 x = _mm512_maskz_loadu_ps(m, in + k);                                      \
            if (bias != NULL)                                                                 \
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias + k));                     \
            _mm512_mask_storeu_ps(out + k, m, fn(x));                                         \
        }                                                                                     \
    }
VMATH_LOOP_PS16(vsigmoid_avx512_f32, sigmoid_ps16)
VMATH_LOOP_PS16(vtanh_avx512_f32, tanh_ps16)

/* ===== AVX-512F, double: 8 lanes ========================================= */

static AVX512 __m512d exp_nonpos_pd8(__m512d y)
{
    y = _mm512_max_pd(y, _mm512_set1_pd(-746.0));
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(y, _mm512_set1_pd(1.4426950408889634074)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93145751953125e-1), y);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.42860682030941723212e-6), r);
    __m512d p = _mm512_set1_pd(exp_inv_fact[0]);
    for (int k = 1; k < 12; k++)
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(exp_inv_fact[k]));
    p = _mm512_add_pd(_mm512_fmadd_pd(p, _mm512_mul_pd(r, r), r), _mm512_set1_pd(1.0));
    return _mm512_scalef_pd(p, n);
}

static AVX512 __m512d copysign_pd8(__m512d v, __m512d x)
{
    const __m512i sign = _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(INT64_MIN));
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(v), sign));
}

static AVX512 __m512d keep_nan_pd8(__m512d v, __m512d x)
{
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), v, x);
}

static AVX512 __m512d sigmoid_pd8(__m512d x)
{
    const __m512d e = exp_nonpos_pd8(_mm512_sub_pd(_mm512_setzero_pd(), _mm512_abs_pd(x)));
    const __m512d num = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_GE_OQ),
                                             e, _mm512_set1_pd(1.0));
    return keep_nan_pd8(_mm512_div_pd(num, _mm512_add_pd(_mm512_set1_pd(1.0), e)), x);
}

static AVX512 __m512d tanh_pd8(__m512d x)
{
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512d a = _mm512_abs_pd(x);
    /* a < 0.625: x + x z P(z) / Q(z), z = x^2 (Cephes tanh) */
    const __m512d z = _mm512_mul_pd(x, x);
    __m512d P = _mm512_set1_pd(-9.64399179425052238628e-1);
    P = _mm512_fmadd_pd(P, z, _mm512_set1_pd(-9.92877231001918586564e1));
    P = _mm512_fmadd_pd(P, z, _mm512_set1_pd(-1.61468768441708447952e3));
    __m512d Q = _mm512_add_pd(z, _mm512_set1_pd(1.12811678491632931402e2));
    Q = _mm512_fmadd_pd(Q, z, _mm512_set1_pd(2.23548839060100448583e3));
    Q = _mm512_fmadd_pd(Q, z, _mm512_set1_pd(4.84406305325125486048e3));
    const __m512d small = _mm512_fmadd_pd(_mm512_div_pd(_mm512_mul_pd(z, P), Q), a, a);
    /* a >= 0.625: (1 - e) / (1 + e), e = exp(-2a) */
    const __m512d e = exp_nonpos_pd8(_mm512_mul_pd(a, _mm512_set1_pd(-2.0)));
    const __m512d big = _mm512_div_pd(_mm512_sub_pd(one, e), _mm512_add_pd(one, e));
    const __m512d v = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, _mm512_set1_pd(0.625), _CMP_LT_OQ),
                                           big, small);
    return keep_nan_pd8(copysign_pd8(v, x), x);
}

#define VMATH_LOOP_PD8(name, fn)                                                              \
    static AVX512 void name(ptrdiff_t n, const double *in, const double *bias, double *out)   \
    {                                                                                         \
        ptrdiff_t k = 0;                                                                      \
        for (; k + 8 <= n; k += 8) {                                                          \
            __m512d x = _mm512_loadu_pd(in + k);                                              \
            if (bias != NULL)                                                                 \
                x = _mm512_add_pd(x, _mm512_loadu_pd(bias + k));                              \
            _mm512_storeu_pd(out + k, fn(x));                                                 \
        }                                                                                     \
        if (k < n) {                                                                          \
            const __mmask8 m = (__mmask8)((1u << (n - k)) - 1);                               \
            __m512d x = _mm512_maskz_loadu_pd(m, in + k);                                     \
            if (bias != NULL)                                                                 \
                x = _mm512_add_pd(x, _mm512_maskz_loadu_pd(m, bias + k));                     \
            _mm512_mask_storeu_pd(out + k, m, fn(x));                                         \
        }                                                                                     \
    }
VMATH_LOOP_PD8(vsigmoid_avx512_f64, sigmoid_pd8)
VMATH_LOOP_PD8(vtanh_avx512_f64, tanh_pd8)

#endif /* VMATH_X86 */

/* ===== dispatch ========================================================== */

/* The best path this CPU has. libgcc fills the CPU model in a constructor;
 * reading it is a load. */
static int cpu_path(void)
{
#ifdef VMATH_X86
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return CRNN_VMATH_SCALAR;
    return __builtin_cpu_supports("avx512f") ? CRNN_VMATH_AVX512 : CRNN_VMATH_AVX2;
#else
    return CRNN_VMATH_SCALAR;
#endif
}

/* The path the calls take, -1 until the first call. A benign race: every
 * thread stores the same value (crnn_vmath_limit aside, which is for tests). */
static int vmath_path = -1;

int crnn_vmath_path(void)
{
    if (vmath_path < 0)
        vmath_path = cpu_path();
    return vmath_path;
}

int crnn_vmath_limit(int cap)
{
    const int best = cpu_path();
    vmath_path = cap < best ? cap : best;
    return vmath_path;
}

int crnn_vmath_simd(void)
{
    return cpu_path() >= CRNN_VMATH_AVX2;
}

#ifdef VMATH_X86
#define VMATH_DISPATCH(name, type, avx512, avx2, scalar)                                      \
    void name(ptrdiff_t n, const type *in, const type *bias, type *out)                       \
    {                                                                                         \
        switch (crnn_vmath_path()) {                                                          \
        case CRNN_VMATH_AVX512: avx512(n, in, bias, out); break;                              \
        case CRNN_VMATH_AVX2: avx2(n, in, bias, out); break;                                  \
        default: scalar(n, in, bias, out); break;                                             \
        }                                                                                     \
    }
#else
#define VMATH_DISPATCH(name, type, avx512, avx2, scalar)                                      \
    void name(ptrdiff_t n, const type *in, const type *bias, type *out)                       \
    {                                                                                         \
        scalar(n, in, bias, out);                                                             \
    }
#endif

VMATH_DISPATCH(crnn_vsigmoid_f32, float, vsigmoid_avx512_f32, vsigmoid_avx2_f32, vsigmoid_scalar_f32)
VMATH_DISPATCH(crnn_vtanh_f32, float, vtanh_avx512_f32, vtanh_avx2_f32, vtanh_scalar_f32)
VMATH_DISPATCH(crnn_vsigmoid_f64, double, vsigmoid_avx512_f64, vsigmoid_avx2_f64, vsigmoid_scalar_f64)
VMATH_DISPATCH(crnn_vtanh_f64, double, vtanh_avx512_f64, vtanh_avx2_f64, vtanh_scalar_f64)
