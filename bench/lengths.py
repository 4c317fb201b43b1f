"""The "lengths" section: a batch of sequences of different lengths.

The medium shape (T=100, B=32, I=128, H=256, float32), one layer, with
lengths drawn uniformly from [1, T] (seeded; one sequence has all T steps),
in the caller's order. Contenders:
    crnn C            layer(x, lengths=...) (inference), forward + backward
                      (training): the layer runs the batch longest first and
                      skips the finished sequences' recurrent products, and
                      in backward their rows of dx and the weight gradients
    crnn C, padded    the same batch without lengths: every sequence runs all
                      T steps, what the lengths save is the difference
    torch, packed     pack_padded_sequence(x, lengths, enforce_sorted=False),
                      the module on the packed batch, pad_packed_sequence back
                      (training: autograd through all three)
Each is verified against crnn's NumPy reference with the same lengths (y and
the final state; training also dx and the weight gradients) before timing.
ONNX Runtime is left out (its RNN operators' sequence_lens input is not in
the ONNX graphs the bench builds). No targets: the issue's grid has no such row.
"""

from __future__ import annotations

import numpy as np

from .contenders import TOLERANCE, Prepared, Skip, VerificationError, max_relative_error, torch_training_call

SHAPE = dict(T=100, B=32, I=128, H=256)
CELLS = ("rnn_tanh", "lstm", "gru")
MODES = ("infer", "train")
NAMES = {"crnn_c": "crnn C", "crnn_c_padded": "crnn C, padded", "torch_packed": "torch, packed"}


def batch(seed: int = 0):
    """x (T, B, I), dy (T, B, H) and lengths (B,) uniform in [1, T], one of them T."""
    T, B, I, H = SHAPE["T"], SHAPE["B"], SHAPE["I"], SHAPE["H"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T
    return x, dy, lengths


def _layer(cell):
    import crnn
    I, H = SHAPE["I"], SHAPE["H"]
    if cell == "rnn_tanh":
        return crnn.RNN(I, H, nonlinearity="tanh", seed=0)
    return (crnn.LSTM if cell == "lstm" else crnn.GRU)(I, H, seed=0)


def _state_out(state):
    return {"h_n": state[0], "c_n": state[1]} if isinstance(state, tuple) else {"h_n": state}


def build_crnn(cell, mode, x, dy, lengths, backend="c", padded=False):
    import crnn
    layer = _layer(cell)
    L = None if padded else lengths

    def ctx():
        return crnn.use_backend(backend)
    if mode == "infer":
        def outputs():
            with ctx():
                y, state = layer(x, lengths=L)
            return {"y": y, **_state_out(state)}
        return layer, Prepared("crnn_c_padded" if padded else "crnn_c", lambda: layer(x, lengths=L), outputs, ctx)

    def train():
        y, state, tape = layer.forward(x, lengths=L)
        return y, state, layer.backward(tape, dy)

    def outputs():
        with ctx():
            y, state, (dx, _, grads) = train()
        return {"y": y, **_state_out(state), "dx": dx, **{"grad:" + k: v for k, v in grads.items()}}
    return layer, Prepared("crnn_c_padded" if padded else "crnn_c", train, outputs, ctx)


def build_torch_packed(cell, mode, x, dy, lengths, params):
    try:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    except ImportError:
        raise Skip("torch not installed") from None
    I, H, T = SHAPE["I"], SHAPE["H"], SHAPE["T"]
    if cell == "rnn_tanh":
        mod = torch.nn.RNN(I, H, nonlinearity="tanh")
    else:
        mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    mod.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    lt = torch.from_numpy(np.asarray(lengths, dtype=np.int64))

    def run(xt):
        out, state = mod(pack_padded_sequence(xt, lt, enforce_sorted=False))
        return pad_packed_sequence(out, total_length=T)[0], state

    def state_np(state):
        return (state[0].detach().numpy(), state[1].detach().numpy()) if cell == "lstm" \
            else state.detach().numpy()
    if mode == "infer":
        xt = torch.from_numpy(x)

        def outputs():
            with torch.inference_mode():
                y, state = run(xt)
            return {"y": y.numpy(), **_state_out(state_np(state))}
        return Prepared("torch_packed", lambda: run(xt), outputs, torch.inference_mode)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    train = torch_training_call(mod, run, xt, torch.from_numpy(dy))

    def outputs():
        y, state = train()
        out = {"y": y.detach().numpy(), **_state_out(state_np(state)), "dx": xt.grad.numpy().copy()}
        out.update({"grad:" + k: p.grad.numpy().copy() for k, p in mod.named_parameters()})
        return out
    return Prepared("torch_packed", train, outputs)


def _check(name, got, ref, key):
    for k, want in ref.items():
        if k in got:
            err = max_relative_error(np.asarray(got[k]), np.asarray(want))
            if not err <= TOLERANCE["float32"]:
                raise VerificationError(f"{key}: {NAMES.get(name, name)} disagrees with crnn NumPy on {k!r}: "
                                        f"max relative error {err:.3g}")


def prepared_for(cell, mode, skip=()):
    """The contenders of one row, each verified: [Prepared], {name: note} for those skipped."""
    x, dy, lengths = batch()
    key = f"lengths/{cell}/{mode}"
    layer, ours = build_crnn(cell, mode, x, dy, lengths)
    params = {k: v.copy() for k, v in layer.state_dict().items()}
    _, ref = build_crnn(cell, mode, x, dy, lengths, backend="numpy")
    ref_out = ref.outputs()
    prepared, notes = [], {}
    candidates = [("crnn_c", lambda: ours),
                  ("crnn_c_padded", lambda: build_crnn(cell, mode, x, dy, lengths, padded=True)[1]),
                  ("torch_packed", lambda: build_torch_packed(cell, mode, x, dy, lengths, params))]
    for name, make in candidates:
        if name in skip:
            continue
        try:
            prep = make()
        except Skip as s:
            notes[name] = str(s)
            continue
        if name != "crnn_c_padded":        # the padded run computes something else past each length
            _check(name, prep.outputs(), ref_out, key)
        prepared.append(prep)
    return prepared, notes, float(lengths.mean())
