"""Every gradient of every layer against central finite differences (float64).

Non-zero biases and initial states, an upstream gradient on every step and
on the final state(s): a bug in any term has nowhere to hide.
"""

from __future__ import annotations

import numpy as np
import pytest

from _layers import CELLS, make_layer, random_inputs, randomize_parameters, state_arrays

EPS = 1e-6
RTOL = 1e-6


def numeric_gradient(loss, array):
    """Central differences of loss() w.r.t. every element of array (perturbed in place)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + EPS
        plus = loss()
        flat[k] = old - EPS
        minus = loss()
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * EPS)
    return grad


def check_layer_gradients(layer, T, B, lengths=None, unbatched=False, seed=0):
    rng = np.random.default_rng(seed)
    randomize_parameters(layer, rng)
    x, state = random_inputs(layer, rng, T, B, unbatched=unbatched)
    # Dropout draws a new mask per forward: every forward below replays this generator state.
    rng_state = layer._dropout_rng.bit_generator.state
    y, state_n, tape = layer.forward(x, state, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal(s.shape) for s in state_arrays(state_n))
    dstate_n = dstate if len(dstate) > 1 else dstate[0]
    dx, dstate0, grads = layer.backward(tape, dy, dstate_n)

    def loss():
        layer._dropout_rng.bit_generator.state = rng_state
        y, s, _ = layer.forward(x, state, lengths=lengths)
        return float((y * dy).sum() + sum((a * b).sum() for a, b in zip(state_arrays(s), dstate)))

    checks = [("x", x, dx)]
    checks += [(f"state[{k}]", s, g) for k, (s, g) in enumerate(zip(state_arrays(state), state_arrays(dstate0)))]
    checks += [(name, value, grads[name]) for name, value in layer.parameters().items()]
    assert set(grads) == set(layer.parameters())
    for name, value, analytic in checks:
        numeric = numeric_gradient(loss, value)
        scale = max(np.abs(numeric).max(), 1e-6)
        err = np.abs(numeric - analytic).max() / scale
        assert err < RTOL, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", [
    dict(T=4, B=3, I=3, H=3),
    dict(T=1, B=1, I=1, H=1),
    dict(T=3, B=2, I=2, H=1),
    dict(T=4, B=3, I=2, H=3, num_layers=2, bidirectional=True),
    dict(T=5, B=3, I=2, H=2, lengths=[5, 2, 1]),
    dict(T=5, B=4, I=2, H=2, bidirectional=True, lengths=[3, 5, 1, 0]),
    dict(T=4, B=2, I=3, H=2, batch_first=True, num_layers=2),
    dict(T=3, B=1, I=2, H=2, unbatched=True, bidirectional=True),
    dict(T=4, B=3, I=2, H=2, bias=False),
    dict(T=4, B=3, I=2, H=2, num_layers=3, dropout=0.4, bidirectional=True, lengths=[4, 2, 3]),
], ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_layer_gradients_match_finite_differences(each_backend, cell, case):
    case = dict(case)
    T, B, I, H = case.pop("T"), case.pop("B"), case.pop("I"), case.pop("H")
    lengths, unbatched = case.pop("lengths", None), case.pop("unbatched", False)
    layer = make_layer(cell, I, H, dtype=np.float64, **case)
    check_layer_gradients(layer, T, B, lengths=lengths, unbatched=unbatched)


def test_backward_chunks_take_at_least_as_many_rows_as_the_weights_have_columns():
    from crnn.reference import _sequence
    rows = _sequence.BACKWARD_CHUNK_ROWS
    assert [len(c) for c in _sequence.backward_chunks(50, 64, False)] == [rows // 64] * (50 // (rows // 64)) + [2]
    assert [len(c) for c in _sequence.backward_chunks(50, 64, True, 512 + 1024)] == [24, 24, 2]
    assert list(_sequence.backward_chunks(50, 64, True, 512 + 1024)[0]) == list(range(24))   # reverse: from t = 0


@pytest.mark.parametrize("cell", CELLS)
def test_reference_backward_in_chunks_of_steps_matches_finite_differences(cell, monkeypatch):
    """The NumPy backward, cut into chunks of 2 steps (T = 5: the last chunk has 1), both directions."""
    import crnn
    from crnn.reference import _sequence
    B = 3
    monkeypatch.setattr(_sequence, "BACKWARD_CHUNK_ROWS", 2 * B)
    assert [len(c) for c in _sequence.backward_chunks(5, B, False)] == [2, 2, 1]
    layer = make_layer(cell, 2, 3, dtype=np.float64, bidirectional=True)
    with crnn.use_backend("numpy"):
        check_layer_gradients(layer, 5, B, lengths=[5, 2, 3])


@pytest.mark.parametrize("cell", CELLS)
def test_reference_forward_in_chunks_of_steps_matches_finite_differences(cell, monkeypatch):
    """The NumPy forward's input product in chunks of 2 steps (T = 5: the last
    has 1), its tape written chunk by chunk, both directions."""
    import crnn
    from crnn.reference import _sequence
    monkeypatch.setattr(_sequence, "FORWARD_CHUNK_ROWS", 2 * 3)
    assert _sequence.forward_chunk_steps(5, 3) == 2
    layer = make_layer(cell, 2, 3, dtype=np.float64, bidirectional=True)
    with crnn.use_backend("numpy"):
        check_layer_gradients(layer, 5, 3, lengths=[5, 2, 3])
