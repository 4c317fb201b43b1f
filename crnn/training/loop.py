"""Train a model on a task: the loop the command line and user code share.

Each step draws a batch from the task's seeded generator, runs forward and
backward, clips the global gradient norm, and lets the optimizer update the
live parameters. The test batch is scored every `eval_every` steps; the
time spent there is excluded from seconds per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._checks import positive_int
from .clip import clip_grad_norm
from .optim import OPTIMIZERS, Optimizer


@dataclass
class History:
    """What a training run measured.

    steps/train_loss: every step's training loss; eval_steps/test_loss/test_metric:
    the test batch scored at those steps (step 0 is the untrained model).
    """

    label: str = ""
    num_parameters: int = 0
    train_seconds: float = 0.0
    steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_metric: list = field(default_factory=list)
    skipped_steps: int = 0

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / max(len(self.steps), 1)

    @property
    def final_loss(self) -> float:
        return self.test_loss[-1] if self.test_loss else math.nan

    @property
    def final_metric(self) -> float:
        return self.test_metric[-1] if self.test_metric else math.nan


def make_optimizer(name: str, params, lr: float) -> Optimizer:
    """An optimizer by name ("adam", "sgd", "rmsprop") over params. Raises ValueError for others."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](params, lr=lr)


def train(model, task, steps: int, batch_size: int = 64, optimizer: Optimizer | None = None,
          lr: float = 1e-3, clip: float | None = 1.0, seed: int = 0, eval_every: int | None = None,
          on_step: Callable[[int, float], None] | None = None, label: str = "") -> History:
    """Train `model` on `task` for `steps` updates; return the History.

    Args:
        model: a crnn.training.Model (or anything with its forward/backward/parameters/__call__).
        task: a crnn.tasks.Task.
        steps: number of updates (>= 1).
        batch_size: sequences per update.
        optimizer: an Optimizer over model.parameters(); default Adam(lr).
        clip: global-norm clipping threshold, or None for none.
        seed: seeds the training batches (the model has its own seed).
        eval_every: score the test batch every this many steps (default: about 20 times a run),
            and always at step 0 and at the last step.
        on_step: called after every update with (step, training loss), e.g. to drive a progress bar.

    Non-finite gradients skip the update (counted in History.skipped_steps) rather than
    poisoning the parameters.

    Raises:
        ValueError / TypeError for bad steps, batch_size or eval_every.
    """
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    eval_every = positive_int("eval_every", eval_every if eval_every is not None else max(steps // 20, 1))
    if optimizer is None:
        optimizer = make_optimizer("adam", model.parameters(), lr)
    rng = np.random.default_rng(seed)
    history = History(label=label, num_parameters=int(sum(p.size for p in model.parameters().values())))

    def evaluate(step: int) -> None:
        loss, metric = task.evaluate(model)
        history.eval_steps.append(step)
        history.test_loss.append(loss)
        history.test_metric.append(metric)

    evaluate(0)
    for step in range(1, steps + 1):
        start = time.perf_counter()
        batch = task.batch(batch_size, rng)
        out, _, tape = model.forward(batch.x)
        loss, dout = task.loss(out, batch)
        _, _, grads = model.backward(tape, dout)
        norm = clip_grad_norm(grads, clip) if clip is not None else 0.0
        if math.isfinite(norm) and math.isfinite(loss):
            optimizer.step(grads)
        else:
            history.skipped_steps += 1
        history.train_seconds += time.perf_counter() - start
        history.steps.append(step)
        history.train_loss.append(loss)
        if step % eval_every == 0 or step == steps:
            evaluate(step)
        if on_step is not None:
            on_step(step, loss)
    return history
