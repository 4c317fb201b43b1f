/* bench_rgemm.c -- GFLOP/s of crnn_rgemm_f32 per shape, against a BLAS sgemm.
 *
 *     bench_rgemm [-r rounds] [-d] [-s M N K] [libblas.so [sgemm_symbol]]
 *
 * Per shape (M, N, K): C (M, N) += A (M, K) @ W.T as the recurrent product of
 * a step does it, W (N, K) packed once, over STEPS different A and C (so a
 * call does not find its output in L1 from the previous one). A sample is
 * the time of enough calls for ~2 ms; rounds alternate the contenders so
 * that a neighbour's load hits them alike, and the median sample is printed.
 *
 * Contenders: the kernel (`new`); with -DBENCH_OLD, an earlier rgemm.c
 * compiled in with its symbols renamed old_* (`make bench OLD=path`); with
 * a BLAS library given, its CBLAS sgemm (int32 or, symbol ending in 64_,
 * int64 indices), loaded by dlopen so the build needs no BLAS. Run it on
 * one thread: OPENBLAS_NUM_THREADS=1.
 * -d: float64 (crnn_rgemm_f64, and dgemm if a BLAS and symbol are given).
 * -s M N K: that shape only, instead of the built-in list.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rgemm.h"

#ifdef BENCH_OLD
void old_rgemm_pack_f32(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const float *W, float *Wp);
void old_rgemm_f32(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda,
                   const float *Wp, int accumulate, float *C, ptrdiff_t ldc);
void old_rgemm_pack_f64(ptrdiff_t N, ptrdiff_t K, crnn_trans trans_w, const double *W, double *Wp);
void old_rgemm_f64(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda,
                   const double *Wp, int accumulate, double *C, ptrdiff_t ldc);
#endif

enum { STEPS = 8, MAX_CONTENDERS = 3, CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };

typedef void (*sgemm32_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                           float, float *, int);
typedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                           const float *, int64_t, float, float *, int64_t);
typedef void (*dgemm32_fn)(int, int, int, int, int, int, double, const double *, int, const double *, int,
                           double, double *, int);
typedef void (*dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double, const double *, int64_t,
                           const double *, int64_t, double, double *, int64_t);

/* the BLAS's gemm; one of the four types above, per blas_ilp64 and -d */
static union {
    sgemm32_fn s32;
    sgemm64_fn s64;
    dgemm32_fn d32;
    dgemm64_fn d64;
} blas;
static int blas_ilp64;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *aligned(size_t bytes)
{
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

/* One call of contender `who` on step s's A and C. */
typedef struct {
    ptrdiff_t M, N, K;
    int f64;
    void *A[STEPS], *C[STEPS], *W, *Wp_new, *Wp_old;
} shape;

static void call(const shape *sh, int who, int s)
{
    const ptrdiff_t M = sh->M, N = sh->N, K = sh->K;
    if (!sh->f64) {
        const float *A = sh->A[s];
        float *C = sh->C[s];
        if (who == 0)
            crnn_rgemm_f32(M, N, K, A, K, sh->Wp_new, 1, C, N);
#ifdef BENCH_OLD
        else if (who == 1)
            old_rgemm_f32(M, N, K, A, K, sh->Wp_old, 1, C, N);
#endif
        else if (blas_ilp64)
            blas.s64(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, sh->W, K, 1, C, N);
        else
            blas.s32(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1, A, (int)K,
                                  sh->W, (int)K, 1, C, (int)N);
    } else {
        const double *A = sh->A[s];
        double *C = sh->C[s];
        if (who == 0)
            crnn_rgemm_f64(M, N, K, A, K, sh->Wp_new, 1, C, N);
#ifdef BENCH_OLD
        else if (who == 1)
            old_rgemm_f64(M, N, K, A, K, sh->Wp_old, 1, C, N);
#endif
        else if (blas_ilp64)
            blas.d64(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, sh->W, K, 1, C, N);
        else
            blas.d32(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1, A, (int)K,
                                  sh->W, (int)K, 1, C, (int)N);
    }
}

static void run(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, int f64, int rounds)
{
    const size_t es = f64 ? sizeof(double) : sizeof(float);
    shape sh = { .M = M, .N = N, .K = K, .f64 = f64 };
    for (int s = 0; s < STEPS; s++) {
        sh.A[s] = aligned((size_t)(M * K) * es);
        sh.C[s] = aligned((size_t)(M * N) * es);
        for (ptrdiff_t i = 0; i < M * K; i++) {
            const double v = (double)((i * 7 + s) % 13) / 13.0 - 0.5;
            if (f64) ((double *)sh.A[s])[i] = v; else ((float *)sh.A[s])[i] = (float)v;
        }
        memset(sh.C[s], 0, (size_t)(M * N) * es);
    }
    sh.W = aligned((size_t)(N * K) * es);
    for (ptrdiff_t i = 0; i < N * K; i++) {
        const double v = (double)(i % 17) / 17.0 - 0.5;
        if (f64) ((double *)sh.W)[i] = v; else ((float *)sh.W)[i] = (float)v;
    }
    sh.Wp_new = aligned(crnn_rgemm_packed_size(N, K) * es);
    sh.Wp_old = aligned(crnn_rgemm_packed_size(N, K) * es);
    if (f64) crnn_rgemm_pack_f64(N, K, CRNN_TRANS, sh.W, sh.Wp_new);
    else crnn_rgemm_pack_f32(N, K, CRNN_TRANS, sh.W, sh.Wp_new);
    int present[MAX_CONTENDERS] = { 1, 0, blas.s32 != NULL };
#ifdef BENCH_OLD
    present[1] = 1;
    if (f64) old_rgemm_pack_f64(N, K, CRNN_TRANS, sh.W, sh.Wp_old);
    else old_rgemm_pack_f32(N, K, CRNN_TRANS, sh.W, sh.Wp_old);
#endif

    /* calls per sample: ~2 ms at 100 GFLOP/s, at least STEPS */
    const double flop = 2.0 * M * N * K;
    int calls = (int)(2e-3 * 100e9 / flop);
    calls = calls < STEPS ? STEPS : calls;
    double *t[MAX_CONTENDERS];
    for (int who = 0; who < MAX_CONTENDERS; who++) {
        t[who] = calloc((size_t)rounds, sizeof(double));
        if (present[who])
            for (int i = 0; i < calls; i++)  /* warm up */
                call(&sh, who, i % STEPS);
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < MAX_CONTENDERS; i++) {
            const int who = r % 2 ? MAX_CONTENDERS - 1 - i : i;  /* neither always first */
            if (!present[who])
                continue;
            const double t0 = now();
            for (int c = 0; c < calls; c++)
                call(&sh, who, c % STEPS);
            t[who][r] = now() - t0;
        }
    printf("%4td %5td %5td", M, N, K);
    double gf[MAX_CONTENDERS] = { 0 };
    for (int who = 0; who < MAX_CONTENDERS; who++) {
        if (!present[who]) {
            printf("       -");
            continue;
        }
        qsort(t[who], (size_t)rounds, sizeof(double), cmp_double);
        gf[who] = flop * calls / t[who][rounds / 2] / 1e9;
        printf(" %7.1f", gf[who]);
        free(t[who]);
    }
    if (present[1]) printf("   new/old %5.3f", gf[0] / gf[1]);
    if (present[2]) printf("   new/blas %5.3f", gf[0] / gf[2]);
    printf("\n");
    fflush(stdout);
    for (int s = 0; s < STEPS; s++) {
        free(sh.A[s]);
        free(sh.C[s]);
    }
    free(sh.W);
    free(sh.Wp_new);
    free(sh.Wp_old);
}

int main(int argc, char **argv)
{
    int rounds = 21, f64 = 0, a = 1;
    ptrdiff_t only[3] = { 0 };
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "-s") == 0 && a + 3 < argc) {
            for (int i = 0; i < 3; i++)
                only[i] = atol(argv[++a]);
            continue;
        }
        if (strcmp(argv[a], "-r") == 0 && a + 1 < argc)
            rounds = atoi(argv[++a]);
        else if (strcmp(argv[a], "-d") == 0)
            f64 = 1;
    }
    if (a < argc) {
        void *lib = dlopen(argv[a], RTLD_NOW | RTLD_LOCAL);
        const char *sym = a + 1 < argc ? argv[a + 1] : f64 ? "scipy_cblas_dgemm" : "scipy_cblas_sgemm";
        void *fn = lib ? dlsym(lib, sym) : NULL;
        if (fn == NULL) {
            fprintf(stderr, "no %s in %s: %s\n", sym, argv[a], dlerror());
            return 1;
        }
        memcpy(&blas, &fn, sizeof fn);  /* POSIX: a data pointer from dlsym holds a function */
        blas_ilp64 = strlen(sym) > 3 && strcmp(sym + strlen(sym) - 3, "64_") == 0;
    }
    /* (M, N, K): batch x gates x hidden of the recurrent and input products */
    static const ptrdiff_t shapes[][3] = {
        { 1, 256, 64 },    { 1, 1024, 256 },  { 4, 512, 128 },   { 8, 1024, 256 },   { 16, 1024, 256 },
        { 16, 768, 256 },  { 32, 1024, 256 }, { 32, 4096, 1024 }, { 64, 1024, 256 }, { 64, 1024, 512 },
        { 64, 1024, 1024 }, { 64, 3072, 1024 }, { 64, 4096, 512 }, { 64, 4096, 1024 }, { 128, 4096, 1024 },
        { 512, 4096, 512 },
    };
    const ptrdiff_t f64_shapes[][3] = {
        { 1, 512, 128 }, { 4, 512, 128 }, { 16, 1024, 256 }, { 32, 1024, 256 }, { 64, 1024, 256 },
        { 64, 1024, 512 }, { 64, 2048, 512 }, { 64, 4096, 1024 }, { 128, 1024, 256 }, { 128, 2048, 512 },
    };
    printf("   M     N     K     new     old    blas   (GFLOP/s, median of %d rounds)\n", rounds);
    if (only[0] > 0)
        run(only[0], only[1], only[2], f64, rounds);
    else if (f64)
        for (size_t i = 0; i < sizeof f64_shapes / sizeof *f64_shapes; i++)
            run(f64_shapes[i][0], f64_shapes[i][1], f64_shapes[i][2], 1, rounds);
    else
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
            run(shapes[i][0], shapes[i][1], shapes[i][2], 0, rounds);
    return 0;
}
