/* parallel.c -- the second thread of parallel.h: the BLAS's pool thread
 * or crnn's worker.
 *
 * Where the binding shares OpenBLAS's pool (crnn_parallel_use_pool), a
 * split hands its second part to OpenBLAS's own thread, which runs it like
 * one of its own jobs and waits for the next, spinning ~0.1 s: the thread
 * a NumPy product left spinning takes a crnn split at once, and the other
 * way round. crnn's worker then never starts. Measured (2 threads, an LSTM
 * call of T=20, B=16, H=256 alternating with a 128^2 or 256^2 float32
 * matmul, the 10th percentile of 320 iterations each, both ways
 * interleaved in one process): 2.8-3.1 ms per iteration on the pool
 * against 4.3-4.7 ms on the worker, which shared the two cores with the
 * spinning pool thread; 1.03-1.07x the sum of the two alone against 1.56x.
 *
 * Otherwise a call hands the worker its rows through two counters: the
 * caller advances `posted` (job n is ready), the worker advances `finished`
 * (job n is done). Each side waits for the other's counter by spinning a
 * short while, then blocking on a condition variable, so a parked worker
 * costs nothing but a fresh one answers within a microsecond of being
 * posted.
 */
#define _GNU_SOURCE /* pthread_setname_np; implies POSIX's pthreads, clock_gettime */

#include "parallel.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h> /* getpid */

/* How long a waiter spins before it blocks. The caller waits for the
 * worker's share of a job, which it has just matched with its own: a short
 * wait. The worker, once done, waits for the next job: the next chunk of
 * the same sequence follows at once, but the next call comes after
 * whatever the application does in between, maybe with the BLAS's own
 * threads, whose core a spinning worker would take: it blocks soon. */
enum { CALLER_SPIN_NS = 200 * 1000, WORKER_SPIN_NS = 20 * 1000 };

/* At a pipeline's meetings a member waits as long as the other's part of a
 * stage is longer than its own: a chunk's steps against its input product,
 * hundreds of microseconds. A member that blocked there let its virtual
 * CPU halt, and waking it again cost the other member, waiting at the next
 * meeting, up to milliseconds on a virtual machine (measured: single calls
 * of a pipelined inference 2-4x slower after the cores had idled). Pipelines
 * spin this long at their meetings instead. */
enum { PIPE_SPIN_NS = 5 * 1000 * 1000 };

/* How long crnn_parallel_barrier spins: set per job, under claim. */
static atomic_long barrier_spin_ns = CALLER_SPIN_NS;

/* ---- a counter one thread advances and another waits on ---- */

typedef struct {
    atomic_long value;    /* only grows */
    atomic_int sleeping;  /* the waiter is (about to be) blocked on cond */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
} progress;

#define PROGRESS_INIT { 0, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER }

static void progress_reset(progress *p)
{
    atomic_store(&p->value, 0);
    atomic_store(&p->sleeping, 0);
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->cond, NULL);
}

/* Publishes v: everything written before this call is visible to the waiter
 * once it sees v. */
static void progress_advance(progress *p, long v)
{
    /* Both stores and both loads below are sequentially consistent: either
     * the waiter sees the new value before it blocks, or this sees its
     * sleeping flag and wakes it (taking the mutex it holds until it is in
     * pthread_cond_wait). No wake-up is lost. */
    atomic_store(&p->value, v);
    if (atomic_load(&p->sleeping)) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
}

static long clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* CPU time of the calling thread: less than its wall time when it was
 * descheduled, i.e. when the two cores had more runnable threads than
 * two. */
static long cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static inline void cpu_relax(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}

/* Returns once p->value >= target. */
static void progress_wait(progress *p, long target, long spin_ns)
{
    if (atomic_load(&p->value) >= target)
        return;
    const long deadline = now_ns() + spin_ns;
    for (unsigned i = 1;; i++) {
        if (atomic_load(&p->value) >= target)
            return;
        cpu_relax();
        if (i % 64 == 0 && now_ns() > deadline)
            break;
    }
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->sleeping, 1);
    while (atomic_load(&p->value) < target)
        pthread_cond_wait(&p->cond, &p->mutex);
    atomic_store(&p->sleeping, 0);
    pthread_mutex_unlock(&p->mutex);
}

/* ---- the worker ---- */

static struct {
    pthread_mutex_t claim;  /* held by the one caller using the worker */
    /* under claim: */
    int started;            /* a worker thread runs in process `pid` */
    pid_t pid;
    pthread_t thread;
    long jobs;              /* jobs posted so far */
    /* the job, written by the caller before it advances `posted` */
    crnn_rows_fn fn;
    void *job;
    ptrdiff_t b0, b1;
    int quit;               /* instead of a job: exit */
    long elapsed_ns;        /* written by the worker: how long its rows took */
    long cpu_ns;            /* and how much of that it ran */
    double caller_share;    /* under claim: see split_rows */
    long alone_until;       /* under claim: see crowded */
    int crowded_jobs;       /* under claim: consecutive crowded jobs */
    progress posted, finished;
    progress arrived[2];    /* crnn_parallel_barrier: the caller's, the worker's */
} worker = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0.5, 0, 0,
             PROGRESS_INIT, PROGRESS_INIT, { PROGRESS_INIT, PROGRESS_INIT } };

/* The two threads seldom run equally fast: OpenBLAS's own threads spin on
 * a core for ~0.1 s after every threaded call (a training step's backward
 * pass leaves them spinning into the next forward) where splits run on
 * crnn's worker, other processes take a core. The rows are shared in
 * proportion to the speeds measured on the previous calls, caller_share
 * of them to the caller, so that neither waits long for the other; which
 * thread computes a row changes nothing in its result. */
static ptrdiff_t split_rows(ptrdiff_t B)
{
    ptrdiff_t split = (ptrdiff_t)(worker.caller_share * (double)B + 0.5);
    return split < 1 ? 1 : split > B - 1 ? B - 1 : split;
}

static void learn_share(ptrdiff_t split, ptrdiff_t B, long caller_ns, long worker_ns)
{
    if (caller_ns <= 0 || worker_ns <= 0)
        return;
    const double caller_rate = (double)split / (double)caller_ns;
    const double worker_rate = (double)(B - split) / (double)worker_ns;
    const double share = 0.5 * worker.caller_share + 0.5 * caller_rate / (caller_rate + worker_rate);
    worker.caller_share = share < 0.1 ? 0.1 : share > 0.9 ? 0.9 : share;
}

/* When the two threads of a split could not both run most of the time
 * (measured: thread CPU time under 3/4 of wall time), a third thread was
 * competing for the cores: typically OpenBLAS's pool threads, which spin
 * on a core for ~0.1 s after a threaded call (an application alternating
 * NumPy matmuls with crnn calls) where splits run on crnn's worker, or
 * another process. Two halves on one free core run slower than one thread
 * alone (measured: 1.3x a single thread's time for an LSTM call right
 * after a 2-thread matmul), so calls run on the caller alone for
 * ALONE_NS, then try the split again. Only after CROWDED_JOBS crowded jobs
 * in a row, though: a spinning pool crowds every job for its ~0.1 s, while
 * a single crowded job is mostly a blip (a kernel thread, the host taking
 * the virtual CPU for a moment), seen about once a second on an idle
 * machine, which alone cost a tenth of the time at two threads. */
enum { ALONE_NS = 100 * 1000 * 1000, CROWDED_JOBS = 3 };

enum { JUDGED_NS = 100 * 1000 };  /* shorter halves: too short to tell */

static atomic_int crowding_check = 1;  /* crnn_parallel_check_crowding */

static int crowded(long caller_wall, long caller_cpu, long worker_wall, long worker_cpu)
{
    if (!atomic_load(&crowding_check) || caller_wall < JUDGED_NS || worker_wall < JUDGED_NS)
        return 0;
    return 4 * caller_cpu < 3 * caller_wall || 4 * worker_cpu < 3 * worker_wall;
}

void crnn_parallel_check_crowding(int on)
{
    atomic_store(&crowding_check, on != 0);
    pthread_mutex_lock(&worker.claim);
    worker.alone_until = 0;
    worker.crowded_jobs = 0;
    pthread_mutex_unlock(&worker.claim);
}

static void *worker_main(void *arg)
{
    (void)arg;
#if defined(__GLIBC__)
    pthread_setname_np(pthread_self(), "crnn-rows");  /* as top -H and /proc show it */
#endif
    for (long n = 1;; n++) {
        progress_wait(&worker.posted, n, WORKER_SPIN_NS);
        if (worker.quit)
            return NULL;
        const long start = now_ns(), start_cpu = cpu_ns();
        worker.fn(worker.job, worker.b0, worker.b1);
        worker.elapsed_ns = now_ns() - start;
        worker.cpu_ns = cpu_ns() - start_cpu;
        progress_advance(&worker.finished, n);
    }
}

/* Starts the worker if it is not running in this process; claim held.
 * Returns 0 if there is none. */
static int worker_running(void)
{
    const pid_t pid = getpid();
    if (worker.started && worker.pid == pid)
        return 1;
    /* Never started, or started by the parent of this forked child, where
     * the thread does not exist: start afresh. */
    progress_reset(&worker.posted);
    progress_reset(&worker.finished);
    progress_reset(&worker.arrived[0]);
    progress_reset(&worker.arrived[1]);
    worker.jobs = 0;
    worker.quit = 0;
    worker.caller_share = 0.5;
    worker.alone_until = 0;
    worker.crowded_jobs = 0;
    /* Signals stay with the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int rc = pthread_create(&worker.thread, NULL, worker_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    worker.started = rc == 0;
    worker.pid = pid;
    return worker.started;
}

/* After a split job (claim held): count it toward the back-off if crowded,
 * else learn the threads' speeds from it (learn: rows, whose split follows
 * them). */
static void judge_job(ptrdiff_t split, ptrdiff_t B, long caller_ns, long caller_cpu, int learn)
{
    if (crowded(caller_ns, caller_cpu, worker.elapsed_ns, worker.cpu_ns)) {
        if (++worker.crowded_jobs >= CROWDED_JOBS) {
            worker.alone_until = now_ns() + ALONE_NS;
            worker.crowded_jobs = 0;
        }
        return;
    }
    worker.crowded_jobs = 0;
    if (learn)
        learn_share(split, B, caller_ns, worker.elapsed_ns);
}

/* ---- the BLAS's pool in place of the worker (crnn_parallel_use_pool) ---- */

static struct {
    _Atomic(crnn_pool_run_fn) run;
    const crnn_blas *_Atomic blas;
} pool;

static atomic_long splits_on_pool, splits_on_worker;  /* crnn_parallel_split_counts */

void crnn_parallel_split_counts(long *on_pool, long *on_worker)
{
    *on_pool = atomic_load(&splits_on_pool);
    *on_worker = atomic_load(&splits_on_worker);
}

void crnn_parallel_use_pool(const crnn_blas *blas, crnn_pool_run_fn run)
{
    atomic_store(&pool.blas, blas);
    atomic_store(&pool.run, blas != NULL ? run : NULL);
}

/* One part of a split on the pool, and how long it took (for judge_job). */
typedef struct {
    crnn_rows_fn fn;
    void *job;
    ptrdiff_t b0, b1;
    long elapsed_ns, cpu_ns;
} pool_part;

static void run_pool_part(void *arg)
{
    pool_part *part = arg;
    const long start = now_ns(), start_cpu = cpu_ns();
    part->fn(part->job, part->b0, part->b1);
    part->elapsed_ns = now_ns() - start;
    part->cpu_ns = cpu_ns() - start_cpu;
}

/* The split's two parts on the pool (claim held); 0 if it ran nothing. */
static int split_on_pool(crnn_rows_fn fn, void *job, ptrdiff_t at, ptrdiff_t B, long *caller_ns,
                         long *caller_cpu)
{
    const crnn_pool_run_fn run = atomic_load(&pool.run);
    const crnn_blas *blas = atomic_load(&pool.blas);
    if (run == NULL || blas == NULL)
        return 0;
    pool_part parts[2] = { { fn, job, 0, at, 0, 0 }, { fn, job, at, B, 0, 0 } };
    crnn_parallel_blas_solo_begin(blas);
    const int ran = run(run_pool_part, parts, (int)sizeof parts[0]);
    crnn_parallel_blas_solo_end(blas);
    if (ran) {
        atomic_fetch_add(&splits_on_pool, 1);
        *caller_ns = parts[0].elapsed_ns;
        *caller_cpu = parts[0].cpu_ns;
        worker.elapsed_ns = parts[1].elapsed_ns;
        worker.cpu_ns = parts[1].cpu_ns;
    }
    return ran;
}

/* crnn_parallel_rows, and crnn_parallel_team with learn = 0 (a team's
 * halves are fixed by its job, not by the measured speeds). heed = 0
 * (crnn_parallel_pair) splits even while calls are sent to the caller
 * alone; judge = 0 (pairs) counts the job neither way toward crowding: see
 * there. barrier_spin: how long crnn_parallel_barrier spins in this job. */
static void split(int threads, crnn_rows_fn fn, void *job, ptrdiff_t B, int learn, int heed, int judge,
                  long barrier_spin)
{
    if (threads < 2 || B < 2 || pthread_mutex_trylock(&worker.claim) != 0) {
        fn(job, 0, B);
        return;
    }
    if (heed && now_ns() < worker.alone_until) {
        pthread_mutex_unlock(&worker.claim);
        fn(job, 0, B);
        return;
    }
    atomic_store(&barrier_spin_ns, barrier_spin);
    const ptrdiff_t at = split_rows(B);
    long caller_ns, caller_cpu;
    if (split_on_pool(fn, job, at, B, &caller_ns, &caller_cpu)) {
        if (judge)
            judge_job(at, B, caller_ns, caller_cpu, learn);
        pthread_mutex_unlock(&worker.claim);
        return;
    }
    if (!worker_running()) {
        pthread_mutex_unlock(&worker.claim);
        fn(job, 0, B);
        return;
    }
    worker.fn = fn;
    worker.job = job;
    worker.b0 = at;
    worker.b1 = B;
    const long n = ++worker.jobs;
    atomic_fetch_add(&splits_on_worker, 1);
    progress_advance(&worker.posted, n);
    const long start = now_ns(), start_cpu = cpu_ns();
    fn(job, 0, at);
    caller_ns = now_ns() - start;
    caller_cpu = cpu_ns() - start_cpu;
    progress_wait(&worker.finished, n, CALLER_SPIN_NS);
    if (judge)
        judge_job(at, B, caller_ns, caller_cpu, learn);
    pthread_mutex_unlock(&worker.claim);
}

void crnn_parallel_rows(int threads, crnn_rows_fn fn, void *job, ptrdiff_t B)
{
    split(threads, fn, job, B, 1, 1, 1, CALLER_SPIN_NS);
}

void crnn_parallel_team(int threads, crnn_rows_fn fn, void *job)
{
    split(threads, fn, job, 2, 0, 1, 1, CALLER_SPIN_NS);
}

/* A pipeline's members wait at its meetings whenever their part of a
 * stage is the shorter one, by design; they spin there (PIPE_SPIN_NS), so
 * such waits count as CPU time, and a member short of CPU time was kept
 * from a core: pipelines are judged as teams are. */
void crnn_parallel_pipeline(int threads, crnn_rows_fn fn, void *job)
{
    split(threads, fn, job, 2, 0, 1, 1, PIPE_SPIN_NS);
}

void crnn_parallel_barrier(ptrdiff_t member)
{
    /* Each member counts its own arrivals (only it writes its counter);
     * both arrive equally often, so the n-th arrival of one meets the n-th
     * of the other. The wait is the other half of a step, as long as this
     * one's: spin like the caller does for a job. */
    progress *mine = &worker.arrived[member != 0], *other = &worker.arrived[member == 0];
    const long n = atomic_load(&mine->value) + 1;
    progress_advance(mine, n);
    progress_wait(other, n, atomic_load(&barrier_spin_ns));
}

static struct {
    pthread_mutex_t mutex;
    int holders;   /* begins not yet ended */
    int saved;     /* the BLAS's threads before the first begin; 1: nothing set */
} solo = { PTHREAD_MUTEX_INITIALIZER, 0, 1 };

void crnn_parallel_blas_solo_begin(const crnn_blas *blas)
{
    pthread_mutex_lock(&solo.mutex);
    if (solo.holders++ == 0) {
        solo.saved = blas->set_num_threads != NULL && blas->num_threads != NULL ? blas->num_threads() : 1;
        if (solo.saved > 1)
            blas->set_num_threads(1);
    }
    pthread_mutex_unlock(&solo.mutex);
}

void crnn_parallel_blas_solo_end(const crnn_blas *blas)
{
    pthread_mutex_lock(&solo.mutex);
    if (--solo.holders == 0 && solo.saved > 1)
        blas->set_num_threads(solo.saved);
    pthread_mutex_unlock(&solo.mutex);
}

/* Set on a thread while it runs one call of a crnn_parallel_pair. */
static _Thread_local int pair_member;

int crnn_parallel_blas_threads(const crnn_blas *blas)
{
    if (pair_member)
        return 1;
    pthread_mutex_lock(&solo.mutex);
    const int n = solo.holders > 0 ? solo.saved : blas->num_threads != NULL ? blas->num_threads() : 1;
    pthread_mutex_unlock(&solo.mutex);
    return n;
}

typedef struct {
    crnn_call_fn fn;
    void *calls[2];
} pair_job;

/* A team member of crnn_parallel_pair: parts [p0, p1) of the two calls. */
static void pair_members(void *arg, ptrdiff_t p0, ptrdiff_t p1)
{
    const pair_job *job = arg;
    const int was_member = pair_member;
    pair_member = 1;
    for (ptrdiff_t p = p0; p < p1; p++)
        job->fn(job->calls[p]);
    pair_member = was_member;
}

/* A pair splits even when the cores look crowded (see crowded()): alone,
 * the caller runs both calls one after the other, twice the time of one,
 * and two calls that never meet lose no more than that to a core they
 * share with a spinning pool thread or with the host; a row split's halves
 * meet every chunk or step, and those waits are what the back-off avoids.
 * Nor does a pair's long job, which a host's brief steal makes look
 * crowded, send the next calls to the caller alone. */
void crnn_parallel_pair(const crnn_blas *blas, crnn_call_fn fn, void *a, void *b)
{
    pair_job job = { fn, { a, b } };
    if (crnn_parallel_blas_threads(blas) < 2) {
        pair_members(&job, 0, 2);
        return;
    }
    crnn_parallel_blas_solo_begin(blas);
    split(2, pair_members, &job, 2, 0, 0, 0, CALLER_SPIN_NS);
    crnn_parallel_blas_solo_end(blas);
}

void crnn_parallel_shutdown(void)
{
    pthread_mutex_lock(&worker.claim);
    if (worker.started && worker.pid == getpid()) {
        worker.quit = 1;
        progress_advance(&worker.posted, ++worker.jobs);
        pthread_join(worker.thread, NULL);
    }
    worker.started = 0;
    pthread_mutex_unlock(&worker.claim);
}
