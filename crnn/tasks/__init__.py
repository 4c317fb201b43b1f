"""Tasks that show what recurrent cells can learn, generated or read from data Python ships.

    adding    the adding problem (Hochreiter & Schmidhuber 1997)            long range, regression
    copy      copy memory (Arjovsky et al. 2016)                           long range, classification
    forecast  noisy sine mixture, predicted ahead                         regression
    charlm    character-level language model on pydoc_data.topics         classification
    digits    scikit-learn's 8x8 digits row by row / pixel by pixel       classification (optional)

    >>> import numpy as np
    >>> task = make_task("adding", length=50, seed=0)
    >>> batch = task.batch(32, np.random.default_rng(0))   # x (50, 32, 2), target (50, 32, 1), mask (50, 32)
"""

from __future__ import annotations

from .adding import Adding
from .base import Batch, Task
from .charlm import CharLM, TaskUnavailable
from .copy_memory import CopyMemory
from .digits import Digits
from .forecast import Forecast

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (Adding, CopyMemory, Forecast, CharLM, Digits)}


def make_task(name: str, length: int | None = None, seed: int = 0) -> Task:
    """The task called `name` (a key of TASKS), with sequences of `length` (None: its default).

    Raises:
        ValueError for an unknown name or a length the task cannot use;
        TaskUnavailable if the task needs something missing (scikit-learn for digits).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name](length=length, seed=seed)


__all__ = ["Task", "Batch", "TASKS", "make_task", "TaskUnavailable",
           "Adding", "CopyMemory", "Forecast", "CharLM", "Digits"]
