"""crnn: recurrent neural networks for the CPU, from simple to gated.

The simple (Elman) RNN, the LSTM and the GRU, with PyTorch's semantics and
parameter names, a C core (BLAS for the matrix products) and a NumPy
reference implementation of every kernel.

    >>> import numpy as np, crnn
    >>> lstm = crnn.LSTM(8, 16, seed=0)
    >>> y, (h, c) = lstm(np.zeros((5, 2, 8), dtype=np.float32))
    >>> y.shape, h.shape
    ((5, 2, 16), (1, 2, 16))
"""

from ._backend import available_backends, backend, set_backend, use_backend
from ._io import load
from .cells import GRUCell, LSTMCell, RNNCell
from ._threads import get_num_threads, set_num_threads
from .layers import GRU, LSTM, RNN
from .streaming import Stream

__version__ = "0.1.0"

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Stream", "load", "backend", "set_backend", "use_backend",
           "available_backends", "set_num_threads", "get_num_threads", "__version__"]
