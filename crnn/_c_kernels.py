"""The C core behind the reference's signatures.

Each function here has the same name, arguments and results as its twin in
crnn/reference/, so crnn/_backend.py can hand either module to the layers.
This module only prepares buffers: contiguous inputs, outputs, workspace and
tape sized by the core's own *_sizes() queries. The cache a forward returns
is a _CCache holding the tape and what backward passes again to the core.

Given a list as defer=, a function checks its call and appends it there
instead of running it; its results are filled in once run_pair runs it
beside another (the two directions of a bidirectional layer, one per core).
The reference has no run_pair: there the directions run one after the other.

Workspaces are scratch: each thread keeps its last two (up to 64 MiB each)
for its next calls. A fresh one costs a page fault per 4 KiB on first
touch, and glibc hands large blocks back to the kernel as soon as a call
frees them whenever two were live (a bidirectional layer): measured here,
751 faults and 1.6 of 7 ms for a GRU layer (T=100, B=1, I=128, H=256).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _ext

extension = _ext

_INFER, _TRAIN, _BACKWARD, _TAPE = range(4)


@dataclass
class _CCache:
    """What backward needs from a C forward: the call's sizes, inputs and tape."""

    sizes: tuple                 # (T, B, I, H) plus cell-specific options
    x: np.ndarray
    weights: dict[str, Any]
    lengths: np.ndarray | None
    tape: np.ndarray


# --- workspaces kept between calls --------------------------------------------

_KEPT_WORKSPACES = 2                 # a bidirectional layer's two calls
_KEPT_WORKSPACE_BYTES = 64 << 20     # a larger one costs little to fault in beside its call's work


class _Workspaces(threading.local):
    def __init__(self) -> None:
        self.free: list[np.ndarray] = []


_workspaces = _Workspaces()


def _take_workspace(n: int, dtype) -> np.ndarray:
    """This thread's smallest kept workspace of dtype with at least n elements, or a new one."""
    free = _workspaces.free
    fits = [k for k, w in enumerate(free) if w.dtype == dtype and w.size >= n]
    if fits:
        return free.pop(min(fits, key=lambda k: free[k].size))
    # None fits: the kept ones of this dtype are all smaller, and would go as
    # the smallest when the new one comes back. Dropped now, they are not held
    # beside it (a stacked layer's first backward held its forward's two).
    free[:] = [w for w in free if w.dtype != dtype]
    return np.empty(n, dtype=dtype)


def _give_workspace(workspace: np.ndarray) -> None:
    """Back to this thread's kept workspaces; the smallest is dropped beyond _KEPT_WORKSPACES."""
    if workspace.nbytes > _KEPT_WORKSPACE_BYTES:
        return
    free = _workspaces.free
    free.append(workspace)
    if len(free) > _KEPT_WORKSPACES:
        del free[min(range(len(free)), key=lambda k: free[k].nbytes)]


def release_workspaces() -> None:
    """Drops this thread's kept workspaces (the bench's memory probes start from none)."""
    _workspaces.free.clear()


# --- running a call now, or deferred into a pair ------------------------------

class _Deferred:
    """A checked call not yet run, and the workspace run_pair gives back after it."""

    __slots__ = ("call", "workspace")

    def __init__(self, call, workspace: np.ndarray) -> None:
        self.call, self.workspace = call, workspace


def _launch(kernel, workspace: np.ndarray, defer: list | None, *args) -> None:
    """kernel(*args) now, then its workspace kept for the next call; or, with a
    defer list, the call checked and appended there for run_pair."""
    if defer is None:
        try:
            kernel(*args)
        finally:
            _give_workspace(workspace)
        return
    calls: list = []
    kernel(*args, defer=calls)
    defer.append(_Deferred(calls[0], workspace))


def run_pair(a: _Deferred, b: _Deferred) -> None:
    """Runs two deferred calls, one per core when the BLAS has two threads.
    Each then computes exactly as with one thread (crnn_parallel_pair)."""
    _ext.run_pair(a.call, b.call)      # refuses a call run before: its workspace went back then
    for done in (a, b):
        _give_workspace(done.workspace)


def _c(a):
    """C-contiguous (a view when it already is), or None."""
    return None if a is None else np.ascontiguousarray(a)


def _lengths(lengths):
    return None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)


def _zero_like(a):
    return None if a is None else np.zeros_like(a)


# --- simple RNN -----------------------------------------------------------------

def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, nonlinearity="tanh",
                lengths=None, reverse=False, training=True, defer=None):
    """As crnn.reference.rnn_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H = W_hh.shape[0]
    relu = nonlinearity == "relu"
    sizes = _ext.rnn_sizes(T, B, I, H, relu)
    y = np.empty((T, B, H), dtype=x.dtype)
    h_n = np.empty((B, H), dtype=x.dtype)
    workspace = _take_workspace(sizes[_TRAIN if training else _INFER], x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh))
    lengths = _lengths(lengths)
    _launch(_ext.rnn_forward, workspace, defer,
            T, B, I, H, relu, reverse, x, _c(h0), weights["W_ih"], weights["W_hh"], weights["b_ih"],
            weights["b_hh"], lengths, y, h_n, workspace, tape)
    cache = _CCache((T, B, I, H, relu, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n, *, defer=None):
    """As crnn.reference.rnn_backward, on the C core."""
    T, B, I, H, relu, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx, dh0 = np.empty_like(x), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]))
    workspace = _take_workspace(_ext.rnn_sizes(T, B, I, H, relu)[_BACKWARD], x.dtype)
    _launch(_ext.rnn_backward, workspace, defer,
            T, B, I, H, relu, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], cache.lengths,
            cache.tape, _c(dy), _c(dh_n), dx, dh0, grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"],
            workspace)
    return dx, dh0, grads


# --- LSTM -------------------------------------------------------------------------

def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr=None, *,
                 lengths=None, reverse=False, training=True, defer=None):
    """As crnn.reference.lstm_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H, P = W_hh.shape[0] // 4, W_hh.shape[1]
    sizes = _ext.lstm_sizes(T, B, I, H, P)
    y = np.empty((T, B, P), dtype=x.dtype)
    h_n = np.empty((B, P), dtype=x.dtype)
    c_n = np.empty((B, H), dtype=x.dtype)
    workspace = _take_workspace(sizes[_TRAIN if training else _INFER], x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh), W_hr=_c(W_hr))
    lengths = _lengths(lengths)
    _launch(_ext.lstm_forward, workspace, defer,
            T, B, I, H, P, reverse, x, _c(h0), _c(c0), weights["W_ih"], weights["W_hh"], weights["b_ih"],
            weights["b_hh"], weights["W_hr"], lengths, y, h_n, c_n, workspace, tape)
    cache = _CCache((T, B, I, H, P, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n, dc_n, *, defer=None):
    """As crnn.reference.lstm_backward, on the C core."""
    T, B, I, H, P, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx = np.empty_like(x)
    dh0, dc0 = np.empty((B, P), dtype=x.dtype), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]), W_hr=_zero_like(w["W_hr"]))
    workspace = _take_workspace(_ext.lstm_sizes(T, B, I, H, P)[_BACKWARD], x.dtype)
    _launch(_ext.lstm_backward, workspace, defer,
            T, B, I, H, P, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], w["W_hr"], cache.lengths,
            cache.tape, _c(dy), _c(dh_n), _c(dc_n), dx, dh0, dc0, grads["W_ih"], grads["W_hh"], grads["b_ih"],
            grads["b_hh"], grads["W_hr"], workspace)
    return dx, dh0, dc0, grads


# --- GRU ----------------------------------------------------------------------------

def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                defer=None):
    """As crnn.reference.gru_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H = W_hh.shape[1]
    sizes = _ext.gru_sizes(T, B, I, H)
    y = np.empty((T, B, H), dtype=x.dtype)
    h_n = np.empty((B, H), dtype=x.dtype)
    workspace = _take_workspace(sizes[_TRAIN if training else _INFER], x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh))
    lengths = _lengths(lengths)
    _launch(_ext.gru_forward, workspace, defer,
            T, B, I, H, reverse, x, _c(h0), weights["W_ih"], weights["W_hh"], weights["b_ih"],
            weights["b_hh"], lengths, y, h_n, workspace, tape)
    cache = _CCache((T, B, I, H, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, cache


def gru_backward(cache, dy, dh_n, *, defer=None):
    """As crnn.reference.gru_backward, on the C core."""
    T, B, I, H, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx, dh0 = np.empty_like(x), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]))
    workspace = _take_workspace(_ext.gru_sizes(T, B, I, H)[_BACKWARD], x.dtype)
    _launch(_ext.gru_backward, workspace, defer,
            T, B, I, H, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], cache.lengths, cache.tape,
            _c(dy), _c(dh_n), dx, dh0, grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"], workspace)
    return dx, dh0, grads
