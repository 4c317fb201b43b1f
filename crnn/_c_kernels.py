"""The C core behind the reference's signatures.

Each function here has the same name, arguments and results as its twin in
crnn/reference/, so crnn/_backend.py can hand either module to the layers.
This module only prepares buffers: contiguous inputs, outputs, workspace and
tape sized by the core's own *_sizes() queries. The cache a forward returns
is a _CCache holding the tape and what backward passes again to the core.
"""

from __future__ import annotations

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


def _c(a):
    """C-contiguous (a view when it already is), or None."""
    return None if a is None else np.ascontiguousarray(a)


def _lengths(lengths):
    return None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)


def _zero_like(a):
    return None if a is None else np.zeros_like(a)


# --- simple RNN -----------------------------------------------------------------

def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, nonlinearity="tanh",
                lengths=None, reverse=False, training=True):
    """As crnn.reference.rnn_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H = W_hh.shape[0]
    relu = nonlinearity == "relu"
    sizes = _ext.rnn_sizes(T, B, I, H, relu)
    y = np.empty((T, B, H), dtype=x.dtype)
    h_n = np.empty((B, H), dtype=x.dtype)
    workspace = np.empty(sizes[_TRAIN if training else _INFER], dtype=x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh))
    lengths = _lengths(lengths)
    _ext.rnn_forward(T, B, I, H, relu, reverse, x, _c(h0), weights["W_ih"], weights["W_hh"],
                     weights["b_ih"], weights["b_hh"], lengths, y, h_n, workspace, tape)
    cache = _CCache((T, B, I, H, relu, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n):
    """As crnn.reference.rnn_backward, on the C core."""
    T, B, I, H, relu, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx, dh0 = np.empty_like(x), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]))
    workspace = np.empty(_ext.rnn_sizes(T, B, I, H, relu)[_BACKWARD], dtype=x.dtype)
    _ext.rnn_backward(T, B, I, H, relu, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"],
                      cache.lengths, cache.tape, _c(dy), _c(dh_n), dx, dh0,
                      grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"], workspace)
    return dx, dh0, grads


# --- LSTM -------------------------------------------------------------------------

def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr=None, *,
                 lengths=None, reverse=False, training=True):
    """As crnn.reference.lstm_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H, P = W_hh.shape[0] // 4, W_hh.shape[1]
    sizes = _ext.lstm_sizes(T, B, I, H, P)
    y = np.empty((T, B, P), dtype=x.dtype)
    h_n = np.empty((B, P), dtype=x.dtype)
    c_n = np.empty((B, H), dtype=x.dtype)
    workspace = np.empty(sizes[_TRAIN if training else _INFER], dtype=x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh), W_hr=_c(W_hr))
    lengths = _lengths(lengths)
    _ext.lstm_forward(T, B, I, H, P, reverse, x, _c(h0), _c(c0), weights["W_ih"], weights["W_hh"],
                      weights["b_ih"], weights["b_hh"], weights["W_hr"], lengths, y, h_n, c_n,
                      workspace, tape)
    cache = _CCache((T, B, I, H, P, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """As crnn.reference.lstm_backward, on the C core."""
    T, B, I, H, P, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx = np.empty_like(x)
    dh0, dc0 = np.empty((B, P), dtype=x.dtype), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]), W_hr=_zero_like(w["W_hr"]))
    workspace = np.empty(_ext.lstm_sizes(T, B, I, H, P)[_BACKWARD], dtype=x.dtype)
    _ext.lstm_backward(T, B, I, H, P, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], w["W_hr"],
                       cache.lengths, cache.tape, _c(dy), _c(dh_n), _c(dc_n), dx, dh0, dc0,
                       grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"], grads["W_hr"], workspace)
    return dx, dh0, dc0, grads


# --- GRU ----------------------------------------------------------------------------

def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """As crnn.reference.gru_forward, on the C core."""
    x = _c(x)
    T, B, I = x.shape
    H = W_hh.shape[1]
    sizes = _ext.gru_sizes(T, B, I, H)
    y = np.empty((T, B, H), dtype=x.dtype)
    h_n = np.empty((B, H), dtype=x.dtype)
    workspace = np.empty(sizes[_TRAIN if training else _INFER], dtype=x.dtype)
    tape = np.empty(sizes[_TAPE], dtype=x.dtype) if training else None
    weights = dict(W_ih=_c(W_ih), W_hh=_c(W_hh), b_ih=_c(b_ih), b_hh=_c(b_hh))
    lengths = _lengths(lengths)
    _ext.gru_forward(T, B, I, H, reverse, x, _c(h0), weights["W_ih"], weights["W_hh"],
                     weights["b_ih"], weights["b_hh"], lengths, y, h_n, workspace, tape)
    cache = _CCache((T, B, I, H, reverse), x, weights, lengths, tape) if training else None
    return y, h_n, cache


def gru_backward(cache, dy, dh_n):
    """As crnn.reference.gru_backward, on the C core."""
    T, B, I, H, reverse = cache.sizes
    w, x = cache.weights, cache.x
    dx, dh0 = np.empty_like(x), np.empty((B, H), dtype=x.dtype)
    grads = dict(W_ih=np.zeros_like(w["W_ih"]), W_hh=np.zeros_like(w["W_hh"]),
                 b_ih=_zero_like(w["b_ih"]), b_hh=_zero_like(w["b_hh"]))
    workspace = np.empty(_ext.gru_sizes(T, B, I, H)[_BACKWARD], dtype=x.dtype)
    _ext.gru_backward(T, B, I, H, reverse, x, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"],
                      cache.lengths, cache.tape, _c(dy), _c(dh_n), dx, dh0,
                      grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"], workspace)
    return dx, dh0, grads
