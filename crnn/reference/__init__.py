"""The NumPy reference: every kernel of the C core, written to be read.

One module per cell family; each has a forward over a whole sequence (one
layer, one direction) that returns outputs, final state(s) and the cache
backpropagation needs, and a backward that returns the gradients of the
input, the initial state(s) and every weight and bias. These functions are
the fallback backend and the oracle the C core is tested against. The
*_step functions run one time step (all sequences valid, no cache), sharing
the forward's per-step math: a stream steps with them.

The forwards also take out=, an array (a view may do) to write y into: the
layers pass each direction's part of their output in inference, so neither
a concatenation nor a batch_first copy is made.
"""

from .gru import gru_backward, gru_forward, gru_step
from .lstm import lstm_backward, lstm_forward, lstm_step
from .rnn import rnn_backward, rnn_forward, rnn_step
from ._sequence import step_weights

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward", "rnn_step", "lstm_step", "gru_step", "step_weights"]
