"""Training pieces: Linear, losses, optimizers, clipping, truncated BPTT, Model, the loop.

Gradients are checked against central finite differences in float64; the
optimizers against hand-computed first steps and, where installed, against
torch.optim step for step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crnn.tasks import make_task
from crnn.training import (SGD, Adam, Linear, Model, RMSprop, clip_grad_norm, cross_entropy_loss,
                           global_norm, mask_from_lengths, mse_loss, tbptt_chunks, train, truncated_bptt)

EPS = 1e-6


def numeric_grad(f, array):
    """Central differences of the scalar f() w.r.t. every entry of array (perturbed in place)."""
    grad = np.zeros_like(array, dtype=np.float64)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + EPS
        up = f()
        array[i] = old - EPS
        down = f()
        array[i] = old
        grad[i] = (up - down) / (2 * EPS)
    return grad


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-8))


# ------------------------------------------------------------------ Linear
def test_linear_forward_and_gradients():
    rng = np.random.default_rng(0)
    lin = Linear(5, 3, dtype=np.float64, seed=1)
    x = rng.standard_normal((4, 2, 5))
    dy = rng.standard_normal((4, 2, 3))
    y, cache = lin.forward(x)
    np.testing.assert_allclose(y, x @ lin.parameters()["weight"].T + lin.parameters()["bias"])
    dx, grads = lin.backward(cache, dy)
    assert set(grads) == {"weight", "bias"}
    loss = lambda: float((lin(x) * dy).sum())                          # noqa: E731
    for name, p in lin.parameters().items():
        assert rel_err(grads[name], numeric_grad(loss, p)) < 1e-8, name
    assert rel_err(dx, numeric_grad(loss, x)) < 1e-8


def test_linear_init_is_seeded_and_torch_shaped():
    a, b = Linear(7, 2, seed=3), Linear(7, 2, seed=3)
    assert a.parameters()["weight"].shape == (2, 7) and a.parameters()["bias"].shape == (2,)
    assert a.parameters()["weight"].dtype == np.float32
    np.testing.assert_array_equal(a.parameters()["weight"], b.parameters()["weight"])
    assert np.abs(a.parameters()["weight"]).max() <= 1 / math.sqrt(7)
    assert "bias" not in Linear(3, 2, bias=False).parameters()


def test_linear_bad_input():
    lin = Linear(3, 2)
    with pytest.raises(ValueError, match="in_features"):
        lin(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        lin(np.zeros((4, 3), np.float64))
    with pytest.raises(ValueError, match="out_features"):
        Linear(3, 0)


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("masked", ["none", "mask", "lengths", "elementwise"])
def test_mse_gradient(masked):
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((5, 3, 2))
    target = rng.standard_normal((5, 3, 2))
    kwargs = {"none": {}, "mask": {"mask": rng.integers(0, 2, (5, 3)).astype(float)},
              "lengths": {"lengths": [5, 2, 0]},
              "elementwise": {"mask": rng.integers(0, 2, (5, 3, 2)).astype(float)}}[masked]
    loss, grad = mse_loss(pred, target, **kwargs)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    assert rel_err(grad, numeric_grad(lambda: mse_loss(pred, target, **kwargs)[0], pred)) < 1e-7


def test_mse_values():
    pred = np.array([[[1.0], [2.0]], [[3.0], [5.0]]])      # (T=2, B=2, 1)
    target = np.zeros_like(pred)
    assert mse_loss(pred, target)[0] == pytest.approx((1 + 4 + 9 + 25) / 4)
    assert mse_loss(pred, target, reduction="sum")[0] == pytest.approx(39)
    assert mse_loss(pred, target, lengths=[1, 2])[0] == pytest.approx((1 + 4 + 25) / 3)
    np.testing.assert_array_equal(mask_from_lengths([1, 2], 2), [[1, 1], [0, 1]])


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_gradient(masked):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3, 5)) * 3
    targets = rng.integers(0, 5, (4, 3))
    mask = rng.integers(0, 2, (4, 3)).astype(float) if masked else None
    loss, grad = cross_entropy_loss(logits, targets, mask=mask)
    assert rel_err(grad, numeric_grad(lambda: cross_entropy_loss(logits, targets, mask=mask)[0], logits)) < 1e-7


def test_cross_entropy_is_stable_and_matches_torch():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    loss, grad = cross_entropy_loss(logits, np.array([0, 2]))
    assert loss == pytest.approx(math.log(3) / 2) and np.all(np.isfinite(grad))
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item()
    assert cross_entropy_loss(x, t)[0] == pytest.approx(expected, rel=1e-12)


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="target"):
        mse_loss(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mask or lengths"):
        mse_loss(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), mask=np.ones((2, 3)), lengths=[1, 1, 1])
    with pytest.raises(ValueError, match="reduction"):
        mse_loss(np.zeros(2), np.zeros(2), reduction="max")
    with pytest.raises(TypeError, match="integer class"):
        cross_entropy_loss(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        cross_entropy_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="lengths"):
        mse_loss(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), lengths=[1, 5, 1])


# -------------------------------------------------------------- optimizers
def test_sgd_first_steps_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    g = {"w": np.array([0.5, 0.25])}
    opt = SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step(g)
    g1 = g["w"] + 0.01 * np.array([1.0, -2.0])                # buf = g1 on the first step
    expected = np.array([1.0, -2.0]) - 0.1 * g1
    np.testing.assert_allclose(p["w"], expected)
    opt.step(g)
    g2 = g["w"] + 0.01 * expected
    np.testing.assert_allclose(p["w"], expected - 0.1 * (0.9 * g1 + g2))
    np.testing.assert_array_equal(g["w"], [0.5, 0.25])         # grads are not modified


def test_adam_first_step_by_hand():
    p = {"w": np.array([1.0, -2.0, 3.0])}
    g = np.array([0.5, -0.001, 0.0])
    Adam(p, lr=0.01, eps=1e-8).step({"w": g})
    # After bias correction m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps).
    np.testing.assert_allclose(p["w"], [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8))


OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES)
def test_optimizers_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    ours = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in ours.values()]
    opt = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}[name](ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in ours.items()}
        opt.step(grads)
        for t, g in zip(theirs, grads.values()):
            t.grad = torch.tensor(g)
        topt.step()
    for t, v in zip(theirs, ours.values()):
        np.testing.assert_allclose(v, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_optimizer_updates_live_float32_arrays_in_place():
    model = Model.build("gru", 2, 4, 1, seed=0)
    live = model.parameters()["recurrent.weight_hh_l0"]
    before = live.copy()
    opt = Adam(model.parameters(), lr=0.1)
    opt.step({k: np.ones_like(v) for k, v in model.parameters().items()})
    assert live is model.recurrent.parameters()["weight_hh_l0"]
    assert live.dtype == np.float32
    np.testing.assert_allclose(live, before - 0.1, atol=1e-5)


def test_optimizer_errors():
    p = {"w": np.zeros(3)}
    with pytest.raises(KeyError, match="missing"):
        SGD(p).step({})
    with pytest.raises(ValueError, match="shape"):
        SGD(p).step({"w": np.zeros(4)})
    with pytest.raises(ValueError, match="lr"):
        Adam(p, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(1.0, 0.9))
    with pytest.raises(TypeError, match="params"):
        SGD([np.zeros(3)])


# ----------------------------------------------------------------- clipping
def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(grads) == pytest.approx(5.0)
    assert clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])         # under the limit: untouched
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)        # returns the norm before clipping
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0], rtol=1e-5)
    nan = {"a": np.array([np.nan, 1.0])}
    assert math.isnan(clip_grad_norm(nan, 1.0))
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, 0.0)


def test_clip_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grads = {"a": rng.standard_normal((4, 3)) * 3, "b": rng.standard_normal(5)}
    ts = [torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for v in grads.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g)
    expected = torch.nn.utils.clip_grad_norm_(ts, 2.0).item()
    assert clip_grad_norm(grads, 2.0) == pytest.approx(expected, rel=1e-12)
    for t, g in zip(ts, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------- Model
def test_model_parameters_and_gradients():
    rng = np.random.default_rng(6)
    model = Model.build("lstm", 3, 4, 2, dtype=np.float64, seed=0)
    names = list(model.parameters())
    assert names[0] == "recurrent.weight_ih_l0" and names[-2:] == ["readout.weight", "readout.bias"]
    assert model.num_parameters() == 4 * 4 * (3 + 4) + 2 * 16 + 2 * 4 + 2
    x = rng.standard_normal((5, 2, 3))
    dout = rng.standard_normal((5, 2, 2))
    out, _, tape = model.forward(x)
    np.testing.assert_allclose(out, model(x)[0])
    dx, _, grads = model.backward(tape, dout)
    assert list(grads) == names
    loss = lambda: float((model(x)[0] * dout).sum())                 # noqa: E731
    for name in ("recurrent.bias_hh_l0", "readout.weight"):
        assert rel_err(grads[name], numeric_grad(loss, model.parameters()[name])) < 1e-6, name
    assert rel_err(dx, numeric_grad(loss, x)) < 1e-6


def test_model_forget_bias():
    model = Model.build("lstm", 2, 3, 1, num_layers=2, seed=0, forget_bias=1.0)
    for layer in (0, 1):
        total = model.parameters()[f"recurrent.bias_ih_l{layer}"] + model.parameters()[f"recurrent.bias_hh_l{layer}"]
        np.testing.assert_allclose(total[3:6], 1.0)
        assert np.abs(total[:3]).max() < 1.0                   # the other gates keep their init
    with pytest.raises(ValueError, match="forget_bias"):
        Model.build("gru", 2, 3, 1, forget_bias=1.0)


def test_model_state_dict_round_trip():
    a, b = Model.build("rnn", 2, 3, 1, seed=0), Model.build("rnn", 2, 3, 1, seed=1)
    b.load_state_dict(a.state_dict())
    x = np.ones((4, 1, 2), np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    with pytest.raises(ValueError, match="cell"):
        Model.build("transformer", 2, 3, 1)


# -------------------------------------------------------------- truncated BPTT
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_truncated_bptt_with_k_at_least_T_is_full_bptt(cell):
    rng = np.random.default_rng(7)
    model = Model.build(cell, 3, 5, 2, dtype=np.float64, seed=1)
    x = rng.standard_normal((9, 4, 3))
    target = rng.standard_normal((9, 4, 2))
    out, state_n, tape = model.forward(x)
    loss, dout = mse_loss(out, target)
    _, _, full = model.backward(tape, dout)
    for k in (9, 50):
        t_loss, t_grads, t_state = truncated_bptt(model, x, target, mse_loss, k)
        assert t_loss == pytest.approx(loss, rel=1e-12)
        for name in full:
            np.testing.assert_allclose(t_grads[name], full[name], rtol=1e-10, atol=1e-14)
        for a, b in zip(t_state if cell == "lstm" else (t_state,), state_n if cell == "lstm" else (state_n,)):
            np.testing.assert_allclose(a, b)
    chunks = list(tbptt_chunks(model, x, target, mse_loss, 9))
    assert len(chunks) == 1 and chunks[0].loss == pytest.approx(loss)


def test_truncated_bptt_cuts_the_gradient_but_not_the_forward():
    rng = np.random.default_rng(8)
    model = Model.build("gru", 2, 4, 3, dtype=np.float64, seed=2)
    x = rng.standard_normal((10, 3, 2))
    targets = rng.integers(0, 3, (10, 3))
    mask = rng.integers(0, 2, (10, 3)).astype(float)
    out, _, tape = model.forward(x)
    loss, dout = cross_entropy_loss(out, targets, mask=mask)
    _, _, full = model.backward(tape, dout)
    t_loss, t_grads, _ = truncated_bptt(model, x, targets, cross_entropy_loss, 3, mask=mask)
    assert t_loss == pytest.approx(loss, rel=1e-12)            # the state is carried: same forward
    assert not np.allclose(t_grads["recurrent.weight_hh_l0"], full["recurrent.weight_hh_l0"])
    # The readout sees no recurrence: its gradient is exact whatever k.
    np.testing.assert_allclose(t_grads["readout.weight"], full["readout.weight"], rtol=1e-10)
    # k = 3 by hand: each chunk's own backward, with the gradient stopped at its start.
    state, expected = None, {k: np.zeros_like(v) for k, v in full.items()}
    for start in range(0, 10, 3):
        o, state_next, tp = model.forward(x[start:start + 3], state)
        _, d = cross_entropy_loss(o, targets[start:start + 3], mask=mask[start:start + 3], reduction="sum")
        for name, g in model.backward(tp, d / mask.sum())[2].items():
            expected[name] += g
        state = state_next
    for name in full:
        np.testing.assert_allclose(t_grads[name], expected[name], rtol=1e-10, atol=1e-14)
    chunks = list(tbptt_chunks(model, x, targets, cross_entropy_loss, 3, mask=mask))
    assert [(c.start, c.stop) for c in chunks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    with pytest.raises(ValueError, match="k must be"):
        truncated_bptt(model, x, targets, cross_entropy_loss, 0)


# --------------------------------------------------------------------- loop
def test_short_training_run_learns_and_is_reproducible():
    task = make_task("adding", length=6, seed=0)
    runs = []
    for _ in range(2):
        model = Model.build("gru", task.input_size, 16, task.output_size, seed=0)
        runs.append(train(model, task, 150, batch_size=32, lr=1e-2, clip=1.0, seed=0, eval_every=50))
    h = runs[0]
    assert h.eval_steps == [0, 50, 100, 150]
    assert h.test_loss[-1] < 0.5 * task.baseline_loss < h.test_loss[0]
    assert runs[0].train_loss == runs[1].train_loss and runs[0].test_loss == runs[1].test_loss
    assert h.num_parameters == model.num_parameters() and h.seconds_per_step > 0


def test_train_rejects_bad_arguments():
    task = make_task("adding", length=4)
    model = Model.build("rnn", 2, 3, 1, seed=0)
    with pytest.raises(ValueError, match="steps"):
        train(model, task, 0)
    with pytest.raises(TypeError, match="batch_size"):
        train(model, task, 1, batch_size=2.5)
