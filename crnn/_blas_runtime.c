/* _blas_runtime.c -- find a CBLAS in the running process, bind the seam.
 *
 * NumPy's BLAS is found without linking to it: dl_iterate_phdr lists the
 * loaded objects, those under NumPy's directory are reopened with
 * RTLD_NOLOAD (no new load, just a handle) and dlsym looks the CBLAS names up
 * in each object and its dependencies. The vendored copy is loaded by
 * absolute path with RTLD_LOCAL, never by soname: a soname would bind to
 * whatever library of that name the process already holds (shared/BLAS.md).
 *
 * Symbol names are not an API (NumPy's and scipy-openblas's private
 * layouts), hence a table of the known schemes, tried in order, and a check
 * against OpenBLAS's own config string that the integer width is right:
 * calling an ILP64 BLAS with 32-bit sizes would corrupt memory.
 */
#define _GNU_SOURCE /* dl_iterate_phdr, dladdr, RTLD_NOLOAD */

#include "_blas_runtime.h"

#include "_blas_cblas.h"
#include "parallel.h"

#include <stdarg.h>
#include <stdio.h>  /* snprintf into buffers only; nothing is printed */
#include <stdlib.h>
#include <string.h>

/* One naming scheme a CBLAS may export. */
typedef struct {
    const char *sgemm, *dgemm, *set_threads, *get_threads, *get_config;
    int int_bits; /* 64, 32, or 0: LP64 unless the config says USE64BITINT */
} abi_names;

static const abi_names ABIS[] = {
    /* NumPy >= 2.0 PyPI wheels (scipy-openblas64): ILP64, suffix 64_ */
    {"scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_",
     "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_",
     "scipy_openblas_get_config64_", 64},
    /* NumPy 1.2x PyPI wheels (openblas64_): ILP64, suffix 64_ */
    {"cblas_sgemm64_", "cblas_dgemm64_",
     "openblas_set_num_threads64_", "openblas_get_num_threads64_",
     "openblas_get_config64_", 64},
    /* scipy-openblas32 (the vendored copy, NumPy built against it): LP64 */
    {"scipy_cblas_sgemm", "scipy_cblas_dgemm",
     "scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads",
     "scipy_openblas_get_config", 32},
    /* plain CBLAS (conda, distro and source builds; MKL has no thread or
     * config entry points of these names) */
    {"cblas_sgemm", "cblas_dgemm",
     "openblas_set_num_threads", "openblas_get_num_threads",
     "openblas_get_config", 0},
};
#define N_ABIS (sizeof ABIS / sizeof ABIS[0])

typedef void (*set_threads_fn)(int);
/* OpenBLAS's gotoblas_pthread(n, fn, args, stride): fn(args + i * stride)
 * for i < n on the calling thread (i = 0) and its pool's threads, at once;
 * returns when all are done. Not an API, but exported by every OpenBLAS
 * with a thread pool (driver/others/blas_server.c) for years. */
typedef int (*pool_pthread_fn)(int n, void *fn, void *args, int stride);
typedef int (*get_threads_fn)(void);
typedef char *(*get_config_fn)(void);

/* A library resolved, not yet committed. */
typedef struct {
    void *handle;
    void *sgemm, *dgemm;
    set_threads_fn set_threads;
    get_threads_fn get_threads;
    pool_pthread_fn pool_pthread;   /* OpenBLAS's, or NULL */
    const int *pool_size;           /* its blas_num_threads: pool threads + 1 */
    int int_bits;
    char config[256];
    char path[4096];
} found_blas;

/* The committed binding: written once by a successful init. */
static crnn_blas bound_blas;
static int bound;
static found_blas bound_lib;
static crnn_blas_runtime_info bound_info;

const crnn_blas *crnn_runtime_blas(void)
{
    return bound ? &bound_blas : NULL;
}

const crnn_blas_runtime_info *crnn_runtime_blas_info(void)
{
    return &bound_info;
}

int crnn_runtime_blas_set_num_threads(int n)
{
    if (n < 1)
        return CRNN_RT_BAD_ARG;
    if (!bound || bound_lib.set_threads == NULL)
        return CRNN_RT_NO_THREAD_API;
    bound_lib.set_threads(n);
    return CRNN_RT_OK;
}

int crnn_runtime_blas_get_num_threads(void)
{
    if (!bound || bound_lib.get_threads == NULL)
        return -1;
    return bound_lib.get_threads();
}

/* crnn_parallel_use_pool's run on OpenBLAS's pool (parallel.h). Only with
 * a pool thread to give: with none, gotoblas_pthread would post the part
 * to a thread that does not exist and wait for it forever. */
static int openblas_pool_run(void (*part)(void *), void *parts, int stride)
{
    if (!bound || bound_lib.pool_pthread == NULL || *bound_lib.pool_size < 2)
        return 0;
    bound_lib.pool_pthread(2, (void *)part, parts, stride);
    return 1;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, err_len, fmt, args);
    va_end(args);
}

#if defined(__linux__)

#include <dlfcn.h>
#include <link.h>

/* Look every known scheme up in handle (the object and its dependencies).
 * Fills *f and returns 1 on the first complete, width-consistent match. */
static int resolve_in(void *handle, found_blas *f)
{
    for (size_t i = 0; i < N_ABIS; i++) {
        const abi_names *abi = &ABIS[i];
        void *s = dlsym(handle, abi->sgemm);
        void *d = dlsym(handle, abi->dgemm);
        if (s == NULL || d == NULL)
            continue;

        get_config_fn cfg = (get_config_fn)dlsym(handle, abi->get_config);
        const char *config = cfg != NULL ? cfg() : NULL;
        int says_ilp64 = config != NULL && strstr(config, "USE64BITINT") != NULL;
        int bits = abi->int_bits != 0 ? abi->int_bits : (says_ilp64 ? 64 : 32);
        if (config != NULL && says_ilp64 != (bits == 64))
            continue; /* names and build disagree on the width: unsafe */

        Dl_info where;
        memset(f, 0, sizeof *f);
        const int located = dladdr(s, &where) != 0;  /* sgemm's library */
        if (located && where.dli_fname != NULL) {
            /* the loader's name may read numpy/_core/../../numpy.libs/... */
            char *real = realpath(where.dli_fname, NULL);
            snprintf(f->path, sizeof f->path, "%s", real ? real : where.dli_fname);
            free(real);
        }
        snprintf(f->config, sizeof f->config, "%s", config != NULL ? config : "");
        f->handle = handle;
        f->sgemm = s;
        f->dgemm = d;
        f->set_threads = (set_threads_fn)dlsym(handle, abi->set_threads);
        f->get_threads = (get_threads_fn)dlsym(handle, abi->get_threads);
        f->int_bits = bits;
        /* the pool's entry point and size, if they are the same library's
         * as sgemm (dlsym also searches the dependencies) */
        void *pool = dlsym(handle, "gotoblas_pthread"), *size = dlsym(handle, "blas_num_threads");
        Dl_info pool_at, size_at;
        if (pool != NULL && size != NULL && located && dladdr(pool, &pool_at) != 0
            && dladdr(size, &size_at) != 0 && pool_at.dli_fbase == where.dli_fbase
            && size_at.dli_fbase == where.dli_fbase) {
            f->pool_pthread = (pool_pthread_fn)pool;
            f->pool_size = (const int *)size;
        }
        return 1;
    }
    return 0;
}

/* dl_iterate_phdr collects the paths of NumPy's loaded objects; they are
 * opened afterwards, not inside the callback, which runs under the loader's
 * lock. */
typedef struct {
    const char *prefix; /* real path of NumPy's package directory */
    size_t prefix_len;
    char **paths;
    size_t n, cap;
    int oom;
} object_list;

static int collect_numpy_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    object_list *list = data;
    char real[4096];
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
        return 0;
    if (realpath(info->dlpi_name, real) == NULL)
        return 0;
    /* "numpy" matches both .../numpy/ and the wheel's .../numpy.libs/ */
    if (strncmp(real, list->prefix, list->prefix_len) != 0)
        return 0;
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 32;
        char **grown = realloc(list->paths, cap * sizeof *grown);
        if (grown == NULL) {
            list->oom = 1;
            return 1; /* stop iterating */
        }
        list->paths = grown;
        list->cap = cap;
    }
    list->paths[list->n] = strdup(info->dlpi_name);
    if (list->paths[list->n] == NULL) {
        list->oom = 1;
        return 1;
    }
    list->n++;
    return 0;
}

static int find_numpy_blas(const char *numpy_dir, found_blas *f,
                           char *err, size_t err_len)
{
    char prefix[4096];
    if (numpy_dir == NULL || realpath(numpy_dir, prefix) == NULL) {
        set_err(err, err_len, "NumPy's directory %s does not exist",
                numpy_dir ? numpy_dir : "(null)");
        return CRNN_RT_NOT_FOUND;
    }
    object_list list = {prefix, strlen(prefix), NULL, 0, 0, 0};
    dl_iterate_phdr(collect_numpy_object, &list);

    int found = 0;
    for (size_t i = 0; i < list.n && !found; i++) {
        /* A handle on an object already loaded; nothing new is mapped. */
        void *h = dlopen(list.paths[i], RTLD_NOLOAD | RTLD_LAZY);
        if (h == NULL)
            continue;
        found = resolve_in(h, f);
        if (!found)
            dlclose(h); /* balances the NOLOAD reference; the object stays */
    }
    for (size_t i = 0; i < list.n; i++)
        free(list.paths[i]);
    free(list.paths);

    if (found)
        return CRNN_RT_OK;
    set_err(err, err_len,
            "no CBLAS (sgemm, dgemm) among NumPy's loaded libraries under %s%s",
            prefix, list.oom ? " (out of memory while listing them)" : "");
    return CRNN_RT_NOT_FOUND;
}

static int load_vendored_blas(const char *path, found_blas *f,
                              char *err, size_t err_len)
{
    if (path == NULL || path[0] != '/') {
        set_err(err, err_len, "vendored OpenBLAS path %s is not absolute",
                path ? path : "(null)");
        return CRNN_RT_BAD_ARG;
    }
    /* Absolute path + RTLD_LOCAL: this copy, whatever else is loaded, and its
     * symbols stay out of the global namespace. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        set_err(err, err_len, "cannot load the vendored OpenBLAS: %s",
                why ? why : path);
        return CRNN_RT_NOT_FOUND;
    }
    if (!resolve_in(h, f)) {
        dlclose(h);
        set_err(err, err_len, "no CBLAS (sgemm, dgemm) in the vendored %s", path);
        return CRNN_RT_NOT_FOUND;
    }
    if (f->path[0] == '\0')
        snprintf(f->path, sizeof f->path, "%s", path);
    return CRNN_RT_OK;
}

int crnn_runtime_blas_init(crnn_blas_from from, const char *numpy_dir,
                           const char *vendored, char *err, size_t err_len)
{
    static found_blas f; /* 4 KB path: kept off the stack */
    char numpy_err[1024] = "not tried";
    const char *source = NULL;
    int rc = CRNN_RT_NOT_FOUND;

    if (from != CRNN_BLAS_FROM_ANY && from != CRNN_BLAS_FROM_NUMPY
        && from != CRNN_BLAS_FROM_VENDORED) {
        set_err(err, err_len, "unknown BLAS source %d", (int)from);
        return CRNN_RT_BAD_ARG;
    }
    if (from != CRNN_BLAS_FROM_VENDORED) {
        rc = find_numpy_blas(numpy_dir, &f, numpy_err, sizeof numpy_err);
        source = "numpy";
        if (rc != CRNN_RT_OK && from == CRNN_BLAS_FROM_NUMPY) {
            set_err(err, err_len, "NumPy's BLAS: %s", numpy_err);
            return rc;
        }
    }
    if (rc != CRNN_RT_OK) {
        char vendored_err[1024];
        rc = load_vendored_blas(vendored, &f, vendored_err, sizeof vendored_err);
        source = "vendored";
        if (rc != CRNN_RT_OK) {
            if (from == CRNN_BLAS_FROM_ANY)
                set_err(err, err_len, "NumPy's BLAS: %s; %s", numpy_err, vendored_err);
            else
                set_err(err, err_len, "%s", vendored_err);
            return rc;
        }
    }

    crnn_blas seam;
    if (crnn_cblas_bind(f.sgemm, f.dgemm, f.int_bits, &seam) != 0) {
        set_err(err, err_len, "cannot bind the CBLAS found in %s", f.path);
        return CRNN_RT_NOT_FOUND;
    }
    /* Commit. A handle from an earlier init is kept open on purpose: its
     * library may still be NumPy's, and unloading a BLAS is never safe. */
    bound_lib = f;
    bound_blas = seam;
    bound_blas.num_threads = bound_lib.get_threads != NULL ? crnn_runtime_blas_get_num_threads : NULL;
    bound_blas.set_num_threads = bound_lib.get_threads != NULL ? bound_lib.set_threads : NULL;
    bound_info.source = source;
    bound_info.library = bound_lib.path;
    bound_info.int_bits = bound_lib.int_bits;
    bound_info.config = bound_lib.config;
    bound = 1;
    crnn_runtime_blas_share_pool(1);
    return CRNN_RT_OK;
}

int crnn_runtime_blas_share_pool(int on)
{
    /* splits run their second part on the BLAS's pool thread (parallel.h);
     * holding the BLAS at one thread meanwhile needs its set_num_threads */
    const int can = bound && bound_lib.pool_pthread != NULL && bound_blas.set_num_threads != NULL;
    bound_info.shares_pool = on && can;
    crnn_parallel_use_pool(bound ? &bound_blas : NULL, bound_info.shares_pool ? openblas_pool_run : NULL);
    return can;
}

#else /* not Linux */

int crnn_runtime_blas_init(crnn_blas_from from, const char *numpy_dir,
                           const char *vendored, char *err, size_t err_len)
{
    (void)from;
    (void)numpy_dir;
    (void)vendored;
    set_err(err, err_len, "run-time BLAS lookup is implemented for Linux only");
    return CRNN_RT_UNSUPPORTED;
}

int crnn_runtime_blas_share_pool(int on)
{
    (void)on;
    return 0;
}

#endif
