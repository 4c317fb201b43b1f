"""Character-level language modelling on English text that ships with Python.

The corpus is `pydoc_data.topics` (the text `help()` shows for Python's
keywords and topics, about 460k characters of English prose and code
examples), so nothing is downloaded. Topics are joined in sorted order; the
last 10% is held out for testing. Characters seen fewer than 20 times map to
one "rare" symbol.

Each sequence is a random window of T+1 characters: the model reads
characters 0..T-1 (one-hot) and predicts 1..T at every step. The metric is
bits per character on held-out windows; the trivial baseline is the
unigram model (character frequencies of the training text, no context).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

import numpy as np

from .base import Batch, Task

MIN_COUNT = 20
TEST_FRACTION = 0.1


class TaskUnavailable(RuntimeError):
    """A task needs something this Python does not have (an optional package or module)."""


@lru_cache(maxsize=1)
def corpus() -> tuple[np.ndarray, tuple[str, ...]]:
    """(codes (N,) int64 of the whole text, vocabulary tuple; last entry is the rare symbol).

    Raises:
        TaskUnavailable if this Python was installed without pydoc_data.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:           # some distributions split it out of the standard library
        raise TaskUnavailable("the charlm task reads Python's own pydoc_data.topics, which this "
                              f"Python does not have ({err})") from err
    text = "\n".join(topics[key] for key in sorted(topics))
    counts = Counter(text)
    vocab = tuple(sorted(ch for ch, n in counts.items() if n >= MIN_COUNT)) + ("\uFFFD",)
    index = {ch: i for i, ch in enumerate(vocab)}
    rare = len(vocab) - 1
    codes = np.fromiter((index.get(ch, rare) for ch in text), dtype=np.int64, count=len(text))
    return codes, vocab


class CharLM(Task):
    """Predict the next character of English text at every step; bits per character."""

    name = "charlm"
    kind = "classification"
    metric_name = "test bits/char"
    higher_is_better = False
    default_length = 100
    test_size = 256

    def __init__(self, length: int | None = None, seed: int = 0) -> None:
        super().__init__(length, seed)
        codes, self.vocab = corpus()
        split = int(len(codes) * (1 - TEST_FRACTION))
        self._splits = {"train": codes[:split], "test": codes[split:]}
        self.input_size = self.output_size = len(self.vocab)
        freq = np.bincount(self._splits["train"], minlength=len(self.vocab)) / split
        probs = np.maximum(freq, 1e-12)
        test_codes = self._splits["test"]
        # Cross-entropy (nats) of the unigram model on the held-out text.
        self.baseline_loss = float(-np.log(probs[test_codes]).mean())
        self.baseline_metric = self.baseline_loss / math.log(2)
        self.solved_when = "test bits/char < 2.5"
        self.baseline_description = (f"{self.baseline_metric:.2f} bits/char (unigram character "
                                     f"frequencies), vocabulary {len(self.vocab)}")

    def _generate(self, batch_size, rng, split):
        codes = self._splits[split]
        T = self.length
        if len(codes) <= T + 1:
            raise ValueError(f"length {T} is longer than the {split} text ({len(codes)} characters)")
        starts = rng.integers(0, len(codes) - T - 1, size=batch_size)
        windows = codes[starts[None, :] + np.arange(T + 1)[:, None]]     # (T+1, B)
        x = np.eye(len(self.vocab), dtype=np.float32)[windows[:-1]]
        mask = np.ones((T, batch_size), dtype=np.float32)
        return Batch(x, np.ascontiguousarray(windows[1:]), mask)

    def metric(self, out, batch):
        return self.loss(out, batch)[0] / math.log(2)

    def learned(self, metric):
        return metric < 2.5
