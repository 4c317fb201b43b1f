/* vmath.h -- array versions of the activations the cells need. Internal.
 *
 *     out[k] = sigmoid(x) = 1 / (1 + exp(-x))      x = in[k] + bias[k],  k = 0 .. n-1
 *     out[k] = tanh(x)
 * bias may be NULL (x = in[k]).
 *
 * The pointwise pass of every cell calls these on whole gate blocks (H
 * contiguous values) instead of a libm function per element: a scalar tanhf
 * costs 15-21 ns (shared/BLAS.md), an AVX2 lane a small fraction of that.
 * The bias is added on the way in, which saves the cells a pass over the
 * gates (the sum is rounded as `in[k] + bias[k]` would be).
 *
 * Dispatch, checked at run time with __builtin_cpu_supports (the library
 * itself is built without -mavx2/-mavx512f and runs anywhere): on x86 with
 * AVX-512F a 16-wide (float) / 8-wide (double) kernel; with AVX2 and FMA an
 * 8-wide / 4-wide one, the same algorithm (the two give the same bits);
 * elsewhere the libm-based scalar functions of common.h. The SIMD kernels do
 * a tail with masked loads and stores.
 *
 * Accuracy (no -ffast-math): every path stays within a few ulp of the
 * correctly rounded result over the whole range, tanh keeps its relative
 * accuracy as x -> 0 (tanh(x) = x for tiny x), sigmoid(-large) underflows
 * through the subnormals like libm's exp, sigmoid(+-inf) = 1, 0,
 * tanh(+-inf) = +-1, NaN in gives NaN out. Measured on every path the CPU
 * has by src/test/test_vmath.c.
 *
 * in == out is allowed (in place); other overlaps, of bias too, are not.
 */
#ifndef CRNN_VMATH_H
#define CRNN_VMATH_H

#include <stddef.h>

void crnn_vsigmoid_f32(ptrdiff_t n, const float *in, const float *bias, float *out);
void crnn_vtanh_f32(ptrdiff_t n, const float *in, const float *bias, float *out);
void crnn_vsigmoid_f64(ptrdiff_t n, const double *in, const double *bias, double *out);
void crnn_vtanh_f64(ptrdiff_t n, const double *in, const double *bias, double *out);

/* The kernels, slowest first. */
enum { CRNN_VMATH_SCALAR = 0, CRNN_VMATH_AVX2 = 1, CRNN_VMATH_AVX512 = 2 };

/* The path the calls above take on this machine. */
int crnn_vmath_path(void);

/* For tests: take at most path `cap` from now on (or the best this CPU has,
 * if lower); returns the path now taken. Not safe while other threads call
 * the functions above. */
int crnn_vmath_limit(int cap);

/* 1 when this CPU has AVX2 and FMA (what the other SIMD kernels, rgemm.c,
 * also need), whatever crnn_vmath_limit says. */
int crnn_vmath_simd(void);

#endif /* CRNN_VMATH_H */
