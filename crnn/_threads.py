"""How many threads the BLAS behind crnn uses.

With the C backend, crnn shares the OpenBLAS that NumPy loaded (or its own
vendored copy): these functions set and read that pool, the one threadpoolctl
reports. Without the extension, crnn's NumPy backend runs on NumPy's BLAS,
which threadpoolctl controls; here they then raise.
"""

from __future__ import annotations

from . import _backend
from ._checks import positive_int


def _ext():
    ext = _backend.extension()
    if ext is None:
        raise RuntimeError("crnn's C extension is not available, so crnn has no BLAS pool of its own; "
                           "use threadpoolctl.threadpool_limits() to limit NumPy's BLAS threads")
    return ext


def set_num_threads(n: int) -> None:
    """Use n >= 1 threads in the BLAS pool crnn calls.

    With n >= 2 the C backend also runs work on a second thread: OpenBLAS's
    own pool thread where the BLAS exports it (blas_info()["shares_pool"]),
    else a worker thread of crnn's. Inference splits a batch by rows, or a
    large layer or a small batch by hidden units; training splits a batch by
    rows, a single sequence's forward pass by hidden units, and runs a small
    batch as a pipeline (one thread steps, the other computes products). The
    pool is held at one thread while a split runs on it and during a split
    training pass (each of the two threads then calls the BLAS on its own).
    """
    _ext().set_num_threads(positive_int("n", n))


def get_num_threads() -> int:
    """Threads of the BLAS pool crnn calls."""
    return int(_ext().get_num_threads())
