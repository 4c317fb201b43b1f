"""What every task provides: seeded batches, a loss, a metric and a trivial baseline.

All arrays are time-major. A batch holds
    x       (T, B, I) float32 inputs
    target  (T, B, O) float32 for regression, (T, B) int64 class indices for classification
    mask    (T, B) float32: 1 where a step counts in the loss and metric, 0 elsewhere
so one model (a recurrent layer with a Linear readout at every step) and one
loss call serve every task; a task that scores only the last step masks the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import positive_int
from ..training.losses import cross_entropy_loss, mse_loss


@dataclass
class Batch:
    """A batch of sequences; see the module docstring for shapes."""

    x: np.ndarray
    target: np.ndarray
    mask: np.ndarray


class Task:
    """Base class of the tasks. Subclasses set the attributes and implement `_generate`.

    Attributes:
        name: registry name ("adding", ...).
        length: T, steps per sequence fed to the model.
        input_size, output_size: I and O of the model that fits the task.
        kind: "regression" (MSE loss) or "classification" (cross-entropy on logits).
        metric_name, higher_is_better: what `metric` measures.
        baseline_loss, baseline_metric: what a trivial predictor scores (see baseline_description).
        solved_when: in words, the metric threshold `learned` checks.
    """

    name = ""
    kind = "regression"
    metric_name = ""
    higher_is_better = False
    baseline_description = ""
    solved_when = ""
    default_length = 100
    test_size = 512

    def __init__(self, length: int | None = None, seed: int = 0) -> None:
        self.length = positive_int("length", self.default_length if length is None else length)
        self.seed = int(seed)
        self._test: Batch | None = None

    # ----------------------------------------------------------- subclasses
    input_size: int = 1
    output_size: int = 1
    baseline_loss: float = math.nan
    baseline_metric: float = math.nan

    def _generate(self, batch_size: int, rng: np.random.Generator, split: str) -> Batch:
        raise NotImplementedError

    def metric(self, out: np.ndarray, batch: Batch) -> float:
        """The task's score of model outputs (T, B, O) on a batch."""
        raise NotImplementedError

    def learned(self, metric: float) -> bool:
        """Whether a test metric counts as having learned the task (see solved_when)."""
        raise NotImplementedError

    # --------------------------------------------------------------- shared
    def batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A fresh training batch drawn from rng (seeded by the caller: reproducible).

        Raises:
            ValueError / TypeError for a batch_size that is not a positive integer.
        """
        return self._generate(positive_int("batch_size", batch_size), rng, "train")

    def test_batch(self) -> Batch:
        """The fixed held-out batch the metric is reported on (same for every model, seeded)."""
        if self._test is None:
            rng = np.random.default_rng([self.seed, 0x7E57])
            self._test = self._generate(self.test_size, rng, "test")
        return self._test

    def loss(self, out: np.ndarray, batch: Batch, reduction: str = "mean"):
        """(loss, dout): MSE or cross-entropy over the masked steps of `batch`."""
        if self.kind == "regression":
            return mse_loss(out, batch.target, mask=batch.mask, reduction=reduction)
        return cross_entropy_loss(out, batch.target, mask=batch.mask, reduction=reduction)

    def evaluate(self, model, batch: Batch | None = None) -> tuple[float, float]:
        """(loss, metric) of `model` (inference, no tape) on `batch` (default: the test batch)."""
        batch = self.test_batch() if batch is None else batch
        out, _ = model(batch.x)
        return self.loss(out, batch)[0], self.metric(out, batch)

    def describe(self) -> str:
        """One line: the task, its length and its trivial baseline."""
        return f"{self.name} (T={self.length}): baseline {self.baseline_description}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length}, seed={self.seed})"


def masked_accuracy(logits: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of masked positions whose arg-max class equals the target."""
    hits = (logits.argmax(axis=-1) == target).astype(np.float64)
    return float((hits * mask).sum() / max(float(mask.sum()), 1.0))


def masked_mse(out: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error over the masked positions (all features)."""
    return mse_loss(out.astype(np.float64), target.astype(np.float64), mask=mask)[0]
