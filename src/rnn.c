/* rnn.c -- simple (Elman) RNN: one layer, one direction, a whole sequence.
 *
 *     h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu
 *
 * The spec is crnn/reference/rnn.py; the step tags match it:
 *     [F1] input projection for all steps      [F2] recurrent product per step
 *     [F3] activation and masked state update  [B1] gradient through act
 *     [B2] dh_{t-1} per step                   [B3] weight/bias grads, dx per chunk of steps
 *
 * Tape (crnn_rnn_tape_size = (T+1)*B*H elements):
 *     ws_h  (T+1, B, H)  the state before and after every step, in time
 *                        order (see prev_slot/next_slot in common.h)
 * The reference's h_prev[t] is ws_h[prev_slot(t)], and where step t is valid
 * its y[t] (= h_new, all backward needs for act') is ws_h[next_slot(t)].
 *
 * Workspace (crnn_rnn_workspace_size):
 *     infer     2H + Tc*B*H   biases (b_ih, b_hh: zeros if NULL), the input
 *                             product of Tc = chunk_steps(..) steps
 *               [+ B*H]       a second state buffer for the shapes of
 *                             units_shape() (common.h)
 *     train     2H            biases; [F1] writes into ws_h (the slot each
 *                             step then overwrites with its state)
 *     backward  Tc*B*H + B*H  dpre of one chunk of Tc = backward_chunk_steps(..)
 *                             steps, running dh: backward visits the steps in
 *                             chunks and runs [B3] per chunk, so no workspace
 *                             grows with T
 *               + Tc*B*(I+H)  the chunk's x and h_prev, live rows only
 *                             (pack_live_rows in common.h), with lengths
 *     infer, train, backward: + packed W_hh (rgemm.h) for the shapes of
 *                             rgemm_shape(), at the end
 *     infer, train: + packed W_ih before it for the shapes of input_pack_shape()
 *            (common.h)
 *     backward: + W_ih packed for dx (dx_pack in common.h) before it, for
 *               the shapes of rgemm_shape()
 *
 * Layout of this file: part 1 is dtype-free (sizes, desc check); part 2 is
 * the kernels, written once over `real`; part 3 compiles part 2 for float
 * and double by including this file into itself (see common.h).
 */

/* ===== part 1: dtype-free ================================================ */
#ifndef CRNN_INSTANCE
#include "common.h"

static crnn_status rnn_check_desc(const crnn_rnn_desc *d)
{
    if (d == NULL || d->steps < 1 || d->batch < 1 || d->input_size < 1 || d->hidden_size < 1 || d->chunk_steps < 0)
        return CRNN_EINVAL;
    if (d->activation != CRNN_TANH && d->activation != CRNN_RELU)
        return CRNN_EINVAL;
    return CRNN_OK;
}

/* Inference of this shape may split the units over two threads (common.h). */
static int rnn_units_shape(const crnn_rnn_desc *d)
{
    return units_shape(d->steps, d->batch, d->hidden_size, d->hidden_size, d->hidden_size);
}

size_t crnn_rnn_workspace_size(const crnn_rnn_desc *d, crnn_pass pass)
{
    if (rnn_check_desc(d) != CRNN_OK)
        return 0;
    const size_t T = (size_t)d->steps, B = (size_t)d->batch, H = (size_t)d->hidden_size, I = (size_t)d->input_size;
    const size_t packed = rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(d->hidden_size, d->hidden_size) : 0;
    const size_t packed_ih = input_pack_shape(d->steps, d->batch)
                                 ? crnn_rgemm_packed_size(d->hidden_size, d->input_size) : 0;
    switch (pass) {
    case CRNN_PASS_INFER:
        return 2 * H + (size_t)chunk_steps(d->steps, d->batch, d->hidden_size, d->chunk_steps) * B * H
               + (rnn_units_shape(d) ? B * H : 0) + packed_ih + packed;
    case CRNN_PASS_TRAIN:
        return 2 * H + packed_ih + packed;
    case CRNN_PASS_BACKWARD:
        return (size_t)backward_chunk_steps((ptrdiff_t)T, d->batch, d->hidden_size, d->chunk_steps) * B * (H + I + H)
               + B * H + packed
               + (rgemm_shape(d->steps, d->batch) ? crnn_rgemm_packed_size(d->input_size, d->hidden_size) : 0);
    }
    return 0;
}

size_t crnn_rnn_tape_size(const crnn_rnn_desc *d)
{
    if (rnn_check_desc(d) != CRNN_OK)
        return 0;
    return ((size_t)d->steps + 1) * (size_t)d->batch * (size_t)d->hidden_size;
}
#endif /* part 1 */

/* ===== part 2: kernels over `real` ======================================= */
#ifdef CRNN_INSTANCE

/* Checks shared by the three entry points. */
static crnn_status FN(rnn_check)(const crnn_blas *blas, const crnn_rnn_desc *d,
                                 const FN(crnn_weights) *w, const int64_t *lengths,
                                 const real *x)
{
    crnn_status s = rnn_check_desc(d);
    if (s != CRNN_OK)
        return s;
    if (!FN(blas_ok)(blas) || w == NULL || w->W_ih == NULL || w->W_hh == NULL
        || w->W_hr != NULL || x == NULL)
        return CRNN_EINVAL;
    return check_lengths(lengths, d->steps, d->batch);
}

/* One step t for the whole batch, on hidden units [u0, u1): [F2] and [F3].
 * pre (B, H) holds x_t W_ih^T on entry, in the columns of those units;
 * h_out may be h_prev (inference updates the state in place) when the step
 * covers all units, and pre may be h_out (training: the tape slot is
 * reused); every element is read before it is written. */
static void FN(rnn_step)(const crnn_blas *blas, const crnn_rnn_desc *d, const real *W_hh,
                         const real *W_hh_packed, /* rgemm.h, or NULL: BLAS */
                         const real *bias,     /* (H,) b_ih + b_hh */
                         const int64_t *lengths, ptrdiff_t t,
                         ptrdiff_t u0, ptrdiff_t u1,
                         real *pre,            /* (B, H) */
                         const real *h_prev,   /* (B, H) h_{t-1} */
                         real *h_out,          /* (B, H) h_t */
                         real *y_t)            /* (B, H) */
{
    const ptrdiff_t B = d->batch, H = d->hidden_size, n = u1 - u0;

    /* [F2] pre += h_prev @ W_hh.T, the units' columns, on the rows up to the
     * last sequence still running (live_rows) */
    const ptrdiff_t live = live_rows(lengths, B, t);
    if (live > 0)
        FN(rgemm_units)(blas, 1, H, u0, u1, live, H, h_prev, H, W_hh, W_hh_packed, 1, pre, H);

    /* [F3] h_new = act(pre + b_ih + b_hh), a sequence (row) at a time: a
     * valid step outputs it and keeps it, an invalid one outputs 0 and keeps
     * h_prev. */
    for (ptrdiff_t b = 0; b < B; b++) {
        real *pb = pre + b * H + u0, *yb = y_t + b * H + u0;
        if (!step_valid(lengths, b, t)) {
            memset(yb, 0, (size_t)n * sizeof(real));
            copy_row(h_out + b * H + u0, h_prev + b * H + u0, (size_t)n * sizeof(real));
            continue;
        }
        if (d->activation == CRNN_TANH) {
            FN(vtanh)(n, pb, bias + u0, yb);  /* the bias added on the way in */
        } else {
            /* relu as `a < 0 ? 0 : a` lets NaN through, as np.maximum does */
            for (ptrdiff_t j = 0; j < n; j++) {
                const real a = pb[j] + bias[u0 + j];
                yb[j] = a < 0 ? 0 : a;
            }
        }
        copy_row(h_out + b * H + u0, yb, (size_t)n * sizeof(real));
    }
}

/* The steps of one chunk of the forward pass, for any range of rows. */
typedef struct {
    const crnn_blas *blas;
    const crnn_rnn_desc *d;
    const real *W_ih, *W_ih_packed;  /* W_ih packed, for [F1] on the threads */
    const real *W_hh, *W_hh_packed, *bias;
    const int64_t *lengths;
    ptrdiff_t t0, n;    /* times t0 .. t0+n-1 */
    const real *x;
    real *xw;           /* (n, B, H) their input products */
    real *ws_h;         /* the tape (training), or NULL */
    real *y, *h_n;
    real *h[2];         /* split by units: the state before step s in h[s % 2], after it in the other */
    ptrdiff_t Tc;       /* split by units: steps per chunk (the team runs every chunk) */
    int step_input;    /* split by rows: each row range computes its [F1] step by step */
} FN(rnn_chunk);

/* The chunk's steps on the sequences (rows) [b0, b1) only: a row reads
 * nothing of other rows, so row ranges may run on different threads
 * (parallel.h). rnn_step sees them as a batch of b1 - b0. */
static void FN(rnn_chunk_rows)(void *arg, ptrdiff_t b0, ptrdiff_t b1)
{
    const FN(rnn_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size;
    const int rev = c->d->reverse != 0;
    crnn_rnn_desc rows = *c->d;
    rows.batch = b1 - b0;
    const int64_t *lengths = c->lengths != NULL ? c->lengths + b0 : NULL;
    for (ptrdiff_t k = 0; k < c->n; k++) {
        const ptrdiff_t t = c->t0 + step_time(k, c->n, rev);
        const real *h_prev = c->ws_h != NULL ? c->ws_h + prev_slot(t, rev) * B * H : c->h_n;
        real *h_out = c->ws_h != NULL ? c->ws_h + next_slot(t, rev) * B * H : c->h_n;
        real *pre = c->xw + (t - c->t0) * B * H + b0 * H;
        const ptrdiff_t live = live_rows(lengths, b1 - b0, t);
        if (c->step_input && live > 0)  /* [F1] pre = x[t, b0:b1] @ W_ih.T, the live rows' */
            FN(rgemm)(c->blas, live, H, I, c->x + t * B * I + b0 * I, I, CRNN_TRANS, c->W_ih,
                      c->W_ih_packed, 0, pre, H);
        FN(rnn_step)(c->blas, &rows, c->W_hh, c->W_hh_packed, c->bias, lengths, t, 0, H,
                     pre, h_prev + b0 * H, h_out + b0 * H, c->y + t * B * H + b0 * H);
    }
}

/* The chunk on a team of two (parallel.h) when split by rows with few rows
 * per thread (chunk_input_by_team in common.h): [F1] of all its steps and
 * rows first, each member its half of the columns, then, once both are
 * done, the steps on each member's half of the rows. Alone ([0, 2)): all
 * of it. */
static void FN(rnn_chunk_team_rows)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = c->d->hidden_size;
    FN(rgemm_team_columns)(c->blas, p0, p1, c->n * B, GH, I, c->x + c->t0 * B * I, I, c->W_ih, c->W_ih_packed,
                           c->xw, GH);
    team_rows_after_input(p0, p1, rows_cut(c->lengths, B, c->t0, c->n), B, FN(rnn_chunk_rows), arg);
}

/* The chunk's steps on a team of two split by rows at rows_cut (common.h),
 * when the sequences' lengths differ: crnn_parallel_rows's split learns the
 * threads' speeds from rows of equal work, and its halves by count would
 * leave the long sequences' thread most of the work. */
static void FN(rnn_chunk_team_cut)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_chunk) *c = arg;
    team_rows_run(p0, p1, rows_cut(c->lengths, c->d->batch, c->t0, c->n), c->d->batch, FN(rnn_chunk_rows), arg);
}

/* The call's steps on hidden units [u0, u1) of every row, chunk by chunk,
 * for a team of two (parallel.h): parts [0, 1) and [1, 2) are the units
 * before and from units_cut(H), [0, 2) all of them. A unit's output reads
 * only that unit's columns of the products, but the recurrent product
 * reads all of h_{t-1}: the members meet after every step, and the state
 * goes back and forth between two buffers, so that neither writes the
 * h_{t-1} the other may still be reading. Each member computes its units'
 * columns of every chunk's input product: one team call for the whole
 * pass, as lstm_run_units. Inference only. */
static void FN(rnn_run_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    for (ptrdiff_t k0 = 0; k0 < T; k0 += c->Tc) {
        const ptrdiff_t n = c->Tc < T - k0 ? c->Tc : T - k0, t0 = rev ? T - k0 - n : k0;
        /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, H), the units' columns */
        FN(rgemm_units)(c->blas, 1, H, u0, u1, n * B, I, c->x + t0 * B * I, I, c->W_ih, c->W_ih_packed, 0,
                        c->xw, H);
        for (ptrdiff_t k = 0; k < n; k++) {
            const ptrdiff_t t = t0 + step_time(k, n, rev), s = k0 + k;
            FN(rnn_step)(c->blas, c->d, c->W_hh, c->W_hh_packed, c->bias, c->lengths, t, u0, u1,
                         c->xw + (t - t0) * B * H, c->h[s % 2], c->h[(s + 1) % 2], c->y + t * B * H);
            if (p1 - p0 == 1)
                crnn_parallel_barrier(p0);
        }
    }
}

/* The training forward pass on hidden units [u0, u1) of every row, all
 * steps, for a team of two (parallel.h), as lstm_train_units. */
static void FN(rnn_train_units)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_chunk) *c = arg;
    const ptrdiff_t T = c->d->steps, B = c->d->batch, I = c->d->input_size, H = c->d->hidden_size;
    ptrdiff_t u0, u1;
    team_units(p0, p1, H, &u0, &u1);
    const int rev = c->d->reverse != 0;
    /* [F1] gates = x @ W_ih.T   (T*B, I) x (I, H), the units' columns, half by half */
    FN(rgemm_team_units)(c->blas, p0, p1, 1, H, T * B, I, c->x, I, c->W_ih, c->W_ih_packed, c->xw, H);
    for (ptrdiff_t k = 0; k < T; k++) {
        const ptrdiff_t t = step_time(k, T, rev);
        FN(rnn_step)(c->blas, c->d, c->W_hh, c->W_hh_packed, c->bias, c->lengths, t, u0, u1, c->xw + t * B * H,
                     c->ws_h + prev_slot(t, rev) * B * H, c->ws_h + next_slot(t, rev) * B * H, c->y + t * B * H);
        if (p1 - p0 == 1)
            crnn_parallel_barrier(p0);
    }
}

/* The forward pipeline's (common.h) two parts: [F1] of a chunk, and the
 * chunk's steps on every row. */
static void FN(rnn_pipe_input)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    const FN(rnn_chunk) *c = arg;
    const ptrdiff_t B = c->d->batch, I = c->d->input_size, GH = c->d->hidden_size;
    FN(rgemm)(c->blas, n * B, GH, I, c->x + t0 * B * I, I, CRNN_TRANS, c->W_ih, c->W_ih_packed, 0, xw, GH);
}

static void FN(rnn_pipe_steps)(void *arg, ptrdiff_t t0, ptrdiff_t n, void *xw)
{
    FN(rnn_chunk) *c = arg;
    c->t0 = t0, c->n = n, c->xw = xw;
    FN(rnn_chunk_rows)(c, 0, c->d->batch);
}

/* The forward pass; tape == NULL is inference (state kept in h_n, input
 * product in chunks), otherwise training (states and input product on the
 * tape). Arguments are checked by the callers. */
static void FN(rnn_run)(const crnn_blas *blas, const crnn_rnn_desc *d, const FN(crnn_weights) *w,
                        const int64_t *lengths, const real *x, const real *h0,
                        real *y, real *h_n, real *tape, real *workspace)
{
    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size;
    const int rev = d->reverse != 0;
    real *bias = workspace;  /* (H,) */
    FN(sum_biases)(bias, w->b_ih, w->b_hh, H);

    real *ws_h = tape;  /* (T+1, B, H) training only */
    real *xw;           /* (Tc, B, H) the input product of one chunk */
    real *h_other = NULL;  /* (B, H) the second state buffer, split by units */
    ptrdiff_t Tc;
    if (tape != NULL) {
        /* Step t's input product goes straight into the slot its result will
         * overwrite: no scratch, and one chunk of all T steps. */
        xw = ws_h + next_slot(0, rev) * B * H;
        Tc = T;
        copy_or_zero(ws_h + prev_slot(rev ? T - 1 : 0, rev) * B * H, h0, (size_t)(B * H) * sizeof(real));
    } else {
        xw = workspace + 2 * H;
        Tc = chunk_steps(T, B, H, d->chunk_steps);
        if (rnn_units_shape(d))
            h_other = xw + Tc * B * H;
        copy_or_zero(h_n, h0, (size_t)(B * H) * sizeof(real));
    }
    /* the packed W_hh and W_ih: the caller's (crnn.h), else, when used, W_hh
     * packed here into the end of the workspace (rgemm.h) */
    const real *W_ih_packed = FN(given_packed)(w->W_ih_packed);
    const real *W_hh_packed = FN(given_packed)(w->W_hh_packed);
    /* split by units (common.h): inference only; training by rows (train_threads) */
    const int units = h_other != NULL && FN(units_split)(blas, T, B, H, H, H);
    const int train_split = tape != NULL && train_threads(blas, T, B, I, H, H) > 1;
    const int train_units = tape != NULL && FN(train_units)(blas, T, B, H, H, H);
    if (W_hh_packed == NULL && rgemm_shape(T, B)) {
        const size_t size = crnn_rnn_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER);
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, H, H, units || train_split || train_units, CRNN_TRANS,
                                        w->W_hh, workspace + size - crnn_rgemm_packed_size(H, H));
    }

    const int threads = units || train_split || train_units ? 2
                        : tape != NULL ? 1
                                       : step_threads(blas, T, B, I, H, H, W_hh_packed);  /* common.h */
    /* [F1] runs in the packed kernel too when W_hh does (inference and
     * training: input_pack_shape in common.h): on W_ih packed by the
     * caller, or here just before W_hh; with two threads each does its own
     * rows', or its own columns' */
    if (W_ih_packed == NULL && W_hh_packed != NULL)
        W_ih_packed = FN(input_pack)(H, I, w->W_ih,
                                     workspace + crnn_rnn_workspace_size(d, tape ? CRNN_PASS_TRAIN : CRNN_PASS_INFER)
                                         - crnn_rgemm_packed_size(H, H) - crnn_rgemm_packed_size(H, I));
    FN(rnn_chunk) chunk = { blas, d, w->W_ih, W_ih_packed, w->W_hh, W_hh_packed, bias, lengths, 0, 0,
                            x, xw, ws_h, y, h_n, { h_n, h_other }, Tc, 0 };
    /* split by rows: [F1] per step and row range, or first for the whole
     * chunk by the team; always the latter in training of the shapes that
     * split (one chunk, all steps), even on one thread: its two products
     * then give the bits of a split pass (team_half) */
    const int team_input = (tape != NULL && train_split_shape(T, B, I, H, H))
                           || (threads > 1 && chunk_input_by_team(B));
    chunk.step_input = threads > 1 && !units && !team_input;
    /* a batch too small to split, in training: [F1] of the next chunk
     * beside the steps, into the tape (common.h) */
    const ptrdiff_t pipe_Tc = tape != NULL && threads == 1 && !team_input
                                  ? pipe_chunk_steps(blas, T, B, I, H, H, T)
                                  : 0;
    if (train_units) {  /* a single sequence's training: split by units instead (common.h) */
        crnn_parallel_blas_solo_begin(blas);
        crnn_parallel_team(threads, FN(rnn_train_units), &chunk);
        crnn_parallel_blas_solo_end(blas);
    } else if (pipe_Tc > 0) {
        fwd_pipe pipe = { &chunk, FN(rnn_pipe_input), FN(rnn_pipe_steps), (char *)xw,
                          (size_t)(B * H) * sizeof(real), T, pipe_Tc, rev };
        run_forward_pipe(blas, &pipe);
    } else if (units) {
        crnn_parallel_team(threads, FN(rnn_run_units), &chunk);
    } else {
        if (train_split)
            crnn_parallel_blas_solo_begin(blas);

        for (ptrdiff_t k0 = 0; k0 < T; k0 += Tc) {
            /* This chunk visits steps k0 .. k0+n-1, i.e. times t0 .. t0+n-1. */
            const ptrdiff_t n = Tc < T - k0 ? Tc : T - k0;
            const ptrdiff_t t0 = rev ? T - k0 - n : k0;

            /* [F1] xw[0:n] = x[t0:t0+n] @ W_ih.T   (n*B, I) x (I, H), here unless the threads share it */
            if (threads == 1 && !team_input)
                FN(rgemm)(blas, n * B, H, I, x + t0 * B * I, I, CRNN_TRANS, w->W_ih, W_ih_packed, 0, xw, H);

            chunk.t0 = t0;
            chunk.n = n;
            if (team_input)
                crnn_parallel_team(threads, FN(rnn_chunk_team_rows), &chunk);
            else if (lengths_differ(lengths, B))
                crnn_parallel_team(threads, FN(rnn_chunk_team_cut), &chunk);
            else
                crnn_parallel_rows(threads, FN(rnn_chunk_rows), &chunk, B);
        }
        if (train_split)
            crnn_parallel_blas_solo_end(blas);
    }
    if (units && T % 2 == 1)  /* the last step wrote the other buffer */
        memcpy(h_n, h_other, (size_t)(B * H) * sizeof(real));
    if (tape != NULL)
        memcpy(h_n, ws_h + next_slot(rev ? 0 : T - 1, rev) * B * H, (size_t)(B * H) * sizeof(real));
}

crnn_status FN(crnn_rnn_forward)(const crnn_blas *blas, const crnn_rnn_desc *d,
                                 const FN(crnn_weights) *w, const int64_t *lengths,
                                 const real *x, const real *h0, real *y, real *h_n,
                                 real *workspace, size_t workspace_size)
{
    crnn_status s = FN(rnn_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(workspace, workspace_size, crnn_rnn_workspace_size(d, CRNN_PASS_INFER));
    if (s != CRNN_OK)
        return s;
    FN(rnn_run)(blas, d, w, lengths, x, h0, y, h_n, NULL, workspace);
    return CRNN_OK;
}

crnn_status FN(crnn_rnn_forward_train)(const crnn_blas *blas, const crnn_rnn_desc *d,
                                       const FN(crnn_weights) *w, const int64_t *lengths,
                                       const real *x, const real *h0, real *y, real *h_n,
                                       real *tape, size_t tape_size,
                                       real *workspace, size_t workspace_size)
{
    crnn_status s = FN(rnn_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (y == NULL || h_n == NULL)
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_rnn_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_rnn_workspace_size(d, CRNN_PASS_TRAIN));
    if (s != CRNN_OK)
        return s;
    FN(rnn_run)(blas, d, w, lengths, x, h0, y, h_n, tape, workspace);
    return CRNN_OK;
}

/* [B3] for one chunk of steps, rows = steps * B: dx of those steps and their
 * share of the parameter gradients. Every pointer is at the chunk's first
 * step: dpre (rows, H), x (rows, I), h_prev (rows, H) the states the steps
 * started from; dx (rows, I) or NULL, W_ih_dx W_ih packed for it (dx_pack
 * in common.h) or NULL. Parts [p0, p1) of a team of two (team_half): a
 * member takes half the columns of dx and half the rows of each weight
 * gradient (and the matching bias entries); [0, 2) all. */
static void FN(rnn_chunk_grads)(const crnn_blas *blas, const crnn_rnn_desc *d,
                                const FN(crnn_weights) *w, const real *W_ih_dx, ptrdiff_t rows, ptrdiff_t p0,
                                ptrdiff_t p1, const real *dpre, const real *x, const real *h_prev,
                                real *dx, const FN(crnn_grads) *grads)
{
    const ptrdiff_t I = d->input_size, H = d->hidden_size;
    ptrdiff_t g0, g1;  /* this part's rows of dW_ih and dW_hh */
    team_half(p0, p1, H, &g0, &g1);
    if (dx != NULL)  /* dx = dpre @ W_ih   (rows, H) x (H, I), this part's columns */
        FN(dx_part)(blas, p0, p1, rows, H, I, dpre, w->W_ih, W_ih_dx, dx);
    if (grads == NULL || g1 == g0)
        return;
    if (grads->dW_ih != NULL)  /* dW_ih += dpre.T @ x   (H, rows) x (rows, I) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, I, rows, 1, dpre + g0, H, x, I, 1,
                 grads->dW_ih + g0 * I, I);
    if (grads->dW_hh != NULL)  /* dW_hh += dpre.T @ h_prev   (H, rows) x (rows, H) */
        FN(gemm)(blas, CRNN_TRANS, CRNN_NO_TRANS, g1 - g0, H, rows, 1, dpre + g0, H, h_prev, H, 1,
                 grads->dW_hh + g0 * H, H);
    if (grads->db_ih != NULL)  /* db_ih += dpre.sum(axis=0) */
        FN(add_colsum)(grads->db_ih, dpre, rows, H, g0, g1);
    if (grads->db_hh != NULL)  /* b_hh enters exactly as b_ih does */
        FN(add_colsum)(grads->db_hh, dpre, rows, H, g0, g1);
}

/* One chunk of the backward pass: the steps k = kend, kend-1, .., kend-nt+1
 * (times t0 .. t0+nt-1), then their [B3]. */
typedef struct {
    const crnn_blas *blas;
    const crnn_rnn_desc *d;
    const FN(crnn_weights) *w;
    const int64_t *lengths;
    const real *x, *dy, *W_hh_packed;
    const real *W_ih_dx;           /* W_ih packed for dx (dx_pack in common.h), or NULL */
    const real *ws_h;              /* the tape */
    real *dpre, *dh;               /* (Tc, B, H) the chunk's; (B, H) running */
    real *x_live, *h_live;         /* (Tc*B, I), (Tc*B, H): the chunk's live rows, packed */
    real *dx;
    const FN(crnn_grads) *grads;
    back_span span;                /* the chunk (common.h) */
    int halves;                    /* [B3] by halves even alone (team_half in common.h) */
} FN(rnn_back_chunk);

/* [B1]-[B2] of the chunk's steps on the sequences (rows) [b0, b1) only: row
 * b of dh_{t-1} reads only row b of step t, so row ranges may run on
 * different threads. */
static void FN(rnn_back_rows)(const FN(rnn_back_chunk) *c, ptrdiff_t b0, ptrdiff_t b1)
{
    const crnn_rnn_desc *d = c->d;
    const ptrdiff_t T = d->steps, B = d->batch, H = d->hidden_size;
    const int rev = d->reverse != 0;
    for (ptrdiff_t k = c->span.kend; k > c->span.kend - c->span.nt; k--) {
        const ptrdiff_t t = step_time(k, T, rev);
        const real *h_new = c->ws_h + next_slot(t, rev) * B * H;  /* = y[t] where valid */
        const real *dy_t = c->dy + t * B * H;
        real *dpre_t = c->dpre + (t - c->span.t0) * B * H;
        for (ptrdiff_t b = b0; b < b1; b++) {
            real *dpb = dpre_t + b * H, *dhb = c->dh + b * H;
            const real *hb = h_new + b * H, *dyb = dy_t + b * H;
            if (!step_valid(c->lengths, b, t)) {
                /* [B2] a masked step passed h_{t-1} through unchanged: so does
                 * dh; its pre-activation gets no gradient. */
                memset(dpb, 0, (size_t)H * sizeof(real));
                continue;
            }
            /* h_t feeds both y_t and step t+1: the two gradients meet here
             * (dh_new = dy + dh). [B1] in the forward pass: h_new = act(pre);
             * act' from the saved output. [B2] h_{t-1} is reached only
             * through W_hh (the GEMM below), so the running dh restarts at 0. */
            if (d->activation == CRNN_TANH)
                for (ptrdiff_t j = 0; j < H; j++)
                    dpb[j] = (dyb[j] + dhb[j]) * (1 - hb[j] * hb[j]);
            else
                for (ptrdiff_t j = 0; j < H; j++)
                    dpb[j] = hb[j] > 0 ? dyb[j] + dhb[j] : 0;
            memset(dhb, 0, (size_t)H * sizeof(real));
        }
        /* [B2] dh += dpre[t] @ W_hh   (B, H) x (H, H), on the rows up to the
         * last sequence valid at t: the masked ones after it add 0 */
        const ptrdiff_t live = live_rows(c->lengths != NULL ? c->lengths + b0 : NULL, b1 - b0, t);
        if (live > 0)
            FN(rgemm)(c->blas, live, H, H, dpre_t + b0 * H, H, CRNN_NO_TRANS, c->w->W_hh, c->W_hh_packed, 1,
                      c->dh + b0 * H, H);
    }
}

static void FN(rnn_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1);

/* The chunk on a team of two (parallel.h): the steps on each member's half
 * of the rows, then, once both are done, [B3] split between them. Alone
 * ([0, 2)): all of it. */
static void FN(rnn_back_team)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_back_chunk) *c = arg;
    ptrdiff_t b0, b1;
    team_rows(p0, p1, rows_cut(c->lengths, c->d->batch, c->span.t0, c->span.nt), c->d->batch, &b0, &b1);
    FN(rnn_back_rows)(c, b0, b1);
    if (p1 - p0 == 1)
        crnn_parallel_barrier(p0);
    FN(rnn_back_grads)(arg, p0, p1);
}

/* The pipeline's (common.h) two parts: the chunk's steps on every row, and
 * its [B3] as a team function. */
static void FN(rnn_back_steps)(void *arg)
{
    const FN(rnn_back_chunk) *c = arg;
    FN(rnn_back_rows)(c, 0, c->d->batch);
}

static void FN(rnn_back_grads)(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const FN(rnn_back_chunk) *c = arg;
    const crnn_rnn_desc *d = c->d;
    const ptrdiff_t B = d->batch, I = d->input_size, H = d->hidden_size, t0 = c->span.t0, nt = c->span.nt;
    const ptrdiff_t rows = live_row_count(c->lengths, B, t0, nt);
    const real *x = c->x + t0 * B * I, *h_prev = c->ws_h + prev_slot(t0, d->reverse != 0) * B * H;
    real *dx = c->dx != NULL ? c->dx + t0 * B * I : NULL;
    const int packed = rows < nt * B;  /* finished rows to leave out (common.h) */
    if (packed) {
        pack_chunk_inputs(c->lengths, B, t0, nt, p0, p1, c->dpre, (size_t)H * sizeof(real), x,
                          (size_t)I * sizeof(real), c->x_live, h_prev, (size_t)H * sizeof(real), c->h_live);
        x = c->x_live;
        h_prev = c->h_live;
    }
    /* alone, a shape that splits still goes half by half (team_half) */
    const ptrdiff_t part = c->halves ? 1 : p1 - p0;
    for (ptrdiff_t q = p0; q < p1; q += part)
        FN(rnn_chunk_grads)(c->blas, d, c->w, c->W_ih_dx, rows, q, q + part, c->dpre, x, h_prev, dx, c->grads);
    if (packed && dx != NULL)  /* dx came out packed: back to its steps' rows */
        unpack_dx(c->lengths, B, t0, nt, I, p0, p1, c->W_ih_dx, sizeof(real), dx);
}

crnn_status FN(crnn_rnn_backward)(const crnn_blas *blas, const crnn_rnn_desc *d,
                                  const FN(crnn_weights) *w, const int64_t *lengths,
                                  const real *x, const real *tape, size_t tape_size,
                                  const real *dy, const real *dh_n,
                                  real *dx, real *dh0, const FN(crnn_grads) *grads,
                                  real *workspace, size_t workspace_size)
{
    crnn_status s = FN(rnn_check)(blas, d, w, lengths, x);
    if (s != CRNN_OK)
        return s;
    if (dy == NULL || (grads != NULL && grads->dW_hr != NULL))
        return CRNN_EINVAL;
    s = check_buffer(tape, tape_size, crnn_rnn_tape_size(d));
    if (s == CRNN_OK)
        s = check_buffer(workspace, workspace_size, crnn_rnn_workspace_size(d, CRNN_PASS_BACKWARD));
    if (s != CRNN_OK)
        return s;

    const ptrdiff_t T = d->steps, B = d->batch, I = d->input_size, H = d->hidden_size;
    const real *ws_h = tape;                 /* (T+1, B, H) */
    const ptrdiff_t Tc = backward_chunk_steps(T, B, H, d->chunk_steps);
    real *dpre = workspace;                  /* (Tc, B, H) dL/d(pre-activation), a chunk */
    real *dh = workspace + Tc * B * H;       /* (B, H) dL/dh_t, running */
    real *x_live = dh + B * H;               /* (Tc*B, I) */
    real *h_live = x_live + Tc * B * I;      /* (Tc*B, H) */
    copy_or_zero(dh, dh_n, (size_t)(B * H) * sizeof(real));
    const int threads = train_threads(blas, T, B, I, H, H);  /* common.h */
    /* a batch too small to split: the steps and the products side by side (common.h) */
    const ptrdiff_t pipe_Tc = pipe_chunk_steps(blas, T, B, I, H, H, Tc / 2);
    /* W_hh (H, H) packed for the product dpre @ W_hh (rgemm.h), or NULL */
    const real *W_hh_packed = NULL;
    real *W_space = workspace + crnn_rnn_workspace_size(d, CRNN_PASS_BACKWARD) - crnn_rgemm_packed_size(H, H);
    if (rgemm_shape(T, B))
        W_hh_packed = FN(rgemm_prepare)(blas, T, B, H, H, threads > 1 || pipe_Tc > 0, CRNN_NO_TRANS, w->W_hh,
                                        W_space);
    const real *W_ih_dx = FN(dx_pack)(H, I, w->W_ih, W_hh_packed != NULL, W_space - crnn_rgemm_packed_size(I, H));

    /* The forward's steps in the opposite order, in chunks of Tc steps:
     * dpre holds one chunk, and [B3] runs on it after the chunk's last step. */
    FN(rnn_back_chunk) chunk = { blas, d, w, lengths, x, dy, W_hh_packed, W_ih_dx, ws_h, dpre, dh, x_live, h_live,
                                 dx, grads, { 0, 0, 0 }, train_split_shape(T, B, I, H, H) };
    if (pipe_Tc > 0) {  /* two chunk jobs, each with half of dpre */
        FN(rnn_back_chunk) second = chunk;
        chunk.halves = second.halves = 1;
        second.dpre = dpre + pipe_Tc * B * H;
        second.x_live = x_live + pipe_Tc * B * I;
        second.h_live = h_live + pipe_Tc * B * H;
        back_pipe pipe = { { &chunk, &second }, { &chunk.span, &second.span }, FN(rnn_back_steps),
                           FN(rnn_back_grads), T, pipe_Tc, d->reverse != 0 };
        run_backward_pipe(blas, &pipe);
    } else {
        run_backward_chunks(blas, threads, T, Tc, d->reverse != 0, FN(rnn_back_team), &chunk, &chunk.span);
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
#include "rnn.c"
#undef real
#undef FN
#define real double
#define FN(name) name##_f64
#include "rnn.c"
#undef real
#undef FN
#undef CRNN_INSTANCE
#endif
