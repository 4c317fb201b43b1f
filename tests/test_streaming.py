"""Streams: stepping one time step per call equals running the layer on the sequence."""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from _layers import CELLS, make_layer, randomize_parameters


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [None, 1, 3])
def test_stream_equals_layer(each_backend, cell, dtype, batch):
    layer = make_layer(cell, 4, 6, dtype=dtype, num_layers=2)
    rng = np.random.default_rng(0)
    randomize_parameters(layer, rng)
    B = 1 if batch is None else batch
    x = rng.standard_normal((9, B, 4)).astype(dtype)
    lead = (2, B)
    h0 = rng.standard_normal(lead + (layer.output_size,)).astype(dtype)
    state = (h0, rng.standard_normal(lead + (6,)).astype(dtype)) if isinstance(layer, crnn.LSTM) else h0
    y, state_n = layer(x, state)
    if batch is None:
        state_in = tuple(s[:, 0] for s in state) if isinstance(state, tuple) else state[:, 0]
    else:
        state_in = state
    stream = layer.stream(batch, state_in)
    outs = [stream.step(x[t, 0] if batch is None else x[t]) for t in range(9)]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.array(outs), y[:, 0] if batch is None else y, rtol=tol, atol=tol)
    got = stream.state if isinstance(stream.state, tuple) else (stream.state,)
    want = state_n if isinstance(state_n, tuple) else (state_n,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w[:, 0] if batch is None else w, rtol=tol, atol=tol)
    stream.reset()
    first = stream.step(x[0, 0] if batch is None else x[0])
    y0, _ = layer(x[:1])
    np.testing.assert_allclose(first, y0[0, 0] if batch is None else y0[0], rtol=tol, atol=tol)


def test_stream_takes_the_weights_when_made_and_on_refresh(each_backend):
    layer = crnn.GRU(3, 4, seed=0)
    stream = layer.stream()
    x = np.ones(3, np.float32)
    before = stream.step(x)
    layer.load_state_dict({k: v * 0 for k, v in layer.state_dict().items()})
    stream.reset()
    assert np.array_equal(stream.step(x), before)          # the stream's own copy
    stream.reset()
    stream.refresh()
    assert np.array_equal(stream.step(x), np.zeros(4, np.float32))
    assert not np.array_equal(before, np.zeros(4, np.float32))


def test_refresh_keeps_the_state(each_backend):
    layer = crnn.LSTM(3, 5, num_layers=2, seed=1)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    stream = layer.stream()
    for t in range(3):
        stream.step(x[t])
    stream.refresh()
    tail = [stream.step(x[t]) for t in range(3, 6)]
    y, _ = layer(x[:, None])
    tol = 2e-5
    np.testing.assert_allclose(np.stack(tail), y[3:, 0], rtol=tol, atol=tol)


def test_stream_bad_input(each_backend):
    with pytest.raises(ValueError, match="bidirectional layer cannot stream"):
        crnn.LSTM(3, 4, bidirectional=True).stream()
    stream = crnn.LSTM(3, 4).stream(batch_size=2)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        stream.step(np.zeros((3,), np.float32))
    with pytest.raises(TypeError, match="float32"):
        stream.step(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="h0 has shape"):
        stream.reset((np.zeros((1, 1, 4), np.float32), np.zeros((1, 2, 4), np.float32)))
    x = np.zeros((2, 3), np.float32)
    x_copy = x.copy()
    stream.step(x)
    assert np.array_equal(x, x_copy)
