"""Cells: one step equals a one-step layer, and matches torch's cells."""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from conftest import TOLERANCE, assert_close

CELLS = {"rnn": crnn.RNNCell, "lstm": crnn.LSTMCell, "gru": crnn.GRUCell}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cell_matches_torch_cell(each_backend, kind, dtype, unbatched):
    torch = pytest.importorskip("torch")
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    tcell = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](3, 5, dtype=tdt)
    cell = CELLS[kind](3, 5, dtype=dtype)
    cell.load_state_dict(tcell.state_dict())
    rng = np.random.default_rng(0)
    lead = () if unbatched else (4,)
    x = rng.standard_normal(lead + (3,)).astype(dtype)
    h = rng.standard_normal(lead + (5,)).astype(dtype)
    state = (h, rng.standard_normal(lead + (5,)).astype(dtype)) if kind == "lstm" else h
    fwd_tol, grad_tol = TOLERANCE[np.dtype(dtype)]

    new, tape = cell.forward(x, state)
    ours = new if isinstance(new, tuple) else (new,)
    dnew = tuple(rng.standard_normal(s.shape).astype(dtype) for s in ours)
    dx, dprev, grads = cell.backward(tape, dnew if len(dnew) > 1 else dnew[0])

    tx = torch.tensor(x, requires_grad=True)
    tstate = tuple(torch.tensor(s, requires_grad=True) for s in (state if isinstance(state, tuple) else (state,)))
    tnew = tcell(tx, tstate if kind == "lstm" else tstate[0])
    tnew = tnew if isinstance(tnew, tuple) else (tnew,)
    sum((a * torch.tensor(b)).sum() for a, b in zip(tnew, dnew)).backward()

    for a, b in zip(ours, tnew):
        assert_close(a, b.detach().numpy(), fwd_tol, "state")
    assert_close(dx, tx.grad.numpy(), grad_tol, "dx")
    for a, b in zip(dprev if isinstance(dprev, tuple) else (dprev,), tstate):
        assert_close(a, b.grad.numpy(), grad_tol, "dstate")
    for name, p in tcell.named_parameters():
        assert_close(grads[name], p.grad.numpy(), grad_tol, name)
    inferred = cell(x, state)
    for a, b in zip(inferred if isinstance(inferred, tuple) else (inferred,), ours):
        assert np.array_equal(a, b)


def test_cell_stream_equals_layer():
    """Stepping a cell through a sequence gives the layer's outputs."""
    layer = crnn.GRU(2, 3, seed=1)
    cell = crnn.GRUCell(2, 3)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((6, 2, 2)).astype(np.float32)
    y, _ = layer(x)
    h = None
    for t in range(6):
        h = cell(x[t], h)
        np.testing.assert_allclose(h, y[t], rtol=1e-6, atol=1e-7)


def test_cell_bad_input():
    cell = crnn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"x must be \(B, I\) or \(I,\)"):
        cell(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(KeyError, match="missing"):
        cell.load_state_dict({"weight_ih": np.zeros((16, 3))})
    with pytest.raises(TypeError, match="must be a tuple"):
        cell(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))
