"""What every cell family shares: time order, length masks, activations.

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
begins.
"""

from __future__ import annotations

import numpy as np


def time_order(T: int, reverse: bool) -> range:
    """Time indices in the order the recurrence visits them."""
    return range(T - 1, -1, -1) if reverse else range(T)


# Backward keeps the pre-activation gradients of about BACKWARD_CHUNK_ROWS
# rows (steps x batch) at a time and turns each chunk into dx and weight
# gradients before the next: its memory does not grow with T, and the
# weight-gradient products stay tall.
BACKWARD_CHUNK_ROWS = 512


def backward_chunks(T: int, B: int, reverse: bool) -> list[range]:
    """The backward's time order (forward's reversed) cut into runs of consecutive steps."""
    order = time_order(T, not reverse)
    steps = max(1, BACKWARD_CHUNK_ROWS // B)
    return [order[k:k + steps] for k in range(0, T, steps)]


def valid_mask(T: int, B: int, lengths: np.ndarray | None, dtype) -> np.ndarray:
    """(T, B, 1) array of 1.0 where step t of sequence b is valid, else 0.0."""
    if lengths is None:
        return np.ones((T, B, 1), dtype=dtype)
    t = np.arange(T)[:, None]
    return (t < np.asarray(lengths)[None, :]).astype(dtype)[:, :, None]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), same dtype as x."""
    # The same function written through tanh: it cannot overflow, and it costs
    # one transcendental and no division (about 25% faster than the exp form).
    return 0.5 * np.tanh(0.5 * x) + 0.5


def input_projection(x: np.ndarray, W_ih: np.ndarray, *biases: np.ndarray | None) -> np.ndarray:
    """[F1] x W_ih^T + the given biases, all steps at once: (T, B, I) -> (T, B, G*H)."""
    T, B, I = x.shape
    xw = (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, -1)
    present = [b for b in biases if b is not None]
    if present:
        xw += sum(present[1:], present[0])
    return xw


def weight_grads_over_time(dpre: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """sum_t dpre[t]^T inputs[t] as one product: (T,B,G) x (T,B,K) -> (G, K)."""
    T, B, G = dpre.shape
    return dpre.reshape(T * B, G).T @ inputs.reshape(T * B, -1)
