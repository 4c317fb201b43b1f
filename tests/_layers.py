"""Building layers and inputs for tests: one place that knows every option."""

from __future__ import annotations

import numpy as np

import crnn

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")


def make_layer(cell, input_size, hidden_size, dtype=np.float64, seed=0, **options):
    """A crnn layer for a cell name of CELLS, options as the constructor takes them."""
    if cell.startswith("rnn"):
        return crnn.RNN(input_size, hidden_size, nonlinearity=cell[4:], dtype=dtype, seed=seed, **options)
    if cell.startswith("lstm"):
        proj = max(1, hidden_size // 2) if cell == "lstm_proj" and hidden_size > 1 else 0
        return crnn.LSTM(input_size, hidden_size, proj_size=proj, dtype=dtype, seed=seed, **options)
    return crnn.GRU(input_size, hidden_size, dtype=dtype, seed=seed, **options)


def randomize_parameters(layer, rng, scale=0.5):
    """Non-zero random weights and biases (zero biases hide bugs)."""
    for value in layer.parameters().values():
        value[...] = rng.uniform(-scale, scale, size=value.shape)


def random_inputs(layer, rng, T, B, unbatched=False, with_state=True):
    """x in the layer's layout and a random initial state (or None)."""
    dt = layer.dtype
    if unbatched:
        x = rng.standard_normal((T, layer.input_size)).astype(dt)
    elif layer.batch_first:
        x = rng.standard_normal((B, T, layer.input_size)).astype(dt)
    else:
        x = rng.standard_normal((T, B, layer.input_size)).astype(dt)
    if not with_state:
        return x, None
    lead = (layer.num_directions * layer.num_layers,) + (() if unbatched else (B,))
    h = rng.standard_normal(lead + (layer.output_size,)).astype(dt)
    if isinstance(layer, crnn.LSTM):
        c = rng.standard_normal(lead + (layer.hidden_size,)).astype(dt)
        return x, (h, c)
    return x, h


def state_arrays(state):
    """The arrays of a state (h, or (h, c)) as a tuple."""
    return state if isinstance(state, tuple) else (state,)
