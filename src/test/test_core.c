/* test_core.c -- the C core against golden values from the NumPy reference.
 *
 *     make -C src test                 builds this with crnn_blas_naive() and runs it
 *     test_core src/test/golden.txt    the program alone
 *
 * For every case in golden.txt (written by make_golden.py) and both dtypes:
 *   forward (inference)      y, h_n (, c_n); again with h_n == h0 (in place)
 *   forward_train            y, h_n (, c_n)
 *   backward                 dx, dh0 (, dc0) and every parameter gradient
 *   backward again           parameter gradients doubled (they accumulate),
 *                            dx, dh0 unchanged (assigned)
 *   backward, NULLs          only dW_hh asked for: it alone is computed
 * Then bad arguments: each returns its status code and writes nothing.
 *
 * Errors are relative to the largest magnitude of the reference array, with
 * a floor: max|got - want| <= rtol * max(max|want|, FLOOR); masked outputs
 * must be exactly 0. Exit status 0 iff every check passed.
 *
 * Layout as in the core: part 1 plain C, part 2 written once over `real`,
 * part 3 compiles part 2 for float and double.
 */

/* ===== part 1: golden file, comparisons, bad arguments, main ============= */
#ifndef CRNN_INSTANCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crnn.h"

/* Tolerances per dtype, in one place: relative error of forward outputs and
 * of gradients. Float32 is compared with the float64 reference.
 * Saturated cases (pre-activations up to ~100) get their gradients compared
 * with a floor of 1, the scale of the upstream gradients dy, dh_n: there
 * tanh' = 1 - y*y is taken from a saved y within rounding of 1, so a
 * gradient that has all but vanished carries rounding noise as large as
 * itself (the reference does the same; it is the price of deriving from
 * saved outputs), while its error on the scale that matters stays tiny. */
static const struct { const char *dtype; double fwd, grad, grad_saturated; } TOL[2] = {
    { "f32", 1e-5, 1e-5, 1e-4 },
    { "f64", 1e-12, 1e-12, 1e-12 },
};
static const double FLOOR = 1e-6, FLOOR_SATURATED = 1.0;

/* ---- the golden file ---- */

enum { MAX_ARRAYS = 32 };

typedef struct {
    char name[32];
    size_t n;
    double *v;
} garray;

typedef struct {
    char name[64], cell[8];
    long T, B, I, H, P, reverse, relu, chunk, saturated;
    garray a[MAX_ARRAYS];
    int na;
} gcase;

static const garray *find(const gcase *c, const char *name)
{
    for (int i = 0; i < c->na; i++)
        if (strcmp(c->a[i].name, name) == 0)
            return &c->a[i];
    return NULL;
}

static void free_case(gcase *c)
{
    for (int i = 0; i < c->na; i++)
        free(c->a[i].v);
    c->na = 0;
}

/* Read the next case; 1 if one was read, 0 at end of file, -1 on error. */
static int read_case(FILE *f, gcase *c)
{
    char tok[64];
    memset(c, 0, sizeof *c);
    int in_case = 0;
    while (fscanf(f, "%63s", tok) == 1) {
        if (tok[0] == '#') {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {}
        } else if (strcmp(tok, "case") == 0) {
            if (fscanf(f, "%63s %7s", c->name, c->cell) != 2)
                return -1;
            in_case = 1;
        } else if (strcmp(tok, "int") == 0 && in_case) {
            char key[16];
            long v;
            if (fscanf(f, "%15s %ld", key, &v) != 2)
                return -1;
            long *field = strcmp(key, "T") == 0 ? &c->T : strcmp(key, "B") == 0 ? &c->B
                        : strcmp(key, "I") == 0 ? &c->I : strcmp(key, "H") == 0 ? &c->H
                        : strcmp(key, "P") == 0 ? &c->P : strcmp(key, "reverse") == 0 ? &c->reverse
                        : strcmp(key, "relu") == 0 ? &c->relu : strcmp(key, "chunk") == 0 ? &c->chunk
                        : strcmp(key, "saturated") == 0 ? &c->saturated : NULL;
            if (field == NULL)
                return -1;
            *field = v;
        } else if (strcmp(tok, "array") == 0 && in_case && c->na < MAX_ARRAYS) {
            garray *a = &c->a[c->na++];
            if (fscanf(f, "%31s %zu", a->name, &a->n) != 2 || a->n == 0)
                return -1;
            a->v = malloc(a->n * sizeof(double));
            if (a->v == NULL)
                return -1;
            for (size_t i = 0; i < a->n; i++)
                if (fscanf(f, "%lf", &a->v[i]) != 1)
                    return -1;
        } else if (strcmp(tok, "end") == 0 && in_case) {
            return 1;
        } else {
            return -1;
        }
    }
    return in_case ? -1 : 0;
}

/* ---- buffers of one case, freed together ---- */

enum { MAX_ALLOCS = 128 };
static void *allocs[MAX_ALLOCS];
static int nallocs;

/* Zeroed; never NULL (the test gives up instead). */
static void *test_alloc(size_t bytes)
{
    void *p = calloc(bytes > 0 ? bytes : 1, 1);
    if (p == NULL || nallocs == MAX_ALLOCS) {
        fprintf(stderr, "test_core: out of memory\n");
        exit(2);
    }
    allocs[nallocs++] = p;
    return p;
}

static void test_free_all(void)
{
    while (nallocs > 0)
        free(allocs[--nallocs]);
}

static int64_t *lengths_of(const gcase *c)
{
    const garray *a = find(c, "lengths");
    if (a == NULL)
        return NULL;
    int64_t *len = test_alloc(a->n * sizeof(int64_t));
    for (size_t i = 0; i < a->n; i++)
        len[i] = (int64_t)a->v[i];
    return len;
}

/* ---- comparisons ---- */

static double worst_fwd, worst_grad;  /* of the current case and dtype */

/* got (n values, as double) against scale * golden[name]. */
static int compare(const gcase *c, const char *dtype, const char *what, const char *name,
                   const double *got, double scale, double rtol, double floor, int exact_zeros,
                   double *worst)
{
    const garray *a = find(c, name);
    double max_ref = floor, max_err = 0;
    for (size_t i = 0; i < a->n; i++)
        if (fabs(scale * a->v[i]) > max_ref)
            max_ref = fabs(scale * a->v[i]);
    size_t worst_i = 0;
    int zeros_ok = 1;
    for (size_t i = 0; i < a->n; i++) {
        const double want = scale * a->v[i];
        const double err = fabs(got[i] - want);
        if (!(err <= max_err)) {  /* NaN counts as the worst */
            max_err = err;
            worst_i = i;
        }
        if (exact_zeros && want == 0 && got[i] != 0)
            zeros_ok = 0;
    }
    const double rel = max_err / max_ref;
    if (rel > *worst || rel != rel)
        *worst = rel;
    if (rel <= rtol && zeros_ok)
        return 1;
    printf("FAIL %s %s %s %s: max error %.3g (tol %.3g) at [%zu]: got %.17g want %.17g%s\n",
           c->name, dtype, what, name, rel, rtol, worst_i, got[worst_i], scale * a->v[worst_i],
           zeros_ok ? "" : "; a masked output is not exactly 0");
    return 0;
}

static int status_is(const gcase *c, const char *dtype, const char *what,
                     crnn_status got, crnn_status want)
{
    if (got == want)
        return 1;
    printf("FAIL %s %s %s: status %d (%s), expected %d\n", c ? c->name : "args", dtype, what,
           (int)got, crnn_status_string(got), (int)want);
    return 0;
}

/* w with W_ih (GH, I), W_hh (GH, P) and W_hr (P, H) also packed by the
 * caller (crnn.h), so that forward runs [F1], [F2], [F4] on the packed
 * kernel where the CPU has it. Float64 has no packed kernel: its weights
 * stay as they are. */
static crnn_weights_f32 packed_f32(crnn_weights_f32 w, ptrdiff_t GH, ptrdiff_t I, ptrdiff_t P, ptrdiff_t H)
{
    float *W_ih_packed = test_alloc(crnn_packed_size_f32(GH, I) * sizeof(float));
    float *W_hh_packed = test_alloc(crnn_packed_size_f32(GH, P) * sizeof(float));
    crnn_pack_f32(GH, I, w.W_ih, W_ih_packed);
    crnn_pack_f32(GH, P, w.W_hh, W_hh_packed);
    w.W_ih_packed = W_ih_packed;
    w.W_hh_packed = W_hh_packed;
    if (w.W_hr != NULL) {  /* (P, H) */
        float *W_hr_packed = test_alloc(crnn_packed_size_f32(P, H) * sizeof(float));
        crnn_pack_f32(P, H, w.W_hr, W_hr_packed);
        w.W_hr_packed = W_hr_packed;
    }
    return w;
}

static crnn_weights_f64 packed_f64(crnn_weights_f64 w, ptrdiff_t GH, ptrdiff_t I, ptrdiff_t P, ptrdiff_t H)
{
    (void)GH, (void)I, (void)P, (void)H;
    return w;
}

#endif /* part 1 */

/* ===== part 2: one case in one dtype ===================================== */
#ifdef CRNN_INSTANCE

/* Golden input as `real` (exact: inputs are float32 values), or NULL if absent. */
static real *FN(input)(const gcase *c, const char *name)
{
    const garray *a = find(c, name);
    if (a == NULL)
        return NULL;
    real *p = test_alloc(a->n * sizeof(real));
    for (size_t i = 0; i < a->n; i++)
        p[i] = (real)a->v[i];
    return p;
}

/* A zeroed buffer of n values (gradients accumulate into it). */
static real *FN(output)(size_t n) { return test_alloc(n * sizeof(real)); }

/* A buffer of n NaNs: workspace, tape and assigned outputs start as garbage,
 * so a kernel that reads one before writing it poisons its results. */
static real *FN(garbage)(size_t n)
{
    real *p = test_alloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++)
        p[i] = (real)NAN;
    return p;
}

/* A zeroed gradient buffer shaped like golden[name], or NULL if the golden
 * has none (a parameter the layer does not have). */
static real *FN(grad_buffer)(const gcase *c, const char *name)
{
    const garray *a = find(c, name);
    return a ? FN(output)(a->n) : NULL;
}

static int FN(expect)(const gcase *c, const char *what, const char *name, const real *got,
                      double scale, int is_grad)
{
    const garray *a = find(c, name);
    if (got == NULL || a == NULL) {
        printf("FAIL %s %s %s %s: %s\n", c->name, DTYPE, what, name,
               a == NULL ? "computed, but the golden file has no such array" : "not computed");
        return 0;
    }
    double *g = test_alloc(a->n * sizeof(double));
    for (size_t i = 0; i < a->n; i++)
        g[i] = (double)got[i];
    const int saturated = is_grad && c->saturated;
    const double rtol = !is_grad ? TOL[DTYPE_INDEX].fwd
                      : saturated ? TOL[DTYPE_INDEX].grad_saturated : TOL[DTYPE_INDEX].grad;
    /* masked outputs are exactly 0 by the spec */
    return compare(c, DTYPE, what, name, g, scale, rtol, saturated ? FLOOR_SATURATED : FLOOR,
                   strcmp(name, "y") == 0, is_grad ? &worst_grad : &worst_fwd);
}

/* Expect every present parameter gradient to be scale * golden. */
static int FN(expect_grads)(const gcase *c, const char *what, const FN(crnn_grads) *g, double scale)
{
    const char *names[5] = { "dW_ih", "dW_hh", "db_ih", "db_hh", "dW_hr" };
    real *bufs[5] = { g->dW_ih, g->dW_hh, g->db_ih, g->db_hh, g->dW_hr };
    int ok = 1;
    for (int i = 0; i < 5; i++)
        if (find(c, names[i]) != NULL || bufs[i] != NULL)
            ok &= FN(expect)(c, what, names[i], bufs[i], scale, 1);
    return ok;
}

static FN(crnn_grads) FN(grads_for)(const gcase *c)
{
    FN(crnn_grads) g = { FN(grad_buffer)(c, "dW_ih"), FN(grad_buffer)(c, "dW_hh"),
                         FN(grad_buffer)(c, "db_ih"), FN(grad_buffer)(c, "db_hh"),
                         FN(grad_buffer)(c, "dW_hr") };
    return g;
}

/* The state buffer for an in-place run: a copy of h0, or zeros. */
static real *FN(state_copy)(const real *h0, size_t n)
{
    real *s = FN(output)(n);
    if (h0 != NULL)
        memcpy(s, h0, n * sizeof(real));
    return s;
}

static int FN(check_rnn)(const crnn_blas *blas, const gcase *c)
{
    crnn_rnn_desc d = { 0 };
    d.steps = c->T; d.batch = c->B; d.input_size = c->I; d.hidden_size = c->H;
    d.activation = c->relu ? CRNN_RELU : CRNN_TANH;
    d.reverse = (int)c->reverse;
    d.chunk_steps = c->chunk;
    const size_t T = (size_t)c->T, B = (size_t)c->B, I = (size_t)c->I, H = (size_t)c->H;
    const FN(crnn_weights) w = { .W_ih = FN(input)(c, "W_ih"), .W_hh = FN(input)(c, "W_hh"),
                                 .b_ih = FN(input)(c, "b_ih"), .b_hh = FN(input)(c, "b_hh") };
    const int64_t *len = lengths_of(c);
    const real *x = FN(input)(c, "x"), *h0 = FN(input)(c, "h0");
    const real *dy = FN(input)(c, "dy"), *dh_n = FN(input)(c, "dh_n");
    int ok = 1;

    size_t ws_n = crnn_rnn_workspace_size(&d, CRNN_PASS_INFER);
    real *ws = FN(garbage)(ws_n), *y = FN(garbage)(T * B * H), *h_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward", FN(crnn_rnn_forward)(blas, &d, &w, len, x, h0, y, h_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward", "y", y, 1, 0) & FN(expect)(c, "forward", "h_n", h_n, 1, 0);

    real *state = FN(state_copy)(h0, B * H);
    ok &= status_is(c, DTYPE, "forward in place", FN(crnn_rnn_forward)(blas, &d, &w, len, x, state, y, state, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward in place", "h_n", state, 1, 0);

    const FN(crnn_weights) wp = FN(packed)(w, c->H, c->I, c->H, c->H);
    ok &= status_is(c, DTYPE, "forward packed", FN(crnn_rnn_forward)(blas, &d, &wp, len, x, h0, y, h_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward packed", "y", y, 1, 0) & FN(expect)(c, "forward packed", "h_n", h_n, 1, 0);

    size_t tape_n = crnn_rnn_tape_size(&d);
    real *tape = FN(garbage)(tape_n);
    ws_n = crnn_rnn_workspace_size(&d, CRNN_PASS_TRAIN);
    ws = FN(garbage)(ws_n);
    y = FN(garbage)(T * B * H);
    h_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward_train", FN(crnn_rnn_forward_train)(blas, &d, &w, len, x, h0, y, h_n, tape, tape_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward_train", "y", y, 1, 0) & FN(expect)(c, "forward_train", "h_n", h_n, 1, 0);

    ws_n = crnn_rnn_workspace_size(&d, CRNN_PASS_BACKWARD);
    ws = FN(garbage)(ws_n);
    real *dx = FN(garbage)(T * B * I), *dh0 = FN(garbage)(B * H);
    const FN(crnn_grads) g = FN(grads_for)(c);
    for (int pass = 1; pass <= 2; pass++) {
        const char *what = pass == 1 ? "backward" : "backward x2";
        ok &= status_is(c, DTYPE, what, FN(crnn_rnn_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, dx, dh0, &g, ws, ws_n), CRNN_OK);
        ok &= FN(expect)(c, what, "dx", dx, 1, 1) & FN(expect)(c, what, "dh0", dh0, 1, 1);
        ok &= FN(expect_grads)(c, what, &g, pass);
    }

    FN(crnn_grads) only = { NULL, FN(grad_buffer)(c, "dW_hh"), NULL, NULL, NULL };
    ok &= status_is(c, DTYPE, "backward dW_hh only", FN(crnn_rnn_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, NULL, NULL, &only, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "backward dW_hh only", "dW_hh", only.dW_hh, 1, 1);
    return ok;
}

static int FN(check_lstm)(const crnn_blas *blas, const gcase *c)
{
    crnn_lstm_desc d = { 0 };
    d.steps = c->T; d.batch = c->B; d.input_size = c->I; d.hidden_size = c->H;
    d.proj_size = c->P;
    d.reverse = (int)c->reverse;
    d.chunk_steps = c->chunk;
    const size_t T = (size_t)c->T, B = (size_t)c->B, I = (size_t)c->I, H = (size_t)c->H;
    const size_t P = c->P > 0 ? (size_t)c->P : H;
    const FN(crnn_weights) w = { .W_ih = FN(input)(c, "W_ih"), .W_hh = FN(input)(c, "W_hh"),
                                 .b_ih = FN(input)(c, "b_ih"), .b_hh = FN(input)(c, "b_hh"),
                                 .W_hr = FN(input)(c, "W_hr") };
    const int64_t *len = lengths_of(c);
    const real *x = FN(input)(c, "x"), *h0 = FN(input)(c, "h0"), *c0 = FN(input)(c, "c0");
    const real *dy = FN(input)(c, "dy"), *dh_n = FN(input)(c, "dh_n"), *dc_n = FN(input)(c, "dc_n");
    int ok = 1;

    size_t ws_n = crnn_lstm_workspace_size(&d, CRNN_PASS_INFER);
    real *ws = FN(garbage)(ws_n), *y = FN(garbage)(T * B * P);
    real *h_n = FN(garbage)(B * P), *c_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward", FN(crnn_lstm_forward)(blas, &d, &w, len, x, h0, c0, y, h_n, c_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward", "y", y, 1, 0) & FN(expect)(c, "forward", "h_n", h_n, 1, 0)
        & FN(expect)(c, "forward", "c_n", c_n, 1, 0);

    real *hs = FN(state_copy)(h0, B * P), *cs = FN(state_copy)(c0, B * H);
    ok &= status_is(c, DTYPE, "forward in place", FN(crnn_lstm_forward)(blas, &d, &w, len, x, hs, cs, y, hs, cs, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward in place", "h_n", hs, 1, 0) & FN(expect)(c, "forward in place", "c_n", cs, 1, 0);

    const FN(crnn_weights) wp = FN(packed)(w, 4 * c->H, c->I, (ptrdiff_t)P, c->H);
    ok &= status_is(c, DTYPE, "forward packed", FN(crnn_lstm_forward)(blas, &d, &wp, len, x, h0, c0, y, h_n, c_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward packed", "y", y, 1, 0) & FN(expect)(c, "forward packed", "h_n", h_n, 1, 0)
        & FN(expect)(c, "forward packed", "c_n", c_n, 1, 0);

    size_t tape_n = crnn_lstm_tape_size(&d);
    real *tape = FN(garbage)(tape_n);
    ws_n = crnn_lstm_workspace_size(&d, CRNN_PASS_TRAIN);
    ws = FN(garbage)(ws_n);
    y = FN(garbage)(T * B * P);
    h_n = FN(garbage)(B * P);
    c_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward_train", FN(crnn_lstm_forward_train)(blas, &d, &w, len, x, h0, c0, y, h_n, c_n, tape, tape_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward_train", "y", y, 1, 0) & FN(expect)(c, "forward_train", "h_n", h_n, 1, 0)
        & FN(expect)(c, "forward_train", "c_n", c_n, 1, 0);

    ws_n = crnn_lstm_workspace_size(&d, CRNN_PASS_BACKWARD);
    ws = FN(garbage)(ws_n);
    real *dx = FN(garbage)(T * B * I), *dh0 = FN(garbage)(B * P), *dc0 = FN(garbage)(B * H);
    const FN(crnn_grads) g = FN(grads_for)(c);
    for (int pass = 1; pass <= 2; pass++) {
        const char *what = pass == 1 ? "backward" : "backward x2";
        ok &= status_is(c, DTYPE, what, FN(crnn_lstm_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, dc_n, dx, dh0, dc0, &g, ws, ws_n), CRNN_OK);
        ok &= FN(expect)(c, what, "dx", dx, 1, 1) & FN(expect)(c, what, "dh0", dh0, 1, 1)
            & FN(expect)(c, what, "dc0", dc0, 1, 1);
        ok &= FN(expect_grads)(c, what, &g, pass);
    }

    FN(crnn_grads) only = { NULL, FN(grad_buffer)(c, "dW_hh"), NULL, NULL, NULL };
    ok &= status_is(c, DTYPE, "backward dW_hh only", FN(crnn_lstm_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, dc_n, NULL, NULL, NULL, &only, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "backward dW_hh only", "dW_hh", only.dW_hh, 1, 1);
    return ok;
}

static int FN(check_gru)(const crnn_blas *blas, const gcase *c)
{
    crnn_gru_desc d = { 0 };
    d.steps = c->T; d.batch = c->B; d.input_size = c->I; d.hidden_size = c->H;
    d.reverse = (int)c->reverse;
    d.chunk_steps = c->chunk;
    const size_t T = (size_t)c->T, B = (size_t)c->B, I = (size_t)c->I, H = (size_t)c->H;
    const FN(crnn_weights) w = { .W_ih = FN(input)(c, "W_ih"), .W_hh = FN(input)(c, "W_hh"),
                                 .b_ih = FN(input)(c, "b_ih"), .b_hh = FN(input)(c, "b_hh") };
    const int64_t *len = lengths_of(c);
    const real *x = FN(input)(c, "x"), *h0 = FN(input)(c, "h0");
    const real *dy = FN(input)(c, "dy"), *dh_n = FN(input)(c, "dh_n");
    int ok = 1;

    size_t ws_n = crnn_gru_workspace_size(&d, CRNN_PASS_INFER);
    real *ws = FN(garbage)(ws_n), *y = FN(garbage)(T * B * H), *h_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward", FN(crnn_gru_forward)(blas, &d, &w, len, x, h0, y, h_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward", "y", y, 1, 0) & FN(expect)(c, "forward", "h_n", h_n, 1, 0);

    real *state = FN(state_copy)(h0, B * H);
    ok &= status_is(c, DTYPE, "forward in place", FN(crnn_gru_forward)(blas, &d, &w, len, x, state, y, state, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward in place", "h_n", state, 1, 0);

    const FN(crnn_weights) wp = FN(packed)(w, 3 * c->H, c->I, c->H, c->H);
    ok &= status_is(c, DTYPE, "forward packed", FN(crnn_gru_forward)(blas, &d, &wp, len, x, h0, y, h_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward packed", "y", y, 1, 0) & FN(expect)(c, "forward packed", "h_n", h_n, 1, 0);

    size_t tape_n = crnn_gru_tape_size(&d);
    real *tape = FN(garbage)(tape_n);
    ws_n = crnn_gru_workspace_size(&d, CRNN_PASS_TRAIN);
    ws = FN(garbage)(ws_n);
    y = FN(garbage)(T * B * H);
    h_n = FN(garbage)(B * H);
    ok &= status_is(c, DTYPE, "forward_train", FN(crnn_gru_forward_train)(blas, &d, &w, len, x, h0, y, h_n, tape, tape_n, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "forward_train", "y", y, 1, 0) & FN(expect)(c, "forward_train", "h_n", h_n, 1, 0);

    ws_n = crnn_gru_workspace_size(&d, CRNN_PASS_BACKWARD);
    ws = FN(garbage)(ws_n);
    real *dx = FN(garbage)(T * B * I), *dh0 = FN(garbage)(B * H);
    const FN(crnn_grads) g = FN(grads_for)(c);
    for (int pass = 1; pass <= 2; pass++) {
        const char *what = pass == 1 ? "backward" : "backward x2";
        ok &= status_is(c, DTYPE, what, FN(crnn_gru_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, dx, dh0, &g, ws, ws_n), CRNN_OK);
        ok &= FN(expect)(c, what, "dx", dx, 1, 1) & FN(expect)(c, what, "dh0", dh0, 1, 1);
        ok &= FN(expect_grads)(c, what, &g, pass);
    }

    FN(crnn_grads) only = { NULL, FN(grad_buffer)(c, "dW_hh"), NULL, NULL, NULL };
    ok &= status_is(c, DTYPE, "backward dW_hh only", FN(crnn_gru_backward)(blas, &d, &w, len, x, tape, tape_n, dy, dh_n, NULL, NULL, &only, ws, ws_n), CRNN_OK);
    ok &= FN(expect)(c, "backward dW_hh only", "dW_hh", only.dW_hh, 1, 1);
    return ok;
}

static int FN(check_case)(const crnn_blas *blas, const gcase *c)
{
    worst_fwd = worst_grad = 0;
    int ok;
    if (strcmp(c->cell, "rnn") == 0)
        ok = FN(check_rnn)(blas, c);
    else if (strcmp(c->cell, "lstm") == 0)
        ok = FN(check_lstm)(blas, c);
    else if (strcmp(c->cell, "gru") == 0)
        ok = FN(check_gru)(blas, c);
    else {
        printf("FAIL %s: unknown cell %s\n", c->name, c->cell);
        ok = 0;
    }
    test_free_all();
    printf("%-4s %-26s %s  forward %.1e  gradients %.1e\n", ok ? "ok" : "FAIL", c->name, DTYPE,
           worst_fwd, worst_grad);
    return ok;
}

#endif /* part 2 */

/* ===== part 3: instantiate part 2, then the bad-argument checks and main === */
#ifndef CRNN_INSTANCE
#define CRNN_INSTANCE
#define real float
#define FN(name) name##_f32
#define DTYPE "f32"
#define DTYPE_INDEX 0
#include "test_core.c"
#undef real
#undef FN
#undef DTYPE
#undef DTYPE_INDEX
#define real double
#define FN(name) name##_f64
#define DTYPE "f64"
#define DTYPE_INDEX 1
#include "test_core.c"
#undef real
#undef FN
#undef DTYPE
#undef DTYPE_INDEX
#undef CRNN_INSTANCE

/* Every bad argument returns its code, and a failing call writes nothing. */
static int check_bad_arguments(const crnn_blas *blas)
{
    enum { T = 3, B = 2, I = 2, H = 3, P = 2 };
    static double x[T * B * I], W_ih[4 * H * I], W_hh[4 * H * H], W_hr[P * H], dy[T * B * H];
    static double y[T * B * H], h_n[B * H], c_n[B * H], dx[T * B * I];
    static double ws[4096], tape[4096];
    const crnn_blas no_dgemm = { blas->sgemm, NULL, NULL, NULL };
    int ok = 1;

    crnn_lstm_desc d = { 0 };
    d.steps = T; d.batch = B; d.input_size = I; d.hidden_size = H;
    crnn_weights_f64 w = { .W_ih = W_ih, .W_hh = W_hh };
    const size_t ws_n = crnn_lstm_workspace_size(&d, CRNN_PASS_INFER);
#define LSTM_FWD(blas_, d_, w_, len_, x_, ws_, wsn_) \
    crnn_lstm_forward_f64(blas_, d_, w_, len_, x_, NULL, NULL, y, h_n, c_n, ws_, wsn_)
    ok &= status_is(NULL, "f64", "good arguments", LSTM_FWD(blas, &d, &w, NULL, x, ws, ws_n), CRNN_OK);
    ok &= status_is(NULL, "f64", "NULL blas", LSTM_FWD(NULL, &d, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "blas without dgemm", LSTM_FWD(&no_dgemm, &d, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "NULL desc", LSTM_FWD(blas, NULL, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "NULL weights", LSTM_FWD(blas, &d, NULL, NULL, x, ws, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "NULL x", LSTM_FWD(blas, &d, &w, NULL, NULL, ws, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "small workspace", LSTM_FWD(blas, &d, &w, NULL, x, ws, ws_n - 1), CRNN_ESIZE);
    ok &= status_is(NULL, "f64", "NULL workspace", LSTM_FWD(blas, &d, &w, NULL, x, NULL, ws_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "NULL y",
                    crnn_lstm_forward_f64(blas, &d, &w, NULL, x, NULL, NULL, NULL, h_n, c_n, ws, ws_n), CRNN_EINVAL);

    /* A failing call writes nothing: y keeps its sentinel. */
    for (size_t i = 0; i < T * B * H; i++)
        y[i] = 7.0;
    const int64_t negative[B] = { 3, -1 }, too_long[B] = { 4, 0 }, edge[B] = { 0, 3 };
    ok &= status_is(NULL, "f64", "length -1", LSTM_FWD(blas, &d, &w, negative, x, ws, ws_n), CRNN_ELENGTH);
    ok &= status_is(NULL, "f64", "length T+1", LSTM_FWD(blas, &d, &w, too_long, x, ws, ws_n), CRNN_ELENGTH);
    for (size_t i = 0; i < T * B * H; i++)
        if (y[i] != 7.0) {
            printf("FAIL args: a failing call wrote y[%zu]\n", i);
            ok = 0;
            break;
        }
    ok &= status_is(NULL, "f64", "lengths 0 and T", LSTM_FWD(blas, &d, &w, edge, x, ws, ws_n), CRNN_OK);

    crnn_lstm_desc bad = d;
    bad.steps = 0;
    ok &= status_is(NULL, "f64", "T = 0", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    ok &= crnn_lstm_workspace_size(&bad, CRNN_PASS_INFER) == 0 && crnn_lstm_tape_size(&bad) == 0;
    bad = d;
    bad.hidden_size = -1;
    ok &= status_is(NULL, "f64", "H = -1", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    bad = d;
    bad.proj_size = -2;
    ok &= status_is(NULL, "f64", "proj_size = -2", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    bad = d;
    bad.chunk_steps = -1;
    ok &= status_is(NULL, "f64", "chunk_steps = -1", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EINVAL);
    bad = d;
    bad.peephole = 1;
    ok &= status_is(NULL, "f64", "peephole", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EUNSUPPORTED);
    bad = d;
    bad.cell_clip = 3.0;
    ok &= status_is(NULL, "f64", "cell_clip", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EUNSUPPORTED);

    /* W_hr exactly when projecting. */
    crnn_weights_f64 with_hr = w;
    with_hr.W_hr = W_hr;
    ok &= status_is(NULL, "f64", "W_hr without proj_size", LSTM_FWD(blas, &d, &with_hr, NULL, x, ws, ws_n), CRNN_EINVAL);
    bad = d;
    bad.proj_size = P;
    ok &= status_is(NULL, "f64", "proj_size without W_hr", LSTM_FWD(blas, &bad, &w, NULL, x, ws, ws_n), CRNN_EINVAL);

    /* Training and backward: tape size, dy. */
    const size_t tape_n = crnn_lstm_tape_size(&d), train_n = crnn_lstm_workspace_size(&d, CRNN_PASS_TRAIN);
    const size_t bwd_n = crnn_lstm_workspace_size(&d, CRNN_PASS_BACKWARD);
    ok &= tape_n <= 4096 && bwd_n <= 4096;
    ok &= status_is(NULL, "f64", "small tape",
                    crnn_lstm_forward_train_f64(blas, &d, &w, NULL, x, NULL, NULL, y, h_n, c_n, tape, tape_n - 1, ws, train_n), CRNN_ESIZE);
    ok &= status_is(NULL, "f64", "forward_train",
                    crnn_lstm_forward_train_f64(blas, &d, &w, NULL, x, NULL, NULL, y, h_n, c_n, tape, tape_n, ws, train_n), CRNN_OK);
    ok &= status_is(NULL, "f64", "backward NULL dy",
                    crnn_lstm_backward_f64(blas, &d, &w, NULL, x, tape, tape_n, NULL, NULL, NULL, dx, NULL, NULL, NULL, ws, bwd_n), CRNN_EINVAL);
    ok &= status_is(NULL, "f64", "backward small workspace",
                    crnn_lstm_backward_f64(blas, &d, &w, NULL, x, tape, tape_n, dy, NULL, NULL, dx, NULL, NULL, NULL, ws, bwd_n - 1), CRNN_ESIZE);
    ok &= status_is(NULL, "f64", "backward",
                    crnn_lstm_backward_f64(blas, &d, &w, NULL, x, tape, tape_n, dy, NULL, NULL, dx, NULL, NULL, NULL, ws, bwd_n), CRNN_OK);

    /* RNN: activation; GRU: the reserved variant. */
    crnn_rnn_desc rd = { 0 };
    rd.steps = T; rd.batch = B; rd.input_size = I; rd.hidden_size = H;
    rd.activation = (crnn_activation)7;
    ok &= crnn_rnn_workspace_size(&rd, CRNN_PASS_INFER) == 0;
    ok &= status_is(NULL, "f32", "rnn activation 7",
                    crnn_rnn_forward_f32(blas, &rd, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0), CRNN_EINVAL);
    crnn_gru_desc gd = { 0 };
    gd.steps = T; gd.batch = B; gd.input_size = I; gd.hidden_size = H;
    gd.reset_before = 1;
    ok &= status_is(NULL, "f32", "gru reset_before",
                    crnn_gru_forward_f32(blas, &gd, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0), CRNN_EUNSUPPORTED);
    /* Packing: sizes below 1, NULL pointers. */
    float one = 1, packed[32];  /* crnn_packed_size_f32(1, 1) */
    ok &= crnn_packed_size_f32(0, 4) == 0 && crnn_packed_size_f32(4, -1) == 0;
    ok &= status_is(NULL, "f32", "pack rows 0", crnn_pack_f32(0, 1, &one, packed), CRNN_EINVAL);
    ok &= status_is(NULL, "f32", "pack NULL W", crnn_pack_f32(1, 1, NULL, packed), CRNN_EINVAL);
    ok &= status_is(NULL, "f32", "pack NULL out", crnn_pack_f32(1, 1, &one, NULL), CRNN_EINVAL);
    ok &= status_is(NULL, "f32", "pack 1 x 1", crnn_pack_f32(1, 1, &one, packed), CRNN_OK);
#undef LSTM_FWD
    printf("%-4s %-26s      status codes for bad arguments\n", ok ? "ok" : "FAIL", "bad_arguments");
    return ok;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "test/golden.txt";
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "test_core: cannot open %s\n", path);
        return 2;
    }
    const crnn_blas *blas = crnn_blas_naive();
    int allok = 1, ncases = 0, rc;
    gcase c;
    while ((rc = read_case(f, &c)) == 1) {
        allok &= check_case_f32(blas, &c);
        allok &= check_case_f64(blas, &c);
        free_case(&c);
        ncases++;
    }
    fclose(f);
    if (rc < 0 || ncases == 0) {
        free_case(&c);
        printf("FAIL %s: malformed golden file (after %d cases)\n", path, ncases);
        allok = 0;
    }
    allok &= check_bad_arguments(blas);
    printf("%s: %d golden cases x 2 dtypes, bad arguments\n", allok ? "all ok" : "FAILED", ncases);
    return allok ? 0 : 1;
}
#endif /* part 3 */
