"""One time step at a time: RNNCell, LSTMCell, GRUCell (PyTorch's cells).

A cell is a one-layer, one-direction recurrent layer run for a single step,
so it shares the layers' kernels, checks and parameter handling; only the
parameter names differ (PyTorch's cells drop the `_l0` suffix). Use a cell to
step through a stream, or to write a custom loop with `forward`/`backward`.
"""

from __future__ import annotations

import numpy as np

from ._checks import float_array
from .layers import GRU, LSTM, RNN

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _Cell:
    _layer_class: type = RNN
    _suffix = "_l0"

    def _build(self, input_size, hidden_size, bias, dtype, seed, **extra) -> None:
        self._layer = self._layer_class(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed, **extra)
        self.input_size, self.hidden_size = self._layer.input_size, self._layer.hidden_size
        self.bias, self.dtype = self._layer.bias, self._layer.dtype
        # Same arrays, cell names: updating one updates the other.
        self._params = {name[:-len(self._suffix)]: value for name, value in self._layer.parameters().items()}

    # -------------------------------------------------------------- parameters
    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays: weight_ih, weight_hh, bias_ih, bias_hh."""
        return self._params

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of the parameters, by PyTorch's cell names."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Load a dict of arrays or tensors keyed like a torch cell's state_dict.

        Raises KeyError for missing or unexpected names, ValueError for wrong shapes.
        """
        names = set(self._params)
        missing, extra = sorted(names - set(state_dict)), sorted(set(state_dict) - names)
        if missing or extra:
            raise KeyError(f"state_dict does not match this {type(self).__name__}: "
                           f"missing {missing}, unexpected {extra}; expected exactly {list(self._params)}")
        self._layer.load_state_dict({name + self._suffix: value for name, value in state_dict.items()})

    # ------------------------------------------------------------------- steps
    def _as_sequence(self, x, state):
        """x (B, I) or (I,) -> a one-step sequence for the layer, and the layer's state."""
        x = float_array("x", x, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"x must be (B, I) or (I,) for one step, got shape {x.shape}")
        if state is not None:
            state = tuple(float_array(n, s, self.dtype)[None] for n, s in
                          zip(self._layer._state_names, self._layer._state_tuple(state, "state")))
            state = state if len(state) > 1 else state[0]
        return x[None], state

    def _from_layer_state(self, state):
        if isinstance(state, tuple):
            return tuple(s[0] for s in state)
        return state[0]

    def __call__(self, x, state=None):
        """One step of inference: returns the new state (h, or (h, c) for LSTMCell).

        Args:
            x: (B, I), or (I,) unbatched; the cell's dtype.
            state: h (B, H) or (h, c) ((H,) unbatched); zeros when None.

        Raises:
            ValueError for wrong shapes, TypeError for wrong dtypes.
        """
        seq, state = self._as_sequence(x, state)
        _, state_n = self._layer(seq, state)
        return self._from_layer_state(state_n)

    def forward(self, x, state=None):
        """One training step: returns (new state, tape) for `backward`."""
        seq, state = self._as_sequence(x, state)
        _, state_n, tape = self._layer.forward(seq, state)
        return self._from_layer_state(state_n), tape

    def backward(self, tape, dstate):
        """Gradients of one step: returns (dx, dstate_prev, grads) with grads keyed like parameters().

        dstate is the gradient w.r.t. the new state (h, or (dh, dc)).
        """
        dstate = tuple(None if d is None else np.asarray(d)[None]
                       for d in self._layer._state_tuple(dstate, "dstate"))
        dx, dstate0, grads = self._layer.backward(tape, None, dstate if len(dstate) > 1 else dstate[0])
        named = {name[:-len(self._suffix)]: value for name, value in grads.items()}
        return dx[0], self._from_layer_state(dstate0), named


class RNNCell(_Cell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (torch.nn.RNNCell)."""

    _layer_class = RNN

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=np.float32, seed: int | None = None) -> None:
        self._build(input_size, hidden_size, bias, dtype, seed, nonlinearity=nonlinearity)
        self.nonlinearity = nonlinearity


class LSTMCell(_Cell):
    """One LSTM step, gate blocks [i, f, g, o]; state (h, c) (torch.nn.LSTMCell)."""

    _layer_class = LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=np.float32, seed: int | None = None) -> None:
        self._build(input_size, hidden_size, bias, dtype, seed)


class GRUCell(_Cell):
    """One GRU step, gate blocks [r, z, n], reset after the product (torch.nn.GRUCell)."""

    _layer_class = GRU

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=np.float32, seed: int | None = None) -> None:
        self._build(input_size, hidden_size, bias, dtype, seed)
