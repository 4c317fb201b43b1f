"""crnn's benchmark: crnn (C and NumPy backends) against PyTorch, ONNX Runtime and a NumPy loop.

Run from the repository root, with OpenBLAS's override variables unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py            # full grid
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --quick    # < ~1 minute

The full run writes bench/RESULTS.md, bench/results.png and bench/results.json.
See bench/README.md for the rows, the method and the targets.
"""

from __future__ import annotations

import os
import statistics
import sys

if __package__ in (None, ""):
    # Run as a script: sys.path[0] is bench/. Import the installed crnn if there
    # is one (a source tree first on sys.path would shadow its compiled
    # extension), then make this repository importable for `bench` (and for
    # crnn when it is not installed).
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    try:
        import crnn  # noqa: F401
    except ImportError:
        pass
    sys.path.append(os.path.dirname(_here))
    __package__ = "bench"   # noqa: A001

import argparse
import datetime
import json
import platform
import shlex
import time
import warnings

import numpy as np

from . import targets as tg
from .contenders import (CONTENDERS, FEWER, LABEL, Skip, VerificationError, build, make_row_data,
                         reference_outputs, verify)
from .workloads import DEFAULT_ROWS, EXTRA_SECTIONS, WORKLOADS, Row, rows_for

HERE = os.path.dirname(os.path.abspath(__file__))
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BUSY_LOAD = 0.5          # 1-minute load average at the start above which the run is flagged
BUSY_OTHERS = 0.25       # cores other processes used, on average, during a section, above which it is flagged


class CpuWatch:
    """How many cores other processes kept busy while this one ran, and how many the
    hypervisor took from this virtual machine (steal), from /proc/stat and os.times."""

    def __init__(self):
        self.start = self._snap()

    @staticmethod
    def _snap():
        try:
            with open("/proc/stat") as f:
                vals = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(vals) - vals[3] - vals[4] - vals[7]) / tick                 # all but idle, iowait, steal
        return time.monotonic(), busy, sum(os.times()[:4]), vals[7] / tick     # own + waited-for children

    def _per_second(self, part):
        end = self._snap()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return max(0.0, part(end) - part(self.start)) / (end[0] - self.start[0])

    def others_cores(self):
        return self._per_second(lambda snap: snap[1] - snap[2])

    def steal_cores(self):
        """Cores' worth of time the host ran something else instead of this machine's CPUs:
        a contender then waits with no process of this machine to show for it."""
        return self._per_second(lambda snap: snap[3])


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="few rounds, small rows only (stream, small_seq), small memory shapes; "
                        "writes files only with --out")
    p.add_argument("--rows", default=None,
                   help="comma-separated sections: " + ", ".join(DEFAULT_ROWS + EXTRA_SECTIONS)
                        + " (and 'tiny', the smoke-test row); default: all")
    p.add_argument("--cells", default="rnn_tanh,lstm,gru")
    p.add_argument("--modes", default="infer,train")
    p.add_argument("--threads", default="1,2", help="BLAS thread counts, e.g. 1,2")
    p.add_argument("--rounds", type=int, default=None, help="round-robin rounds (default 5, quick 3)")
    p.add_argument("--sample-seconds", type=float, default=None,
                   help="length of one timed sample (default 0.25, quick 0.05)")
    p.add_argument("--settle", type=float, default=None,
                   help="least sleep before each sample, continued until the spinning threads of other "
                        "pools park (default 0.12, quick 0.08)")
    p.add_argument("--row-budget", type=float, default=None,
                   help="seconds of timing per row beyond which fewer rounds run (default 60, quick 4)")
    p.add_argument("--skip", default="", help="contenders to leave out: " + ",".join(CONTENDERS))
    p.add_argument("--verify-only", action="store_true", help="build and verify every contender; no timing")
    p.add_argument("--out", default=None, help="markdown results (default bench/RESULTS.md; none in --quick)")
    p.add_argument("--plot", default=None, help="PNG plot (default next to --out: results.png)")
    p.add_argument("--json", default=None, help="raw results (default next to --out: results.json)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-rss", action="store_true", help="skip the RSS subprocess probes")
    p.add_argument("--render", metavar="JSON",
                   help="write --out (markdown) and the plot again from a results.json; run nothing")
    p.add_argument("--rss-probe", nargs=2, metavar=("CONTENDER", "ROW"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.threads = [int(t) for t in a.threads.split(",") if t]
    a.cells = tuple(c for c in a.cells.split(",") if c)
    a.modes = tuple(m for m in a.modes.split(",") if m)
    a.skip = {s for s in a.skip.split(",") if s}
    if a.rows is None:
        a.rows = (["stream", "small_seq"] if a.quick else list(DEFAULT_ROWS)) + list(EXTRA_SECTIONS)
    else:
        a.rows = [r for r in a.rows.split(",") if r]
    unknown = [r for r in a.rows if r not in WORKLOADS and r not in EXTRA_SECTIONS]
    if unknown:
        p.error(f"unknown rows {unknown}")
    a.rounds = a.rounds or (3 if a.quick else 5)
    a.row_budget = a.row_budget or (4.0 if a.quick else 60.0)
    a.sample_seconds = a.sample_seconds or (0.05 if a.quick else 0.25)
    a.settle = (0.08 if a.quick else 0.12) if a.settle is None else a.settle
    if a.out is None and not a.quick and not a.verify_only:
        a.out = os.path.join(HERE, "RESULTS.md")
    if a.out:
        base = os.path.dirname(os.path.abspath(a.out))
        a.plot = a.plot or os.path.join(base, "results.png")
        a.json = a.json or os.path.join(base, "results.json")
    return a


# ------------------------------------------------------------------ environment
def environment(args):
    import crnn
    from crnn import _backend
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__,
            "crnn": f"{crnn.__version__} ({os.path.dirname(crnn.__file__)})",
            "crnn_backends": list(crnn.available_backends()),
            "crnn_c_missing": _backend._c_missing_reason if "c" not in crnn.available_backends() else "",
            "load_start": os.getloadavg(), "threads": args.threads, "rounds": args.rounds,
            "sample_seconds": args.sample_seconds, "settle": args.settle, "quick": args.quick}
    for mod in ("torch", "onnxruntime", "onnx", "matplotlib", "threadpoolctl"):
        try:
            meta[mod] = __import__(mod).__version__
        except ImportError:
            meta[mod] = None
    meta["crnn_blas"] = {}
    if "c" in crnn.available_backends():
        info = _backend.extension().blas_info()
        meta["crnn_blas"] = {k: info.get(k) for k in ("source", "library", "shares_pool")}
    meta["openblas_env"] = {v: os.environ.get(v) for v in OPENBLAS_OVERRIDES if v in os.environ}
    meta["pools"] = _pools()
    from .timing import page_fault_cost
    cost = page_fault_cost()
    meta["page_fault_us"] = None if cost is None else cost * 1e6
    return meta


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _pools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "user_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads", "filepath")
    return [{k: p.get(k) for k in keep if k in p} for p in threadpool_info()]


class Threads:
    """Set every pool to n threads: threadpoolctl (NumPy's and crnn's OpenBLAS, OpenMP),
    torch.set_num_threads, crnn.set_num_threads. ORT gets n through its session options."""

    def __init__(self, n):
        self.n = n
        self.limits = None

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
            self.limits = threadpool_limits(limits=self.n)
        except ImportError:
            warnings.warn("threadpoolctl is not installed: NumPy's BLAS thread count is not controlled")
        try:
            import torch
            torch.set_num_threads(self.n)
        except ImportError:
            pass
        import crnn
        if "c" in crnn.available_backends():
            crnn.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.limits is not None:
            self.limits.restore_original_limits()


# ------------------------------------------------------------------ rows
def fmt_time(seconds, unit):
    if seconds is None:
        return "-"
    if unit == "us/step":
        return f"{seconds * 1e6:.2f}"
    v = seconds * 1e3
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def run_row(row, threads, subject, args, ceiling):
    data = make_row_data(row)
    ref = reference_outputs(data, subject)
    prepared, notes, errors = [], {}, {}
    # above the run's lowest thread count, crnn C at that count too, in the same rounds
    fewer = (FEWER,) if subject == "crnn_c" and threads > min(args.threads) else ()
    for name in CONTENDERS + fewer:
        if name in args.skip:
            notes[name] = "left out (--skip)"
            continue
        try:
            prep = build(name, data, min(args.threads) if name == FEWER else threads)
        except Skip as s:
            notes[name] = str(s)
            continue
        errors[name] = verify(name, prep.outputs(), ref, row.dtype, row.key)   # raises on disagreement
        if prep.note:
            notes[name] = prep.note
        prepared.append(prep)
    rec = {"key": row.key, "workload": row.workload.name, "cell": row.cell, "mode": row.mode,
           "dtype": row.dtype, "unit": row.workload.unit, "flops": row.flops(), "notes": notes,
           "verify_max_rel_error": errors, "times": {}, "samples": {}, "rounds_requested": args.rounds}
    if args.verify_only:
        return rec
    timing = _time(prepared, args)
    times = timing.times
    rec.update(times=times, samples=timing.samples, rounds=timing.rounds, probe=timing.probe,
               settle_max=timing.settle_max, faults=timing.faults)
    peak = ceiling[row.dtype]
    gf = {k: row.flops() / t / 1e9 for k, t in times.items()}
    rec["gflops"] = gf
    rec["pct_ceiling"] = {k: 100 * v / peak for k, v in gf.items()}
    peer, peer_t = tg.best_peer(times)
    rec["best_peer"] = peer
    rec["speedup"] = peer_t / times[subject] if peer and subject in times else None
    frac = rec["pct_ceiling"][peer] / 100 if peer else None
    rec["targets"] = tg.row_targets(row, times, subject, frac)
    return rec


def _time(prepared, args):
    from .timing import SpeedProbe, time_row
    return time_row(prepared, args.rounds, args.sample_seconds, args.settle,
                    budget=args.row_budget, min_rounds=1 if args.quick else 3, probe=SpeedProbe())


def median_or_none(values):
    return statistics.median(values) if values else None


def print_row(rec, subject):
    unit = rec["unit"]
    parts = [f"{rec['workload']:<10} {rec['cell']:<8} {rec['mode']:<5} f{rec['dtype'][5:]:<3}"]
    if not rec["times"]:
        errs = ", ".join(f"{LABEL[k]} {v:.1e}" for k, v in rec["verify_max_rel_error"].items())
        print("  " + parts[0] + "  verified: " + errs, flush=True)
        return
    for name in CONTENDERS:
        t = rec["times"].get(name)
        parts.append(f"{LABEL[name]} {fmt_time(t, unit) if t else '-':>7}")
    t = rec["times"].get(FEWER)
    if t:
        parts.append(f"{LABEL[FEWER]} {fmt_time(t, unit):>7}")
    sp = rec.get("speedup")
    parts.append(f"[{unit}]  {'%.2fx' % sp if sp else '-':>6} vs {LABEL.get(rec['best_peer'], '-')}")
    if rec.get("rounds") != rec.get("rounds_requested"):
        parts.append(f"only {rec['rounds']} round(s)")
    s = rec["times"].get(subject)
    if s:
        parts.append(f"{rec['gflops'][subject]:.1f} GF/s {rec['pct_ceiling'][subject]:.0f}%")
    if rec.get("probe"):
        parts.append(f"probe {min(rec['probe']):.0f}-{max(rec['probe']):.0f} GF/s")
    if rec.get("settle_max") is not None:
        parts.append(f"settle <= {rec['settle_max']:.2f} s")
    print("  " + " | ".join(parts) + "  -> " + tg.summarize(rec["targets"]), flush=True)


# ------------------------------------------------------------------ extra sections
ALT_SHAPE = dict(T=20, B=16, I=128, H=256)    # the "medium-ish" crnn call of the alternating loop


def run_alternating(subject, args):
    import crnn
    from .timing import alternating
    layer = crnn.LSTM(ALT_SHAPE["I"], ALT_SHAPE["H"], seed=0)
    x = np.random.default_rng(0).standard_normal(
        (ALT_SHAPE["T"], ALT_SHAPE["B"], ALT_SHAPE["I"]), dtype=np.float32)
    out = []
    for backend in [b for b in ("c", "numpy") if b in crnn.available_backends()]:
        for n in (128, 256):
            res = alternating(lambda: layer(x), lambda: crnn.use_backend(backend), n,
                              args.rounds, args.sample_seconds, args.settle)
            res.update(backend=backend, n=n, target=tg.alternating_target(res))
            out.append(res)
            print(f"  alternating crnn-{backend:<5} n={n}: matmul {res['matmul'] * 1e6:8.1f} us, "
                  f"crnn {res['crnn'] * 1e6:8.1f} us, alternating {res['alternating'] * 1e6:8.1f} us "
                  f"-> {res['target'][2]} the two alone: {'OK' if res['target'][1] else 'FAIL'}", flush=True)
    return out


def run_lengths(args):
    """The variable-lengths section (bench/lengths.py): one record per cell and mode."""
    import crnn
    from . import lengths as ln
    from .timing import SpeedProbe, time_row
    if "c" not in crnn.available_backends():
        print("  lengths: skipped (no C backend)", flush=True)
        return []
    out = []
    for cell in [c for c in ln.CELLS if c in args.cells]:
        for mode in [m for m in ln.MODES if m in args.modes]:
            prepared, notes, mean_len = ln.prepared_for(cell, mode, skip={"torch_packed"} if "torch" in args.skip else ())
            rec = {"cell": cell, "mode": mode, "mean_length": mean_len, "notes": notes, "times": {}}
            if not args.verify_only:
                timing = time_row(prepared, args.rounds, args.sample_seconds, args.settle,
                                  budget=args.row_budget, min_rounds=1 if args.quick else 3, probe=SpeedProbe())
                rec.update(times=timing.times, faults=timing.faults, probe=timing.probe, rounds=timing.rounds)
            out.append(rec)
            t = rec["times"]
            print(f"  lengths {cell:<8} {mode:<5} " + ", ".join(f"{ln.NAMES[k]} {v * 1e3:.2f} ms" for k, v in t.items())
                  + ("" if t else "verified"), flush=True)
    return out


def run_memory(subject, args):
    import crnn
    from . import memory
    w_name = "small_seq" if args.quick else "medium"
    rows = [Row(WORKLOADS[w_name], c, "train", "float32") for c in ("rnn_tanh", "lstm", "gru") if c in args.cells]
    if not args.quick and "lstm" in args.cells:
        rows.append(Row(WORKLOADS["stacked"], "lstm", "train", "float32"))
    kinds = [k for k in ("crnn_c", "crnn_numpy", "nploop")
             if (k != "crnn_c" or "c" in crnn.available_backends()) and k not in args.skip]
    do_rss = not args.quick and not args.no_rss
    rss_kinds = list(kinds)
    try:
        import torch  # noqa: F401
        if "torch" not in args.skip and do_rss:
            rss_kinds.append("torch")
    except ImportError:
        pass
    training = []
    for row in rows:
        theory = memory.theoretical(row)
        total = sum(theory.values())
        new_only = total - theory["parameters"] - row.workload.T * row.workload.B * row.workload.I * row.np_dtype.itemsize \
            - row.workload.T * row.workload.B * row.D * row.workload.H * row.np_dtype.itemsize
        for kind in rss_kinds:
            rec = {"key": row.key, "kind": kind, "theory": theory, "theory_total": total,
                   "theory_new": new_only}
            if kind in kinds:
                rec["traced_peak"] = memory.traced_training_peak(kind, row)
                rec["target"] = tg.memory_target(rec["traced_peak"], total)
            if do_rss:
                try:
                    rec["rss"] = memory.rss_delta(kind, row, args.threads[0])
                except Exception as err:         # a probe is a nicety: note it, go on
                    rec["rss_error"] = str(err)[:200]
            training.append(rec)
            msg = f"  memory {row.workload.name:<9} {row.cell:<8} {LABEL[kind]:<10}"
            if "traced_peak" in rec:
                msg += (f" traced peak {rec['traced_peak'] / 2**20:7.2f} MiB vs theory {total / 2**20:7.2f}"
                        f" -> {rec['target'][2]}")
            if "rss" in rec:
                msg += f" | RSS delta {rec['rss']['delta_bytes'] / 2**20:7.2f} MiB (theory excl. params/x/dy {new_only / 2**20:.2f})"
            print(msg, flush=True)
    growth = []
    T1, T2 = (128, 512) if args.quick else (100, 400)
    for cell in [c for c in ("rnn_tanh", "lstm", "gru") if c in args.cells]:
        row = Row(WORKLOADS[w_name], cell, "infer", "float32")
        for kind in [k for k in kinds if k != "nploop"]:
            e1, e2 = memory.inference_extra(kind, row, T1), memory.inference_extra(kind, row, T2)
            t = tg.growth_target(e1, e2)
            growth.append({"key": row.key, "kind": kind, "T": [T1, T2], "extra": [e1, e2], "target": t})
            print(f"  inference extra beyond output {row.cell:<8} {LABEL[kind]:<10} T={T1}: {e1 / 2**20:.2f} MiB, "
                  f"T={T2}: {e2 / 2**20:.2f} MiB -> {'OK' if t[1] else 'FAIL'}", flush=True)
    return {"workload": w_name, "training": training, "inference": growth}


# ------------------------------------------------------------------ main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.rss_probe:
        from .memory import rss_probe
        print(json.dumps(rss_probe(*args.rss_probe)))
        return 0
    if args.render:
        from .report import write_markdown, write_plot
        with open(args.render) as f:
            results = json.load(f)
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.render)), "RESULTS.md")
        write_markdown(results, out)
        plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(out)), "results.png")
        write_plot(results, plot)
        print(f"wrote {out}, {plot}")
        return 0
    import crnn
    t_start = time.time()
    meta = environment(args)
    subject = "crnn_c" if "c" in crnn.available_backends() else "crnn_numpy"
    print(f"crnn {meta['crnn']}; backends {meta['crnn_backends']}; subject: {LABEL[subject]}")
    if subject != "crnn_c":
        print(f"  NOTE: no C backend ({meta['crnn_c_missing']}); crnn NumPy stands in as the subject")
    print(f"{meta['cpu']}, {meta['cores']} cores; python {meta['python']}, numpy {meta['numpy']}, "
          f"torch {meta['torch']}, onnxruntime {meta['onnxruntime']}, onnx {meta['onnx']}")
    for v, val in meta["openblas_env"].items():
        print(f"  WARNING: {v}={val} is set: OpenBLAS may run another core's kernels. "
              f"Launch with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for results that count.")
    for pool in meta["pools"]:
        print(f"  pool: {pool.get('internal_api')} {pool.get('version') or ''} "
              f"arch={pool.get('architecture', '-')} threads={pool.get('num_threads')} {pool.get('filepath')}")
    if meta["load_start"][0] > BUSY_LOAD:
        print(f"  NOTE: load average {meta['load_start'][0]:.2f} > {BUSY_LOAD} at the start: the machine may be "
              "busy (a 1-minute average; each thread section below measures what other processes used)")
    print(f"load average at start: {meta['load_start'][0]:.2f}; threads {args.threads}, rounds {args.rounds}, "
          f"samples {args.sample_seconds}s, settle {args.settle}s", flush=True)

    workloads = [r for r in args.rows if r in WORKLOADS]
    rows = rows_for(workloads, args.cells, args.modes)
    results = {"meta": meta, "subject": subject, "threads": {}}
    try:
        for n in args.threads:
            with Threads(n):
                watch = CpuWatch()
                sec = {"rows": [], "alternating": []}
                if not args.verify_only:
                    from .timing import gemm_ceiling
                    big = 1024 if args.quick else 2048
                    sec["ceiling"] = {"float32": gemm_ceiling(big, np.float32),
                                      "float64": gemm_ceiling(1024, np.float64)}
                    print(f"\n== {n} thread(s): ceiling sgemm {big}^3 {sec['ceiling']['float32']:.1f} GFLOP/s, "
                          f"dgemm 1024^3 {sec['ceiling']['float64']:.1f} GFLOP/s", flush=True)
                else:
                    print(f"\n== {n} thread(s): verification only", flush=True)
                for row in rows:
                    rec = run_row(row, n, subject, args, sec.get("ceiling"))
                    sec["rows"].append(rec)
                    print_row(rec, subject)
                if "alternating" in args.rows and not args.verify_only:
                    sec["alternating"] = run_alternating(subject, args)
                if "lengths" in args.rows:
                    sec["lengths"] = run_lengths(args)
                sec["others_cores"], sec["steal_cores"] = watch.others_cores(), watch.steal_cores()
                if sec["others_cores"] is not None:
                    busy = sec["others_cores"] + sec["steal_cores"] > BUSY_OTHERS
                    print(f"  other processes kept {sec['others_cores']:.2f} cores busy and the host took "
                          f"{sec['steal_cores']:.2f} cores (steal) on average during this "
                          f"section{' -- WARNING: not a quiet machine, timings not representative' if busy else ''}")
                results["threads"][str(n)] = sec
        if not args.verify_only:
            results["thread_scaling"] = thread_scaling(results, rows, subject, args.threads)
            if "memory" in args.rows:
                print("\n== memory (float32 training, 1 process)", flush=True)
                with Threads(args.threads[0]):
                    results["memory"] = run_memory(subject, args)
    except VerificationError as err:
        print(f"\nVERIFICATION FAILED: {err}", file=sys.stderr)
        return 2
    meta["load_end"] = os.getloadavg()
    meta["elapsed_s"] = time.time() - t_start
    print(f"\nload average at end: {meta['load_end'][0]:.2f}; elapsed {meta['elapsed_s']:.0f} s")
    if args.verify_only:
        print("all contenders agree with crnn")
        return 0
    summary = target_summary(results)
    print("targets: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if args.out:
        from .report import write_markdown, write_plot
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        write_markdown(results, args.out)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
        print(f"wrote {args.out}, {args.json}")
        if not args.no_plot:
            try:
                write_plot(results, args.plot)
                print(f"wrote {args.plot}")
            except ImportError:
                print("matplotlib not installed: no plot")
    return 0


def thread_scaling(results, rows, subject, thread_counts):
    if len(thread_counts) < 2:
        return []
    lo, hi = str(min(thread_counts)), str(max(thread_counts))
    by = {n: {r["key"]: r for r in results["threads"][n]["rows"]} for n in (lo, hi)}
    out = []
    print(f"\n== thread scaling, {LABEL[subject]}: {lo} -> {hi} threads (judged in the {hi}-thread rows, where "
          f"{lo} thread(s) ran interleaved with them)")
    for row in rows:
        t1 = by[lo].get(row.key, {}).get("times", {}).get(subject)
        t2 = by[hi].get(row.key, {}).get("times", {}).get(subject)
        # the verdict compares the two counts timed in the same rounds; the lower
        # section's time (minutes earlier) only where that is missing
        t1_same = by[hi].get(row.key, {}).get("times", {}).get(FEWER)
        tt = tg.thread_targets(row, t1_same if t1_same is not None else t1, t2)
        probes = [by[n].get(row.key, {}).get("probe") for n in (lo, hi)]
        out.append({"key": row.key, "t_lo": t1, "t_lo_same_row": t1_same, "t_hi": t2, "targets": tt,
                    "probe_lo": median_or_none(probes[0]), "probe_hi": median_or_none(probes[1])})
        print(f"  {row.key:<34} {tt[0][2]:>8} -> {tg.summarize(tt)}")
    return out


def target_summary(results):
    flat = []
    for sec in results["threads"].values():
        for r in sec["rows"]:
            flat += r.get("targets", [])
        flat += [a["target"] for a in sec["alternating"]]
    for r in results.get("thread_scaling", []):
        flat += r["targets"]
    mem = results.get("memory", {})
    flat += [r["target"] for r in mem.get("training", []) if "target" in r and r["kind"] == results["subject"]]
    flat += [r["target"] for r in mem.get("inference", []) if r["kind"] == results["subject"]]
    return {"held": sum(1 for t in flat if t[1] is True), "failed": sum(1 for t in flat if t[1] is False),
            "not judged": sum(1 for t in flat if t[1] is None)}


if __name__ == "__main__":
    sys.exit(main())
