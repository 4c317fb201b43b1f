/* vmath.c -- sigmoid and tanh over arrays; see vmath.h for the contract.
 *
 * The AVX2/FMA kernels compute, lane by lane (a = |x|):
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
 * The tail (n % 8, n % 4) goes through the same kernel with masked loads and
 * stores, so an element's result never depends on its position.
 */
#include "vmath.h"
#include "common.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define VMATH_X86 1
#include <immintrin.h>
#define AVX2_FMA __attribute__((target("avx2,fma")))
#endif

/* ===== scalar: libm (portable fallback) ================================== */

static void vsigmoid_scalar_f32(ptrdiff_t n, const float *in, float *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = sigmoid_f32(in[k]);
}

static void vtanh_scalar_f32(ptrdiff_t n, const float *in, float *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = tanhf(in[k]);
}

static void vsigmoid_scalar_f64(ptrdiff_t n, const double *in, double *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = sigmoid_f64(in[k]);
}

static void vtanh_scalar_f64(ptrdiff_t n, const double *in, double *out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = tanh(in[k]);
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

#define VMATH_LOOP_PS(name, fn)                                                  \
    static AVX2_FMA void name(ptrdiff_t n, const float *in, float *out)          \
    {                                                                            \
        ptrdiff_t k = 0;                                                         \
        for (; k + 8 <= n; k += 8)                                               \
            _mm256_storeu_ps(out + k, fn(_mm256_loadu_ps(in + k)));              \
        if (k < n) {                                                             \
            const __m256i m = tail_mask_ps(n - k);                               \
            _mm256_maskstore_ps(out + k, m, fn(_mm256_maskload_ps(in + k, m)));  \
        }                                                                        \
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

/* exp(y) for y <= 0 or -inf (NaN lanes are the caller's). */
static AVX2_FMA __m256d exp_nonpos_pd(__m256d y)
{
    /* below -746, exp(y) < 2^-1076 rounds to 0 */
    y = _mm256_max_pd(y, _mm256_set1_pd(-746.0));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(y, _mm256_set1_pd(1.4426950408889634074)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93145751953125e-1), y);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.42860682030941723212e-6), r);
    /* Taylor: sum r^k / k!, k = 0..13 */
    static const double inv_fact[12] = {
        1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
        1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
        1.0 / 24.0, 1.0 / 6.0, 0.5 };  /* 1/13! .. 1/2! */
    __m256d p = _mm256_set1_pd(inv_fact[0]);
    for (int k = 1; k < 12; k++)
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_fact[k]));
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

#define VMATH_LOOP_PD(name, fn)                                                  \
    static AVX2_FMA void name(ptrdiff_t n, const double *in, double *out)        \
    {                                                                            \
        ptrdiff_t k = 0;                                                         \
        for (; k + 4 <= n; k += 4)                                               \
            _mm256_storeu_pd(out + k, fn(_mm256_loadu_pd(in + k)));              \
        if (k < n) {                                                             \
            const __m256i m = tail_mask_pd(n - k);                               \
            _mm256_maskstore_pd(out + k, m, fn(_mm256_maskload_pd(in + k, m)));  \
        }                                                                        \
    }
VMATH_LOOP_PD(vsigmoid_avx2_f64, sigmoid_pd)
VMATH_LOOP_PD(vtanh_avx2_f64, tanh_pd)

int crnn_vmath_simd(void)
{
    /* libgcc fills the CPU model in a constructor; reading it is a load. */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define VMATH_DISPATCH(name, type, simd, scalar)          \
    void name(ptrdiff_t n, const type *in, type *out)     \
    {                                                     \
        if (crnn_vmath_simd())                            \
            simd(n, in, out);                             \
        else                                              \
            scalar(n, in, out);                           \
    }

#else /* not x86 with GCC/Clang: scalar only */

int crnn_vmath_simd(void) { return 0; }

#define VMATH_DISPATCH(name, type, simd, scalar)          \
    void name(ptrdiff_t n, const type *in, type *out) { scalar(n, in, out); }

#endif

VMATH_DISPATCH(crnn_vsigmoid_f32, float, vsigmoid_avx2_f32, vsigmoid_scalar_f32)
VMATH_DISPATCH(crnn_vtanh_f32, float, vtanh_avx2_f32, vtanh_scalar_f32)
VMATH_DISPATCH(crnn_vsigmoid_f64, double, vsigmoid_avx2_f64, vsigmoid_scalar_f64)
VMATH_DISPATCH(crnn_vtanh_f64, double, vtanh_avx2_f64, vtanh_scalar_f64)
