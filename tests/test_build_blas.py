"""The build and the BLAS seam: crnn._ext is compiled, bound to a real BLAS,
and computes op(a) @ op(b) right.

Runs against the INSTALLED package (`pip install ".[test]"`, then `pytest`
or `python -P -m pytest` from the repository root; see pyproject.toml).
Skipped only when CRNN_NO_EXT is set (a pure-NumPy install). Otherwise an
extension that does not import is an error, never a skip: a silent fallback
to NumPy would hide a broken build (shared/BLAS.md).

The whole module runs twice: in this process with the default binding
(NumPy's OpenBLAS), and in a child pytest with CRNN_BLAS=vendored. Tests
specific to one binding skip in the other.
"""

import ctypes
import importlib.machinery
import importlib.util
import os
import site
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CRNN_NO_EXT"):
    pytest.skip("CRNN_NO_EXT is set: pure-NumPy install, no extension",
                allow_module_level=True)

try:
    import crnn._ext as ext
except ImportError as err:  # an error, not a skip: see the module docstring
    spec = importlib.util.find_spec("crnn")
    raise ImportError(
        f"crnn._ext does not import: {err}\n"
        f"crnn was found at {spec.origin if spec else None}. If that is the "
        "source tree, run the tests on the installed package: "
        "pip install '.[test]', then `pytest` or `python -P -m pytest`."
    ) from err

WANTED = os.environ.get("CRNN_BLAS", "").strip().lower() or "auto"
SOURCE = ext.blas_info()["source"]
VENDORED = os.path.join(os.path.dirname(ext.__file__), "_vendor", "libscipy_openblas.so")
# .../site-packages/numpy: a prefix of numpy/ and of the wheel's numpy.libs/
NUMPY_PREFIX = os.path.dirname(os.path.realpath(np.__file__))

# Error bound per element, relative to (|op(a)| @ |op(b)|): the scale of
# the rounding error of a dot product whatever its cancellation.
TOL = {np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]

# (m, n, k): sizes of 1 and 0 on every axis, then random ones.
_rng = np.random.default_rng(20240601)
SHAPES = [(1, 1, 1), (1, 7, 1), (7, 1, 5), (1, 1, 33), (3, 4, 0), (0, 3, 2),
          (2, 0, 3), (64, 64, 64)] + [tuple(_rng.integers(1, 70, size=3)) for _ in range(12)]


def operands(rng, dtype, m, n, k, trans_a, trans_b):
    """a, b stored so that op(a) is (m, k) and op(b) is (k, n)."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def assert_gemm_close(got, a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c0=None):
    """got == alpha * op(a) @ op(b) + beta * c0, as numpy.matmul computes it."""
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    assert got.dtype == a.dtype
    assert got.shape == (op_a.shape[0], op_b.shape[1])
    want = alpha * np.matmul(op_a, op_b)
    scale = abs(alpha) * (np.abs(op_a).astype(np.float64) @ np.abs(op_b).astype(np.float64))
    if beta != 0:
        want = want + beta * c0
        scale = scale + abs(beta) * np.abs(c0)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = TOL[a.dtype.type] * scale
    assert np.all(err <= bound), f"max error {err.max()} vs bound {bound.max()}"


def threadpool_openblas():
    """{real path: num_threads} of the OpenBLAS pools threadpoolctl sees."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return {os.path.realpath(pool["filepath"]): pool["num_threads"]
            for pool in threadpoolctl.threadpool_info()
            if pool["internal_api"] == "openblas"}


# --- the build --------------------------------------------------------------

def test_extension_is_compiled():
    assert ext.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_vendored_openblas_is_shipped():
    assert os.path.isfile(VENDORED)


def test_blas_info_fields():
    info = ext.blas_info()
    assert set(info) == {"source", "library", "int_bits", "config", "shares_pool"}
    assert info["source"] in ("numpy", "vendored")
    assert os.path.isfile(info["library"])
    assert info["int_bits"] in (32, 64)
    assert info["config"].startswith("OpenBLAS")
    assert ("USE64BITINT" in info["config"]) == (info["int_bits"] == 64)
    if WANTED != "auto":
        assert info["source"] == WANTED
    # the core's splits share the pool of an OpenBLAS that exports its entry
    # point (NumPy's does; the vendored copy hides it)
    exports = hasattr(ctypes.CDLL(info["library"]), "gotoblas_pthread")
    assert info["shares_pool"] is exports


# --- the binding --------------------------------------------------------------

@pytest.mark.skipif(WANTED == "vendored", reason="CRNN_BLAS=vendored")
def test_default_binding_is_numpys_openblas():
    info = ext.blas_info()
    assert info["source"] == "numpy"
    assert info["library"].startswith(NUMPY_PREFIX)
    # NumPy 2.x PyPI wheels ship ILP64 scipy-openblas64 in numpy.libs/.
    if os.path.basename(info["library"]).startswith("libscipy_openblas64_"):
        assert info["int_bits"] == 64


@pytest.mark.skipif(SOURCE != "vendored", reason="needs CRNN_BLAS=vendored")
def test_vendored_binding_is_the_shipped_lp64_copy():
    info = ext.blas_info()
    assert info["library"] == os.path.realpath(VENDORED)
    assert info["int_bits"] == 32


@pytest.mark.skipif(WANTED != "auto", reason="CRNN_BLAS is set: this test sets it")
@pytest.mark.parametrize("wanted, expected", [
    ("numpy", "'source': 'numpy'"),
    ("vendored", "'source': 'vendored'"),
    ("bogus", "CRNN_BLAS='bogus' is not one of auto, numpy, vendored"),
])
def test_crnn_blas_env_selects_the_library(tmp_path, wanted, expected):
    out = run_python_with_crnn_blas(
        wanted, ["-c", "import crnn._ext as e; print(e.blas_info())"], tmp_path)
    assert expected in out.stdout + out.stderr
    assert (out.returncode == 0) == (wanted != "bogus")


# --- the products --------------------------------------------------------------

@pytest.mark.parametrize("naive", [False, True], ids=["blas", "naive"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gemm_matches_numpy_matmul(dtype, trans_a, trans_b, naive):
    rng = np.random.default_rng(0)
    for m, n, k in SHAPES:
        a, b = operands(rng, dtype, m, n, k, trans_a, trans_b)
        got = ext.blas_gemm(a, b, trans_a, trans_b, naive=naive)
        assert_gemm_close(got, a, b, trans_a, trans_b)


@pytest.mark.parametrize("naive", [False, True], ids=["blas", "naive"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gemm_alpha_beta_accumulate(dtype, naive):
    rng = np.random.default_rng(1)
    a, b = operands(rng, dtype, 5, 6, 7, True, False)
    c0 = rng.standard_normal((5, 6)).astype(dtype)
    out = c0.copy()
    got = ext.blas_gemm(a, b, True, False, alpha=-0.5, beta=2.0, out=out, naive=naive)
    assert got is out
    assert_gemm_close(out, a, b, True, False, alpha=-0.5, beta=2.0, c0=c0)


@pytest.mark.parametrize("k", [0, 3])
@pytest.mark.parametrize("naive", [False, True], ids=["blas", "naive"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gemm_beta_zero_overwrites_nan(dtype, naive, k):
    rng = np.random.default_rng(2)
    a, b = operands(rng, dtype, 4, 5, k, False, False)
    out = np.full((4, 5), np.nan, dtype=dtype)
    ext.blas_gemm(a, b, out=out, naive=naive)
    assert_gemm_close(out, a, b, False, False)


@pytest.mark.parametrize("naive", [False, True], ids=["blas", "naive"])
def test_gemm_alpha_zero_reads_neither_operand(naive):
    a = np.full((3, 2), np.nan)
    b = np.full((2, 4), np.inf)
    out = np.ones((3, 4))
    ext.blas_gemm(a, b, alpha=0.0, beta=3.0, out=out, naive=naive)
    np.testing.assert_array_equal(out, 3.0)


def test_gemm_releases_the_gil():
    # Results from several threads at once equal the lone result.
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(3)
    a, b = operands(rng, np.float64, 200, 200, 200, False, True)
    lone = ext.blas_gemm(a, b, False, True)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ext.blas_gemm(a, b, False, True), range(8)))
    for got in results:
        np.testing.assert_array_equal(got, lone)


@pytest.mark.parametrize("a, b, kwargs, error", [
    (np.ones((2, 3), np.float32), np.ones((3, 2)), {}, TypeError),
    (np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), {}, TypeError),
    (np.ones((2, 3, 1)), np.ones((3, 2)), {}, ValueError),
    (np.ones((2, 3)), np.ones((2, 3)), {}, ValueError),
    (np.ones((3, 2)).T, np.ones((3, 2)), {}, ValueError),
    (np.ones((2, 3)), np.ones((3, 2)), {"beta": 1.0}, ValueError),
    (np.ones((2, 3)), np.ones((3, 2)), {"out": np.ones((2, 2), np.float32)}, ValueError),
    (np.ones((2, 3)), np.ones((3, 2)), {"out": np.ones((3, 3))}, ValueError),
])
def test_gemm_rejects_bad_arguments(a, b, kwargs, error):
    with pytest.raises(error):
        ext.blas_gemm(a, b, **kwargs)


def test_gemm_rejects_out_overlapping_an_operand():
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="overlaps"):
        ext.blas_gemm(a, np.ones((3, 3)), out=a)


@pytest.mark.skipif(SOURCE != "vendored", reason="LP64 only: CRNN_BLAS=vendored")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_lp64_sizes_beyond_the_limit_run_on_the_naive_loops(dtype):
    # Sizes > INT32_MAX cannot be passed to an LP64 BLAS; the adapter hands
    # them to the naive loops. A lowered limit exercises that path.
    rng = np.random.default_rng(4)
    old = ext._set_lp64_limit(4)
    try:
        for m, n, k in [(9, 3, 2), (3, 9, 2), (3, 2, 9), (4, 4, 4)]:
            a, b = operands(rng, dtype, m, n, k, False, True)
            got = ext.blas_gemm(a, b, False, True)
            assert_gemm_close(got, a, b, False, True)
            if max(m, n, k) > 4:
                np.testing.assert_array_equal(got, ext.blas_gemm(a, b, False, True, naive=True))
    finally:
        assert ext._set_lp64_limit(old) == 4
    assert ext._set_lp64_limit(0) == 2**31 - 1


# --- the thread pool ------------------------------------------------------------

@pytest.fixture
def restore_num_threads():
    before = ext.get_num_threads()
    yield
    ext.set_num_threads(before)


# Thread counts used are 1 and the count found at start (OpenBLAS caps a
# request at the cores it saw, so "2" is not portable to 1-core machines).

def test_num_threads_round_trip(restore_num_threads):
    before = ext.get_num_threads()
    assert before >= 1
    ext.set_num_threads(1)
    assert ext.get_num_threads() == 1
    ext.set_num_threads(before)
    assert ext.get_num_threads() == before
    with pytest.raises(ValueError):
        ext.set_num_threads(0)


def test_threadpoolctl_sees_the_pool_in_use(restore_num_threads):
    library = ext.blas_info()["library"]
    ext.set_num_threads(1)
    pools = threadpool_openblas()
    assert pools.get(library) == 1, pools


@pytest.mark.skipif(SOURCE != "numpy", reason="needs NumPy's OpenBLAS")
def test_one_pool_shared_with_numpy(restore_num_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert os.path.realpath(VENDORED) not in threadpool_openblas()  # not loaded
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert ext.get_num_threads() == 1


@pytest.mark.skipif(SOURCE != "vendored", reason="needs CRNN_BLAS=vendored")
def test_vendored_pool_is_a_second_pool(restore_num_threads):
    library = ext.blas_info()["library"]
    before = threadpool_openblas()
    numpys = [path for path in before if path.startswith(NUMPY_PREFIX)]
    assert library in before and numpys and library not in numpys, before
    ext.set_num_threads(1)
    after = threadpool_openblas()
    assert after[library] == 1
    # a copy's own set_num_threads changes only that copy
    assert {p: after[p] for p in numpys} == {p: before[p] for p in numpys}


# --- the same module, bound to the vendored copy --------------------------------

def run_python_with_crnn_blas(wanted, args, cwd):
    """Run this interpreter with CRNN_BLAS=wanted on the crnn imported here.

    cwd is elsewhere, so the source tree cannot shadow the installed crnn;
    when crnn is not installed in site-packages (an in-place build),
    PYTHONPATH names its parent so the child imports the same one.
    """
    env = dict(os.environ, CRNN_BLAS=wanted)
    crnn_parent = os.path.dirname(os.path.dirname(os.path.realpath(ext.__file__)))
    site_dirs = {os.path.realpath(d) for d in site.getsitepackages()}
    if crnn_parent not in site_dirs:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (crnn_parent, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_crnn_blas_vendored_passes_this_module(tmp_path):
    if WANTED != "auto":
        pytest.skip("already the child run")
    out = run_python_with_crnn_blas(
        "vendored", ["-m", "pytest", "-q", "-p", "no:cacheprovider",
                     os.path.abspath(__file__)],
        tmp_path)
    report = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, report
    assert " passed" in out.stdout and " failed" not in out.stdout, report
