"""Streaming inference: feed a recurrent layer one time step per call.

    stream = lstm.stream()          # or crnn.Stream(lstm, batch_size=4)
    for x_t in frames:              # x_t: (I,) or (B, I)
        y_t = stream.step(x_t)      # (H_out,) or (B, H_out): the top layer's output
    h, c = stream.state

The stream holds the state between calls and runs every layer's step in C
with buffers allocated once, so a step costs microseconds (the GIL is
released for large steps only: for a small one it costs more than it frees).
Only one-direction layers stream: a reverse direction needs the future.
An output is the caller's for as long as the caller holds it (by a name, a
view, a container); the C backend may write a later step's output into an
earlier one the caller has let go of, instead of making a new array.

Weights: a float32 stream on the C backend steps on copies of W_ih and W_hh
laid out once for the packed kernel (src/rgemm.h), so a step makes no BLAS
call; on the NumPy backend, the reference's one-step functions run on
transposed copies with the biases summed (crnn.reference.step_weights).
The copies are refreshed after layer.load_state_dict(); after writing into
the layer's parameter arrays yourself (an optimizer step), call
stream.reload_weights(). Float64 streams on the C backend read the weights
on every step.
"""

from __future__ import annotations

import numpy as np

from . import _backend, reference
from ._checks import float_array, positive_int, shape_is

__all__ = ["Stream"]


class Stream:
    """Step-by-step inference over a crnn.RNN, LSTM or GRU (not bidirectional).

    Args:
        layer: the layer whose parameters the stream uses (loading new weights with
            layer.load_state_dict is seen by the next step; after changing its
            parameter arrays in place otherwise, call reload_weights()).
        batch_size: B sequences stepped together; None for one unbatched sequence.
        state: initial state like the layer's (h, or (h, c)); zeros when None.

    Raises:
        ValueError for a bidirectional layer or a misshapen state; TypeError for wrong dtypes.

    A stream is one set of sequences' state: do not step it from two threads at once.
    The backend (C or NumPy) is the one in use when the stream is made.
    """

    def __init__(self, layer, batch_size: int | None = None, state=None) -> None:
        if layer.bidirectional:
            raise ValueError("a bidirectional layer cannot stream: its reverse direction needs the "
                             "whole sequence; call the layer on the sequence instead")
        self.layer = layer
        self.unbatched = batch_size is None
        self.batch_size = 1 if batch_size is None else positive_int("batch_size", batch_size)
        self._is_lstm = len(layer._state_names) == 2
        self._h = np.zeros((layer.num_layers, self.batch_size, layer.output_size), dtype=layer.dtype)
        self._c = (np.zeros((layer.num_layers, self.batch_size, layer.hidden_size), dtype=layer.dtype)
                   if self._is_lstm else None)
        self.reset(state)
        self._dtype = layer.dtype
        self._x_shape = ((layer.input_size,) if self.unbatched
                         else (self.batch_size, layer.input_size))
        self._is_gru = layer._cell_name == "gru"
        self._nonlinearity = getattr(layer, "nonlinearity", "tanh")
        self._core = None
        if _backend.backend() == "c":
            ext = _backend.extension()
            weights = []
            for k in range(layer.num_layers):
                w = layer._weights(k, 0)
                weights.append(tuple(w[key] for key in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr")))
            self._core = ext.StreamCore(layer._cell_name, getattr(layer, "nonlinearity", "tanh") == "relu",
                                        self.batch_size, layer.input_size, layer.hidden_size,
                                        layer.output_size, weights, self._h, self._c, self.unbatched,
                                        layer._weights_version)
            self.step = self._core.step          # no Python frame between the caller and C
        else:
            self._prepare_numpy_weights()

    def reload_weights(self) -> None:
        """Take up the layer's parameters again after they were changed in place
        other than by load_state_dict (which the stream notices by itself)."""
        if self._core is not None:
            self._core.pack_weights()
        else:
            self._prepare_numpy_weights()

    def _prepare_numpy_weights(self) -> None:
        layer = self.layer
        names = ("W_ih", "W_hh", "b_ih", "b_hh") + (("W_hr",) if self._is_lstm else ())
        weights = [reference.step_weights(layer._cell_name, *(layer._weights(k, 0)[key] for key in names))
                   for k in range(layer.num_layers)]
        # Per layer: its weights, then views of its rows of the state, which the
        # step updates in place (self._h and self._c stay the state).
        rows = zip(self._h, self._c) if self._c is not None else zip(self._h)
        self._numpy_layers = [w + r for w, r in zip(weights, rows)]
        self._numpy_version = int(layer._weights_version[0])

    def reset(self, state=None) -> None:
        """Start over from `state` (like the layer's initial state), or zeros."""
        if state is None:
            self._h[...] = 0
            if self._c is not None:
                self._c[...] = 0
            return
        parts = self.layer._state_tuple(state, "state")
        for name, value, target in zip(self.layer._state_names, parts, (self._h, self._c)):
            arr = float_array(name + "0", value, self.layer.dtype)
            expected = target.shape[:1] + target.shape[2:] if self.unbatched else target.shape
            shape_is(name + "0", arr, expected, "(num_layers, batch, features) as the layer's state")
            target[...] = arr[:, None, :] if self.unbatched else arr

    @property
    def state(self):
        """A copy of the current state, shaped like the layer's (h, or (h, c))."""
        parts = [self._h] + ([self._c] if self._c is not None else [])
        parts = [p[:, 0, :].copy() if self.unbatched else p.copy() for p in parts]
        return tuple(parts) if self._is_lstm else parts[0]

    def step(self, x):
        """One time step: x (B, I), or (I,) for an unbatched stream -> output (B, H_out) / (H_out,).

        Raises TypeError for a wrong dtype, ValueError for a wrong shape.
        """
        # NumPy backend (the C path replaces this method in __init__): the
        # reference's one-step functions, no masks, no cache. A step costs a few
        # microseconds at small sizes: the loops below are kept lean on purpose.
        if type(x) is not np.ndarray or x.dtype is not self._dtype or x.shape != self._x_shape:
            x = float_array("x", x, self._dtype)              # the slow path, taken rarely
            shape_is("x", x, self._x_shape, "for one step")
        if self.layer._weights_version[0] != self._numpy_version:  # load_state_dict since
            self._prepare_numpy_weights()
        inp = x[None] if self.unbatched else x
        # Arguments spelled out, not *unpacked: the call costs ~0.3 us less.
        if self._is_lstm:
            for W_ih_T, W_hh_T, bias, W_hr, h, c in self._numpy_layers:
                inp, c[...] = reference.lstm_step(inp, h, c, W_ih_T, W_hh_T, bias, W_hr)
                h[...] = inp
        elif self._is_gru:
            for W_ih_T, W_hh_T, b_ih, b_hh, h in self._numpy_layers:
                h[...] = inp = reference.gru_step(inp, h, W_ih_T, W_hh_T, b_ih, b_hh)
        else:
            nonlinearity = self._nonlinearity
            for W_ih_T, W_hh_T, bias, h in self._numpy_layers:
                h[...] = inp = reference.rnn_step(inp, h, W_ih_T, W_hh_T, bias, nonlinearity=nonlinearity)
        # inp is the top layer's new output, an array of its own
        return inp[0] if self.unbatched else inp
