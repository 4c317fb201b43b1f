"""Optimizers over parameter dicts: SGD (with momentum), Adam, RMSprop.

Each takes the LIVE parameter arrays (a layer's or a Model's `parameters()`)
and `step(grads)` updates them in place from a gradient dict keyed the same
way. The update rules, defaults and weight decay follow torch.optim exactly
(weight decay adds weight_decay * p to the gradient, an L2 penalty), so a
run can be checked step for step against PyTorch.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np


class Optimizer:
    """Shared bookkeeping: the parameter dict, the step count, gradient checks."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float, weight_decay: float) -> None:
        if not isinstance(params, Mapping) or not params:
            raise TypeError("params must be a non-empty dict name -> ndarray (e.g. model.parameters())")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{name!r}] must be a float ndarray, got {type(p).__name__}")
        self.params = params
        self.lr = _non_negative("lr", lr)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in params}

    def _checked(self, grads: Mapping[str, np.ndarray]) -> None:
        missing = [name for name in self.params if name not in grads]
        extra = [name for name in grads if name not in self.params]
        if missing or extra:
            raise KeyError(f"grads must be keyed exactly like the parameters: missing {missing}, unexpected {extra}")
        for name, p in self.params.items():
            if np.shape(grads[name]) != p.shape:
                raise ValueError(f"grads[{name!r}] has shape {np.shape(grads[name])}, expected {p.shape}")

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter in place from its gradient (grads is not modified).

        Raises:
            KeyError if grads misses or adds a name; ValueError for a wrong shape.
        """
        self._checked(grads)
        self.steps += 1
        for name, p in self.params.items():
            g = np.asarray(grads[name], dtype=p.dtype)
            if self.weight_decay:
                g = g + self.weight_decay * p
            self._update(p, g, self.state[name])

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

        b = momentum * b + (1 - dampening) * g      (b = g on the first step)
        p -= lr * (g + momentum * b if nesterov else b)
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = _non_negative("momentum", momentum)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p, g, state):
        if self.momentum:
            if "momentum" not in state:
                state["momentum"] = g.copy()
            else:
                state["momentum"] *= self.momentum
                state["momentum"] += (1.0 - self.dampening) * g
            buf = state["momentum"]
            g = g + self.momentum * buf if self.nesterov else buf
        p -= (self.lr * g).astype(p.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam (L2 weight decay, not AdamW).

        m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
        p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.betas = (b1, b2)
        self.eps = _non_negative("eps", eps)

    def _update(self, p, g, state):
        b1, b2 = self.betas
        if "m" not in state:
            state["m"] = np.zeros_like(p)
            state["v"] = np.zeros_like(p)
        m, v = state["m"], state["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        t = self.steps
        step_size = self.lr / (1.0 - b1 ** t)
        denom = np.sqrt(v) / math.sqrt(1.0 - b2 ** t) + self.eps
        p -= (step_size * m / denom).astype(p.dtype, copy=False)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012; the optimizer of Arjovsky et al. 2016), as torch.optim.RMSprop.

        v = alpha v + (1 - alpha) g^2
        p -= lr * g / (sqrt(v) + eps)          (with momentum: through a buffer b = mu b + that)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.alpha = float(alpha)
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        self.eps = _non_negative("eps", eps)
        self.momentum = _non_negative("momentum", momentum)

    def _update(self, p, g, state):
        if "v" not in state:
            state["v"] = np.zeros_like(p)
        v = state["v"]
        v *= self.alpha
        v += (1.0 - self.alpha) * g * g
        update = g / (np.sqrt(v) + self.eps)
        if self.momentum:
            buf = state.setdefault("momentum", np.zeros_like(p))
            buf *= self.momentum
            buf += update
            update = buf
        p -= (self.lr * update).astype(p.dtype, copy=False)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
