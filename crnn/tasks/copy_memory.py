"""The copy-memory task (Arjovsky, Shah & Bengio 2016).

A sequence of T + 20 symbols: 10 data symbols drawn from {1..8}, then T-1
blanks (0), a delimiter (9), and 10 more blanks. The target is blank for
the first T + 10 steps and then the 10 data symbols, in order. So the model
must hold 10 symbols over a delay of T steps and replay them on cue.

Inputs are one-hot over 10 symbols; outputs are logits over 9 classes
(blank and the 8 data symbols). The trivial baseline outputs blank until the
delimiter and then a uniform guess over the 8 data symbols: cross-entropy
10 ln(8) / (T + 20), and 1/8 of the copied symbols right.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Batch, Task, masked_accuracy

DATA_SYMBOLS = 8
MEMORY = 10              # how many symbols to remember
BLANK, DELIMITER = 0, 9


class CopyMemory(Task):
    """Replay 10 symbols after a delay of `length` steps; cross-entropy over all T+20 steps."""

    name = "copy"
    kind = "classification"
    metric_name = "copy accuracy"
    higher_is_better = True
    input_size = DATA_SYMBOLS + 2
    output_size = DATA_SYMBOLS + 1
    solved_when = "copy accuracy > 0.99"
    default_length = 20

    def __init__(self, length: int | None = None, seed: int = 0) -> None:
        super().__init__(length, seed)
        self.delay = self.length
        self.length = self.delay + 2 * MEMORY     # steps fed to the model
        self.baseline_loss = MEMORY * math.log(DATA_SYMBOLS) / self.length
        self.baseline_metric = 1.0 / DATA_SYMBOLS
        self.baseline_description = (f"cross-entropy {self.baseline_loss:.4f} = 10 ln(8)/(T+20) "
                                     "(blanks, then a uniform guess), copy accuracy 0.125")

    def _generate(self, batch_size, rng, split):
        T, B = self.length, batch_size
        data = rng.integers(1, DATA_SYMBOLS + 1, size=(MEMORY, B))
        symbols = np.full((T, B), BLANK, dtype=np.int64)
        symbols[:MEMORY] = data
        symbols[T - MEMORY - 1] = DELIMITER
        x = np.eye(self.input_size, dtype=np.float32)[symbols]
        target = np.full((T, B), BLANK, dtype=np.int64)
        target[T - MEMORY:] = data
        mask = np.ones((T, B), dtype=np.float32)
        return Batch(x, target, mask)

    def metric(self, out, batch):
        recall = np.zeros_like(batch.mask)
        recall[-MEMORY:] = 1.0
        return masked_accuracy(out, batch.target, recall)

    def learned(self, metric):
        return metric > 0.99

    def describe(self):
        return f"copy (delay T={self.delay}, {self.length} steps): baseline {self.baseline_description}"
