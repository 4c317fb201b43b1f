/* row_step.c -- one step of one sequence, product and cell fused; see row_step.h.
 *
 * Measured on an Intel Xeon (AVX-512, 1 thread). A C loop of 512 dependent
 * steps with the input products given, against the unfused step
 * (crnn_rgemm_mv_f32, then the vmath calls and the cell loops), median per
 * step: LSTM H = 64 1.22 against 1.41 us, H = 128 4.2 against 4.7 us;
 * interleaving the gates' panels (G streams, G*4 accumulators) gained
 * about half of that, running each block's cell behind the next block's
 * reads the rest. In place, from Python, fused against unfused in one
 * process (crnn._ext._fuse_row_steps): a stream's LSTM and GRU step
 * (I = 32, H = 64, the input product fused too) 11-13% faster, sequences of
 * 512 steps (I = 64, H = 128) 4-8% in inference, 2-3% in training (whose
 * backward is not fused). AVX2-only CPUs never fuse. On an AMD EPYC
 * (Zen 4), whole sequences in a C loop (T = 512, I = 64, H = 128, 1
 * thread, fused and unfused alternating, six runs): LSTM 0.94-1.01x, GRU
 * 0.97-1.05x, no gain there: a fused LSTM step (H = 128, a C loop of
 * steps) took 2.74 us, and reading its 256 KiB of W_hh from L2 alone
 * 2.38 us.
 *
 * One sequence split by units over two threads (units_shape in common.h),
 * each fusing its own blocks, gives the same bits as one thread. On the
 * Intel Xeon two threads were no faster than one in the cells (H = 128,
 * T = 512; a C loop with all buffers on cache lines ran 1.4x faster); on
 * an AMD EPYC (Zen 4) the cells ran 1.5-1.6x faster (LSTM, GRU, H = 128),
 * so the split is taken, on any CPU (no rule here tells the two apart).
 *
 * The LSTM's backward step fuses the same way: each block's cell gradients,
 * then its 64 rows of W_hh times them into dh_{t-1}, in a layout of its own
 * where a block's rows are one stream. Measured in place (one process,
 * alternating, T = 512, I = 64, H = 128, 1 thread): with W_hh in the
 * product's own packing the backward was 1.01-1.06x faster; in the
 * block-stream layout, with the next step's tape rows asked for ahead
 * (they come from L3 or memory: a step's first loads stalled on them),
 * 1.085x. At 2 threads it ties: the pipeline (common.h) then waits on the
 * weight gradients as much as on the steps.
 */
#include <stdint.h>
#include <string.h>

#include "crnn.h"  /* the gate blocks' order */
#include "mv_panels.h"
#include "row_step.h"
#include "rgemm.h"
#include "vmath.h"
#include "vmath_ps16.h"

static int enabled = 1;

int crnn_row_step_enable(int on)
{
    const int was = enabled;
    enabled = on != 0;
    return was;
}

/* A product of G gate blocks of H units by K columns packed at Wp fuses:
 * on the AVX-512 path, Wp on a cache line, whole 16-unit blocks, and a
 * shape the unfused step would give the one-row kernel. */
static int fuses(ptrdiff_t G, ptrdiff_t H, ptrdiff_t K, const float *Wp)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    return enabled && Wp != NULL && (uintptr_t)Wp % 64 == 0 && H % RGEMM_NR == 0 && crnn_rgemm_mv_pays(1, G * H, K)
           && crnn_vmath_path() == CRNN_VMATH_AVX512;
#else
    (void)G, (void)H, (void)K, (void)Wp;
    return 0;
#endif
}

int crnn_row_step_pays(ptrdiff_t G, ptrdiff_t H, const float *Wp)
{
    return fuses(G, H, H, Wp);
}

int crnn_row_step_input_pays(ptrdiff_t G, ptrdiff_t H, ptrdiff_t I, const float *Wp_ih)
{
    return fuses(G, H, I, Wp_ih);
}

static int back_enabled = 1;

int crnn_row_back_enable(int on)
{
    const int was = back_enabled;
    back_enabled = on != 0;
    return was;
}

/* W_hh (4H, H) in the backward's layout on a cache line, read from L2 (at
 * most 512 KiB, as the one-row product's: H <= 181), on the AVX-512 path,
 * whole blocks. */
enum { ROW_BACK_MAX_H = 176 };

int crnn_lstm_row_back_pays(ptrdiff_t H, const float *Wp)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    return back_enabled && Wp != NULL && (uintptr_t)Wp % 64 == 0 && H % RGEMM_NR == 0 && H >= 32
           && H <= ROW_BACK_MAX_H && crnn_vmath_path() == CRNN_VMATH_AVX512;
#else
    (void)H, (void)Wp;
    return 0;
#endif
}

/* The backward's layout of W_hh (4H, H) (crnn_lstm_row_back_pack_f32):
 * block by block of 16 units u, the 64 rows of its gates (q * H + u ..),
 * for each output panel p of 16 columns, gate by gate, each row's 16
 * columns (a line): Wb[(((j * npanels + p) * 4 + q) * 16 + l) * 16 + c] =
 * W_hh[q * H + 16 j + l, 16 p + c]. A block's rows are then one stream of
 * 4 * 16 * H floats, read in order. */
static inline ptrdiff_t back_line(ptrdiff_t H, ptrdiff_t j, ptrdiff_t p, int q)
{
    return ((j * (H / RGEMM_NR) + p) * 4 + q) * RGEMM_NR * RGEMM_NR;
}

void crnn_lstm_row_back_pack_f32(ptrdiff_t H, const float *W_hh, float *Wb)
{
    for (ptrdiff_t j = 0; j < H / RGEMM_NR; j++)
        for (ptrdiff_t p = 0; p < H / RGEMM_NR; p++)
            for (int q = 0; q < 4; q++)
                for (ptrdiff_t l = 0; l < RGEMM_NR; l++)
                    memcpy(Wb + back_line(H, j, p, q) + l * RGEMM_NR,
                           W_hh + (q * H + j * RGEMM_NR + l) * H + p * RGEMM_NR, RGEMM_NR * sizeof(float));
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

/* Blocks run forward on one step and backward on the next. A step's W_ih
 * and W_hh panels do not fit L1 (a stream's LSTM of I = 32, H = 64: 96 KiB
 * against 48), so in one direction every step reads them all from L2; back
 * and forth, a step starts on the panels the previous one read last, still
 * in L1. Each block's sums are its own, so the order does not change a
 * bit. The turn is per thread (a stream's steps are separate calls);
 * initial-exec: no call to find it.
 *
 * Measured against always forward, 1 thread, medians: in place (one
 * process, alternating) a stream's step (I = 32, H = 64) 1-4% faster for
 * LSTM and 5-6% for GRU, sequences of 512 steps (I = 64, H = 128) 2-6%; a
 * C loop of the stream's fused step -1% to 23% over three runs per cell (a
 * plain read of 96 KiB back and forth against forward only: 1.33x). It
 * pays because a block (G panels of W_ih and W_hh) fits L1. The one-row
 * product of rgemm.c visiting its groups of 4 panels back and forth on
 * every other call, whose groups do not (LSTM training, T = 512, H = 128:
 * the backward's W_hh of 256 KiB in groups of 128 KiB, each read k
 * first), made the training call 1-4% slower, and was not kept. */
static _Thread_local unsigned turn __attribute__((tls_model("initial-exec")));

/* The first unit of the j-th block of 16 this step visits. */
static inline ptrdiff_t block_unit(int backward, ptrdiff_t H, ptrdiff_t j)
{
    return backward ? H - RGEMM_NR - j : j;
}

/* pre[q] = a @ (panel q).T + c0[q] for the G gates' panels of one block
 * of 16 units: gate q's at Wp + q * H * K (the block's offset already
 * applied by the caller), summed as the one-row product sums (mv_panels.h). */
static inline __attribute__((always_inline)) AVX512 void
gate_panels(const int G, ptrdiff_t H, ptrdiff_t K, const float *a, const float *Wp, const __m512 *c0,
            __m512 *pre)
{
    mv_panels_ps16(G, K, a, Wp, H * K, c0, pre);
}

/* 16 elements of a bias from at; NULL (no bias) as the zeros the cells
 * would add */
static inline __attribute__((always_inline)) AVX512 __m512 bias16(const float *b, ptrdiff_t at)
{
    return b != NULL ? _mm512_loadu_ps(b + at) : _mm512_setzero_ps();
}

/* sum_biases' b_ih[k] + b_hh[k] (lstm.c) for 16 k from at */
static inline __attribute__((always_inline)) AVX512 __m512 bias_sum(const float *b_ih, const float *b_hh,
                                                                    ptrdiff_t at)
{
    return _mm512_add_ps(bias16(b_ih, at), bias16(b_hh, at));
}

/* lstm_step's [F2]-[F3] for one row (lstm.c), in blocks of 16 units:
 *     gates += h_prev W_hh^T;  i, f, o = sigmoid(. + bias), g = tanh(. + bias)
 *     c_out = f * c_prev + i * g;  h_new = tanh(c_out) * o      (bias = b_ih + b_hh) */
static AVX512 void lstm_row_step_avx512(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                                        const float *Wp_ih,
                                        const float *h_prev, const float *Wp, const float *b_ih,
                                        const float *b_hh, float *gates, const float *c_prev, float *c_out,
                                        float *h_new)
{
    const __m512 zero[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
    const int backward = turn++ & 1;
    for (ptrdiff_t j = 0; j < u1 - u0; j += RGEMM_NR) {
        const ptrdiff_t u = u0 + block_unit(backward, u1 - u0, j);
        __m512 pre[4], c0[4];
        if (x != NULL)  /* [F1] here: x_t W_ih^T, then [F2] adds to it */
            gate_panels(4, H, I, x, Wp_ih + u * I, zero, c0);
        else
            for (int q = 0; q < 4; q++)
                c0[q] = _mm512_loadu_ps(gates + q * H + u);
        gate_panels(4, H, H, h_prev, Wp + u * H, c0, pre);
        const __m512 i = sigmoid_ps16(_mm512_add_ps(pre[CRNN_LSTM_I], bias_sum(b_ih, b_hh, CRNN_LSTM_I * H + u)));
        const __m512 f = sigmoid_ps16(_mm512_add_ps(pre[CRNN_LSTM_F], bias_sum(b_ih, b_hh, CRNN_LSTM_F * H + u)));
        const __m512 g = tanh_ps16(_mm512_add_ps(pre[CRNN_LSTM_G], bias_sum(b_ih, b_hh, CRNN_LSTM_G * H + u)));
        const __m512 o = sigmoid_ps16(_mm512_add_ps(pre[CRNN_LSTM_O], bias_sum(b_ih, b_hh, CRNN_LSTM_O * H + u)));
        _mm512_storeu_ps(gates + CRNN_LSTM_I * H + u, i);
        _mm512_storeu_ps(gates + CRNN_LSTM_F * H + u, f);
        _mm512_storeu_ps(gates + CRNN_LSTM_G * H + u, g);
        _mm512_storeu_ps(gates + CRNN_LSTM_O * H + u, o);
        const __m512 c = _mm512_add_ps(_mm512_mul_ps(f, _mm512_loadu_ps(c_prev + u)), _mm512_mul_ps(i, g));
        _mm512_storeu_ps(c_out + u, c);
        _mm512_storeu_ps(h_new + u, _mm512_mul_ps(tanh_ps16(c), o));
    }
}

/* gru_step's [F2]-[F3] for one row (gru.c), in blocks of 16 units:
 *     hw = h_prev W_hh^T;  r, z = sigmoid((gates + b_ih) + (hw + b_hh))
 *     hn = hw_n + b_hn;  n = tanh((gates_n + b_in) + r * hn)
 *     h_new = (1 - z) * n + z * h_prev */
static AVX512 void gru_row_step_avx512(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                                       const float *Wp_ih,
                                       const float *h_prev, const float *Wp, const float *b_ih, const float *b_hh,
                                       float *gates, float *hn, float *h_new)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 zero[3] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
    const int backward = turn++ & 1;
    for (ptrdiff_t j = 0; j < u1 - u0; j += RGEMM_NR) {
        const ptrdiff_t u = u0 + block_unit(backward, u1 - u0, j);
        const ptrdiff_t r_at = CRNN_GRU_R * H + u, z_at = CRNN_GRU_Z * H + u, n_at = CRNN_GRU_N * H + u;
        __m512 xw[3], hw[3];
        if (x != NULL) {  /* [F1] here: x_t W_ih^T */
            gate_panels(3, H, I, x, Wp_ih + u * I, zero, xw);
        } else {
            xw[CRNN_GRU_R] = _mm512_loadu_ps(gates + r_at);
            xw[CRNN_GRU_Z] = _mm512_loadu_ps(gates + z_at);
            xw[CRNN_GRU_N] = _mm512_loadu_ps(gates + n_at);
        }
        gate_panels(3, H, H, h_prev, Wp + u * H, zero, hw);
        const __m512 r = sigmoid_ps16(_mm512_add_ps(_mm512_add_ps(xw[CRNN_GRU_R], bias16(b_ih, r_at)),
                                                    _mm512_add_ps(hw[CRNN_GRU_R], bias16(b_hh, r_at))));
        const __m512 z = sigmoid_ps16(_mm512_add_ps(_mm512_add_ps(xw[CRNN_GRU_Z], bias16(b_ih, z_at)),
                                                    _mm512_add_ps(hw[CRNN_GRU_Z], bias16(b_hh, z_at))));
        const __m512 hn_u = _mm512_add_ps(hw[CRNN_GRU_N], bias16(b_hh, n_at));
        const __m512 n = tanh_ps16(_mm512_add_ps(_mm512_add_ps(xw[CRNN_GRU_N], bias16(b_ih, n_at)),
                                                 _mm512_mul_ps(r, hn_u)));
        _mm512_storeu_ps(gates + r_at, r);
        _mm512_storeu_ps(gates + z_at, z);
        _mm512_storeu_ps(gates + n_at, n);
        _mm512_storeu_ps(hn + u, hn_u);
        _mm512_storeu_ps(h_new + u, _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, z), n),
                                                  _mm512_mul_ps(z, _mm512_loadu_ps(h_prev + u))));
    }
}

/* acc[p] += sum over the block's 16 rows of each gate q of dpre[row] *
 * W_hh[row, 16 p ..], for NP output panels from p0: per gate, the one-row
 * product's sums (mv_panels.h) over its 16 rows, chained from gate to gate
 * through acc. Wb: the block's rows (back_line(H, j, 0, 0)). */
static inline __attribute__((always_inline)) AVX512 void
back_panels(const int NP, ptrdiff_t H, ptrdiff_t u, const float *dpre, const float *Wb, ptrdiff_t p0, float *acc)
{
    const ptrdiff_t pstride = 4 * RGEMM_NR * RGEMM_NR;  /* one panel of the block's four gates */
    __m512 c0[4], out[4];
    for (int p = 0; p < NP; p++)
        c0[p] = _mm512_load_ps(acc + (p0 + p) * RGEMM_NR);
    for (int q = 0; q < 4; q++) {
        mv_panels_ps16(NP, RGEMM_NR, dpre + q * H + u, Wb + p0 * pstride + q * RGEMM_NR * RGEMM_NR, pstride, c0, out);
        for (int p = 0; p < NP; p++)
            c0[p] = out[p];
    }
    for (int p = 0; p < NP; p++)
        _mm512_store_ps(acc + (p0 + p) * RGEMM_NR, c0[p]);
}

/* lstm_back_rows' step for one valid row (lstm.c), in blocks of 16 units:
 * the cell's gradients (lstm_cell_backward's arithmetic, in its order,
 * without FMA), then at once the block's share of dh_prev = dpre @ W_hh,
 * summed in acc while the next block's W_hh rows stream in. Blocks go
 * back and forth from step to step, as the forward's do, but in the order
 * the caller gives (0: first to last, 1: last to first) from the step's
 * index, not by the thread's turn: a column of dh_prev sums over the
 * blocks in that order, and a backward pass called twice on the same
 * tape must give the same bits (by the turn, with an odd number of steps
 * between the calls, it did not). */
static AVX512 void lstm_row_back_avx512(ptrdiff_t H, int order, const float *gates, const float *c_prev,
                                        const float *c_new, const float *dy, float *dh, float *dc, const float *Wp,
                                        float *dpre)
{
    _Alignas(64) float acc[ROW_BACK_MAX_H];
    const __m512 one = _mm512_set1_ps(1.0f);
    const ptrdiff_t npanels = H / RGEMM_NR;
    for (ptrdiff_t p = 0; p < npanels; p++)
        _mm512_store_ps(acc + p * RGEMM_NR, _mm512_setzero_ps());
    for (ptrdiff_t j = 0; j < H; j += RGEMM_NR) {
        const ptrdiff_t u = block_unit(order, H, j);
        const __m512 i = _mm512_loadu_ps(gates + CRNN_LSTM_I * H + u), f = _mm512_loadu_ps(gates + CRNN_LSTM_F * H + u),
                     g = _mm512_loadu_ps(gates + CRNN_LSTM_G * H + u), o = _mm512_loadu_ps(gates + CRNN_LSTM_O * H + u);
        /* h_t feeds both y_t and step t+1: the two gradients meet here */
        const __m512 dr = _mm512_add_ps(_mm512_loadu_ps(dy + u), _mm512_loadu_ps(dh + u));
        const __m512 tc = tanh_ps16(_mm512_loadu_ps(c_new + u));
        const __m512 dc_new = _mm512_add_ps(
            _mm512_loadu_ps(dc + u),
            _mm512_mul_ps(_mm512_mul_ps(dr, o), _mm512_sub_ps(one, _mm512_mul_ps(tc, tc))));
        const __m512 d_o = _mm512_mul_ps(dr, tc), d_i = _mm512_mul_ps(dc_new, g),
                     d_f = _mm512_mul_ps(dc_new, _mm512_loadu_ps(c_prev + u)), d_g = _mm512_mul_ps(dc_new, i);
        _mm512_storeu_ps(dpre + CRNN_LSTM_I * H + u, _mm512_mul_ps(_mm512_mul_ps(d_i, i), _mm512_sub_ps(one, i)));
        _mm512_storeu_ps(dpre + CRNN_LSTM_F * H + u, _mm512_mul_ps(_mm512_mul_ps(d_f, f), _mm512_sub_ps(one, f)));
        _mm512_storeu_ps(dpre + CRNN_LSTM_G * H + u, _mm512_mul_ps(d_g, _mm512_sub_ps(one, _mm512_mul_ps(g, g))));
        _mm512_storeu_ps(dpre + CRNN_LSTM_O * H + u, _mm512_mul_ps(_mm512_mul_ps(d_o, o), _mm512_sub_ps(one, o)));
        _mm512_storeu_ps(dc + u, _mm512_mul_ps(dc_new, f));
        const float *Wb = Wp + back_line(H, u / RGEMM_NR, 0, 0);
        ptrdiff_t p = 0;
        for (; p + 4 <= npanels; p += 4)
            back_panels(4, H, u, dpre, Wb, p, acc);
        switch (npanels - p) {
        case 3: back_panels(3, H, u, dpre, Wb, p, acc); break;
        case 2: back_panels(2, H, u, dpre, Wb, p, acc); break;
        case 1: back_panels(1, H, u, dpre, Wb, p, acc); break;
        default: break;
        }
    }
    for (ptrdiff_t p = 0; p < npanels; p++)
        _mm512_storeu_ps(dh + p * RGEMM_NR, _mm512_load_ps(acc + p * RGEMM_NR));
}

void crnn_lstm_row_back_f32(ptrdiff_t H, int order, const float *gates, const float *c_prev, const float *c_new,
                            const float *dy, float *dh, float *dc, const float *Wp, float *dpre)
{
    lstm_row_back_avx512(H, order, gates, c_prev, c_new, dy, dh, dc, Wp, dpre);
}

void crnn_lstm_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                            const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                            const float *b_hh, float *gates, const float *c_prev, float *c_out, float *h_new)
{
    lstm_row_step_avx512(H, u0, u1, x, I, Wp_ih, h_prev, Wp, b_ih, b_hh, gates, c_prev, c_out, h_new);
}

void crnn_gru_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                           const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                           const float *b_hh, float *gates, float *hn, float *h_new)
{
    gru_row_step_avx512(H, u0, u1, x, I, Wp_ih, h_prev, Wp, b_ih, b_hh, gates, hn, h_new);
}

#else

void crnn_lstm_row_back_f32(ptrdiff_t H, int order, const float *gates, const float *c_prev, const float *c_new,
                            const float *dy, float *dh, float *dc, const float *Wp, float *dpre)
{
    (void)H, (void)order, (void)gates, (void)c_prev, (void)c_new, (void)dy, (void)dh, (void)dc, (void)Wp, (void)dpre;
}

void crnn_lstm_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                            const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                            const float *b_hh, float *gates, const float *c_prev, float *c_out, float *h_new)
{
    (void)H, (void)u0, (void)u1, (void)x, (void)I, (void)Wp_ih, (void)h_prev, (void)Wp, (void)b_ih, (void)b_hh;
    (void)gates, (void)c_prev, (void)c_out, (void)h_new;
}

void crnn_gru_row_step_f32(ptrdiff_t H, ptrdiff_t u0, ptrdiff_t u1, const float *x, ptrdiff_t I,
                           const float *Wp_ih, const float *h_prev, const float *Wp, const float *b_ih,
                           const float *b_hh, float *gates, float *hn, float *h_new)
{
    (void)H, (void)u0, (void)u1, (void)x, (void)I, (void)Wp_ih, (void)h_prev, (void)Wp, (void)b_ih, (void)b_hh;
    (void)gates, (void)hn, (void)h_new;
}

#endif
