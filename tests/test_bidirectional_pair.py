"""The two directions of a bidirectional layer side by side (src/parallel.h,
crnn_parallel_pair): on the C backend with the BLAS at two threads, a
bidirectional layer runs its forward direction on the calling thread and its
reverse direction on crnn's worker, in inference, training forward and
backward. Each direction computes exactly as it does with one thread (no
split of its own, the BLAS on one thread), whichever thread runs it: so
results at two threads are the bits of one thread, whether the worker was
free or not, and match the NumPy reference to rounding.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import crnn

from _layers import make_layer, random_inputs, randomize_parameters, state_arrays

if "c" not in crnn.available_backends():
    pytest.skip("the C extension is not installed (CRNN_NO_EXT)", allow_module_level=True)

from crnn import _c_kernels, _ext  # noqa: E402


@pytest.fixture
def blas_threads():
    before = crnn.get_num_threads()
    yield crnn.set_num_threads
    crnn.set_num_threads(before)


@pytest.fixture
def c_backend():
    with crnn.use_backend("c"):
        yield


def train_once(layer, x, state, lengths, seed):
    """Forward and backward with random output gradients: every result as a dict."""
    rng = np.random.default_rng(seed)
    y, state_n, tape = layer.forward(x, state, lengths)
    dy = rng.standard_normal(y.shape).astype(layer.dtype)
    dstate = tuple(rng.standard_normal(s.shape).astype(layer.dtype) for s in state_arrays(state_n))
    dx, dstate0, grads = layer.backward(tape, dy, dstate if len(dstate) > 1 else dstate[0])
    out = {"y": y, "dx": dx}
    out.update({f"state_n{k}": s for k, s in enumerate(state_arrays(state_n))})
    out.update({f"dstate0{k}": s for k, s in enumerate(state_arrays(dstate0))})
    out.update({"d" + name: g for name, g in grads.items()})
    return out


def infer_once(layer, x, state, lengths):
    y, state_n = layer(x, state, lengths)
    out = {"y": y}
    out.update({f"state_n{k}": s for k, s in enumerate(state_arrays(state_n))})
    return out


CASES = [
    # cell, T, B, I, H, num_layers, ragged lengths
    ("lstm", 30, 16, 24, 64, 2, True),     # rows would split each direction at 2 threads
    ("lstm_proj", 20, 5, 12, 40, 2, False),
    ("gru", 25, 1, 16, 48, 1, False),      # B = 1: never split, now two cores
    ("gru", 17, 9, 33, 130, 2, True),
    ("rnn_tanh", 40, 8, 100, 256, 1, True),
    ("rnn_relu", 12, 3, 7, 9, 3, False),
    ("lstm", 5, 8, 40, 1024, 1, False),     # one direction alone would split by units
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,T,B,I,H,layers,ragged", CASES)
def test_two_threads_give_the_bits_of_one(blas_threads, c_backend, cell, T, B, I, H, layers, ragged, dtype):
    rng = np.random.default_rng(T * B + H)
    layer = make_layer(cell, I, H, dtype=dtype, num_layers=layers, bidirectional=True)
    randomize_parameters(layer, rng, scale=1 / np.sqrt(H))
    x, state = random_inputs(layer, rng, T, B)
    lengths = None
    if ragged:
        lengths = rng.integers(1, T + 1, size=B).astype(np.int64)
        lengths[0] = T
    blas_threads(1)
    one_train, one_infer = train_once(layer, x, state, lengths, 1), infer_once(layer, x, state, lengths)
    blas_threads(2)
    for _ in range(2):  # the second time on a parked worker
        two_train, two_infer = train_once(layer, x, state, lengths, 1), infer_once(layer, x, state, lengths)
        for one, two in ((one_train, two_train), (one_infer, two_infer)):
            assert one.keys() == two.keys()
            for name in one:
                np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    assert crnn.get_num_threads() == 2

    with crnn.use_backend("numpy"):
        ref_train = train_once(layer, x, state, lengths, 1)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for name, want in ref_train.items():
        scale = max(float(np.abs(want).max(initial=0)), 1.0)
        err = float(np.abs(two_train[name] - want).max(initial=0)) / scale
        assert err <= tol, f"{name}: relative error {err:.3g} against the NumPy backend"


def test_concurrent_bidirectional_callers_get_their_own_results(blas_threads, c_backend):
    """Four Python threads with bidirectional layers at once: one pair holds the
    worker, the others run their directions one after the other; every result
    is the bits of a lone call."""
    blas_threads(2)
    layers, inputs, want = {}, {}, {}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        layers[seed] = make_layer("gru", 20, 64, dtype=np.float32, num_layers=2, bidirectional=True)
        randomize_parameters(layers[seed], rng, scale=0.2)
        inputs[seed] = random_inputs(layers[seed], rng, 30, 8)
        want[seed] = train_once(layers[seed], *inputs[seed], None, seed)
    errors = []

    def caller(seed):
        try:
            for _ in range(3):
                with crnn.use_backend("c"):
                    got = train_once(layers[seed], *inputs[seed], None, seed)
                for name in want[seed]:
                    np.testing.assert_array_equal(got[name], want[seed][name], err_msg=name)
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert crnn.get_num_threads() == 2


def deferred_rnn_forward(T=6, B=2, I=3, H=4, workspace_size=None):
    """A C rnn forward deferred into a list: -> (the call, y)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    W_ih, W_hh = rng.standard_normal((H, I)).astype(np.float32), rng.standard_normal((H, H)).astype(np.float32)
    y, h_n = np.empty((T, B, H), np.float32), np.empty((B, H), np.float32)
    sizes = _ext.rnn_sizes(T, B, I, H, False)
    workspace = np.empty(sizes[0] if workspace_size is None else workspace_size, np.float32)
    deferred = []
    _ext.rnn_forward(T, B, I, H, False, False, x, None, W_ih, W_hh, None, None, None, y, h_n, workspace,
                     None, defer=deferred)
    want = _c_kernels.rnn_forward(x, None, W_ih, W_hh, None, None, training=False)[0]
    return deferred[0], y, want


@pytest.mark.parametrize("threads", [1, 2])
def test_a_deferred_call_runs_in_the_pair_and_only_once(blas_threads, threads):
    blas_threads(threads)
    a, y_a, want = deferred_rnn_forward()
    b, y_b, _ = deferred_rnn_forward()
    _ext.run_pair(a, b)
    np.testing.assert_array_equal(y_a, want)
    np.testing.assert_array_equal(y_b, want)
    with pytest.raises(ValueError, match="runs once"):
        _ext.run_pair(a, b)
    c, _, _ = deferred_rnn_forward()
    with pytest.raises(ValueError, match="runs once"):
        _ext.run_pair(c, c)


def test_a_refused_call_in_the_pair_raises_after_both_ran(blas_threads):
    blas_threads(2)
    good, y_good, want = deferred_rnn_forward()
    bad, _, _ = deferred_rnn_forward(workspace_size=1)
    with pytest.raises(_ext.KernelError):
        _ext.run_pair(bad, good)
    np.testing.assert_array_equal(y_good, want)
    assert crnn.get_num_threads() == 2


def test_a_thread_keeps_its_last_two_workspaces(c_backend):
    """Workspaces are scratch: the next calls of the thread reuse them (no fresh
    pages to fault in), at most two are kept, and reuse changes no result."""
    _c_kernels.release_workspaces()
    rng = np.random.default_rng(3)
    layer = make_layer("lstm", 12, 32, dtype=np.float32, bidirectional=True)
    randomize_parameters(layer, rng, scale=0.3)
    x, state = random_inputs(layer, rng, 9, 4)
    first = infer_once(layer, x, state, None)
    kept = [id(w) for w in _c_kernels._workspaces.free]
    assert len(kept) == 2
    again = infer_once(layer, x, state, None)
    assert sorted(id(w) for w in _c_kernels._workspaces.free) == sorted(kept)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    train_once(make_layer("gru", 12, 40, dtype=np.float32, num_layers=3), x, None, None, 0)
    assert 1 <= len(_c_kernels._workspaces.free) <= 2
    _c_kernels.release_workspaces()
    assert _c_kernels._workspaces.free == []


def test_a_workspace_too_small_is_dropped_when_a_larger_one_is_made():
    """Kept workspaces of the dtype that are all too small for a call go before
    its new one is allocated, so the peak does not hold them beside it (they
    would go anyway, as the smallest, when the new one comes back); those of
    another dtype stay."""
    _c_kernels.release_workspaces()
    free = _c_kernels._workspaces.free
    small32, small64 = np.empty(100, np.float32), np.empty(100, np.float64)
    free.extend([small32, np.empty(50, np.float32), small64])
    assert _c_kernels._take_workspace(60, np.float32) is small32      # one fits: reused, the rest kept
    assert len(free) == 2
    big = _c_kernels._take_workspace(1000, np.float32)
    assert big.size == 1000 and big.dtype == np.float32
    assert len(free) == 1 and free[0] is small64
    _c_kernels.release_workspaces()
