"""Streams: stepping one time step per call equals running the layer on the sequence."""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from _layers import CELLS, make_layer, random_inputs, randomize_parameters, state_arrays


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


def test_stream_sees_weights_loaded_in_place(each_backend):
    layer = crnn.GRU(3, 4, seed=0)
    stream = layer.stream()
    x = np.ones(3, np.float32)
    before = stream.step(x)
    layer.load_state_dict({k: v * 0 for k, v in layer.state_dict().items()})
    stream.reset()
    assert np.array_equal(stream.step(x), np.zeros(4, np.float32))
    assert not np.array_equal(before, np.zeros(4, np.float32))


def test_reload_weights_keeps_the_state(each_backend):
    layer = crnn.LSTM(3, 5, num_layers=2, seed=1)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    stream = layer.stream()
    for t in range(3):
        stream.step(x[t])
    stream.reload_weights()
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


def _c_extension():
    if "c" not in crnn._backend.available_backends():
        pytest.skip("the C extension is not built")
    from crnn import _ext
    return _ext


def _steps_vs_reference(layer, batch, steps, rng):
    """Step a stream (on the current backend) and run the NumPy reference on the
    whole sequence from the same random state; returns (stream, outs, y, state_n)."""
    B = 1 if batch is None else batch
    x, state = random_inputs(layer, rng, steps, B)
    with crnn.use_backend("numpy"):
        y, state_n = layer(x, state)
    unbatch = (lambda s: s[:, 0]) if batch is None else (lambda s: s)
    state_in = tuple(map(unbatch, state)) if isinstance(state, tuple) else unbatch(state)
    stream = layer.stream(batch, state_in)
    outs = np.array([stream.step(x[t, 0] if batch is None else x[t]) for t in range(steps)])
    return stream, outs, (y[:, 0] if batch is None else y), state_arrays(state_n)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [None, 2, 5, 130])
def test_c_stream_equals_reference(cell, dtype, batch):
    """Sizes that end in partial 16-wide panels; B = 1, 2 are the packed kernel's
    matrix-vector tiles, B = 5 its general tile, B = 130 is past the batch where
    packing pays (the core then takes the BLAS path); float64 never packs."""
    ext = _c_extension()
    layer = make_layer(cell, 20, 37, dtype=dtype, num_layers=2)
    rng = np.random.default_rng(1)
    randomize_parameters(layer, rng)
    with crnn.use_backend("c"):
        stream, outs, y, state_n = _steps_vs_reference(layer, batch, 6, rng)
    B, GH = 1 if batch is None else batch, layer._gate_count * layer.hidden_size
    pays = any(ext.pack_pays(B, GH, K) for K in (layer.input_size, layer.output_size))
    assert stream._core.packed == (dtype == np.float32 and pays)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(outs, y, rtol=tol, atol=tol)
    for got, want in zip(state_arrays(stream.state), state_n):
        np.testing.assert_allclose(got, want[:, 0] if batch is None else want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_takes_up_new_weights(each_backend, dtype):
    """load_state_dict is seen by the next step; in-place edits after reload_weights()."""
    layer = make_layer("lstm_proj", 5, 18, dtype=dtype, num_layers=2)
    rng = np.random.default_rng(2)
    randomize_parameters(layer, rng)
    stream = layer.stream(batch_size=2)
    x = rng.standard_normal((3, 2, 5)).astype(dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12

    def check():
        stream.reset()
        with crnn.use_backend("numpy"):
            want, _ = layer(x)
        np.testing.assert_allclose(np.array([stream.step(x_t) for x_t in x]), want, rtol=tol, atol=tol)

    check()
    layer.load_state_dict({k: rng.uniform(-0.5, 0.5, v.shape) for k, v in layer.parameters().items()})
    check()
    for value in layer.parameters().values():   # as an optimizer step does
        value *= 0.5
    stream.reload_weights()
    check()


def test_c_stream_large_step_equals_reference():
    """A step big enough that the stream releases the GIL around it (_NOGIL_MACS)."""
    ext = _c_extension()
    layer = make_layer("lstm", 64, 128, dtype=np.float32)
    assert 4 * 4 * 128 * (64 + 128) >= ext._NOGIL_MACS
    rng = np.random.default_rng(3)
    randomize_parameters(layer, rng)
    with crnn.use_backend("c"):
        _, outs, y, _ = _steps_vs_reference(layer, 4, 3, rng)
    np.testing.assert_allclose(outs, y, rtol=2e-5, atol=2e-5)


def _reference_outputs(layer, xs, batch):
    """The outputs of stepping layer's fresh NumPy stream over xs: what every step must return."""
    with crnn.use_backend("numpy"):
        ref = layer.stream(batch)
        return [ref.step(x) for x in xs]


def test_c_stream_outputs_a_caller_holds_never_change():
    """The C stream writes a step's output into an earlier output that nobody
    holds any more (StreamCore); one still held in any way keeps its values:
    by a name, a view, a memoryview or a weak reference; one changed in place
    (shape, dtype, flags) and dropped is not returned again; a reused one
    carries the new step's values."""
    import weakref
    _c_extension()
    layer = crnn.GRU(3, 16, seed=4)
    xs = np.random.default_rng(5).standard_normal((40, 2, 3)).astype(np.float32)
    want = _reference_outputs(layer, xs, 2)
    with crnn.use_backend("c"):
        stream = layer.stream(2)
    held, ids = {}, set()
    for t, x in enumerate(xs):
        y = stream.step(x)
        ids.add(id(y))
        assert y.shape == (2, 16) and y.dtype == np.float32 and y.flags.writeable and y.flags.c_contiguous
        np.testing.assert_allclose(y, want[t], rtol=2e-5, atol=2e-5)
        kind = t % 8
        if kind == 1:
            held[t] = y                                  # by name
        elif kind == 2:
            held[t] = y[1:]                              # by a view
        elif kind == 3:
            held[t] = memoryview(y)
        elif kind == 4:
            held[t] = (weakref.ref(y), y.copy())
        elif kind == 5:                                  # changed in place, then dropped
            y.shape = (16, 2)
        elif kind == 6:
            y.flags.writeable = False
        elif kind == 7:
            y.dtype = np.int32
        del y
        for h in held.values():                          # alive only while the stream remembers it
            if isinstance(h, tuple) and h[0]() is not None:
                np.testing.assert_array_equal(h[0](), h[1])
    for t, h in held.items():
        if isinstance(h, tuple):
            continue
        got = np.asarray(h).reshape(-1)
        np.testing.assert_allclose(got, want[t].reshape(-1)[-got.size:], rtol=2e-5, atol=2e-5)
    assert len(ids) < len(xs)                            # outputs nobody held were written again


def test_c_stream_reused_outputs_equal_fresh_ones():
    """Dropping every output at once (the usual loop) returns the same values
    as keeping them all, batched and unbatched, for every cell."""
    _c_extension()
    for cell in CELLS:
        layer = make_layer(cell, 5, 16, dtype=np.float32)
        randomize_parameters(layer, np.random.default_rng(6))
        xs = np.random.default_rng(7).standard_normal((12, 2, 5)).astype(np.float32)
        with crnn.use_backend("c"):
            for batch in (None, 2):
                kept = layer.stream(batch)
                inputs = [x[0] if batch is None else x for x in xs]
                all_kept = [kept.step(x) for x in inputs]
                dropped = layer.stream(batch)
                for x, expected in zip(inputs, all_kept):
                    np.testing.assert_array_equal(dropped.step(x), expected)
