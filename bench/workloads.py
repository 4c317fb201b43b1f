"""The benchmark grid: workloads, rows, FLOP counts and the theoretical tape size.

A row is one (workload, cell, mode, dtype). FLOPs count matrix products only:
    forward  = sum over layer-directions of 2*T*B*G*H*(K + H)   (K: that layer's input size)
    training = 3 x forward   (forward + dx/dh products + weight-gradient products)
G: gate blocks (RNN 1, GRU 3, LSTM 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELLS = ("rnn_tanh", "lstm", "gru")
GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class Workload:
    name: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False
    cells: tuple = CELLS
    modes: tuple = ("infer", "train")
    dtypes: tuple = ("float32",)
    unit: str = "ms"             # how the table prints times: "us/step" or "ms"
    quick: bool = False          # part of --quick
    note: str = ""


# T for "stream" is the steps per timed call (the time is then reported per step).
WORKLOADS = {w.name: w for w in [
    Workload("stream", 200, 1, 32, 64, modes=("infer",), unit="us/step", quick=True,
             note="one step per call, state carried between calls"),
    Workload("small_seq", 512, 1, 64, 128, quick=True),
    Workload("medium", 100, 32, 128, 256),
    Workload("large", 50, 64, 512, 1024),
    Workload("stacked", 100, 16, 128, 256, layers=2, bidirectional=True, cells=("lstm",),
             note="2-layer bidirectional LSTM"),
    Workload("medium_f64", 100, 32, 128, 256, dtypes=("float64",), note="medium in float64"),
    # Not in the default grid: the smoke test's row.
    Workload("tiny", 5, 2, 3, 4, layers=2, bidirectional=True, quick=False, note="smoke test"),
]}
DEFAULT_ROWS = ("stream", "small_seq", "medium", "large", "stacked", "medium_f64")
EXTRA_SECTIONS = ("alternating", "lengths", "memory")


@dataclass(frozen=True)
class Row:
    workload: Workload
    cell: str
    mode: str                    # "infer" or "train"
    dtype: str                   # "float32" or "float64"

    @property
    def key(self) -> str:
        return f"{self.workload.name}/{self.cell}/{self.mode}/{self.dtype}"

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    @property
    def D(self) -> int:
        return 2 if self.workload.bidirectional else 1

    def layer_inputs(self):
        w = self.workload
        return [w.I if layer == 0 else self.D * w.H for layer in range(w.layers)]

    def flops(self) -> float:
        """Matrix-product FLOPs of one timed call (for stream: of one step)."""
        w = self.workload
        G = GATES[self.cell]
        T = 1 if w.name == "stream" else w.T
        fwd = sum(2.0 * T * w.B * G * w.H * (K + w.H) * self.D for K in self.layer_inputs())
        return fwd * (3 if self.mode == "train" else 1)


def rows_for(workload_names, cells=CELLS, modes=("infer", "train")):
    out = []
    for name in workload_names:
        w = WORKLOADS[name]
        for dtype in w.dtypes:
            for cell in w.cells:
                if cell not in cells:
                    continue
                for mode in w.modes:
                    if mode in modes:
                        out.append(Row(w, cell, mode, dtype))
    return out


# ----------------------------------------------------------------- memory
# Per step, per batch row, per layer-direction, what BPTT keeps (elements):
TAPE_PER_STEP = {
    "lstm": ("4H gates + c_t + h_{t-1} + c_{t-1}", lambda H: 7 * H),
    "gru": ("3H gates + (W_hn h_{t-1} + b_hn) + h_{t-1}", lambda H: 5 * H),
    "rnn_tanh": ("h_t + h_{t-1}", lambda H: 2 * H),
}


def parameter_count(cell, I, H, layers, D):
    G = GATES[cell]
    total = 0
    for layer in range(layers):
        K = I if layer == 0 else D * H
        total += D * (G * H * (K + H) + 2 * G * H)
    return total


def theoretical_training_bytes(cell, T, B, I, H, layers, D, itemsize):
    """What must be live at once in one training step, by part (bytes).

    tape: T*B*S*layers*D with S from TAPE_PER_STEP; layer outputs y: T*B*D*H per
    layer (the last is the result, the others are the next layer's input, which
    its weight gradient needs); parameters and their gradients; x, dy, dx.
    """
    S = TAPE_PER_STEP[cell][1](H)
    parts = {
        "parameters": parameter_count(cell, I, H, layers, D),
        "gradients": parameter_count(cell, I, H, layers, D),
        "tape": T * B * S * layers * D,
        "outputs": T * B * D * H * layers,
        "x+dy+dx": T * B * (2 * I + D * H),
    }
    return {k: v * itemsize for k, v in parts.items()}
