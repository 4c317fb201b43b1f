/* parallel.h -- a second thread for the rows of a batch. Internal.
 *
 * The sequences of a batch never meet in a forward pass: row b of step t
 * reads only row b of step t-1 (and weights, which nobody writes). So a
 * range of steps can run on rows [0, split) in one thread and on rows
 * [split, B) in another, with no synchronisation until both are done, and
 * every row computed exactly as it would be on one thread.
 *
 * What that buys: the recurrent product runs in the packed kernel
 * (rgemm.h), which is single-threaded, so a step loop with a second core to
 * spare leaves it idle; split by rows, each core streams the packed W_hh
 * from its own L2.
 *
 * The second thread is a thread of the BLAS's own pool where the binding
 * offers one (crnn_parallel_use_pool: OpenBLAS's), else a worker thread of
 * crnn's, one per process, started on first use and then parked (spinning
 * briefly, then blocked on a condition variable). One caller at a time: a
 * caller that finds the second thread busy with another thread's call runs
 * its rows itself. A child process after fork() starts a worker of its own.
 */
#ifndef CRNN_PARALLEL_H
#define CRNN_PARALLEL_H

#include <stddef.h>

#include "blas.h"

/* The work on rows [b0, b1) of a batch; job is the caller's argument. */
typedef void (*crnn_rows_fn)(void *job, ptrdiff_t b0, ptrdiff_t b1);

/* fn(job, 0, B) with threads = 1. With threads = 2 and B >= 2:
 * fn(job, 0, split) on the calling thread and fn(job, split, B) on the
 * worker, 0 < split < B, returning when both are done; or fn(job, 0, B) on
 * the calling thread if the worker is busy with another caller or cannot
 * be started. split follows the speeds of the two threads on the last
 * calls (B / 2 while they are equal). fn must not depend on which thread
 * runs it, nor on split. */
void crnn_parallel_rows(int threads, crnn_rows_fn fn, void *job, ptrdiff_t B);

/* A team of two for work that cannot be split into independent rows: the
 * recurrent product of a large layer, where each core should stream only
 * its own part of W_hh (a row split has both stream all of it). The job is
 * cut into two fixed parts (say, halves of the hidden units) that meet
 * once per step at crnn_parallel_barrier.
 * With threads = 2: fn(job, 0, 1) on the calling thread and fn(job, 1, 2)
 * on the worker, returning when both are done; else (threads = 1, the
 * worker busy or not startable, the cores crowded) fn(job, 0, 2) on the
 * calling thread alone, which then does both parts and calls no barrier. */
void crnn_parallel_team(int threads, crnn_rows_fn fn, void *job);

/* Inside a team's fn(job, p0, p1) with p1 - p0 == 1 only: returns once the
 * other member has called it as many times. */
void crnn_parallel_barrier(ptrdiff_t p0);

/* crnn_parallel_team for a pipeline, whose members take turns waiting on
 * each other at its barriers (a small batch's training passes: common.h):
 * the same, except that its members spin longer there before they block
 * (parallel.c: PIPE_SPIN_NS). */
void crnn_parallel_pipeline(int threads, crnn_rows_fn fn, void *job);

/* Two independent calls at once, one per core: the two directions of a
 * bidirectional layer, each a whole sequence of its own. A call's own splits
 * (rows, units, team inputs) cut it into halves that meet every step or
 * chunk; two calls side by side never meet, and each keeps a full batch for
 * its products.
 * With the BLAS at two or more threads: fn(a) on the calling thread and
 * fn(b) on the worker, the BLAS held at one thread meanwhile (as by
 * crnn_parallel_blas_solo_begin), even while the cores look crowded (a
 * pair neither heeds nor feeds the back-off below; parallel.c says why);
 * or, when the worker is busy with another caller or cannot be started,
 * fn(a) then fn(b) on the calling thread. Either way, inside fn crnn_parallel_blas_threads()
 * reads 1, so each call computes exactly what it computes with the BLAS at
 * one thread, whichever thread runs it. With the BLAS at one thread: fn(a)
 * then fn(b). */
typedef void (*crnn_call_fn)(void *call);
void crnn_parallel_pair(const crnn_blas *blas, crnn_call_fn fn, void *a, void *b);

/* Around a pass whose team members both call the BLAS (training split over
 * two threads): from the first begin to the matching last end, counted over
 * the whole process, the BLAS gives each call one thread
 * (blas->set_num_threads); then the number it gave before is set back.
 * Nothing happens when the BLAS has no set_num_threads or already gives one
 * thread. Another thread's NumPy products run on one thread meanwhile:
 * both cores are taken. */
void crnn_parallel_blas_solo_begin(const crnn_blas *blas);
void crnn_parallel_blas_solo_end(const crnn_blas *blas);

/* The threads the BLAS gives a call outside such passes: what a pass
 * decides its splits by, so that a pass starting while another holds the
 * BLAS at one thread decides (and sums) as it would alone. 1 when the BLAS
 * has no num_threads; 1 inside a crnn_parallel_pair call. */
int crnn_parallel_blas_threads(const crnn_blas *blas);

/* Three splits in a row whose two threads could not both run most of the
 * time (another thread, such as OpenBLAS's spinning pool, held a core) make
 * the next ~0.1 s of calls run on the caller alone (see crowded() in
 * parallel.c).
 * on = 0 turns that off, for tests that must see every split. */
void crnn_parallel_check_crowding(int on);

/* Runs part(parts) on the calling thread and part((char *)parts + stride)
 * on a thread of the BLAS's pool at the same time, returning 1 once both
 * are done; or runs nothing and returns 0 (no pool thread to give). */
typedef int (*crnn_pool_run_fn)(void (*part)(void *), void *parts, int stride);

/* From now on, the splits above run their second part on the BLAS's own
 * pool (run) instead of crnn's worker, falling back to the worker whenever
 * run returns 0; run = NULL goes back to the worker. Why: NumPy shares the
 * BLAS with crnn, and OpenBLAS's pool thread spins on a core for ~0.1 s
 * after each threaded NumPy product; a worker of crnn's split beside it has
 * three threads on two cores, while the pool's own thread takes the part at
 * once. blas is the BLAS whose pool it is: a split on the pool holds it at
 * one thread (crnn_parallel_blas_solo_begin), since a threaded BLAS call
 * from a part would wait for a free pool thread, which may be its own (so
 * another thread must not raise the BLAS's threads while a split runs:
 * crnn's own calls never do). The caller waits for the pool's part the
 * way OpenBLAS does, spinning. Called by the Python binding when it binds
 * a BLAS, before any split. */
void crnn_parallel_use_pool(const crnn_blas *blas, crnn_pool_run_fn run);

/* Splits run so far on two threads, since the process started: *on_pool
 * with the second part on the BLAS's pool, *on_worker on crnn's worker.
 * For tests: the proof that a path ran. */
void crnn_parallel_split_counts(long *on_pool, long *on_worker);

/* Stops and joins the worker, if one is running (the next call to
 * crnn_parallel_rows starts a new one). Not while another thread is inside
 * crnn_parallel_rows. For tests and leak checkers; a process may exit with
 * the worker parked. */
void crnn_parallel_shutdown(void);

#endif /* CRNN_PARALLEL_H */
