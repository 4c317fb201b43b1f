/* vmath.h -- array versions of the activations the cells need. Internal.
 *
 *     out[k] = sigmoid(in[k]) = 1 / (1 + exp(-in[k]))      k = 0 .. n-1
 *     out[k] = tanh(in[k])
 *
 * The pointwise pass of every cell calls these on whole gate blocks (H
 * contiguous values) instead of a libm function per element: a scalar tanhf
 * costs 15-21 ns (shared/BLAS.md), an AVX2 lane a small fraction of that.
 *
 * Dispatch: on x86 with AVX2 and FMA (checked at run time with
 * __builtin_cpu_supports, so the library itself is built without -mavx2 and
 * runs anywhere) an 8-wide (float) / 4-wide (double) kernel; elsewhere, and
 * for the tail, the libm-based scalar functions of common.h.
 *
 * Accuracy (no -ffast-math): both paths stay within a few ulp of the
 * correctly rounded result over the whole range, tanh keeps its relative
 * accuracy as x -> 0 (tanh(x) = x for tiny x), sigmoid(-large) underflows
 * through the subnormals like libm's exp, sigmoid(+-inf) = 1, 0,
 * tanh(+-inf) = +-1, NaN in gives NaN out. Measured by tests/test_vmath.py
 * and src/test/test_vmath.c.
 *
 * in == out is allowed (in place); other overlaps are not.
 */
#ifndef CRNN_VMATH_H
#define CRNN_VMATH_H

#include <stddef.h>

void crnn_vsigmoid_f32(ptrdiff_t n, const float *in, float *out);
void crnn_vtanh_f32(ptrdiff_t n, const float *in, float *out);
void crnn_vsigmoid_f64(ptrdiff_t n, const double *in, double *out);
void crnn_vtanh_f64(ptrdiff_t n, const double *in, double *out);

/* 1 when the calls above take the AVX2/FMA path on this machine. */
int crnn_vmath_simd(void);

#endif /* CRNN_VMATH_H */
