"""Losses with their gradients: mean squared error and softmax cross-entropy.

Each returns (loss, gradient w.r.t. its first argument). A mask selects the
positions that count; `mask_from_lengths` builds one from per-sequence
lengths for time-major arrays (T, B, ...). With reduction="mean" the loss is
averaged over the counted elements (MSE) or positions (cross-entropy), as
torch.nn.functional does; "sum" adds them up.
"""

from __future__ import annotations

import numpy as np

from .._checks import lengths_array

REDUCTIONS = ("mean", "sum")


def mask_from_lengths(lengths, steps: int, dtype=np.float32) -> np.ndarray:
    """(T, B) mask: 1.0 where t < lengths[b], else 0.0.

    Raises:
        ValueError / TypeError for lengths that are not integers in [0, steps].
    """
    lengths = lengths_array(lengths, np.size(lengths), steps)
    return (np.arange(steps)[:, None] < lengths[None, :]).astype(dtype)


def _weights(mask, lengths, lead_shape: tuple, dtype) -> np.ndarray | None:
    """The position mask broadcast to lead_shape, or None when every position counts."""
    if mask is not None and lengths is not None:
        raise ValueError("give either mask or lengths, not both")
    if lengths is not None:
        if len(lead_shape) < 2:
            raise ValueError(f"lengths needs time-major input (T, B, ...), got leading shape {lead_shape}")
        mask = mask_from_lengths(lengths, lead_shape[0], dtype)
        if mask.shape[1] != lead_shape[1]:
            raise ValueError(f"lengths has {mask.shape[1]} entries, expected {lead_shape[1]} (the batch axis)")
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=dtype)
    try:
        return np.broadcast_to(mask, lead_shape)
    except ValueError as err:
        raise ValueError(f"mask has shape {mask.shape}, which does not broadcast to {lead_shape}") from err


def _reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def mse_loss(pred, target, mask=None, lengths=None, reduction: str = "mean"):
    """Mean squared error and its gradient.

    Args:
        pred: float array of any shape (..., F).
        target: same shape as pred.
        mask: optional weights (usually 0/1) broadcastable to pred.shape[:-1] (per position)
            or to pred.shape (per element).
        lengths: optional (B,) valid lengths for time-major pred (T, B, ...); exclusive with mask.
        reduction: "mean" over counted elements, or "sum".

    Returns:
        (loss as a Python float, dpred of pred's shape and dtype).

    Raises:
        ValueError for mismatched shapes, both mask and lengths, or an unknown reduction.
    """
    pred = np.asarray(pred)
    target = np.asarray(target, dtype=pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"target has shape {target.shape}, expected {pred.shape} (like pred)")
    reduction = _reduction(reduction)
    diff = pred - target
    if mask is not None and np.ndim(mask) == pred.ndim:
        weights = _weights(mask, lengths, pred.shape, pred.dtype)
    else:
        weights = _weights(mask, lengths, pred.shape[:-1], pred.dtype)
        weights = None if weights is None else np.broadcast_to(weights[..., None], pred.shape)
    if weights is None:
        weights = np.ones((), dtype=pred.dtype)
        count = diff.size
    else:
        count = float(weights.sum())
    denom = max(count, 1.0) if reduction == "mean" else 1.0
    loss = float((weights * diff * diff).sum()) / denom
    grad = (2.0 / denom) * weights * diff
    return loss, np.broadcast_to(grad, pred.shape).astype(pred.dtype)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the maximum so exp never overflows."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy_loss(logits, targets, mask=None, lengths=None, reduction: str = "mean"):
    """Softmax cross-entropy on logits, and its gradient.

    Args:
        logits: (..., C) float array of unnormalised class scores.
        targets: (...) integer class indices in [0, C).
        mask: optional weights broadcastable to logits.shape[:-1].
        lengths: optional (B,) valid lengths for time-major logits (T, B, C); exclusive with mask.
        reduction: "mean" over counted positions, or "sum".

    Returns:
        (loss as a Python float, dlogits of logits' shape and dtype).

    Raises:
        ValueError for mismatched shapes or classes out of range; TypeError for
        non-integer targets.
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets has shape {targets.shape}, expected {logits.shape[:-1]} (logits without the class axis)")
    classes = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= classes):
        raise ValueError(f"targets must lie in [0, {classes}), got values from {targets.min()} to {targets.max()}")
    reduction = _reduction(reduction)
    weights = _weights(mask, lengths, logits.shape[:-1], logits.dtype)
    if weights is None:
        weights = np.ones(logits.shape[:-1], dtype=logits.dtype)
    count = float(weights.sum())
    denom = max(count, 1.0) if reduction == "mean" else 1.0
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    loss = float(-(weights * picked).sum()) / denom
    # d/dlogits of -log softmax(logits)[y] = softmax(logits) - onehot(y)
    grad = np.exp(logp)
    np.put_along_axis(grad, targets[..., None], np.take_along_axis(grad, targets[..., None], axis=-1) - 1, axis=-1)
    grad *= (weights / denom)[..., None]
    return loss, grad.astype(logits.dtype, copy=False)
