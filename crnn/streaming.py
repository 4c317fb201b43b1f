"""Streaming inference: feed a recurrent layer one time step per call.

    stream = lstm.stream()          # or crnn.Stream(lstm, batch_size=4)
    for x_t in frames:              # x_t: (I,) or (B, I)
        y_t = stream.step(x_t)      # (H_out,) or (B, H_out): the top layer's output
    h, c = stream.state

The stream holds the state between calls and runs every layer's step in C
(GIL released) with buffers allocated once, so a step costs microseconds.
Only one-direction layers stream: a reverse direction needs the future.
"""

from __future__ import annotations

import numpy as np

from . import _backend, reference
from ._checks import float_array, positive_int, shape_is

__all__ = ["Stream"]


class Stream:
    """Step-by-step inference over a crnn.RNN, LSTM or GRU (not bidirectional).

    Args:
        layer: the layer whose parameters the stream uses, as they are when the stream
            is made (see refresh()).
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
        self._x_shape = ((layer.input_size,) if self.unbatched
                         else (self.batch_size, layer.input_size))
        self._is_gru = layer._cell_name == "gru"
        self._nonlinearity = getattr(layer, "nonlinearity", "tanh")
        self._dtype = layer.dtype
        self._on_c = _backend.backend() == "c"
        self.refresh()

    def refresh(self) -> None:
        """Take the layer's current parameters (the state is kept).

        A stream prepares its weights once, when it is made (laid out for its
        backend's one-step kernel): parameters changed afterwards, by
        load_state_dict, an optimizer step or in place, are seen after refresh().
        """
        layer = self.layer
        weights = [layer._weights(k, 0) for k in range(layer.num_layers)]
        if self._on_c:
            ext = _backend.extension()
            self._core = ext.StreamCore(
                layer._cell_name, self._nonlinearity == "relu", self.batch_size, layer.input_size,
                layer.hidden_size, layer.output_size,
                [tuple(None if w[key] is None else w[key].copy()     # the stream's own copies
                       for key in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr")) for w in weights],
                self._h, self._c, self.unbatched)
            self.step = self._core.step          # no Python frame between the caller and C
        else:
            names = ("W_ih", "W_hh", "b_ih", "b_hh") + (("W_hr",) if self._is_lstm else ())
            self._numpy_weights = [reference.step_weights(layer._cell_name, *(w[key] for key in names))
                                   for w in weights]

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
        # reference's one-step functions, no masks, no cache.
        if type(x) is not np.ndarray or x.dtype != self._dtype:    # the common case costs two tests
            x = float_array("x", x, self._dtype)
        if x.shape != self._x_shape:
            shape_is("x", x, self._x_shape, "for one step")
        inp = x[None] if self.unbatched else x
        for k, w in enumerate(self._numpy_weights):
            if self._is_lstm:
                h, self._c[k] = reference.lstm_step(inp, self._h[k], self._c[k], *w)
            elif self._is_gru:
                h = reference.gru_step(inp, self._h[k], *w)
            else:
                h = reference.rnn_step(inp, self._h[k], *w, nonlinearity=self._nonlinearity)
            self._h[k] = h
            inp = h
        # inp is the top layer's new output, an array of its own
        return inp[0] if self.unbatched else inp
