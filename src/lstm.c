/* lstm.c -- LSTM: one layer, one direction, a whole sequence (PyTorch conventions).
 *
 * Gate blocks [i, f, g, o] (crnn_lstm_gate) along the G*H = 4H axis:
 *     i, f, o = sigmoid(.)     g = tanh(.)    (. = W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
 *     c_t = f * c_{t-1} + i * g
 *     h_t = o * tanh(c_t)              or, with proj_size P > 0,
 *     h_t = W_hr (o * tanh(c_t))       (h has P features, c keeps H)
 *
 * The spec is crnn/reference/lstm.py; the step tags match it:
 *     [F1] input projection for all steps    [F2] recurrent product per step
 *     [F3] gates, cell and state update      [F4] projection (P > 0)
 *     [B1] through the projection            [B2] through the cell and gates
 *     [B3] dh_{t-1} per step                 [B4] weight/bias grads, dx per chunk of steps
 *
 * Tape (crnn_lstm_tape_size), GH = 4H, Pn = P if P > 0 else H:
 *     ws_gates (T, B, 4H)   post-activation i, f, g, o of every step (zeros
 *                           where the step is masked)
 *     ws_c     (T+1, B, H)  cell state before/after every step (prev_slot/next_slot)
 *     ws_h     (T+1, B, Pn) hidden state likewise
 *     ws_r     (T, B, H)    only if P > 0: o * tanh(c_t), the projection's input
 * The reference's c_prev[t], h_prev[t] are ws_c, ws_h at prev_slot(t); its
 * c_new[t] is ws_c at next_slot(t) where step t is valid (elsewhere the
 * backward multiplies it by 0).
 *
 * Workspace (crnn_lstm_workspace_size):
 *     infer     2*4H + Tc*B*4H [+ B*H + B*P]   b_ih + b_hh, one chunk of the input
 *                                              product [, r and W_hr r of a step]
 *               [+ B*H]                        a second state buffer for the shapes
 *                                              of units_shape() (common.h)
 *     train     2*4H [+ B*P]                   b_ih + b_hh [, W_hr r]; [F1] writes
 *                                              into ws_gates
 *     infer, train, backward: + packed W_hh (rgemm.h) for the shapes of
 *                                rgemm_shape(), at the end
 *     infer, train: + packed W_ih before it for the shapes of input_pack_shape()
 *            (common.h)
 *     backward: + W_ih packed for dx (dx_pack in common.h) before it, for
 *               the shapes of rgemm_shape()
 *     backward  Tc*B*4H + B*Pn + B*H [+ Tc*B*P + B*H] + 4*H
 *                                              dpre of one chunk, dh, dc [, dh_new
 *                                              of the chunk for dW_hr, dr],
 *                                              tanh(c_new) and dr (P == 0) of one row,
 *                                              per thread (two at most)
 *               + Tc*B*(I+Pn)                  the chunk's x and h_prev, live rows
 *                                              only (pack_live_rows in common.h),
 *                                              with lengths
 * Tc is chunk_steps(..) for infer, backward_chunk_steps(..) for backward:
 * backward visits the steps in chunks of Tc and runs [B4] (dx and the weight
 * gradients) per chunk, so no workspace grows with T; only the tape does.
 *
 * Layout of this file: part 1 is dtype-free (sizes, desc check); part 2 is
 * the kernels, written once over `real`; part 3 compiles part 2 for float
 * and double by including this file into itself (see common.h).
 */

/* ===== part 1: dtype-free ================================================ */
#ifndef CRNN_INSTANCE
#include "common.h"

static crnn_status lstm_check_desc(const crnn_lstm_desc *d)
{
    if (d == NULL || d->steps < 1 || d->batch < 1 || d->input_size < 1 || d->hidden_size < 1
        || d->proj_size < 0 || d->chunk_steps < 0)
        return CRNN_EINVAL;
    if (d->peephole != 0 || d->cell_clip != 0)
        return CRNN_EUNSUPPORTED;
    return CRNN_OK;
}

/* Features of h: proj_size, or H without projection. */
static ptrdiff_t lstm_P(const crnn_lstm_desc *d) { return d->proj_size > 0 ? d->proj_size : d->hidden_size; }

/* Inference of this shape may split the units over two threads (common.h). */
static int lstm_units_shape(const crnn_lstm_desc *d)
{
    return d->proj_size == 0 && units_shape(d->steps, d->batch, 4 * d->hidden_size, d->hidden_size, d->hidden_size);
}

size_t crnn_lstm_workspace_size(const crnn_lstm_desc *d, crnn_pass pass)
{
    if (lstm_check_desc(d) != CRNN_OK)
        return 0;
    const size_t T = (size_t)d->steps, B = (size_t)d->batch, H = (size_t)d->hidden_size, GH = 4 * H;
    const size_t I = (size_t)d->input_size;
    const size_t P = (size_t)lstm_P(d);
    const int proj = d->proj_size > 0;
    const size_t packed = rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(4 * d->hidden_size, lstm_P(d)) : 0;
    const size_t packed_ih = input_pack_shape(d->steps, d->batch)
                                 ? crnn_rgemm_packed_size(4 * d->hidden_size, d->input_size) : 0;
    switch (pass) {
    case CRNN_PASS_INFER:
        return 2 * GH + (size_t)chunk_steps(d->steps, d->batch, 4 * d->hidden_size, d->chunk_steps) * B * GH
               + (proj ? B * H + B * P : lstm_units_shape(d) ? B * P : 0) + packed_ih + packed;
    case CRNN_PASS_TRAIN:
        return 2 * GH + (proj ? B * P : 0) + packed_ih + packed;
    case CRNN_PASS_BACKWARD: {
        const size_t Tc = (size_t)backward_chunk_steps((ptrdiff_t)T, d->batch, (ptrdiff_t)GH, d->chunk_steps);
        return Tc * B * GH + B * P + B * H + (proj ? Tc * B * P + B * H : 0) + 4 * H + Tc * B * (I + P)
               + (rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(lstm_P(d), 4 * d->hidden_size)
                                                        + crnn_rgemm_packed_size(d->input_size, 4 * d->hidden_size)
                                                  : 0);
    }
    }
    return 0;
}

size_t crnn_lstm_tape_size(const crnn_lstm_desc *d)
{
    if (lstm_check_desc(d) != CRNN_OK)
        return 0;
    const size_t T = (size_t)d->steps, B = (size_t)d->batch, H = (size_t)d->hidden_size;
    const size_t P = (size_t)lstm_P(d);
    return T * B * 4 * H + (T + 1) * B * H + (T + 1) * B * P + (d->proj_size > 0 ? T * B * H : 0);
}
#endif /* part 1 */

/* ===== part 2: kernels over `real` ======================================= */
#ifdef CRNN_INSTANCE

/* Checks shared by the three entry points. */
static crnn_status FN(lstm_check)(const crnn_blas *blas, const crnn_lstm_desc *d,
                                  const FN(crnn_weights) *w, const int64_t *lengths,
                                  const real *x)
{
    crnn_status s = lstm_check_desc(d);
    if (s != CRNN_OK)
        return s;
    if (!FN(blas_ok)(blas) || w == NULL || w->W_ih == NULL || w->W_hh == NULL || x == NULL)
        return CRNN_EINVAL;
    if ((w->W_hr != NULL) != (d->proj_size > 0))  /* W_hr exactly when projecting */
        return CRNN_EINVAL;
    return check_lengths(lengths, d->steps, d->batch);
}

/* [F3] for one sequence b and its units [u0, u1), its gates given:
 * pre-activations without the biases in, i, f, g, o out (saved for
 * backward: ws_gates). The activations add the bias as they read
 * (vmath.h): one pass over the gates. */
static void FN(lstm_activate)(real *gb,                /* (4H,) */
                              const real *bias,        /* (4H,) b_ih + b_hh */
                              ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1)
{
    const ptrdiff_t n = u1 - u0, Ii = CRNN_LSTM_I * H + u0, If = CRNN_LSTM_F * H + u0,
                    Ig = CRNN_LSTM_G * H + u0, Io = CRNN_LSTM_O * H + u0;
    if (n == H) {  /* [i f] are adjacent: one call for both sigmoid blocks */
        FN(vsigmoid)(2 * H, gb + Ii, bias + Ii, gb + Ii);
    } else {
        FN(vsigmoid)(n, gb + Ii, bias + Ii, gb + Ii);
        FN(vsigmoid)(n, gb + If, bias + If, gb + If);
    }
    FN(vtanh)(n, gb + Ig, bias + Ig, gb + Ig);
    FN(vsigmoid)(n, gb + Io, bias + Io, gb + Io);
}

/* One step t for the whole batch, on hidden units [u0, u1) (all units when
 * projecting): [F2], [F3] and [F4]. gates (B, 4H) holds x_t W_ih^T on entry
 * and the post-activation gates on exit, in the columns of those units.
 * h_out may be h_prev and c_out may be c_prev (inference updates the state
 * in place) when the step covers all units: every element is read before
 * it is written. */
static void FN(lstm_step)(const crnn_blas *blas, const crnn_lstm_desc *d,
                          const FN(crnn_weights) *w,
                          const real *W_hh_packed, /* rgemm.h, or NULL: BLAS */
                          const real *bias,      /* (4H,) b_ih + b_hh */
                          const int64_t *lengths, ptrdiff_t t,
                          ptrdiff_t u0, ptrdiff_t u1,
                          real *gates,           /* (B, 4H) */
                          const real *h_prev,    /* (B, P) */
                          const real *c_prev,    /* (B, H) */
                          real *h_out,           /* (B, P) */
                          real *c_out,           /* (B, H) */
                          real *y_t,             /* (B, P) */
                          real *r,               /* (B, H) o*tanh(c_new), if P > 0 */
                          real *hr)              /* (B, P) W_hr r, if P > 0 */
{
    const ptrdiff_t B = d->batch, H = d->hidden_size, GH = 4 * d->hidden_size, P = lstm_P(d);
    const int proj = d->proj_size > 0;
    const ptrdiff_t n = u1 - u0;  /* units; without projection, P == H */

    /* One valid row, its units (all, or a thread's share): [F2] and [F3]
     * fused (row_step.h), the same bits */
    if (B == 1 && !proj && step_valid(lengths, 0, t) && FN(row_step_pays)(4, H, W_hh_packed)
        && apart(y_t, h_prev, (size_t)H * sizeof(real))) {
        FN(lstm_row_step)(H, u0, u1, NULL, 0, NULL, h_prev, W_hh_packed, w->b_ih, w->b_hh, gates, c_prev, c_out,
                          y_t);
        copy_row(h_out + u0, y_t + u0, (size_t)n * sizeof(real));
        return;
    }

    /* [F2] gates += h_prev @ W_hh.T   (B, P) x (P, 4H), the units' columns,
     * on the rows up to the last sequence still running (live_rows) */
    const ptrdiff_t live = live_rows(lengths, B, t);
    if (live > 0)
        FN(rgemm_units)(blas, 4, H, u0, u1, live, P, h_prev, P, w->W_hh, W_hh_packed, 1, gates, GH);

    /* [F3] activations, then the cell, a sequence (row) at a time: a valid
     * step keeps c_new and h_new, an invalid one keeps c_prev and h_prev,
     * outputs 0 and leaves zeros as its gates on the tape (with or without
     * a product run on its row; backward skips masked steps). */
    for (ptrdiff_t b = 0; b < B; b++) {
        real *gb = gates + b * GH;
        const real *cp = c_prev + b * H + u0;
        real *cb = c_out + b * H + u0;
        /* h_new = o * tanh(c_new) goes to r (projected) or to y_t */
        real *hb = (proj ? r + b * H : y_t + b * P) + u0;
        if (!step_valid(lengths, b, t)) {
            for (int q = 0; q < 4; q++)
                memset(gb + q * H + u0, 0, (size_t)n * sizeof(real));
            copy_row(cb, cp, (size_t)n * sizeof(real));
            /* r of a masked row only meets a zero gradient: keep it finite */
            memset(hb, 0, (size_t)n * sizeof(real));
            if (!proj)
                copy_row(h_out + b * P + u0, h_prev + b * P + u0, (size_t)n * sizeof(real));
            continue;
        }
        FN(lstm_activate)(gb, bias, H, u0, u1);
        const real *i = gb + CRNN_LSTM_I * H + u0, *f = gb + CRNN_LSTM_F * H + u0,
                   *g = gb + CRNN_LSTM_G * H + u0, *o = gb + CRNN_LSTM_O * H + u0;
        for (ptrdiff_t j = 0; j < n; j++)
            cb[j] = f[j] * cp[j] + i[j] * g[j];
        FN(vtanh)(n, cb, NULL, hb);
        for (ptrdiff_t j = 0; j < n; j++)
            hb[j] *= o[j];
        if (!proj)
            copy_row(h_out + b * P + u0, hb, (size_t)n * sizeof(real));
    }
    if (!proj)
        return;

    /* [F4] hr = r @ W_hr.T   (B, H) x (H, P), then the same masking */
    if (live > 0)
        FN(rgemm)(blas, live, P, H, r, H, CRNN_TRANS, w->W_hr, FN(given_packed)(w->W_hr_packed), 0, hr, P);
    for (ptrdiff_t b = 0; b < B; b++) {
        if (step_valid(lengths, b, t)) {
            memcpy(y_t + b * P, hr + b * P, (size_t)P * sizeof(real));
            memcpy(h_out + b * P, hr + b * P, (size_t)P * sizeof(real));
        } else {
            memset(y_t + b * P, 0, (size_t)P * sizeof(real));
            copy_row(h_out + b * P, h_prev + b * P, (size_t)P * sizeof(real));
        }
    }
}

/* The steps of one chunk of the forward pass, for any range of rows. */
typedef struct {
    const crnn_blas *blas;
    const crnn_lstm_desc *d;
    const FN(crnn_weights) *w;
    const real *W_hh_packed, *bias;
    const int64_t *lengths;
    ptrdiff_t t0, n;               /* times t0 .. t0+n-1 */
    real *xw;                      /* (n, B, 4H) their input products */
    const real *x, *W_ih_packed;   /* W_ih packed, for [F1] on the threads */
    real *ws_h, *ws_c, *ws_r;      /* the tape (training), or NULL; ws_r if P > 0 */
    real *y, *h_n, *c_n, *r, *hr;  /* r, hr: (B, H), (B, P) scratch, if P > 0 */
    real *h[2];                    /* split by units: the state before step s in h[s % 2], after it in the other */
    ptrdiff_t Tc;                  /* split by units: steps per chunk (the team runs every chunk) */
    int step_input;    /* split by rows: each row range computes its [F1] step by step */
} FN(lstm_chunk);

/* The chunk's steps on the sequences (rows) [b0, b1) only: a row reads
 * nothing of other rows, so row ranges may run on different threads
 * (parallel.h). lstm_step sees them as a batch of b1 - b0. */
static void FN(lstm_chunk_rows)(void *arg, ptrdiff_t b0, ptrdiff_t b1)
{
    const FN(lstm_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size, GH = 4 * c->d->hidden_size,
                    P = lstm_P(c->d);
    const int rev = c->d->reverse != 0;
    crnn_lstm_desc rows = *c->d;
    rows.batch = b1 - b0;
    const int64_t *lengths = c->lengths != NULL ? c->lengths + b0 : NULL;
    real *r = c->r != NULL ? c->r + b0 * H : NULL, *hr = c->hr != NULL ? c->hr + b0 * P : NULL;
    for (ptrdiff_t k = 0; k < c->n; k++) {
        const ptrdiff_t t = c->t0 + step_time(k, c->n, rev);
        real *gates = c->xw + (t - c->t0) * B * GH + b0 * GH;
        real *y_t = c->y + t * B * P + b0 * P;
        const ptrdiff_t live = live_rows(lengths, b1 - b0, t);
        if (c->step_input && live > 0)  /* [F1] gates = x[t, b0:b1] @ W_ih.T, the live rows' */
            FN(rgemm)(c->blas, live, GH, I, c->x + t * B * I + b0 * I, I, CRNN_TRANS, c->w->W_ih,
                      c->W_ih_packed, 0, gates, GH);
        if (c->ws_h != NULL)
            FN(lstm_step)(c->blas, &rows, c->w, c->W_hh_packed, c->bias, lengths, t, 0, H, gates,
                          c->ws_h + prev_slot(t, rev) * B * P + b0 * P,
                          c->ws_c + prev_slot(t, rev) * B * H + b0 * H,
                          c->ws_h + next_slot(t, rev) * B * P + b0 * P,
                          c->ws_c + next_slot(t, rev) * B * H + b0 * H,
                          y_t, c->ws_r != NULL ? c->ws_r + t * B * H + b0 * H : NULL, hr);
        else
            FN(lstm_step)(c->blas, &rows, c->w, c->W_hh_packed, c->bias, lengths, t, 0, H, gates,
                          c->h_n + b0 * P, c->c_n + b0 * H, c->h_n + b0 * P, c->c_n + b0 * H,
                          y_t, r, hr);
    }
}

/* The chunk on a team of two (parallel.h) when split by rows with few rows
 * per thread (chunk_input_by_team in common.h): [F1] of all its steps and
 * rows first, each member its half of the columns, then, once both are
 * done, the steps on each member's half of the rows. Alone ([0, 2)): all
 * of it. */
static void FN(lstm_chunk_team_rows)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = 4 * c->d->hidden_size;
    FN(rgemm_team_columns)(c->blas, p0, p1, c->n * B, GH, I, c->x + c->t0 * B * I, I, c->w->W_ih, c->W_ih_packed,
                           c->xw, GH);
    team_rows_after_input(p0, p1, rows_cut(c->lengths, B, c->t0, c->n), B, FN(lstm_chunk_rows), arg);
}

/* The chunk's steps on a team of two split by rows at rows_cut (common.h),
 * when the sequences' lengths differ (rnn_chunk_team_cut in rnn.c: why). */
static void FN(lstm_chunk_team_cut)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_chunk) *c = arg;
    team_rows_run(p0, p1, rows_cut(c->lengths, c->d->batch, c->t0, c->n), c->d->batch, FN(lstm_chunk_rows), arg);
}

/* The call's steps on hidden units [u0, u1) of every row, chunk by chunk,
 * for a team of two (parallel.h): parts [0, 1) and [1, 2) are the units
 * before and from units_cut(H), [0, 2) all of them. A unit's gates, cell
 * and output read only that unit's columns of the products, but the
 * recurrent product reads all of h_{t-1}: the members meet after every
 * step, and the state goes back and forth between two buffers, so that
 * neither writes the h_{t-1} the other may still be reading. Each member
 * computes its units' columns of every chunk's input product: one team
 * call for the whole pass (waking the other thread once per chunk cost
 * more than a chunk's few steps gain). Inference without projection only. */
static void FN(lstm_run_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size,
                    GH = 4 * c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    for (ptrdiff_t k0 = 0; k0 < T; k0 += c->Tc) {
        const ptrdiff_t n = c->Tc < T - k0 ? c->Tc : T - k0, t0 = rev ? T - k0 - n : k0;
        /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, 4H), the units' columns */
        FN(rgemm_units)(c->blas, 4, H, u0, u1, n * B, I, c->x + t0 * B * I, I, c->w->W_ih, c->W_ih_packed, 0,
                        c->xw, GH);
        for (ptrdiff_t k = 0; k < n; k++) {
            const ptrdiff_t t = t0 + step_time(k, n, rev), s = k0 + k;
            FN(lstm_step)(c->blas, c->d, c->w, c->W_hh_packed, c->bias, c->lengths, t, u0, u1,
                          c->xw + (t - t0) * B * GH, c->h[s % 2], c->c_n, c->h[(s + 1) % 2], c->c_n,
                          c->y + t * B * H, NULL, NULL);
            if (p1 - p0 == 1)
                crnn_parallel_barrier(p0);
        }
    }
}

/* The training forward pass on hidden units [u0, u1) of every row, all
 * steps, for a team of two (parallel.h), parts as lstm_run_units'. The
 * tape keeps each step's state in a slot of its own, so one buffer does;
 * the members meet after every step. [F1] into the tape's gates, each
 * member its units' columns, half by half even alone (train_units in
 * common.h). */
static void FN(lstm_train_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size,
                    GH = 4 * c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    /* [F1] gates = x @ W_ih.T   (T*B, I) x (I, 4H), the units' columns, half by half */
    FN(rgemm_team_units)(c->blas, p0, p1, 4, H, T * B, I, c->x, I, c->w->W_ih, c->W_ih_packed, c->xw, GH);
    for (ptrdiff_t k = 0; k < T; k++) {
        const ptrdiff_t t = step_time(k, T, rev);
        FN(lstm_step)(c->blas, c->d, c->w, c->W_hh_packed, c->bias, c->lengths, t, u0, u1, c->xw + t * B * GH,
                      c->ws_h + prev_slot(t, rev) * B * H, c->ws_c + prev_slot(t, rev) * B * H,
                      c->ws_h + next_slot(t, rev) * B * H, c->ws_c + next_slot(t, rev) * B * H, c->y + t * B * H,
                      NULL, NULL);
        if (p1 - p0 == 1)
            crnn_parallel_barrier(p0);
    }
}

/* The forward pipeline's (common.h) two parts: [F1] of a chunk, and the
 * chunk's steps on every row. */
static void FN(lstm_pipe_input)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    const FN(lstm_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = 4 * c->d->hidden_size;
    FN(rgemm)(c->blas, n * B, GH, I, c->x + t0 * B * I, I, CRNN_TRANS, c->w->W_ih, c->W_ih_packed, 0, xw, GH);
}

static void FN(lstm_pipe_steps)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    FN(lstm_chunk) *c = arg;
    c->t0 = t0, c->n = n, c->xw = xw;
    FN(lstm_chunk_rows)(c, 0, c->d->batch);
}

/* The forward pass; tape == NULL is inference (state kept in h_n, c_n,
 * input product in chunks), otherwise training (everything on the tape).
 * Arguments are checked by the callers. */
static void FN(lstm_run)(const crnn_blas *blas, const crnn_lstm_desc *d, const FN(crnn_weights) *w,
                         const int64_t *lengths, const real *x, const real *h0, const real *c0,
                         real *y, real *h_n, real *c_n, real *tape, real *workspace)
{
    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size, GH = 4 * d->hidden_size, P = lstm_P(d);
    const int rev = d->reverse != 0;
    real *bias = workspace;  /* (4H,) b_ih + b_hh, summed below (not for a fused stream step) */
    real *scratch = workspace + 2 * GH;

    /* Tape regions (training only). */
    real *ws_gates = tape;                                /* (T, B, 4H) */
    real *ws_c = tape ? ws_gates + T * B * GH : NULL;     /* (T+1, B, H) */
    real *ws_h = tape ? ws_c + (T + 1) * B * H : NULL;    /* (T+1, B, P) */
    real *ws_r = tape ? ws_h + (T + 1) * B * P : NULL;    /* (T, B, H) if P > 0 */

    const int proj = d->proj_size > 0;
    real *xw;                 /* (Tc, B, 4H) the input product of one chunk */
    real *r = NULL, *hr = NULL;  /* (B, H), (B, P) projection scratch, if P > 0 */
    real *h_other = NULL;     /* (B, H) the second state buffer, split by units */
    ptrdiff_t Tc;
    if (tape != NULL) {
        xw = ws_gates;  /* the gates of step t start as its input product */
        Tc = T;
        if (proj)
            hr = scratch;  /* and r is ws_r[t] */
        const ptrdiff_t first = rev ? T - 1 : 0;
        copy_or_zero(ws_h + prev_slot(first, rev) * B * P, h0, (size_t)(B * P) * sizeof(real));
        copy_or_zero(ws_c + prev_slot(first, rev) * B * H, c0, (size_t)(B * H) * sizeof(real));
    } else {
        Tc = chunk_steps(T, B, GH, d->chunk_steps);
        xw = scratch;
        if (proj) {
            r = scratch + Tc * B * GH;
            hr = r + B * H;
        } else if (lstm_units_shape(d)) {
            h_other = scratch + Tc * B * GH;
        }
        copy_or_zero(h_n, h0, (size_t)(B * P) * sizeof(real));
        copy_or_zero(c_n, c0, (size_t)(B * H) * sizeof(real));
    }
    /* the packed W_hh and W_ih: the caller's (crnn.h), else, when used, W_hh
     * packed here into the end of the workspace (rgemm.h) */
    const real *W_ih_packed = FN(given_packed)(w->W_ih_packed);
    const real *W_hh_packed = FN(given_packed)(w->W_hh_packed);
    /* split by units (common.h): inference without projection only; training
     * by rows (train_threads), without projection: [F4] calls the BLAS */
    const int units = h_other != NULL && FN(units_split)(blas, T, B, GH, P, H);
    const int train_split = tape != NULL && !proj && train_threads(blas, T, B, I, GH, P) > 1;
    const int train_units = tape != NULL && !proj && FN(train_units)(blas, T, B, GH, P, H);
    if (W_hh_packed == NULL && rgemm_shape(T, B)) {
        const size_t size = crnn_lstm_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER);
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, GH, P, units || train_split || train_units, CRNN_TRANS,
                                        w->W_hh, workspace + size - crnn_rgemm_packed_size(GH, P));
    }

    const int threads = units || train_split || train_units ? 2
                        : proj || tape != NULL ? 1
                                               : step_threads(blas, T, B, I, GH, P, W_hh_packed);
    /* [F1] runs in the packed kernel too when W_hh does (inference and
     * training: input_pack_shape in common.h): on W_ih packed by the
     * caller, or here just before W_hh; with two threads each does its own
     * rows', or its own columns' */
    if (W_ih_packed == NULL && W_hh_packed != NULL)
        W_ih_packed = FN(input_pack)(GH, I, w->W_ih,
                                     workspace + crnn_lstm_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER)
                                         - crnn_rgemm_packed_size(GH, P) - crnn_rgemm_packed_size(GH, I));
    FN(lstm_chunk) chunk = { blas, d, w, W_hh_packed, bias, lengths, 0, 0, xw, x, W_ih_packed,
                             ws_h, ws_c, proj ? ws_r : NULL, y, h_n, c_n, r, hr, { h_n, h_other }, Tc, 0 };
    /* split by rows: [F1] per step and row range, or first for the whole
     * chunk by the team; always the latter in training of the shapes that
     * split (one chunk, all steps), even on one thread: its two products
     * then give the bits of a split pass (team_half) */
    const int team_input = (tape != NULL && train_split_shape(T, B, I, GH, P))
                           || (threads > 1 && chunk_input_by_team(B));
    chunk.step_input = threads > 1 && !units && !team_input;

    /* A stream's step (inference, T = B = 1, valid), where both products
     * would take the matrix-vector kernel: [F1] too in the fused pass
     * (row_step.h), the same bits; it adds the biases itself. h_n, c_n
     * hold h0, c0 by now. */
    if (tape == NULL && T == 1 && B == 1 && !proj && threads == 1 && step_valid(lengths, 0, 0)
        && FN(row_step_pays)(4, H, W_hh_packed) && FN(row_step_input_pays)(4, H, I, W_ih_packed)
        && apart(y, h_n, (size_t)H * sizeof(real))) {
        FN(lstm_row_step)(H, 0, H, x, I, W_ih_packed, h_n, W_hh_packed, w->b_ih, w->b_hh, xw, c_n, c_n, y);
        memcpy(h_n, y, (size_t)H * sizeof(real));
        return;
    }
    FN(sum_biases)(bias, w->b_ih, w->b_hh, GH);

    /* a batch too small to split, in training: [F1] of the next chunk
     * beside the steps, into the tape (common.h) */
    const ptrdiff_t pipe_Tc = tape != NULL && threads == 1 && !proj && !team_input
                                  ? pipe_chunk_steps(blas, T, B, I, GH, P, T)
                                  : 0;
    if (train_units) {  /* a single sequence's training: split by units instead (common.h) */
        crnn_parallel_blas_solo_begin(blas);
        crnn_parallel_team(threads, FN(lstm_train_units), &chunk);
        crnn_parallel_blas_solo_end(blas);
    } else if (pipe_Tc > 0) {
        fwd_pipe pipe = { &chunk, FN(lstm_pipe_input), FN(lstm_pipe_steps), (char *)xw,
                          (size_t)(B * GH) * sizeof(real), T, pipe_Tc, rev };
        run_forward_pipe(blas, &pipe);
    } else if (units) {
        crnn_parallel_team(threads, FN(lstm_run_units), &chunk);
    } else {
        if (train_split)
            crnn_parallel_blas_solo_begin(blas);

        for (ptrdiff_t k0 = 0; k0 < T; k0 += Tc) {
            /* This chunk visits steps k0 .. k0+n-1, i.e. times t0 .. t0+n-1. */
            const ptrdiff_t n = Tc < T - k0 ? Tc : T - k0;
            const ptrdiff_t t0 = rev ? T - k0 - n : k0;

            /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, 4H), here unless the threads share it */
            if (threads == 1 && !team_input)
                FN(rgemm)(blas, n * B, GH, I, x + t0 * B * I, I, CRNN_TRANS, w->W_ih, W_ih_packed, 0, xw, GH);

            chunk.t0 = t0;
            chunk.n = n;
            if (team_input)
                crnn_parallel_team(threads, FN(lstm_chunk_team_rows), &chunk);
            else if (lengths_differ(lengths, B))
                crnn_parallel_team(threads, FN(lstm_chunk_team_cut), &chunk);
            else
                crnn_parallel_rows(threads, FN(lstm_chunk_rows), &chunk, B);
        }
        if (train_split)
            crnn_parallel_blas_solo_end(blas);
    }
    if (units && T % 2 == 1)  /* the last step wrote the other buffer */
        memcpy(h_n, h_other, (size_t)(B * P) * sizeof(real));
    if (tape != NULL) {
        const ptrdiff_t last = rev ? 0 : T - 1;
        memcpy(h_n, ws_h + next_slot(last, rev) * B * P, (size_t)(B * P) * sizeof(real));
        memcpy(c_n, ws_c + next_slot(last, rev) * B * H, (size_t)(B * H) * sizeof(real));
    }
}

crnn_status FN(crnn_lstm_forward)(const crnn_blas *blas, const crnn_lstm_desc *d,
                                  const FN(crnn_weights) *w, const int64_t *lengths,
                                  const real *x, const real *h0, const real *c0,
                                  real *y, real *h_n, real *c_n,
                                  real *workspace, size_t workspace_size)
{
    crnn_status s = FN(lstm_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL || c_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(workspace, workspace_size, crnn_lstm_workspace_size(d, CRNN_PASS_INFER));
    if (s != CRNN_OK)
        return s;
    FN(lstm_run)(blas, d, w, lengths, x, h0, c0, y, h_n, c_n, NULL, workspace);
    return CRNN_OK;
}

crnn_status FN(crnn_lstm_forward_train)(const crnn_blas *blas, const crnn_lstm_desc *d,
                                        const FN(crnn_weights) *w, const int64_t *lengths,
                                        const real *x, const real *h0, const real *c0,
                                        real *y, real *h_n, real *c_n,
                                        real *tape, size_t tape_size,
                                        real *workspace, size_t workspace_size)
{
    crnn_status s = FN(lstm_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL || c_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_lstm_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_lstm_workspace_size(d, CRNN_PASS_TRAIN));
    if (s != CRNN_OK)
        return s;
    FN(lstm_run)(blas, d, w, lengths, x, h0, c0, y, h_n, c_n, tape, workspace);
    return CRNN_OK;
}

/* [B2] and the cell part of [B3] for one sequence: from dL/dr (r = o *
 * tanh(c_new)) and dL/dc_new, the gradients of the four pre-activations and
 * dL/dc_prev. The arrays never overlap: `restrict` lets the compiler
 * vectorise the loop (it otherwise gives up on the run-time overlap checks
 * of thirteen pointers and runs it scalar). */
static void FN(lstm_cell_backward)(ptrdiff_t H,
                                   const real *restrict i, const real *restrict f,  /* (H,) gates */
                                   const real *restrict g, const real *restrict o,
                                   const real *restrict cp,      /* (H,) c_prev */
                                   const real *restrict tanh_c,  /* (H,) tanh(c_new) */
                                   const real *restrict dr_b,    /* (H,) dL/dr */
                                   real *restrict dcb,           /* (H,) dL/dc_new in, dL/dc_prev out */
                                   real *restrict dpi, real *restrict dpf,  /* (H,) dL/d(pre-activation) */
                                   real *restrict dpg, real *restrict dpo)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        /* [B2] in the forward pass: r = o * tanh(c_new), c_new = f * c + i * g */
        const real dc_new = dcb[j] + dr_b[j] * o[j] * (1 - tanh_c[j] * tanh_c[j]);
        const real d_o = dr_b[j] * tanh_c[j];
        const real d_i = dc_new * g[j];
        const real d_f = dc_new * cp[j];
        const real d_g = dc_new * i[j];
        /* through the activations, from their saved outputs:
         * sigmoid' = s * (1 - s), tanh' = 1 - t * t */
        dpi[j] = d_i * i[j] * (1 - i[j]);
        dpf[j] = d_f * f[j] * (1 - f[j]);
        dpg[j] = d_g * (1 - g[j] * g[j]);
        dpo[j] = d_o * o[j] * (1 - o[j]);
        /* [B3] c_{t-1} reaches c_new through f */
        dcb[j] = dc_new * f[j];
    }
}

/* [B4] for one chunk of steps: dx of those steps and their share of the
 * parameter gradients. Every pointer is at the chunk's first step: dpre
 * (rows, 4H), x (rows, I), h_prev (rows, P) the states the steps started
 * from, dx (rows, I) or NULL (rows: the chunk's steps * B, or its live rows
 * packed, live_row_count in common.h); dh_new (rows_r, P) and r (rows_r, H)
 * if P > 0, all steps * B rows; W_ih_dx W_ih packed for dx (dx_pack in
 * common.h) or NULL. Parts
 * [p0, p1) of a team of two (team_half): a member takes half the columns of
 * dx and half the rows of each weight gradient (and the matching bias
 * entries); [0, 2) all of them. */
static void FN(lstm_chunk_grads)(const crnn_blas *blas, const crnn_lstm_desc *d,
                                 const FN(crnn_weights) *w, const real *W_ih_dx, ptrdiff_t rows, ptrdiff_t rows_r,
                                 ptrdiff_t p0, ptrdiff_t p1, const real *dpre, const real *dh_new, const real *x,
                                 const real *h_prev, const real *r,
                                 real *dx, const FN(crnn_grads) *grads)
{
    const ptrdiff_t I = d->input_size, H = d->hidden_size, GH = 4 * d->hidden_size, P = lstm_P(d);
    ptrdiff_t g0, g1, q0, q1;  /* this part's rows of dW_ih/dW_hh, of dW_hr */
    team_half(p0, p1, GH, &g0, &g1);
    team_half(p0, p1, P, &q0, &q1);
    if (dx != NULL)  /* dx = dpre @ W_ih   (rows, 4H) x (4H, I), this part's columns */
        FN(dx_part)(blas, p0, p1, rows, GH, I, dpre, w->W_ih, W_ih_dx, dx);
    if (grads == NULL || g1 == g0)
        return;
    if (grads->dW_ih != NULL)  /* dW_ih += dpre.T @ x   (4H, rows) x (rows, I) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, I, rows, 1, dpre + g0, GH, x, I, 1,
                 grads->dW_ih + g0 * I, I);
    if (grads->dW_hh != NULL)  /* dW_hh += dpre.T @ h_prev   (4H, rows) x (rows, P) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, P, rows, 1, dpre + g0, GH, h_prev, P, 1,
                 grads->dW_hh + g0 * P, P);
    if (grads->db_ih != NULL)  /* db_ih += dpre.sum(axis=0) */
        FN(add_colsum)(grads->db_ih, dpre, rows, GH, g0, g1);
    if (grads->db_hh != NULL)  /* b_hh enters exactly as b_ih does */
        FN(add_colsum)(grads->db_hh, dpre, rows, GH, g0, g1);
    if (r != NULL && grads->dW_hr != NULL && q1 > q0)  /* [B1] dW_hr += dh_new.T @ r   (P, rows_r) x (rows_r, H) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, q1 - q0, H, rows_r, 1, dh_new + q0, P, r, H, 1,
                 grads->dW_hr + q0 * H, H);
}

/* One chunk of the backward pass: the steps k = kend, kend-1, .., kend-nt+1
 * (times t0 .. t0+nt-1), then their [B4]. */
typedef struct {
    const crnn_blas *blas;
    const crnn_lstm_desc *d;
    const FN(crnn_weights) *w;
    const int64_t *lengths;
    const real *x, *dy, *W_hh_packed;
    const real *W_hh_back;         /* one sequence: W_hh in the fused step's layout (row_step.h), or NULL */
    const real *W_ih_dx;           /* W_ih packed for dx (dx_pack in common.h), or NULL */
    const real *ws_gates, *ws_c, *ws_h, *ws_r;  /* the tape */
    real *dpre, *dh, *dc;          /* (Tc, B, 4H) the chunk's; (B, P), (B, H) running */
    real *dh_new_all, *dr;         /* (Tc, B, P), (B, H) if P > 0 */
    real *x_live, *h_live;         /* (Tc*B, I), (Tc*B, P): the chunk's live rows, packed */
    real *scratch;                 /* 2H per team member: tanh(c_new), dL/dr of a row */
    real *dx;
    const FN(crnn_grads) *grads;
    back_span span;                /* the chunk (common.h) */
    int halves;                    /* [B4] by halves even alone (team_half in common.h) */
} FN(lstm_back_chunk);

/* Asks for the tape rows the backward step of one sequence (B = 1, no
 * projection) at time t reads: they come from L3 or memory. */
static void FN(prefetch_rows)(const FN(lstm_back_chunk) *c, ptrdiff_t t)
{
    const ptrdiff_t H = c->d->hidden_size, GH = 4 * H;
    const int rev = c->d->reverse != 0;
    const char *rows[4] = { (const char *)(c->ws_gates + t * GH), (const char *)(c->ws_c + prev_slot(t, rev) * H),
                            (const char *)(c->ws_c + next_slot(t, rev) * H), (const char *)(c->dy + t * H) };
    const ptrdiff_t bytes[4] = { GH * (ptrdiff_t)sizeof(real), H * (ptrdiff_t)sizeof(real),
                                 H * (ptrdiff_t)sizeof(real), H * (ptrdiff_t)sizeof(real) };
    for (int r = 0; r < 4; r++)
        for (ptrdiff_t at = 0; at < bytes[r]; at += 64)
            __builtin_prefetch(rows[r] + at, 0, 3);
}

/* [B1]-[B3] of the chunk's steps on the sequences (rows) [b0, b1) only: row b
 * of dh_{t-1} and dc_{t-1} reads only row b of step t, so row ranges may run
 * on different threads. scratch: (2H,). */
static void FN(lstm_back_rows)(const FN(lstm_back_chunk) *c, ptrdiff_t b0, ptrdiff_t b1, real *scratch)
{
    const crnn_lstm_desc *d = c->d;
    const ptrdiff_t T = d->steps, B = d->batch, H = d->hidden_size, GH = 4 * d->hidden_size, P = lstm_P(d);
    const int rev = d->reverse != 0, proj = d->proj_size > 0;
    const ptrdiff_t Ii = CRNN_LSTM_I * H, If = CRNN_LSTM_F * H, Ig = CRNN_LSTM_G * H,
                    Io = CRNN_LSTM_O * H;
    real *scratch_tanh_c = scratch, *scratch_dr = scratch + H;  /* (H,) each, one row's */
    for (ptrdiff_t k = c->span.kend; k > c->span.kend - c->span.nt; k--) {
        const ptrdiff_t t = step_time(k, T, rev);
        const real *gates = c->ws_gates + t * B * GH;
        const real *c_prev = c->ws_c + prev_slot(t, rev) * B * H;
        const real *c_new = c->ws_c + next_slot(t, rev) * B * H;
        const real *dy_t = c->dy + t * B * P;
        real *dpre_t = c->dpre + (t - c->span.t0) * B * GH;

        /* One sequence (B = 1): [B2] and [B3] fused (row_step.h); a masked
         * step passes dh and dc through, its gates get no gradient */
        if (c->W_hh_back != NULL) {
            if (k > 0)  /* the next step's tape rows, from L3 or memory, while this one runs */
                FN(prefetch_rows)(c, step_time(k - 1, T, rev));
            if (step_valid(c->lengths, 0, t))
                FN(lstm_row_back)(H, (int)(k & 1), gates, c_prev, c_new, dy_t, c->dh, c->dc, c->W_hh_back, dpre_t);
            else
                memset(dpre_t, 0, (size_t)GH * sizeof(real));
            continue;
        }

        if (proj) {
            real *dh_new = c->dh_new_all + (t - c->span.t0) * B * P;
            for (ptrdiff_t b = b0; b < b1; b++) {
                const int valid = step_valid(c->lengths, b, t);
                for (ptrdiff_t j = 0; j < P; j++) {
                    const ptrdiff_t q = b * P + j;
                    /* h_t feeds both y_t and step t+1: the two gradients meet here. */
                    dh_new[q] = valid ? dy_t[q] + c->dh[q] : 0;
                    /* [B3], masked part: an invalid step passed h_{t-1} through. */
                    c->dh[q] = valid ? 0 : c->dh[q];
                }
            }
            /* [B1] in the forward pass: h = r @ W_hr.T, so dr = dh_new @ W_hr
             * (B, P) x (P, H); dW_hr waits for the chunk's [B4]. */
            FN(gemm)(c->blas, CRNN_NO_TRANS, CRNN_NO_TRANS, b1 - b0, H, P, 1, dh_new + b0 * P, P, c->w->W_hr, H,
                     0, c->dr + b0 * H, H);
        }

        for (ptrdiff_t b = b0; b < b1; b++) {
            real *dpb = dpre_t + b * GH;     /* dpre of sequence b */
            if (!step_valid(c->lengths, b, t)) {
                /* a masked step kept c and h: dc, dh pass through unchanged
                 * ([B3], masked part) and its gates get no gradient */
                memset(dpb, 0, (size_t)GH * sizeof(real));
                continue;
            }
            const real *gb = gates + b * GH;
            const real *i = gb + Ii, *f = gb + If, *g = gb + Ig, *o = gb + Io;
            const real *cp = c_prev + b * H;
            real *dcb = c->dc + b * H;
            real *dr_b;  /* dL/d(o * tanh(c_new)) */
            if (proj) {
                dr_b = c->dr + b * H;
            } else {
                /* h_t feeds both y_t and step t+1: the two gradients meet here;
                 * [B3] h_{t-1} gets its gradient only through W_hh below. */
                real *dhb = c->dh + b * P;
                const real *dyb = dy_t + b * P;
                dr_b = scratch_dr;
                for (ptrdiff_t j = 0; j < H; j++) {
                    dr_b[j] = dyb[j] + dhb[j];
                    dhb[j] = 0;
                }
            }
            FN(vtanh)(H, c_new + b * H, NULL, scratch_tanh_c);
            FN(lstm_cell_backward)(H, i, f, g, o, cp, scratch_tanh_c, dr_b, dcb,
                                   dpb + Ii, dpb + If, dpb + Ig, dpb + Io);
        }
        /* [B3] dh += dpre[t] @ W_hh   (B, 4H) x (4H, P), on the rows up to the
         * last sequence valid at t: the masked ones after it add 0 */
        const ptrdiff_t live = live_rows(c->lengths != NULL ? c->lengths + b0 : NULL, b1 - b0, t);
        if (live > 0)
            FN(rgemm)(c->blas, live, P, GH, dpre_t + b0 * GH, GH, CRNN_NO_TRANS, c->w->W_hh, c->W_hh_packed, 1,
                      c->dh + b0 * P, P);
    }
}

static void FN(lstm_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1);

/* The chunk on a team of two (parallel.h): the steps on each member's half
 * of the rows, then, once both are done, [B4] split between them. Alone
 * ([0, 2)): all of it. */
static void FN(lstm_back_team)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_back_chunk) *c = arg;
    ptrdiff_t b0, b1;
    team_rows(p0, p1, rows_cut(c->lengths, c->d->batch, c->span.t0, c->span.nt), c->d->batch, &b0, &b1);
    FN(lstm_back_rows)(c, b0, b1, c->scratch + p0 * 2 * c->d->hidden_size);
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
    FN(lstm_back_grads)(arg, p0, p1);
}

/* The pipeline's (common.h) two parts: the chunk's steps on every row, and
 * its [B4] as a team function. */
static void FN(lstm_back_steps)(void *arg)
{
    const FN(lstm_back_chunk) *c = arg;
    FN(lstm_back_rows)(c, 0, c->d->batch, c->scratch);
}

static void FN(lstm_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(lstm_back_chunk) *c = arg;
    const crnn_lstm_desc *d = c->d;
    const ptrdiff_t B = d->batch, I = d->input_size, H = d->hidden_size, GH = 4 * H, P = lstm_P(d);
    const ptrdiff_t t0 = c->span.t0, nt = c->span.nt;
    const int rev = d->reverse != 0;
    const ptrdiff_t rows = live_row_count(c->lengths, B, t0, nt);
    const real *x = c->x + t0 * B * I, *h_prev = c->ws_h + prev_slot(t0, rev) * B * P;
    const real *r = c->ws_r != NULL ? c->ws_r + t0 * B * H : NULL;
    real *dx = c->dx != NULL ? c->dx + t0 * B * I : NULL;
    const int packed = rows < nt * B;  /* finished rows to leave out (common.h) */
    if (packed) {
        pack_chunk_inputs(c->lengths, B, t0, nt, p0, p1, c->dpre, (size_t)GH * sizeof(real), x,
                          (size_t)I * sizeof(real), c->x_live, h_prev, (size_t)P * sizeof(real), c->h_live);
        x = c->x_live;
        h_prev = c->h_live;
    }
    /* alone, a shape that splits still goes half by half (team_half) */
    const ptrdiff_t part = c->halves ? 1 : p1 - p0;
    for (ptrdiff_t q = p0; q < p1; q += part)
        FN(lstm_chunk_grads)(c->blas, d, c->w, c->W_ih_dx, rows, nt * B, q, q + part, c->dpre, c->dh_new_all, x,
                             h_prev, r, dx, c->grads);
    if (packed && dx != NULL)  /* dx came out packed: back to its steps' rows */
        unpack_dx(c->lengths, B, t0, nt, I, p0, p1, c->W_ih_dx, sizeof(real), dx);
}

crnn_status FN(crnn_lstm_backward)(const crnn_blas *blas, const crnn_lstm_desc *d,
                                   const FN(crnn_weights) *w, const int64_t *lengths,
                                   const real *x, const real *tape, size_t tape_size,
                                   const real *dy, const real *dh_n, const real *dc_n,
                                   real *dx, real *dh0, real *dc0, const FN(crnn_grads) *grads,
                                   real *workspace, size_t workspace_size)
{
    crnn_status s = FN(lstm_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (dy == NULL || (grads != NULL && grads->dW_hr != NULL && d->proj_size == 0))
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_lstm_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_lstm_workspace_size(d, CRNN_PASS_BACKWARD));
    if (s != CRNN_OK)
        return s;

    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size, GH = 4 * d->hidden_size, P = lstm_P(d);
    const int proj = d->proj_size > 0;

    const real *ws_gates = tape;                      /* (T, B, 4H) */
    const real *ws_c = ws_gates + T * B * GH;         /* (T+1, B, H) */
    const real *ws_h = ws_c + (T + 1) * B * H;        /* (T+1, B, P) */
    const real *ws_r = ws_h + (T + 1) * B * P;        /* (T, B, H) if P > 0 */

    const ptrdiff_t Tc = backward_chunk_steps(T, B, GH, d->chunk_steps);
    real *dpre = workspace;                           /* (Tc, B, 4H) dL/d(pre-activations), a chunk */
    real *dh = dpre + Tc * B * GH;                    /* (B, P) dL/dh_t, running */
    real *dc = dh + B * P;                            /* (B, H) dL/dc_t, running */
    real *dh_new_all = proj ? dc + B * H : NULL;      /* (Tc, B, P) if P > 0, a chunk */
    real *dr = proj ? dh_new_all + Tc * B * P : NULL; /* (B, H) if P > 0 */
    real *scratch = (proj ? dr + B * H : dc + B * H); /* (2, 2H) per-thread rows */
    real *x_live = scratch + 4 * H;                   /* (Tc*B, I) */
    real *h_live = x_live + Tc * B * I;               /* (Tc*B, P) */
    copy_or_zero(dh, dh_n, (size_t)(B * P) * sizeof(real));
    copy_or_zero(dc, dc_n, (size_t)(B * H) * sizeof(real));
    /* split over two threads (common.h): without projection, whose [B1]
     * calls the BLAS per step */
    const int threads = proj ? 1 : train_threads(blas, T, B, I, GH, P);
    /* a batch too small to split: the steps and the products side by side (common.h) */
    const ptrdiff_t pipe_Tc = proj ? 0 : pipe_chunk_steps(blas, T, B, I, GH, P, Tc / 2);
    /* W_hh (4H, P) packed for the product dpre @ W_hh (rgemm.h), or, for
     * one sequence whose steps fuse (row_step.h), in the fused step's
     * layout (W_hh_back); else NULL */
    const real *W_hh_packed = NULL, *W_hh_back = NULL;
    real *W_space = workspace + crnn_lstm_workspace_size(d, CRNN_PASS_BACKWARD) - crnn_rgemm_packed_size(P, GH);
    if (rgemm_shape(T, B) && B == 1 && !proj && FN(lstm_row_back_pays)(H, cache_line_up(W_space)))
        W_hh_back = FN(lstm_row_back_pack)(H, w->W_hh, cache_line_up(W_space));
    else if (rgemm_shape(T, B))
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, P, GH, threads > 1 || pipe_Tc > 0, CRNN_NO_TRANS, w->W_hh,
                                        W_space);
    const real *W_ih_dx = FN(dx_pack)(GH, I, w->W_ih, W_hh_packed != NULL || W_hh_back != NULL,
                                      W_space - crnn_rgemm_packed_size(I, GH));

    /* The forward's steps in the opposite order, in chunks of Tc steps:
     * dpre holds one chunk, and [B4] runs on it after the chunk's last step. */
    FN(lstm_back_chunk) chunk = { blas, d, w, lengths, x, dy, W_hh_packed, W_hh_back, W_ih_dx, ws_gates, ws_c, ws_h,
                                  proj ? ws_r : NULL, dpre, dh, dc, dh_new_all, dr, x_live, h_live, scratch, dx, grads,
                                  { 0, 0, 0 },
                                  !proj && train_split_shape(T, B, I, GH, P) };
    if (pipe_Tc > 0) {  /* two chunk jobs, each with half of dpre */
        FN(lstm_back_chunk) second = chunk;
        chunk.halves = second.halves = 1;
        second.dpre = dpre + pipe_Tc * B * GH;
        second.x_live = x_live + pipe_Tc * B * I;
        second.h_live = h_live + pipe_Tc * B * P;
        back_pipe pipe = { { &chunk, &second }, { &chunk.span, &second.span }, FN(lstm_back_steps),
                           FN(lstm_back_grads), T, pipe_Tc, d->reverse != 0 };
        run_backward_pipe(blas, &pipe);
    } else {
        run_backward_chunks(blas, threads, T, Tc, d->reverse != 0, FN(lstm_back_team), &chunk, &chunk.span);
    }
    if (dh0 != NULL)
        memcpy(dh0, dh, (size_t)(B * P) * sizeof(real));
    if (dc0 != NULL)
        memcpy(dc0, dc, (size_t)(B * H) * sizeof(real));
    return CRNN_OK;
}

#endif /* part 2 */

/* ===== part 3: compile part 2 for float and double ======================= */
#ifndef CRNN_INSTANCE
#define CRNN_INSTANCE
#define real float
#define FN(name) name##_f32
#include "lstm.c"
#undef real
#undef FN
#define real double
#define FN(name) name##_f64
#include "lstm.c"
#undef real
#undef FN
#undef CRNN_INSTANCE
#endif
