"""What every cell family shares: time order, length masks, activations,
the chunked input product and the layout of the recurrent one.

Legend used across the reference (and in src/*.c):
    T  time steps          B  batch size          I  input features
    H  hidden units        P  output/state size of h (H, or proj_size for LSTM)
    G  gates per cell      (RNN 1, GRU 3, LSTM 4)

Variable lengths follow PyTorch's packed sequences: sequence b is valid at
time t iff t < lengths[b]. A step where b is not valid leaves b's state
unchanged and writes 0 to its output. That single rule gives both
directions for free: running forward, the state freezes after the last
valid step; running in reverse (t = T-1 .. 0), the state stays at its
initial value until t reaches lengths[b] - 1, where the sequence really
begins. The forwards keep a finished sequence's state by selection
(np.where), not by multiplying with a 0/1 mask: padding past a length may
hold anything, and 0 * NaN is NaN.

Products inside the time loop are written h.dot(W), not h @ W: the same BLAS
product with about 0.3 us less NumPy overhead per call (measured at B = 1:
0.38 against 0.68 us for H = 64, 1.03 against 1.34 us for H = 128), which
counts when a step takes a few microseconds.
"""

from __future__ import annotations

import numpy as np


def time_order(T: int, reverse: bool) -> range:
    """Time indices in the order the recurrence visits them."""
    return range(T - 1, -1, -1) if reverse else range(T)


# Backward keeps the pre-activation gradients of about BACKWARD_CHUNK_ROWS
# rows (steps x batch) at a time and turns each chunk into dx and weight
# gradients before the next: its memory does not grow with T, and the
# weight-gradient products stay tall. Each chunk's weight gradients are a
# temporary as large as the weights, added into the sums: with large weights
# a chunk takes at least as many rows as the weights have columns, so that
# the additions stay small beside the products (a simple RNN, T=50, B=64,
# I=512, H=1024, forward and backward: 369 ms with chunks of 512 rows, 342
# with 1536). The chunk's memory is then at most the weights' size.
BACKWARD_CHUNK_ROWS = 512


def backward_chunks(T: int, B: int, reverse: bool, weight_columns: int = 0) -> list[range]:
    """The backward's time order (forward's reversed) cut into runs of consecutive steps,
    of about max(BACKWARD_CHUNK_ROWS, weight_columns) rows each (weight_columns: I + P)."""
    order = time_order(T, not reverse)
    steps = max(1, max(BACKWARD_CHUNK_ROWS, weight_columns) // B)
    return [order[k:k + steps] for k in range(0, T, steps)]


def valid_mask(T: int, B: int, lengths: np.ndarray | None, dtype) -> np.ndarray | None:
    """(T, B, 1) array of 1.0 where step t of sequence b is valid, else 0.0;
    None when every step is valid (lengths None): the loops then skip the masking."""
    if lengths is None:
        return None
    t = np.arange(T)[:, None]
    return (t < np.asarray(lengths)[None, :]).astype(dtype)[:, :, None]


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), same dtype as x; into out if given (may be x)."""
    # The same function written through tanh: it cannot overflow, and it costs
    # one transcendental and no division (about 25% faster than the exp form).
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def states_before(outputs: np.ndarray, first: np.ndarray, reverse: bool) -> np.ndarray:
    """The state each step t started from, (T, B, K), when every step is valid:
    `first` for the first step visited, then the previous step's output."""
    if reverse:
        return np.concatenate([outputs[1:], first[None]])
    return np.concatenate([first[None], outputs[:-1]])


# Each forward runs the input product [F1] over FORWARD_CHUNK_ROWS rows
# (steps x batch) at a time, just before the recurrence visits those steps.
# Inference reuses one chunk-sized buffer for them, so its memory does not
# grow with T. 512 rows keep the product tall enough for BLAS: measured
# single-threaded, (M x 512) x (512 x 1024) ran at 169 GFLOP/s for M = 512,
# 173 for M = 3200, 148 for M = 256 and 98 for M = 64.
FORWARD_CHUNK_ROWS = 512


def forward_chunk_steps(T: int, B: int) -> int:
    """Steps per chunk of the input product."""
    return min(T, max(1, FORWARD_CHUNK_ROWS // B))


def projected_inputs(x: np.ndarray, W_ih: np.ndarray, bias: np.ndarray | None, reverse: bool,
                     tape: np.ndarray | None = None):
    """[F1] W_ih x_t + bias for every step t, in the order the recurrence visits
    the steps: yields (t, xw_t), xw_t a (B, G) view the caller may overwrite.

    x (T, B, I), W_ih (G, I), bias (G,) or None. Without a tape (inference)
    every chunk's products go to one reused buffer, so xw_t is valid until the
    next step only. A training forward passes tape (T, B, G): the products go
    to tape[t], where they stay.
    """
    T, B, I = x.shape
    G = W_ih.shape[0]
    # The tape keeps every step's product anyway: one product over all steps,
    # which a threaded BLAS splits better than chunks of 512 rows.
    n = forward_chunk_steps(T, B) if tape is None else T
    scratch = np.empty((n, B, G), dtype=x.dtype) if tape is None else None
    order = time_order(T, reverse)
    for k in range(0, T, n):
        steps = order[k:k + n]
        first = min(steps[0], steps[-1])                      # the run's earliest step
        span = slice(first, first + len(steps))
        xw = tape[span] if tape is not None else scratch[:len(steps)]
        np.matmul(x[span].reshape(-1, I), W_ih.T, out=xw.reshape(-1, G))
        if bias is not None:
            xw += bias
        for t in steps:
            yield t, xw[t - first]


def weight_grads_over_time(dpre: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """sum_t dpre[t]^T inputs[t] as one product: (T,B,G) x (T,B,K) -> (G, K)."""
    T, B, G = dpre.shape
    return dpre.reshape(T * B, G).T @ inputs.reshape(T * B, -1)


def aligned_empty(shape: tuple, dtype, alignment: int = 64) -> np.ndarray:
    """np.empty(shape, dtype) whose data starts on an `alignment`-byte boundary.

    NumPy's allocator guarantees 16 bytes; a product with a 16-byte-aligned
    matrix ran ~15% slower than with a 32-byte-aligned one (h (1, 128) times
    a 128 x 128 float32 matrix: 1.07 against 0.92 us), so which one a copy
    got was luck.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def transposed(W: np.ndarray) -> np.ndarray:
    """W.T as a C-contiguous, 64-byte-aligned copy, written 64 rows of W at a time.

    The same values as np.ascontiguousarray(W.T); for a large W (16 MiB) the
    blocked copy measured ~5x faster, its writes staying within a few pages.
    """
    N, K = W.shape
    W_T = aligned_empty((K, N), W.dtype)
    for i in range(0, N, 64):
        W_T[:, i:i + 64] = W[i:i + 64].T
    return W_T


# From this many elements of W_hh on, recurrent_product leaves it where it is.
RECURRENT_COPY_LIMIT = 1 << 20


def recurrent_product(W_hh: np.ndarray, T: int):
    """[F2] for a loop of T steps, as a function h (B, P) -> W_hh h for every
    sequence, (B, G) (G = gates x H), W_hh (G, P) as stored.

    BLAS runs the (B, P) x (P, G) product up to ~2x faster on a contiguous
    W_hh^T than on the transposed view, so W_hh^T is laid out once per call;
    the copy pays off only over several steps (a stream calls with T = 1).
    A large W_hh (2^20 elements and more) is not copied: laying out 4 MiB
    took 0.9 ms alone and 2.5 ms inside a call (W_hh cold in cache), and the
    product run as (G, P) x (P, B) on W_hh itself, then transposed back, was
    about as fast or faster there. Measured single-threaded, float32, per step
    with the add into the gates, this way against on the copy: RNN H = 1024,
    B = 64: 1.21 against 1.33 ms; B = 8: 0.43 against 0.61 ms; LSTM H = 1024,
    B = 64: 5.24 against 5.14 ms (and 16 MiB not copied); but RNN H = 512,
    B = 64: 0.33 against 0.30 ms, and a whole float64 LSTM call with H = 256,
    B = 32 took 1.06x the plain loop's time this way, 0.97x with the copy.
    """
    if T <= 4:
        return lambda h: h.dot(W_hh.T)
    if W_hh.size >= RECURRENT_COPY_LIMIT:
        return lambda h: W_hh.dot(h.T).T
    W_hh_T = transposed(W_hh)
    return lambda h: h.dot(W_hh_T)


def step_weights(cell: str, W_ih, W_hh, b_ih, b_hh, W_hr=None) -> tuple:
    """A layer's weights prepared once for the *_step functions of `cell`.

    Transposes laid out contiguous (BLAS runs a product ~1.5x faster on them
    than on the transposed views) and, except for the GRU, whose b_hn sits
    inside r * (W_hn h + b_hn), the two biases summed. Biases come as rows
    (1, G): adding one to a (B, G) array costs half the time of adding a
    (G,) vector (~0.25 us against ~0.5 us at B = 1, where a step takes a few).
    These are copies: weights changed afterwards are not seen.
    """
    W_ih_T, W_hh_T = transposed(W_ih), transposed(W_hh)
    if cell == "gru":
        return W_ih_T, W_hh_T, *(None if b is None else b[None, :].copy() for b in (b_ih, b_hh))
    bias = None if b_ih is None else (b_ih + b_hh)[None, :]
    if cell == "lstm":
        return W_ih_T, W_hh_T, bias, W_hr.copy() if W_hr is not None else None
    return W_ih_T, W_hh_T, bias
