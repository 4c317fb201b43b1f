# _ext.pxd -- the C declarations crnn/_ext.pyx uses, written once.
# Mirrors src/blas.h and crnn/_blas_runtime.h; kernel headers go here too.
# Cython includes this file into _ext.pyx automatically (same name).

from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t

cdef extern from "blas.h" nogil:
    ctypedef enum crnn_trans:
        CRNN_NO_TRANS
        CRNN_TRANS

    ctypedef void (*crnn_sgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                                   ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   float alpha, const float *A, ptrdiff_t lda,
                                   const float *B, ptrdiff_t ldb,
                                   float beta, float *C, ptrdiff_t ldc) noexcept nogil
    ctypedef void (*crnn_dgemm_fn)(crnn_trans trans_a, crnn_trans trans_b,
                                   ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   double alpha, const double *A, ptrdiff_t lda,
                                   const double *B, ptrdiff_t ldb,
                                   double beta, double *C, ptrdiff_t ldc) noexcept nogil

    ctypedef struct crnn_blas:
        crnn_sgemm_fn sgemm
        crnn_dgemm_fn dgemm

    const crnn_blas *crnn_blas_naive()


cdef extern from "_blas_runtime.h" nogil:
    ctypedef enum crnn_blas_from:
        CRNN_BLAS_FROM_ANY
        CRNN_BLAS_FROM_NUMPY
        CRNN_BLAS_FROM_VENDORED

    enum:
        CRNN_RT_OK
        CRNN_RT_NOT_FOUND
        CRNN_RT_UNSUPPORTED
        CRNN_RT_NO_THREAD_API
        CRNN_RT_BAD_ARG

    ctypedef struct crnn_blas_runtime_info:
        const char *source
        const char *library
        int int_bits
        const char *config
        int shares_pool

    int crnn_runtime_blas_init(crnn_blas_from source, const char *numpy_dir,
                               const char *vendored, char *err, size_t err_len)
    # The seam bound at import: what kernel bindings pass to the C core.
    const crnn_blas *crnn_runtime_blas()
    const crnn_blas_runtime_info *crnn_runtime_blas_info()
    int crnn_runtime_blas_set_num_threads(int n)
    int crnn_runtime_blas_get_num_threads()
    int crnn_runtime_blas_share_pool(int on)


cdef extern from "_blas_cblas.h" nogil:
    ptrdiff_t crnn_cblas_lp64_limit(ptrdiff_t limit)


cdef extern from "crnn.h" nogil:
    ctypedef enum crnn_status:
        CRNN_OK
        CRNN_EINVAL
        CRNN_ELENGTH
        CRNN_ESIZE
        CRNN_EUNSUPPORTED

    const char *crnn_status_string(crnn_status s)

    ctypedef enum crnn_activation:
        CRNN_TANH
        CRNN_RELU

    ctypedef enum crnn_pass:
        CRNN_PASS_INFER
        CRNN_PASS_TRAIN
        CRNN_PASS_BACKWARD

    ctypedef struct crnn_rnn_desc:
        ptrdiff_t steps, batch, input_size, hidden_size
        crnn_activation activation
        int reverse
        ptrdiff_t chunk_steps

    ctypedef struct crnn_lstm_desc:
        ptrdiff_t steps, batch, input_size, hidden_size
        ptrdiff_t proj_size
        int reverse
        ptrdiff_t chunk_steps
        int peephole
        double cell_clip

    ctypedef struct crnn_gru_desc:
        ptrdiff_t steps, batch, input_size, hidden_size
        int reverse
        ptrdiff_t chunk_steps
        int reset_before

    ctypedef struct crnn_weights_f32:
        const float *W_ih
        const float *W_hh
        const float *b_ih
        const float *b_hh
        const float *W_hr
        const float *W_ih_packed
        const float *W_hh_packed
        const float *W_hr_packed

    ctypedef struct crnn_weights_f64:
        const double *W_ih
        const double *W_hh
        const double *b_ih
        const double *b_hh
        const double *W_hr
        const double *W_ih_packed
        const double *W_hh_packed
        const double *W_hr_packed

    ctypedef struct crnn_grads_f32:
        float *dW_ih
        float *dW_hh
        float *db_ih
        float *db_hh
        float *dW_hr

    ctypedef struct crnn_grads_f64:
        double *dW_ih
        double *dW_hh
        double *db_ih
        double *db_hh
        double *dW_hr

    int crnn_pack_pays_f32(ptrdiff_t batch, ptrdiff_t rows, ptrdiff_t cols)
    size_t crnn_packed_size_f32(ptrdiff_t rows, ptrdiff_t cols)
    crnn_status crnn_pack_f32(ptrdiff_t rows, ptrdiff_t cols, const float *W, float *packed)

    size_t crnn_rnn_workspace_size(const crnn_rnn_desc *d, crnn_pass p)
    size_t crnn_rnn_tape_size(const crnn_rnn_desc *d)
    size_t crnn_lstm_workspace_size(const crnn_lstm_desc *d, crnn_pass p)
    size_t crnn_lstm_tape_size(const crnn_lstm_desc *d)
    size_t crnn_gru_workspace_size(const crnn_gru_desc *d, crnn_pass p)
    size_t crnn_gru_tape_size(const crnn_gru_desc *d)

    crnn_status crnn_rnn_forward_f32(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, float *y, float *h_n,
        float *workspace, size_t workspace_size)
    crnn_status crnn_rnn_forward_train_f32(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, float *y, float *h_n,
        float *tape, size_t tape_size, float *workspace, size_t workspace_size)
    crnn_status crnn_rnn_backward_f32(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *tape, size_t tape_size,
        const float *dy, const float *dh_n, float *dx, float *dh0, const crnn_grads_f32 *grads,
        float *workspace, size_t workspace_size)
    crnn_status crnn_rnn_forward_f64(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, double *y, double *h_n,
        double *workspace, size_t workspace_size)
    crnn_status crnn_rnn_forward_train_f64(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, double *y, double *h_n,
        double *tape, size_t tape_size, double *workspace, size_t workspace_size)
    crnn_status crnn_rnn_backward_f64(const crnn_blas *blas, const crnn_rnn_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *tape, size_t tape_size,
        const double *dy, const double *dh_n, double *dx, double *dh0, const crnn_grads_f64 *grads,
        double *workspace, size_t workspace_size)

    crnn_status crnn_lstm_forward_f32(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, const float *c0,
        float *y, float *h_n, float *c_n, float *workspace, size_t workspace_size)
    crnn_status crnn_lstm_forward_train_f32(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, const float *c0,
        float *y, float *h_n, float *c_n, float *tape, size_t tape_size,
        float *workspace, size_t workspace_size)
    crnn_status crnn_lstm_backward_f32(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *tape, size_t tape_size,
        const float *dy, const float *dh_n, const float *dc_n, float *dx, float *dh0, float *dc0,
        const crnn_grads_f32 *grads, float *workspace, size_t workspace_size)
    crnn_status crnn_lstm_forward_f64(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, const double *c0,
        double *y, double *h_n, double *c_n, double *workspace, size_t workspace_size)
    crnn_status crnn_lstm_forward_train_f64(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, const double *c0,
        double *y, double *h_n, double *c_n, double *tape, size_t tape_size,
        double *workspace, size_t workspace_size)
    crnn_status crnn_lstm_backward_f64(const crnn_blas *blas, const crnn_lstm_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *tape, size_t tape_size,
        const double *dy, const double *dh_n, const double *dc_n, double *dx, double *dh0, double *dc0,
        const crnn_grads_f64 *grads, double *workspace, size_t workspace_size)

    crnn_status crnn_gru_forward_f32(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, float *y, float *h_n,
        float *workspace, size_t workspace_size)
    crnn_status crnn_gru_forward_train_f32(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *h0, float *y, float *h_n,
        float *tape, size_t tape_size, float *workspace, size_t workspace_size)
    crnn_status crnn_gru_backward_f32(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f32 *w,
        const int64_t *lengths, const float *x, const float *tape, size_t tape_size,
        const float *dy, const float *dh_n, float *dx, float *dh0, const crnn_grads_f32 *grads,
        float *workspace, size_t workspace_size)
    crnn_status crnn_gru_forward_f64(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, double *y, double *h_n,
        double *workspace, size_t workspace_size)
    crnn_status crnn_gru_forward_train_f64(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *h0, double *y, double *h_n,
        double *tape, size_t tape_size, double *workspace, size_t workspace_size)
    crnn_status crnn_gru_backward_f64(const crnn_blas *blas, const crnn_gru_desc *d, const crnn_weights_f64 *w,
        const int64_t *lengths, const double *x, const double *tape, size_t tape_size,
        const double *dy, const double *dh_n, double *dx, double *dh0, const crnn_grads_f64 *grads,
        double *workspace, size_t workspace_size)


cdef extern from "parallel.h" nogil:
    ctypedef void (*crnn_call_fn)(void *call) noexcept nogil
    void crnn_parallel_pair(const crnn_blas *blas, crnn_call_fn fn, void *a, void *b)
    void crnn_parallel_split_counts(long *on_pool, long *on_worker)
    void crnn_parallel_check_crowding(int on)


cdef extern from "row_step.h" nogil:
    int crnn_row_step_enable(int on)
    int crnn_row_back_enable(int on)
