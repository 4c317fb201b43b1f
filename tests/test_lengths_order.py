"""Variable lengths on the C backend: the layers hand the kernels the batch
longest first (crnn/_recurrent.py, _longest_first), so that each step's
recurrent product leaves out the finished sequences (live_rows in
src/common.h), and give the caller everything back in the caller's order.

The NumPy backend keeps the caller's order: the two backends agreeing on
unsorted lengths checks the reordering both ways, dropout's draws included.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference
from crnn._recurrent import _longest_first

HAS_C = "c" in crnn.available_backends()
needs_c = pytest.mark.skipif(not HAS_C, reason="C extension not installed")
if HAS_C:          # a NumPy-only install (CRNN_NO_EXT) runs the NumPy tests below
    from crnn import _c_kernels

TOL = {np.float32: 2e-4, np.float64: 1e-10}


def _close(a, b, dtype, what):
    scale = max(float(np.abs(b).max(initial=0)), 1e-3)
    err = float(np.abs(np.asarray(a) - np.asarray(b)).max(initial=0)) / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g}"


def _layer(cell, dtype, batch_first, proj):
    kw = dict(num_layers=2, bidirectional=True, dropout=0.3, batch_first=batch_first, dtype=dtype, seed=7)
    if cell == "lstm":
        return crnn.LSTM(5, 16, proj_size=proj, **kw)
    return {"rnn": crnn.RNN, "gru": crnn.GRU}[cell](5, 16, **kw)


def _state_like(state, rng, dtype):
    if isinstance(state, tuple):
        return tuple(rng.standard_normal(s.shape).astype(dtype) for s in state)
    return rng.standard_normal(state.shape).astype(dtype)


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _train_step(backend, cell, dtype, batch_first, proj, x, lengths, state0, dy, dstate):
    layer = _layer(cell, dtype, batch_first, proj)        # the same seed: the same weights and dropout draws
    with crnn.use_backend(backend):
        y, state_n, tape = layer.forward(x, state0, lengths=lengths)
        dx, dstate0, grads = layer.backward(tape, dy, dstate)
        y_inf, state_inf = layer(x, state0, lengths=lengths)
    return dict(y=y, dx=dx, y_inf=y_inf, **grads,
                **{f"state_n{k}": s for k, s in enumerate(_flat(state_n))},
                **{f"dstate0{k}": s for k, s in enumerate(_flat(dstate0))},
                **{f"state_inf{k}": s for k, s in enumerate(_flat(state_inf))}), tape


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,proj", [("rnn", 0), ("lstm", 0), ("lstm", 3), ("gru", 0)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unsorted_lengths_give_the_reference_results_in_the_callers_order(cell, proj, batch_first, dtype):
    T, B = 9, 6
    rng = np.random.default_rng(B * T + proj)
    lengths = np.array([3, 9, 0, 5, 9, 1])                # unsorted, ties, an empty sequence
    x = rng.standard_normal((B, T, 5) if batch_first else (T, B, 5)).astype(dtype)
    probe = _layer(cell, dtype, batch_first, proj)
    y_shape = probe(x)[0].shape
    state0 = _state_like(probe(x)[1], rng, dtype)
    dy = rng.standard_normal(y_shape).astype(dtype)
    dstate = _state_like(state0, rng, dtype)
    before = [a.copy() for a in (x, lengths, dy, *_flat(state0), *_flat(dstate))]

    ours, tape = _train_step("c", cell, dtype, batch_first, proj, x, lengths, state0, dy, dstate)
    ref, ref_tape = _train_step("numpy", cell, dtype, batch_first, proj, x, lengths, state0, dy, dstate)
    assert tape.order is not None and ref_tape.order is None
    assert sorted(ours) == sorted(ref)
    for name in ref:
        _close(ours[name], ref[name], dtype, name)
    for a, b in zip(before, (x, lengths, dy, *_flat(state0), *_flat(dstate))):
        np.testing.assert_array_equal(a, b)                # the caller's arrays are left alone
    # padding past a length stays 0 in the caller's order
    y = ours["y"] if not batch_first else ours["y"].transpose(1, 0, 2)
    for b, n in enumerate(lengths):
        assert not y[n:, b].any()


@needs_c
def test_the_kernels_see_the_batch_longest_first():
    """What the C forward received: lengths in decreasing order, and the rows of x with them."""
    layer = crnn.GRU(3, 8, seed=1)
    x = np.random.default_rng(0).standard_normal((6, 4, 3)).astype(np.float32)
    seen = []
    original = _c_kernels.gru_forward

    def spy(x_in, *args, lengths=None, **kw):
        seen.append((x_in.copy(), None if lengths is None else np.asarray(lengths).copy()))
        return original(x_in, *args, lengths=lengths, **kw)
    _c_kernels.gru_forward = spy
    try:
        with crnn.use_backend("c"):
            layer(x, lengths=[2, 6, 4, 6])
    finally:
        _c_kernels.gru_forward = original
    x_in, lengths_in = seen[0]
    np.testing.assert_array_equal(lengths_in, [6, 6, 4, 2])
    np.testing.assert_array_equal(x_in, x[:, [1, 3, 2, 0]])      # ties keep their order


@needs_c
def test_longest_first_reorders_only_where_it_helps():
    assert _longest_first(None, _c_kernels) is None
    assert _longest_first(np.array([5]), _c_kernels) is None
    assert _longest_first(np.array([5, 5, 3, 0]), _c_kernels) is None          # already in order
    assert _longest_first(np.array([1, 3, 2]), reference) is None              # the reference runs every row
    np.testing.assert_array_equal(_longest_first(np.array([1, 3, 1, 3]), _c_kernels), [1, 3, 0, 2])


# NumPy's inference computes the masked steps on the padding and discards
# them: it must not warn about them either (an error under -W error)
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cell,proj", [("rnn", 0), ("lstm", 0), ("lstm", 3), ("gru", 0)])
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_padding_past_the_lengths_is_never_read(backend, cell, proj, order):
    """NaN and inf in x past each length change nothing, gradients included
    (the NumPy reference trains on x with its padding zeroed; the C core's
    products read only each step's live rows)."""
    if backend not in crnn.available_backends():
        pytest.skip("C extension not installed")
    T, B, dtype = 9, 6, np.float64
    lengths = np.array([3, 9, 0, 5, 9, 1]) if order == "unsorted" else np.array([9, 9, 5, 3, 1, 0])
    rng = np.random.default_rng(11)
    x = rng.standard_normal((T, B, 5))
    poisoned = x.copy()
    for b, n in enumerate(lengths):
        x[n:, b] = 0
        poisoned[n:, b] = np.nan if b % 2 else np.inf
    probe = _layer(cell, dtype, False, proj)
    state0 = _state_like(probe(x)[1], rng, dtype)
    dy = rng.standard_normal(probe(x)[0].shape)
    dstate = _state_like(state0, rng, dtype)
    clean, _ = _train_step(backend, cell, dtype, False, proj, x, lengths, state0, dy, dstate)
    dirty, _ = _train_step(backend, cell, dtype, False, proj, poisoned, lengths, state0, dy, dstate)
    for name in clean:
        if clean[name] is not None:
            assert np.isfinite(dirty[name]).all(), name
            np.testing.assert_allclose(dirty[name], clean[name], rtol=1e-12, atol=1e-12, err_msg=name)
