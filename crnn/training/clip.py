"""Gradient clipping by global norm (as torch.nn.utils.clip_grad_norm_)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every gradient entry, as a float (accumulated in float64)."""
    return math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel())) for g in grads.values()))


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients IN PLACE so their global norm is at most max_norm.

    Gradients of norm N > max_norm are multiplied by max_norm / (N + 1e-6),
    the same factor PyTorch uses; smaller ones are left alone.

    Args:
        grads: dict name -> float ndarray (e.g. what a backward returned).
        max_norm: > 0.

    Returns:
        The global norm BEFORE clipping (inf or nan if a gradient holds them, which
        are then left unscaled so the caller can see and skip the step).

    Raises:
        ValueError if max_norm is not a positive finite number.
    """
    max_norm = float(max_norm)
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a positive finite number, got {max_norm}")
    total = global_norm(grads)
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= g.dtype.type(scale)
    return total
