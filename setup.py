"""Build crnn: one extension, crnn._ext, and the OpenBLAS it may fall back on.

Metadata lives in pyproject.toml; this file only says what to compile.

- crnn._ext = crnn/_ext.pyx + crnn/_blas_*.c + every src/*.c (globbed, so a
  kernel file added later is compiled without touching this file). It links
  against no BLAS: the BLAS is found at import (crnn/_blas_runtime.h).
- The fallback BLAS, scipy-openblas32's shared library (a build
  requirement, pinned exactly), is copied into crnn/_vendor/ next to the
  extension and loaded from there by absolute path. Only its file is taken:
  get_pkg_config() paths point into pip's temporary build environment.

Environment switches, read at build time (any non-empty value is "on",
as crnn/_backend.py reads CRNN_NO_EXT):
  CRNN_NO_EXT=1        pure-NumPy package: no extension, no vendored BLAS.
  CRNN_CYTHON_DEBUG=1  Cython bounds/wraparound/division/init checks on.
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXT = bool(os.environ.get("CRNN_NO_EXT"))
CYTHON_DEBUG = bool(os.environ.get("CRNN_CYTHON_DEBUG"))

# A build tree per directive set: setuptools and cythonize rebuild on file
# times only, so after a debug build a normal one would reuse debug objects.
BUILD_BASE = os.path.join("build", "debug" if CYTHON_DEBUG else "release")

# Must match _VENDORED_LIBRARY in crnn/_ext.pyx.
VENDOR_DIR = os.path.join("crnn", "_vendor")
VENDORED_NAME = "libscipy_openblas.so"

# Plain -O3 and no -march/-mavx2/-mfma for now: OpenBLAS already picks its
# AVX2/FMA kernels at run time (DYNAMIC_ARCH), and ISA flags would make the
# wheel crash with SIGILL on older CPUs. The pointwise gate loops are the
# place that may want them later, behind a run-time CPU check.
# Never -ffast-math: NaN/Inf must propagate and results must match NumPy.
# -fvisibility=hidden: only PyInit__ext is exported, so the C core's
# symbols (crnn_*) cannot clash with another library in the process.
# -std=c11 (ISO, not gnu11): portable code; a file that needs POSIX or GNU
# names defines _POSIX_C_SOURCE / _GNU_SOURCE itself, as _blas_runtime.c does.
CFLAGS = ["-O3", "-std=c11", "-fvisibility=hidden", "-pthread"]


def _cython_directives():
    checks = CYTHON_DEBUG
    return {
        "language_level": 3,
        "boundscheck": checks,
        "wraparound": checks,
        "initializedcheck": checks,
        "cdivision": not checks,
    }


def _c_sources():
    # src/test*.c would be the C tests' programs (they have a main()).
    return sorted(path for path in glob.glob("src/*.c")
                  if not os.path.basename(path).startswith("test"))


def _extensions():
    if NO_EXT:
        return []
    import numpy
    from Cython.Build import cythonize

    ext = Extension(
        "crnn._ext",
        sources=["crnn/_ext.pyx", "crnn/_blas_runtime.c", "crnn/_blas_cblas.c"]
        + _c_sources(),
        include_dirs=["src", "crnn", numpy.get_include()],
        # setuptools scans no #includes: a changed header rebuilds everything
        depends=sorted(glob.glob("src/*.h") + glob.glob("crnn/_blas_*.h")),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=CFLAGS,
        # dlopen/dlsym live in libdl before glibc 2.34 (manylinux_2_28).
        libraries=["dl"],
        # src/parallel.c runs a worker thread
        extra_link_args=["-pthread"],
    )
    # build_dir keeps the generated _ext.c out of the source tree.
    return cythonize([ext], compiler_directives=_cython_directives(),
                     build_dir=os.path.join(BUILD_BASE, "cython"))


class BuildExtVendoringBlas(build_ext):
    """build_ext that also copies scipy-openblas32's library beside crnn._ext."""

    def _vendored_source(self):
        import scipy_openblas32

        path = os.path.join(scipy_openblas32.get_lib_dir(), VENDORED_NAME)
        if not os.path.isfile(path):
            raise RuntimeError(f"scipy-openblas32 has no {VENDORED_NAME} in "
                               f"{scipy_openblas32.get_lib_dir()}")
        return path

    def _vendored_build_path(self):
        return os.path.join(self.build_lib, VENDOR_DIR, VENDORED_NAME)

    def run(self):
        super().run()
        target = self._vendored_build_path()
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.copy_file(self._vendored_source(), target)
        if self.inplace:  # --inplace and editable installs: the source tree
            os.makedirs(VENDOR_DIR, exist_ok=True)
            self.copy_file(target, os.path.join(VENDOR_DIR, VENDORED_NAME))

    def get_outputs(self):
        if self.inplace:
            return list(self.get_output_mapping())
        return super().get_outputs() + [self._vendored_build_path()]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace:
            mapping[self._vendored_build_path()] = os.path.join(VENDOR_DIR, VENDORED_NAME)
        return mapping


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtVendoringBlas},
    options={"build": {"build_base": BUILD_BASE}},
)
