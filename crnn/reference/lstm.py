"""LSTM, one layer, one direction, a whole sequence (PyTorch conventions).

Gate blocks are stacked [i, f, g, o] along the first axis of W_ih, W_hh, b_*:

    i, f, o = sigmoid(.)      g = tanh(.)        (. = W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                 or, with proj_size > 0,
    h_t = W_hr (o * tanh(c_t))          (h has P = proj_size features, c keeps H)

Step tags match src/lstm.c:
    [F1] input projection per chunk of steps  [F2] recurrent product per step
    [F3] gates, cell and state update         [F4] projection (proj_size > 0)
    [B1] through the projection               [B2] through the cell and gates
    [B3] dh_{t-1} per step                    [B4] weight/bias grads, dx per chunk of steps
"""

from __future__ import annotations

import functools

import numpy as np

from ._sequence import (backward_chunks, projected_inputs, recurrent_product, states_before,
                        valid_mask, weight_grads_over_time)


@functools.lru_cache(maxsize=64)
def _gate_affine(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (4H,): a = 1/2 on the sigmoid blocks i, f, o and 1 on g; b = 1/2, 0."""
    a = np.full(4 * H, 0.5, dtype=dtype)
    a[2 * H:3 * H] = 1
    b = a.copy()
    b[2 * H:3 * H] = 0
    return a, b


def lstm_cell(gates, c, W_hr=None):
    """[F3] and [F4] of one step. gates (B, 4H) holds the pre-activations on
    entry and the activated gates i, f, g, o on exit (in place: it is the
    tape's row in training); c = c_{t-1} (B, H).

    Returns c_t and h_t (before any length mask), new arrays.
    """
    H = c.shape[1]
    # The four blocks with one tanh over the whole row: sigmoid(x) =
    # 0.5 * tanh(0.5 * x) + 0.5 (see _sequence.sigmoid), so gates = a * tanh(a * pre) + b
    # is sigmoid on i, f, o and tanh on g. NumPy's fast tanh needs a
    # contiguous output: one pass over the row beats four over strided blocks.
    a, b = _gate_affine(H, gates.dtype)
    gates *= a
    np.tanh(gates, out=gates)
    gates *= a
    gates += b
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    c_new = f * c
    c_new += i * g
    h_new = np.tanh(c_new)
    h_new *= o
    if W_hr is not None:
        h_new = h_new.dot(W_hr.T)                             # [F4]
    return c_new, h_new


def lstm_step(x_t, h, c, W_ih_T, W_hh_T, bias, W_hr=None):
    """One time step of the layer, every sequence valid, no cache: what a stream runs.

    x_t (B, I), h (B, P), c (B, H) -> h_t (B, P), c_t (B, H), new arrays. The
    weights come prepared once for many steps (see step_weights): W_ih_T (I, 4H)
    and W_hh_T (P, 4H) contiguous, bias = b_ih + b_hh (1, 4H) or None.
    """
    pre = x_t.dot(W_ih_T)                                     # [F1] for one step
    pre += h.dot(W_hh_T)                                      # [F2]
    if bias is not None:
        pre += bias
    c_new, h_new = lstm_cell(pre, c, W_hr)
    return h_new, c_new


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr=None, *,
                 lengths=None, reverse=False, training=True, out=None):
    """Run the LSTM over a sequence.

    Args:
        x: (T, B, I) input.
        h0: (B, P) initial hidden state; c0: (B, H) initial cell state.
        W_ih: (4H, I); W_hh: (4H, P); b_ih, b_hh: (4H,) or None (no bias).
        W_hr: (P, H) projection, or None (then P = H).
        lengths: (B,) valid lengths in [0, T], or None for all T.
        reverse: visit t = T-1 .. 0 instead of 0 .. T-1.
        training: keep the cache that lstm_backward needs.
        out: (T, B, P) array (a view may do) to write y into, or None for a new one.

    Returns:
        y (T, B, P), h_n (B, P), c_n (B, H), cache (None unless training).
    """
    T, B, _ = x.shape
    H = W_hh.shape[0] // 4
    lengths = None if lengths is None else np.asarray(lengths)
    y = np.empty((T, B, W_hh.shape[1]), dtype=x.dtype) if out is None else out  # every step writes y[t]
    gates = None
    if training:
        # the tape: step t turns row t, its input product, into its activated gates
        gates = np.empty((T, B, 4 * H), dtype=x.dtype)
        c_new_all = np.empty((T, B, H), dtype=x.dtype)
        # h_{t-1}, c_{t-1} seen by step t: kept per step only where lengths freeze states
        h_prev = np.empty_like(y) if lengths is not None else None
        c_prev = np.empty((T, B, H), dtype=x.dtype) if lengths is not None else None
    h, c = h0.copy(), c0.copy()
    recurrent = recurrent_product(W_hh, T)                    # h -> W_hh h, see there
    # b_ih and b_hh only ever meet in a sum: add both once, to the input product.
    bias = None if b_ih is None else b_ih + b_hh
    for t, pre in projected_inputs(x, W_ih, bias, reverse, tape=gates):   # [F1]
        pre += recurrent(h)                                   # [F2]
        c_new, h_new = lstm_cell(pre, c, W_hr)                # [F3], [F4]
        if training:
            c_new_all[t] = c_new
        if lengths is None:                                   # every step valid
            y[t] = h = h_new
            c = c_new
        else:                                                 # finished sequences keep their state
            if training:
                h_prev[t], c_prev[t] = h, c
            valid = (t < lengths)[:, None]                    # (B, 1): still running at t
            y[t] = np.where(valid, h_new, 0)
            h = np.where(valid, h_new, h)
            c = np.where(valid, c_new, c)
    cache = None
    if training:
        if lengths is None:
            h_prev, c_prev = states_before(y, h0, reverse), states_before(c_new_all, c0, reverse)
        cache = dict(x=x, W_ih=W_ih, W_hh=W_hh, W_hr=W_hr, has_bias=b_ih is not None,
                     reverse=reverse, mask=valid_mask(T, B, lengths, x.dtype), gates=gates,
                     c_new=c_new_all, h_prev=h_prev, c_prev=c_prev)
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """Backpropagate through lstm_forward.

    Args:
        cache: from lstm_forward(training=True).
        dy: (T, B, P) gradient w.r.t. y.
        dh_n: (B, P), dc_n: (B, H) gradients w.r.t. the final states.

    Returns:
        dx (T, B, I), dh0 (B, P), dc0 (B, H),
        grads: dict W_ih, W_hh, b_ih, b_hh, W_hr (None where the parameter is absent).
    """
    mask, gates, W_hh, W_hr = cache["mask"], cache["gates"], cache["W_hh"], cache["W_hr"]
    x, W_ih, h_prev, c_prev = cache["x"], cache["W_ih"], cache["h_prev"], cache["c_prev"]
    T, B, G = gates.shape
    H = G // 4
    dx = np.empty_like(x)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(G, dtype=x.dtype)
    dW_hr = np.zeros_like(W_hr) if W_hr is not None else None
    dh, dc = dh_n.copy(), dc_n.copy()
    for steps in backward_chunks(T, B, cache["reverse"], W_ih.shape[1] + W_hh.shape[1]):
        first = min(steps)
        dpre = np.empty((len(steps), B, G), dtype=x.dtype)   # this chunk's: dpre[t - first]
        for t in steps:
            m = None if mask is None else mask[t]
            i, f, g, o = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
            tanh_c = np.tanh(cache["c_new"][t])
            # h_t feeds both y_t and step t+1: the two gradients meet here.
            dh_new = dy[t] + dh
            if m is not None:
                dh_new *= m
            if W_hr is not None:
                # [B1] in the forward pass: h = W_hr r, r = o * tanh(c).
                dW_hr += dh_new.T.dot(o * tanh_c)
                dr = dh_new.dot(W_hr)
            else:
                dr = dh_new
            # [B2] in the forward pass: r = o * tanh(c_new), c_new = f * c + i * g.
            dc_new = dr * o * (1 - tanh_c * tanh_c)
            dc_new += dc if m is None else m * dc
            do = dr * tanh_c
            di = dc_new * g
            df = dc_new * c_prev[t]
            dg = dc_new * i
            k = t - first
            dpre[k, :, :H] = di * i * (1 - i)
            dpre[k, :, H:2 * H] = df * f * (1 - f)
            dpre[k, :, 2 * H:3 * H] = dg * (1 - g * g)
            dpre[k, :, 3 * H:] = do * o * (1 - o)
            # [B3] a valid step reaches h_{t-1}, c_{t-1} through the gates; a masked one passes them on.
            dh_prev, dc_prev = dpre[k].dot(W_hh), dc_new * f
            if m is not None:
                dh_prev += (1 - m) * dh
                dc_prev += (1 - m) * dc
            dh, dc = dh_prev, dc_prev
        # [B4] the chunk's steps at once.
        span = slice(first, first + len(steps))
        dx[span] = (dpre.reshape(-1, G) @ W_ih).reshape(len(steps), B, -1)
        dW_ih += weight_grads_over_time(dpre, x[span])
        dW_hh += weight_grads_over_time(dpre, h_prev[span])
        db += dpre.sum(axis=(0, 1))
    grads = dict(W_ih=dW_ih, W_hh=dW_hh, b_ih=None, b_hh=None, W_hr=dW_hr)
    if cache["has_bias"]:
        grads["b_ih"], grads["b_hh"] = db, db.copy()
    return dx, dh, dc, grads
