"""One sequence's LSTM and GRU steps fused (src/row_step.h) give the unfused bits.

With one sequence (B = 1) and a W_hh the matrix-vector kernel reads from L2,
the C core runs each step's recurrent product and cell in one pass, 16
hidden units at a time. The sums and activations are the unfused step's,
in the same order, so every result must be equal bit for bit with the
fusion switched off (crnn._ext._fuse_row_steps). Where the CPU has no
AVX-512 neither path fuses and the comparison still holds.
src/test/test_row_step.c checks the same in C, against the AVX2 path.

An LSTM's backward step fuses too (the cell's gradients and the product
dpre @ W_hh, block by block): its gate gradients are the unfused ones, but
dh_{t-1} is summed in another order, so with it switched off
(crnn._ext._fuse_row_backward) the gradients agree to rounding, and both
match the float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn

if "c" not in crnn.available_backends():
    pytest.skip("the C extension is not installed (CRNN_NO_EXT)", allow_module_level=True)


def fused_and_unfused(compute):
    """compute() with the fusion on, then off (restored after)."""
    ext = crnn._backend.extension()
    ext._fuse_row_steps(True)
    try:
        fused = compute()
        ext._fuse_row_steps(False)
        unfused = compute()
    finally:
        ext._fuse_row_steps(True)
    return fused, unfused


def assert_same_bits(fused, unfused):
    assert len(fused) == len(unfused)
    for a, b in zip(fused, unfused):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


CELLS = {"lstm": crnn.LSTM, "gru": crnn.GRU}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("I, H", [(32, 64), (64, 128), (16, 176), (8, 40)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_forward_and_training(cell, I, H, bidirectional):
    rng = np.random.default_rng(H + I)
    layer = CELLS[cell](I, H, num_layers=2, bidirectional=bidirectional)
    x = rng.standard_normal((23, 1, I)).astype(np.float32)
    dy = rng.standard_normal((23, 1, H * (2 if bidirectional else 1))).astype(np.float32)
    lengths = np.array([17])

    def compute():
        with crnn.use_backend("c"):
            y, state = layer(x)
            y_len, _ = layer(x, lengths=lengths)
            y_train, _, tape = layer.forward(x)
            dx, dstate, grads = layer.backward(tape, dy)
        states = list(state) if isinstance(state, tuple) else [state]
        return [y, *states, y_len, y_train, dx, *(grads[k] for k in sorted(grads))]

    assert_same_bits(*fused_and_unfused(compute))


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("I, H", [(32, 64), (64, 128)])
def test_stream(cell, I, H):
    rng = np.random.default_rng(7)
    layer = CELLS[cell](I, H, num_layers=2)
    xs = rng.standard_normal((12, I)).astype(np.float32)

    def compute():
        with crnn.use_backend("c"):
            stream = layer.stream()
            ys = [stream.step(x) for x in xs]
        state = stream.state
        return [*ys, *(state if isinstance(state, tuple) else [state])]

    assert_same_bits(*fused_and_unfused(compute))


@pytest.mark.parametrize("H", [32, 64, 128, 176, 40])   # 40: not whole blocks, never fused
@pytest.mark.parametrize("reverse, lengths", [(False, None), (True, [17])])
def test_lstm_backward_fused_and_unfused_agree(H, reverse, lengths):
    from crnn import _c_kernels, reference
    rng = np.random.default_rng(H)
    T, I = 23, 24
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((T, 1, I))
    W_ih, W_hh = rng.uniform(-k, k, (4 * H, I)), rng.uniform(-k, k, (4 * H, H))
    b_ih, b_hh = rng.uniform(-k, k, 4 * H), rng.uniform(-k, k, 4 * H)
    h0, c0, dh, dc = (rng.standard_normal((1, H)) for _ in range(4))
    dy = rng.standard_normal((T, 1, H))
    args = (x, h0, c0, W_ih, W_hh, b_ih, b_hh, None)
    opts = dict(lengths=None if lengths is None else np.array(lengths), reverse=reverse, training=True)

    def grads(kernels, dtype):
        *_, cache = kernels.lstm_forward(*(None if a is None else a.astype(dtype) for a in args), **opts)
        dx, dh0, dc0, g = kernels.lstm_backward(cache, dy.astype(dtype), dh.astype(dtype), dc.astype(dtype))
        return [dx, dh0, dc0, *(g[name] for name in sorted(g) if g[name] is not None)]

    ext = crnn._backend.extension()
    was = ext._fuse_row_backward(True)
    try:
        fused = grads(_c_kernels, np.float32)
        ext._fuse_row_backward(False)
        unfused = grads(_c_kernels, np.float32)
    finally:
        ext._fuse_row_backward(was)
    exact = grads(reference, np.float64)
    for a, b, want in zip(fused, unfused, exact):
        scale = max(float(np.abs(want).max()), 1e-2)
        assert float(np.abs(a - b).max()) / scale <= 1e-5
        assert float(np.abs(a - want).max()) / scale <= 5e-5


@pytest.mark.parametrize("T", [23, 24])
def test_lstm_backward_repeats_its_bits(T):
    """The fused backward step sums dh_{t-1} over its blocks in an order that
    alternates from step to step; it follows the step's index, so calling the
    backward again on the same tape (whatever ran in between) gives the same bits."""
    rng = np.random.default_rng(T)
    layer = crnn.LSTM(24, 64)
    x = rng.standard_normal((T, 1, 24)).astype(np.float32)
    dy = rng.standard_normal((T, 1, 64)).astype(np.float32)
    _, _, tape = layer.forward(x)

    def grads():
        dx, (dh0, dc0), g = layer.backward(tape, dy)
        return [dx, dh0, dc0, *(g[name] for name in sorted(g))]
    first = grads()
    layer(x[:1])                       # a one-step call between the two
    assert_same_bits(first, grads())
