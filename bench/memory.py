"""Memory: training peak against the theoretical live set, inference growth with T.

Training peak, traced: tracemalloc sees every NumPy array (NumPy reports its
data buffers to tracemalloc) and every Python object; the window covers
building the layer (parameters), the inputs x and dy, forward, backward and
holding all results, so it is compared with the whole live set
(workloads.theoretical_training_bytes). Memory a C library mallocs on its own
(an OpenBLAS buffer, a C workspace not allocated through NumPy) is not traced.

RSS delta: in a fresh subprocess, after building everything and one warm-up
call on T=2 (thread pools, BLAS buffers), the kernel's high-water mark is reset
(`5` > /proc/self/clear_refs) and one forward+backward is run; delta =
VmHWM after - VmRSS before. That sees everything (torch too) but not what
already existed: the parameters, x and dy.

Inference growth: the extra memory of one inference call beyond its output
(y and the final state), traced, at two lengths T; "independent of T" holds
if the extra at the longer T is at most 5% (+64 KiB) above the shorter one.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

from .workloads import WORKLOADS, Row, theoretical_training_bytes


def _make_inputs(row, T=None, seed=0):
    w = row.workload
    T = w.T if T is None else T
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, w.B, w.I), dtype=row.np_dtype)
    dy = rng.standard_normal((T, w.B, row.D * w.H), dtype=row.np_dtype)
    return x, dy


def _training_step(kind, row, params, T=None):
    """Build contender `kind` and return a closure running one training step on new inputs."""
    from .contenders import _crnn_layer
    w = row.workload
    if kind in ("crnn_c", "crnn_numpy"):
        import crnn
        layer = _crnn_layer(row)
        layer.load_state_dict(params)
        backend = "c" if kind == "crnn_c" else "numpy"

        def run(x, dy):
            with crnn.use_backend(backend):
                y, s, tape = layer.forward(x)
                return layer, y, s, tape, layer.backward(tape, dy)
        return run
    if kind == "nploop":
        from .nploop import LoopStack
        stack = LoopStack(row.cell, {k: v.copy() for k, v in params.items()}, w.layers, w.bidirectional)

        def run(x, dy):
            y, h, c, caches = stack.forward(x, training=True)
            return stack, y, h, c, caches, stack.backward(caches, dy)
        return run
    if kind == "torch":
        import torch
        tdt = {"float32": torch.float32, "float64": torch.float64}[row.dtype]
        kw = dict(num_layers=w.layers, bidirectional=w.bidirectional, dtype=tdt)
        if row.cell == "rnn_tanh":
            mod = torch.nn.RNN(w.I, w.H, nonlinearity="tanh", **kw)
        else:
            mod = (torch.nn.LSTM if row.cell == "lstm" else torch.nn.GRU)(w.I, w.H, **kw)
        mod.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})

        def run(x, dy):
            xt = torch.from_numpy(x).requires_grad_(True)
            y, s = mod(xt)
            y.backward(torch.from_numpy(dy))
            return mod, xt, y, s
        return run
    raise ValueError(kind)


def _forget_kept_workspaces():
    """crnn's C backend keeps a thread's last workspaces for its next calls
    (crnn/_c_kernels.py); a probe starts without them, so that its window
    sees every buffer a call needs."""
    try:
        from crnn import _c_kernels
    except ImportError:
        return
    _c_kernels.release_workspaces()


def _params(row):
    from .contenders import _crnn_layer
    return _crnn_layer(row, seed=0).state_dict()


def traced_training_peak(kind, row):
    """Peak traced bytes of: parameters + inputs + forward + backward, all results held."""
    params = _params(row)
    _forget_kept_workspaces()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run = _training_step(kind, row, params)          # the contender's own copy of the parameters
        x, dy = _make_inputs(row)
        held = run(x, dy)
        peak = tracemalloc.get_traced_memory()[1] - base
        del held
    finally:
        tracemalloc.stop()
    return peak


def theoretical(row):
    w = row.workload
    return theoretical_training_bytes(row.cell, w.T, w.B, w.I, w.H, w.layers, row.D, row.np_dtype.itemsize)


def inference_extra(kind, row, T):
    """Traced peak of one inference call minus its output (y and final state), at length T."""
    import crnn
    from .contenders import _crnn_layer
    layer = _crnn_layer(row, seed=0)
    x, _ = _make_inputs(row, T)
    backend = "c" if kind == "crnn_c" else "numpy"
    with crnn.use_backend(backend):
        layer(x[:2])                                     # warm-up outside the window
        _forget_kept_workspaces()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            y, state = layer(x)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    out = y.nbytes + sum(a.nbytes for a in (state if isinstance(state, tuple) else (state,)))
    return peak - out


# ------------------------------------------------------------------ RSS, in a subprocess
def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_probe(kind, row_key):
    """Runs in the subprocess: build, warm up on T=2, reset the high-water mark, one step."""
    name, cell, mode, dtype = row_key.split("/")
    row = Row(WORKLOADS[name], cell, mode, dtype)
    run = _training_step(kind, row, _params(row))
    x, dy = _make_inputs(row)
    run(x[:2], dy[:2])
    _forget_kept_workspaces()
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM after reset - VmRSS before"
        before = _status_kib("VmRSS")
        held = run(x, dy)
        after = _status_kib("VmHWM")
    except OSError:
        import resource
        method = "ru_maxrss delta"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        held = run(x, dy)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del held
    return {"delta_bytes": (after - before) * 1024, "method": method}


def rss_delta(kind, row, threads, timeout=300):
    """RSS delta of one training step of `kind` on `row`, measured in a fresh process."""
    run_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, run_py, "--rss-probe", kind, row.key],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"RSS probe {kind} {row.key} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
