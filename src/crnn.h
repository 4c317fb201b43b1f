/* crnn.h -- the crnn C core: simple RNN, LSTM and GRU over whole sequences.
 *
 * One call runs ONE direction of ONE layer over a whole sequence; stacking
 * layers and directions is the caller's job (crnn/ does it in Python). The
 * equations, gate order and masking rule are those of the NumPy reference,
 * crnn/reference/{rnn,lstm,gru}.py, which is the spec (PyTorch semantics):
 * read it for the math; this header says how to call it.
 *
 * Legend (every array is row-major and contiguous; shapes in comments):
 *   T  time steps          B  batch size          I  input features
 *   H  hidden units        P  features of h: H, or proj_size for a projected LSTM
 *   G  gates per cell: 1 (RNN), 4 (LSTM, blocks [i f g o]), 3 (GRU, [r z n])
 *
 * Calling pattern:
 *   1. Fill a desc: sizes and options. Zero-initialise it (`= {0}`), then
 *      set the fields you need: zero is PyTorch's default for every option,
 *      and fields added later will keep that meaning.
 *   2. Ask *_workspace_size(desc, pass) and, to train, *_tape_size(desc).
 *      Both count ELEMENTS of the dtype you call with (float for _f32,
 *      double for _f64), not bytes. Allocate them: the core never allocates.
 *   3. Inference: *_forward. Training: *_forward_train fills the tape, then
 *      *_backward reads it (any number of times; it never writes the tape).
 *
 * Sequences and masking: lengths (B,) gives sequence b's valid steps, t valid
 * iff t < lengths[b], each in [0, T]; NULL means all T. An invalid step leaves
 * b's state unchanged and writes 0 to y. desc.reverse visits t = T-1 .. 0;
 * with lengths this gives PyTorch's packed bidirectional semantics. Any order
 * of the batch gives the same results; in decreasing order of length (the
 * Python layers sort theirs) the finished sequences are left out of every
 * step's recurrent product and of backward's dx and weight gradients (which
 * then never read x past a sequence's length: a NaN there stays out of them).
 *
 * Memory: inference scratch does not grow with T (the input product over all
 * steps is done in chunks of desc.chunk_steps), nor does the backward
 * workspace (dx and the weight gradients are computed per chunk of steps).
 * Training keeps O(T) on the tape only.
 *
 * Gradients: backward ASSIGNS dx, dh0 (dc0) and ACCUMULATES (+=) into the
 * parameter gradients of crnn_grads_*: zero them before the first call of a
 * batch. Any gradient pointer may be NULL: that gradient is not computed.
 *
 * Errors: every function checks its arguments first and, on error, returns a
 * status without writing anything. It never aborts, prints or allocates.
 * No global state: concurrent calls are safe when they share no output,
 * workspace or tape buffer. Inputs are never written. Outputs must not overlap
 * inputs, except that h_n may be h0 and c_n may be c0 (the same pointer: a
 * stream can run chunk after chunk on one state buffer), and dh0 may be dh_n,
 * dc0 may be dc_n.
 *
 * BLAS: every function takes the seam of blas.h (row-major gemm through
 * function pointers). A C user fills it from any CBLAS; tests use
 * crnn_blas_naive().
 */
#ifndef CRNN_H
#define CRNN_H

#include <stddef.h>
#include <stdint.h>

#include "blas.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */

typedef enum crnn_status {
    CRNN_OK = 0,
    CRNN_EINVAL = 1,       /* a NULL pointer, a size < 1, an unknown option value,
                              or a weight the desc does not call for (W_hr) */
    CRNN_ELENGTH = 2,      /* some lengths[b] outside [0, T] */
    CRNN_ESIZE = 3,        /* workspace or tape smaller than *_size() asks */
    CRNN_EUNSUPPORTED = 4  /* an option reserved for a later version is set */
} crnn_status;

static inline const char *crnn_status_string(crnn_status s)
{
    switch (s) {
    case CRNN_OK: return "ok";
    case CRNN_EINVAL: return "invalid argument (NULL pointer, size < 1 or unknown option)";
    case CRNN_ELENGTH: return "a sequence length is outside [0, T]";
    case CRNN_ESIZE: return "workspace or tape smaller than the size functions ask";
    case CRNN_EUNSUPPORTED: return "option not supported by this version";
    }
    return "unknown status";
}

/* ------------------------------------------------------------------------ */
/* Gate blocks, in the order they are stacked along the G*H axis of          */
/* W_ih, W_hh, b_ih, b_hh (PyTorch's order). Block k is rows [k*H, (k+1)*H). */

typedef enum crnn_lstm_gate {
    CRNN_LSTM_I = 0,  /* input gate,  sigmoid */
    CRNN_LSTM_F = 1,  /* forget gate, sigmoid */
    CRNN_LSTM_G = 2,  /* cell input,  tanh */
    CRNN_LSTM_O = 3,  /* output gate, sigmoid */
    CRNN_LSTM_GATES = 4
} crnn_lstm_gate;

typedef enum crnn_gru_gate {
    CRNN_GRU_R = 0,   /* reset gate,  sigmoid */
    CRNN_GRU_Z = 1,   /* update gate, sigmoid */
    CRNN_GRU_N = 2,   /* candidate,   tanh */
    CRNN_GRU_GATES = 3
} crnn_gru_gate;

typedef enum crnn_activation {
    CRNN_TANH = 0,
    CRNN_RELU = 1
} crnn_activation;

/* Which call a workspace is for: the three need different amounts. */
typedef enum crnn_pass {
    CRNN_PASS_INFER = 0,     /* *_forward */
    CRNN_PASS_TRAIN = 1,     /* *_forward_train */
    CRNN_PASS_BACKWARD = 2   /* *_backward */
} crnn_pass;

/* ------------------------------------------------------------------------ */
/* Descriptors: sizes and options of one call. Zero-initialise, then set.    */
/* The same desc must be passed to the size functions, to forward_train and  */
/* to the backward that reads its tape.                                      */

typedef struct crnn_rnn_desc {
    /* T, B, I, H, each >= 1. Spelled out: a field named I would collide with
       the imaginary-unit macro of <complex.h> in any C file that includes both. */
    ptrdiff_t steps, batch, input_size, hidden_size;
    crnn_activation activation;    /* CRNN_TANH (default) or CRNN_RELU */
    int reverse;                   /* nonzero: visit t = T-1 .. 0 */
    ptrdiff_t chunk_steps;         /* steps per chunk: inference's input product, backward's gradients; 0 = auto */
} crnn_rnn_desc;

typedef struct crnn_lstm_desc {
    /* T, B, I, H, each >= 1. Spelled out: a field named I would collide with
       the imaginary-unit macro of <complex.h> in any C file that includes both. */
    ptrdiff_t steps, batch, input_size, hidden_size;
    ptrdiff_t proj_size;           /* P > 0: h = W_hr (o*tanh(c)) has P features;
                                      0 (default): no projection, P = H */
    int reverse;                   /* nonzero: visit t = T-1 .. 0 */
    ptrdiff_t chunk_steps;         /* steps per chunk: inference's input product, backward's gradients; 0 = auto */
    /* Reserved for variants not built yet; must be 0 (else CRNN_EUNSUPPORTED). */
    int peephole;                  /* later: peephole weights in crnn_weights_* */
    double cell_clip;              /* later: clip c to [-cell_clip, cell_clip] */
} crnn_lstm_desc;

typedef struct crnn_gru_desc {
    /* T, B, I, H, each >= 1. Spelled out: a field named I would collide with
       the imaginary-unit macro of <complex.h> in any C file that includes both. */
    ptrdiff_t steps, batch, input_size, hidden_size;
    int reverse;                   /* nonzero: visit t = T-1 .. 0 */
    ptrdiff_t chunk_steps;         /* steps per chunk: inference's input product, backward's gradients; 0 = auto */
    /* Reserved for variants not built yet; must be 0 (else CRNN_EUNSUPPORTED). */
    int reset_before;              /* later: n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
                                      (ONNX linear_before_reset=0, Keras reset_after=False) */
} crnn_gru_desc;

/* ------------------------------------------------------------------------ */
/* Parameters and their gradients, one struct for every cell family.         */
/* Shapes use the family's G; PyTorch's weight_ih_l0 etc. fit unchanged.      */

/* W_ih_packed, W_hh_packed, W_hr_packed: optional copies of W_ih, W_hh and
 * W_hr laid out once by crnn_pack_f32 (below), for a caller that makes many
 * short calls on the same weights (a stream: T = 1 per call, where packing
 * W_hh per call does not pay and the BLAS call overhead dominates). Given,
 * forward and forward_train run [F1], [F2], [F4] on them with no BLAS call,
 * whatever the shape: give them where crnn_pack_pays_f32 says so for the rows
 * of the product (B for [F2] and [F4], chunk_steps * B for [F1]). NULL (the
 * default of a zero-initialised struct): the core decides per call, as it
 * always has. They must be the packing of the current weights: pack again
 * after changing those. Memory aligned to 64 bytes is faster (no load then
 * spans two cache lines). Backward does not read them. On a CPU without the
 * packed kernel, and in float64 (no packed kernel), they are ignored. */
typedef struct crnn_weights_f32 {
    const float *W_ih;   /* (G*H, I) */
    const float *W_hh;   /* (G*H, P) */
    const float *b_ih;   /* (G*H,) or NULL: no input bias */
    const float *b_hh;   /* (G*H,) or NULL: no recurrent bias */
    const float *W_hr;   /* (P, H): LSTM with proj_size > 0; NULL otherwise */
    const float *W_ih_packed;  /* crnn_pack_f32(G*H, I, W_ih), or NULL */
    const float *W_hh_packed;  /* crnn_pack_f32(G*H, P, W_hh), or NULL */
    const float *W_hr_packed;  /* crnn_pack_f32(P, H, W_hr) when W_hr is given, or NULL */
} crnn_weights_f32;

typedef struct crnn_weights_f64 {
    const double *W_ih;  /* (G*H, I) */
    const double *W_hh;  /* (G*H, P) */
    const double *b_ih;  /* (G*H,) or NULL */
    const double *b_hh;  /* (G*H,) or NULL */
    const double *W_hr;  /* (P, H) or NULL, as in crnn_weights_f32 */
    const double *W_ih_packed;  /* ignored (callers pack float32 only): NULL */
    const double *W_hh_packed;  /* ignored: NULL */
    const double *W_hr_packed;  /* ignored: NULL */
} crnn_weights_f64;

/* Packing for W_ih_packed / W_hh_packed (float32).
 * crnn_pack_pays_f32: 1 when this CPU has the packed kernel and it beats the
 * BLAS for products of `batch` rows by a (rows, cols) weight; 0: leave the
 * pointers NULL. crnn_packed_size_f32: elements of the packed copy (0 for
 * sizes below 1). crnn_pack_f32: packed = the packed copy of W (rows, cols),
 * row-major; CRNN_EINVAL (nothing written) for sizes below 1 or NULL
 * pointers. A copy starting on a 64-byte boundary runs fastest. */
int crnn_pack_pays_f32(ptrdiff_t batch, ptrdiff_t rows, ptrdiff_t cols);
size_t crnn_packed_size_f32(ptrdiff_t rows, ptrdiff_t cols);
crnn_status crnn_pack_f32(ptrdiff_t rows, ptrdiff_t cols, const float *W, float *packed);

/* Accumulated (+=) by backward. NULL members are skipped. */
typedef struct crnn_grads_f32 {
    float *dW_ih;        /* (G*H, I) */
    float *dW_hh;        /* (G*H, P) */
    float *db_ih;        /* (G*H,) */
    float *db_hh;        /* (G*H,) */
    float *dW_hr;        /* (P, H): LSTM with proj_size > 0; NULL otherwise */
} crnn_grads_f32;

typedef struct crnn_grads_f64 {
    double *dW_ih;       /* (G*H, I) */
    double *dW_hh;       /* (G*H, P) */
    double *db_ih;       /* (G*H,) */
    double *db_hh;       /* (G*H,) */
    double *dW_hr;       /* (P, H) or NULL */
} crnn_grads_f64;

/* ------------------------------------------------------------------------ */
/* Sizes, in elements of the call's dtype; 0 when the desc is invalid.       */
/* Workspace is scratch (contents undefined between calls, never shared by   */
/* concurrent calls). The tape is what forward_train records for backward;   */
/* its layout is given in the cell's .c file and is not part of the API.     */

size_t crnn_rnn_workspace_size(const crnn_rnn_desc *d, crnn_pass pass);
size_t crnn_rnn_tape_size(const crnn_rnn_desc *d);
size_t crnn_lstm_workspace_size(const crnn_lstm_desc *d, crnn_pass pass);
size_t crnn_lstm_tape_size(const crnn_lstm_desc *d);
size_t crnn_gru_workspace_size(const crnn_gru_desc *d, crnn_pass pass);
size_t crnn_gru_tape_size(const crnn_gru_desc *d);

/* ------------------------------------------------------------------------ */
/* Simple RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).   G = 1, P = H */

crnn_status crnn_rnn_forward_f32(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* (B,) or NULL */
    const float *x,                  /* (T, B, I) */
    const float *h0,                 /* (B, H) or NULL: zeros */
    float *y,                        /* (T, B, H) out */
    float *h_n,                      /* (B, H) out: state after the last valid step */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_INFER */

crnn_status crnn_rnn_forward_train_f32(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths, const float *x, const float *h0,
    float *y, float *h_n,            /* as in crnn_rnn_forward_f32 */
    float *tape, size_t tape_size,   /* out: crnn_rnn_tape_size(d) */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_TRAIN */

crnn_status crnn_rnn_backward_f32(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* as given to forward_train */
    const float *x,                  /* (T, B, I) as given to forward_train */
    const float *tape, size_t tape_size,
    const float *dy,                 /* (T, B, H) dL/dy */
    const float *dh_n,               /* (B, H) dL/dh_n, or NULL: zeros */
    float *dx,                       /* (T, B, I) out, or NULL */
    float *dh0,                      /* (B, H) out, or NULL */
    const crnn_grads_f32 *grads,    /* += ; or NULL: no parameter gradients */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_BACKWARD */

crnn_status crnn_rnn_forward_f64(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0,
    double *y, double *h_n,
    double *workspace, size_t workspace_size);

crnn_status crnn_rnn_forward_train_f64(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0,
    double *y, double *h_n,
    double *tape, size_t tape_size,
    double *workspace, size_t workspace_size);

crnn_status crnn_rnn_backward_f64(
    const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x,
    const double *tape, size_t tape_size,
    const double *dy, const double *dh_n,
    double *dx, double *dh0,
    const crnn_grads_f64 *grads,
    double *workspace, size_t workspace_size);

/* ------------------------------------------------------------------------ */
/* LSTM, blocks [i f g o]: c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t),         */
/* or h_t = W_hr (o*tanh(c_t)) with proj_size P > 0.   G = 4                  */

crnn_status crnn_lstm_forward_f32(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* (B,) or NULL */
    const float *x,                  /* (T, B, I) */
    const float *h0,                 /* (B, P) or NULL: zeros */
    const float *c0,                 /* (B, H) or NULL: zeros */
    float *y,                        /* (T, B, P) out */
    float *h_n,                      /* (B, P) out */
    float *c_n,                      /* (B, H) out */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_INFER */

crnn_status crnn_lstm_forward_train_f32(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths, const float *x, const float *h0, const float *c0,
    float *y, float *h_n, float *c_n,  /* as in crnn_lstm_forward_f32 */
    float *tape, size_t tape_size,     /* out: crnn_lstm_tape_size(d) */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_TRAIN */

crnn_status crnn_lstm_backward_f32(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* as given to forward_train */
    const float *x,                  /* (T, B, I) as given to forward_train */
    const float *tape, size_t tape_size,
    const float *dy,                 /* (T, B, P) dL/dy */
    const float *dh_n,               /* (B, P) or NULL: zeros */
    const float *dc_n,               /* (B, H) or NULL: zeros */
    float *dx,                       /* (T, B, I) out, or NULL */
    float *dh0,                      /* (B, P) out, or NULL */
    float *dc0,                      /* (B, H) out, or NULL */
    const crnn_grads_f32 *grads,    /* += ; or NULL */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_BACKWARD */

crnn_status crnn_lstm_forward_f64(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0, const double *c0,
    double *y, double *h_n, double *c_n,
    double *workspace, size_t workspace_size);

crnn_status crnn_lstm_forward_train_f64(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0, const double *c0,
    double *y, double *h_n, double *c_n,
    double *tape, size_t tape_size,
    double *workspace, size_t workspace_size);

crnn_status crnn_lstm_backward_f64(
    const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x,
    const double *tape, size_t tape_size,
    const double *dy, const double *dh_n, const double *dc_n,
    double *dx, double *dh0, double *dc0,
    const crnn_grads_f64 *grads,
    double *workspace, size_t workspace_size);

/* ------------------------------------------------------------------------ */
/* GRU, blocks [r z n], reset after the product:                             */
/* n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h_t = (1-z)*n + z*h_{t-1}.   */
/* G = 3, P = H                                                              */

crnn_status crnn_gru_forward_f32(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* (B,) or NULL */
    const float *x,                  /* (T, B, I) */
    const float *h0,                 /* (B, H) or NULL: zeros */
    float *y,                        /* (T, B, H) out */
    float *h_n,                      /* (B, H) out */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_INFER */

crnn_status crnn_gru_forward_train_f32(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths, const float *x, const float *h0,
    float *y, float *h_n,            /* as in crnn_gru_forward_f32 */
    float *tape, size_t tape_size,   /* out: crnn_gru_tape_size(d) */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_TRAIN */

crnn_status crnn_gru_backward_f32(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
    const int64_t *lengths,          /* as given to forward_train */
    const float *x,                  /* (T, B, I) as given to forward_train */
    const float *tape, size_t tape_size,
    const float *dy,                 /* (T, B, H) dL/dy */
    const float *dh_n,               /* (B, H) or NULL: zeros */
    float *dx,                       /* (T, B, I) out, or NULL */
    float *dh0,                      /* (B, H) out, or NULL */
    const crnn_grads_f32 *grads,    /* += ; or NULL */
    float *workspace, size_t workspace_size);  /* CRNN_PASS_BACKWARD */

crnn_status crnn_gru_forward_f64(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0,
    double *y, double *h_n,
    double *workspace, size_t workspace_size);

crnn_status crnn_gru_forward_train_f64(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x, const double *h0,
    double *y, double *h_n,
    double *tape, size_t tape_size,
    double *workspace, size_t workspace_size);

crnn_status crnn_gru_backward_f64(
    const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
    const int64_t *lengths, const double *x,
    const double *tape, size_t tape_size,
    const double *dy, const double *dh_n,
    double *dx, double *dh0,
    const crnn_grads_f64 *grads,
    double *workspace, size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_H */
