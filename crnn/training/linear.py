"""A linear readout y = x W^T + b with its backward (PyTorch's nn.Linear names and init)."""

from __future__ import annotations

import math

import numpy as np

from .._checks import float_array, layer_dtype, positive_int


class Linear:
    """Affine map over the last axis, applied to every leading position at once.

    Args:
        in_features: I, features of x (last axis).
        out_features: O, features of y.
        bias: whether to add b.
        dtype: numpy.float32 or numpy.float64.
        seed: seeds the initial parameters, PyTorch's default U(-1/sqrt(I), 1/sqrt(I)).

    Parameters (live arrays, see `parameters`): "weight" (O, I), "bias" (O,).

    Raises:
        TypeError / ValueError for arguments of the wrong type or out of range.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=np.float32, seed: int | None = None) -> None:
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.dtype = layer_dtype(dtype)
        rng = np.random.default_rng(seed)
        # nn.Linear's kaiming_uniform_(a=sqrt(5)) works out to this bound for both tensors.
        bound = 1.0 / math.sqrt(self.in_features)
        self._params = {"weight": rng.uniform(-bound, bound, (self.out_features, self.in_features))
                        .astype(self.dtype)}
        if bias:
            self._params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by name ("weight", "bias"); update them in place to train."""
        return self._params

    def _input(self, x) -> np.ndarray:
        x = float_array("x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x has shape {x.shape}, expected (..., {self.in_features}): "
                             f"in_features on the last axis")
        return x

    def __call__(self, x) -> np.ndarray:
        """y = x W^T + b: (..., I) -> (..., O), no cache kept."""
        return self.forward(x)[0]

    def forward(self, x):
        """Training forward.

        Args:
            x: (..., I) array of the layer's dtype.

        Returns:
            (y, cache): y of shape (..., O); cache is what `backward` needs (x itself).

        Raises:
            ValueError if the last axis of x is not I, TypeError for another dtype.
        """
        x = self._input(x)
        y = x @ self._params["weight"].T
        if "bias" in self._params:
            y += self._params["bias"]
        return y, x

    def backward(self, cache, dy):
        """Gradients of y = x W^T + b.

        Args:
            cache: from `forward` (the input x, shape (..., I)).
            dy: (..., O) gradient w.r.t. y.

        Returns:
            (dx, grads): dx of shape (..., I); grads keyed like `parameters()`.

        Raises:
            ValueError if dy's shape does not match y's.
        """
        x = cache
        dy = float_array("dy", dy, self.dtype)
        if dy.shape != x.shape[:-1] + (self.out_features,):
            raise ValueError(f"dy has shape {dy.shape}, expected {x.shape[:-1] + (self.out_features,)} (like y)")
        dy2 = dy.reshape(-1, self.out_features)
        grads = {"weight": dy2.T @ x.reshape(-1, self.in_features)}
        if "bias" in self._params:
            grads["bias"] = dy2.sum(axis=0)
        return dy @ self._params["weight"], grads

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={'bias' in self._params}, dtype={self.dtype.name})")
