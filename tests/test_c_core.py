"""The C core's own test as a pytest: `make -C src test` must exit 0.

src/test/test_core.c runs every kernel (RNN tanh/relu, LSTM with and without
projection, GRU; float32 and float64; lengths, reverse, chunked inference,
no bias, saturation) against golden values from the NumPy reference, checks
that parameter gradients accumulate and that bad arguments return error
codes. It links the naive BLAS, so it needs neither the Python extension nor
a BLAS. Built in a temporary directory: nothing is left in the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def test_c_core_against_golden_values(tmp_path):
    if not (SRC / "Makefile").is_file():
        pytest.skip(f"no C sources to test at {SRC} (tests run outside the source tree)")
    cc, make = _c_compiler(), shutil.which("make")
    if cc is None or make is None:
        pytest.skip("no C toolchain (a C compiler and make) on this machine")
    proc = subprocess.run([make, "-C", str(SRC), "test", f"BUILD={tmp_path}", f"CC={cc}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"make -C src test failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    assert "all ok" in proc.stdout
