"""Training pieces that compose with the layers' forward/backward, all in NumPy.

    Linear                       readout y = x W^T + b, forward/backward, PyTorch names
    Model                        recurrent layer + Linear readout, prefixed parameter names
    mse_loss, cross_entropy_loss (loss, gradient), maskable by a mask or lengths
    SGD, Adam, RMSprop           update the live parameter arrays in place (torch.optim rules)
    clip_grad_norm               global-norm clipping, in place
    truncated_bptt, tbptt_chunks BPTT cut every k steps over long streams, state carried
    train, History               the loop: batches from a task, clip, step, evaluate

A minimal loop:

    >>> import numpy as np
    >>> from crnn.training import Model, Adam, clip_grad_norm, mse_loss
    >>> model = Model.build("gru", input_size=2, hidden_size=16, output_size=1, seed=0)
    >>> opt = Adam(model.parameters(), lr=1e-2)
    >>> x = np.zeros((10, 4, 2), np.float32); target = np.zeros((10, 4, 1), np.float32)
    >>> out, _, tape = model.forward(x)
    >>> loss, dout = mse_loss(out, target)
    >>> _, _, grads = model.backward(tape, dout)
    >>> norm = clip_grad_norm(grads, 1.0); opt.step(grads)
"""

from .clip import clip_grad_norm, global_norm
from .linear import Linear
from .loop import History, make_optimizer, train
from .losses import cross_entropy_loss, log_softmax, mask_from_lengths, mse_loss
from .model import CELLS, Model
from .optim import SGD, Adam, Optimizer, RMSprop
from .tbptt import tbptt_chunks, truncated_bptt

__all__ = ["Linear", "Model", "CELLS", "mse_loss", "cross_entropy_loss", "log_softmax",
           "mask_from_lengths", "SGD", "Adam", "RMSprop", "Optimizer", "clip_grad_norm",
           "global_norm", "truncated_bptt", "tbptt_chunks", "train", "History", "make_optimizer"]
