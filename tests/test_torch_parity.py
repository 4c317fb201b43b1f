"""PyTorch as an outside witness: outputs, final states and every gradient.

A torch module and a crnn layer share one state_dict (torch's, loaded as it
is); both run the same inputs, and torch autograd supplies the gradients.
Variable lengths go through torch's packed sequences.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from _layers import state_arrays
from conftest import TOLERANCE, assert_close

torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_module(cell, I, H, dtype, proj_size=0, **options):
    tdt = TORCH_DTYPE[np.dtype(dtype)]
    if cell.startswith("rnn"):
        return torch.nn.RNN(I, H, nonlinearity=cell[4:], dtype=tdt, **options)
    if cell == "lstm":
        return torch.nn.LSTM(I, H, proj_size=proj_size, dtype=tdt, **options)
    return torch.nn.GRU(I, H, dtype=tdt, **options)


def crnn_layer(cell, I, H, dtype, proj_size=0, **options):
    if cell.startswith("rnn"):
        return crnn.RNN(I, H, nonlinearity=cell[4:], dtype=dtype, **options)
    if cell == "lstm":
        return crnn.LSTM(I, H, proj_size=proj_size, dtype=dtype, **options)
    return crnn.GRU(I, H, dtype=dtype, **options)


def random_config(rng):
    cell = str(rng.choice(["rnn_tanh", "rnn_relu", "lstm", "gru"]))
    H = int(rng.integers(1, 9))
    cfg = dict(cell=cell, I=int(rng.integers(1, 7)), H=H, T=int(rng.integers(1, 8)),
               B=int(rng.integers(1, 5)), num_layers=int(rng.integers(1, 4)),
               bidirectional=bool(rng.integers(2)), batch_first=bool(rng.integers(2)),
               bias=bool(rng.random() < 0.8), use_lengths=bool(rng.integers(2)),
               unbatched=bool(rng.random() < 0.15), with_state=bool(rng.random() < 0.8))
    if cell == "lstm" and H > 1 and rng.random() < 0.5:
        cfg["proj_size"] = int(rng.integers(1, H))
    if cfg["unbatched"]:
        cfg["use_lengths"] = False
    return cfg


def run_both(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    cell, I, H, T, B = cfg["cell"], cfg["I"], cfg["H"], cfg["T"], cfg["B"]
    options = dict(num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"],
                   batch_first=cfg["batch_first"], bias=cfg["bias"])
    proj = cfg.get("proj_size", 0)
    torch.manual_seed(seed)
    tmod = torch_module(cell, I, H, dtype, proj_size=proj, **options)
    with torch.no_grad():                       # non-zero, larger-than-default parameters
        for p in tmod.parameters():
            p.uniform_(-0.6, 0.6)
    layer = crnn_layer(cell, I, H, dtype, proj_size=proj, **options)
    layer.load_state_dict(tmod.state_dict())

    D, L, P = 2 if cfg["bidirectional"] else 1, cfg["num_layers"], proj or H
    unbatched = cfg["unbatched"]
    x_shape = (T, I) if unbatched else ((B, T, I) if cfg["batch_first"] else (T, B, I))
    x = rng.standard_normal(x_shape).astype(dtype)
    lead = (D * L,) + (() if unbatched else (B,))
    state = None
    if cfg["with_state"]:
        h0 = rng.standard_normal(lead + (P,)).astype(dtype)
        state = (h0, rng.standard_normal(lead + (H,)).astype(dtype)) if cell == "lstm" else h0
    lengths = None
    if cfg["use_lengths"]:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T             # at least one full-length sequence

    # --- crnn
    x_before = x.copy()
    y, state_n, tape = layer.forward(x, state, lengths=lengths)
    dy = rng.standard_normal(y.shape).astype(dtype)
    if lengths is not None:                      # torch's padded output ignores gradients past a length
        steps = np.arange(T)[None, :] if cfg["batch_first"] else np.arange(T)[:, None]
        valid = steps < (lengths[:, None] if cfg["batch_first"] else lengths[None, :])
        dy = dy * valid[..., None]
    dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state_arrays(state_n))
    dx, dstate0, grads = layer.backward(tape, dy, dstate if len(dstate) > 1 else dstate[0])
    assert np.array_equal(x, x_before)

    # --- torch
    tx = torch.tensor(x, requires_grad=True)
    tstate = None
    if state is not None:
        tstate = tuple(torch.tensor(s, requires_grad=True) for s in state_arrays(state))
    tin = tx
    if lengths is not None:
        tin = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=cfg["batch_first"],
                                                      enforce_sorted=False)
    hx = None if tstate is None else (tstate if cell == "lstm" else tstate[0])
    tout, tstate_n = tmod(tin, hx)
    if lengths is not None:
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tout, batch_first=cfg["batch_first"], total_length=T)
    tstate_n = tstate_n if isinstance(tstate_n, tuple) else (tstate_n,)
    loss = (tout * torch.tensor(dy)).sum() + sum((a * torch.tensor(b)).sum() for a, b in zip(tstate_n, dstate))
    loss.backward()
    return dict(y=(y, tout), state_n=(state_arrays(state_n), tstate_n), dx=(dx, tx.grad),
                dstate0=(state_arrays(dstate0), None if tstate is None else tuple(s.grad for s in tstate)),
                grads=(grads, {n: p.grad for n, p in tmod.named_parameters()}))


def to_np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
def test_random_configuration_matches_torch(each_backend, dtype, seed):
    cfg = random_config(np.random.default_rng(1000 + seed))
    fwd_tol, grad_tol = TOLERANCE[np.dtype(dtype)]
    out = run_both(cfg, dtype, seed)
    assert_close(out["y"][0], to_np(out["y"][1]), fwd_tol, f"y {cfg}")
    for k, (a, b) in enumerate(zip(*out["state_n"])):
        assert_close(a, to_np(b), fwd_tol, f"state_n[{k}] {cfg}")
    assert_close(out["dx"][0], to_np(out["dx"][1]), grad_tol, f"dx {cfg}")
    if out["dstate0"][1] is not None:
        for k, (a, b) in enumerate(zip(*out["dstate0"])):
            assert_close(a, to_np(b), grad_tol, f"dstate0[{k}] {cfg}")
    ours, theirs = out["grads"]
    assert list(ours) == list(theirs)
    for name in ours:
        assert_close(ours[name], to_np(theirs[name]), grad_tol, f"{name} {cfg}")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_default_initialisation_matches_torch_distribution(cell):
    """Same names, shapes and U(-1/sqrt(H), 1/sqrt(H)) range as torch's default init."""
    layer = crnn_layer(cell, 5, 16, np.float32, num_layers=2, bidirectional=True)
    tmod = torch_module(cell, 5, 16, np.float32, num_layers=2, bidirectional=True)
    ours, theirs = layer.state_dict(), tmod.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name].shape == tuple(theirs[name].shape)
        assert np.abs(ours[name]).max() <= 0.25
    everything = np.concatenate([v.ravel() for v in ours.values()])
    assert np.abs(everything).max() > 0.24             # fills the whole range
    assert abs(everything.mean()) < 0.02


def test_seed_makes_parameters_reproducible():
    a, b, c = crnn.LSTM(3, 4, seed=7), crnn.LSTM(3, 4, seed=7), crnn.LSTM(3, 4, seed=8)
    for name in a.parameters():
        assert np.array_equal(a.parameters()[name], b.parameters()[name])
    assert not np.array_equal(a.parameters()["weight_ih_l0"], c.parameters()["weight_ih_l0"])


NAMED_CONFIGS = {
    "lstm_proj_bidir_lengths": dict(cell="lstm", I=3, H=5, proj_size=2, T=6, B=4, num_layers=2, bidirectional=True,
                                    batch_first=False, bias=True, use_lengths=True, unbatched=False, with_state=True),
    "lstm_proj_batch_first": dict(cell="lstm", I=1, H=4, proj_size=3, T=5, B=1, num_layers=1, bidirectional=False,
                                  batch_first=True, bias=False, use_lengths=False, unbatched=False, with_state=True),
    "gru_unbatched_bidir": dict(cell="gru", I=2, H=1, T=1, B=1, num_layers=2, bidirectional=True,
                                batch_first=False, bias=True, use_lengths=False, unbatched=True, with_state=True),
    "rnn_relu_lengths_deep": dict(cell="rnn_relu", I=4, H=6, T=7, B=5, num_layers=3, bidirectional=True,
                                  batch_first=True, bias=True, use_lengths=True, unbatched=False, with_state=False),
    "lstm_size_one": dict(cell="lstm", I=1, H=1, T=1, B=1, num_layers=1, bidirectional=False,
                          batch_first=False, bias=True, use_lengths=True, unbatched=False, with_state=True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMED_CONFIGS)
def test_named_configuration_matches_torch(each_backend, dtype, name):
    cfg = NAMED_CONFIGS[name]
    fwd_tol, grad_tol = TOLERANCE[np.dtype(dtype)]
    out = run_both(cfg, dtype, seed=3)
    assert_close(out["y"][0], to_np(out["y"][1]), fwd_tol, "y")
    for k, (a, b) in enumerate(zip(*out["state_n"])):
        assert_close(a, to_np(b), fwd_tol, f"state_n[{k}]")
    assert_close(out["dx"][0], to_np(out["dx"][1]), grad_tol, "dx")
    if out["dstate0"][1] is not None:
        for k, (a, b) in enumerate(zip(*out["dstate0"])):
            assert_close(a, to_np(b), grad_tol, f"dstate0[{k}]")
    ours, theirs = out["grads"]
    for name_ in ours:
        assert_close(ours[name_], to_np(theirs[name_]), grad_tol, name_)
