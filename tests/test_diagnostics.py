"""Gradient-flow diagnostics: exact per-step state gradients, and the plot."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import crnn
from crnn.diagnostics import GradientFlow, gradient_flow, plot_gradient_flow, task_gradient_flow
from crnn.tasks import make_task
from crnn.training import Model


def _state_parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 1), ("gru", 1), ("lstm", 2), ("gru", 2)])
def test_per_step_gradients_are_exact(cell, layers):
    """||dL/dh_t|| against an independent route: run the suffix from h_t and backpropagate to it."""
    rng = np.random.default_rng(0)
    model = Model.build(cell, 3, 4, 2, num_layers=layers, dtype=np.float64, seed=1)
    T, B = 7, 3
    x = rng.standard_normal((T, B, 3))
    dout = rng.standard_normal((T, B, 2))                # a loss on every step: every path is exercised
    flow = gradient_flow(model, x, dout)
    _, _, full_tape = model.forward(x)
    dx_full, _, _ = model.backward(full_tape, dout)
    np.testing.assert_allclose(flow.input_norm, np.linalg.norm(dx_full, axis=2).mean(axis=1), rtol=1e-10)
    for t in (0, 3, T - 1):
        _, state_t = model(x[:t + 1])                    # h_t: the state after step t
        parts = [p.copy() for p in _state_parts(state_t)]
        # L as a function of h_t: the output at step t reads h_t itself (top layer), later steps run from it.
        state_arg = tuple(parts) if cell == "lstm" else parts[0]
        if t + 1 < T:
            _, _, tape = model.forward(x[t + 1:], state_arg)
            _, dstate, _ = model.backward(tape, dout[t + 1:])
            grads = [g.copy() for g in _state_parts(dstate)]
        else:
            grads = [np.zeros_like(p) for p in parts]
        dy_t, _ = model.readout.backward(np.zeros((B, 4)), dout[t])
        grads[0][-1] += dy_t
        expected_h = np.linalg.norm(grads[0].transpose(1, 0, 2).reshape(B, -1), axis=1).mean()
        expected_state = np.sqrt(sum((g ** 2).sum(axis=(0, 2)) for g in grads)).mean()
        assert flow.h_norm[t] == pytest.approx(expected_h, rel=1e-10)
        assert flow.state_norm[t] == pytest.approx(expected_state, rel=1e-10)


def test_loss_at_the_end_only_and_summaries():
    task = make_task("adding", length=30, seed=0)
    model = Model.build("rnn", task.input_size, 8, task.output_size, seed=0)
    flow = task_gradient_flow(model, task, task.batch(16, np.random.default_rng(0)), label="rnn")
    assert flow.label == "rnn" and flow.steps == 30 and np.isfinite(flow.loss)
    assert flow.relative()[-1] == pytest.approx(1.0)
    assert flow.decades() == pytest.approx(np.log10(flow.h_norm[-1] / flow.h_norm[0]))
    assert flow.decades() > 1                         # an untrained small tanh RNN forgets fast


def test_underflow_is_reported_not_hidden():
    flow = GradientFlow("x", np.array([0.0, 1e-30, 1.0]), np.ones(3), np.ones(3))
    assert flow.decades() == float("inf")
    assert flow.decades_to_underflow() == pytest.approx(30)
    assert flow.decades_text() == "> 30 (underflow to 0)"
    assert GradientFlow("y", np.array([0.01, 1.0]), np.ones(2), np.ones(2)).decades_text() == "2.0"


def test_works_on_a_bare_layer_and_rejects_bidirectional():
    layer = crnn.GRU(2, 3, seed=0)
    x = np.ones((5, 2, 2), np.float32)
    dy = np.zeros((5, 2, 3), np.float32)
    dy[-1] = 1.0
    flow = gradient_flow(layer, x, dy)
    assert flow.h_norm.shape == (5,) and flow.h_norm[-1] == pytest.approx(np.sqrt(3), rel=1e-6)
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(crnn.GRU(2, 3, bidirectional=True), x, np.zeros((5, 2, 6), np.float32))


def test_plot_writes_a_file(tmp_path):
    pytest.importorskip("matplotlib")
    flows = [GradientFlow("a, init", np.array([1e-3, 1e-1, 1.0]), np.ones(3), np.ones(3)),
             GradientFlow("a, trained", np.array([0.5, 0.8, 1.0]), np.ones(3), np.ones(3))]
    path = tmp_path / "flow.png"
    fig = plot_gradient_flow(flows, path)
    assert path.stat().st_size > 1000 and fig is not None


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    flow = GradientFlow("a", np.ones(3), np.ones(3), np.ones(3))
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_gradient_flow(flow)
