/* test_vmath.c -- accuracy of src/vmath.c against long double libm.
 *
 *     make -C src test      builds and runs this next to test_core
 *
 * For sigmoid and tanh, float and double, on every path this CPU has
 * (AVX-512F, AVX2/FMA, scalar libm; selected with crnn_vmath_limit): a
 * sweep of bit patterns over [-120, 120] (float: every 1009th float; double:
 * ~350k points over [-800, 800]) that includes tiny |x| down to the
 * subnormals, every length 0..20 (the masked tail; also with a bias, which
 * must give the bits of adding it first), and the special values.
 * Error in ulp of the correctly rounded result (subnormal results: in units
 * of the smallest subnormal). Fails above MAX_ULP or on a wrong special value.
 * Where AVX-512 runs, also that it gives the AVX2 kernels' bits.
 * Exit status 0 iff every check passed.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"

static const double MAX_ULP = 4.0;

static long double sigmoid_ref(long double x) { return 1.0L / (1.0L + expl(-x)); }

/* |got - want| in ulp of want rounded to the dtype (mant_bits incl. hidden bit). */
static double ulp_err(long double got, long double want, int mant_bits, int min_exp)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got) ? 0 : INFINITY;
    if (got == want)
        return 0;
    int e;
    frexpl(want, &e);                       /* want = m 2^e, 0.5 <= |m| < 1 */
    if (e < min_exp)
        e = min_exp;                        /* subnormal: fixed spacing */
    const long double ulp = ldexpl(1.0L, e - mant_bits);
    return (double)(fabsl(got - want) / ulp);
}

typedef void (*vf32)(ptrdiff_t, const float *, const float *, float *);
typedef void (*vf64)(ptrdiff_t, const double *, const double *, double *);

enum { CHUNK = 4096 };

static double sweep_f32(vf32 f, long double (*ref)(long double), double *worst_x)
{
    static float in[CHUNK], out[CHUNK];
    double worst = 0;
    int n = 0;
    /* every 1009th bit pattern of non-negative floats up to 120, both signs */
    for (uint32_t bits = 0; ; bits += 1009) {
        float x;
        memcpy(&x, &bits, sizeof x);
        if (x > 120.0f)
            break;
        in[n++] = x;
        in[n++] = -x;
        if (n == CHUNK) {
            f(n, in, NULL, out);
            for (int k = 0; k < n; k++) {
                double u = ulp_err(out[k], ref(in[k]), FLT_MANT_DIG, FLT_MIN_EXP);
                if (u > worst) {
                    worst = u;
                    *worst_x = in[k];
                }
            }
            n = 0;
        }
    }
    return worst;
}

static double sweep_f64(vf64 f, long double (*ref)(long double), double *worst_x)
{
    static double in[CHUNK], out[CHUNK];
    double worst = 0;
    int n = 0;
    /* geometric sweep of magnitudes from 1e-320 to 800 with a jitter in the
     * low bits, both signs: about 350k points */
    for (uint64_t bits = 0x0000000000000100ull; ; bits += 0x0000300000001235ull) {
        double x;
        memcpy(&x, &bits, sizeof x);
        if (x > 800.0)
            break;
        in[n++] = x;
        in[n++] = -x;
        if (n == CHUNK) {
            f(n, in, NULL, out);
            for (int k = 0; k < n; k++) {
                double u = ulp_err(out[k], ref(in[k]), DBL_MANT_DIG, DBL_MIN_EXP);
                if (u > worst) {
                    worst = u;
                    *worst_x = in[k];
                }
            }
            n = 0;
        }
    }
    return worst;
}

static int ok_all = 1;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL vmath %s\n", what);
        ok_all = 0;
    }
}

/* Specials and the masked tail: every length 0..20, out of place and in place. */
static void specials(void)
{
    const float inf = INFINITY;
    float x[6] = { NAN, inf, -inf, 0.0f, -0.0f, 1e-30f }, y[6];
    crnn_vsigmoid_f32(6, x, NULL, y);
    check(isnan(y[0]) && y[1] == 1.0f && y[2] == 0.0f && y[3] == 0.5f && y[4] == 0.5f,
          "sigmoid_f32 specials");
    crnn_vtanh_f32(6, x, NULL, y);
    check(isnan(y[0]) && y[1] == 1.0f && y[2] == -1.0f && y[3] == 0.0f && !signbit(y[3])
          && y[4] == 0.0f && signbit(y[4]) && y[5] == 1e-30f, "tanh_f32 specials");
    double xd[6] = { NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e-300 }, yd[6];
    crnn_vsigmoid_f64(6, xd, NULL, yd);
    check(isnan(yd[0]) && yd[1] == 1.0 && yd[2] == 0.0 && yd[3] == 0.5 && yd[4] == 0.5,
          "sigmoid_f64 specials");
    crnn_vtanh_f64(6, xd, NULL, yd);
    check(isnan(yd[0]) && yd[1] == 1.0 && yd[2] == -1.0 && yd[3] == 0.0 && !signbit(yd[3])
          && yd[4] == 0.0 && signbit(yd[4]) && yd[5] == 1e-300, "tanh_f64 specials");

    for (int n = 0; n <= 20; n++) {
        float a[24], b[24];
        double c[24], e[24];
        for (int k = 0; k < 24; k++) {
            a[k] = (float)(k - 10) * 0.37f;
            b[k] = -7.0f;  /* sentinel: past n must stay untouched */
            c[k] = (k - 10) * 0.37;
            e[k] = -7.0;
        }
        crnn_vtanh_f32(n, a, NULL, b);
        crnn_vtanh_f64(n, c, NULL, e);
        int ok = 1;
        for (int k = 0; k < 24; k++) {
            ok &= k < n ? ulp_err(b[k], tanhl(a[k]), FLT_MANT_DIG, FLT_MIN_EXP) <= MAX_ULP : b[k] == -7.0f;
            ok &= k < n ? ulp_err(e[k], tanhl(c[k]), DBL_MANT_DIG, DBL_MIN_EXP) <= MAX_ULP : e[k] == -7.0;
        }
        crnn_vsigmoid_f32(n, a, NULL, a);  /* in place */
        for (int k = 0; k < 24; k++)
            ok &= k < n ? ulp_err(a[k], sigmoid_ref((float)(k - 10) * 0.37f), FLT_MANT_DIG, FLT_MIN_EXP) <= MAX_ULP
                        : a[k] == (float)(k - 10) * 0.37f;
        check(ok, "tail lengths 0..20");

        /* with a bias: the same bits as adding it first (out of place and in place) */
        float x32[24], b32[24], sum32[24], want32[24], got32[24];
        double x64[24], b64[24], sum64[24], want64[24], got64[24];
        for (int k = 0; k < 24; k++) {
            x32[k] = (float)(k - 10) * 0.37f;
            b32[k] = 0.3f - (float)k * 0.11f;
            sum32[k] = x32[k] + b32[k];
            x64[k] = (k - 10) * 0.37;
            b64[k] = 0.3 - k * 0.11;
            sum64[k] = x64[k] + b64[k];
        }
        const vf32 f32[2] = { crnn_vsigmoid_f32, crnn_vtanh_f32 };
        const vf64 f64[2] = { crnn_vsigmoid_f64, crnn_vtanh_f64 };
        for (int i = 0; i < 2; i++) {
            for (int k = 0; k < 24; k++) {
                want32[k] = got32[k] = -7.0f;
                want64[k] = got64[k] = -7.0;
            }
            f32[i](n, sum32, NULL, want32);
            f32[i](n, x32, b32, got32);
            f64[i](n, sum64, NULL, want64);
            f64[i](n, x64, b64, got64);
            ok = memcmp(want32, got32, sizeof got32) == 0 && memcmp(want64, got64, sizeof got64) == 0;
            memcpy(got32, x32, sizeof got32);
            memcpy(got64, x64, sizeof got64);
            f32[i](n, got32, b32, got32);
            f64[i](n, got64, b64, got64);
            for (int k = n; k < 24; k++) {
                want32[k] = x32[k];
                want64[k] = x64[k];
            }
            ok &= memcmp(want32, got32, sizeof got32) == 0 && memcmp(want64, got64, sizeof got64) == 0;
            check(ok, "bias added on the way in, lengths 0..20");
        }
    }
}

/* The AVX-512 kernels are the AVX2 ones on wider vectors: the same bits for
 * every 1031st float bit pattern (NaNs, infinities, subnormals, both signs)
 * and 4M scattered double bit patterns, odd lengths for the masked tails. */
static int same_bits_avx512_avx2(void)
{
    static float in[CHUNK], a[CHUNK], b[CHUNK];
    static double ind[CHUNK], ad[CHUNK], bd[CHUNK];
    const vf32 f32[2] = { crnn_vsigmoid_f32, crnn_vtanh_f32 };
    const vf64 f64[2] = { crnn_vsigmoid_f64, crnn_vtanh_f64 };
    int same = 1;
    uint32_t bits = 0;
    uint64_t bits64 = 0;
    for (int round = 0; round < (1 << 22) / CHUNK; round++) {
        const int n = CHUNK - 1 - round % 16;
        for (int k = 0; k < n; k++, bits += 1031, bits64 += 0x0003c0ffee012345ull) {
            memcpy(&in[k], &bits, sizeof bits);
            memcpy(&ind[k], &bits64, sizeof bits64);
        }
        for (int i = 0; i < 2; i++) {
            crnn_vmath_limit(CRNN_VMATH_AVX512);
            f32[i](n, in, NULL, a);
            f64[i](n, ind, NULL, ad);
            crnn_vmath_limit(CRNN_VMATH_AVX2);
            f32[i](n, in, NULL, b);
            f64[i](n, ind, NULL, bd);
            same &= memcmp(a, b, (size_t)n * sizeof *a) == 0 && memcmp(ad, bd, (size_t)n * sizeof *ad) == 0;
        }
    }
    return same;
}

int main(void)
{
    static const char *const path_name[] = { "scalar (libm)", "AVX2/FMA", "AVX-512F" };
    struct { const char *name; vf32 f32; vf64 f64; long double (*ref)(long double); } fns[2] = {
        { "sigmoid", crnn_vsigmoid_f32, crnn_vsigmoid_f64, sigmoid_ref },
        { "tanh", crnn_vtanh_f32, crnn_vtanh_f64, tanhl },
    };
    /* every path this CPU has, best first: the one the library takes, then
     * each fallback */
    const int best = crnn_vmath_path();
    printf("vmath: this CPU takes the %s path\n", path_name[best]);
    for (int path = best; path >= CRNN_VMATH_SCALAR; path--) {
        if (crnn_vmath_limit(path) != path) {
            printf("FAIL vmath cannot select the %s path\n", path_name[path]);
            ok_all = 0;
            continue;
        }
        specials();
        for (int i = 0; i < 2; i++) {
            double wx32 = 0, wx64 = 0;
            const double u32 = sweep_f32(fns[i].f32, fns[i].ref, &wx32);
            const double u64 = sweep_f64(fns[i].f64, fns[i].ref, &wx64);
            const int ok = u32 <= MAX_ULP && u64 <= MAX_ULP;
            printf("%-4s vmath %-13s %-7s max error %.2f ulp (f32, at %.9g), %.2f ulp (f64, at %.17g)\n",
                   ok ? "ok" : "FAIL", path_name[path], fns[i].name, u32, wx32, u64, wx64);
            ok_all &= ok;
        }
    }
    if (best == CRNN_VMATH_AVX512) {
        const int same = same_bits_avx512_avx2();
        printf("%-4s vmath AVX-512F and AVX2/FMA give the same bits\n", same ? "ok" : "FAIL");
        ok_all &= same;
    }
    if (crnn_vmath_limit(best) != best)
        ok_all = 0;
    printf("%s: vmath\n", ok_all ? "all ok" : "FAILED");
    return ok_all ? 0 : 1;
}
