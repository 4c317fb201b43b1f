"""bench/RESULTS.md and bench/results.png from the results of bench/run.py."""

from __future__ import annotations

import statistics

from .contenders import CONTENDERS, LABEL
from .targets import summarize
from .workloads import TAPE_PER_STEP

BUSY_OTHERS = 0.25    # as in run.py

MiB = 2 ** 20


def _memory_verdict(kind, target):
    """The memory target is crnn's: a peer's ratio is shown, not judged."""
    if not target:
        return "not traced"
    if not kind.startswith("crnn"):
        return "peer, not judged"
    return "OK" if target[1] else "**FAIL**"


def _t(seconds, unit):
    if seconds is None:
        return None
    if unit == "us/step":
        return f"{seconds * 1e6:.2f}"
    v = seconds * 1e3
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _probe_cell(readings):
    """The speed probe's readings during a row: 'median (min-max)' GFLOP/s."""
    if not readings:
        return "-"
    return f"{statistics.median(readings):.0f} ({min(readings):.0f}-{max(readings):.0f})"


def _targets_cell(targets):
    s = summarize(targets)
    if s.startswith("FAIL"):
        details = {t[0]: t[2] for t in targets}
        failed = [f"{name} ({details[name]})" for name in s[6:].split("; ")]
        return "**FAIL** " + "; ".join(failed)
    return s


# A contender's page faults are listed under its section when they cost at
# least this share of its time.
FAULT_SHARE_SHOWN = 0.02


def _fault_notes(rows, fault_us):
    """'row: contender N (x%)' for each contender whose minor page faults per call,
    at fault_us microseconds each, cost at least FAULT_SHARE_SHOWN of its time."""
    notes = []
    for r in rows if fault_us else []:
        for k, per_call in (r.get("faults") or {}).items():
            t = r["times"].get(k)
            if per_call and t and per_call * fault_us * 1e-6 >= FAULT_SHARE_SHOWN * t:
                notes.append(f"{r['workload']} {r['cell']} {r['mode']} f{r['dtype'][5:]}: {LABEL[k]} "
                             f"{per_call:.0f} ({100 * per_call * fault_us * 1e-6 / t:.0f}%)")
    return notes


def _lengths_table(recs, threads):
    """The variable-lengths section (bench/lengths.py), or nothing."""
    recs = [r for r in recs or [] if r.get("times")]
    if not recs:
        return []
    from .lengths import NAMES, SHAPE
    L = [f"Variable lengths (bench/lengths.py): T={SHAPE['T']}, B={SHAPE['B']}, I={SHAPE['I']}, H={SHAPE['H']}, "
         f"float32, lengths uniform in [1, T] (mean {recs[0]['mean_length']:.1f}), the batch in no particular "
         f"order; {threads} thread(s), ms per call. No targets (not in the issue's grid).", "",
         "| row | " + " | ".join(NAMES.values()) + " | padded / crnn C | torch, packed / crnn C | "
         "machine speed (probe GFLOP/s) |", "|---|---|---|---|---|---|---|"]
    for r in recs:
        t = r["times"]
        cells = [f"{r['cell']} {r['mode']}"] + [f"{t[k] * 1e3:.3g}" if k in t else "-" for k in NAMES]
        for k in ("crnn_c_padded", "torch_packed"):
            cells.append(f"{t[k] / t['crnn_c']:.2f}x" if k in t and "crnn_c" in t else "-")
        cells.append(_probe_cell(r.get("probe")))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    return L


def write_markdown(results, path):
    m, subject = results["meta"], results["subject"]
    S = LABEL[subject]
    L = ["# crnn benchmark results", ""]
    L.append(f"- date: {m['date']}; elapsed {m.get('elapsed_s', 0):.0f} s; "
             f"{'QUICK run (few rounds, small rows)' if m['quick'] else 'full run'}")
    L.append(f"- machine: {m['cpu']}, {m['cores']} cores; {m['platform']}")
    sections = [s for s in results["threads"].values() if s.get("others_cores") is not None]
    others = [s["others_cores"] for s in sections]
    steal = [s.get("steal_cores") for s in sections]      # None in runs from before it was measured
    busy = any(o + (st or 0.0) > BUSY_OTHERS for o, st in zip(others, steal))
    L.append(f"- load average (1 min) at start {m['load_start'][0]:.2f}, at end {m['load_end'][0]:.2f}; "
             "other processes kept " + ", ".join(f"{o:.2f}" for o in others) + " cores busy and the host took "
             + ", ".join("-" if st is None else f"{st:.2f}" for st in steal) + " cores (steal) on average "
             "during the thread sections" + (" — **not a quiet machine: timings are not representative**"
                                             if busy else ""))
    L.append(f"- python {m['python']}, numpy {m['numpy']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
             f"onnx {m['onnx']}, threadpoolctl {m['threadpoolctl']}")
    L.append(f"- crnn {m['crnn']}, backends {', '.join(m['crnn_backends'])}; subject of the ratios: **{S}**"
             + (f" (no C backend: {m['crnn_c_missing']})" if m["crnn_c_missing"] else ""))
    blas = m.get("crnn_blas") or {}
    if blas:
        second = "OpenBLAS's pool thread (shared with NumPy)" if blas["shares_pool"] else "a worker thread of crnn's"
        L.append(f"- crnn C's BLAS: {blas.get('source')} ({blas.get('library')}); the second thread of its "
                 f"splits: {second}")
    for pool in m["pools"]:
        L.append(f"- pool: {pool.get('internal_api')} {pool.get('version') or ''}, "
                 f"architecture {pool.get('architecture', '-')}, {pool.get('filepath')}")
    env = m["openblas_env"]
    L.append("- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: "
             + ("**SET (" + ", ".join(f"{k}={v}" for k, v in env.items()) + "): not representative**"
                if env else "unset"))
    L.append(f"- thread counts {m['threads']}; {m['rounds']} round-robin rounds, samples of ~{m['sample_seconds']} s, "
             f"before each sample a settle of at least {m['settle']} s that lasts until the process's other threads "
             "are idle; times are medians")
    L.append(f"- command: `{m['command']}`")
    L += ["", "Times in ms per call (stream: us per step). Speedup = best peer's time / "
          f"{S}'s time (peers: torch, ORT, NumPy loop; crnn NumPy is not a peer). GFLOP/s counts "
          "matrix products only (forward 2·T·B·G·H·(I+H) per layer-direction, training 3x forward); "
          "% ceiling is against the numpy matmul measured at the start of the same section, best of 7 "
          "(float32 rows: 2048^3 sgemm, float64 rows: 1024^3 dgemm); peers with their own GEMM (torch's MKL, "
          "ORT's MLAS) can pass 100%. Machine speed: GFLOP/s of a 256^3 float32 numpy.matmul (best of 3) "
          "read before every sample of the row, median (min-max); it drops when something the load and "
          "steal do not show (on a virtual machine, the host or another guest) slows the machine, and rows timed "
          "in such a state compare badly with rows timed outside it. Targets: see bench/README.md.", ""]

    notes = {}
    for n, sec in results["threads"].items():
        c = sec.get("ceiling", {})
        L.append(f"## {n} thread(s)  (other processes: {sec.get('others_cores') or 0:.2f} cores busy, "
                 f"steal {'-' if sec.get('steal_cores') is None else '%.2f' % sec['steal_cores']} cores; ceiling: sgemm {c.get('float32', 0):.1f} GFLOP/s, "
                 f"dgemm {c.get('float64', 0):.1f} GFLOP/s)")
        readings = [v for r in sec["rows"] for v in r.get("probe") or []]
        if readings:
            L.append("")
            L.append(f"Machine speed over the section (probe before every sample): median "
                     f"{statistics.median(readings):.0f} GFLOP/s, range {min(readings):.0f}-{max(readings):.0f}.")
        L.append("")
        head = ["row", "unit"] + [LABEL[k] for k in CONTENDERS] + \
            [f"speedup {S} vs best peer", f"GFLOP/s ({S})", "% ceiling", "best peer % ceiling",
             "machine speed (probe GFLOP/s)", "targets"]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        for r in sec["rows"]:
            cells = [f"{r['workload']} {r['cell']} {r['mode']} f{r['dtype'][5:]}", r["unit"]]
            for k in CONTENDERS:
                t = _t(r["times"].get(k), r["unit"])
                if t is None:
                    note = r["notes"].get(k, "n/a")
                    idx = notes.setdefault(f"{LABEL[k]}: {note}", len(notes) + 1)
                    t = f"skip[{idx}]"
                cells.append(t)
            sp = r.get("speedup")
            bp = r.get("best_peer")
            cells.append(f"{sp:.2f}x ({LABEL[bp]})" if sp else "-")
            g = r.get("gflops", {}).get(subject)
            cells.append(f"{g:.1f}" if g else "-")
            p = r.get("pct_ceiling", {}).get(subject)
            cells.append(f"{p:.0f}%" if p else "-")
            bpp = r.get("pct_ceiling", {}).get(bp) if bp else None
            cells.append(f"{bpp:.0f}%" if bpp else "-")
            cells.append(_probe_cell(r.get("probe")))
            tcell = _targets_cell(r.get("targets", []))
            if r.get("rounds") is not None and r["rounds"] != r.get("rounds_requested"):
                tcell += f" (only {r['rounds']} round(s): row budget)"
            cells.append(tcell)
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        faulty = _fault_notes(sec["rows"], m.get("page_fault_us"))
        if faulty:
            L.append(f"Minor page faults per call (each fresh page a call touches; {m['page_fault_us']:.1f} us "
                     "apiece here, measured at the start) costing at least "
                     f"{100 * FAULT_SHARE_SHOWN:.0f}% of a contender's time, with that share: "
                     + "; ".join(faulty) + ". Whether a call gets fresh pages depends on what the "
                     "process freed before (glibc's malloc), not only on the call: see bench/README.md.")
            L.append("")
        if sec.get("alternating"):
            L.append(f"Alternating `numpy.matmul` (n x n float32) with a crnn LSTM inference call "
                     f"(T=20, B=16, I=128, H=256), {n} thread(s), us per iteration:")
            L.append("")
            L.append("| crnn backend | n | matmul alone | crnn alone | alternating (matmul + crnn) | "
                     "alternating / sum of alone | target |")
            L.append("|---|---|---|---|---|---|---|")
            for a in sec["alternating"]:
                L.append(f"| {a['backend']} | {a['n']} | {a['matmul'] * 1e6:.1f} | {a['crnn'] * 1e6:.1f} | "
                         f"{a['alternating'] * 1e6:.1f} | {a['target'][2]} | {'OK' if a['target'][1] else '**FAIL**'} |")
            L.append("")
        L += _lengths_table(sec.get("lengths"), n)
    if notes:
        L.append("Skipped contenders: " + "; ".join(f"[{i}] {k}" for k, i in notes.items()))
        L.append("")
    extra_notes = sorted({f"{LABEL[k]}: {v}" for sec in results["threads"].values() for r in sec["rows"]
                          for k, v in r["notes"].items() if k in r["times"]})
    if extra_notes:
        L.append("How contenders ran: " + "; ".join(extra_notes))
        L.append("")

    ts = results.get("thread_scaling", [])
    if ts:
        lo, hi = min(m["threads"]), max(m["threads"])
        L.append(f"## Thread scaling of {S}, {lo} -> {hi} threads")
        L.append("")
        L.append(f"Judged in the {hi}-thread rows, where {S} also ran on {lo} thread(s), interleaved "
                 f"with the other contenders (`{lo} thread(s), same row`): both counts timed in the same "
                 f"minutes. The {lo}-thread section's time of the row, measured minutes earlier, is shown "
                 f"beside it; the machine's speed can differ between the two sections. Machine speed: the "
                 f"probe's median during the row in each section (GFLOP/s; the {hi}-thread probe runs on "
                 f"{hi} threads).")
        L.append("")
        L.append(f"| row | {lo} thread(s), same row | {hi} threads | speedup | {lo} thread(s), "
                 f"{lo}-thread section | machine speed {lo} / {hi} | targets |")
        L.append("|---|---|---|---|---|---|---|")
        for r in ts:
            unit = "us/step" if r["key"].startswith("stream") else "ms"
            speeds = " / ".join("-" if r.get(k) is None else f"{r[k]:.0f}" for k in ("probe_lo", "probe_hi"))
            L.append(f"| {r['key']} | {_t(r.get('t_lo_same_row'), unit) or '-'} | "
                     f"{_t(r['t_hi'], unit) or '-'} | {r['targets'][0][2]} | {_t(r['t_lo'], unit) or '-'} | "
                     f"{speeds} | {_targets_cell(r['targets'])} |")
        L.append("")

    mem = results.get("memory")
    if mem:
        L.append(f"## Memory, float32 training ({mem['workload']} shapes; stacked = 2-layer bidirectional LSTM)")
        L.append("")
        L.append("Theoretical live set of one training step = parameters + their gradients + tape + every "
                 "layer's output + x + dy + dx, with the tape per step, per batch row, per layer-direction: "
                 + "; ".join(f"{c} {f}" for c, (f, _) in TAPE_PER_STEP.items())
                 + ". Traced peak: tracemalloc over building the layer, the inputs, forward and backward "
                 "(NumPy arrays included; memory a C library mallocs itself is not seen). RSS delta: a fresh "
                 "process, high-water mark after one step minus RSS before it (parameters, x, dy existed "
                 "before, so compare with the theory without them).")
        L.append("")
        L.append("| row | contender | traced peak MiB | theory MiB | peak / theory | target <=1.2x | "
                 "RSS delta MiB | theory excl. params, x, dy MiB |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in mem["training"]:
            tp = r.get("traced_peak")
            rss = r.get("rss", {}).get("delta_bytes")
            tgt = r.get("target")
            L.append(f"| {r['key']} | {LABEL[r['kind']]} | {tp / MiB:.2f} | {r['theory_total'] / MiB:.2f} | "
                     f"{tgt[2] if tgt else '-'} | {_memory_verdict(r['kind'], tgt)} | "
                     f"{'%.2f' % (rss / MiB) if rss is not None else r.get('rss_error', '-')} | "
                     f"{r['theory_new'] / MiB:.2f} |" if tp is not None else
                     f"| {r['key']} | {LABEL[r['kind']]} | not traced | {r['theory_total'] / MiB:.2f} | - | - | "
                     f"{'%.2f' % (rss / MiB) if rss is not None else r.get('rss_error', '-')} | "
                     f"{r['theory_new'] / MiB:.2f} |")
        L.append("")
        if mem["inference"]:
            T1, T2 = mem["inference"][0]["T"]
            L.append(f"Inference: traced extra memory of one call beyond its output (y and final state), "
                     f"at T={T1} and T={T2} (holds if the extra grows by at most 5% + 64 KiB):")
            L.append("")
            L.append(f"| row | contender | extra MiB at T={T1} | extra MiB at T={T2} | independent of T |")
            L.append("|---|---|---|---|---|")
            for r in mem["inference"]:
                L.append(f"| {r['key']} | {LABEL[r['kind']]} | {r['extra'][0] / MiB:.2f} | {r['extra'][1] / MiB:.2f} | "
                         f"{'OK' if r['target'][1] else '**FAIL**'} |")
            L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def write_plot(results, path):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    subject = results["subject"]
    secs = list(results["threads"].items())
    nrows = max(len(s["rows"]) for _, s in secs)
    fig, axes = plt.subplots(1, len(secs), figsize=(6.5 * len(secs), 0.32 * nrows + 1.8), squeeze=False)
    for ax, (n, sec) in zip(axes[0], secs):
        labels = [f"{r['workload']} {r['cell']} {r['mode']} f{r['dtype'][5:]}" for r in sec["rows"]]
        vals = [r.get("speedup") or 0.0 for r in sec["rows"]]
        colors = ["tab:green" if v >= 1.0 else "tab:red" for v in vals]
        ax.barh(range(len(vals)), vals, color=colors)
        for i, v in enumerate(vals):
            if v:
                ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
        ax.axvline(1.0, color="black", lw=1)
        ax.axvline(1.5, color="gray", lw=1, ls="--")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        lo, hi = min([v for v in vals if v] + [1.0]), max(vals + [1.5])
        ticks = [t for t in (0.01, 0.03, 0.1, 0.25, 0.5, 1, 1.5, 2, 4, 8, 16, 32, 64) if lo / 1.5 <= t <= hi * 1.5]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}x" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"speedup of {LABEL[subject]} over the best peer (log scale)")
        ax.set_title(f"{n} thread(s)")
    fig.suptitle(f"crnn benchmark, {results['meta']['date']}"
                 + (" (quick)" if results["meta"]["quick"] else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
