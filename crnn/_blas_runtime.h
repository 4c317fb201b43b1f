/* _blas_runtime.h -- the BLAS that the Python extension plugs into the seam.
 *
 * The extension links against no BLAS. When crnn._ext is imported it calls
 * crnn_runtime_blas_init() once, which finds a CBLAS at run time and fills a
 * static crnn_blas (src/blas.h) with adapters to it:
 *
 *   1. NumPy's own OpenBLAS, already loaded by `import numpy` (preferred: one
 *      thread pool shared with NumPy; two OpenBLAS pools in one process slow
 *      each other 20-100x when calls alternate, see shared/BLAS.md);
 *   2. else the copy of scipy-openblas32 vendored in the package
 *      (crnn/_vendor/), loaded by absolute path with RTLD_LOCAL.
 *
 * Kernel bindings get the filled seam from crnn_runtime_blas().
 * Not thread-safe: init runs once, under the import lock.
 */
#ifndef CRNN_BLAS_RUNTIME_H
#define CRNN_BLAS_RUNTIME_H

#include <stddef.h>

#include "blas.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the BLAS may come from (env CRNN_BLAS, parsed in crnn/_ext.pyx). */
typedef enum {
    CRNN_BLAS_FROM_ANY = 0,      /* NumPy's, else the vendored copy */
    CRNN_BLAS_FROM_NUMPY = 1,    /* NumPy's or fail */
    CRNN_BLAS_FROM_VENDORED = 2  /* the vendored copy or fail */
} crnn_blas_from;

/* Status codes. */
enum {
    CRNN_RT_OK = 0,
    CRNN_RT_NOT_FOUND = 1,      /* no usable BLAS (err says where we looked) */
    CRNN_RT_UNSUPPORTED = 2,    /* platform without dl_iterate_phdr/dlopen */
    CRNN_RT_NO_THREAD_API = 3,  /* the BLAS in use has no set/get_num_threads */
    CRNN_RT_BAD_ARG = 4
};

/* What was found; strings are static, valid for the process lifetime. */
typedef struct {
    const char *source;   /* "numpy" or "vendored" */
    const char *library;  /* path of the shared library in use */
    int int_bits;         /* 64 (ILP64) or 32 (LP64) integer arguments */
    const char *config;   /* openblas_get_config(), or "" */
    int shares_pool;      /* 1: the core's splits run their second part on
                             this BLAS's own pool thread (parallel.h) */
} crnn_blas_runtime_info;

/* Find and bind a BLAS. Paths are absolute, NUL-terminated:
 *   numpy_dir: NumPy's package directory (import numpy first). Loaded
 *              objects whose real path starts with it (numpy/..., and the
 *              wheel's numpy.libs/...) are NumPy's; its BLAS is one of them
 *              or one of their dependencies (conda, distro builds);
 *   vendored:  the vendored libscipy_openblas.so.
 * On failure writes a one-line reason into err (err_len bytes) and leaves
 * the previous binding, if any, in place. */
int crnn_runtime_blas_init(crnn_blas_from from, const char *numpy_dir,
                           const char *vendored, char *err, size_t err_len);

/* The bound seam, or NULL before a successful init. */
const crnn_blas *crnn_runtime_blas(void);

/* What the seam is bound to (fields NULL/0 before a successful init). */
const crnn_blas_runtime_info *crnn_runtime_blas_info(void);

/* The thread pool of the BLAS in use (shared with NumPy when source is
 * "numpy"). set returns CRNN_RT_BAD_ARG for n < 1, CRNN_RT_NO_THREAD_API
 * when the library has no such function; get returns -1 then. */
int crnn_runtime_blas_set_num_threads(int n);
int crnn_runtime_blas_get_num_threads(void);

/* Whether the core's two-thread splits run their second part on the bound
 * BLAS's pool thread (on = 1, what init sets) or on crnn's worker (on = 0;
 * tests cover both). Returns 1 if the BLAS has a pool to share (OpenBLAS
 * with gotoblas_pthread and set_num_threads), 0 if splits use the worker
 * whatever on says. Not while a crnn call runs. */
int crnn_runtime_blas_share_pool(int on);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_BLAS_RUNTIME_H */
