"""Write src/test/golden.txt: inputs and NumPy-reference outputs for the C test.

    python src/test/make_golden.py            # rewrites src/test/golden.txt
    make -C src golden                        # the same

The oracle is crnn/reference (float64). Every input is rounded to a float32
value first, so the same file checks the C core's float64 kernels (against
~1e-12) and its float32 kernels (against ~1e-5): for float32 the C test
converts the inputs exactly and compares with these float64 results.

Format, one token stream, whitespace-separated:
    case <name> <cell>                 cell: rnn | lstm | gru
    int <key> <value>                  T B I H P reverse relu chunk saturated
    array <name> <count> <values...>   absent array = NULL in C
    end
Shapes are those of the reference (x (T, B, I), W_ih (G*H, I), ...), flat
in C order. Values are printed with repr(), which round-trips doubles.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Import the reference on its own, not the crnn package (whose __init__ may
# load a compiled extension): crnn/reference is a self-contained package.
sys.path.insert(0, os.path.join(ROOT, "crnn"))
import reference as ref  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# name, cell, sizes and options. Lengths mix full, short and zero-length
# sequences; chunk > 0 sets the C core's chunk of steps (inference's input
# product, backward's dx and weight gradients).
CASES = [
    dict(name="rnn_tanh", cell="rnn", T=5, B=4, I=3, H=4, lengths=[5, 2, 0, 4]),
    dict(name="rnn_tanh_reverse_chunked", cell="rnn", T=5, B=4, I=3, H=4, reverse=1,
         chunk=2, lengths=[5, 2, 0, 4]),
    dict(name="rnn_relu_nobias", cell="rnn", T=5, B=3, I=3, H=4, relu=1, bias=False, chunk=3),
    dict(name="rnn_relu_reverse", cell="rnn", T=6, B=3, I=2, H=5, relu=1, reverse=1,
         lengths=[6, 0, 3]),
    dict(name="rnn_tiny", cell="rnn", T=1, B=1, I=1, H=1, lengths=[1]),
    dict(name="lstm", cell="lstm", T=5, B=4, I=3, H=4, lengths=[5, 2, 0, 4]),
    dict(name="lstm_reverse_nobias", cell="lstm", T=5, B=4, I=3, H=4, reverse=1, bias=False,
         chunk=2, lengths=[5, 2, 0, 4], zero_h0=True),
    dict(name="lstm_long_chunked_reverse", cell="lstm", T=9, B=2, I=2, H=3, reverse=1,
         chunk=4, lengths=[9, 6]),
    dict(name="lstm_proj", cell="lstm", T=5, B=4, I=3, H=4, P=3, chunk=2, lengths=[5, 2, 0, 4]),
    dict(name="lstm_proj_reverse", cell="lstm", T=5, B=3, I=3, H=4, P=2, reverse=1,
         lengths=[3, 5, 0], no_dstate=True),
    dict(name="lstm_tiny", cell="lstm", T=1, B=1, I=1, H=1),
    dict(name="lstm_proj_tiny", cell="lstm", T=2, B=1, I=1, H=2, P=1, lengths=[2]),
    dict(name="gru", cell="gru", T=5, B=4, I=3, H=4, lengths=[5, 2, 0, 4]),
    dict(name="gru_reverse_nobias", cell="gru", T=5, B=4, I=3, H=4, reverse=1, bias=False,
         chunk=3, lengths=[5, 2, 0, 4], no_dstate=True),
    dict(name="gru_full_zero_h0", cell="gru", T=4, B=2, I=3, H=3, zero_h0=True),
    dict(name="gru_tiny", cell="gru", T=1, B=1, I=1, H=1, lengths=[0]),
    # Inputs x60: pre-activations up to ~+-100, where exp overflows unless
    # sigmoid is written for it. Gradients there are ill-conditioned (tanh' =
    # 1 - y*y from a saved y near 1), so the C test checks them on the scale
    # of the O(1) upstream gradient (int saturated 1).
    dict(name="rnn_saturated", cell="rnn", T=3, B=2, I=3, H=3, x_scale=60.0),
    dict(name="lstm_saturated", cell="lstm", T=3, B=2, I=3, H=3, x_scale=60.0, lengths=[3, 2]),
    dict(name="gru_saturated", cell="gru", T=3, B=2, I=3, H=3, x_scale=60.0, reverse=1),
]


def f32(a):
    """Round to float32 values, keep float64 storage."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_case(rng, c):
    cell, T, B, I, H = c["cell"], c["T"], c["B"], c["I"], c["H"]
    P = c.get("P", 0) or H
    G = GATES[cell]
    rev, relu, bias = bool(c.get("reverse", 0)), bool(c.get("relu", 0)), c.get("bias", True)
    lengths = np.array(c["lengths"], dtype=np.int64) if "lengths" in c else None

    # Non-zero everything, large enough to reach saturation and relu's off side.
    arr = {}
    arr["x"] = f32(c.get("x_scale", 1.0) * rng.standard_normal((T, B, I)))
    arr["W_ih"] = f32(rng.uniform(-0.7, 0.7, (G * H, I)))
    arr["W_hh"] = f32(rng.uniform(-0.7, 0.7, (G * H, P)))
    if bias:
        arr["b_ih"] = f32(rng.uniform(-0.5, 0.5, G * H))
        arr["b_hh"] = f32(rng.uniform(-0.5, 0.5, G * H))
    if c.get("P", 0):
        arr["W_hr"] = f32(rng.uniform(-0.7, 0.7, (P, H)))
    if not c.get("zero_h0"):
        arr["h0"] = f32(rng.uniform(-0.8, 0.8, (B, P)))
        if cell == "lstm":
            arr["c0"] = f32(rng.uniform(-0.8, 0.8, (B, H)))
    if lengths is not None:
        arr["lengths"] = lengths.astype(np.float64)
    arr["dy"] = f32(rng.standard_normal((T, B, P)))
    if not c.get("no_dstate"):
        arr["dh_n"] = f32(rng.standard_normal((B, P)))
        if cell == "lstm":
            arr["dc_n"] = f32(rng.standard_normal((B, H)))

    h0 = arr.get("h0", np.zeros((B, P)))
    c0 = arr.get("c0", np.zeros((B, H)))
    dh_n = arr.get("dh_n", np.zeros((B, P)))
    dc_n = arr.get("dc_n", np.zeros((B, H)))
    b_ih, b_hh = arr.get("b_ih"), arr.get("b_hh")
    kw = dict(lengths=lengths, reverse=rev)
    if cell == "rnn":
        y, h_n, cache = ref.rnn_forward(arr["x"], h0, arr["W_ih"], arr["W_hh"], b_ih, b_hh,
                                        nonlinearity="relu" if relu else "tanh", **kw)
        dx, dh0, grads = ref.rnn_backward(cache, arr["dy"], dh_n)
        out = dict(y=y, h_n=h_n, dx=dx, dh0=dh0)
    elif cell == "lstm":
        y, h_n, c_n, cache = ref.lstm_forward(arr["x"], h0, c0, arr["W_ih"], arr["W_hh"],
                                              b_ih, b_hh, arr.get("W_hr"), **kw)
        dx, dh0, dc0, grads = ref.lstm_backward(cache, arr["dy"], dh_n, dc_n)
        out = dict(y=y, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    else:
        y, h_n, cache = ref.gru_forward(arr["x"], h0, arr["W_ih"], arr["W_hh"], b_ih, b_hh, **kw)
        dx, dh0, grads = ref.gru_backward(cache, arr["dy"], dh_n)
        out = dict(y=y, h_n=h_n, dx=dx, dh0=dh0)
    for name, g in grads.items():
        if g is not None:
            out["d" + name] = g
    # Gradients exist for every parameter given; a bias-free layer has none.
    ints = dict(T=T, B=B, I=I, H=H, P=c.get("P", 0), reverse=int(rev), relu=int(relu),
                chunk=c.get("chunk", 0), saturated=int("x_scale" in c))
    return ints, arr, out


def write(f, rng):
    f.write("# crnn golden values: written by src/test/make_golden.py from crnn/reference\n")
    f.write("# (float64, inputs rounded to float32). Do not edit; regenerate.\n")
    for c in CASES:
        ints, arr, out = make_case(rng, c)
        f.write(f"case {c['name']} {c['cell']}\n")
        for k, v in ints.items():
            f.write(f"int {k} {v}\n")
        for name, a in list(arr.items()) + list(out.items()):
            flat = np.asarray(a, dtype=np.float64).ravel()
            f.write(f"array {name} {flat.size}\n")
            for i in range(0, flat.size, 6):
                f.write(" ".join(repr(float(v)) for v in flat[i:i + 6]) + "\n")
        f.write("end\n")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden.txt")
    with open(path, "w") as f:
        write(f, np.random.default_rng(20240611))
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(CASES)} cases)")


if __name__ == "__main__":
    main()
