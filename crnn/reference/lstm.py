"""LSTM, one layer, one direction, a whole sequence (PyTorch conventions).

Gate blocks are stacked [i, f, g, o] along the first axis of W_ih, W_hh, b_*:

    i, f, o = sigmoid(.)      g = tanh(.)        (. = W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                 or, with proj_size > 0,
    h_t = W_hr (o * tanh(c_t))          (h has P = proj_size features, c keeps H)

Step tags match src/lstm.c:
    [F1] input projection for all steps    [F2] recurrent product per step
    [F3] gates, cell and state update      [F4] projection (proj_size > 0)
    [B1] through the projection            [B2] through the cell and gates
    [B3] dh_{t-1} per step                 [B4] weight/bias grads, dx per chunk of steps
"""

from __future__ import annotations

import numpy as np

from ._sequence import (backward_chunks, input_projection, sigmoid, time_order, valid_mask,
                        weight_grads_over_time)


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr=None, *,
                 lengths=None, reverse=False, training=True):
    """Run the LSTM over a sequence.

    Args:
        x: (T, B, I) input.
        h0: (B, P) initial hidden state; c0: (B, H) initial cell state.
        W_ih: (4H, I); W_hh: (4H, P); b_ih, b_hh: (4H,) or None (no bias).
        W_hr: (P, H) projection, or None (then P = H).
        lengths: (B,) valid lengths in [0, T], or None for all T.
        reverse: visit t = T-1 .. 0 instead of 0 .. T-1.
        training: keep the cache that lstm_backward needs.

    Returns:
        y (T, B, P), h_n (B, P), c_n (B, H), cache (None unless training).
    """
    T, B, _ = x.shape
    H = W_hh.shape[0] // 4
    mask = valid_mask(T, B, lengths, x.dtype)
    # b_ih and b_hh only ever meet in a sum: add both once, to the input product.
    xw = input_projection(x, W_ih, b_ih, b_hh)               # [F1]
    y = np.zeros((T, B, W_hh.shape[1]), dtype=x.dtype)
    if training:
        gates = xw        # post-activation i, f, g, o: step t's overwrite its input product
        c_new_all = np.empty((T, B, H), dtype=x.dtype)
        h_prev = np.empty_like(y)
        c_prev = np.empty((T, B, H), dtype=x.dtype)
    h, c = h0.copy(), c0.copy()
    # W_hh^T laid out once: BLAS runs the per-step product ~1.5x faster on a
    # contiguous operand than on the transposed view; the copy pays off only
    # over several steps (a stream calls with T=1).
    W_hh_T = np.ascontiguousarray(W_hh.T) if T > 4 else W_hh.T
    for t in time_order(T, reverse):
        pre = xw[t] + h @ W_hh_T                              # [F2]
        i = sigmoid(pre[:, :H])                               # [F3]
        f = sigmoid(pre[:, H:2 * H])
        g = np.tanh(pre[:, 2 * H:3 * H])
        o = sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        if W_hr is not None:
            h_new = h_new @ W_hr.T                            # [F4]
        if training:
            gates[t] = np.concatenate([i, f, g, o], axis=1)
            c_new_all[t], h_prev[t], c_prev[t] = c_new, h, c
        if lengths is None:                                   # every step valid
            y[t], h, c = h_new, h_new, c_new
        else:                                                 # masked steps keep their state
            m = mask[t]
            y[t] = m * h_new
            h = m * h_new + (1 - m) * h
            c = m * c_new + (1 - m) * c
    cache = None
    if training:
        cache = dict(x=x, W_ih=W_ih, W_hh=W_hh, W_hr=W_hr, has_bias=b_ih is not None,
                     reverse=reverse, mask=mask, gates=gates, c_new=c_new_all,
                     h_prev=h_prev, c_prev=c_prev)
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
    x, W_ih, h_prev = cache["x"], cache["W_ih"], cache["h_prev"]
    T, B, G = gates.shape
    H = G // 4
    dx = np.empty_like(x)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(G, dtype=x.dtype)
    dW_hr = np.zeros_like(W_hr) if W_hr is not None else None
    dh, dc = dh_n.copy(), dc_n.copy()
    for steps in backward_chunks(T, B, cache["reverse"]):
        first = min(steps)
        dpre = np.empty((len(steps), B, G), dtype=x.dtype)   # this chunk's: dpre[t - first]
        for t in steps:
            m = mask[t]
            i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
            tanh_c = np.tanh(cache["c_new"][t])
            # h_t feeds both y_t and step t+1: the two gradients meet here.
            dh_new = m * (dy[t] + dh)
            if W_hr is not None:
                # [B1] in the forward pass: h = W_hr r, r = o * tanh(c).
                dW_hr += dh_new.T @ (o * tanh_c)
                dr = dh_new @ W_hr
            else:
                dr = dh_new
            # [B2] in the forward pass: r = o * tanh(c_new), c_new = f * c + i * g.
            dc_new = m * dc + dr * o * (1 - tanh_c * tanh_c)
            do = dr * tanh_c
            di = dc_new * g
            df = dc_new * cache["c_prev"][t]
            dg = dc_new * i
            dpre[t - first] = np.concatenate([di * i * (1 - i), df * f * (1 - f),
                                              dg * (1 - g * g), do * o * (1 - o)], axis=1)
            # [B3] a valid step reaches h_{t-1}, c_{t-1} through the gates; a masked one passes them on.
            dh = dpre[t - first] @ W_hh + (1 - m) * dh
            dc = dc_new * f + (1 - m) * dc
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
