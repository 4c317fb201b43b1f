"""Input validation, done once in Python before any kernel sees the data.

Every check raises an exception that names the argument, what it got and
what was expected. Nothing here modifies the caller's arrays.
"""

from __future__ import annotations

import numbers

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def layer_dtype(dtype) -> np.dtype:
    """The layer's dtype as np.dtype; raises TypeError unless float32/float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from err
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def positive_int(name: str, value, minimum: int = 1) -> int:
    """value as an int >= minimum; raises TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def float_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """An ndarray of the layer's dtype.

    Arrays of another dtype are refused rather than silently cast (as
    PyTorch does): a float64 array fed to a float32 model is usually a
    mistake that costs precision or speed. Lists and scalars are converted.
    """
    if isinstance(value, np.ndarray):
        if value.dtype != dtype:
            raise TypeError(f"{name} has dtype {value.dtype}, expected {dtype} (the layer's dtype); "
                            f"convert it with .astype(numpy.{dtype.name})")
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return float_array(name, value.detach().cpu().numpy(), dtype)
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of {dtype}, got {type(value).__name__}") from err
    return arr


def shape_is(name: str, arr: np.ndarray, expected: tuple, meaning: str) -> None:
    """Raise ValueError unless arr.shape == expected; meaning spells out the axes."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(expected)} {meaning}")


def lengths_array(lengths, batch: int, steps: int) -> np.ndarray | None:
    """Validated per-sequence lengths as an int64 (B,) array, or None.

    Each length must lie in [0, T]; a length of 0 leaves that sequence's
    state at its initial value and its outputs at 0.
    """
    if lengths is None:
        return None
    if hasattr(lengths, "detach") and hasattr(lengths, "numpy"):  # a torch tensor
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths has shape {arr.shape}, expected ({batch},): one length per sequence")
    if arr.size and (arr.min() < 0 or arr.max() > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the number of time steps), "
                         f"got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def check_finite(name: str, arr: np.ndarray) -> None:
    """Raise ValueError if arr holds NaN or infinity."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
