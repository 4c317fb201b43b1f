"""Every C entry point against its NumPy twin, on random shapes and values.

Hypothesis draws the shapes, lengths, directions and options; both backends
run the same inputs; outputs, final states and every gradient must agree to
~1e-12 (float64) or ~1e-5 (float32) relative to the largest reference value.
float32 results are held against the reference computed in float64 on the
same inputs: a float32 reference has rounding errors of its own, and on
ill-conditioned values (long chains with H=1) the two errors add up.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crnn
from crnn import reference

if "c" not in crnn.available_backends():
    pytest.skip("the C extension is not installed (CRNN_NO_EXT)", allow_module_level=True)

from crnn import _c_kernels  # noqa: E402

# Float32 against the float64 oracle: a dx sums 4H float32 products that can
# cancel (LSTM T=1, B=4, I=1, H=7, one valid row: 1.4e-5 of its scale).
TOL = {np.float32: 3e-5, np.float64: 1e-12}
# The scale an error is measured against never drops below FLOOR: inputs and
# weights are O(1), so a gradient that cancels down to 1e-4 (a single dh0
# with H=1, say) still carries the rounding errors of its O(0.1) terms
# (float64: LSTM T=6, B=1, H=1 without bias has a dc0 of 1.4e-5 off by 4e-17).
FLOOR = {np.float32: 1e-2, np.float64: 1e-4}


def close(a, b, rtol, what):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    scale = max(float(np.abs(b).max(initial=0)), FLOOR[b.dtype.type])
    err = float(np.abs(a - b).max(initial=0)) / scale
    assert err <= rtol, f"{what}: relative error {err:.3g}"


@st.composite
def problems(draw):
    cell = draw(st.sampled_from(["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"]))
    T, B = draw(st.integers(1, 9)), draw(st.integers(1, 5))
    I, H = draw(st.integers(1, 7)), draw(st.integers(1 if cell != "lstm_proj" else 2, 9))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    lengths = None
    if draw(st.booleans()):
        lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)), dtype=np.int64)
    return dict(cell=cell, T=T, B=B, I=I, H=H, dtype=dtype, lengths=lengths,
                reverse=draw(st.booleans()), bias=draw(st.booleans()) or cell == "rnn_relu",
                with_state=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
                P=draw(st.integers(1, H - 1)) if cell == "lstm_proj" else H)


def run(kernels, p, training=True, exact=False):
    """Forward (and backward) of one cell on one backend, from p's seed.

    exact=True computes in float64 on the same (rounded) inputs and returns
    results rounded back to p's dtype: the oracle for float32, whose own
    rounding errors would otherwise add to the C core's.
    """
    rng = np.random.default_rng(p["seed"])
    dt, T, B, I, H, P = p["dtype"], p["T"], p["B"], p["I"], p["H"], p["P"]
    G = {"rnn": 1, "lst": 4, "gru": 3}[p["cell"][:3]]

    def r(*shape):
        values = rng.uniform(-1, 1, size=shape).astype(dt)
        return values.astype(np.float64) if exact else values

    # weight_scale, a power of two, keeps a wide layer's recurrence from amplifying rounding
    ws = p.get("weight_scale", 1)
    x, W_ih, W_hh = r(T, B, I), r(G * H, I) * ws, r(G * H, P) * ws
    b_ih, b_hh = (r(G * H), r(G * H)) if p["bias"] else (None, None)
    h0 = r(B, P) if p["with_state"] else np.zeros((B, P), dt)
    c0 = r(B, H) if p["with_state"] else np.zeros((B, H), dt)
    W_hr = r(P, H) * ws if p["cell"] == "lstm_proj" else None
    dy, dh, dc = r(T, B, P), r(B, P), r(B, H)
    opts = dict(lengths=p["lengths"], reverse=p["reverse"], training=training)
    if p["cell"].startswith("rnn"):
        y, h, cache = kernels.rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity=p["cell"][4:], **opts)
        out = dict(y=y, h=h)
        if training:
            dx, dh0, g = kernels.rnn_backward(cache, dy, dh)
            out.update(dx=dx, dh0=dh0, **{"d" + k: v for k, v in g.items()})
    elif p["cell"].startswith("lstm"):
        y, h, c, cache = kernels.lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, **opts)
        out = dict(y=y, h=h, c=c)
        if training:
            dx, dh0, dc0, g = kernels.lstm_backward(cache, dy, dh, dc)
            out.update(dx=dx, dh0=dh0, dc0=dc0, **{"d" + k: v for k, v in g.items()})
    else:
        y, h, cache = kernels.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, **opts)
        out = dict(y=y, h=h)
        if training:
            dx, dh0, g = kernels.gru_backward(cache, dy, dh)
            out.update(dx=dx, dh0=dh0, **{"d" + k: v for k, v in g.items()})
    return {k: None if v is None else v.astype(dt) for k, v in out.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_training_forward_and_backward_match_reference(p):
    ours, ref = run(_c_kernels, p), run(reference, p, exact=True)
    assert ours.keys() == ref.keys()
    for name in ref:
        if ref[name] is None:
            assert ours[name] is None, name
        else:
            close(ours[name], ref[name], TOL[p["dtype"]], f"{name} {p}")


@settings(max_examples=150, deadline=None)
@given(problems())
def test_inference_forward_matches_reference(p):
    ours, ref = run(_c_kernels, p, training=False), run(reference, p, training=False, exact=True)
    for name in ref:
        close(ours[name], ref[name], TOL[p["dtype"]], f"{name} {p}")


def test_inference_runs_in_chunks_longer_than_one():
    """A long sequence crosses the C core's chunk boundary of the input product."""
    p = dict(cell="lstm", T=300, B=3, I=4, H=5, P=5, dtype=np.float64, lengths=np.array([300, 177, 1]),
             reverse=True, bias=True, with_state=True, seed=1)
    ours, ref = run(_c_kernels, p, training=False), run(reference, p, training=False)
    for name in ref:
        close(ours[name], ref[name], 1e-12, name)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell, H, P", [("rnn_tanh", 256, 256), ("lstm", 64, 64),
                                        ("lstm_proj", 64, 16), ("gru", 86, 86)])
def test_backward_runs_in_chunks_of_steps(cell, H, P, reverse):
    """Backward computes dx and the weight gradients a chunk of steps at a time.

    With B = 32 and G*H >= 256 a chunk holds 8 steps, so T = 23 (prime) gives
    three chunks, the last one partial; lengths end inside, at and between
    chunk boundaries, and one sequence is empty.
    """
    T, B, I = 23, 32, 3
    sizes = {"rnn": lambda steps: _c_kernels.extension.rnn_sizes(steps, B, I, H),
             "lst": lambda steps: _c_kernels.extension.lstm_sizes(steps, B, I, H, P),
             "gru": lambda steps: _c_kernels.extension.gru_sizes(steps, B, I, H)}[cell[:3]]
    assert sizes(T)[2] == sizes(4 * T)[2]     # the backward workspace does not grow with T
    lengths = np.resize(np.array([23, 0, 8, 9, 16, 17, 1, 22, 7, 15], dtype=np.int64), B)
    p = dict(cell=cell, T=T, B=B, I=I, H=H, P=P, dtype=np.float64, lengths=lengths,
             reverse=reverse, bias=True, with_state=True, seed=3, weight_scale=1 / 16)
    ours, ref = run(_c_kernels, p), run(reference, p)
    for name in ref:
        if ref[name] is not None:
            close(ours[name], ref[name], 1e-12, f"{name} {cell} reverse={reverse}")


def test_c_backend_is_active_after_a_normal_install():
    assert crnn.backend() == "c"
    assert crnn._backend.extension().blas_info()["source"] in ("numpy", "vendored")


# The packed recurrent product (src/rgemm.c) runs for T >= 4 and small
# batches; these shapes reach what the random ones above do not: the
# matrix-vector tiles (1-2 rows against 4 panels of 16 columns, N >= 64),
# row blocks of 6 and 8 with tails, and batches past each dtype's crossover
# (float64 64, float32 128), which go back to the BLAS.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell, B, H", [("lstm", 1, 21), ("lstm", 2, 21), ("gru", 1, 30), ("rnn_tanh", 1, 70),
                                        ("lstm", 7, 21), ("gru", 13, 30), ("rnn_tanh", 64, 70),
                                        ("lstm", 65, 9), ("rnn_tanh", 130, 5)])
def test_packed_recurrent_product_shapes_match_reference(dtype, cell, B, H):
    T = 5
    p = dict(cell=cell, T=T, B=B, I=3, H=H, P=H, dtype=dtype, reverse=B % 2 == 1, bias=True,
             with_state=True, seed=B + H, lengths=np.arange(B, dtype=np.int64) % (T + 1))
    for training in (False, True):
        ours, ref = run(_c_kernels, p, training=training), run(reference, p, training=training, exact=True)
        for name in ref:
            if ref[name] is not None:
                close(ours[name], ref[name], TOL[dtype], f"{name} {p}")
