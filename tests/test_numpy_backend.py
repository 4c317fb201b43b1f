"""What the NumPy backend promises beyond matching the C core and PyTorch:
inference memory that does not grow with T, a forward cut into chunks of
steps that computes what one chunk does, y written into a caller's view,
and padding past a sequence's length that is never read."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import crnn
from _layers import CELLS, make_layer, random_inputs, randomize_parameters, state_arrays
from conftest import TOLERANCE, assert_close
from crnn import reference
from crnn.reference import _sequence


def traced_extra(layer, x, lengths):
    """Peak memory tracemalloc sees during one inference call, minus its results."""
    layer(x[:, :2] if layer.batch_first else x[:2])            # warm-up, outside the window
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y, state = layer(x, lengths=lengths)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak - y.nbytes - sum(s.nbytes for s in state_arrays(state))


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("layout", ["forward", "bidirectional", "bidirectional_batch_first"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_inference_memory_does_not_grow_with_T(cell, layout, with_lengths):
    """At T = 50 and T = 200 the extra memory of a call is the same: the
    input product runs per chunk of steps and y is written in place. (Before,
    it held the product of all T steps: 4x more at T = 200.)"""
    B, I, H = 32, 16, 64           # chunks of 16 steps: both lengths span several
    options = dict(bidirectional=layout != "forward", batch_first=layout.endswith("batch_first"))
    layer = make_layer(cell, I, H, dtype=np.float32, **options)
    rng = np.random.default_rng(0)
    extra = {}
    for T in (50, 200):
        x, _ = random_inputs(layer, rng, T, B, with_state=False)
        lengths = rng.integers(0, T + 1, size=B) if with_lengths else None
        with crnn.use_backend("numpy"):
            extra[T] = traced_extra(layer, x, lengths)
    assert extra[200] <= 1.05 * extra[50] + 64 * 1024, extra


def run_kernel(cell, x, weights, h0, c0, lengths, reverse, training, **options):
    """One layer-direction on the reference: (y, final states, cache)."""
    W_ih, W_hh, b_ih, b_hh, W_hr = weights
    opts = dict(lengths=lengths, reverse=reverse, training=training, **options)
    if cell.startswith("rnn"):
        y, h, cache = reference.rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity=cell[4:], **opts)
        return y, (h,), cache
    if cell.startswith("lstm"):
        y, h, c, cache = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, **opts)
        return y, (h, c), cache
    y, h, cache = reference.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, **opts)
    return y, (h,), cache


def random_problem(cell, T, B, I, H, seed=0):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lst": 4, "gru": 3}[cell[:3]]
    P = H // 2 if cell == "lstm_proj" else H
    r = lambda *shape: rng.uniform(-1, 1, size=shape)            # noqa: E731
    weights = (r(G * H, I), r(G * H, P), r(G * H), r(G * H), r(P, H) if cell == "lstm_proj" else None)
    return r(T, B, I), weights, r(B, P), r(B, H)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_forward_in_chunks_of_steps_equals_one_chunk(cell, reverse, training, monkeypatch):
    """T = 5 in chunks of 2 steps (the last has 1), against one chunk of 5."""
    x, weights, h0, c0 = random_problem(cell, 5, 3, 4, 6)
    lengths = np.array([5, 2, 0])
    whole = run_kernel(cell, x, weights, h0, c0, lengths, reverse, training)
    monkeypatch.setattr(_sequence, "FORWARD_CHUNK_ROWS", 2 * 3)
    assert _sequence.forward_chunk_steps(5, 3) == 2
    chunked = run_kernel(cell, x, weights, h0, c0, lengths, reverse, training)
    tol = TOLERANCE[np.dtype(np.float64)][0]
    assert_close(chunked[0], whole[0], tol, "y")
    for got, want in zip(chunked[1], whole[1]):
        assert_close(got, want, tol, "state")
    if training:
        for key, want in whole[2].items():
            if isinstance(want, np.ndarray):
                assert_close(chunked[2][key], want, tol, key)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_writes_y_into_out(cell):
    """out= takes a strided view (one direction's half of a wider array) and is y."""
    x, weights, h0, c0 = random_problem(cell, 7, 3, 4, 6)
    lengths = np.array([7, 3, 1])
    want, state, _ = run_kernel(cell, x, weights, h0, c0, lengths, True, False)
    wide = np.full(want.shape[:2] + (3 * want.shape[2],), 7.0)
    out = wide[:, :, want.shape[2]:2 * want.shape[2]]
    y, state_out, _ = run_kernel(cell, x, weights, h0, c0, lengths, True, False, out=out)
    assert y is out
    assert np.array_equal(y, want)
    for got, expected in zip(state_out, state):
        assert np.array_equal(got, expected)
    assert np.all(wide[:, :, :want.shape[2]] == 7.0) and np.all(wide[:, :, 2 * want.shape[2]:] == 7.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_inference_equals_training_forward(cell, batch_first):
    """Inference writes each layer's directions into one array in the caller's
    layout; the training forward concatenates them: the same y and state."""
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    rng = np.random.default_rng(1)
    randomize_parameters(layer, rng)
    x, state = random_inputs(layer, rng, 6, 3)
    lengths = [6, 1, 4]
    with crnn.use_backend("numpy"):
        y, state_n = layer(x, state, lengths=lengths)
        y_train, state_train, _ = layer.forward(x, state, lengths=lengths)
    assert y.flags.c_contiguous
    assert np.array_equal(y, y_train)
    for got, want in zip(state_arrays(state_n), state_arrays(state_train)):
        assert np.array_equal(got, want)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("cell", CELLS)
def test_padding_past_a_length_is_never_read(each_backend, cell):
    """NaN in x past a sequence's length changes nothing (as PyTorch's packed
    sequences never see it); the NumPy backend used to mask by multiplying,
    and 0 * NaN let it into the state."""
    layer = make_layer(cell, 3, 4, bidirectional=True)
    rng = np.random.default_rng(2)
    randomize_parameters(layer, rng)
    x, state = random_inputs(layer, rng, 6, 3)
    lengths = np.array([6, 2, 0])
    padded = x.copy()
    padded[2:, 1] = np.nan
    padded[:, 2] = np.inf
    infer = layer
    train = lambda *args, **kw: layer.forward(*args, **kw)[:2]       # noqa: E731
    for run in (infer, train):
        want_y, want_state = run(x, state, lengths=lengths)
        y, state_n = run(padded, state, lengths=lengths)
        assert np.array_equal(y, want_y)
        for got, want in zip(state_arrays(state_n), state_arrays(want_state)):
            assert np.array_equal(got, want)


@pytest.mark.parametrize("T", [3, 7])
@pytest.mark.parametrize("limit", [0, None])
def test_recurrent_product_layouts_agree(T, limit, monkeypatch):
    """[F2] on the transposed view (T <= 4), on a transposed copy (a small
    W_hh) or on W_hh itself (from RECURRENT_COPY_LIMIT on): all W_hh h."""
    if limit is not None:
        monkeypatch.setattr(_sequence, "RECURRENT_COPY_LIMIT", limit)
    rng = np.random.default_rng(3)
    W_hh, h = rng.standard_normal((12, 5)), rng.standard_normal((4, 5))
    product = _sequence.recurrent_product(W_hh, T)
    assert_close(product(h), h @ W_hh.T, TOLERANCE[np.dtype(np.float64)][0], "W_hh h")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("training", [False, True])
def test_forward_with_W_hh_left_in_place_equals_the_copy(cell, training, monkeypatch):
    """A whole forward (lengths, reverse) on each layout of [F2]."""
    x, weights, h0, c0 = random_problem(cell, 7, 3, 4, 6)
    lengths = np.array([7, 3, 0])
    copied = run_kernel(cell, x, weights, h0, c0, lengths, True, training)
    monkeypatch.setattr(_sequence, "RECURRENT_COPY_LIMIT", 0)
    in_place = run_kernel(cell, x, weights, h0, c0, lengths, True, training)
    tol = TOLERANCE[np.dtype(np.float64)][0]
    assert_close(in_place[0], copied[0], tol, "y")
    for got, want in zip(in_place[1], copied[1]):
        assert_close(got, want, tol, "state")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 130), (128, 128), (200, 70)])
def test_transposed_weights_are_aligned_copies(dtype, shape):
    """The per-step products run on 64-byte-aligned copies, whatever the allocator gave."""
    W = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    W_T = _sequence.transposed(W)
    assert W_T.dtype == dtype and W_T.flags.c_contiguous and W_T.ctypes.data % 64 == 0
    assert np.array_equal(W_T, W.T)
    W_T[...] = 0                                              # a copy: W is untouched
    assert np.any(W != 0)
