/* common.h -- what rnn.c, lstm.c and gru.c share. Internal, not installed.
 *
 * dtype templates: each cell file is written once over a type `real` and
 * compiles itself twice (part 3 at the end of each file), with
 *     real = float,  FN(name) = name##_f32      and
 *     real = double, FN(name) = name##_f64.
 * So FN(crnn_lstm_forward) is crnn_lstm_forward_f32 or _f64, and the
 * helpers below, which exist once per dtype under the same suffixes, are
 * called as FN(sigmoid)(x), FN(gemm)(blas, ...).
 */
#ifndef CRNN_COMMON_H
#define CRNN_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "crnn.h"
#include "parallel.h"
#include "rgemm.h"
#include "row_step.h"
#include "vmath.h"

/* ---- pointwise functions (accurate libm; no -ffast-math anywhere) ---- */

/* Logistic function. exp(-|x|) never overflows; pick the algebraically
 * equal form per sign (as crnn/reference/_sequence.py does). */
static inline float sigmoid_f32(float x)
{
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static inline double sigmoid_f64(double x)
{
    double e = exp(-fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

static inline float tanh_f32(float x) { return tanhf(x); }
static inline double tanh_f64(double x) { return tanh(x); }

/* The same over arrays, vectorised (vmath.h): what the pointwise passes use.
 * out = act(in + bias), bias may be NULL; out may be in. */
static inline void vsigmoid_f32(ptrdiff_t n, const float *in, const float *bias, float *out)
{
    crnn_vsigmoid_f32(n, in, bias, out);
}
static inline void vsigmoid_f64(ptrdiff_t n, const double *in, const double *bias, double *out)
{
    crnn_vsigmoid_f64(n, in, bias, out);
}
static inline void vtanh_f32(ptrdiff_t n, const float *in, const float *bias, float *out)
{
    crnn_vtanh_f32(n, in, bias, out);
}
static inline void vtanh_f64(ptrdiff_t n, const double *in, const double *bias, double *out)
{
    crnn_vtanh_f64(n, in, bias, out);
}

/* bias = b_ih + b_hh (n,), a NULL bias counting as zeros: the two biases
 * always enter a pre-activation together, so the per-step pass adds one. */
static inline void sum_biases_f32(float *bias, const float *b_ih, const float *b_hh, ptrdiff_t n)
{
    for (ptrdiff_t k = 0; k < n; k++)
        bias[k] = (b_ih ? b_ih[k] : 0) + (b_hh ? b_hh[k] : 0);
}

static inline void sum_biases_f64(double *bias, const double *b_ih, const double *b_hh, ptrdiff_t n)
{
    for (ptrdiff_t k = 0; k < n; k++)
        bias[k] = (b_ih ? b_ih[k] : 0) + (b_hh ? b_hh[k] : 0);
}

/* dst = src (n,); dst == src allowed (a state updated in place). */
static inline void copy_row(void *dst, const void *src, size_t bytes)
{
    if (dst != src)
        memcpy(dst, src, bytes);
}

/* ---- BLAS: the seam of blas.h, picked by dtype ---- */

static inline int blas_ok_f32(const crnn_blas *blas) { return blas != NULL && blas->sgemm != NULL; }
static inline int blas_ok_f64(const crnn_blas *blas) { return blas != NULL && blas->dgemm != NULL; }

/* C = alpha * op(A) @ op(B) + beta * C, row-major (see blas.h). */
static inline void gemm_f32(const crnn_blas *blas, crnn_trans ta, crnn_trans tb,
                            ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            float alpha, const float *A, ptrdiff_t lda,
                            const float *B, ptrdiff_t ldb,
                            float beta, float *C, ptrdiff_t ldc)
{
    blas->sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

static inline void gemm_f64(const crnn_blas *blas, crnn_trans ta, crnn_trans tb,
                            ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            double alpha, const double *A, ptrdiff_t lda,
                            const double *B, ptrdiff_t ldb,
                            double beta, double *C, ptrdiff_t ldc)
{
    blas->dgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- the recurrent products [F2] and dh_{t-1}: packed kernel or BLAS (rgemm.h) ---- */

/* Shapes for which the size functions reserve a packed copy of W_hh
 * (whatever the dtype and CPU): enough steps to amortise packing once per
 * call, batches up to RGEMM_MAX_B. Whether the packed kernel then runs is
 * decided per call by crnn_rgemm_faster() (the measured crossover on this
 * CPU). */
enum { RGEMM_MIN_STEPS = 4, RGEMM_MAX_B = 128 };

/* A product of at least this many multiply-adds per step goes to the BLAS
 * when the BLAS has more than one thread: the packed kernel runs on one. */
#define RGEMM_THREADED_BLAS_MACS (32.0 * 1024 * 1024)

/* The BLAS's threads as the application set them, even while a split
 * training pass holds them at one (parallel.h). */
static inline int blas_threads(const crnn_blas *blas)
{
    return crnn_parallel_blas_threads(blas);
}

/* p rounded up to a 64-byte cache line; crnn_rgemm_packed_size() leaves the
 * room for it. */
static inline void *cache_line_up(void *p)
{
    return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

static inline int rgemm_shape(ptrdiff_t T, ptrdiff_t B)
{
    return T >= RGEMM_MIN_STEPS && B <= RGEMM_MAX_B;
}

/* The product per step is C (B, N) = A (B, K) @ op(W), op(W) (K, N): W is
 * W_hh as stored, (N, K) with trans_w = CRNN_TRANS (forward: h @ W_hh.T)
 * or (K, N) with CRNN_NO_TRANS (backward: dpre @ W_hh).
 * Packs W into space and returns it when the packed kernel is to be used
 * for this call, else NULL (then rgemm_* goes through BLAS). split: the
 * product is split over the core's own two threads (parallel.h), so a large
 * one stays in the packed kernel even when the BLAS has threads. */
static inline const float *rgemm_prepare_f32(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B,
                                             ptrdiff_t N, ptrdiff_t K, int split,
                                             crnn_trans trans_w, const float *W, float *space)
{
    if (!rgemm_shape(T, B) || !crnn_rgemm_faster(B, N, K))
        return NULL;
    if (!split && (double)B * N * K >= RGEMM_THREADED_BLAS_MACS && blas_threads(blas) > 1)
        return NULL;
    space = cache_line_up(space);
    crnn_rgemm_pack_f32(N, K, trans_w, W, space);
    return space;
}

static inline const double *rgemm_prepare_f64(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B,
                                              ptrdiff_t N, ptrdiff_t K, int split,
                                              crnn_trans trans_w, const double *W, double *space)
{
    if (!rgemm_shape(T, B) || !crnn_rgemm_faster_f64(B, N, K))
        return NULL;
    if (!split && (double)B * N * K >= RGEMM_THREADED_BLAS_MACS && blas_threads(blas) > 1)
        return NULL;
    space = cache_line_up(space);
    crnn_rgemm_pack_f64(N, K, trans_w, W, space);
    return space;
}

/* A caller's packed copy (W_ih_packed, W_hh_packed of crnn.h) where this CPU
 * runs the packed kernel, else NULL: the product then goes to the BLAS. */
static inline const float *given_packed_f32(const float *packed)
{
    return packed != NULL && crnn_vmath_simd() ? packed : NULL;
}

static inline const double *given_packed_f64(const double *packed)
{
    (void)packed;
    return NULL;  /* callers pack float32 only (crnn.h): float64 steps on the BLAS */
}

/* One row's step, product and cell fused (row_step.h), where it pays:
 * float32 only; the float64 steps stay unfused (never called). */
static inline int row_step_pays_f32(ptrdiff_t G, ptrdiff_t H, const float *Wp)
{
    return crnn_row_step_pays(G, H, Wp);
}

static inline int row_step_pays_f64(ptrdiff_t G, ptrdiff_t H, const double *Wp)
{
    (void)G, (void)H, (void)Wp;
    return 0;
}

static inline int row_step_input_pays_f32(ptrdiff_t G, ptrdiff_t H, ptrdiff_t I, const float *Wp_ih)
{
    return crnn_row_step_input_pays(G, H, I, Wp_ih);
}

static inline int row_step_input_pays_f64(ptrdiff_t G, ptrdiff_t H, ptrdiff_t I, const double *Wp_ih)
{
    (void)G, (void)H, (void)I, (void)Wp_ih;
    return 0;
}

static inline void lstm_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                                     const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                                     const float *b_hh, float *gates, const float *c_prev, float *c_out,
                                     float *h_new)
{
    crnn_lstm_row_step_f32(H, u0, u1, x, I, Wp_ih, h_prev, Wp, b_ih, b_hh, gates, c_prev, c_out, h_new);
}

static inline void lstm_row_step_f64(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const double *x, ptrdiff_t I,
                                     const double *Wp_ih, const double *h_prev, const double *Wp,
                                     const double *b_ih, const double *b_hh, double *gates, const double *c_prev,
                                     double *c_out, double *h_new)
{
    (void)H, (void)u0, (void)u1, (void)x, (void)I, (void)Wp_ih, (void)h_prev, (void)Wp, (void)b_ih, (void)b_hh;
    (void)gates, (void)c_prev, (void)c_out, (void)h_new;
}

static inline int lstm_row_back_pays_f32(ptrdiff_t H, const float *Wb)
{
    return crnn_lstm_row_back_pays(H, Wb);
}

static inline int lstm_row_back_pays_f64(ptrdiff_t H, const double *Wb)
{
    (void)H, (void)Wb;
    return 0;
}

static inline const float *lstm_row_back_pack_f32(ptrdiff_t H, const float *W_hh, float *Wb)
{
    crnn_lstm_row_back_pack_f32(H, W_hh, Wb);
    return Wb;
}

static inline const double *lstm_row_back_pack_f64(ptrdiff_t H, const double *W_hh, double *Wb)
{
    (void)H, (void)W_hh, (void)Wb;
    return NULL;
}

static inline void lstm_row_back_f32(ptrdiff_t H, int order, const float *gates, const float *c_prev,
                                     const float *c_new, const float *dy, float *dh, float *dc, const float *Wb,
                                     float *dpre)
{
    crnn_lstm_row_back_f32(H, order, gates, c_prev, c_new, dy, dh, dc, Wb, dpre);
}

static inline void lstm_row_back_f64(ptrdiff_t H, int order, const double *gates, const double *c_prev,
                                     const double *c_new, const double *dy, double *dh, double *dc,
                                     const double *Wb, double *dpre)
{
    (void)H, (void)order, (void)gates, (void)c_prev, (void)c_new, (void)dy, (void)dh, (void)dc, (void)Wb;
    (void)dpre;
}

static inline void gru_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                                    const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                                    const float *b_hh, float *gates, float *hn, float *h_new)
{
    crnn_gru_row_step_f32(H, u0, u1, x, I, Wp_ih, h_prev, Wp, b_ih, b_hh, gates, hn, h_new);
}

static inline void gru_row_step_f64(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const double *x, ptrdiff_t I,
                                    const double *Wp_ih, const double *h_prev, const double *Wp,
                                    const double *b_ih, const double *b_hh, double *gates, double *hn,
                                    double *h_new)
{
    (void)H, (void)u0, (void)u1, (void)x, (void)I, (void)Wp_ih, (void)h_prev, (void)Wp, (void)b_ih, (void)b_hh;
    (void)gates, (void)hn, (void)h_new;
}

/* a (n,) and b (n,) share no element */
static inline int apart(const void *a, const void *b, size_t bytes)
{
    return (const char *)a + bytes <= (const char *)b || (const char *)b + bytes <= (const char *)a;
}

/* Forward passes of these shapes may split their steps by batch rows over
 * two threads (parallel.h): the product per step (B, K) x (K, N) goes to
 * the packed kernel even when the BLAS has threads (rgemm_prepare), there
 * are enough rows to split, and enough work, (I + K) * N multiply-adds per
 * row and step, to pay for handing rows to the other thread (measured: a
 * GRU of T=50, B=16, I=H=64, 20M in all, still ran slower on two). Their
 * workspace holds a packed W_ih (input_pack_shape covers them). */
enum { PARALLEL_MIN_B = 8 };
#define PARALLEL_MIN_MACS (64.0 * 1024 * 1024)

static inline int parallel_shape(ptrdiff_t T, ptrdiff_t B, ptrdiff_t I, ptrdiff_t N, ptrdiff_t K)
{
    return rgemm_shape(T, B) && B >= PARALLEL_MIN_B && (double)B * N * K < RGEMM_THREADED_BLAS_MACS
           && (double)T * B * N * (I + K) >= PARALLEL_MIN_MACS;
}

/* Threads for the step loop of inference: 2 when the shape allows it, the
 * BLAS has threads to give and the recurrent product runs in the packed
 * kernel (W_hh_packed: single-threaded, where the BLAS would use the
 * threads). Training passes decide by train_threads instead: split steps
 * beside OpenBLAS's pool thread, left spinning (~0.1 s) on one of the two
 * cores by the previous backward pass's threaded products, measured 7-20%
 * slower per forward + backward than one thread, so training splits only
 * where it keeps that pool asleep. */
static inline int step_threads(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t I,
                               ptrdiff_t N, ptrdiff_t K, const void *W_hh_packed)
{
    return parallel_shape(T, B, I, N, K) && W_hh_packed != NULL && blas_threads(blas) > 1 ? 2 : 1;
}

/* Training passes split over two threads of the core's own, the forward
 * pass by rows (the tape's rows are as independent as the state's), the
 * backward pass too: row b of dh_{t-1} reads only row b of the gate
 * gradients of step t. Their matrix products over a whole chunk of steps
 * (the input product [F1], dx and the weight gradients) are split between
 * the two as well, each member's BLAS calls on one thread
 * (crnn_parallel_blas_solo_begin): OpenBLAS's own pool, left spinning after
 * a threaded product, would otherwise take a core from the two halves
 * of the next step loop. So the BLAS must let its threads be set. */
static inline int train_split_shape(ptrdiff_t T, ptrdiff_t B, ptrdiff_t I, ptrdiff_t N, ptrdiff_t K)
{
    return rgemm_shape(T, B) && B >= PARALLEL_MIN_B && (double)T * B * N * (I + K) >= PARALLEL_MIN_MACS;
}

static inline int train_threads(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t I, ptrdiff_t N,
                                ptrdiff_t K)
{
    return blas->set_num_threads != NULL && blas_threads(blas) > 1 && train_split_shape(T, B, I, N, K) ? 2 : 1;
}

/* Member p0's half of [0, n) in a team of two (parallel.h): [0, n/2) for
 * part 0, [n/2, n) for part 1; all of it for [0, 2). In training passes of
 * train_split_shape(), the products over a chunk of steps that the two
 * members split (the input product, dx, the weight gradients) are computed
 * half by half alone too: a BLAS may sum an element of a product
 * differently from the same element of a part of it, and results should
 * not depend on whether the other member was free. Other shapes never
 * split and make one product of each (two threaded BLAS calls of half the
 * size cost more than one). */
static inline void team_half(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    *lo = p0 == 0 ? 0 : n / 2;
    *hi = p1 == 1 ? n / 2 : n;
}

/* Inference shapes whose recurrent product is big enough for the BLAS's
 * threads (RGEMM_THREADED_BLAS_MACS) split the hidden units over two
 * threads instead (parallel.h's team): each thread streams its own half of
 * the packed W_hh and W_ih, and also does its units' activations, which the
 * BLAS's threads would leave to one. Rows cannot be split here: both
 * threads would stream all of W_hh, which does not fit in a core's L2.
 * The two halves meet once per step. The cut is at a panel boundary
 * (rgemm_units), so H must be a multiple of RGEMM_NR; their workspace holds
 * a second state buffer (the states of consecutive steps alternate).
 *
 * A batch too small to split by rows (B < PARALLEL_MIN_B, one sequence
 * above all) splits its units too, from UNITS_SMALL_MIN_H units,
 * UNITS_SMALL_MIN_STEP_MACS multiply-adds of recurrent product per step and
 * UNITS_SMALL_MIN_MACS over the call. A step then reads W_hh from L2 (LSTM
 * H = 128: 256 KiB, at about 110 GB/s 2.4 us, most of the step), and each
 * thread reads its half from its own core's L2; one sequence's members run
 * the fused row step (row_step.h) on their blocks. Measured on an AMD EPYC
 * (Zen 4, 1 MiB L2 per core), B = 1, I = 64, T = 512, one process, 2
 * threads split against 2 threads unsplit (which ran as 1), medians: LSTM
 * H = 128 1.16 against 1.84 ms (1.59x), H = 96 1.46x, H = 64 1.31x; GRU
 * H = 256 1.84x, H = 128 1.48x, H = 64 1.11x; RNN (not fused) H = 128
 * 1.39x, H = 96 1.10x, but H = 64 (4096 multiply-adds a step) 0.61x (in
 * separate processes): the meeting every step costs more. Short calls
 * lose too: LSTM H = 128, T = 8 (all unfused then) 0.84x, T = 32 1.02x,
 * T = 64 1.29x. Float64 (never fused): LSTM H = 128 1.44x, H = 64 1.28x,
 * GRU H = 128 1.57x, RNN H = 128 1.29x. */
enum { UNITS_SMALL_MIN_H = 64 };
#define UNITS_SMALL_MIN_STEP_MACS 8192.0
#define UNITS_SMALL_MIN_MACS (4.0 * 1024 * 1024)

static inline int units_shape(ptrdiff_t T, ptrdiff_t B, ptrdiff_t N, ptrdiff_t K, ptrdiff_t H)
{
    const int big = (double)B * N * K >= RGEMM_THREADED_BLAS_MACS;
    const int small_batch = B < PARALLEL_MIN_B && H >= UNITS_SMALL_MIN_H
                            && (double)B * N * K >= UNITS_SMALL_MIN_STEP_MACS
                            && (double)T * B * N * K >= UNITS_SMALL_MIN_MACS;
    return rgemm_shape(T, B) && (big || small_batch) && H % RGEMM_NR == 0 && H >= 2 * RGEMM_NR;
}

static inline int units_split_f32(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t N,
                                  ptrdiff_t K, ptrdiff_t H)
{
    return units_shape(T, B, N, K, H) && blas_threads(blas) > 1 && crnn_rgemm_faster(B, N, K);
}

static inline int units_split_f64(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t N,
                                  ptrdiff_t K, ptrdiff_t H)
{
    return units_shape(T, B, N, K, H) && blas_threads(blas) > 1 && crnn_rgemm_faster_f64(B, N, K);
}

/* The training forward pass of a single sequence splits its units as its
 * inference does (units_shape), instead of running as a pipeline
 * (pipe_chunk_steps): the tape keeps every step's state in a slot of its
 * own, so the members need no second buffer, and each computes its units'
 * columns of the input product into the tape first, in the packed kernel
 * or else calling the BLAS on one thread (crnn_parallel_blas_solo_begin),
 * so the BLAS must let its threads be set. That product goes half by half
 * even alone (as team_half), and a step's sums are per unit: a member
 * alone gives the bits of the split pass. Measured on the AMD EPYC, one process, the
 * forward pass against the pipeline's, 2 threads, T = 512, I = 64: LSTM
 * H = 128 1.15-1.33x faster, H = 256 1.57x, GRU and RNN H = 128 1.14x; but
 * LSTM B = 4 (H = 128), whose steps are not fused, 0.92x, hence one
 * sequence only. In a slow phase of the machine (the same C loop of steps
 * 20% slower) the split lost instead, as a split that meets every step
 * does there: LSTM H = 128 0.95-0.97x, GRU 0.77-0.79x.
 * The backward of a single sequence stays a pipeline (pipe_chunk_steps).
 * Split by units (each member its units' cell gradients, then, from all of
 * dpre, its units' columns of dh_{t-1}, meeting every step; the weight
 * gradients by halves after each chunk) its steps ran twice as fast (1.53
 * against 3.1 us), but the weight gradients, half of the pass, no longer
 * ran beside them: LSTM T = 512, H = 128, 2 threads, 1.68 against 1.66 ms
 * in a quiet phase, 3.15 against 2.09 ms in a slow one. Not kept. */
static inline int train_units_f32(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t N, ptrdiff_t K,
                                  ptrdiff_t H)
{
    return B == 1 && blas->set_num_threads != NULL && units_split_f32(blas, T, B, N, K, H);
}

static inline int train_units_f64(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t N, ptrdiff_t K,
                                  ptrdiff_t H)
{
    return B == 1 && blas->set_num_threads != NULL && units_split_f64(blas, T, B, N, K, H);
}

/* Split by rows, each thread computes the input product [F1] of its own
 * rows step by step, streaming all of W_ih for them; with fewer rows than
 * this per thread that costs more than it does: the two threads then first
 * compute [F1] of the whole chunk as a team, each its half of the columns
 * (rgemm_team_columns), and meet before they split the steps by rows
 * (measured, 2 threads: a 2-layer bidirectional LSTM, T = 100, B = 16,
 * I = 128, H = 256, took 35 ms instead of 44). */
enum { STEP_INPUT_MIN_ROWS = 16 };

static inline int chunk_input_by_team(ptrdiff_t B)
{
    return B < 2 * STEP_INPUT_MIN_ROWS;
}

/* 1 when the sequences' lengths are given and not all equal. */
static inline int lengths_differ(const int64_t *lengths, ptrdiff_t B)
{
    if (lengths != NULL)
        for (ptrdiff_t b = 1; b < B; b++)
            if (lengths[b] != lengths[0])
                return 1;
    return 0;
}

/* A row's weight in rows_cut: its valid steps among t0 .. t0+n-1, plus one. */
static inline double row_work(int64_t length, ptrdiff_t t0, ptrdiff_t n)
{
    const int64_t valid = length - (int64_t)t0;
    return (double)(valid < 0 ? 0 : valid > n ? n : valid) + 1;
}

/* The row at which a team of two splits rows [0, B) for the steps t0 ..
 * t0+n-1: B/2, or, when the lengths differ, where the two parts' work is
 * about equal (row_work). The recurrent product of a valid step costs far
 * more than keeping a finished sequence's state, and a batch longest first
 * (the layers sort it) runs no product on its finished rows (live_rows):
 * halves by count would leave the first thread most of the work. Measured,
 * 2 threads, T = 100, B = 32, I = 128, H = 256, lengths uniform in
 * [1, 100], the batch sorted, inference: LSTM 10.6 ms with halves by count,
 * 8.5 ms cut by work (13.4 ms without lengths); GRU 8.0 and 6.4 ms (10.0). */
static inline ptrdiff_t rows_cut(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t n)
{
    if (!lengths_differ(lengths, B))
        return B / 2;
    double total = 0;
    for (ptrdiff_t b = 0; b < B; b++)
        total += row_work(lengths[b], t0, n);
    double before = 0;
    ptrdiff_t cut = 0;
    while (cut < B - 1) {
        const double w = row_work(lengths[cut], t0, n);
        if (before + w / 2 > total / 2)  /* row cut straddles the middle: it starts part 1 */
            break;
        before += w;
        cut++;
    }
    return cut < 1 ? 1 : cut;
}

/* Rows [*b0, *b1) of part [p0, p1) of a team of two split at row `cut`:
 * [0, cut) for part 0, [cut, B) for part 1, all of them for [0, 2). */
static inline void team_rows(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t cut, ptrdiff_t B, ptrdiff_t *b0, ptrdiff_t *b1)
{
    *b0 = p0 == 0 ? 0 : cut;
    *b1 = p1 == 1 ? cut : B;
}

/* Part [p0, p1) of a team of two (parallel.h) runs rows(job, ..) on its
 * rows of a split at `cut` (team_rows). */
static inline void team_rows_run(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t cut, ptrdiff_t B, crnn_rows_fn rows, void *job)
{
    ptrdiff_t b0, b1;
    team_rows(p0, p1, cut, B, &b0, &b1);
    rows(job, b0, b1);
}

/* Parts [p0, p1) of a team of two (parallel.h), once each member has done
 * its half of the chunk's input product: the chunk's steps on rows [0, cut)
 * for part 0 and [cut, B) for part 1 (rows_cut), after both halves are
 * done; all rows for [0, 2). */
static inline void team_rows_after_input(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t cut, ptrdiff_t B, crnn_rows_fn rows,
                                         void *job)
{
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
    team_rows_run(p0, p1, cut, B, rows, job);
}

/* The first unit of the second thread's half: a panel boundary. */
static inline ptrdiff_t units_cut(ptrdiff_t H)
{
    return H / 2 / RGEMM_NR * RGEMM_NR;
}

/* The units [*u0, *u1) of part [p0, p1) of a team of two split by units:
 * those before units_cut(H) for part 0, the rest for part 1, all of them
 * for [0, 2) (a member alone). */
static inline void team_units(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H, ptrdiff_t *u0, ptrdiff_t *u1)
{
    *u0 = p0 == 0 ? 0 : units_cut(H);
    *u1 = p1 == 2 ? H : units_cut(H);
}

/* Shapes whose workspace (inference and training) holds a packed copy of
 * W_ih: the input product [F1] then runs in the packed kernel whenever the
 * recurrent one does (W packed once per call, where a BLAS call re-packs
 * it per chunk and zeroes its output first). Training took [F1] from the
 * BLAS until measured on the AMD EPYC (one process, alternating, the
 * training forward pass, LSTM T = 100, B = 32, I = 128, H = 256): 1.04-1.06x
 * faster on 1 thread, 1.17-1.18x on 2 (the halves of a split [F1] each a
 * one-thread BLAS call before); GRU 1.04x and 1.12x, RNN 1.05x and 1.16x,
 * one sequence (T = 512, B = 1, H = 128) 1.00-1.03x and 1.09-1.16x, a
 * 2-layer bidirectional LSTM (B = 16) 1.12-1.14x. The packed kernel sums
 * K in one pass as NumPy's OpenBLAS does for K up to a few hundred: the
 * same bits there (I = 512: within 4.4e-7). */
static inline int input_pack_shape(ptrdiff_t T, ptrdiff_t B)
{
    return rgemm_shape(T, B);
}

/* With the steps split, each thread also computes the input product [F1]
 * of its own rows, in the packed kernel: a BLAS call would wake the BLAS's
 * own threads, which then spin for a while (~0.1 s for OpenBLAS) on the
 * cores the two halves run on, and two threads in one BLAS pool contend.
 * Packs W_ih (N, K) into space (from its first cache line) and returns it.
 * With NumPy's OpenBLAS the two give the same bits for K up to a few
 * hundred (one pass over K); past that they differ by rounding. */
static inline const float *input_pack_f32(ptrdiff_t N, ptrdiff_t K, const float *W_ih, float *space)
{
    space = cache_line_up(space);
    crnn_rgemm_pack_f32(N, K, CRNN_TRANS, W_ih, space);
    return space;
}

static inline const double *input_pack_f64(ptrdiff_t N, ptrdiff_t K, const double *W_ih, double *space)
{
    space = cache_line_up(space);
    crnn_rgemm_pack_f64(N, K, CRNN_TRANS, W_ih, space);
    return space;
}

/* The backward's dx = dpre @ W_ih, (rows, N) x (N, I) over a chunk of
 * steps, runs in the packed kernel on W_ih packed once per call (the
 * (I, N) op(W) of CRNN_NO_TRANS) where the recurrent products run in it
 * (packed_kernel) on the AVX-512 path: measured against OpenBLAS's sgemm
 * (bench_rgemm, 1 thread, AMD EPYC) 1.18-1.35x as fast for 256 to 3200
 * rows, I = 64..512, N = 512..4096, and a BLAS call zeroes dx first.
 * Float64 stays with the BLAS (its kernel wins only up to 64 rows). */
static inline const float *dx_pack_f32(ptrdiff_t N, ptrdiff_t I, const float *W_ih, int packed_kernel,
                                       float *space)
{
    if (!packed_kernel || crnn_vmath_path() != CRNN_VMATH_AVX512)
        return NULL;
    space = cache_line_up(space);
    crnn_rgemm_pack_f32(I, N, CRNN_NO_TRANS, W_ih, space);
    return space;
}

static inline const double *dx_pack_f64(ptrdiff_t N, ptrdiff_t I, const double *W_ih, int packed_kernel,
                                        double *space)
{
    (void)N, (void)I, (void)W_ih, (void)packed_kernel, (void)space;
    return NULL;
}

/* The columns [c0, c1) of dx that part [p0, p1) of a team of two computes
 * (dx_part): on the packed copy Wp (dx_pack) cut at a panel boundary (a
 * column's sums do not depend on the cut), else at team_half's. */
static inline void dx_columns(ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t I, const void *Wp, ptrdiff_t *c0, ptrdiff_t *c1)
{
    if (Wp != NULL)
        team_units(p0, p1, I, c0, c1);
    else
        team_half(p0, p1, I, c0, c1);
}

/* Part [p0, p1) of a team of two (team_half) of dx (rows, I) = dpre (rows,
 * N) @ W_ih (N, I): its columns (dx_columns). */
static inline void dx_part_f32(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t rows, ptrdiff_t N,
                               ptrdiff_t I, const float *dpre, const float *W_ih, const float *Wp, float *dx)
{
    ptrdiff_t c0, c1;
    dx_columns(p0, p1, I, Wp, &c0, &c1);
    if (c1 <= c0)
        return;
    if (Wp != NULL)
        crnn_rgemm_f32(rows, c1 - c0, N, dpre, N, Wp + c0 * N, 0, dx + c0, I);
    else
        blas->sgemm(CRNN_NO_TRANS, CRNN_NO_TRANS, rows, c1 - c0, N, 1, dpre, N, W_ih + c0, I, 0, dx + c0, I);
}

static inline void dx_part_f64(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t rows, ptrdiff_t N,
                               ptrdiff_t I, const double *dpre, const double *W_ih, const double *Wp, double *dx)
{
    ptrdiff_t c0, c1;
    dx_columns(p0, p1, I, Wp, &c0, &c1);  /* Wp is NULL: team_half's */
    if (c1 > c0)
        blas->dgemm(CRNN_NO_TRANS, CRNN_NO_TRANS, rows, c1 - c0, N, 1, dpre, N, W_ih + c0, I, 0, dx + c0, I);
}

/* C (M, N) = A (M, K) @ op(W) [+ C], op(W) as for rgemm_prepare; Wp the
 * packed copy or NULL. One row on a W read from L2 takes the
 * matrix-vector kernel (crnn_rgemm_mv_pays in rgemm.h). */
static inline void rgemm_f32(const crnn_blas *blas, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                             const float *A, ptrdiff_t lda, crnn_trans trans_w, const float *W,
                             const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    if (Wp != NULL && crnn_rgemm_mv_pays(M, N, K))
        crnn_rgemm_mv_f32(N, K, A, Wp, accumulate, C);
    else if (Wp != NULL)
        crnn_rgemm_f32(M, N, K, A, lda, Wp, accumulate, C, ldc);
    else
        blas->sgemm(CRNN_NO_TRANS, trans_w, M, N, K, 1, A, lda, W, trans_w == CRNN_TRANS ? K : N,
                    accumulate ? 1 : 0, C, ldc);
}

static inline void rgemm_f64(const crnn_blas *blas, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                             const double *A, ptrdiff_t lda, crnn_trans trans_w, const double *W,
                             const double *Wp, int accumulate, double *C, ptrdiff_t ldc)
{
    if (Wp != NULL)
        crnn_rgemm_f64(M, N, K, A, lda, Wp, accumulate, C, ldc);
    else
        blas->dgemm(CRNN_NO_TRANS, trans_w, M, N, K, 1, A, lda, W, trans_w == CRNN_TRANS ? K : N,
                    accumulate ? 1 : 0, C, ldc);
}

/* The product of hidden units [u0, u1) only, for a layer of G gate blocks
 * of H units: for each block q, C[:, q*H+u0 : q*H+u1] (+)= A @ op(W)[...]
 * over W's rows q*H+u0 .. q*H+u1-1 (trans_w = CRNN_TRANS). All units: one
 * product over the G*H columns. A range cut at a panel boundary (units_cut)
 * starts its block's panels at the same offset in the packed copy as its
 * rows in W. */
static inline void rgemm_units_f32(const crnn_blas *blas, int G, ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1,
                                   ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda,
                                   const float *W, const float *Wp, int accumulate, float *C, ptrdiff_t ldc)
{
    if (u0 == 0 && u1 == H) {
        rgemm_f32(blas, M, G * H, K, A, lda, CRNN_TRANS, W, Wp, accumulate, C, ldc);
        return;
    }
    for (int q = 0; q < G; q++) {
        const ptrdiff_t row = q * H + u0;
        rgemm_f32(blas, M, u1 - u0, K, A, lda, CRNN_TRANS, W + row * K, Wp != NULL ? Wp + row * K : NULL,
                  accumulate, C + row, ldc);
    }
}

static inline void rgemm_units_f64(const crnn_blas *blas, int G, ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1,
                                   ptrdiff_t M, ptrdiff_t K, const double *A, ptrdiff_t lda,
                                   const double *W, const double *Wp, int accumulate, double *C, ptrdiff_t ldc)
{
    if (u0 == 0 && u1 == H) {
        rgemm_f64(blas, M, G * H, K, A, lda, CRNN_TRANS, W, Wp, accumulate, C, ldc);
        return;
    }
    for (int q = 0; q < G; q++) {
        const ptrdiff_t row = q * H + u0;
        rgemm_f64(blas, M, u1 - u0, K, A, lda, CRNN_TRANS, W + row * K, Wp != NULL ? Wp + row * K : NULL,
                  accumulate, C + row, ldc);
    }
}

/* rgemm_units for parts [p0, p1) of a team of two (parallel.h): units
 * [0, units_cut(H)) for part 0, [units_cut(H), H) for part 1, both for
 * [0, 2) as two products (a member alone sums as the split does). */
static inline void rgemm_team_units_f32(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1, int G, ptrdiff_t H,
                                        ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda, const float *W,
                                        const float *Wp, float *C, ptrdiff_t ldc)
{
    if (p0 == 0)
        rgemm_units_f32(blas, G, H, 0, units_cut(H), M, K, A, lda, W, Wp, 0, C, ldc);
    if (p1 == 2)
        rgemm_units_f32(blas, G, H, units_cut(H), H, M, K, A, lda, W, Wp, 0, C, ldc);
}

static inline void rgemm_team_units_f64(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1, int G, ptrdiff_t H,
                                        ptrdiff_t M, ptrdiff_t K, const double *A, ptrdiff_t lda, const double *W,
                                        const double *Wp, double *C, ptrdiff_t ldc)
{
    if (p0 == 0)
        rgemm_units_f64(blas, G, H, 0, units_cut(H), M, K, A, lda, W, Wp, 0, C, ldc);
    if (p1 == 2)
        rgemm_units_f64(blas, G, H, units_cut(H), H, M, K, A, lda, W, Wp, 0, C, ldc);
}

/* C = A @ W.T (M, N) for parts [p0, p1) of a team of two (parallel.h):
 * columns [0, cut) for part 0, [cut, N) for part 1, cut at a panel boundary
 * (the packed copy's columns from cut then start at Wp + cut*K, as W's rows
 * at W + cut*K); both for [0, 2), as two products, so that a BLAS sums
 * every element as it does split (N = 0 products are skipped). */
static inline void rgemm_team_columns_f32(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1,
                                          ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                                          ptrdiff_t lda, const float *W, const float *Wp, float *C,
                                          ptrdiff_t ldc)
{
    const ptrdiff_t cut = N / 2 / RGEMM_NR * RGEMM_NR;
    for (ptrdiff_t p = p0; p < p1; p++) {  /* alone, the same two products: the same sums */
        const ptrdiff_t c0 = p == 0 ? 0 : cut, c1 = p == 0 ? cut : N;
        if (c1 > c0)
            rgemm_f32(blas, M, c1 - c0, K, A, lda, CRNN_TRANS, W + c0 * K, Wp != NULL ? Wp + c0 * K : NULL, 0,
                      C + c0, ldc);
    }
}

static inline void rgemm_team_columns_f64(const crnn_blas *blas, ptrdiff_t p0, ptrdiff_t p1,
                                          ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A,
                                          ptrdiff_t lda, const double *W, const double *Wp, double *C,
                                          ptrdiff_t ldc)
{
    const ptrdiff_t cut = N / 2 / RGEMM_NR * RGEMM_NR;
    for (ptrdiff_t p = p0; p < p1; p++) {  /* alone, the same two products: the same sums */
        const ptrdiff_t c0 = p == 0 ? 0 : cut, c1 = p == 0 ? cut : N;
        if (c1 > c0)
            rgemm_f64(blas, M, c1 - c0, K, A, lda, CRNN_TRANS, W + c0 * K, Wp != NULL ? Wp + c0 * K : NULL, 0,
                      C + c0, ldc);
    }
}

/* db[c0:c1] += A[:, c0:c1].sum(axis=0) for A (rows, cols): (part of) a bias
 * gradient over the steps of a chunk. */
static inline void add_colsum_f32(float *db, const float *A, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t c0,
                                  ptrdiff_t c1)
{
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = c0; k < c1; k++)
            db[k] += A[r * cols + k];
}

static inline void add_colsum_f64(double *db, const double *A, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t c0,
                                  ptrdiff_t c1)
{
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = c0; k < c1; k++)
            db[k] += A[r * cols + k];
}

/* ---- sequences ---- */

/* Step t of sequence b is valid iff t < lengths[b] (NULL: all valid). */
static inline int step_valid(const int64_t *lengths, ptrdiff_t b, ptrdiff_t t)
{
    return lengths == NULL || (int64_t)t < lengths[b];
}

/* The rows [0, n) of a batch of B whose step t needs the recurrent product:
 * n is one past the last sequence still valid at t (B without lengths).
 * The finished sequences after it only keep their state, so a batch in
 * decreasing order of length (the layers sort theirs, crnn/_recurrent.py)
 * leaves all of its finished ones out of the products; a finished sequence
 * before n is computed and discarded as before. */
static inline ptrdiff_t live_rows(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t)
{
    ptrdiff_t n = B;
    if (lengths != NULL)
        while (n > 0 && lengths[n - 1] <= (int64_t)t)
            n--;
    return n;
}

/* Backward runs [B3]/[B4] (dx and the weight gradients) as GEMMs over the
 * rows of a chunk of steps t0 .. t0+nt-1, step after step, B rows each. A
 * finished row's gradient is zero there: with lengths, those GEMMs read only
 * each step's live rows, packed one step's after the previous one's (the
 * finished rows of a step are not contiguous with the next step's, so one
 * GEMM cannot skip them in place). live_row_count: how many rows that is,
 * nt * B without lengths. The copies cost a small part of the products they
 * save. Measured, T = 100, B = 32, I = 128, H = 256, lengths uniform in
 * [1, 100] (mean 51), the batch sorted, training (forward and backward), ms,
 * before -> after (the same batch padded): 1 thread RNN 18.2 -> 13.7 (20.9),
 * LSTM 67 -> 48 (80), GRU 49 -> 37 (59); 2 threads RNN 10.6 -> 8.7 (10.8),
 * LSTM 39 -> 27 (41), GRU 34 -> 21 (30). */
static inline ptrdiff_t live_row_count(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t nt)
{
    ptrdiff_t n = 0;
    for (ptrdiff_t t = t0; t < t0 + nt; t++)
        n += live_rows(lengths, B, t);
    return n;
}

/* Copies the live rows (live_rows) of each step of the chunk from src, step
 * t at src + (t - t0) * B rows, to dst, packed. dst == src is allowed: every
 * row moves towards the start, and an earlier step's before a later one's. */
static inline void pack_live_rows(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t nt,
                                  size_t row_bytes, const void *src, void *dst)
{
    size_t at = 0;
    for (ptrdiff_t t = t0; t < t0 + nt; t++) {
        const size_t bytes = (size_t)live_rows(lengths, B, t) * row_bytes;
        memmove((char *)dst + at, (const char *)src + (size_t)((t - t0) * B) * row_bytes, bytes);
        at += bytes;
    }
}

/* The inverse, in place, on the bytes [c0, c1) of each row (two threads may
 * take different columns): a holds the chunk's live rows packed at its
 * start; each step's go back to its B rows and the finished rows after them
 * become zeros. Later steps first and, within a step, later rows first:
 * every row moves towards the end, onto rows already read. */
static inline void unpack_live_rows(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t nt,
                                    size_t row_bytes, size_t c0, size_t c1, void *a)
{
    char *base = a;
    size_t at = (size_t)live_row_count(lengths, B, t0, nt) * row_bytes;
    for (ptrdiff_t t = t0 + nt - 1; t >= t0; t--) {
        const ptrdiff_t n = live_rows(lengths, B, t);
        char *step = base + (size_t)((t - t0) * B) * row_bytes;
        at -= (size_t)n * row_bytes;
        for (ptrdiff_t b = B - 1; b >= n; b--)
            memset(step + (size_t)b * row_bytes + c0, 0, c1 - c0);
        for (ptrdiff_t b = n - 1; b >= 0; b--)
            memmove(step + (size_t)b * row_bytes + c0, base + at + (size_t)b * row_bytes + c0, c1 - c0);
    }
}

/* A backward chunk's [B3]/[B4] inputs with lengths, packed (pack_live_rows):
 * dpre (rows of dpre_bytes) in place by part 0 of a team of two, x and
 * h_prev into x_live and h_live by part 1, both alone ([0, 2)); then the
 * members meet, as every product reads all of them. */
static inline void pack_chunk_inputs(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t nt, ptrdiff_t p0,
                                     ptrdiff_t p1, void *dpre, size_t dpre_bytes, const void *x, size_t x_bytes,
                                     void *x_live, const void *h_prev, size_t h_bytes, void *h_live)
{
    if (p0 == 0)
        pack_live_rows(lengths, B, t0, nt, dpre_bytes, dpre, dpre);
    if (p1 == 2) {
        pack_live_rows(lengths, B, t0, nt, x_bytes, x, x_live);
        pack_live_rows(lengths, B, t0, nt, h_bytes, h_prev, h_live);
    }
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
}

/* dx of a chunk computed from packed rows (pack_live_rows) back to its
 * steps' rows, on the columns part [p0, p1) computed: no other part reads
 * or writes them, so this needs no barrier. */
static inline void unpack_dx(const int64_t *lengths, ptrdiff_t B, ptrdiff_t t0, ptrdiff_t nt, ptrdiff_t I,
                             ptrdiff_t p0, ptrdiff_t p1, const void *Wp, size_t elem, void *dx)
{
    ptrdiff_t c0, c1;
    dx_columns(p0, p1, I, Wp, &c0, &c1);
    if (c1 > c0)
        unpack_live_rows(lengths, B, t0, nt, (size_t)I * elem, (size_t)c0 * elem, (size_t)c1 * elem, dx);
}

/* The time index of the k-th step the recurrence visits. */
static inline ptrdiff_t step_time(ptrdiff_t k, ptrdiff_t T, int reverse)
{
    return reverse ? T - 1 - k : k;
}

/* Tape slots of the states: the tape keeps T+1 states per sequence, in time
 * order, so that step t reads h_{t-1} at slot prev_slot(t) and writes its
 * result to next_slot(t). Forward: slot 0 = h0, slot T = h_n; reverse:
 * slot T = h0, slot 0 = h_n. Slots [rev, rev + T) are then "the state each
 * step t = 0..T-1 started from", one matrix for the dW_hh product. */
static inline ptrdiff_t prev_slot(ptrdiff_t t, int reverse) { return t + (reverse ? 1 : 0); }
static inline ptrdiff_t next_slot(ptrdiff_t t, int reverse) { return t + (reverse ? 0 : 1); }

/* dst = src, or zeros when src is NULL (an omitted state or gradient).
 * dst == src is allowed (a caller reusing one state buffer). */
static inline void copy_or_zero(void *dst, const void *src, size_t bytes)
{
    if (src == NULL)
        memset(dst, 0, bytes);
    else if (dst != src)
        memcpy(dst, src, bytes);
}

/* Inference runs the input product [F1] over chunks of steps so that its
 * scratch does not grow with T: about CHUNK_ELEMENTS elements, at least
 * CHUNK_MIN_STEPS steps (so small batches still get a tall GEMM). */
enum { CHUNK_ELEMENTS = 1 << 16, CHUNK_MIN_STEPS = 8 };

static inline ptrdiff_t chunk_steps(ptrdiff_t T, ptrdiff_t B, ptrdiff_t GH, ptrdiff_t requested)
{
    ptrdiff_t n = requested;
    if (n <= 0) {
        n = CHUNK_ELEMENTS / (B * GH);
        if (n < CHUNK_MIN_STEPS)
            n = CHUNK_MIN_STEPS;
    }
    return n < T ? n : T;
}

/* The backward turns each chunk of steps into dx and weight gradients
 * before the next, so that its workspace does not grow with T. */
enum { GRAD_MIN_ROWS = 256 };

static inline ptrdiff_t backward_chunk_steps(ptrdiff_t T, ptrdiff_t B, ptrdiff_t GH, ptrdiff_t requested)
{
    /* chunk_steps(), but (unless a number is requested) at least
     * GRAD_MIN_ROWS rows of steps x batch: each chunk's weight-gradient
     * GEMMs read and write all of dW_ih and dW_hh, and fewer rows would make
     * them memory-bound (small batches, large H). */
    const ptrdiff_t n = chunk_steps(T, B, GH, requested), tall = (GRAD_MIN_ROWS + B - 1) / B;
    if (requested > 0 || n >= tall)
        return n;
    return tall < T ? tall : T;
}

/* The steps of one chunk of a backward pass: k = kend, kend-1, ..,
 * kend-nt+1 in the forward's order of visits, i.e. times t0 .. t0+nt-1. */
typedef struct {
    ptrdiff_t kend, nt, t0;
} back_span;

/* *span = the chunk of (at most) Tc steps ending at visit kend. */
static inline void back_span_at(back_span *span, ptrdiff_t T, ptrdiff_t Tc, int reverse, ptrdiff_t kend)
{
    span->kend = kend;
    span->nt = Tc < kend + 1 ? Tc : kend + 1;
    span->t0 = reverse ? T - 1 - kend : kend + 1 - span->nt;
}

/* Runs a backward pass: the forward's steps in the opposite order, in
 * chunks of Tc steps, each chunk handed to fn (a team function, parallel.h)
 * on `threads` threads after *span (inside job) is set to it. With two
 * threads the BLAS gives one per call meanwhile (train_threads). */
static inline void run_backward_chunks(const crnn_blas *blas, int threads, ptrdiff_t T, ptrdiff_t Tc, int reverse,
                                       crnn_rows_fn fn, void *job, back_span *span)
{
    if (threads > 1)
        crnn_parallel_blas_solo_begin(blas);
    for (ptrdiff_t kend = T - 1; kend >= 0; kend -= Tc) {
        back_span_at(span, T, Tc, reverse, kend);
        crnn_parallel_team(threads, fn, job);
    }
    if (threads > 1)
        crnn_parallel_blas_solo_end(blas);
}

/* ---- a small batch on two threads: pipelines ----
 *
 * A batch too small to split by rows (B < PARALLEL_MIN_B; a single
 * sequence, say) runs its steps on one core, and the products over a chunk
 * of steps wait for them: the input product [F1] before a chunk's steps,
 * dx and the weight gradients after a chunk's backward steps (together a
 * third to a half of a training pass). On two threads the steps still run
 * on one member, chunk after chunk, while the other computes the products
 * of the next chunk (a training forward, into the tape) or of the chunk
 * before (backward, in two buffers of gate gradients taken in turn, each
 * of at most half the chunk the workspace holds). Alone (the
 * worker busy), a member runs the same chunks in the same order: the same
 * bits. Against one thread, whose chunks are longer, the products are
 * taken in other groups of rows: they agree to rounding. */
enum { PIPE_CHUNKS = 8, PIPE_MIN_ROWS = 32 };
#define PIPE_MIN_MACS (8.0 * 1024 * 1024)

/* A pipeline's chunk, for a pass of T steps whose buffers hold at most
 * max_steps steps each; 0 where no pipeline runs (the BLAS at one thread or
 * without set_num_threads, batches that split by rows, too little work, or
 * fewer than three chunks). N = G*H the gates, K the recurrent product's
 * columns. */
static inline ptrdiff_t pipe_chunk_steps(const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t I, ptrdiff_t N,
                                         ptrdiff_t K, ptrdiff_t max_steps)
{
    if (blas->set_num_threads == NULL || blas_threads(blas) < 2 || B >= PARALLEL_MIN_B
        || (double)T * B * N * (I + K) < PIPE_MIN_MACS)
        return 0;
    ptrdiff_t n = (T + PIPE_CHUNKS - 1) / PIPE_CHUNKS;
    const ptrdiff_t tall = (PIPE_MIN_ROWS + B - 1) / B;
    if (n < tall)
        n = tall;
    if (n > max_steps)
        n = max_steps;
    return n >= 1 && T >= 3 * n ? n : 0;
}

/* A training forward pass as that pipeline: input(job, t0, n, xw)
 * computes [F1] of times t0 .. t0+n-1 into xw, steps(job, t0, n, xw)
 * runs their steps on every row. Each step's product goes
 * into the tape, step t's at xw + t * step_bytes: no buffer is reused.
 * (Inference, whose chunks share one buffer, does not pipeline: its input
 * product is a tenth of the pass or less, and two threads measured 0.88x to
 * 1.05x of one in the bench's rows.) */
typedef struct {
    void *job;
    void (*input)(void *job, ptrdiff_t t0, ptrdiff_t n, void *xw);
    void (*steps)(void *job, ptrdiff_t t0, ptrdiff_t n, void *xw);
    char *xw;
    size_t step_bytes;
    ptrdiff_t T, Tc;
    int reverse;
} fwd_pipe;

static inline void fwd_pipe_chunk(const fwd_pipe *fp, ptrdiff_t i, ptrdiff_t *t0, ptrdiff_t *n, void **xw)
{
    const ptrdiff_t k0 = i * fp->Tc;  /* the chunk's first step in visiting order */
    *n = fp->Tc < fp->T - k0 ? fp->Tc : fp->T - k0;
    *t0 = fp->reverse ? fp->T - k0 - *n : k0;
    *xw = fp->xw + *t0 * (ptrdiff_t)fp->step_bytes;
}

/* Member 1 computes chunk i's product while member 0 runs chunk i - 1's
 * steps; they meet after each. */
static inline void fwd_pipe_team(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const fwd_pipe *fp = arg;
    const ptrdiff_t chunks = (fp->T + fp->Tc - 1) / fp->Tc;
    ptrdiff_t t0, n;
    void *xw;
    for (ptrdiff_t i = 0; i <= chunks; i++) {
        if (p1 == 2 && i < chunks) {
            fwd_pipe_chunk(fp, i, &t0, &n, &xw);
            fp->input(fp->job, t0, n, xw);
        }
        if (p0 == 0 && i >= 1) {
            fwd_pipe_chunk(fp, i - 1, &t0, &n, &xw);
            fp->steps(fp->job, t0, n, xw);
        }
        if (p1 - p0 == 1)
            crnn_parallel_barrier(p0);
    }
}

/* Both members call the BLAS: on one thread each (crnn_parallel_blas_solo_begin). */
static inline void run_forward_pipe(const crnn_blas *blas, fwd_pipe *fp)
{
    crnn_parallel_blas_solo_begin(blas);
    crnn_parallel_pipeline(2, fwd_pipe_team, fp);
    crnn_parallel_blas_solo_end(blas);
}

/* One backward pass as that pipeline, in chunks of Tc steps (at most half
 * the workspace's chunk). job[0] and job[1] are two copies of a cell's
 * chunk job, each with its own gate-gradient buffer and span;
 * steps(job) runs the steps of its span on every row (on the running
 * gradients, which only this member touches), grads(job, p0, p1) its
 * products as a team function (parallel.h; alone [0, 2)). */
typedef struct {
    void *job[2];
    back_span *span[2];
    void (*steps)(void *job);
    crnn_rows_fn grads;
    ptrdiff_t T, Tc;
    int reverse;
} back_pipe;

/* Member 0 runs the steps of chunk i while member 1 runs the products of
 * chunk i - 1; they meet after each. Chunk i writes buffer i % 2, which
 * chunk i - 2's products, done before the last meeting, read. */
static inline void back_pipe_team(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const back_pipe *bp = arg;
    const ptrdiff_t n = (bp->T + bp->Tc - 1) / bp->Tc;
    for (ptrdiff_t i = 0; i < n; i++) {
        if (p0 == 0) {
            back_span_at(bp->span[i % 2], bp->T, bp->Tc, bp->reverse, bp->T - 1 - i * bp->Tc);
            bp->steps(bp->job[i % 2]);
        }
        if (p1 == 2 && i >= 1)
            bp->grads(bp->job[(i - 1) % 2], 0, 2);
        if (p1 - p0 == 1)
            crnn_parallel_barrier(p0);
    }
    bp->grads(bp->job[(n - 1) % 2], p0, p1);
}

static inline void run_backward_pipe(const crnn_blas *blas, back_pipe *bp)
{
    crnn_parallel_blas_solo_begin(blas);
    crnn_parallel_pipeline(2, back_pipe_team, bp);
    crnn_parallel_blas_solo_end(blas);
}

/* ---- argument checks ---- */

static inline crnn_status check_lengths(const int64_t *lengths, ptrdiff_t T, ptrdiff_t B)
{
    if (lengths != NULL)
        for (ptrdiff_t b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > (int64_t)T)
                return CRNN_ELENGTH;
    return CRNN_OK;
}

/* A caller buffer of `have` elements where `need` are required. */
static inline crnn_status check_buffer(const void *p, size_t have, size_t need)
{
    if (have < need)
        return CRNN_ESIZE;
    if (p == NULL && need > 0)
        return CRNN_EINVAL;
    return CRNN_OK;
}

#endif /* CRNN_COMMON_H */
