"""Round-robin timing: every contender of a row once per round, several rounds, medians.

Each sample repeats the contender's call enough times to last about
`sample_seconds` and records the time per call (per step for the stream row).
Before each sample the harness settles (settle()): it sleeps `settle` seconds
and then on until this process's threads are idle, so the BLAS / OpenMP / ORT
worker threads the previous contender left spinning go to sleep and do not
steal this contender's cores. OpenBLAS's spin is 2^28 time-stamp-counter
ticks: 0.134 s where the counter runs at 2.0 GHz, longer than a fixed 0.12 s.
The round order rotates (a rotation keeps each contender after the same one,
which is why the wait must outlast any spin).
A speed probe (SpeedProbe) read before every sample, between two settles,
records how fast the machine was while the row ran.
Each sample also counts the process's minor page faults (pages the kernel
had to map, and zero, on first touch): when the allocator hands a call
fresh pages every time, the faults can decide a row (see page_fault_cost).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

try:
    import resource
except ImportError:          # not on Windows: no fault counts there
    resource = None


def minor_faults():
    """Minor page faults of this process so far (all its threads), or None where unknown."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else None


def _timed(prep, inner):
    """Seconds for `inner` calls, and the minor page faults they took (None if unknown)."""
    with prep.context():
        f0 = minor_faults()
        t0 = time.perf_counter()
        for _ in range(inner):
            prep.call()
        dt = time.perf_counter() - t0
        f1 = minor_faults()
    return dt, (None if f0 is None else f1 - f0)


def page_fault_cost(megabytes=32, repeats=3):
    """Seconds one minor page fault costs here: fresh anonymous pages touched once
    each, best of `repeats` (None where faults are not counted). glibc's malloc
    serves large arrays from fresh pages (mmap, or a heap top it trimmed after
    the last call) depending on what the process freed before, so the same call
    can fault on every page of its temporaries in one process and on none in
    another: rows decided by a few percent then follow the allocator's state."""
    import mmap
    if resource is None:
        return None
    best = None
    for _ in range(repeats):
        with mmap.mmap(-1, megabytes << 20) as m:
            pages = np.frombuffer(m, dtype=np.uint8)
            f0 = minor_faults()
            t0 = time.perf_counter()
            pages[::mmap.PAGESIZE] = 1
            dt = time.perf_counter() - t0
            faults = minor_faults() - f0
            del pages
        if faults:
            best = dt / faults if best is None else min(best, dt / faults)
    return best


SETTLE_SLICE = 0.01      # s: how often settle() looks at the process's CPU time
SETTLE_IDLE = 0.05       # cores: below this over a slice, the other threads are asleep
SETTLE_LIMIT = 1.0       # s: a thread that spins longer is not waited for


def settle(minimum):
    """Sleep `minimum` seconds, then on until this process's other threads are idle
    (less than SETTLE_IDLE cores of CPU time over a SETTLE_SLICE slice), SETTLE_LIMIT
    seconds at most in all. Returns the seconds waited."""
    start = time.perf_counter()
    time.sleep(minimum)
    while time.perf_counter() - start < SETTLE_LIMIT:
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(SETTLE_SLICE)
        if (time.process_time() - c0) / (time.perf_counter() - w0) < SETTLE_IDLE:
            break
    return time.perf_counter() - start


@dataclass
class RowTiming:
    times: dict          # {name: median seconds per call (or per step)}
    samples: dict        # {name: every sample}
    rounds: int          # rounds run (fewer than asked when the budget binds)
    probe: list          # the probe's readings, GFLOP/s, one before every sample ([] without one)
    settle_max: float    # the longest settle (s): how long spinning threads kept the harness waiting
    faults: dict         # {name: median minor page faults per call (or per step)}; None where unknown


def time_row(prepared, rounds, sample_seconds, settle_s, budget=None, min_rounds=1, probe=None):
    """Times the contenders of a row round-robin; returns a RowTiming.

    With a budget (seconds), fewer rounds (not below min_rounds) are run when `rounds`
    rounds would take longer: it bounds a row where some contender collapses (a busy
    machine), and never binds on a quiet one for the default grid.
    probe: a SpeedProbe, read before each sample between two settles: the threads
    the previous sample left spinning do not slow the probe, and those the probe
    wakes (its matmul uses the BLAS's threads) are asleep again when the sample starts.
    """
    inner, per_round = {}, 0.0
    for p in prepared:
        one = _timed(p, 1)[0]                    # calibration (the verification call warmed it up)
        inner[p.name] = max(1, min(100_000, int(sample_seconds / max(one, 1e-9))))
        per_round += settle_s * (1 if probe is None else 2) + inner[p.name] * one
    if budget is not None and per_round * rounds > budget:
        rounds = max(min_rounds, int(budget // per_round))
    samples = {p.name: [] for p in prepared}
    faults = {p.name: [] for p in prepared}
    readings, waits = [], [0.0]
    n = len(prepared)
    for r in range(rounds):
        for p in prepared[r % n:] + prepared[:r % n]:
            waits.append(settle(settle_s))
            if probe is not None:           # after the last sample's threads, before this one's settle
                readings.append(probe())
                waits.append(settle(settle_s))
            dt, df = _timed(p, inner[p.name])
            samples[p.name].append(dt / inner[p.name] / p.steps_per_call)
            if df is not None:
                faults[p.name].append(df / inner[p.name] / p.steps_per_call)
    return RowTiming({k: statistics.median(v) for k, v in samples.items()}, samples, rounds, readings,
                     max(waits), {k: statistics.median(v) if v else None for k, v in faults.items()})


class SpeedProbe:
    """How fast the machine computes right now: GFLOP/s of a 256^3 float32
    numpy.matmul on the current thread limit, best of 3 (about 1 ms).

    The machine's speed can change by up to 2x within a run in ways neither
    the load nor steal shows (on a virtual machine, the host or another guest
    sharing the physical core, its caches or memory). Read before every sample, the probe
    shows which rows ran while the machine was slow; the ceiling, measured
    once per section, cannot."""

    N = 256

    def __init__(self):
        rng = np.random.default_rng(2)
        self.a = rng.standard_normal((self.N, self.N)).astype(np.float32)
        self.b = rng.standard_normal((self.N, self.N)).astype(np.float32)
        self.c = np.empty((self.N, self.N), np.float32)
        np.matmul(self.a, self.b, out=self.c)

    def __call__(self):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            np.matmul(self.a, self.b, out=self.c)
            best = min(best, time.perf_counter() - t0)
        return 2.0 * self.N ** 3 / best / 1e9


def gemm_ceiling(n, dtype, repeats=7, settle=0.1):
    """GFLOP/s of an n^3 numpy.matmul (best of `repeats`: a ceiling) on the current thread limit."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(repeats):
        time.sleep(settle)
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / min(times) / 1e9


def alternating(rnn_call, rnn_context, n, rounds, sample_seconds, settle_s):
    """numpy.matmul (n x n float32) alone, the crnn call alone, and the two alternating.

    Returns median seconds per iteration: {"matmul", "crnn", "alternating"}.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)

    def mm():
        np.matmul(a, b, out=c)

    def alt():
        np.matmul(a, b, out=c)
        rnn_call()

    variants = {"matmul": mm, "crnn": rnn_call, "alternating": alt}
    inner = {}
    with rnn_context():
        for name, fn in variants.items():
            fn()
            t0 = time.perf_counter()
            fn()
            inner[name] = max(1, int(sample_seconds / max(time.perf_counter() - t0, 1e-9)))
        samples = {k: [] for k in variants}
        names = list(variants)
        for r in range(rounds):
            for name in names[r % 3:] + names[:r % 3]:
                settle(settle_s)
                fn, k = variants[name], inner[name]
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[name].append((time.perf_counter() - t0) / k)
    return {k: statistics.median(v) for k, v in samples.items()}
