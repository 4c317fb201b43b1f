"""The contenders of a row, each prepared as a timed call plus verified outputs.

    crnn_c       crnn, C backend (when the extension is installed)
    crnn_numpy   crnn, NumPy reference backend (reported, not a peer)
    torch        PyTorch: nn.RNN/LSTM/GRU (inference_mode; autograd forward+backward
                 for training), nn.*Cell for the stream row
    ort          ONNX Runtime, standard LSTM/GRU/RNN operators (inference only)
    nploop       the plain NumPy loop of bench/nploop.py

Every contender returns its results in one canonical form (crnn's layout):
    y (T, B, D*H), h_n (D*L, B, H), c_n, dx (T, B, I), "grad:<torch name>".
A contender that cannot run (package missing, operator without a float64
kernel, training for ORT) raises Skip with the note that goes in the table.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .workloads import Row

CONTENDERS = ("crnn_c", "crnn_numpy", "torch", "ort", "nploop")
PEERS = ("torch", "ort", "nploop")
# crnn C on fewer threads than its section (the run's lowest count), timed in the
# same rows, interleaved: the thread-scaling verdicts compare it with crnn C there,
# in the same minutes, not with the lower section's row run minutes before.
FEWER = "crnn_c_fewer"
LABEL = {"crnn_c": "crnn C", "crnn_numpy": "crnn NumPy", "torch": "torch", "ort": "ORT",
         "nploop": "NumPy loop", FEWER: "crnn C, fewer threads"}
VERIFY_STEPS = 16          # stream: steps compared against crnn's whole-sequence call
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


class Skip(Exception):
    """This contender does not run this row; str(self) is the note for the table."""


class VerificationError(AssertionError):
    """A contender disagrees with crnn on the same weights and inputs."""


@dataclass
class Prepared:
    name: str
    call: Callable[[], Any]                    # the timed call
    outputs: Callable[[], dict]                # one run, canonical arrays for verification
    context: Callable[[], Any] = contextlib.nullcontext   # entered around each timed sample
    steps_per_call: int = 1                    # stream: the time is reported per step
    note: str = ""


@dataclass
class RowData:
    """Weights and inputs every contender of a row shares."""

    row: Row
    params: dict                  # PyTorch-named numpy arrays
    x: np.ndarray                 # (T, B, I)
    dy: np.ndarray                # (T, B, D*H)
    extra: dict = field(default_factory=dict)


def make_row_data(row: Row, seed: int = 0) -> RowData:
    w = row.workload
    rng = np.random.default_rng(seed)
    layer = _crnn_layer(row, seed)                # PyTorch's U(-1/sqrt(H), 1/sqrt(H)) init
    params = {k: v.copy() for k, v in layer.state_dict().items()}
    x = rng.standard_normal((w.T, w.B, w.I)).astype(row.np_dtype)
    dy = rng.standard_normal((w.T, w.B, row.D * w.H)).astype(row.np_dtype)
    return RowData(row, params, x, dy)


def _crnn_layer(row: Row, seed=None):
    import crnn
    w = row.workload
    kw = dict(num_layers=w.layers, bidirectional=w.bidirectional, dtype=row.np_dtype, seed=seed)
    if row.cell == "rnn_tanh":
        return crnn.RNN(w.I, w.H, nonlinearity="tanh", **kw)
    return (crnn.LSTM if row.cell == "lstm" else crnn.GRU)(w.I, w.H, **kw)


def _is_stream(row):
    return row.workload.name == "stream"


def _state_dict_out(prefix, state, cell):
    if cell == "lstm":
        return {prefix + "h_n": np.asarray(state[0]), prefix + "c_n": np.asarray(state[1])}
    return {prefix + "h_n": np.asarray(state)}


# ------------------------------------------------------------------ crnn
@contextlib.contextmanager
def _crnn_threads(n):
    """crnn and the BLAS pools on n threads (torch, ORT untouched), the section's counts after."""
    import crnn
    from threadpoolctl import threadpool_limits
    before = crnn.get_num_threads()
    with threadpool_limits(limits=n, user_api="blas"):
        crnn.set_num_threads(n)
        try:
            yield
        finally:
            crnn.set_num_threads(before)


def build_crnn(data: RowData, backend: str, threads: int | None = None) -> Prepared:
    """crnn on `backend`; with `threads`, the FEWER contender: crnn C on that many
    threads (and the BLAS's pools too) for its samples, whatever the section's count."""
    import crnn
    if backend not in crnn.available_backends():
        raise Skip("C extension not available")
    row = data.row
    layer = _crnn_layer(row)
    layer.load_state_dict(data.params)
    if threads is None:
        ctx = lambda: crnn.use_backend(backend)   # noqa: E731
        name = "crnn_c" if backend == "c" else "crnn_numpy"
    else:
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            raise Skip("threadpoolctl not installed") from None

        @contextlib.contextmanager
        def ctx():
            with crnn.use_backend(backend), _crnn_threads(threads):
                yield
        name = FEWER
    x, dy = data.x, data.dy
    if _is_stream(row):
        return _crnn_stream(name, layer, data, ctx)
    if row.mode == "infer":
        def outputs():
            with ctx():
                y, state = layer(x)
            return {"y": y, **_state_dict_out("", state, row.cell)}
        return Prepared(name, lambda: layer(x), outputs, ctx)

    def train():
        y, state, tape = layer.forward(x)
        return y, layer.backward(tape, dy)

    def outputs():
        with ctx():
            y, (dx, _, grads) = train()
        return {"y": y, "dx": dx, **{"grad:" + k: v for k, v in grads.items()}}
    return Prepared(name, train, outputs, ctx)


def _crnn_stream(name, layer, data, ctx):
    """One step per call, through the first of these that crnn has:
    layer.stream().step(x_t) (the streaming API), layer.step(x_t, state), calls with T=1."""
    row = data.row
    H = row.workload.H
    steps = data.x.shape[0]
    x_t = [data.x[t:t + 1] for t in range(steps)]          # (1, 1, I) each: T=1, B=1
    x_b = [data.x[t] for t in range(steps)]                 # (1, I): a batch of one step
    zeros = np.zeros((1, 1, H), row.np_dtype)
    state0 = (zeros, zeros.copy()) if row.cell == "lstm" else zeros

    def by_calls(n):
        s, ys = state0, []
        for t in range(n):
            y, s = layer(x_t[t], s)
            ys.append(y[0])
        return ys, s

    def by_step(n):
        s, ys = state0, []
        for t in range(n):
            y, s = layer.step(x_b[t], s)
            ys.append(np.reshape(y, (1, H)))
        return ys, s

    run, note = by_calls, "T=1 calls (no layer.stream, no layer.step)"
    if callable(getattr(layer, "stream", None)):
        try:
            with ctx():                                    # a stream runs on the backend it was made on
                stream = layer.stream(batch_size=1)
            step = stream.step

            def by_stream(n):
                stream.reset()
                ys = [step(x_b[t]) for t in range(n)]
                return ys, stream.state
            with ctx():
                by_stream(2)
            return _stream_prepared(name, by_stream, ctx, row, steps, "layer.stream().step")
        except Exception as err:              # an API this harness guessed wrong: say so, go on
            note = f"layer.stream failed ({type(err).__name__}: {err}); T=1 calls"
    elif callable(getattr(layer, "step", None)):
        try:
            with ctx():
                by_step(2)
            run, note = by_step, "layer.step"
        except Exception as err:
            note = f"layer.step failed ({type(err).__name__}: {err}); T=1 calls"
    return _stream_prepared(name, run, ctx, row, steps, note)


def _stream_prepared(name, run, ctx, row, steps, note):
    def outputs():
        with ctx():
            ys, s = run(VERIFY_STEPS)
        return {"y": np.stack(ys), **_state_dict_out("", s, row.cell)}
    return Prepared(name, lambda: run(steps), outputs, ctx, steps_per_call=steps, note=note)


# ------------------------------------------------------------------ torch
def build_torch(data: RowData) -> Prepared:
    try:
        import torch
    except ImportError:
        raise Skip("torch not installed") from None
    row = data.row
    w = row.workload
    tdt = {"float32": torch.float32, "float64": torch.float64}[row.dtype]
    if _is_stream(row):
        return _torch_stream(torch, data, tdt)
    kw = dict(num_layers=w.layers, bidirectional=w.bidirectional, dtype=tdt)
    if row.cell == "rnn_tanh":
        mod = torch.nn.RNN(w.I, w.H, nonlinearity="tanh", **kw)
    else:
        mod = (torch.nn.LSTM if row.cell == "lstm" else torch.nn.GRU)(w.I, w.H, **kw)
    mod.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in data.params.items()})
    if row.mode == "infer":
        xt = torch.from_numpy(data.x)

        def outputs():
            with torch.inference_mode():
                y, state = mod(xt)
            st = (state[0].numpy(), state[1].numpy()) if row.cell == "lstm" else state.numpy()
            return {"y": y.numpy(), **_state_dict_out("", st, row.cell)}
        return Prepared("torch", lambda: mod(xt), outputs, torch.inference_mode)

    xt = torch.from_numpy(data.x.copy()).requires_grad_(True)
    train = torch_training_call(mod, mod, xt, torch.from_numpy(data.dy))

    def outputs():
        y, _ = train()
        out = {"y": y.detach().numpy(), "dx": xt.grad.numpy().copy()}
        out.update({"grad:" + k: p.grad.numpy().copy() for k, p in mod.named_parameters()})
        return out
    return Prepared("torch", train, outputs)


def torch_training_call(mod, run, xt, dyt):
    """One timed training call of a torch module: the gradients of xt and of
    mod's parameters cleared (autograd would add to them), run(xt) -> (y,
    state), y.backward(dyt); returns (y, state)."""
    params = list(mod.parameters())

    def train():
        xt.grad = None
        for p in params:
            p.grad = None
        y, state = run(xt)
        y.backward(dyt)
        return y, state
    return train


def _torch_stream(torch, data, tdt):
    row = data.row
    w = row.workload
    Cell = {"rnn_tanh": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[row.cell]
    cell = Cell(w.I, w.H, dtype=tdt)
    cell.load_state_dict({k[:-3]: torch.from_numpy(v.copy()) for k, v in data.params.items()})  # drop "_l0"
    steps = data.x.shape[0]
    xs = [torch.from_numpy(data.x[t]) for t in range(steps)]    # (1, I)
    zero = torch.zeros(1, w.H, dtype=tdt)
    lstm = row.cell == "lstm"

    def run(n):
        h, c, ys = zero, zero, []
        for t in range(n):
            if lstm:
                h, c = cell(xs[t], (h, c))
            else:
                h = cell(xs[t], h)
            ys.append(h)
        return ys, h, c

    def outputs():
        with torch.inference_mode():
            ys, h, c = run(VERIFY_STEPS)
        out = {"y": torch.stack(ys).numpy(), "h_n": h[None].numpy()}
        if lstm:
            out["c_n"] = c[None].numpy()
        return out
    return Prepared("torch", lambda: run(steps), outputs, torch.inference_mode, steps_per_call=steps,
                    note=f"nn.{Cell.__name__}")


# ------------------------------------------------------------------ ONNX Runtime
def build_ort(data: RowData, threads: int) -> Prepared:
    row = data.row
    if row.mode == "train":
        raise Skip("inference only")
    try:
        import onnxruntime as ort
        import onnx  # noqa: F401  (the graph is built with onnx.helper)
    except ImportError as err:
        raise Skip(f"{err.name} not installed") from None
    from .onnx_graphs import build_model, y_to_torch_layout
    w = row.workload
    stream = _is_stream(row)
    model = build_model(row.cell, data.params, w.I, w.H, w.layers, w.bidirectional, row.np_dtype,
                        with_state_inputs=stream)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 4      # failures surface as exceptions, turned into notes below
    try:
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        trial = {"X": data.x[:1, :1]}
        if stream:
            trial["initial_h"] = np.zeros((1, 1, w.H), row.np_dtype)
            if row.cell == "lstm":
                trial["initial_c"] = trial["initial_h"]
        sess.run(None, trial)      # some kernels exist only for float32 and fail at run time
    except Exception as err:
        msg = str(err).strip().splitlines()[0]
        msg = msg.split("Status Message:")[-1].split(" : ")[-1].strip()[:80]
        raise Skip(f"no {row.dtype} kernel ({msg})") from None
    L = w.layers
    state_names = [f"Y_h_l{k}" for k in range(L)]
    if row.cell == "lstm":
        state_names += [f"Y_c_l{k}" for k in range(L)]

    def canonical(res):
        out = {"y": y_to_torch_layout(res[0]),
               "h_n": np.concatenate([res[1 + k] for k in range(L)])}
        if row.cell == "lstm":
            out["c_n"] = np.concatenate([res[1 + L + k] for k in range(L)])
        return out

    if not stream:
        feeds, fetch = {"X": data.x}, ["Y"] + state_names
        return Prepared("ort", lambda: sess.run(fetch, feeds), lambda: canonical(sess.run(fetch, feeds)))

    steps = data.x.shape[0]
    xs = [data.x[t:t + 1] for t in range(steps)]                 # (T=1, B=1, I)
    zero = np.zeros((1, 1, w.H), row.np_dtype)
    lstm = row.cell == "lstm"
    names = ["Y_h_l0", "Y_c_l0"] if lstm else ["Y_h_l0"]

    def run(n):
        h, c, ys = zero, zero, []
        for t in range(n):
            feeds = {"X": xs[t], "initial_h": h}
            if lstm:
                feeds["initial_c"] = c
                h, c = sess.run(names, feeds)
            else:
                (h,) = sess.run(names, feeds)
            ys.append(h[0])
        return ys, h, c

    def outputs():
        ys, h, c = run(VERIFY_STEPS)
        out = {"y": np.stack(ys), "h_n": h}
        if lstm:
            out["c_n"] = c
        return out
    return Prepared("ort", lambda: run(steps), outputs, steps_per_call=steps, note="T=1 model, state inputs")


# ------------------------------------------------------------------ NumPy loop
def build_nploop(data: RowData) -> Prepared:
    from .nploop import LoopStack
    row = data.row
    w = row.workload
    stack = LoopStack(row.cell, data.params, w.layers, w.bidirectional)
    x, dy = data.x, data.dy
    if _is_stream(row):
        one = stack.dirs[0]
        steps = x.shape[0]
        xs = [x[t] for t in range(steps)]                       # (1, I)
        zero = np.zeros((1, w.H), row.np_dtype)

        def run(n):
            h, c, ys = zero, zero, []
            for t in range(n):
                h, c = one.step(xs[t], h, c)
                ys.append(h)
            return ys, h, c

        def outputs():
            ys, h, c = run(VERIFY_STEPS)
            out = {"y": np.stack(ys), "h_n": h[None]}
            if row.cell == "lstm":
                out["c_n"] = c[None]
            return out
        return Prepared("nploop", lambda: run(steps), outputs, steps_per_call=steps)
    if row.mode == "infer":
        def outputs():
            y, h, c, _ = stack.forward(x)
            out = {"y": y, "h_n": h}
            if c is not None:
                out["c_n"] = c
            return out
        return Prepared("nploop", lambda: stack.forward(x), outputs)

    def train():
        y, _, _, caches = stack.forward(x, training=True)
        return y, stack.backward(caches, dy)

    def outputs():
        y, (dx, grads) = train()
        return {"y": y, "dx": dx, **{"grad:" + k: v for k, v in grads.items()}}
    return Prepared("nploop", train, outputs)


def build(name: str, data: RowData, threads: int) -> Prepared:
    """Contender `name` on the row; FEWER runs on `threads` threads, the others on the section's."""
    if name == "crnn_c":
        return build_crnn(data, "c")
    if name == FEWER:
        return build_crnn(data, "c", threads)
    if name == "crnn_numpy":
        return build_crnn(data, "numpy")
    if name == "torch":
        return build_torch(data)
    if name == "ort":
        return build_ort(data, threads)
    if name == "nploop":
        return build_nploop(data)
    raise ValueError(name)


# ------------------------------------------------------------------ verification
def reference_outputs(data: RowData, subject: str) -> dict:
    """crnn's own answer on the row (the subject backend's whole-sequence call)."""
    import crnn
    row = data.row
    layer = _crnn_layer(row)
    layer.load_state_dict(data.params)
    backend = "c" if subject == "crnn_c" else "numpy"
    with crnn.use_backend(backend):
        if _is_stream(row):
            y, state = layer(data.x[:VERIFY_STEPS])
            return {"y": y, **_state_dict_out("", state, row.cell)}
        if row.mode == "infer":
            y, state = layer(data.x)
            return {"y": y, **_state_dict_out("", state, row.cell)}
        y, _, tape = layer.forward(data.x)
        dx, _, grads = layer.backward(tape, data.dy)
        return {"y": y, "dx": dx, **{"grad:" + k: v for k, v in grads.items()}}


def max_relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise VerificationError(f"shape {actual.shape} != {expected.shape}")
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-6)
    return float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / scale


def verify(name: str, got: dict, ref: dict, dtype: str, row_key: str) -> float:
    """Largest relative error over the arrays both have; raise VerificationError past tolerance."""
    common = [k for k in ref if k in got]
    if not common or "y" not in common:
        raise VerificationError(f"{row_key}: {name} produced none of crnn's outputs ({sorted(got)})")
    worst, worst_key = 0.0, ""
    for k in common:
        try:
            err = max_relative_error(got[k], ref[k])
        except VerificationError as e:
            raise VerificationError(f"{row_key}: {name} {k}: {e}") from None
        if not np.isfinite(err) or err > worst:
            worst, worst_key = err, k
            if not np.isfinite(err):
                break
    tol = TOLERANCE[dtype]
    if not worst <= tol:
        raise VerificationError(f"{row_key}: {LABEL[name]} disagrees with crnn on {worst_key!r}: "
                                f"max relative error {worst:.3g} > {tol:g}")
    return worst
