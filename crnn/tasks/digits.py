"""Sequence classification: scikit-learn's bundled 8x8 handwritten digits, read as a sequence.

1797 images of 8x8 pixels (values 0..16, scaled to [0, 1]), read row by row
(T = 8 steps of 8 pixels) or pixel by pixel (T = 64 steps of 1 pixel; the
long-range version). The class is scored at the last step only. A seeded
80/20 split; the test split is the test batch. The trivial baseline is the
majority class.

scikit-learn is an optional extra (`pip install scikit-learn`); without it
this task raises TaskUnavailable with that message.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Batch, Task, masked_accuracy
from .charlm import TaskUnavailable

CLASSES = 10


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) float32 in [0, 1], labels (N,) int64) from scikit-learn.

    Raises:
        TaskUnavailable if scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise TaskUnavailable("the digits task needs scikit-learn, an optional extra: "
                              "pip install scikit-learn") from err
    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


class Digits(Task):
    """Classify an 8x8 digit read row by row (length 8) or pixel by pixel (length 64)."""

    name = "digits"
    kind = "classification"
    metric_name = "test accuracy"
    higher_is_better = True
    output_size = CLASSES
    default_length = 8
    solved_when = "test accuracy > 0.9"

    def __init__(self, length: int | None = None, seed: int = 0) -> None:
        super().__init__(length, seed)
        if self.length not in (8, 64):
            raise ValueError(f"length must be 8 (row by row) or 64 (pixel by pixel) for digits, got {self.length}")
        self.input_size = 64 // self.length
        images, labels = load_digits_images()
        order = np.random.default_rng(self.seed).permutation(len(labels))
        cut = int(0.8 * len(labels))
        seqs = images.reshape(len(labels), self.length, self.input_size)
        self._splits = {"train": (seqs[order[:cut]], labels[order[:cut]]),
                        "test": (seqs[order[cut:]], labels[order[cut:]])}
        self.test_size = len(labels) - cut
        train_labels = self._splits["train"][1]
        majority = np.bincount(train_labels, minlength=CLASSES).argmax()
        self.baseline_metric = float(np.mean(self._splits["test"][1] == majority))
        self.baseline_loss = math.log(CLASSES)
        self.baseline_description = (f"accuracy {self.baseline_metric:.3f} (majority class), "
                                     f"cross-entropy ln(10) = {self.baseline_loss:.3f} (uniform guess)")

    def _generate(self, batch_size, rng, split):
        seqs, labels = self._splits[split]
        idx = np.arange(len(labels)) if split == "test" else rng.integers(0, len(labels), size=batch_size)
        x = np.ascontiguousarray(seqs[idx].transpose(1, 0, 2))            # (T, B, I)
        target = np.zeros((self.length, len(idx)), dtype=np.int64)
        target[-1] = labels[idx]
        mask = np.zeros((self.length, len(idx)), dtype=np.float32)
        mask[-1] = 1.0
        return Batch(x, target, mask)

    def metric(self, out, batch):
        return masked_accuracy(out, batch.target, batch.mask)

    def learned(self, metric):
        return metric > 0.9
