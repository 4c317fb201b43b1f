"""Time-series forecasting: a noisy mixture of sines, predicted `horizon` steps ahead.

Each sequence is its own signal, s_t = sum_k a_k sin(w_k t + phi_k) with 3
components (a ~ U(0.2, 1), w ~ U(0.05, 0.4) rad/step, phi ~ U(0, 2 pi)),
observed with Gaussian noise (sigma 0.1). At every step the model sees the
noisy value x_t and predicts the noisy x_{t+horizon}; the first `warmup`
steps (at most half) are not scored (nothing can be inferred about the frequencies yet).

To forecast, a model has to infer each sequence's frequencies and phases
from what it has seen. The trivial baseline is persistence: predict
x_{t+horizon} = x_t. Its MSE is measured on the test batch.
"""

from __future__ import annotations

import numpy as np

from .base import Batch, Task, masked_mse

COMPONENTS = 3
NOISE = 0.1


class Forecast(Task):
    """Predict a noisy sine mixture `horizon` steps ahead; MSE over the steps after a warm-up."""

    name = "forecast"
    kind = "regression"
    metric_name = "test MSE"
    higher_is_better = False
    input_size = 1
    output_size = 1
    default_length = 100

    def __init__(self, length: int | None = None, seed: int = 0, horizon: int = 5, warmup: int = 10) -> None:
        super().__init__(length, seed)
        self.horizon = int(horizon)
        # Short sequences get a shorter warm-up: at least half the steps are always scored.
        self.warmup = min(int(warmup), self.length // 2)
        if self.horizon < 1 or self.warmup < 0:
            raise ValueError(f"horizon must be >= 1 and warmup >= 0, got {horizon} and {warmup}")
        test = self.test_batch()
        # Persistence: the input itself, shifted by the horizon, is the guess.
        self.baseline_loss = self.baseline_metric = masked_mse(test.x, test.target, test.mask)
        self.solved_when = "test MSE < half the persistence baseline"
        self.baseline_description = (f"MSE {self.baseline_loss:.4f} (persistence: predict x[t+{self.horizon}] = x[t]; "
                                     f"noise floor {NOISE ** 2:.3f})")

    def _generate(self, batch_size, rng, split):
        T, B, h = self.length, batch_size, self.horizon
        amp = rng.uniform(0.2, 1.0, size=(1, B, COMPONENTS))
        freq = rng.uniform(0.05, 0.4, size=(1, B, COMPONENTS))
        phase = rng.uniform(0, 2 * np.pi, size=(1, B, COMPONENTS))
        t = np.arange(T + h, dtype=np.float64)[:, None, None]
        clean = (amp * np.sin(freq * t + phase)).sum(axis=2) / np.sqrt(COMPONENTS)
        noisy = (clean + NOISE * rng.standard_normal(clean.shape)).astype(np.float32)
        x = noisy[:T, :, None]
        target = noisy[h:, :, None]
        mask = np.ones((T, B), dtype=np.float32)
        mask[:self.warmup] = 0.0
        return Batch(np.ascontiguousarray(x), np.ascontiguousarray(target), mask)

    def metric(self, out, batch):
        return masked_mse(out, batch.target, batch.mask)

    def learned(self, metric):
        return metric < 0.5 * self.baseline_metric

    def describe(self):
        return f"forecast (T={self.length}, {self.horizon} steps ahead): baseline {self.baseline_description}"
