"""The "NumPy loop" peer: what a competent user writes by hand in NumPy.

One layer, one direction, a whole sequence: the input product hoisted out of
the time loop (one matmul over all steps), then per step one matmul for the
recurrent product and the pointwise gate math. Weights are transposed once
when the model is built (outside the timed call), biases of the input
product folded where the equations allow. Backward is plain BPTT with the
weight gradients and dx as matmuls over all steps after the loop.

Deliberately not crnn's reference (crnn/reference/): no lengths, no masks,
no checks; this is the baseline crnn's NumPy backend must not lose to.
Shapes: x (T, B, I), h (B, H), weights in PyTorch's layout (G*H, K).
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    # 0.5*tanh(0.5x)+0.5 == 1/(1+exp(-x)), and never overflows.
    return 0.5 * np.tanh(0.5 * x) + 0.5


def aligned_copy(a):
    """A C-contiguous copy of a starting on a 64-byte line. The per-step
    products run measurably slower (about 15% at B=1, H=128) on weights that
    malloc happened to place 16 or 32 bytes off a line, which made this
    peer's times vary from run to run."""
    raw = np.empty(a.size * a.itemsize + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + a.size * a.itemsize].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


class LoopLayerDir:
    """One layer, one direction, of cell "rnn_tanh", "lstm" or "gru"."""

    def __init__(self, cell, W_ih, W_hh, b_ih, b_hh):
        self.cell = cell
        self.W_ih, self.W_hh = W_ih, W_hh                     # (G*H, K) for the backward
        self.W_ih_T = aligned_copy(W_ih.T)                   # (K, G*H)
        self.W_hh_T = aligned_copy(W_hh.T)                   # (H, G*H)
        self.H = W_hh.shape[1]
        dt = W_ih.dtype
        b_ih = np.zeros(W_ih.shape[0], dt) if b_ih is None else b_ih
        b_hh = np.zeros(W_ih.shape[0], dt) if b_hh is None else b_hh
        if cell == "gru":   # b_hn sits inside r * (W_hn h + b_hn): keep it apart
            self.b_x, self.b_h = b_ih.copy(), b_hh.copy()
        else:
            self.b_x, self.b_h = b_ih + b_hh, None

    # ---------------------------------------------------------- one step
    def step(self, x_t, h, c=None):
        """Streaming: x_t (B, I) -> new (h, c) (c None except for LSTM)."""
        H = self.H
        pre = x_t @ self.W_ih_T + self.b_x
        if self.cell == "gru":
            hw = h @ self.W_hh_T + self.b_h
            r = sigmoid(pre[:, :H] + hw[:, :H])
            z = sigmoid(pre[:, H:2 * H] + hw[:, H:2 * H])
            n = np.tanh(pre[:, 2 * H:] + r * hw[:, 2 * H:])
            return (1 - z) * n + z * h, None
        pre += h @ self.W_hh_T
        if self.cell == "rnn_tanh":
            return np.tanh(pre), None
        i, f = sigmoid(pre[:, :H]), sigmoid(pre[:, H:2 * H])
        g, o = np.tanh(pre[:, 2 * H:3 * H]), sigmoid(pre[:, 3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c

    # ---------------------------------------------------------- a sequence
    def forward(self, x, training):
        """x (T, B, K) -> y (T, B, H), h_n, c_n (LSTM) or None, cache or None."""
        T, B, K = x.shape
        H = self.H
        dt = x.dtype
        xw = (x.reshape(T * B, K) @ self.W_ih_T + self.b_x).reshape(T, B, -1)
        y = np.empty((T, B, H), dt)
        h = np.zeros((B, H), dt)
        c = np.zeros((B, H), dt) if self.cell == "lstm" else None
        cache = None
        if training:
            gates = np.empty((T, B, self.W_ih.shape[0]), dt)
            extra = np.empty((T, B, H), dt) if self.cell != "rnn_tanh" else None
        for t in range(T):
            if self.cell == "rnn_tanh":
                h = np.tanh(xw[t] + h @ self.W_hh_T)
            elif self.cell == "lstm":
                pre = xw[t] + h @ self.W_hh_T
                i, f = sigmoid(pre[:, :H]), sigmoid(pre[:, H:2 * H])
                g, o = np.tanh(pre[:, 2 * H:3 * H]), sigmoid(pre[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
                if training:
                    gates[t, :, :H], gates[t, :, H:2 * H] = i, f
                    gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:] = g, o
                    extra[t] = c
            else:
                hw = h @ self.W_hh_T + self.b_h
                r = sigmoid(xw[t, :, :H] + hw[:, :H])
                z = sigmoid(xw[t, :, H:2 * H] + hw[:, H:2 * H])
                n = np.tanh(xw[t, :, 2 * H:] + r * hw[:, 2 * H:])
                h = (1 - z) * n + z * h
                if training:
                    gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:] = r, z, n
                    extra[t] = hw[:, 2 * H:]
            y[t] = h
        if training:
            cache = (x, y, gates, extra)
        return y, h, c, cache

    def backward(self, cache, dy):
        """dy (T, B, H) -> dx (T, B, K), grads (W_ih, W_hh, b_ih, b_hh)."""
        x, y, gates, extra = cache
        T, B, K = x.shape
        H = self.H
        dt = x.dtype
        zero = np.zeros((B, H), dt)
        dpre = np.empty((T, B, self.W_ih.shape[0]), dt)     # grads of the input-side pre-activations
        dhw = np.empty_like(dpre) if self.cell == "gru" else dpre
        dh_next, dc_next = zero, zero
        for t in range(T - 1, -1, -1):
            h_prev = y[t - 1] if t > 0 else zero
            dh = dy[t] + dh_next                 # y_t and step t+1 both read h_t
            if self.cell == "rnn_tanh":
                dpre[t] = dh * (1 - y[t] * y[t])
            elif self.cell == "lstm":
                i, f = gates[t, :, :H], gates[t, :, H:2 * H]
                g, o = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
                c_prev = extra[t - 1] if t > 0 else zero
                tc = np.tanh(extra[t])
                dc = dc_next + dh * o * (1 - tc * tc)
                dpre[t, :, :H] = dc * g * i * (1 - i)
                dpre[t, :, H:2 * H] = dc * c_prev * f * (1 - f)
                dpre[t, :, 2 * H:3 * H] = dc * i * (1 - g * g)
                dpre[t, :, 3 * H:] = dh * tc * o * (1 - o)
                dc_next = dc * f
            else:
                r, z, n = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:]
                dn = dh * (1 - z) * (1 - n * n)
                dr = dn * extra[t] * r * (1 - r)
                dz = dh * (h_prev - n) * z * (1 - z)
                dpre[t, :, :H], dpre[t, :, H:2 * H], dpre[t, :, 2 * H:] = dr, dz, dn
                dhw[t, :, :H], dhw[t, :, H:2 * H], dhw[t, :, 2 * H:] = dr, dz, dn * r
                dh_next = dh * z + dhw[t] @ self.W_hh
                continue
            dh_next = dpre[t] @ self.W_hh
        G = dpre.shape[2]
        dp2 = dpre.reshape(T * B, G)
        dh2 = dhw.reshape(T * B, G)
        h_prev_all = np.concatenate([zero[None], y[:-1]]).reshape(T * B, H)
        dx = (dp2 @ self.W_ih).reshape(T, B, K)
        dW_ih = dp2.T @ x.reshape(T * B, K)
        dW_hh = dh2.T @ h_prev_all
        db_ih = dp2.sum(axis=0)
        db_hh = dh2.sum(axis=0) if self.cell == "gru" else db_ih.copy()
        return dx, (dW_ih, dW_hh, db_ih, db_hh)


class LoopStack:
    """num_layers x directions of LoopLayerDir, PyTorch's stacking, zero initial state."""

    def __init__(self, cell, params, num_layers, bidirectional):
        self.cell = cell
        self.L, self.D = num_layers, 2 if bidirectional else 1
        self.dirs = []
        for layer in range(num_layers):
            for d in range(self.D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                self.dirs.append(LoopLayerDir(cell, params["weight_ih" + sfx], params["weight_hh" + sfx],
                                              params.get("bias_ih" + sfx), params.get("bias_hh" + sfx)))

    def _suffixes(self):
        return [f"_l{layer}" + ("_reverse" if d else "") for layer in range(self.L) for d in range(self.D)]

    def forward(self, x, training=False):
        """x (T, B, I) -> y (T, B, D*H), h_n (D*L, B, H), c_n or None, caches."""
        inp, hs, cs, caches = x, [], [], []
        for layer in range(self.L):
            outs = []
            for d in range(self.D):
                run = self.dirs[layer * self.D + d]
                xin = inp[::-1] if d else inp
                y, h, c, cache = run.forward(xin, training)
                outs.append(y[::-1] if d else y)
                hs.append(h)
                cs.append(c)
                caches.append(cache)
            inp = outs[0] if self.D == 1 else np.concatenate(outs, axis=2)
        c_n = np.stack(cs) if self.cell == "lstm" else None
        return inp, np.stack(hs), c_n, caches

    def backward(self, caches, dy):
        """dy (T, B, D*H) -> dx (T, B, I), grads by PyTorch name."""
        grads = {}
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        suffixes = self._suffixes()
        d_out = dy
        for layer in reversed(range(self.L)):
            d_in = None
            for d in range(self.D):
                k = layer * self.D + d
                run = self.dirs[k]
                H = run.H
                dy_d = d_out[:, :, d * H:(d + 1) * H]
                if d:
                    dy_d = dy_d[::-1]
                dx, g = run.backward(caches[k], dy_d)
                if d:
                    dx = dx[::-1]
                d_in = dx if d_in is None else d_in + dx
                for name, value in zip(names, g):
                    grads[name + suffixes[k]] = value
            d_out = d_in
        return d_out, grads
