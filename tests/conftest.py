"""Fixtures shared by the tests: backends, tolerances, random layers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import crnn

# Property tests draw the same examples on every run (a suite that passes
# keeps passing; no example database shared between checkouts);
# HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("crnn", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "crnn"))

# Tolerances per dtype, in one place: (forward, gradient), relative to the
# largest magnitude of the reference array (a floor keeps near-zero arrays honest).
TOLERANCE = {
    np.dtype(np.float32): (2e-5, 5e-5),
    np.dtype(np.float64): (1e-11, 1e-10),
}


@pytest.fixture(params=crnn.available_backends())
def each_backend(request):
    """Run the test once per installed backend ("c" and/or "numpy")."""
    with crnn.use_backend(request.param):
        yield request.param


def assert_close(actual, expected, rtol, name="", floor=1e-6):
    """Same shape and dtype, and max|a - e| <= rtol * max(max|e|, floor)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    scale = max(float(np.abs(expected).max(initial=0.0)), floor)
    err = float(np.abs(actual - expected).max(initial=0.0)) / scale
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:.3g}"
