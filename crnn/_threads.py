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

    With n >= 2 the C backend also uses one worker thread of its own:
    inference splits a batch by rows, or a large layer by hidden units;
    training splits a batch by rows and holds the pool at one thread while
    it runs (each of the two threads then calls the BLAS on its own).
    """
    _ext().set_num_threads(positive_int("n", n))


def get_num_threads() -> int:
    """Threads of the BLAS pool crnn calls."""
    return int(_ext().get_num_threads())
