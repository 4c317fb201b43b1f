/* gru.c -- GRU: one layer, one direction, a whole sequence (PyTorch conventions).
 *
 * Gate blocks [r, z, n] (crnn_gru_gate) along the G*H = 3H axis:
 *     r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
 *     z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
 *     n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))     (reset after the product)
 *     h_t = (1 - z) * n + z * h_{t-1}
 *
 * The spec is crnn/reference/gru.py; the step tags match it:
 *     [F1] input projection for all steps    [F2] recurrent product per step
 *     [F3] gates and state update
 *     [B1] through the state update and gates
 *     [B2] dh_{t-1} per step                 [B3] weight/bias grads, dx per chunk of steps
 *
 * Unlike the LSTM, the recurrent product cannot be added into the gates
 * before the pointwise pass: n needs W_hn h + b_hn on its own (r multiplies
 * it), so [F2] writes a separate (B, 3H) buffer, and backward keeps two
 * pre-activation gradients, w.r.t. W_ih x + b_ih and w.r.t. W_hh h + b_hh,
 * which differ in the n block by the factor r.
 *
 * Tape (crnn_gru_tape_size), GH = 3H:
 *     ws_gates (T, B, 3H)   post-activation r, z, n of every step
 *     ws_hn    (T, B, H)    W_hn h_{t-1} + b_hn of every step
 *                           (both zeros where the step is masked)
 *     ws_h     (T+1, B, H)  the state before/after every step (prev_slot/next_slot)
 *
 * Workspace (crnn_gru_workspace_size):
 *     infer     2*3H + Tc*B*3H + B*3H   biases, one chunk of the input product,
 *                                       the recurrent product of a step
 *               [+ B*H]                 a second state buffer for the shapes
 *                                       of units_shape() (common.h)
 *     train     2*3H + B*3H             biases, recurrent product; [F1] writes
 *                                       into ws_gates
 *     backward  Tc*B*3H + B*3H + B*H    dpre_x of one chunk of steps (turned
 *                                       into dpre_h after the chunk's dx and
 *                                       dW_ih), dpre_h of a step, running dh
 *               + Tc*B*(I+H)            the chunk's x and h_prev, live rows
 *                                       only (pack_live_rows in common.h),
 *                                       with lengths
 *     infer, train, backward: + packed W_hh (rgemm.h) for the shapes of
 *                                       rgemm_shape(), at the end
 *     infer, train: + packed W_ih before it for the shapes of input_pack_shape()
 *            (common.h)
 *     backward: + W_ih packed for dx (dx_pack in common.h) before it, for
 *               the shapes of rgemm_shape()
 * Tc is chunk_steps(..) for infer, backward_chunk_steps(..) for backward:
 * backward visits the steps in chunks of Tc and runs [B3] per chunk, so no
 * workspace grows with T.
 *
 * Layout of this file: part 1 is dtype-free (sizes, desc check); part 2 is
 * the kernels, written once over `real`; part 3 compiles part 2 for float
 * and double by including this file into itself (see common.h).
 */

/* ===== part 1: dtype-free ================================================ */
#ifndef CRNN_INSTANCE
#include "common.h"

static crnn_status gru_check_desc(const crnn_gru_desc *d)
{
    if (d == NULL || d->steps < 1 || d->batch < 1 || d->input_size < 1 || d->hidden_size < 1 || d->chunk_steps < 0)
        return CRNN_EINVAL;
    if (d->reset_before != 0)
        return CRNN_EUNSUPPORTED;
    return CRNN_OK;
}

/* Inference of this shape may split the units over two threads (common.h). */
static int gru_units_shape(const crnn_gru_desc *d)
{
    return units_shape(d->steps, d->batch, 3 * d->hidden_size, d->hidden_size, d->hidden_size);
}

size_t crnn_gru_workspace_size(const crnn_gru_desc *d, crnn_pass pass)
{
    if (gru_check_desc(d) != CRNN_OK)
        return 0;
    const size_t T = (size_t)d->steps, B = (size_t)d->batch, H = (size_t)d->hidden_size, GH = 3 * H;
    const size_t I = (size_t)d->input_size;
    const size_t packed = rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(3 * d->hidden_size, d->hidden_size) : 0;
    const size_t packed_ih = input_pack_shape(d->steps, d->batch)
                                 ? crnn_rgemm_packed_size(3 * d->hidden_size, d->input_size) : 0;
    switch (pass) {
    case CRNN_PASS_INFER:
        return 2 * GH + (size_t)chunk_steps(d->steps, d->batch, 3 * d->hidden_size, d->chunk_steps) * B * GH + B * GH
               + (gru_units_shape(d) ? B * H : 0) + packed_ih + packed;
    case CRNN_PASS_TRAIN:
        return 2 * GH + B * GH + packed_ih + packed;
    case CRNN_PASS_BACKWARD:
        return (size_t)backward_chunk_steps((ptrdiff_t)T, d->batch, 3 * d->hidden_size, d->chunk_steps) * B
                   * (GH + I + H)
               + B * GH + B * H
               + (rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(d->hidden_size, 3 * d->hidden_size)
                                                        + crnn_rgemm_packed_size(d->input_size, 3 * d->hidden_size)
                                                  : 0);
    }
    return 0;
}

size_t crnn_gru_tape_size(const crnn_gru_desc *d)
{
    if (gru_check_desc(d) != CRNN_OK)
        return 0;
    const size_t T = (size_t)d->steps, B = (size_t)d->batch, H = (size_t)d->hidden_size;
    return T * B * 3 * H + T * B * H + (T + 1) * B * H;
}
#endif /* part 1 */

/* ===== part 2: kernels over `real` ======================================= */
#ifdef CRNN_INSTANCE

/* Checks shared by the three entry points. */
static crnn_status FN(gru_check)(const crnn_blas *blas, const crnn_gru_desc *d,
                                 const FN(crnn_weights) *w, const int64_t *lengths,
                                 const real *x)
{
    crnn_status s = gru_check_desc(d);
    if (s != CRNN_OK)
        return s;
    if (!FN(blas_ok)(blas) || w == NULL || w->W_ih == NULL || w->W_hh == NULL
        || w->W_hr != NULL || x == NULL)
        return CRNN_EINVAL;
    return check_lengths(lengths, d->steps, d->batch);
}

/* One step t for the whole batch, on hidden units [u0, u1): [F2] and [F3].
 * gates (B, 3H) holds x_t W_ih^T on entry and the post-activation gates on
 * exit, in the columns of those units; h_out may be h_prev (inference
 * updates the state in place) when the step covers all units: every
 * element is read before it is written. */
static void FN(gru_step)(const crnn_blas *blas, const crnn_gru_desc *d, const real *W_hh,
                         const real *W_hh_packed, /* rgemm.h, or NULL: BLAS */
                         const real *b_ih,      /* (3H,) zeros if no bias */
                         const real *b_hh,      /* (3H,) */
                         const int64_t *lengths, ptrdiff_t t,
                         ptrdiff_t u0, ptrdiff_t u1,
                         real *gates,           /* (B, 3H) */
                         real *hw,              /* (B, 3H) scratch */
                         real *hn_t,            /* (B, H) out: W_hn h + b_hn, or NULL */
                         const real *h_prev,    /* (B, H) */
                         real *h_out,           /* (B, H) */
                         real *y_t)             /* (B, H) */
{
    const ptrdiff_t B = d->batch, H = d->hidden_size, GH = 3 * d->hidden_size, nu = u1 - u0;
    const ptrdiff_t Ir = CRNN_GRU_R * H + u0, Iz = CRNN_GRU_Z * H + u0, In = CRNN_GRU_N * H + u0;

    /* One valid row, its units (all, or a thread's share): [F2] and [F3]
     * fused (row_step.h), the same bits */
    if (B == 1 && step_valid(lengths, 0, t) && FN(row_step_pays)(3, H, W_hh_packed)
        && apart(y_t, h_prev, (size_t)H * sizeof(real))) {
        FN(gru_row_step)(H, u0, u1, NULL, 0, NULL, h_prev, W_hh_packed, b_ih, b_hh, gates,
                         hn_t != NULL ? hn_t : hw + CRNN_GRU_N * H, y_t);
        copy_row(h_out + u0, y_t + u0, (size_t)nu * sizeof(real));
        return;
    }

    /* [F2] hw = h_prev @ W_hh.T   (B, H) x (H, 3H), the units' columns, on
     * the rows up to the last sequence still running (live_rows) */
    const ptrdiff_t live = live_rows(lengths, B, t);
    if (live > 0)
        FN(rgemm_units)(blas, 3, H, u0, u1, live, H, h_prev, H, W_hh, W_hh_packed, 0, hw, GH);

    /* [F3] gates, then h_new, a sequence (row) at a time; a valid step
     * outputs h_new and keeps it, an invalid one outputs 0, keeps h_prev and
     * leaves zeros as its gates and hn on the tape (with or without a
     * product run on its row): backward multiplies r by a masked step's
     * zero gradient (gru_grads_h), so r must be finite there. */
    for (ptrdiff_t b = 0; b < B; b++) {
        real *gb = gates + b * GH, *hb = hw + b * GH;
        if (!step_valid(lengths, b, t)) {
            for (int q = 0; q < 3; q++)
                memset(gb + q * H + u0, 0, (size_t)nu * sizeof(real));
            if (hn_t != NULL)
                memset(hn_t + b * H + u0, 0, (size_t)nu * sizeof(real));
            memset(y_t + b * H + u0, 0, (size_t)nu * sizeof(real));
            copy_row(h_out + b * H + u0, h_prev + b * H + u0, (size_t)nu * sizeof(real));
            continue;
        }
        /* W_hn h + b_hn: kept for backward, or in place in the scratch */
        real *hn = hn_t != NULL ? hn_t + b * H + u0 : hb + In;
        /* r, z: with all units, [r z] are adjacent: one pass, one sigmoid call */
        const int blocks = nu == H ? 1 : 2;
        const ptrdiff_t run = nu == H ? 2 * H : nu;
        for (int q = 0; q < blocks; q++) {
            const ptrdiff_t q0 = Ir + q * H;
            for (ptrdiff_t j = q0; j < q0 + run; j++)
                gb[j] = (gb[j] + b_ih[j]) + (hb[j] + b_hh[j]);
            FN(vsigmoid)(run, gb + q0, NULL, gb + q0);
        }
        const real *r = gb + Ir, *z = gb + Iz;
        real *n = gb + In;
        for (ptrdiff_t j = 0; j < nu; j++) {
            hn[j] = hb[In + j] + b_hh[In + j];
            n[j] = n[j] + b_ih[In + j] + r[j] * hn[j];
        }
        FN(vtanh)(nu, n, NULL, n);
        real *yb = y_t + b * H + u0;
        const real *hp = h_prev + b * H + u0;
        for (ptrdiff_t j = 0; j < nu; j++)
            yb[j] = (1 - z[j]) * n[j] + z[j] * hp[j];
        copy_row(h_out + b * H + u0, yb, (size_t)nu * sizeof(real));
    }
}

/* The steps of one chunk of the forward pass, for any range of rows. */
typedef struct {
    const crnn_blas *blas;
    const crnn_gru_desc *d;
    const real *W_ih, *W_ih_packed;  /* W_ih packed, for [F1] on the threads */
    const real *W_hh, *W_hh_packed, *b_ih, *b_hh;
    const int64_t *lengths;
    ptrdiff_t t0, n;       /* times t0 .. t0+n-1 */
    const real *x;
    real *xw;              /* (n, B, 3H) their input products */
    real *hw;              /* (B, 3H) scratch */
    real *ws_hn, *ws_h;    /* the tape (training), or NULL */
    real *y, *h_n;
    real *h[2];            /* split by units: the state before step s in h[s % 2], after it in the other */
    ptrdiff_t Tc;          /* split by units: steps per chunk (the team runs every chunk) */
    int step_input;    /* split by rows: each row range computes its [F1] step by step */
} FN(gru_chunk);

/* The chunk's steps on the sequences (rows) [b0, b1) only: a row reads
 * nothing of other rows, so row ranges may run on different threads
 * (parallel.h). gru_step sees them as a batch of b1 - b0. */
static void FN(gru_chunk_rows)(void *arg, ptrdiff_t b0, ptrdiff_t b1)
{
    const FN(gru_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size, GH = 3 * c->d->hidden_size;
    const int rev = c->d->reverse != 0;
    crnn_gru_desc rows = *c->d;
    rows.batch = b1 - b0;
    const int64_t *lengths = c->lengths != NULL ? c->lengths + b0 : NULL;
    for (ptrdiff_t k = 0; k < c->n; k++) {
        const ptrdiff_t t = c->t0 + step_time(k, c->n, rev);
        real *gates = c->xw + (t - c->t0) * B * GH + b0 * GH;
        real *y_t = c->y + t * B * H + b0 * H;
        const ptrdiff_t live = live_rows(lengths, b1 - b0, t);
        if (c->step_input && live > 0)  /* [F1] gates = x[t, b0:b1] @ W_ih.T, the live rows' */
            FN(rgemm)(c->blas, live, GH, I, c->x + t * B * I + b0 * I, I, CRNN_TRANS, c->W_ih,
                      c->W_ih_packed, 0, gates, GH);
        if (c->ws_h != NULL)
            FN(gru_step)(c->blas, &rows, c->W_hh, c->W_hh_packed, c->b_ih, c->b_hh, lengths, t, 0, H,
                         gates, c->hw + b0 * GH, c->ws_hn + t * B * H + b0 * H,
                         c->ws_h + prev_slot(t, rev) * B * H + b0 * H,
                         c->ws_h + next_slot(t, rev) * B * H + b0 * H, y_t);
        else
            FN(gru_step)(c->blas, &rows, c->W_hh, c->W_hh_packed, c->b_ih, c->b_hh, lengths, t, 0, H,
                         gates, c->hw + b0 * GH, NULL, c->h_n + b0 * H, c->h_n + b0 * H, y_t);
    }
}

/* The chunk on a team of two (parallel.h) when split by rows with few rows
 * per thread (chunk_input_by_team in common.h): [F1] of all its steps and
 * rows first, each member its half of the columns, then, once both are
 * done, the steps on each member's half of the rows. Alone ([0, 2)): all
 * of it. */
static void FN(gru_chunk_team_rows)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = 3 * c->d->hidden_size;
    FN(rgemm_team_columns)(c->blas, p0, p1, c->n * B, GH, I, c->x + c->t0 * B * I, I, c->W_ih, c->W_ih_packed,
                           c->xw, GH);
    team_rows_after_input(p0, p1, rows_cut(c->lengths, B, c->t0, c->n), B, FN(gru_chunk_rows), arg);
}

/* The chunk's steps on a team of two split by rows at rows_cut (common.h),
 * when the sequences' lengths differ (rnn_chunk_team_cut in rnn.c: why). */
static void FN(gru_chunk_team_cut)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_chunk) *c = arg;
    team_rows_run(p0, p1, rows_cut(c->lengths, c->d->batch, c->t0, c->n), c->d->batch, FN(gru_chunk_rows), arg);
}

/* The call's steps on hidden units [u0, u1) of every row, chunk by chunk,
 * for a team of two (parallel.h): parts [0, 1) and [1, 2) are the units
 * before and from units_cut(H), [0, 2) all of them. A unit's gates and
 * output read only that unit's columns of the products, but the recurrent
 * product reads all of h_{t-1}: the members meet after every step, and the
 * state goes back and forth between two buffers, so that neither writes
 * the h_{t-1} the other may still be reading. Each member computes its
 * units' columns of every chunk's input product: one team call for the
 * whole pass, as lstm_run_units. Inference only. */
static void FN(gru_run_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size,
                    GH = 3 * c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    for (ptrdiff_t k0 = 0; k0 < T; k0 += c->Tc) {
        const ptrdiff_t n = c->Tc < T - k0 ? c->Tc : T - k0, t0 = rev ? T - k0 - n : k0;
        /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, 3H), the units' columns */
        FN(rgemm_units)(c->blas, 3, H, u0, u1, n * B, I, c->x + t0 * B * I, I, c->W_ih, c->W_ih_packed, 0,
                        c->xw, GH);
        for (ptrdiff_t k = 0; k < n; k++) {
            const ptrdiff_t t = t0 + step_time(k, n, rev), s = k0 + k;
            FN(gru_step)(c->blas, c->d, c->W_hh, c->W_hh_packed, c->b_ih, c->b_hh, c->lengths, t, u0, u1,
                         c->xw + (t - t0) * B * GH, c->hw, NULL, c->h[s % 2], c->h[(s + 1) % 2],
                         c->y + t * B * H);
            if (p1 - p0 == 1)
                crnn_parallel_barrier(p0);
        }
    }
}

/* The training forward pass on hidden units [u0, u1) of every row, all
 * steps, for a team of two (parallel.h), as lstm_train_units. */
static void FN(gru_train_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size,
                    GH = 3 * c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    /* [F1] gates = x @ W_ih.T   (T*B, I) x (I, 3H), the units' columns, half by half */
    FN(rgemm_team_units)(c->blas, p0, p1, 3, H, T * B, I, c->x, I, c->W_ih, c->W_ih_packed, c->xw, GH);
    for (ptrdiff_t k = 0; k < T; k++) {
        const ptrdiff_t t = step_time(k, T, rev);
        FN(gru_step)(c->blas, c->d, c->W_hh, c->W_hh_packed, c->b_ih, c->b_hh, c->lengths, t, u0, u1,
                     c->xw + t * B * GH, c->hw, c->ws_hn + t * B * H, c->ws_h + prev_slot(t, rev) * B * H,
                     c->ws_h + next_slot(t, rev) * B * H, c->y + t * B * H);
        if (p1 - p0 == 1)
            crnn_parallel_barrier(p0);
    }
}

/* The forward pipeline's (common.h) two parts: [F1] of a chunk, and the
 * chunk's steps on every row. */
static void FN(gru_pipe_input)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    const FN(gru_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = 3 * c->d->hidden_size;
    FN(rgemm)(c->blas, n * B, GH, I, c->x + t0 * B * I, I, CRNN_TRANS, c->W_ih, c->W_ih_packed, 0, xw, GH);
}

static void FN(gru_pipe_steps)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    FN(gru_chunk) *c = arg;
    c->t0 = t0, c->n = n, c->xw = xw;
    FN(gru_chunk_rows)(c, 0, c->d->batch);
}

/* The forward pass; tape == NULL is inference (state kept in h_n, input
 * product in chunks), otherwise training (everything on the tape).
 * Arguments are checked by the callers. */
static void FN(gru_run)(const crnn_blas *blas, const crnn_gru_desc *d, const FN(crnn_weights) *w,
                        const int64_t *lengths, const real *x, const real *h0,
                        real *y, real *h_n, real *tape, real *workspace)
{
    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size, GH = 3 * d->hidden_size;
    const int rev = d->reverse != 0;
    real *b_ih = workspace, *b_hh = workspace + GH;  /* the biases, zeros without; filled below */
    real *hw = workspace + 2 * GH;                    /* (B, 3H) */

    /* Tape regions (training only). */
    real *ws_gates = tape;                            /* (T, B, 3H) */
    real *ws_hn = tape ? ws_gates + T * B * GH : NULL; /* (T, B, H) */
    real *ws_h = tape ? ws_hn + T * B * H : NULL;     /* (T+1, B, H) */

    real *xw;       /* (Tc, B, 3H) the input product of one chunk */
    real *h_other = NULL;  /* (B, H) the second state buffer, split by units */
    ptrdiff_t Tc;
    if (tape != NULL) {
        xw = ws_gates;  /* the gates of step t start as its input product */
        Tc = T;
        copy_or_zero(ws_h + prev_slot(rev ? T - 1 : 0, rev) * B * H, h0, (size_t)(B * H) * sizeof(real));
    } else {
        xw = hw + B * GH;
        Tc = chunk_steps(T, B, GH, d->chunk_steps);
        if (gru_units_shape(d))
            h_other = xw + Tc * B * GH;
        copy_or_zero(h_n, h0, (size_t)(B * H) * sizeof(real));
    }
    /* the packed W_hh and W_ih: the caller's (crnn.h), else, when used, W_hh
     * packed here into the end of the workspace (rgemm.h) */
    const real *W_ih_packed = FN(given_packed)(w->W_ih_packed);
    const real *W_hh_packed = FN(given_packed)(w->W_hh_packed);
    /* split by units (common.h): inference only; training by rows (train_threads) */
    const int units = h_other != NULL && FN(units_split)(blas, T, B, GH, H, H);
    const int train_split = tape != NULL && train_threads(blas, T, B, I, GH, H) > 1;
    const int train_units = tape != NULL && FN(train_units)(blas, T, B, GH, H, H);
    if (W_hh_packed == NULL && rgemm_shape(T, B)) {
        const size_t size = crnn_gru_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER);
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, GH, H, units || train_split || train_units, CRNN_TRANS,
                                        w->W_hh, workspace + size - crnn_rgemm_packed_size(GH, H));
    }

    const int threads = units || train_split || train_units ? 2
                        : tape != NULL ? 1
                                       : step_threads(blas, T, B, I, GH, H, W_hh_packed);  /* common.h */
    /* [F1] runs in the packed kernel too when W_hh does (inference and
     * training: input_pack_shape in common.h): on W_ih packed by the
     * caller, or here just before W_hh; with two threads each does its own
     * rows', or its own columns' */
    if (W_ih_packed == NULL && W_hh_packed != NULL)
        W_ih_packed = FN(input_pack)(GH, I, w->W_ih,
                                     workspace + crnn_gru_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER)
                                         - crnn_rgemm_packed_size(GH, H) - crnn_rgemm_packed_size(GH, I));
    FN(gru_chunk) chunk = { blas, d, w->W_ih, W_ih_packed, w->W_hh, W_hh_packed, b_ih, b_hh, lengths,
                            0, 0, x, xw, hw, ws_hn, ws_h, y, h_n, { h_n, h_other }, Tc, 0 };
    /* split by rows: [F1] per step and row range, or first for the whole
     * chunk by the team; always the latter in training of the shapes that
     * split (one chunk, all steps), even on one thread: its two products
     * then give the bits of a split pass (team_half) */
    const int team_input = (tape != NULL && train_split_shape(T, B, I, GH, H))
                           || (threads > 1 && chunk_input_by_team(B));
    chunk.step_input = threads > 1 && !units && !team_input;

    /* A stream's step (inference, T = B = 1, valid), where both products
     * would take the matrix-vector kernel: [F1] too in the fused pass
     * (row_step.h), the same bits; it reads the biases where they are.
     * h_n holds h0 by now. */
    if (tape == NULL && T == 1 && B == 1 && threads == 1 && step_valid(lengths, 0, 0)
        && FN(row_step_pays)(3, H, W_hh_packed) && FN(row_step_input_pays)(3, H, I, W_ih_packed)
        && apart(y, h_n, (size_t)H * sizeof(real))) {
        FN(gru_row_step)(H, 0, H, x, I, W_ih_packed, h_n, W_hh_packed, w->b_ih, w->b_hh, xw, hw + 2 * H, y);
        memcpy(h_n, y, (size_t)H * sizeof(real));
        return;
    }
    copy_or_zero(b_ih, w->b_ih, (size_t)GH * sizeof(real));
    copy_or_zero(b_hh, w->b_hh, (size_t)GH * sizeof(real));

    /* a batch too small to split, in training: [F1] of the next chunk
     * beside the steps, into the tape (common.h) */
    const ptrdiff_t pipe_Tc = tape != NULL && threads == 1 && !team_input
                                  ? pipe_chunk_steps(blas, T, B, I, GH, H, T)
                                  : 0;
    if (train_units) {  /* a single sequence's training: split by units instead (common.h) */
        crnn_parallel_blas_solo_begin(blas);
        crnn_parallel_team(threads, FN(gru_train_units), &chunk);
        crnn_parallel_blas_solo_end(blas);
    } else if (pipe_Tc > 0) {
        fwd_pipe pipe = { &chunk, FN(gru_pipe_input), FN(gru_pipe_steps), (char *)xw,
                          (size_t)(B * GH) * sizeof(real), T, pipe_Tc, rev };
        run_forward_pipe(blas, &pipe);
    } else if (units) {
        crnn_parallel_team(threads, FN(gru_run_units), &chunk);
    } else {
        if (train_split)
            crnn_parallel_blas_solo_begin(blas);

        for (ptrdiff_t k0 = 0; k0 < T; k0 += Tc) {
            /* This chunk visits steps k0 .. k0+n-1, i.e. times t0 .. t0+n-1. */
            const ptrdiff_t n = Tc < T - k0 ? Tc : T - k0;
            const ptrdiff_t t0 = rev ? T - k0 - n : k0;

            /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, 3H), here unless the threads share it */
            if (threads == 1 && !team_input)
                FN(rgemm)(blas, n * B, GH, I, x + t0 * B * I, I, CRNN_TRANS, w->W_ih, W_ih_packed, 0, xw, GH);

            chunk.t0 = t0;
            chunk.n = n;
            if (team_input)
                crnn_parallel_team(threads, FN(gru_chunk_team_rows), &chunk);
            else if (lengths_differ(lengths, B))
                crnn_parallel_team(threads, FN(gru_chunk_team_cut), &chunk);
            else
                crnn_parallel_rows(threads, FN(gru_chunk_rows), &chunk, B);
        }
        if (train_split)
            crnn_parallel_blas_solo_end(blas);
    }
    if (units && T % 2 == 1)  /* the last step wrote the other buffer */
        memcpy(h_n, h_other, (size_t)(B * H) * sizeof(real));
    if (tape != NULL)
        memcpy(h_n, ws_h + next_slot(rev ? 0 : T - 1, rev) * B * H, (size_t)(B * H) * sizeof(real));
}

crnn_status FN(crnn_gru_forward)(const crnn_blas *blas, const crnn_gru_desc *d,
                                 const FN(crnn_weights) *w, const int64_t *lengths,
                                 const real *x, const real *h0, real *y, real *h_n,
                                 real *workspace, size_t workspace_size)
{
    crnn_status s = FN(gru_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(workspace, workspace_size, crnn_gru_workspace_size(d, CRNN_PASS_INFER));
    if (s != CRNN_OK)
        return s;
    FN(gru_run)(blas, d, w, lengths, x, h0, y, h_n, NULL, workspace);
    return CRNN_OK;
}

crnn_status FN(crnn_gru_forward_train)(const crnn_blas *blas, const crnn_gru_desc *d,
                                       const FN(crnn_weights) *w, const int64_t *lengths,
                                       const real *x, const real *h0, real *y, real *h_n,
                                       real *tape, size_t tape_size,
                                       real *workspace, size_t workspace_size)
{
    crnn_status s = FN(gru_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_gru_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_gru_workspace_size(d, CRNN_PASS_TRAIN));
    if (s != CRNN_OK)
        return s;
    FN(gru_run)(blas, d, w, lengths, x, h0, y, h_n, tape, workspace);
    return CRNN_OK;
}

/* [B1] and the direct part of [B2] for one sequence: from dL/dy_t and the
 * running dL/dh_t, the gradients of the gates' two pre-activation halves
 * (input side x, recurrent side h) and dL/dh_prev minus its W_hh part. The
 * arrays never overlap: `restrict` lets the compiler vectorise the loop (it
 * otherwise gives up on the run-time overlap checks and runs it scalar). */
static void FN(gru_cell_backward)(ptrdiff_t H,
                                  const real *restrict r, const real *restrict z,  /* (H,) gates */
                                  const real *restrict n,
                                  const real *restrict hnb,   /* (H,) W_hn h_prev + b_hn */
                                  const real *restrict hp,    /* (H,) h_prev */
                                  const real *restrict dyb,   /* (H,) dL/dy_t */
                                  real *restrict dh_b,        /* (H,) dL/dh_t in, direct dL/dh_prev out */
                                  real *restrict dxr, real *restrict dxz, real *restrict dxn,  /* (H,) x side */
                                  real *restrict dhr, real *restrict dhz, real *restrict dhn)  /* (H,) h side */
{
    for (ptrdiff_t j = 0; j < H; j++) {
        /* h_t feeds both y_t and step t+1: the two gradients meet here. */
        const real dh_new = dyb[j] + dh_b[j];
        /* [B1] in the forward pass: h_new = (1 - z) * n + z * h_prev,
         *      n = tanh(xn + r * hn), r, z = sigmoid(.);
         *      sigmoid' = s * (1 - s), tanh' = 1 - n * n from saved outputs */
        const real dn_pre = dh_new * (1 - z[j]) * (1 - n[j] * n[j]);
        const real dz_pre = dh_new * (hp[j] - n[j]) * z[j] * (1 - z[j]);
        const real dr_pre = dn_pre * hnb[j] * r[j] * (1 - r[j]);
        dxr[j] = dr_pre;
        dxz[j] = dz_pre;
        dxn[j] = dn_pre;
        dhr[j] = dr_pre;
        dhz[j] = dz_pre;
        dhn[j] = dn_pre * r[j];  /* hn entered n as r * hn */
        /* [B2] h_prev reaches h_new directly (z * h_prev) and through
         *      W_hh (the GEMM below). */
        dh_b[j] = dh_new * z[j];
    }
}

/* [B3] for one chunk of steps: dx of those steps and their share of the
 * parameter gradients, in two phases: gru_grads_x reads dpre_x, gru_grads_h
 * turns it into dpre_h in place and reads that. Every pointer is at the
 * chunk's first step: dpre_x (rows, 3H), x (rows, I), h_prev (rows, H) the
 * states the steps started from, dx (rows, I) or NULL, where rows are the
 * chunk's steps * B, or, with `live` lengths, only each step's live rows,
 * packed (live_row_count in common.h); gates (steps * B, 3H) from the tape;
 * W_ih_dx W_ih packed for dx (dx_pack in common.h) or NULL. Parts [p0, p1) of a team of two (team_half):
 * a member takes half the columns of dx and half the rows of each weight
 * gradient (and the matching bias entries), [0, 2) all of them; every
 * part's gru_grads_x must be done before any part's gru_grads_h. */
static void FN(gru_grads_x)(const crnn_blas *blas, const crnn_gru_desc *d, const FN(crnn_weights) *w,
                            const real *W_ih_dx, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1, const real *dpre_x,
                            const real *x, real *dx, const FN(crnn_grads) *grads)
{
    const ptrdiff_t I = d->input_size, GH = 3 * d->hidden_size;
    ptrdiff_t g0, g1;  /* this part's rows of dW_ih */
    team_half(p0, p1, GH, &g0, &g1);
    if (dx != NULL)  /* dx = dpre_x @ W_ih   (rows, 3H) x (3H, I), this part's columns */
        FN(dx_part)(blas, p0, p1, rows, GH, I, dpre_x, w->W_ih, W_ih_dx, dx);
    if (grads == NULL || g1 == g0)
        return;
    if (grads->dW_ih != NULL)  /* dW_ih += dpre_x.T @ x   (3H, rows) x (rows, I) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, I, rows, 1, dpre_x + g0, GH, x, I, 1,
                 grads->dW_ih + g0 * I, I);
    if (grads->db_ih != NULL)  /* db_ih += dpre_x.sum(axis=0) */
        FN(add_colsum)(grads->db_ih, dpre_x, rows, GH, g0, g1);
}

static void FN(gru_grads_h)(const crnn_blas *blas, const crnn_gru_desc *d, ptrdiff_t rows, const int64_t *live,
                            const back_span *span, ptrdiff_t p0, ptrdiff_t p1, real *dpre_x, const real *gates,
                            const real *h_prev, const FN(crnn_grads) *grads)
{
    const ptrdiff_t B = d->batch, H = d->hidden_size, GH = 3 * d->hidden_size;
    ptrdiff_t g0, g1;  /* this part's rows of dW_hh, columns of dpre */
    team_half(p0, p1, GH, &g0, &g1);
    if (grads == NULL || g1 == g0 || (grads->dW_hh == NULL && grads->db_hh == NULL))
        return;
    /* dpre_x is not needed any more: turn this part's columns into dpre_h.
     * The two differ only in the n block, which saw hn through r * hn. */
    const ptrdiff_t n0 = g0 > CRNN_GRU_N * H ? g0 : CRNN_GRU_N * H;  /* the n block's columns here */
    real *dpre_row = dpre_x;
    for (ptrdiff_t s = 0; s < span->nt; s++) {
        const ptrdiff_t n = live_rows(live, B, span->t0 + s);  /* the rows of step s in dpre */
        for (ptrdiff_t b = 0; b < n; b++, dpre_row += GH) {
            const real *r = gates + (s * B + b) * GH + CRNN_GRU_R * H;
            for (ptrdiff_t j = n0; j < g1; j++)  /* column j of the n block pairs with unit j - 2H of r */
                dpre_row[j] *= r[j - CRNN_GRU_N * H];
        }
    }
    const real *dpre_h = dpre_x;
    if (grads->dW_hh != NULL)  /* dW_hh += dpre_h.T @ h_prev   (3H, rows) x (rows, H) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, H, rows, 1, dpre_h + g0, GH, h_prev, H, 1,
                 grads->dW_hh + g0 * H, H);
    if (grads->db_hh != NULL)  /* db_hh += dpre_h.sum(axis=0) */
        FN(add_colsum)(grads->db_hh, dpre_h, rows, GH, g0, g1);
}

/* One chunk of the backward pass: the steps k = kend, kend-1, .., kend-nt+1
 * (times t0 .. t0+nt-1), then their [B3]. */
typedef struct {
    const crnn_blas *blas;
    const crnn_gru_desc *d;
    const FN(crnn_weights) *w;
    const int64_t *lengths;
    const real *x, *dy, *W_hh_packed;
    const real *W_ih_dx;           /* W_ih packed for dx (dx_pack in common.h), or NULL */
    const real *ws_gates, *ws_hn, *ws_h;  /* the tape */
    real *dpre_x, *dpre_h_t, *dh;  /* (Tc, B, 3H) the chunk's; (B, 3H) a step's; (B, H) running */
    real *x_live, *h_live;         /* (Tc*B, I), (Tc*B, H): the chunk's live rows, packed */
    real *dx;
    const FN(crnn_grads) *grads;
    back_span span;                /* the chunk (common.h) */
    int halves;                    /* [B3] by halves even alone (team_half in common.h) */
} FN(gru_back_chunk);

/* [B1]-[B2] of the chunk's steps on the sequences (rows) [b0, b1) only: row
 * b of dh_{t-1} reads only row b of step t, so row ranges may run on
 * different threads. */
static void FN(gru_back_rows)(const FN(gru_back_chunk) *c, ptrdiff_t b0, ptrdiff_t b1)
{
    const crnn_gru_desc *d = c->d;
    const ptrdiff_t T = d->steps, B = d->batch, H = d->hidden_size, GH = 3 * d->hidden_size;
    const int rev = d->reverse != 0;
    const ptrdiff_t Ir = CRNN_GRU_R * H, Iz = CRNN_GRU_Z * H, In = CRNN_GRU_N * H;
    for (ptrdiff_t k = c->span.kend; k > c->span.kend - c->span.nt; k--) {
        const ptrdiff_t t = step_time(k, T, rev);
        const real *gates = c->ws_gates + t * B * GH;
        const real *hn = c->ws_hn + t * B * H;
        const real *h_prev = c->ws_h + prev_slot(t, rev) * B * H;
        const real *dy_t = c->dy + t * B * H;
        real *dpre_x_t = c->dpre_x + (t - c->span.t0) * B * GH;
        for (ptrdiff_t b = b0; b < b1; b++) {
            real *dxb = dpre_x_t + b * GH, *dhb = c->dpre_h_t + b * GH;
            if (!step_valid(c->lengths, b, t)) {
                /* [B2] a masked step passed h_{t-1} through: so does dh; its
                 * gates get no gradient. */
                memset(dxb, 0, (size_t)GH * sizeof(real));
                memset(dhb, 0, (size_t)GH * sizeof(real));
                continue;
            }
            const real *gb = gates + b * GH;
            const real *r = gb + Ir, *z = gb + Iz, *n = gb + In;
            const real *hnb = hn + b * H, *hp = h_prev + b * H, *dyb = dy_t + b * H;
            FN(gru_cell_backward)(H, r, z, n, hnb, hp, dyb, c->dh + b * H,
                                  dxb + Ir, dxb + Iz, dxb + In, dhb + Ir, dhb + Iz, dhb + In);
        }
        /* [B2] dh += dpre_h[t] @ W_hh   (B, 3H) x (3H, H), on the rows up to
         * the last sequence valid at t: the masked ones after it add 0 */
        const ptrdiff_t live = live_rows(c->lengths != NULL ? c->lengths + b0 : NULL, b1 - b0, t);
        if (live > 0)
            FN(rgemm)(c->blas, live, H, GH, c->dpre_h_t + b0 * GH, GH, CRNN_NO_TRANS, c->w->W_hh,
                      c->W_hh_packed, 1, c->dh + b0 * H, H);
    }
}

static void FN(gru_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1);

/* The chunk on a team of two (parallel.h): the steps on each member's half
 * of the rows, then, once both are done, [B3] split between them. Alone
 * ([0, 2)): all of it. */
static void FN(gru_back_team)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_back_chunk) *c = arg;
    ptrdiff_t b0, b1;
    team_rows(p0, p1, rows_cut(c->lengths, c->d->batch, c->span.t0, c->span.nt), c->d->batch, &b0, &b1);
    FN(gru_back_rows)(c, b0, b1);
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
    FN(gru_back_grads)(arg, p0, p1);
}

/* The pipeline's (common.h) two parts: the chunk's steps on every row, and
 * its [B3] as a team function. */
static void FN(gru_back_steps)(void *arg)
{
    const FN(gru_back_chunk) *c = arg;
    FN(gru_back_rows)(c, 0, c->d->batch);
}

static void FN(gru_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(gru_back_chunk) *c = arg;
    const crnn_gru_desc *d = c->d;
    const ptrdiff_t B = d->batch, I = d->input_size, H = d->hidden_size, GH = 3 * d->hidden_size;
    const ptrdiff_t t0 = c->span.t0, nt = c->span.nt;
    const ptrdiff_t rows = live_row_count(c->lengths, B, t0, nt);
    const real *x = c->x + t0 * B * I, *h_prev = c->ws_h + prev_slot(t0, d->reverse != 0) * B * H;
    const real *gates = c->ws_gates + t0 * B * GH;
    real *dx = c->dx != NULL ? c->dx + t0 * B * I : NULL;
    const int packed = rows < nt * B;  /* finished rows to leave out (common.h) */
    if (packed) {
        pack_chunk_inputs(c->lengths, B, t0, nt, p0, p1, c->dpre_x, (size_t)GH * sizeof(real), x,
                          (size_t)I * sizeof(real), c->x_live, h_prev, (size_t)H * sizeof(real), c->h_live);
        x = c->x_live;
        h_prev = c->h_live;
    }
    /* alone, a shape that splits still goes half by half (team_half) */
    const ptrdiff_t part = c->halves ? 1 : p1 - p0;
    for (ptrdiff_t q = p0; q < p1; q += part)
        FN(gru_grads_x)(c->blas, d, c->w, c->W_ih_dx, rows, q, q + part, c->dpre_x, x, dx, c->grads);
    if (packed && dx != NULL)  /* dx came out packed: back to its steps' rows */
        unpack_dx(c->lengths, B, t0, nt, I, p0, p1, c->W_ih_dx, sizeof(real), dx);
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
    for (ptrdiff_t q = p0; q < p1; q += part)
        FN(gru_grads_h)(c->blas, d, rows, packed ? c->lengths : NULL, &c->span, q, q + part, c->dpre_x, gates,
                        h_prev, c->grads);
}

crnn_status FN(crnn_gru_backward)(const crnn_blas *blas, const crnn_gru_desc *d,
                                  const FN(crnn_weights) *w, const int64_t *lengths,
                                  const real *x, const real *tape, size_t tape_size,
                                  const real *dy, const real *dh_n,
                                  real *dx, real *dh0, const FN(crnn_grads) *grads,
                                  real *workspace, size_t workspace_size)
{
    crnn_status s = FN(gru_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (dy == NULL || (grads != NULL && grads->dW_hr != NULL))
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_gru_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_gru_workspace_size(d, CRNN_PASS_BACKWARD));
    if (s != CRNN_OK)
        return s;

    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size, GH = 3 * d->hidden_size;

    const real *ws_gates = tape;                      /* (T, B, 3H) */
    const real *ws_hn = ws_gates + T * B * GH;        /* (T, B, H) */
    const real *ws_h = ws_hn + T * B * H;             /* (T+1, B, H) */

    const ptrdiff_t Tc = backward_chunk_steps(T, B, GH, d->chunk_steps);
    real *dpre_x = workspace;                         /* (Tc, B, 3H) dL/d(W_ih x + b_ih), a chunk */
    real *dpre_h_t = dpre_x + Tc * B * GH;            /* (B, 3H) dL/d(W_hh h + b_hh), one step */
    real *dh = dpre_h_t + B * GH;                     /* (B, H) dL/dh_t, running */
    real *x_live = dh + B * H;                        /* (Tc*B, I) */
    real *h_live = x_live + Tc * B * I;               /* (Tc*B, H) */
    copy_or_zero(dh, dh_n, (size_t)(B * H) * sizeof(real));
    const int threads = train_threads(blas, T, B, I, GH, H);  /* common.h */
    /* a batch too small to split: the steps and the products side by side (common.h) */
    const ptrdiff_t pipe_Tc = pipe_chunk_steps(blas, T, B, I, GH, H, Tc / 2);
    /* W_hh (3H, H) packed for the product dpre_h @ W_hh (rgemm.h), or NULL */
    const real *W_hh_packed = NULL;
    real *W_space = workspace + crnn_gru_workspace_size(d, CRNN_PASS_BACKWARD) - crnn_rgemm_packed_size(H, GH);
    if (rgemm_shape(T, B))
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, H, GH, threads > 1 || pipe_Tc > 0, CRNN_NO_TRANS, w->W_hh,
                                        W_space);
    const real *W_ih_dx = FN(dx_pack)(GH, I, w->W_ih, W_hh_packed != NULL, W_space - crnn_rgemm_packed_size(I, GH));

    /* The forward's steps in the opposite order, in chunks of Tc steps:
     * dpre_x holds one chunk, and [B3] runs on it after the chunk's last step. */
    FN(gru_back_chunk) chunk = { blas, d, w, lengths, x, dy, W_hh_packed, W_ih_dx, ws_gates, ws_hn, ws_h,
                                 dpre_x, dpre_h_t, dh, x_live, h_live, dx, grads, { 0, 0, 0 },
                                 train_split_shape(T, B, I, GH, H) };
    if (pipe_Tc > 0) {  /* two chunk jobs, each with half of dpre_x */
        FN(gru_back_chunk) second = chunk;
        chunk.halves = second.halves = 1;
        second.dpre_x = dpre_x + pipe_Tc * B * GH;
        second.x_live = x_live + pipe_Tc * B * I;
        second.h_live = h_live + pipe_Tc * B * H;
        back_pipe pipe = { { &chunk, &second }, { &chunk.span, &second.span }, FN(gru_back_steps),
                           FN(gru_back_grads), T, pipe_Tc, d->reverse != 0 };
        run_backward_pipe(blas, &pipe);
    } else {
        run_backward_chunks(blas, threads, T, Tc, d->reverse != 0, FN(gru_back_team), &chunk, &chunk.span);
    }
    if (dh0 != NULL)
        memcpy(dh0, dh, (size_t)(B * H) * sizeof(real));
    return CRNN_OK;
}

#endif /* part 2 */

/* ===== part 3: compile part 2 for float and double ======================= */
#ifndef CRNN_INSTANCE
#define CRNN_INSTANCE
#define real float
#define FN(name) name##_f32
#include "gru.c"
#undef real
#undef FN
#define real double
#define FN(name) name##_f64
#include "gru.c"
#undef real
#undef FN
#undef CRNN_INSTANCE
#endif
