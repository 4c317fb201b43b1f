"""The performance issue's targets, evaluated on measured numbers.

A target is (label, holds, detail); holds is True, False, or None (cannot be
judged: a contender missing). "At least k x" targets are strict. "No slower
than" targets allow NOISE (5%): time_a <= (1 + NOISE) * time_b; the traps they
guard against cost 2x to 30x, far above that allowance.
"""

from __future__ import annotations

from .contenders import LABEL, PEERS

NOISE = 0.05
PEAK_FRACTION_FOR_1_5X = 0.60


def best_peer(times):
    peers = {p: times[p] for p in PEERS if p in times}
    if not peers:
        return None, None
    name = min(peers, key=peers.get)
    return name, peers[name]


def row_targets(row, times, subject, best_peer_fraction):
    """Per-row targets for the subject (crnn C, or crnn NumPy when C is missing)."""
    out = []
    s = times.get(subject)
    peer, peer_t = best_peer(times)
    if s is None or peer is None:
        out.append((">=1.0x best peer", None, "no subject or no peer"))
    else:
        speed = peer_t / s
        out.append((">=1.0x best peer", speed >= 1.0, f"{speed:.2f}x vs {LABEL[peer]}"))
        if best_peer_fraction is not None and best_peer_fraction < PEAK_FRACTION_FOR_1_5X:
            out.append((">=1.5x (best peer <60% ceiling)", speed >= 1.5, f"{speed:.2f}x"))
        name = row.workload.name
        if name == "small_seq":
            need = 1.5 if row.mode == "infer" else 2.0
            out.append((f"small_seq >={need}x", speed >= need, f"{speed:.2f}x"))
    if s is not None and row.workload.name == "stream":
        if row.cell == "lstm":
            out.append(("stream <=2 us/LSTM step", s <= 2e-6, f"{s * 1e6:.2f} us"))
        for p in ("ort", "torch"):
            if p in times:
                out.append((f"stream >=10x {LABEL[p]}", times[p] / s >= 10, f"{times[p] / s:.1f}x"))
    if "crnn_numpy" in times and "nploop" in times:
        r = times["crnn_numpy"] / times["nploop"]
        out.append(("NumPy backend <= NumPy loop", r <= 1 + NOISE, f"{r:.2f}x the loop's time"))
    return out


def thread_targets(row, t1, t2):
    out = []
    if t1 is None or t2 is None:
        return [("2 threads not slower", None, "missing")]
    speed = t1 / t2
    out.append(("2 threads not slower", t2 <= (1 + NOISE) * t1, f"{speed:.2f}x"))
    if row.workload.name == "large":
        out.append(("large: 2 threads >=1.7x", speed >= 1.7, f"{speed:.2f}x"))
    return out


def alternating_target(alt):
    ratio = alt["alternating"] / (alt["matmul"] + alt["crnn"])
    return ("alternating <= the two alone", ratio <= 1 + NOISE, f"{ratio:.2f}x")


def memory_target(peak, theory):
    ratio = peak / theory
    return ("training peak <=1.2x theory", ratio <= 1.2, f"{ratio:.2f}x")


def growth_target(extra_short, extra_long):
    holds = extra_long <= (1 + NOISE) * max(extra_short, 0) + 64 * 1024
    return ("inference memory independent of T", holds,
            f"{extra_short / 2**20:.2f} -> {extra_long / 2**20:.2f} MiB")


def summarize(targets):
    """'OK', 'FAIL: a, b' or 'n/a' for a list of targets."""
    judged = [t for t in targets if t[1] is not None]
    failed = [t[0] for t in judged if not t[1]]
    if not judged:
        return "n/a"
    return "FAIL: " + "; ".join(failed) if failed else "OK"
