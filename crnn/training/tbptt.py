"""Truncated backpropagation through time over long streams.

A stream (T, B, I) is cut into chunks of k steps. Each chunk runs forward
from the state the previous chunk ended in (so the model sees the whole
stream), but its backward stops at the chunk's start (dstate_n = None): the
tape is cut every k steps, and memory and time per update stay O(k).

`truncated_bptt` accumulates the gradient of the whole stream's mean loss
(one update per stream); `tbptt_chunks` yields each chunk's own mean loss
and gradient (one update per chunk, the usual way to train language models
on long text). With k >= T both are exactly full BPTT.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import numpy as np

from .._checks import positive_int

# loss_fn(out_chunk, target_chunk, mask=mask_chunk_or_None, reduction="sum") -> (loss, dout)
LossFn = Callable[..., tuple]


class Chunk(NamedTuple):
    """One chunk's result: its mean loss, the gradient of that mean, the state it ended in."""

    loss: float
    grads: dict
    state: object
    start: int
    stop: int


def _count(targets, mask) -> float:
    """What a "mean" reduction of crnn's losses divides by, for these targets and mask.

    Integer targets are class indices (cross-entropy: one count per position);
    float targets are regression targets (MSE: one count per element).
    """
    targets = np.asarray(targets)
    if mask is None:
        return float(targets.size)
    mask = np.asarray(mask, dtype=np.float64)
    if targets.dtype.kind in "iu" or mask.ndim == targets.ndim:
        return float(np.broadcast_to(mask, targets.shape).sum())
    return float(np.broadcast_to(mask, targets.shape[:-1]).sum()) * targets.shape[-1]


def _chunk_sums(model, x, targets, loss_fn: LossFn, k: int, state, mask) -> Iterator[tuple]:
    """Per chunk: (summed loss, grads of that sum, state_n, start, stop)."""
    k = positive_int("k", k)
    T = x.shape[0]
    if np.shape(targets)[0] != T:
        raise ValueError(f"targets has {np.shape(targets)[0]} steps, expected {T} (like x, time-major)")
    for start in range(0, T, k):
        stop = min(start + k, T)
        m = None if mask is None else np.asarray(mask)[start:stop]
        out, state_n, tape = model.forward(x[start:stop], state)
        loss, dout = loss_fn(out, targets[start:stop], mask=m, reduction="sum")
        # The cut: no gradient flows from this chunk into the previous one.
        _, _, grads = model.backward(tape, dout, None)
        yield loss, grads, state_n, start, stop
        state = state_n


def truncated_bptt(model, x, targets, loss_fn: LossFn, k: int, state=None, mask=None):
    """Gradient of the stream's mean loss, backpropagated at most k steps.

    Args:
        model: anything with forward(x, state) -> (out, state_n, tape) and
            backward(tape, dout, dstate_n) -> (dx, dstate0, grads): a crnn layer or Model.
        x: (T, B, I) time-major stream.
        targets: (T, B, ...) targets for loss_fn.
        loss_fn: crnn.training.mse_loss, cross_entropy_loss, or a function with their signature
            (out, target, mask=, reduction="sum"); the mean divides the sum by what theirs would
            (valid elements for float targets, valid positions for integer class targets).
        k: truncation length in steps (>= 1); k >= T gives full BPTT.
        state: initial state (None for zeros).
        mask: optional time-major (T, B) position mask, sliced with x and passed to loss_fn.

    Returns:
        (loss, grads, state_n): the mean loss over the stream, its truncated gradient
        (keyed like model.parameters()), and the final state.

    Raises:
        ValueError for k < 1 or targets that do not match x in time.
    """
    total_loss, total_grads, state_n = 0.0, None, state
    for loss, grads, state_n, _, _ in _chunk_sums(model, x, targets, loss_fn, k, state, mask):
        total_loss += loss
        if total_grads is None:
            total_grads = grads
        else:
            for name, g in grads.items():
                total_grads[name] += g
    denom = max(_count(targets, mask), 1.0)
    for g in total_grads.values():
        g /= g.dtype.type(denom)
    return total_loss / denom, total_grads, state_n


def tbptt_chunks(model, x, targets, loss_fn: LossFn, k: int, state=None, mask=None) -> Iterator[Chunk]:
    """Yield, chunk by chunk, the chunk's mean loss and its gradient (update between chunks).

    Arguments as `truncated_bptt`. The model's parameters may be updated between
    two chunks: each chunk's forward runs after the previous one was yielded.
    """
    for loss, grads, state_n, start, stop in _chunk_sums(model, x, targets, loss_fn, k, state, mask):
        t = np.asarray(targets)[start:stop]
        m = None if mask is None else np.asarray(mask)[start:stop]
        denom = max(_count(t, m), 1.0)
        for g in grads.values():
            g /= g.dtype.type(denom)
        yield Chunk(loss / denom, grads, state_n, start, stop)
