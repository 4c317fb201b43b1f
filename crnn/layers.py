"""The public recurrent layers: RNN, LSTM, GRU (PyTorch's semantics and names).

Each class only says which kernels run one layer in one direction; the
stacking, directions, layouts, lengths, dropout and parameter handling live
in crnn/_recurrent.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._recurrent import RecurrentBase

__all__ = ["RNN", "LSTM", "GRU"]


class RNN(RecurrentBase):
    """Simple (Elman) RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Args:
        input_size: I, features of x.
        hidden_size: H, features of h.
        num_layers: stacked layers; layer k > 0 reads layer k-1's output.
        nonlinearity: "tanh" or "relu".
        bias: whether the layers have b_ih and b_hh.
        batch_first: x and y are (B, T, .) instead of (T, B, .).
        dropout: probability of zeroing a layer's input for layers > 0, in `forward` only.
        bidirectional: run each layer in both directions and concatenate the outputs.
        dtype: numpy.float32 or numpy.float64.
        seed: seeds the initial parameters (PyTorch's U(-1/sqrt(H), 1/sqrt(H))) and dropout.

    Raises:
        TypeError / ValueError for arguments of the wrong type or out of range.

    State: h of shape (D*num_layers, B, H). See `__call__`, `forward`, `backward`.
    """

    _gate_count = 1
    _state_names = ("h",)
    _cell_name = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype=np.float32,
                 seed: int | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed)

    def _extra_config(self) -> dict[str, Any]:
        return {"nonlinearity": self.nonlinearity}

    def _cell_forward(self, kernels, x, state, weights, lengths, reverse, training, **options):
        y, h_n, cache = kernels.rnn_forward(
            x, state[0], weights["W_ih"], weights["W_hh"], weights["b_ih"], weights["b_hh"],
            nonlinearity=self.nonlinearity, lengths=lengths, reverse=reverse, training=training,
            **options)
        return y, (h_n,), cache

    def _cell_backward(self, kernels, cache, dy, dstate, **options):
        dx, dh0, grads = kernels.rnn_backward(cache, dy, dstate[0], **options)
        return dx, (dh0,), grads


class LSTM(RecurrentBase):
    """Long short-term memory, gate blocks [i, f, g, o] as in PyTorch.

        i, f, o = sigmoid(.), g = tanh(.), c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t)
        with proj_size > 0: h_t = W_hr (o*tanh(c_t)).

    Args: as crnn.RNN (without nonlinearity), plus
        proj_size: P > 0 projects h to P features (0 < P < hidden_size); 0 for none.

    State: (h, c) with h (D*num_layers, B, H_out) and c (D*num_layers, B, H),
    H_out = proj_size or hidden_size.
    """

    _gate_count = 4
    _state_names = ("h", "c")
    _cell_name = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=np.float32, seed: int | None = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, seed)

    def _extra_config(self) -> dict[str, Any]:
        return {"proj_size": self.proj_size}

    def _cell_forward(self, kernels, x, state, weights, lengths, reverse, training, **options):
        y, h_n, c_n, cache = kernels.lstm_forward(
            x, state[0], state[1], weights["W_ih"], weights["W_hh"], weights["b_ih"],
            weights["b_hh"], weights["W_hr"], lengths=lengths, reverse=reverse, training=training,
            **options)
        return y, (h_n, c_n), cache

    def _cell_backward(self, kernels, cache, dy, dstate, **options):
        dx, dh0, dc0, grads = kernels.lstm_backward(cache, dy, dstate[0], dstate[1], **options)
        return dx, (dh0, dc0), grads


class GRU(RecurrentBase):
    """Gated recurrent unit, gate blocks [r, z, n], reset applied after the product (PyTorch).

        r, z = sigmoid(.), n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h_t = (1-z)*n + z*h_{t-1}

    Args: as crnn.RNN (without nonlinearity).

    State: h of shape (D*num_layers, B, H).
    """

    _gate_count = 3
    _state_names = ("h",)
    _cell_name = "gru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=np.float32, seed: int | None = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed)

    def _cell_forward(self, kernels, x, state, weights, lengths, reverse, training, **options):
        y, h_n, cache = kernels.gru_forward(
            x, state[0], weights["W_ih"], weights["W_hh"], weights["b_ih"], weights["b_hh"],
            lengths=lengths, reverse=reverse, training=training, **options)
        return y, (h_n,), cache

    def _cell_backward(self, kernels, cache, dy, dstate, **options):
        dx, dh0, grads = kernels.gru_backward(cache, dy, dstate[0], **options)
        return dx, (dh0,), grads
