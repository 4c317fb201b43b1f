"""The NumPy reference: every kernel of the C core, written to be read.

One module per cell family; each has a forward over a whole sequence (one
layer, one direction) that returns outputs, final state(s) and the cache
backpropagation needs, and a backward that returns the gradients of the
input, the initial state(s) and every weight and bias. These functions are
the fallback backend and the oracle the C core is tested against.
"""

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward"]
