"""Which kernels run a call: the C core, or the NumPy reference.

The C core is used when its extension imports; otherwise the NumPy
reference, with one warning. The choice can be forced with the environment
variable CRNN_BACKEND=numpy|c (read once at import), process-wide with
set_backend(), or for a block of code (this thread / task only) with the
context manager use_backend(). Both backends expose the same six functions
(see crnn/reference/__init__.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from types import ModuleType
from typing import Iterator

from . import reference

BACKENDS = ("c", "numpy")


def _load_c_kernels() -> tuple[ModuleType | None, str]:
    """Import the C kernels; return (module or None, why not)."""
    if os.environ.get("CRNN_NO_EXT"):
        return None, "CRNN_NO_EXT is set"
    try:
        from . import _c_kernels
    except ImportError as err:
        return None, str(err)
    return _c_kernels, ""


_c, _c_missing_reason = _load_c_kernels()


def _initial_backend() -> str:
    wanted = os.environ.get("CRNN_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        warnings.warn(f"CRNN_BACKEND={wanted!r} is not one of {BACKENDS}; ignoring it", stacklevel=3)
        wanted = ""
    if _c is None:
        if wanted != "numpy":
            warnings.warn(f"crnn: the C extension is not available ({_c_missing_reason}); "
                          "using the NumPy reference backend", stacklevel=3)
        return "numpy"
    return wanted or "c"


_default = _initial_backend()
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("crnn_backend", default=None)


def available_backends() -> tuple[str, ...]:
    """The backends this installation can run: ("c", "numpy") or ("numpy",)."""
    return BACKENDS if _c is not None else ("numpy",)


def _validated(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    if name == "c" and _c is None:
        raise RuntimeError(f"the C backend is not available: {_c_missing_reason}")
    return name


def backend() -> str:
    """Name of the backend in use here: "c" or "numpy"."""
    return _override.get() or _default


def set_backend(name: str) -> None:
    """Select the backend for the whole process ("c" or "numpy").

    Raises ValueError for an unknown name and RuntimeError for "c" when the
    extension is not available.
    """
    global _default
    _default = _validated(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed block on the given backend (this thread/task only)."""
    token = _override.set(_validated(name))
    try:
        yield
    finally:
        _override.reset(token)


def extension() -> ModuleType | None:
    """The compiled extension crnn._ext, or None without it."""
    return _c.extension if _c is not None else None


def kernels() -> ModuleType:
    """The module whose *_forward / *_backward functions run the current call."""
    return _c if backend() == "c" else reference
