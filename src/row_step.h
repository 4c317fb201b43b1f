/* row_step.h -- one step of one sequence (B = 1): the recurrent product and
 * the cell fused, 16 hidden units at a time. Internal.
 *
 * With one row, a step reads all of the packed W_hh from L2 (rgemm.h's
 * matrix-vector kernel), then runs the gates' sigmoid and tanh and the
 * cell. Done one after the other, the core first waits on L2 and then
 * computes with nothing to read. Here each block of 16 units reads its
 * panel of every gate (the four, or three, panels interleaved), then
 * activates those units' gates and updates their cell while the next
 * block's panels stream in.
 *
 * Same bits as the unfused step: each gate sums its products in the
 * matrix-vector kernel's order (four chains over k mod 4, chain 0 starting
 * from the gates' value, added as (0 + 1) + (2 + 3); crnn_rgemm_mv_f32),
 * and the activations are vmath's own lane kernels (vmath_ps16.h) on the
 * same values, the pointwise arithmetic in the cells' order without FMA.
 * src/test/test_row_step.c checks it against the AVX2 path, which never fuses.
 *
 * Only where crnn_row_step_pays(): float32 on the AVX-512 path (vmath.h),
 * H a multiple of 16, W_hh packed on a cache line, and a shape where the
 * unfused step would take the matrix-vector kernel (crnn_rgemm_mv_pays);
 * no projection (the cells check). h_new must not overlap h_prev: blocks
 * write it while later blocks still read h_prev.
 */
#ifndef CRNN_ROW_STEP_H
#define CRNN_ROW_STEP_H

#include <stddef.h>

/* 1 when the fused step runs for a cell of G gate blocks of H units whose
 * recurrent product has K = H columns packed at Wp (and it is enabled). */
int crnn_row_step_pays(ptrdiff_t G, ptrdiff_t H, const float *Wp);

/* For tests and measurements: fuse (on, the default) or run every step
 * unfused (0), from the next step on; returns the previous setting. Not
 * while another thread runs a cell. */
int crnn_row_step_enable(int on);

/* 1 when, for such a step, the input product x_t W_ih^T (I columns, W_ih
 * packed at Wp_ih) may run in the same pass: where the unfused step would
 * compute it alone in the matrix-vector kernel (a single step of a single
 * sequence: a stream's). */
int crnn_row_step_input_pays(ptrdiff_t G, ptrdiff_t H, ptrdiff_t I, const float *Wp_ih);

/* The steps below run on the 16-unit blocks of units [u0, u1) only (0 and
 * H for all; multiples of 16), reading all of h_prev and writing only
 * those units' elements of every output (a thread's share of a step split
 * by units, common.h); all pointers are to whole rows.
 *
 * The input, x: NULL when gates holds x_t W_ih^T on entry; else x_t (I,),
 * whose product with W_ih (packed at Wp_ih) the step computes itself, each
 * gate's sums as crnn_rgemm_mv_f32's (from zero), before the recurrent
 * product adds to them. */

/* LSTM, no projection: gates (4H,) out: the activated i, f, g, o; b_ih,
 * b_hh (4H,) or NULL (zeros), added as lstm.c's sum_biases adds them (so
 * a stream's step needs no pass to sum them first); c_out may be c_prev;
 * h_new (H,) = o * tanh(c_new). */
void crnn_lstm_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                            const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                            const float *b_hh, float *gates, const float *c_prev, float *c_out, float *h_new);

/* The backward's step of one valid LSTM row (lstm_back_rows in lstm.c),
 * no projection: from the tape's gates (4H,), c_prev, c_new (H,), dy_t
 * (H,), the running dh (H,, in: from step t+1; out: dL/dh_{t-1} through
 * W_hh) and dc (H,, in: dL/dc_t, out: dL/dc_{t-1}), the gate gradients
 * dpre (4H,) and the product dpre @ W_hh; Wb: W_hh (4H, H) in the layout
 * of crnn_lstm_row_back_pack_f32 (4H * H floats, row_step.c describes it),
 * on a cache line: each block's rows one stream. dpre and dc get the
 * unfused step's bits; dh sums in another order (block by block, the
 * blocks in `order`: 0 first to last, 1 last to first; callers alternate
 * it with the step's index), so it agrees with the unfused step to
 * rounding. Where crnn_lstm_row_back_pays(H, Wb): on the AVX-512 path, H a
 * multiple of 16 from 32 to 176 (W_hh of at most 512 KiB, read from L2). */
int crnn_lstm_row_back_pays(ptrdiff_t H, const float *Wb);
void crnn_lstm_row_back_pack_f32(ptrdiff_t H, const float *W_hh, float *Wb);
void crnn_lstm_row_back_f32(ptrdiff_t H, int order, const float *gates, const float *c_prev, const float *c_new,
                            const float *dy, float *dh, float *dc, const float *Wb, float *dpre);
/* For tests and measurements: fuse that backward step (on, the default) or
 * not (0); returns the previous setting. Not while a cell runs. */
int crnn_row_back_enable(int on);

/* GRU: gates (3H,) out: the activated r, z, n; b_ih, b_hh (3H,) or NULL
 * (zeros, added as gru.c adds them); hn (H,) receives W_hn h_prev + b_hn; h_new (H,) =
 * (1 - z) * n + z * h_prev. */
void crnn_gru_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                           const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                           const float *b_hh, float *gates, float *hn, float *h_new);

#endif /* CRNN_ROW_STEP_H */
