"""GRU, one layer, one direction, a whole sequence (PyTorch conventions).

Gate blocks are stacked [r, z, n] along the first axis of W_ih, W_hh, b_*:

    r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))     (reset after the product)
    h_t = (1 - z) * n + z * h_{t-1}

Step tags match src/gru.c:
    [F1] input projection per chunk of steps  [F2] recurrent product per step
    [F3] gates and state update
    [B1] through the state update and gates
    [B2] dh_{t-1} per step                    [B3] weight/bias grads, dx per chunk of steps
"""

from __future__ import annotations

import numpy as np

from ._sequence import (backward_chunks, projected_inputs, recurrent_product, sigmoid,
                        states_before, valid_mask, weight_grads_over_time)


def gru_cell(xw_t, hw, h):
    """[F3] of one step from xw_t = W_ih x_t + b_ih (B, 3H), hw = W_hh h_{t-1} + b_hh
    (B, 3H) and h = h_{t-1} (B, H).

    Returns r_z = [r, z] (B, 2H), n (B, H) and h_t (before any length mask), new arrays.
    """
    H = h.shape[1]
    # r and z are adjacent: one sigmoid for both. Each activation runs in place
    # on a fresh contiguous array (NumPy's fast tanh needs a contiguous output).
    r_z = xw_t[:, :2 * H] + hw[:, :2 * H]
    sigmoid(r_z, out=r_z)
    r, z = r_z[:, :H], r_z[:, H:]
    n = r * hw[:, 2 * H:]
    n += xw_t[:, 2 * H:]
    np.tanh(n, out=n)
    return r_z, n, (1 - z) * n + z * h


def gru_step(x_t, h, W_ih_T, W_hh_T, b_ih, b_hh):
    """One time step of the layer, every sequence valid, no cache: what a stream runs.

    x_t (B, I), h (B, H) -> h_t (B, H), a new array. The weights come prepared
    once for many steps (see step_weights): W_ih_T (I, 3H) and W_hh_T (H, 3H)
    contiguous; b_ih, b_hh (1, 3H) or None, apart (b_hn sits inside r * (.)).
    """
    xw_t = x_t.dot(W_ih_T)                                    # [F1] for one step
    hw = h.dot(W_hh_T)                                        # [F2]
    if b_ih is not None:
        xw_t += b_ih
        hw += b_hh
    return gru_cell(xw_t, hw, h)[2]                           # [F3]


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                out=None):
    """Run the GRU over a sequence.

    Args:
        x: (T, B, I) input.
        h0: (B, H) initial hidden state.
        W_ih: (3H, I); W_hh: (3H, H); b_ih, b_hh: (3H,) or None (no bias).
        lengths: (B,) valid lengths in [0, T], or None for all T.
        reverse: visit t = T-1 .. 0 instead of 0 .. T-1.
        training: keep the cache that gru_backward needs.
        out: (T, B, H) array (a view may do) to write y into, or None for a new one.

    Returns:
        y (T, B, H), h_n (B, H), cache (None unless training).
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    lengths = None if lengths is None else np.asarray(lengths)
    y = np.empty((T, B, H), dtype=x.dtype) if out is None else out    # every step writes y[t]
    gates = None
    if training:
        # the tape: step t turns row t, its input product, into its gates r, z, n
        gates = np.empty((T, B, 3 * H), dtype=x.dtype)
        hn = np.empty((T, B, H), dtype=x.dtype)              # W_hn h_{t-1} + b_hn
        # h_{t-1} seen by step t: kept per step only where lengths freeze states
        h_prev = np.empty_like(y) if lengths is not None else None
    h = h0.copy()
    recurrent = recurrent_product(W_hh, T)                    # h -> W_hh h, see there
    for t, xw_t in projected_inputs(x, W_ih, b_ih, reverse, tape=gates):   # [F1]
        hw = recurrent(h)                                     # [F2]
        if b_hh is not None:
            hw += b_hh
        r_z, n, h_new = gru_cell(xw_t, hw, h)                 # [F3]
        if training:
            gates[t, :, :2 * H], gates[t, :, 2 * H:] = r_z, n
            hn[t] = hw[:, 2 * H:]
        if lengths is None:                                   # every step valid
            y[t] = h = h_new
        else:                                                 # finished sequences keep their state
            if training:
                h_prev[t] = h
            valid = (t < lengths)[:, None]                    # (B, 1): still running at t
            y[t] = np.where(valid, h_new, 0)
            h = np.where(valid, h_new, h)
    cache = None
    if training:
        if lengths is None:
            h_prev = states_before(y, h0, reverse)
        cache = dict(x=x, W_ih=W_ih, W_hh=W_hh, has_bias=b_ih is not None, reverse=reverse,
                     mask=valid_mask(T, B, lengths, x.dtype), gates=gates, hn=hn, h_prev=h_prev)
    return y, h, cache


def gru_backward(cache, dy, dh_n):
    """Backpropagate through gru_forward.

    Args:
        cache: from gru_forward(training=True).
        dy: (T, B, H) gradient w.r.t. y.
        dh_n: (B, H) gradient w.r.t. the final state.

    Returns:
        dx (T, B, I), dh0 (B, H), grads: dict W_ih, W_hh, b_ih, b_hh (biases None without bias).
    """
    mask, gates, W_hh, h_prev = cache["mask"], cache["gates"], cache["W_hh"], cache["h_prev"]
    x, W_ih = cache["x"], cache["W_ih"]
    T, B, G = gates.shape
    H = G // 3
    dx = np.empty_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih, db_hh = np.zeros(G, dtype=x.dtype), np.zeros(G, dtype=x.dtype)
    dh = dh_n.copy()
    for steps in backward_chunks(T, B, cache["reverse"], W_ih.shape[1] + W_hh.shape[1]):
        first = min(steps)
        # this chunk's gradients w.r.t. W_ih x + b_ih and W_hh h + b_hh: dpre_*[t - first]
        dpre_x = np.empty((len(steps), B, G), dtype=x.dtype)
        dpre_h = np.empty_like(dpre_x)
        for t in steps:
            m = None if mask is None else mask[t]
            r, z, n = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:]
            # h_t feeds both y_t and step t+1: the two gradients meet here.
            dh_new = dy[t] + dh
            if m is not None:
                dh_new *= m
            # [B1] in the forward pass: h_new = (1 - z) * n + z * h_prev,
            #      n = tanh(xn + r * hn), r, z = sigmoid(.)
            dn_pre = dh_new * (1 - z) * (1 - n * n)
            dz_pre = dh_new * (h_prev[t] - n) * z * (1 - z)
            dr_pre = dn_pre * cache["hn"][t] * r * (1 - r)
            k = t - first
            dpre_x[k, :, :H], dpre_x[k, :, H:2 * H], dpre_x[k, :, 2 * H:] = dr_pre, dz_pre, dn_pre
            dpre_h[k, :, :2 * H] = dpre_x[k, :, :2 * H]
            dpre_h[k, :, 2 * H:] = dn_pre * r
            # [B2] h_prev reaches h_new directly (z * h_prev) and through W_hh;
            #      a masked step passes dh on.
            dh_prev = dpre_h[k].dot(W_hh)
            dh_prev += dh_new * z
            if m is not None:
                dh_prev += (1 - m) * dh
            dh = dh_prev
        # [B3] the chunk's steps at once.
        span = slice(first, first + len(steps))
        dx[span] = (dpre_x.reshape(-1, G) @ W_ih).reshape(len(steps), B, -1)
        dW_ih += weight_grads_over_time(dpre_x, x[span])
        dW_hh += weight_grads_over_time(dpre_h, h_prev[span])
        db_ih += dpre_x.sum(axis=(0, 1))
        db_hh += dpre_h.sum(axis=(0, 1))
    grads = dict(W_ih=dW_ih, W_hh=dW_hh, b_ih=None, b_hh=None)
    if cache["has_bias"]:
        grads["b_ih"], grads["b_hh"] = db_ih, db_hh
    return dx, dh, grads
