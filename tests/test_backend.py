"""Choosing the backend, BLAS threads, and calls from several threads at once."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn

HAS_C = "c" in crnn.available_backends()


def run_python(code, **env):
    full_env = dict(os.environ, **env)
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         env=full_env, cwd=os.path.dirname(__file__), timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_environment_variable_selects_numpy():
    out = run_python("import crnn; print(crnn.backend())", CRNN_BACKEND="numpy")
    assert out.stdout.strip() == "numpy"
    assert "warning" not in out.stderr.lower()


@pytest.mark.skipif(not HAS_C, reason="C extension not installed")
def test_default_backend_is_c_without_warning():
    out = run_python("import crnn; print(crnn.backend())")
    assert out.stdout.strip() == "c"
    assert out.stderr == ""


@pytest.mark.skipif(HAS_C, reason="only for the NumPy-only install")
def test_numpy_only_install_warns_once():
    out = run_python("import crnn, crnn.layers; print(crnn.backend())")
    assert out.stdout.strip() == "numpy"
    assert out.stderr.count("C extension is not available") == 1


def test_use_backend_is_scoped_and_set_backend_is_global():
    start = crnn.backend()
    with crnn.use_backend("numpy"):
        assert crnn.backend() == "numpy"
    assert crnn.backend() == start
    crnn.set_backend("numpy")
    try:
        assert crnn.backend() == "numpy"
    finally:
        crnn.set_backend(start)


@pytest.mark.skipif(HAS_C, reason="only for the NumPy-only install")
def test_c_backend_unavailable_is_a_clear_error():
    with pytest.raises(RuntimeError, match="C backend is not available"):
        crnn.set_backend("c")


@pytest.mark.skipif(not HAS_C, reason="C extension not installed")
def test_backends_agree_on_a_layer():
    layer = crnn.LSTM(5, 7, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    x = np.random.default_rng(0).standard_normal((11, 3, 5))
    with crnn.use_backend("c"):
        y_c, _ = layer(x, lengths=[11, 4, 9])
    with crnn.use_backend("numpy"):
        y_np, _ = layer(x, lengths=[11, 4, 9])
    np.testing.assert_allclose(y_c, y_np, rtol=1e-12, atol=1e-13)


@pytest.mark.skipif(not HAS_C, reason="C extension not installed")
def test_num_threads_round_trip_and_threadpoolctl_sees_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = crnn.get_num_threads()
    try:
        crnn.set_num_threads(1)
        assert crnn.get_num_threads() == 1
        library = crnn._backend.extension().blas_info()["library"]
        pools = [p for p in threadpoolctl.threadpool_info()
                 if os.path.realpath(p["filepath"]) == os.path.realpath(library)]
        assert pools and pools[0]["num_threads"] == 1
    finally:
        crnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1"):
        crnn.set_num_threads(0)


@pytest.mark.parametrize("backend", crnn.available_backends())
def test_concurrent_inference_gives_each_thread_the_lone_answer(backend):
    layer = crnn.GRU(6, 16, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((40, 4, 6)).astype(np.float32) for _ in range(8)]
    with crnn.use_backend(backend):
        alone = [layer(x, lengths=[40, 30, 20, 10])[0] for x in inputs]

    def work(k):
        with crnn.use_backend(backend):
            return [layer(inputs[k % 8], lengths=[40, 30, 20, 10])[0] for _ in range(5)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(16)))
    for k, outs in enumerate(results):
        for y in outs:
            assert np.array_equal(y, alone[k % 8])
