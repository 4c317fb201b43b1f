"""A recurrent layer followed by a Linear readout at every step: the model tasks train.

    out_t = readout(y_t),  y = recurrent(x)        x: (T, B, I) -> out: (T, B, O)

Parameters and gradients are one flat dict with prefixed names,
"recurrent.weight_ih_l0", ..., "readout.weight", "readout.bias", so an
optimizer handles the whole model at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import layers
from .linear import Linear

CELLS = ("rnn", "lstm", "gru")


@dataclass
class ModelTape:
    """What Model.forward records for Model.backward. Treat it as opaque."""

    recurrent: Any
    readout: Any


class Model:
    """recurrent -> Linear readout, with forward/backward/parameters like a layer.

    Args:
        recurrent: a crnn.RNN, crnn.LSTM or crnn.GRU (time-major or batch_first alike).
        readout: a Linear whose in_features equals the recurrent output width.

    Raises:
        ValueError if the readout does not fit the recurrent layer's output.
    """

    PREFIXES = ("recurrent.", "readout.")

    def __init__(self, recurrent, readout: Linear) -> None:
        width = recurrent.num_directions * recurrent.output_size
        if readout.in_features != width:
            raise ValueError(f"readout.in_features is {readout.in_features}, expected {width} "
                             f"(the recurrent layer's output width)")
        if readout.dtype != recurrent.dtype:
            raise TypeError(f"readout dtype {readout.dtype} differs from the recurrent layer's {recurrent.dtype}")
        self.recurrent = recurrent
        self.readout = readout
        self._params = {"recurrent." + k: v for k, v in recurrent.parameters().items()}
        self._params.update({"readout." + k: v for k, v in readout.parameters().items()})

    @classmethod
    def build(cls, cell: str, input_size: int, hidden_size: int, output_size: int,
              num_layers: int = 1, dtype=np.float32, seed: int | None = None,
              forget_bias: float | None = None) -> "Model":
        """A time-major model: cell "rnn" (tanh), "lstm" or "gru", then a Linear readout.

        All parameters start as PyTorch's do, U(-1/sqrt(H), 1/sqrt(H)). With forget_bias
        (LSTM only), the forget gate's bias b_ih + b_hh starts at that value instead, e.g. 1.0
        (Gers et al. 2000; Jozefowicz et al. 2015), so the cell state starts out kept.

        Raises:
            ValueError for an unknown cell, or forget_bias with a cell that has no forget gate;
            TypeError/ValueError for bad sizes.
        """
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias applies to the LSTM only, got cell {cell!r}")
        rec_seed, out_seed = np.random.SeedSequence(seed).generate_state(2)
        kinds = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU}
        recurrent = kinds[cell](input_size, hidden_size, num_layers=num_layers, dtype=dtype,
                                seed=int(rec_seed))
        readout = Linear(hidden_size, output_size, dtype=dtype, seed=int(out_seed))
        if forget_bias is not None:
            H, params = hidden_size, recurrent.parameters()
            for layer in range(num_layers):
                # Gate blocks [i, f, g, o]: the forget gate is rows H:2H; the two biases add up.
                params[f"bias_ih_l{layer}"][H:2 * H] = forget_bias
                params[f"bias_hh_l{layer}"][H:2 * H] = 0.0
        return cls(recurrent, readout)

    @property
    def dtype(self) -> np.dtype:
        return self.recurrent.dtype

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by prefixed name ("recurrent.weight_ih_l0", "readout.weight", ...)."""
        return self._params

    def num_parameters(self) -> int:
        """Total count of trainable scalars."""
        return int(sum(p.size for p in self._params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of the parameters by prefixed name."""
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Load prefixed parameters (as state_dict returns). Raises KeyError/ValueError on mismatch."""
        rec = {k[len("recurrent."):]: v for k, v in state_dict.items() if k.startswith("recurrent.")}
        out = {k[len("readout."):]: v for k, v in state_dict.items() if k.startswith("readout.")}
        stray = [k for k in state_dict if not k.startswith(self.PREFIXES)]
        if stray or set(out) != set(self.readout.parameters()):
            raise KeyError(f"state_dict does not match this Model: unexpected {stray}, readout keys {sorted(out)}, "
                           f"expected {sorted(self.readout.parameters())}")
        for name, value in out.items():
            if np.shape(value) != self.readout.parameters()[name].shape:
                raise ValueError(f"readout.{name} has shape {np.shape(value)}, expected "
                                 f"{self.readout.parameters()[name].shape}")
        self.recurrent.load_state_dict(rec)
        for name, value in out.items():
            self.readout.parameters()[name][...] = value

    def __call__(self, x, state=None, lengths=None):
        """Inference: (out, state_n), out of shape (T, B, O) in x's layout."""
        y, state_n = self.recurrent(x, state, lengths=lengths)
        return self.readout(y), state_n

    def forward(self, x, state=None, lengths=None):
        """Training forward: (out, state_n, tape); arguments as the recurrent layer's forward."""
        y, state_n, rec_tape = self.recurrent.forward(x, state, lengths=lengths)
        out, out_cache = self.readout.forward(y)
        return out, state_n, ModelTape(rec_tape, out_cache)

    def backward(self, tape: ModelTape, dout, dstate_n=None):
        """Backward through readout and recurrence.

        Args:
            tape: from `forward`.
            dout: gradient w.r.t. out, shaped like out (None for zero).
            dstate_n: gradient w.r.t. the final state (None for zero).

        Returns:
            (dx, dstate_0, grads) with grads keyed like `parameters()`.
        """
        if not isinstance(tape, ModelTape):
            raise TypeError(f"tape must be the ModelTape returned by Model.forward(), got {type(tape).__name__}")
        if dout is None:
            dout = np.zeros(tape.readout.shape[:-1] + (self.readout.out_features,), dtype=self.dtype)
        dy, out_grads = self.readout.backward(tape.readout, dout)
        dx, dstate0, rec_grads = self.recurrent.backward(tape.recurrent, dy, dstate_n)
        grads = {"recurrent." + k: v for k, v in rec_grads.items()}
        grads.update({"readout." + k: v for k, v in out_grads.items()})
        return dx, dstate0, grads

    def __repr__(self) -> str:
        return f"Model({self.recurrent!r}, {self.readout!r})"
