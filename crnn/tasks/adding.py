"""The adding problem (Hochreiter & Schmidhuber 1997; the variant of Arjovsky et al. 2016).

Each step carries two inputs: a value drawn from U(0, 1) and a marker, 1 at
exactly two steps (one in the first half of the sequence, one in the
second) and 0 elsewhere. At the last step the model must output the sum of
the two marked values. The first marker can be T-1 steps before the answer:
the information must survive that long.

Predicting the mean, 1, whatever the input scores MSE = Var(U1 + U2) = 2/12 = 0.167:
the trivial baseline.
"""

from __future__ import annotations

import numpy as np

from .base import Batch, Task, masked_mse


class Adding(Task):
    """Sum the two marked values of a length-T sequence; MSE at the last step only."""

    name = "adding"
    kind = "regression"
    metric_name = "test MSE"
    higher_is_better = False
    input_size = 2
    output_size = 1
    baseline_loss = 2.0 / 12.0
    baseline_metric = 2.0 / 12.0
    baseline_description = "MSE 0.167 (always predict 1, the mean of the sum)"
    solved_when = "test MSE < 0.01"
    default_length = 100

    def __init__(self, length: int | None = None, seed: int = 0) -> None:
        super().__init__(length, seed)
        if self.length < 2:
            raise ValueError(f"length must be >= 2 for the adding problem (two marked steps), got {self.length}")

    def _generate(self, batch_size, rng, split):
        T, B = self.length, batch_size
        values = rng.random((T, B), dtype=np.float32)
        half = T // 2
        first = rng.integers(0, half, size=B)
        second = rng.integers(half, T, size=B)
        markers = np.zeros((T, B), dtype=np.float32)
        cols = np.arange(B)
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        x = np.stack([values, markers], axis=2)
        target = np.zeros((T, B, 1), dtype=np.float32)
        target[-1, :, 0] = values[first, cols] + values[second, cols]
        mask = np.zeros((T, B), dtype=np.float32)
        mask[-1] = 1.0
        return Batch(x, target, mask)

    def metric(self, out, batch):
        return masked_mse(out, batch.target, batch.mask)

    def learned(self, metric):
        return metric < 0.01
