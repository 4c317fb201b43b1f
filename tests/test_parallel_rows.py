"""The C forward pass split by batch rows over two threads (src/parallel.h).

With crnn.set_num_threads(2) the step loop of an inference pass whose
recurrent product runs in the packed kernel (T >= 4, 8 <= B <= 128) and
that has enough work (src/common.h, parallel_shape) runs part of the rows on
a worker thread: from 32 rows on, each thread computes its own rows' input
product; below, the two first compute the chunk's input product by columns
(chunk_input_by_team). Layers too large for a core's L2 split by hidden units
instead (units_shape), meeting after every step. Training passes of these
shapes split by rows, forward and backward, and share the products over a
chunk of steps (the input product, dx, the weight gradients), with the BLAS
set to one thread meanwhile (train_threads in src/common.h). Every row is
computed as on one thread except that products run in the packed kernel
instead of the BLAS (or the BLAS on one thread instead of two): results
agree with one thread to rounding, match the NumPy reference, and are the
same bits whether the worker took its part or not. Training of batches too small
to split (B < 8) runs as pipelines instead: one thread runs the steps chunk
after chunk while the other computes the input product of the chunk after
(forward) or the products of the chunk before (backward; src/common.h,
pipe_chunk_steps). Shapes where no split applies (LSTM with
projection, little work) must give the same results too. Float32 and float64 both split (each dtype has its
packed kernel on this CPU).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import crnn
from crnn import reference

if "c" not in crnn.available_backends():
    pytest.skip("the C extension is not installed (CRNN_NO_EXT)", allow_module_level=True)

from crnn import _c_kernels  # noqa: E402

TOL = {np.float32: 5e-5, np.float64: 1e-11}


@pytest.fixture(params=["pool", "worker"])
def second_thread(request):
    """Where a split's second half runs: on the BLAS's own pool thread (the
    default where the BLAS has one: OpenBLAS) or on crnn's worker thread."""
    ext = crnn._backend.extension()
    shares = ext._share_blas_pool(request.param == "pool")
    if request.param == "pool" and not shares:
        pytest.skip("the BLAS in use has no thread pool to share")
    yield request.param
    ext._share_blas_pool(True)


def split_counts():
    """(on the BLAS's pool, on crnn's worker): splits run on two threads so far."""
    return crnn._backend.extension()._split_counts()


@pytest.fixture
def blas_threads():
    """Sets the BLAS pool crnn calls to n threads for the test, then restores it."""
    before = crnn.get_num_threads()
    yield crnn.set_num_threads
    crnn.set_num_threads(before)


def run(kernels, cell, T, B, I, H, dtype, P=None, lengths=None, reverse=False, training=True, seed=0,
        exact=False):
    """Forward (and with training, backward) of one layer; all results as a dict.
    exact=True: the same inputs, computed in float64 (the reference's oracle)."""
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    P = P or H
    def r(*shape, scale=1.0):
        values = rng.uniform(-scale, scale, size=shape).astype(dtype)
        return values.astype(np.float64) if exact else values

    k = 1 / np.sqrt(H)  # PyTorch's initialisation: gates away from saturation
    x, W_ih, W_hh, b_ih, b_hh = r(T, B, I), r(G * H, I, scale=k), r(G * H, P, scale=k), r(G * H), r(G * H)
    h0, c0, dy, dh, dc = r(B, P), r(B, H), r(T, B, P), r(B, P), r(B, H)
    opts = dict(lengths=lengths, reverse=reverse, training=training)
    if cell == "rnn":
        y, h, cache = kernels.rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, **opts)
        out = dict(y=y, h=h)
        if training:
            out.update(zip(("dx", "dh0", "g"), kernels.rnn_backward(cache, dy, dh)))
    elif cell == "lstm":
        W_hr = r(P, H) if P != H else None
        y, h, c, cache = kernels.lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, **opts)
        out = dict(y=y, h=h, c=c)
        if training:
            out.update(zip(("dx", "dh0", "dc0", "g"), kernels.lstm_backward(cache, dy, dh, dc)))
    else:
        y, h, cache = kernels.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, **opts)
        out = dict(y=y, h=h)
        if training:
            out.update(zip(("dx", "dh0", "g"), kernels.gru_backward(cache, dy, dh)))
    grads = out.pop("g", {})
    out.update({"d" + k: v for k, v in grads.items()})
    return out


def run_in_threads(caller, seeds, timeout=300):
    """caller(seed) on one Python thread per seed, all at once; re-raises the
    first AssertionError any of them raised, and fails if one is still
    running after timeout seconds (a deadlock: the hung threads are left
    behind, daemons, so that the run can end)."""
    errors = []

    def guarded(seed):
        try:
            caller(seed)
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(s,), daemon=True) for s in seeds]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    assert not any(t.is_alive() for t in threads), f"a thread still runs after {timeout} s: a deadlock"
    assert not errors, errors[0]


def assert_same(a, b, rtol=1e-5):
    """Equal up to rtol relative to the largest magnitude (one thread vs two)."""
    assert a.keys() == b.keys()
    for name in a:
        if a[name] is None:
            assert b[name] is None, name
        else:
            scale = max(float(np.abs(a[name]).max(initial=0)), 1.0)
            err = float(np.abs(a[name] - b[name]).max(initial=0)) / scale
            assert err <= rtol, f"{name}: 1 vs 2 threads differ by {err:.3g}"


def assert_matches_reference(ours, ref, dtype):
    for name in ref:
        if ref[name] is None:
            continue
        scale = max(float(np.abs(ref[name]).max(initial=0)), 1e-2)
        err = float(np.abs(ours[name] - ref[name].astype(dtype)).max(initial=0)) / scale
        assert err <= TOL[dtype], f"{name}: relative error {err:.3g}"


CASES = [
    # cell, T, B, I, H, reverse, ragged lengths: enough work to be split
    # (parallel_shape() in src/common.h: T*B*G*H*(I+H) >= 64M multiply-adds)
    ("lstm", 50, 16, 64, 128, False, False),
    ("lstm", 33, 27, 37, 131, True, True),    # odd batch, odd H: a partial panel
    ("gru", 100, 9, 100, 128, False, True),
    ("gru", 40, 32, 20, 130, True, False),    # inference in chunks of 8 steps
    ("rnn", 128, 8, 100, 256, True, True),
    ("rnn", 100, 40, 64, 128, False, False),
    # split by hidden units instead (units_shape(): B*G*H*H >= 32M per step,
    # H a multiple of 16); odd T: the state ends in the second buffer
    ("lstm", 5, 8, 40, 1024, False, True),
    ("gru", 10, 11, 24, 1024, True, False),   # two chunks of 8 and 2 steps
    ("rnn", 9, 24, 33, 1200, False, True),
    # batches too small to split by rows: training runs as pipelines
    # (pipe_chunk_steps(): T*B*G*H*(I+H) >= 8M), the steps on one thread, on
    # the other the input product of the chunk after (forward) or the
    # products of the chunk before (backward); inference splits by units
    # where H >= 64 is a multiple of 16, B*G*H*H >= 8192 and T*B*G*H*H >= 4M
    # (units_shape()), else stays on one thread; so does the training
    # forward of a single sequence (train_units())
    ("lstm", 200, 1, 48, 96, False, False),   # 7 chunks, the last of 8 steps
    ("lstm", 130, 2, 48, 96, True, True),
    ("gru", 150, 3, 40, 100, True, True),     # inference on one thread
    ("rnn", 300, 2, 64, 128, True, True),
    ("gru", 200, 1, 30, 112, True, True),
    ("rnn", 400, 1, 20, 128, False, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("cell,T,B,I,H,reverse,ragged", CASES)
def test_two_threads_give_the_one_thread_results(blas_threads, cell, T, B, I, H,
                                                 reverse, ragged, training, dtype):
    lengths = None
    if ragged:
        lengths = np.random.default_rng(T * B).integers(0, T + 1, size=B).astype(np.int64)
        lengths[0] = T
    kw = dict(lengths=lengths, reverse=reverse, training=training)
    blas_threads(1)
    one = run(_c_kernels, cell, T, B, I, H, dtype, **kw)
    blas_threads(2)
    two = run(_c_kernels, cell, T, B, I, H, dtype, **kw)
    again = run(_c_kernels, cell, T, B, I, H, dtype, **kw)  # the parked worker, reused
    assert_same(one, two, rtol=1e-5 if dtype == np.float32 else 1e-11)
    np.testing.assert_array_equal(two["y"], again["y"])
    assert_matches_reference(two, run(reference, cell, T, B, I, H, dtype, exact=True, **kw), dtype)


def test_the_split_runs_on_the_second_thread_asked_for(blas_threads, second_thread):
    """Proof that the 2-thread path ran, on the pool or on the worker."""
    blas_threads(2)
    before = split_counts()
    run(_c_kernels, "rnn", 100, 40, 64, 128, np.float32, training=False)
    on_pool, on_worker = (after - was for after, was in zip(split_counts(), before))
    if second_thread == "pool":
        assert on_pool > 0 and on_worker == 0
    else:
        assert on_worker > 0 and on_pool == 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_a_single_sequence_splits_on_two_threads(blas_threads, second_thread, cell, training):
    """Proof that the 2-thread paths of a single sequence ran: one split for
    the forward of a training pass (by hidden units) and one for its
    backward (a pipeline), one for inference (by hidden units, one team for
    all its chunks of steps), none on one thread. Inference split by units gives the
    one-thread bits (the fused row step, or the one-row kernel, on each
    member's blocks). With the crowding check off: OpenBLAS's pool threads,
    spinning after earlier products, would rightly send a pipeline on
    crnn's worker to the caller alone."""
    ext = crnn._backend.extension()
    ext._check_crowding(False)
    outputs = {}
    try:
        for threads, splits in ((2, 2 if training else 1), (1, 0)):
            blas_threads(threads)
            before = split_counts()
            outputs[threads] = run(_c_kernels, cell, 384, 1, 64, 128, np.float32, training=training)
            on_pool, on_worker = (after - was for after, was in zip(split_counts(), before))
            assert on_pool + on_worker == splits
            assert (on_pool if second_thread == "pool" else on_worker) == splits
    finally:
        ext._check_crowding(True)
    if not training:
        for name in outputs[1]:
            np.testing.assert_array_equal(outputs[2][name], outputs[1][name])


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_the_worker_thread_is_named(blas_threads):
    """The worker names itself crnn-rows (as top -H and /proc show it)."""
    ext = crnn._backend.extension()
    ext._share_blas_pool(False)
    try:
        blas_threads(2)
        run(_c_kernels, "rnn", 100, 40, 64, 128, np.float32, training=False)
    finally:
        ext._share_blas_pool(True)
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # a thread that ended meanwhile
            pass
    assert "crnn-rows" in names


def test_numpy_products_beside_splits_on_the_pool(blas_threads, second_thread):
    """NumPy's threaded products in other Python threads while crnn splits:
    on the pool, the two share OpenBLAS's one pool thread (a split holds
    the BLAS at one thread, so no BLAS call waits for the thread it runs
    on). Every result is right, and nothing hangs."""
    blas_threads(1)
    shape = ("lstm", 50, 16, 64, 128, np.float32)
    want = {s: run(_c_kernels, *shape, seed=s) for s in range(2)}
    blas_threads(2)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    product = a.astype(np.float64) @ a.astype(np.float64)

    def caller(seed):
        for _ in range(4):
            if seed < 2:
                assert_same(want[seed], run(_c_kernels, *shape, seed=seed))
            else:
                for _ in range(20):
                    np.testing.assert_allclose(a @ a, product, rtol=1e-4, atol=1e-3)

    run_in_threads(caller, range(4))
    assert crnn.get_num_threads() == 2


@pytest.mark.parametrize("case", ["float64", "lstm_proj", "batch_below_split", "little_work"])
def test_shapes_that_stay_on_one_thread_give_the_same_results(blas_threads, case):
    dtype, P, T, B, I, H = np.float32, None, 50, 16, 64, 128
    if case == "float64":
        dtype = np.float64
    elif case == "lstm_proj":
        P = 50
    elif case == "batch_below_split":
        T, B = 200, 7
    else:
        T, I, H = 10, 4, 12
    kw = dict(P=P, lengths=None, reverse=True, training=True)
    blas_threads(1)
    one = run(_c_kernels, "lstm", T, B, I, H, dtype, **kw)
    blas_threads(2)
    two = run(_c_kernels, "lstm", T, B, I, H, dtype, **kw)
    assert_same(one, two, rtol=1e-5 if dtype == np.float32 else 1e-11)  # the backward's BLAS sums in its own order per thread count
    assert_matches_reference(two, run(reference, "lstm", T, B, I, H, dtype, exact=True, **kw), dtype)


def test_concurrent_callers_each_get_their_own_results(blas_threads, second_thread):
    """Two Python threads in the C core at once: one gets the worker, the
    other runs on its own thread; both results are those of one thread."""
    blas_threads(1)
    shape = ("lstm", 50, 16, 64, 128, np.float32)
    want = {s: run(_c_kernels, *shape, seed=s, training=False) for s in range(4)}
    blas_threads(2)

    def caller(seed):
        for _ in range(5):
            assert_same(want[seed], run(_c_kernels, *shape, seed=seed, training=False))

    run_in_threads(caller, range(4))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_with_a_worker_of_its_own(blas_threads, second_thread):
    """The parent's worker thread does not exist in a child: the child must
    start its own instead of waiting for it forever (and OpenBLAS's pool,
    which OpenBLAS restarts in a child, must take the part again)."""
    blas_threads(2)
    shape = ("gru", 40, 32, 20, 130, np.float32)
    want = run(_c_kernels, *shape, training=False)  # the parent's worker runs
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        ok = False
        try:
            got = run(_c_kernels, *shape, training=False)
            ok = all(np.array_equal(got[k], want[k]) for k in want)
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_training_gives_the_blas_its_threads_back(blas_threads):
    """A split training pass sets the BLAS to one thread while it runs (so
    that OpenBLAS's pool leaves both cores to it) and back after."""
    blas_threads(2)
    run(_c_kernels, "lstm", 50, 16, 64, 128, np.float32, training=True)
    assert crnn.get_num_threads() == 2
    blas_threads(1)
    run(_c_kernels, "gru", 50, 16, 64, 128, np.float32, training=True)
    assert crnn.get_num_threads() == 1


@pytest.mark.parametrize("shape", [("gru", 40, 32, 20, 130, np.float32),   # split by rows
                                   ("lstm", 200, 2, 48, 96, np.float32),   # the pipelines
                                   ("lstm", 200, 1, 48, 96, np.float32)],  # forward by units
                         ids=["rows", "pipeline", "units"])
def test_concurrent_training_callers_each_get_their_own_results(blas_threads, second_thread, shape):
    """Training passes from four Python threads at once: one team at a time,
    the others alone; every result is the one of a lone call, and the BLAS
    has its threads back after the last."""
    blas_threads(2)
    want = {s: run(_c_kernels, *shape, seed=s) for s in range(4)}

    def caller(seed):
        for _ in range(3):
            got = run(_c_kernels, *shape, seed=seed)
            for name in want[seed]:
                np.testing.assert_array_equal(got[name], want[seed][name], err_msg=name)

    run_in_threads(caller, range(4))
    assert crnn.get_num_threads() == 2
