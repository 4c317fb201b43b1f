"""Simple (Elman) RNN, one layer, one direction, a whole sequence.

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu

Step tags match src/rnn.c:
    [F1] input projection per chunk of steps  [F2] recurrent product per step
    [F3] activation and masked state update   [B1] gradient through act
    [B2] dh_{t-1} per step                    [B3] weight/bias grads, dx per chunk of steps
"""

from __future__ import annotations

import numpy as np

from ._sequence import (backward_chunks, projected_inputs, recurrent_product, states_before,
                        valid_mask, weight_grads_over_time)


def _relu(pre):
    return np.maximum(pre, 0)


def rnn_activation(nonlinearity):
    """[F3] act as a function of the pre-activation: np.tanh, or relu."""
    return np.tanh if nonlinearity == "tanh" else _relu


def rnn_step(x_t, h, W_ih_T, W_hh_T, bias, *, nonlinearity="tanh"):
    """One time step of the layer, every sequence valid, no cache: what a stream runs.

    x_t (B, I), h (B, H) -> h_t (B, H), a new array. The weights come prepared
    once for many steps (see step_weights): W_ih_T (I, H) and W_hh_T (H, H)
    contiguous, bias = b_ih + b_hh (1, H) or None.
    """
    pre = x_t.dot(W_ih_T)                                     # [F1] for one step
    pre += h.dot(W_hh_T)                                      # [F2]
    if bias is not None:
        pre += bias
    if nonlinearity == "tanh":                                # [F3], in place on a new array
        return np.tanh(pre, out=pre)
    return np.maximum(pre, 0, out=pre)


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, nonlinearity="tanh",
                lengths=None, reverse=False, training=True, out=None):
    """Run the simple RNN over a sequence.

    Args:
        x: (T, B, I) input.
        h0: (B, H) initial hidden state.
        W_ih: (H, I); W_hh: (H, H); b_ih, b_hh: (H,) or None (no bias).
        nonlinearity: "tanh" or "relu".
        lengths: (B,) valid lengths in [0, T], or None for all T.
        reverse: visit t = T-1 .. 0 instead of 0 .. T-1.
        training: keep the cache that rnn_backward needs.
        out: (T, B, H) array (a view may do) to write y into, or None for a new one.

    Returns:
        y (T, B, H) outputs (0 past a length), h_n (B, H), cache (None unless training).
    """
    T, B, _ = x.shape
    H = W_hh.shape[0]
    lengths = None if lengths is None else np.asarray(lengths)
    y = np.empty((T, B, H), dtype=x.dtype) if out is None else out    # every step writes y[t]
    # h_{t-1} seen by step t: kept per step only where lengths freeze states
    h_prev = np.empty_like(y) if training and lengths is not None else None
    h = h0.copy()
    recurrent = recurrent_product(W_hh, T)                    # h -> W_hh h, see there
    act = rnn_activation(nonlinearity)
    # b_ih and b_hh only ever meet in a sum: add both once, to the input product.
    bias = None if b_ih is None else b_ih + b_hh
    for t, pre in projected_inputs(x, W_ih, bias, reverse):  # [F1]
        pre += recurrent(h)                                   # [F2]
        h_new = act(pre)                                      # [F3]
        if lengths is None:                                   # every step valid
            y[t] = h = h_new
        else:                                                 # finished sequences keep their state
            if h_prev is not None:
                h_prev[t] = h
            valid = (t < lengths)[:, None]                    # (B, 1): still running at t
            y[t] = np.where(valid, h_new, 0)
            h = np.where(valid, h_new, h)
    cache = None
    if training:
        if lengths is None:
            h_prev = states_before(y, h0, reverse)
        cache = dict(x=x, W_ih=W_ih, W_hh=W_hh, has_bias=b_ih is not None,
                     nonlinearity=nonlinearity, reverse=reverse,
                     mask=valid_mask(T, B, lengths, x.dtype), h_prev=h_prev, y=y)
    return y, h, cache


def rnn_backward(cache, dy, dh_n):
    """Backpropagate through rnn_forward.

    Args:
        cache: from rnn_forward(training=True).
        dy: (T, B, H) gradient of the loss w.r.t. y.
        dh_n: (B, H) gradient w.r.t. the final state.

    Returns:
        dx (T, B, I), dh0 (B, H), grads: dict W_ih, W_hh, b_ih, b_hh (biases None without bias).
    """
    mask, y, h_prev, W_hh = cache["mask"], cache["y"], cache["h_prev"], cache["W_hh"]
    x, W_ih = cache["x"], cache["W_ih"]
    T, B, H = y.shape
    dx = np.empty_like(x)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(H, dtype=x.dtype)
    tanh = cache["nonlinearity"] == "tanh"
    dh = dh_n.copy()
    for steps in backward_chunks(T, B, cache["reverse"], W_ih.shape[1] + W_hh.shape[1]):
        first = min(steps)
        dpre = np.empty((len(steps), B, H), dtype=x.dtype)   # this chunk's: dpre[t - first]
        for t in steps:
            m = None if mask is None else mask[t]
            # h_t feeds both y_t and step t+1: the two gradients meet here.
            dh_new = dy[t] + dh
            if m is not None:
                dh_new *= m
            # [B1] in the forward pass: h_new = act(pre); y holds h_new where valid.
            if tanh:
                dpre[t - first] = dh_new * (1 - y[t] * y[t])
            else:
                dpre[t - first] = dh_new * (y[t] > 0)
            # [B2] a valid step reaches h_{t-1} through W_hh; a masked one passes dh on.
            dh_prev = dpre[t - first].dot(W_hh)
            if m is not None:
                dh_prev += (1 - m) * dh
            dh = dh_prev
        # [B3] the chunk's steps at once.
        span = slice(first, first + len(steps))
        dx[span] = (dpre.reshape(-1, H) @ W_ih).reshape(len(steps), B, -1)
        dW_ih += weight_grads_over_time(dpre, x[span])
        dW_hh += weight_grads_over_time(dpre, h_prev[span])
        db += dpre.sum(axis=(0, 1))
    grads = dict(W_ih=dW_ih, W_hh=dW_hh, b_ih=None, b_hh=None)
    if cache["has_bias"]:
        grads["b_ih"], grads["b_hh"] = db, db.copy()
    return dx, dh, grads
