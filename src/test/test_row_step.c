/* test_row_step.c -- the fused one-row step (row_step.h) gives the unfused step's bits.
 *
 *     make -C src test       builds and runs this with the other C tests
 *
 * LSTM and GRU, float32, one sequence (B = 1), H = 48..176 where the fused
 * step runs (crnn_row_step_pays) and H = 40 where it does not; sequences of
 * 9 steps and single steps (a stream's, whose input product fuses too where
 * I >= 16); both directions, with and without biases, with lengths (the
 * steps past the length take the unfused path in the same pass), W_hh and
 * W_ih packed by the call
 * or given packed (as a stream gives it), inference (also in place:
 * h_n == h0, c_n == c0) and training forward (the tape too). Each pass
 * runs on the AVX-512 path, which fuses, and again capped at AVX2
 * (crnn_vmath_limit), which never does: every output must be the same, bit
 * for bit. And a step on two ranges of units (a split by units) gives
 * the whole step's bits. Needs a CPU with AVX-512F (else it says so and
 * passes).
 * Exit status 0 iff every check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crnn.h"
#include "row_step.h"
#include "vmath.h"

static int allok = 1, fused_shapes = 0;

static float *random_floats(size_t n, float scale, unsigned *seed)
{
    float *a = malloc(n * sizeof *a);
    for (size_t k = 0; k < n; k++) {
        *seed = *seed * 1103515245u + 12345u;
        a[k] = scale * ((float)((*seed >> 8) & 0xFFFF) / 32768.0f - 1.0f);
    }
    return a;
}

/* All the outputs of one configuration, run on the vmath path now taken. */
typedef struct {
    float *y, *h_n, *c_n, *y_train, *tape, *h_inplace, *c_inplace;
    size_t ny, nh, nc, ntape;
} outputs;

static void free_outputs(outputs *o)
{
    free(o->y), free(o->h_n), free(o->c_n), free(o->y_train), free(o->tape);
    free(o->h_inplace), free(o->c_inplace);
}

typedef struct {
    int lstm, reverse, bias, given_packed;
    ptrdiff_t T, I, H;
    const int64_t *lengths;
} config;

static int run(const config *c, const crnn_blas *blas, outputs *o)
{
    const ptrdiff_t T = c->T, I = c->I, H = c->H, G = c->lstm ? 4 : 3;
    unsigned seed = 12345u + (unsigned)(H * 7 + I);
    float *x = random_floats((size_t)(T * I), 1.0f, &seed);
    float *W_ih = random_floats((size_t)(G * H * I), 0.3f, &seed);
    float *W_hh = random_floats((size_t)(G * H * H), 0.3f, &seed);
    float *b_ih = c->bias ? random_floats((size_t)(G * H), 0.5f, &seed) : NULL;
    float *b_hh = c->bias ? random_floats((size_t)(G * H), 0.5f, &seed) : NULL;
    float *h0 = random_floats((size_t)H, 0.8f, &seed), *c0 = random_floats((size_t)H, 0.8f, &seed);
    crnn_weights_f32 w = { .W_ih = W_ih, .W_hh = W_hh, .b_ih = b_ih, .b_hh = b_hh };
    float *packed_raw = NULL;
    if (c->given_packed) {  /* on a cache line, as crnn.StreamCore packs */
        const size_t n_ih = crnn_packed_size_f32(G * H, I), n_hh = crnn_packed_size_f32(G * H, H);
        packed_raw = aligned_alloc(64, (n_ih + n_hh) * sizeof(float));
        crnn_pack_f32(G * H, I, W_ih, packed_raw);
        crnn_pack_f32(G * H, H, W_hh, packed_raw + n_ih);
        w.W_ih_packed = packed_raw;
        w.W_hh_packed = packed_raw + n_ih;
    }
    o->ny = (size_t)(T * H), o->nh = (size_t)H, o->nc = c->lstm ? (size_t)H : 0;
    o->y = malloc(o->ny * sizeof(float)), o->y_train = malloc(o->ny * sizeof(float));
    o->h_n = malloc(o->nh * sizeof(float)), o->c_n = malloc((size_t)H * sizeof(float));
    o->h_inplace = malloc(o->nh * sizeof(float)), o->c_inplace = malloc((size_t)H * sizeof(float));
    memcpy(o->h_inplace, h0, (size_t)H * sizeof(float));
    memcpy(o->c_inplace, c0, (size_t)H * sizeof(float));
    float *h_train = malloc((size_t)H * sizeof(float)), *c_train = malloc((size_t)H * sizeof(float));
    int ok = 1;
    if (c->lstm) {
        crnn_lstm_desc d = { 0 };
        d.steps = T, d.batch = 1, d.input_size = I, d.hidden_size = H, d.reverse = c->reverse;
        const size_t ws_infer = crnn_lstm_workspace_size(&d, CRNN_PASS_INFER),
                     ws_train = crnn_lstm_workspace_size(&d, CRNN_PASS_TRAIN);
        float *ws = malloc((ws_infer > ws_train ? ws_infer : ws_train) * sizeof(float));
        o->ntape = crnn_lstm_tape_size(&d);
        o->tape = malloc(o->ntape * sizeof(float));
        ok &= crnn_lstm_forward_f32(blas, &d, &w, c->lengths, x, h0, c0, o->y, o->h_n, o->c_n, ws, ws_infer)
              == CRNN_OK;
        ok &= crnn_lstm_forward_f32(blas, &d, &w, c->lengths, x, o->h_inplace, o->c_inplace, o->y, o->h_inplace,
                                    o->c_inplace, ws, ws_infer) == CRNN_OK;
        ok &= crnn_lstm_forward_train_f32(blas, &d, &w, c->lengths, x, h0, c0, o->y_train, h_train, c_train,
                                          o->tape, o->ntape, ws, ws_train) == CRNN_OK;
        free(ws);
    } else {
        crnn_gru_desc d = { 0 };
        d.steps = T, d.batch = 1, d.input_size = I, d.hidden_size = H, d.reverse = c->reverse;
        const size_t ws_infer = crnn_gru_workspace_size(&d, CRNN_PASS_INFER),
                     ws_train = crnn_gru_workspace_size(&d, CRNN_PASS_TRAIN);
        float *ws = malloc((ws_infer > ws_train ? ws_infer : ws_train) * sizeof(float));
        o->ntape = crnn_gru_tape_size(&d);
        o->tape = malloc(o->ntape * sizeof(float));
        ok &= crnn_gru_forward_f32(blas, &d, &w, c->lengths, x, h0, o->y, o->h_n, ws, ws_infer) == CRNN_OK;
        ok &= crnn_gru_forward_f32(blas, &d, &w, c->lengths, x, o->h_inplace, o->y, o->h_inplace, ws, ws_infer)
              == CRNN_OK;
        ok &= crnn_gru_forward_train_f32(blas, &d, &w, c->lengths, x, h0, o->y_train, h_train, o->tape, o->ntape,
                                         ws, ws_train) == CRNN_OK;
        free(ws);
    }
    free(h_train), free(c_train), free(packed_raw);
    free(x), free(W_ih), free(W_hh), free(b_ih), free(b_hh), free(h0), free(c0);
    return ok;
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void check_config(const config *c, const crnn_blas *blas)
{
    outputs fused = { 0 }, plain = { 0 };
    crnn_vmath_limit(CRNN_VMATH_AVX512);
    int ok = run(c, blas, &fused);
    crnn_vmath_limit(CRNN_VMATH_AVX2);
    ok &= run(c, blas, &plain);
    crnn_vmath_limit(CRNN_VMATH_AVX512);
    ok = ok && same(fused.y, plain.y, fused.ny) && same(fused.h_n, plain.h_n, fused.nh)
         && same(fused.c_n, plain.c_n, fused.nc) && same(fused.h_inplace, plain.h_inplace, fused.nh)
         && same(fused.c_inplace, plain.c_inplace, fused.nc) && same(fused.y_train, plain.y_train, fused.ny)
         && same(fused.tape, plain.tape, fused.ntape);
    if (!ok) {
        printf("FAIL %s T=%td I=%td H=%td reverse=%d bias=%d packed=%d lengths=%s: fused and unfused differ\n",
               c->lstm ? "lstm" : "gru", c->T, c->I, c->H, c->reverse, c->bias, c->given_packed,
               c->lengths ? "yes" : "no");
        allok = 0;
    }
    free_outputs(&fused);
    free_outputs(&plain);
}

/* A step run on two ranges of units, [0, cut) and [cut, H) (the two
 * threads of a split by units), writes the same bits as the step on all
 * of them: each block's sums and cell are its own. LSTM and GRU, with
 * the input product given (a sequence's) and fused (x given). */
static void check_unit_ranges(void)
{
    const ptrdiff_t Hs[] = { 64, 96, 128 }, I = 32;
    for (int lstm = 0; lstm <= 1; lstm++)
        for (size_t h = 0; h < sizeof Hs / sizeof *Hs; h++)
            for (int fuse_input = 0; fuse_input <= 1; fuse_input++) {
                const ptrdiff_t H = Hs[h], G = lstm ? 4 : 3, cut = H / 2 / 16 * 16;
                unsigned seed = 777u + (unsigned)H;
                float *x = random_floats((size_t)I, 1.0f, &seed);
                float *W_ih = random_floats((size_t)(G * H * I), 0.3f, &seed);
                float *W_hh = random_floats((size_t)(G * H * H), 0.3f, &seed);
                float *b_ih = random_floats((size_t)(G * H), 0.5f, &seed);
                float *b_hh = random_floats((size_t)(G * H), 0.5f, &seed);
                float *h_prev = random_floats((size_t)H, 0.8f, &seed), *c_prev = random_floats((size_t)H, 0.8f, &seed);
                float *xw = random_floats((size_t)(G * H), 1.0f, &seed);
                const size_t n_ih = crnn_packed_size_f32(G * H, I), n_hh = crnn_packed_size_f32(G * H, H);
                float *Wp_ih = aligned_alloc(64, n_ih * sizeof(float)), *Wp = aligned_alloc(64, n_hh * sizeof(float));
                crnn_pack_f32(G * H, I, W_ih, Wp_ih);
                crnn_pack_f32(G * H, H, W_hh, Wp);
                const float *xs = fuse_input ? x : NULL;
                float *out[2][4];  /* [whole, halves][gates, c or hn, h_new, unused] */
                for (int r = 0; r < 2; r++) {
                    out[r][0] = malloc((size_t)(G * H) * sizeof(float));
                    memcpy(out[r][0], xw, (size_t)(G * H) * sizeof(float));
                    out[r][1] = calloc((size_t)H, sizeof(float));
                    out[r][2] = calloc((size_t)H, sizeof(float));
                    const ptrdiff_t ranges[2][2] = { { 0, r == 0 ? H : cut }, { r == 0 ? H : cut, H } };
                    for (int k = 0; k < 2; k++) {
                        const ptrdiff_t u0 = ranges[k][0], u1 = ranges[k][1];
                        if (u0 == u1)
                            continue;
                        if (lstm)
                            crnn_lstm_row_step_f32(H, u0, u1, xs, I, Wp_ih, h_prev, Wp, b_ih, b_hh, out[r][0], c_prev,
                                                   out[r][1], out[r][2]);
                        else
                            crnn_gru_row_step_f32(H, u0, u1, xs, I, Wp_ih, h_prev, Wp, b_ih, b_hh, out[r][0],
                                                  out[r][1], out[r][2]);
                    }
                }
                if (!same(out[0][0], out[1][0], (size_t)(G * H)) || !same(out[0][1], out[1][1], (size_t)H)
                    || !same(out[0][2], out[1][2], (size_t)H)) {
                    printf("FAIL %s H=%td input %s: the step on units [0, %td) and [%td, %td) differs from the "
                           "whole step\n", lstm ? "lstm" : "gru", H, fuse_input ? "fused" : "given", cut, cut, H);
                    allok = 0;
                }
                for (int r = 0; r < 2; r++)
                    free(out[r][0]), free(out[r][1]), free(out[r][2]);
                free(x), free(W_ih), free(W_hh), free(b_ih), free(b_hh), free(h_prev), free(c_prev), free(xw);
                free(Wp_ih), free(Wp);
            }
}

int main(void)
{
    if (crnn_vmath_limit(CRNN_VMATH_AVX512) != CRNN_VMATH_AVX512) {
        printf("skip row_step: this CPU has no AVX-512F, the fused step never runs\n");
        return 0;
    }
    const crnn_blas *blas = crnn_blas_naive();
    const ptrdiff_t Hs[] = { 40, 48, 64, 128, 176 }, Is[] = { 32, 7 };
    /* T = 9: a sequence (the length 6 ends it early); T = 1: a stream's
     * step, the input product fused too where I >= 16 (the length 0 makes
     * it a masked step, unfused) */
    const ptrdiff_t Ts[] = { 9, 1 };
    const int64_t lengths_for_T[2][1] = { { 6 }, { 0 } };
    int configs = 0;
    for (int lstm = 0; lstm <= 1; lstm++)
        for (size_t h = 0; h < sizeof Hs / sizeof *Hs; h++)
            for (size_t i = 0; i < sizeof Is / sizeof *Is; i++)
                for (size_t s = 0; s < sizeof Ts / sizeof *Ts; s++)
                    for (int variant = 0; variant < 4; variant++) {
                        const config c = { .lstm = lstm, .reverse = variant & 1, .bias = variant != 2,
                                           .given_packed = variant >= 2, .T = Ts[s], .I = Is[i], .H = Hs[h],
                                           .lengths = variant == 1 || variant == 3 ? lengths_for_T[s] : NULL };
                        check_config(&c, blas);
                        configs++;
                    }
    check_unit_ranges();
    /* the shapes meant to fuse do (a W_hh packed on a cache line) */
    float *Wp = aligned_alloc(64, 64 * sizeof(float));
    for (size_t h = 0; h < sizeof Hs / sizeof *Hs; h++)
        fused_shapes += crnn_row_step_pays(4, Hs[h], Wp) + crnn_row_step_pays(3, Hs[h], Wp);
    free(Wp);
    if (fused_shapes != 7) {  /* LSTM 48..176, GRU 64..176; not H = 40, nor a GRU of 48 */
        printf("FAIL row_step: %d of the shapes fuse, expected 7\n", fused_shapes);
        allok = 0;
    }
    printf("%s: row_step, %d configurations, fused == unfused bit for bit\n", allok ? "all ok" : "FAILED",
           configs);
    return allok ? 0 : 1;
}
