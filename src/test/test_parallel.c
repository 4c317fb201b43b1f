/* test_parallel.c -- the worker of parallel.h, and the cells split by rows.
 *
 *     make -C src test       builds and runs this with the other C tests
 *
 * 1. crnn_parallel_rows covers every row exactly once, the worker's rows on
 *    another thread, for batches of 1..40, one and two threads; handing
 *    over while the worker spins and after it has blocked; the split
 *    follows a worker made slower than the caller.
 * 2. Two callers at once: both complete, each with all its rows.
 * 3. Shutdown, then a new worker on the next call.
 * 4. Every cell's float32 forward pass (inference, split; training, which
 *    stays on one thread), ragged lengths, both directions: a seam
 *    reporting two BLAS threads gives the results of one thread, to
 *    rounding: split, the input product runs in the packed kernel (fused
 *    multiply-adds), not in this naive BLAS.
 * 7. rows_cut and live_rows; 8. backward's live rows packed and back.
 * Exit status 0 iff every check passed.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"  /* rows_cut, live_rows, pack_live_rows */
#include "crnn.h"
#include "parallel.h"

static int allok = 1, failures = 0;  /* failures: checks failed so far, for each test's own line */

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL %s\n", what);
        allok = 0;
        failures++;
    }
}

static void sleep_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* ---- 1-3: the worker ---- */

enum { MAX_ROWS = 40 };

typedef struct {
    int seen[MAX_ROWS];          /* times each row was visited */
    pthread_t thread[MAX_ROWS];  /* by whom */
} visits;

static void visit_rows(void *job, ptrdiff_t b0, ptrdiff_t b1)
{
    visits *v = job;
    for (ptrdiff_t b = b0; b < b1; b++) {
        v->seen[b]++;
        v->thread[b] = pthread_self();
    }
}

/* Runs B rows on `threads`; 1 if every row was visited once and, with
 * expect_split, split into a first part on the caller and a non-empty rest
 * on the worker (another caller may hold it otherwise). */
static int rows_ok(int threads, ptrdiff_t B, int expect_split)
{
    visits v;
    memset(&v, 0, sizeof v);
    crnn_parallel_rows(threads, visit_rows, &v, B);
    for (ptrdiff_t b = 0; b < B; b++)
        if (v.seen[b] != 1)
            return 0;
    if (!expect_split)
        return 1;
    const pthread_t self = pthread_self();
    ptrdiff_t on_caller = 0;
    while (on_caller < B && pthread_equal(v.thread[on_caller], self))
        on_caller++;
    for (ptrdiff_t b = on_caller; b < B; b++)
        if (pthread_equal(v.thread[b], self))
            return 0;
    return threads == 2 && B >= 2 ? on_caller >= 1 && on_caller < B : on_caller == B;
}

static void test_rows(void)
{
    const int failed_before = failures;
    int ok = 1;
    for (int threads = 1; threads <= 2; threads++)
        for (ptrdiff_t B = 1; B <= MAX_ROWS; B++)
            ok &= rows_ok(threads, B, 1);
    check(ok, "rows: every row once, the second half on the worker");

    ok = 1;
    for (int i = 0; i < 20000; i++)  /* handed over while the worker spins */
        ok &= rows_ok(2, 8 + i % 5, 1);
    for (int i = 0; i < 50; i++) {   /* and after it has blocked */
        sleep_us(i % 2 ? 30 : 2000);
        ok &= rows_ok(2, 16, 1);
    }
    check(ok, "rows: repeated hand-overs, spinning and blocked");
    printf("%s rows          batches 1..%d, 1 and 2 threads, 20050 hand-overs\n",
           failures == failed_before ? "ok  " : "FAIL", MAX_ROWS);
}

/* Rows cost 10 us on the caller's thread and 40 us on the worker's. */
static pthread_t fast_thread;

static void slow_on_worker(void *job, ptrdiff_t b0, ptrdiff_t b1)
{
    ptrdiff_t *caller_rows = job;
    const int fast = pthread_equal(pthread_self(), fast_thread) != 0;
    if (fast)
        *caller_rows = b1 - b0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    const long cost_ns = (b1 - b0) * (fast ? 10000L : 40000L);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < cost_ns);
}

static void test_split_follows_speeds(void)
{
    fast_thread = pthread_self();
    ptrdiff_t caller_rows = 0;
    /* 4x faster: 16 of 20 rows, but for the clamp (18) and timing noise. On
     * a shared virtual machine the host may stall either thread for
     * milliseconds and so teach the split wrong speeds for a while: up to
     * three rounds of 30 calls, the last call of one must show it. */
    int ok = 0, rounds = 0;
    while (!ok && rounds < 3) {
        for (int i = 0; i < 30; i++)
            crnn_parallel_rows(2, slow_on_worker, &caller_rows, 20);
        ok = caller_rows >= 13;
        rounds++;
    }
    check(ok, "split follows the threads' speeds");
    printf("%s split         a 4x slower worker gets %td of 20 rows (round %d of at most 3)\n",
           ok ? "ok  " : "FAIL", 20 - caller_rows, rounds);
    for (int i = 0; i < 30; i++)  /* and back to equal speeds */
        rows_ok(2, 16, 1);
}

static void *concurrent_caller(void *arg)
{
    int *ok = arg;
    /* either caller may get the worker; each must see all its rows once */
    for (int i = 0; i < 5000; i++)
        *ok &= rows_ok(2, 24, 0);
    return NULL;
}

static void test_concurrent_callers(void)
{
    int ok[2] = { 1, 1 };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, concurrent_caller, &ok[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    check(ok[0] && ok[1], "two callers at once");
    printf("%s two callers   at once, 5000 calls each\n", ok[0] && ok[1] ? "ok  " : "FAIL");
}

static void test_shutdown_restart(void)
{
    crnn_parallel_shutdown();
    crnn_parallel_shutdown();  /* twice: nothing to stop */
    int ok = rows_ok(2, 10, 1);
    crnn_parallel_shutdown();
    ok &= rows_ok(2, 11, 1);
    check(ok, "shutdown, then a new worker");
    printf("%s shutdown      then a new worker on the next call\n", ok ? "ok  " : "FAIL");
}

/* ---- 4: the cells at two threads against one ---- */

static int one_thread(void) { return 1; }

static float *random_array(size_t n, unsigned *state, float scale)
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1103515245u + 12345u;
        a[i] = scale * ((float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f);
    }
    return a;
}

/* The outputs of one forward pass, concatenated. */
typedef struct {
    float *out;
    size_t n;
} result;

enum { CELL_RNN, CELL_LSTM, CELL_GRU };

static result forward(int cell, const crnn_blas *blas, ptrdiff_t T, ptrdiff_t B, ptrdiff_t I,
                      ptrdiff_t H, int reverse, const int64_t *lengths, int train)
{
    const ptrdiff_t G = cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1;
    unsigned seed = 12345;
    float *x = random_array((size_t)(T * B * I), &seed, 1.0f);
    float *W_ih = random_array((size_t)(G * H * I), &seed, 0.2f);
    /* U(-1/sqrt(H), 1/sqrt(H)), as PyTorch initialises: a contracting
     * recurrence, where rounding differences do not grow step by step */
    float *W_hh = random_array((size_t)(G * H * H), &seed, 1.0f / sqrtf((float)H));
    float *b_ih = random_array((size_t)(G * H), &seed, 0.5f);
    float *b_hh = random_array((size_t)(G * H), &seed, 0.5f);
    float *h0 = random_array((size_t)(B * H), &seed, 1.0f);
    float *c0 = random_array((size_t)(B * H), &seed, 1.0f);
    const crnn_weights_f32 w = { .W_ih = W_ih, .W_hh = W_hh, .b_ih = b_ih, .b_hh = b_hh };  /* the rest NULL */

    size_t ws = 0, tape_n = 0;
    crnn_rnn_desc rd = { T, B, I, H, CRNN_TANH, reverse, 0 };
    crnn_lstm_desc ld = { T, B, I, H, 0, reverse, 0, 0, 0.0 };
    crnn_gru_desc gd = { T, B, I, H, reverse, 0, 0 };
    const crnn_pass pass = train ? CRNN_PASS_TRAIN : CRNN_PASS_INFER;
    if (cell == CELL_RNN) {
        ws = crnn_rnn_workspace_size(&rd, pass);
        tape_n = train ? crnn_rnn_tape_size(&rd) : 0;
    } else if (cell == CELL_LSTM) {
        ws = crnn_lstm_workspace_size(&ld, pass);
        tape_n = train ? crnn_lstm_tape_size(&ld) : 0;
    } else {
        ws = crnn_gru_workspace_size(&gd, pass);
        tape_n = train ? crnn_gru_tape_size(&gd) : 0;
    }
    /* y, h_n, c_n, then the tape: all compared */
    result r;
    r.n = (size_t)(T * B * H + 2 * B * H) + tape_n;
    r.out = calloc(r.n, sizeof(float));
    float *y = r.out, *h_n = y + T * B * H, *c_n = h_n + B * H, *tape = c_n + B * H;
    float *workspace = malloc(ws * sizeof(float));
    crnn_status s;
    if (cell == CELL_RNN)
        s = train ? crnn_rnn_forward_train_f32(blas, &rd, &w, lengths, x, h0, y, h_n, tape, tape_n, workspace, ws)
                  : crnn_rnn_forward_f32(blas, &rd, &w, lengths, x, h0, y, h_n, workspace, ws);
    else if (cell == CELL_LSTM)
        s = train ? crnn_lstm_forward_train_f32(blas, &ld, &w, lengths, x, h0, c0, y, h_n, c_n, tape, tape_n, workspace, ws)
                  : crnn_lstm_forward_f32(blas, &ld, &w, lengths, x, h0, c0, y, h_n, c_n, workspace, ws);
    else
        s = train ? crnn_gru_forward_train_f32(blas, &gd, &w, lengths, x, h0, y, h_n, tape, tape_n, workspace, ws)
                  : crnn_gru_forward_f32(blas, &gd, &w, lengths, x, h0, y, h_n, workspace, ws);
    check(s == CRNN_OK, "forward status");
    free(x), free(W_ih), free(W_hh), free(b_ih), free(b_hh), free(h0), free(c0), free(workspace);
    return r;
}

/* max|a - b| <= 1e-5 * max(max|b|, 1) */
static int close(const float *a, const float *b, size_t n)
{
    double err = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return err <= 1e-5 * scale;
}

/* A BLAS whose threads can be set (training splits only with one). */
static int fake_blas_threads = 2;
static int fake_get_threads(void) { return fake_blas_threads; }
static void fake_set_threads(int n) { fake_blas_threads = n; }

/* The naive BLAS with those settable threads, set to n. */
static crnn_blas settable_blas(int n)
{
    crnn_blas blas = *crnn_blas_naive();
    blas.num_threads = fake_get_threads;
    blas.set_num_threads = fake_set_threads;
    fake_blas_threads = n;
    return blas;
}

/* The BLAS gives one thread from the first begin to the last end, then
 * what it gave before; nothing is set where it gives one already. */
static void test_blas_solo(void)
{
    crnn_blas blas = settable_blas(3);
    crnn_parallel_blas_solo_begin(&blas);
    int ok = fake_blas_threads == 1;
    crnn_parallel_blas_solo_begin(&blas);  /* a second pass meanwhile */
    ok &= fake_blas_threads == 1;
    crnn_parallel_blas_solo_end(&blas);
    ok &= fake_blas_threads == 1;
    crnn_parallel_blas_solo_end(&blas);
    ok &= fake_blas_threads == 3;
    fake_blas_threads = 1;
    crnn_parallel_blas_solo_begin(&blas);
    crnn_parallel_blas_solo_end(&blas);
    ok &= fake_blas_threads == 1;
    const crnn_blas *naive = crnn_blas_naive();  /* no thread functions at all */
    crnn_parallel_blas_solo_begin(naive);
    crnn_parallel_blas_solo_end(naive);
    check(ok, "blas solo: one thread inside, the number before after");
    printf("%s blas solo     one BLAS thread while split, restored after, nested\n", ok ? "ok  " : "FAIL");
    fake_blas_threads = 2;
}

/* A call of crnn_parallel_pair: where it ran, and what it saw there. */
typedef struct {
    const crnn_blas *blas;
    pthread_t thread;
    int blas_threads_seen;   /* crnn_parallel_blas_threads() inside */
    int pool_threads_seen;   /* the BLAS's own setting inside */
} pair_call;

static void run_pair_call(void *arg)
{
    pair_call *c = arg;
    c->thread = pthread_self();
    c->blas_threads_seen = crnn_parallel_blas_threads(c->blas);
    c->pool_threads_seen = fake_blas_threads;
}

/* Two calls at once, one on the worker, each seeing one thread; with a
 * one-thread BLAS both on the caller, in order. */
static void test_pair(void)
{
    const int failed_before = failures;
    crnn_blas blas = settable_blas(2);
    pair_call a = { &blas, 0, 0, 0 }, b = { &blas, 0, 0, 0 };
    crnn_parallel_pair(&blas, run_pair_call, &a, &b);
    int ok = pthread_equal(a.thread, pthread_self()) && !pthread_equal(b.thread, pthread_self());
    ok &= a.blas_threads_seen == 1 && b.blas_threads_seen == 1;
    ok &= a.pool_threads_seen == 1 && b.pool_threads_seen == 1;
    ok &= fake_blas_threads == 2 && crnn_parallel_blas_threads(&blas) == 2;
    check(ok, "pair: one call per thread, each seeing one BLAS thread, restored after");
    fake_blas_threads = 1;
    pair_call c = { &blas, 0, 0, 0 }, d = { &blas, 0, 0, 0 };
    crnn_parallel_pair(&blas, run_pair_call, &c, &d);
    check(pthread_equal(c.thread, pthread_self()) && pthread_equal(d.thread, pthread_self())
          && fake_blas_threads == 1, "pair: a one-thread BLAS runs both on the caller");
    printf("%s pair          two calls side by side, each as on one thread\n", failures == failed_before ? "ok  " : "FAIL");
    fake_blas_threads = 2;
}

static void test_cells(void)
{
    crnn_blas one = *crnn_blas_naive(), two = one;
    one.num_threads = one_thread;
    two.num_threads = fake_get_threads;  /* 2, settable: training forwards split too */
    two.set_num_threads = fake_set_threads;
    static const char *names[] = { "rnn", "lstm", "gru" };
    /* T, B, I, H per cell: enough work to be split by rows (parallel_shape()
     * in common.h), inference in chunks of 8 steps, an odd batch, small I
     * (the naive BLAS computes the input product of one thread); RNN and LSTM
     * with the chunk's input product computed by the team first
     * (chunk_input_by_team: B < 32), GRU with each thread's rows' own */
    static const ptrdiff_t shapes[][4] = { { 40, 16, 4, 330 }, { 40, 17, 4, 176 }, { 40, 33, 3, 200 } };
    /* and split by units (units_shape(): B*G*H*H >= 32M per step), odd T:
     * the state ends in the second buffer; inference only (training
     * splits by rows), few steps: slow under valgrind */
    static const ptrdiff_t unit_shapes[][4] = { { 3, 8, 3, 2048 }, { 3, 8, 3, 1024 }, { 3, 8, 3, 1200 } };
    for (int cell = CELL_RNN; cell <= CELL_GRU; cell++) {
        int ok = 1;
        for (int split = 0; split < 2; split++) {
            const ptrdiff_t *shape = split ? unit_shapes[cell] : shapes[cell];
            const ptrdiff_t T = shape[0], B = shape[1], I = shape[2], H = shape[3];
            int64_t lengths[64];
            for (ptrdiff_t b = 0; b < B; b++)
                lengths[b] = b == 0 ? T : (b * 7) % (T + 1);
            for (int variant = 0; variant < 8; variant++) {
                const int reverse = variant & 1, train = (variant >> 1) & 1, ragged = variant >> 2;
                if (split && train)
                    continue;
                const int64_t *len = ragged ? lengths : NULL;
                result a = forward(cell, &one, T, B, I, H, reverse, len, train);
                result b = forward(cell, &two, T, B, I, H, reverse, len, train);
                ok &= a.n == b.n && close(a.out, b.out, a.n);
                free(a.out), free(b.out);
            }
        }
        char what[64];
        snprintf(what, sizeof what, "%s: 2 threads == 1 thread", names[cell]);
        check(ok, what);
        printf("%s %-13s forward, training forward: 2 threads == 1 thread (rows, units)\n",
               ok ? "ok  " : "FAIL", names[cell]);
    }
}

/* ---- 5: a team of two meeting at barriers ---- */

enum { TEAM_ROUNDS = 2000 };

typedef struct {
    volatile long seen[2];  /* the round each member last wrote */
    int ok;
    int parts[2];           /* the parts each call covered, as p1 - p0 */
} team_job;

static void team_member(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    team_job *job = arg;
    job->parts[p0] = (int)(p1 - p0);
    if (p1 - p0 != 1)
        return;  /* alone: no barrier */
    for (long round = 1; round <= TEAM_ROUNDS; round++) {
        job->seen[p0] = round;
        crnn_parallel_barrier(p0);
        /* past the barrier, the other member's write of this round shows */
        if (job->seen[1 - p0] != round)
            job->ok = 0;
        crnn_parallel_barrier(p0);  /* before anyone writes the next round */
    }
}

static void test_team(void)
{
    const int failed_before = failures;
    team_job job = { { 0, 0 }, 1, { 0, 0 } };
    crnn_parallel_team(2, team_member, &job);
    check(job.ok && job.parts[0] == 1 && job.parts[1] == 1, "team: two members meet at every barrier");
    team_job alone = { { 0, 0 }, 1, { 0, 0 } };
    crnn_parallel_team(1, team_member, &alone);
    check(alone.parts[0] == 2, "team: one thread does both parts");
    printf("%s team          two members in lock-step over %d barriers\n", failures == failed_before ? "ok  " : "FAIL", 2 * TEAM_ROUNDS);
}

/* A worker that spends its rows asleep looks like one kept off its core:
 * the next call runs on the caller alone, until the check is reset. */
static void sleepy_on_worker(void *job, ptrdiff_t b0, ptrdiff_t b1)
{
    (void)job, (void)b0, (void)b1;
    if (!pthread_equal(pthread_self(), fast_thread))
        sleep_us(400);
    else {
        struct timespec start, now;  /* the caller's half: 400 us of work */
        clock_gettime(CLOCK_MONOTONIC, &start);
        do
            clock_gettime(CLOCK_MONOTONIC, &now);
        while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 400000L);
    }
}

/* While rows go to the caller alone, a pair still takes the worker. */
static void crowded_pair_splits(void)
{
    crnn_blas blas = settable_blas(2);
    pair_call a = { &blas, 0, 0, 0 }, b = { &blas, 0, 0, 0 };
    crnn_parallel_pair(&blas, run_pair_call, &a, &b);
    check(!pthread_equal(b.thread, pthread_self()), "crowded: a pair still splits");
    check(rows_ok(2, 16, 0), "crowded: the rows after the pair still run alone");
}

static void test_crowded_runs_alone(void)
{
    const int failed_before = failures;
    fast_thread = pthread_self();
    crnn_parallel_check_crowding(1);
    crnn_parallel_rows(2, sleepy_on_worker, NULL, 16);
    check(rows_ok(2, 16, 1), "crowded once: still split");
    crnn_parallel_check_crowding(1);
    for (int i = 0; i < 3; i++)  /* CROWDED_JOBS in a row */
        crnn_parallel_rows(2, sleepy_on_worker, NULL, 16);
    check(rows_ok(2, 16, 0) && !rows_ok(2, 16, 1), "crowded: the next call runs on the caller alone");
    crowded_pair_splits();
    crnn_parallel_check_crowding(0);
    check(rows_ok(2, 16, 1), "crowded: the split again once the check is off");
    printf("%s crowded       a descheduled worker sends calls to the caller alone\n", failures == failed_before ? "ok  " : "FAIL");
}

/* A fake pool (crnn_parallel_use_pool): the second part on a thread of its
 * own, started per call; it records what the BLAS was set to meanwhile.
 * pool_gives = 0: no thread to give. */
static int pool_gives = 1, pool_runs, pool_blas_threads_seen;
static pthread_t pool_thread;

typedef struct {
    void (*part)(void *);
    void *arg;
} pool_call;

static void *pool_thread_main(void *arg)
{
    pool_call *c = arg;
    pool_blas_threads_seen = fake_blas_threads;
    c->part(c->arg);
    return NULL;
}

static int fake_pool_run(void (*part)(void *), void *parts, int stride)
{
    if (!pool_gives)
        return 0;
    pool_call second = { part, (char *)parts + stride };
    if (pthread_create(&pool_thread, NULL, pool_thread_main, &second) != 0)
        return 0;
    part(parts);
    pthread_join(pool_thread, NULL);
    pool_runs++;
    return 1;
}

/* Splits run their second part on the pool while it gives a thread, with
 * the BLAS held at one thread, and on the worker when it does not. */
static void test_pool(void)
{
    const int failed_before = failures;
    crnn_blas blas = settable_blas(2);
    crnn_parallel_use_pool(&blas, fake_pool_run);
    long pool0, worker0, pool1, worker1;
    crnn_parallel_split_counts(&pool0, &worker0);
    visits v;
    memset(&v, 0, sizeof v);
    crnn_parallel_rows(2, visit_rows, &v, 16);
    int ok = pool_runs == 1 && pool_blas_threads_seen == 1 && fake_blas_threads == 2;
    ptrdiff_t on_caller = 0;  /* the first rows on the caller, the rest on the pool */
    while (on_caller < 16 && pthread_equal(v.thread[on_caller], pthread_self()))
        on_caller++;
    ok &= on_caller >= 1 && on_caller < 16;
    for (ptrdiff_t b = 0; b < 16; b++)
        ok &= v.seen[b] == 1 && (b < on_caller || pthread_equal(v.thread[b], pool_thread));
    crnn_parallel_split_counts(&pool1, &worker1);
    ok &= pool1 == pool0 + 1 && worker1 == worker0;
    check(ok, "pool: the second part on the pool, the BLAS at one thread meanwhile, restored after");

    pool_gives = 0;
    ok = rows_ok(2, 16, 1) && pool_runs == 1;
    crnn_parallel_split_counts(&pool1, &worker1);
    ok &= pool1 == pool0 + 1 && worker1 == worker0 + 1;
    check(ok, "pool: no thread to give, the worker takes the part");

    pool_gives = 1;
    team_job job = { { 0, 0 }, 1, { 0, 0 } };
    crnn_parallel_team(2, team_member, &job);
    check(job.ok && job.parts[0] == 1 && job.parts[1] == 1 && pool_runs == 2,
          "pool: a team meets at every barrier across the pool's thread");
    crnn_parallel_use_pool(NULL, NULL);
    ok = rows_ok(2, 16, 1) && pool_runs == 2;
    check(ok, "pool: none set, the worker again");
    printf("%s pool          splits on the BLAS's pool, the worker where it has none\n", failures == failed_before ? "ok  " : "FAIL");
    fake_blas_threads = 2;
}

/* ---- 7: where a team cuts rows of different lengths ---- */

static void test_rows_cut(void)
{
    const int failed_before = failures;
    const int64_t same[4] = { 7, 7, 7, 7 }, sorted[6] = { 100, 90, 40, 20, 10, 5 }, one_left[4] = { 50, 3, 2, 1 };
    check(rows_cut(NULL, 9, 0, 10) == 4 && rows_cut(same, 4, 0, 10) == 2, "rows_cut: halves without lengths");
    /* weights over steps 0..99: 101, 91, 41, 21, 11, 6 (total 271): the first row alone is about half */
    check(rows_cut(sorted, 6, 0, 100) == 1, "rows_cut: the long rows' part has fewer rows");
    /* steps 30..59: 31, 31, 11, 1, 1, 1 (total 76) */
    check(rows_cut(sorted, 6, 30, 30) == 1 || rows_cut(sorted, 6, 30, 30) == 2, "rows_cut: a later chunk");
    check(rows_cut(one_left, 4, 10, 10) == 1, "rows_cut: part 0 keeps at least one row");
    check(live_rows(NULL, 5, 3) == 5 && live_rows(sorted, 6, 0) == 6 && live_rows(sorted, 6, 20) == 3
              && live_rows(sorted, 6, 100) == 0 && live_rows(one_left, 4, 2) == 2,
          "live_rows: one past the last sequence still running");
    const int64_t unsorted[4] = { 1, 9, 2, 3 };
    check(live_rows(unsorted, 4, 2) == 4 && live_rows(unsorted, 4, 3) == 2, "live_rows: unsorted, the trailing finished ones");
    printf("%s rows_cut      cut by work, live rows\n", failures == failed_before ? "ok  " : "FAIL");
}

/* ---- 8: backward's live rows, packed and back ---- */

static void test_live_rows_packing(void)
{
    const int failed_before = failures;
    enum { B = 5, NT = 4, F = 3 };
    const int64_t lengths[B] = { 9, 7, 2, 7, 1 };  /* steps 5..8 live: 4, 4, 1, 1 rows */
    const ptrdiff_t t0 = 5;
    float a[NT * B * F], packed[NT * B * F], two[NT * B * F];
    for (int i = 0; i < NT * B * F; i++)
        a[i] = (float)(i + 1);
    check(live_row_count(lengths, B, t0, NT) == 10 && live_row_count(NULL, B, t0, NT) == NT * B,
          "live_row_count: the chunk's live rows");
    pack_live_rows(lengths, B, t0, NT, F * sizeof(float), a, packed);
    /* steps 5 and 6: rows 0..3 (row 2, finished, sits before a live one), steps 7 and 8: row 0 */
    const int want_rows[10][2] = { { 0, 0 }, { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 0 }, { 1, 1 },
                                   { 1, 2 }, { 1, 3 }, { 2, 0 }, { 3, 0 } };
    int same = 1;
    for (int r = 0; r < 10; r++)
        same &= memcmp(packed + r * F, a + (want_rows[r][0] * B + want_rows[r][1]) * F, F * sizeof(float)) == 0;
    check(same, "pack_live_rows: each step's live rows, one step after another");
    memcpy(two, a, sizeof a);
    pack_live_rows(lengths, B, t0, NT, F * sizeof(float), two, two);
    check(memcmp(two, packed, 10 * F * sizeof(float)) == 0, "pack_live_rows: in place");
    /* back, in two column parts as two team members would, the first of one column */
    unpack_live_rows(lengths, B, t0, NT, F * sizeof(float), 0, sizeof(float), two);
    unpack_live_rows(lengths, B, t0, NT, F * sizeof(float), sizeof(float), F * sizeof(float), two);
    same = 1;
    for (int s = 0; s < NT; s++)
        for (int b = 0; b < B; b++)
            for (int f = 0; f < F; f++) {
                const int i = (s * B + b) * F + f;
                same &= two[i] == (b < live_rows(lengths, B, t0 + s) ? a[i] : 0.0f);
            }
    check(same, "unpack_live_rows: rows back in place, the finished ones after them zero");
    printf("%s live rows     packed for backward's products and back\n", failures == failed_before ? "ok  " : "FAIL");
}

int main(void)
{
    crnn_parallel_check_crowding(0);  /* every split below must happen; tested last */
    test_rows();
    test_split_follows_speeds();
    test_concurrent_callers();
    test_shutdown_restart();
    test_team();
    test_blas_solo();
    test_pair();
    test_pool();
    test_cells();
    test_rows_cut();
    test_live_rows_packing();
    test_crowded_runs_alone();
    crnn_parallel_shutdown();
    printf(allok ? "all ok: parallel\n" : "FAILED: parallel\n");
    return allok ? 0 : 1;
}
