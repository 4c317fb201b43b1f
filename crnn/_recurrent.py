"""What RNN, LSTM and GRU layers share: parameters, shapes, the stack driver.

A layer is a stack of `num_layers` recurrent layers, each run in one or two
directions by the kernels of the current backend (crnn/_backend.py). This
module knows nothing about any one cell; crnn/layers.py supplies the cell
through three hooks: `_gate_count`, `_cell_forward` and `_cell_backward`.

Shapes (PyTorch's): L = num_layers, D = 2 if bidirectional else 1,
H_out = proj_size or hidden_size.
    x: (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I)
    y: (T, B, D*H_out) in the same layout as x
    h: (D*L, B, H_out), c: (D*L, B, H); unbatched: (D*L, H_out), (D*L, H)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import _backend, reference
from ._checks import check_finite as _check_finite
from ._checks import float_array, layer_dtype, lengths_array, positive_int, shape_is

# Kernel argument names -> PyTorch parameter name prefixes.
_TORCH_PREFIX = {"W_ih": "weight_ih", "W_hh": "weight_hh", "b_ih": "bias_ih",
                 "b_hh": "bias_hh", "W_hr": "weight_hr"}


def _longest_first(lengths: np.ndarray | None, kernels: ModuleType) -> np.ndarray | None:
    """The batch order the C kernels want for variable lengths: by decreasing
    length, ties as given (a stable sort), or None to keep the caller's order.

    At each step the C core runs the recurrent product (and, in backward, dx
    and the weight gradients) only on the rows up to the last sequence still
    running (live_rows in src/common.h): in this order that leaves every
    finished sequence out. Measured on one thread, T=100, B=32, I=128, H=256,
    lengths uniform in [1, 100] (mean 51), the caller's random order against
    this one, ms: LSTM inference 23.9 / 17.9, training 75.4 / 48.3; GRU
    inference 17.8 / 13.7, training 56.3 / 36.8 (padded: LSTM 25.2, 80.5).
    Reordering costs a copy of x and of y (and of dy and dx in backward),
    small beside a step's product. The NumPy reference computes every row of
    every step: there the order would change nothing but the copies.
    """
    if lengths is None or lengths.size < 2 or kernels is reference or np.all(lengths[:-1] >= lengths[1:]):
        return None
    return np.argsort(-lengths, kind="stable")


def _padding_zeroed(seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """seq (T, B, F) with the steps past each sequence's length set to 0, in a
    copy. The NumPy reference runs every step of every sequence, and its
    weight gradients multiply that padding by zero gradients: a NaN or inf
    left there (np.empty, a NaN fill) would come out in them as NaN. The C
    core reads only each step's live rows of a batch sorted longest first.
    Training only: inference's results are right without it (each masked
    step's result is discarded), and a copy would make its memory grow with
    T; see _padding_quiet."""
    valid = np.arange(seq.shape[0])[:, None] < lengths[None, :]
    return np.where(valid[:, :, None], seq, seq.dtype.type(0))


def _padding_quiet(kernels, lengths, training: bool):
    """Around the NumPy reference's inference with lengths: NumPy's warnings of
    invalid values and overflow off. Its steps run on the padding past each
    length too and their results are discarded, so a NaN or inf left there
    (inf - inf in a product) warned about values nobody sees, an error under
    `-W error`. The C core never reads the padding; training zeroes it
    (_padding_zeroed) and so warns only of what it uses."""
    if kernels is reference and lengths is not None and not training:
        return np.errstate(invalid="ignore", over="ignore")
    return contextlib.nullcontext()


def _reordered(parts: tuple, order: np.ndarray | None) -> tuple:
    """Each (B, ...) state array of a tuple with its rows in `order` (unchanged when None)."""
    return parts if order is None else tuple(a[order] for a in parts)


def _batch_in_order(seq: np.ndarray, order: np.ndarray) -> np.ndarray:
    """A new C-contiguous (T, B, F) array holding seq's sequences in `order`
    (seq[:, order] would come out with the batch axis outermost)."""
    return np.take(seq, order, axis=1)


# _batch_back_in_place moves this many bytes of steps at a time.
_REORDER_BYTES = 256 << 10


def _batch_back_in_place(seq: np.ndarray, back: np.ndarray) -> np.ndarray:
    """seq (T, B, F), the layer's own array, with its sequences put in the order
    `back`, in place, a few steps at a time: a second output-sized array per
    call would be one more large block that the allocator may hand out as
    fresh pages (a page fault per 4 KiB) on every call."""
    T, B, F = seq.shape
    steps = max(1, _REORDER_BYTES // max(1, B * F * seq.itemsize))
    for t in range(0, T, steps):
        seq[t:t + steps] = seq[t:t + steps, back]
    return seq


@dataclass
class Tape:
    """What `forward` records for `backward`. Treat it as opaque.

    It holds references to the parameters as they were at `forward`: update
    the parameters only after `backward`.
    """

    kernels: ModuleType                  # the backend that ran forward; backward uses it too
    caches: list                         # caches[layer][direction], kernel-specific
    dropout_masks: list                  # dropout_masks[layer]: scaled mask applied to its input, or None
    steps: int
    batch: int
    batch_first: bool
    unbatched: bool
    input_shape: tuple
    order: np.ndarray | None = None      # the batch order the kernels ran in (_longest_first), or None
    extra: dict[str, Any] = field(default_factory=dict)


class RecurrentBase:
    """Shared machinery of crnn.RNN, crnn.LSTM and crnn.GRU (not public)."""

    _gate_count: int = 1                 # G: gate blocks stacked in the weights
    _state_names: tuple = ("h",)         # ("h",) or ("h", "c")
    _cell_name: str = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=np.float32, seed: int | None = None) -> None:
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.proj_size = positive_int("proj_size", proj_size, minimum=0)
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({self.hidden_size}), "
                             f"got {self.proj_size}")
        dropout = float(dropout)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must lie in [0, 1], got {dropout}")
        self.dropout = dropout
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = layer_dtype(dtype)
        self.seed = seed
        init_seed, dropout_seed = np.random.SeedSequence(seed).spawn(2)
        self._dropout_rng = np.random.default_rng(dropout_seed)
        self._params = self._initial_parameters(np.random.default_rng(init_seed))
        # Counts load_state_dict calls: a stream that keeps packed copies of the
        # weights re-packs them when it changes (crnn/streaming.py).
        self._weights_version = np.zeros(1, np.int64)

    # ------------------------------------------------------------------ shapes
    @property
    def num_directions(self) -> int:
        """D: 2 if bidirectional else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: features of h per direction (proj_size if set, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def _suffix(self, layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def parameter_shapes(self) -> dict[str, tuple]:
        """Parameter names and shapes in PyTorch's order."""
        G, H, P, D = self._gate_count, self.hidden_size, self.output_size, self.num_directions
        shapes = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * P
            for direction in range(D):
                sfx = self._suffix(layer, direction)
                shapes["weight_ih" + sfx] = (G * H, in_size)
                shapes["weight_hh" + sfx] = (G * H, P)
                if self.bias:
                    shapes["bias_ih" + sfx] = (G * H,)
                    shapes["bias_hh" + sfx] = (G * H,)
                if self.proj_size:
                    shapes["weight_hr" + sfx] = (P, H)
        return shapes

    def _initial_parameters(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # PyTorch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        return {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                for name, shape in self.parameter_shapes().items()}

    def _state_shape(self, name: str, batch: int | None) -> tuple:
        size = self.output_size if name == "h" else self.hidden_size
        lead = (self.num_directions * self.num_layers,)
        return lead + ((batch,) if batch is not None else ()) + (size,)

    # -------------------------------------------------------------- parameters
    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays, by PyTorch name (update them in place to train)."""
        return self._params

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of the parameters, by PyTorch name."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Load parameters from a dict of arrays or torch tensors (a torch state_dict as it is).

        Raises KeyError for a missing or unexpected name, ValueError for a
        wrong shape, TypeError for a non-numeric value. Nothing is changed
        unless every entry is valid.
        """
        shapes = self.parameter_shapes()
        missing = [name for name in shapes if name not in state_dict]
        extra = [name for name in state_dict if name not in shapes]
        if missing or extra:
            raise KeyError(f"state_dict does not match this {type(self).__name__}: "
                           f"missing {missing}, unexpected {extra}; expected exactly {list(shapes)}")
        loaded = {}
        for name, shape in shapes.items():
            value = state_dict[name]
            if hasattr(value, "detach") and hasattr(value, "numpy"):      # a torch tensor
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] has dtype {arr.dtype}, expected a real number type")
            shape_is(f"state_dict[{name!r}]", arr, shape, "")
            loaded[name] = arr.astype(self.dtype, copy=True)
        for name, arr in loaded.items():
            self._params[name][...] = arr
        self._weights_version += 1

    def _weights(self, layer: int, direction: int) -> dict[str, np.ndarray | None]:
        """Kernel-named weights (W_ih, W_hh, b_ih, b_hh, W_hr) of one layer and direction."""
        sfx = self._suffix(layer, direction)
        return {key: self._params.get(prefix + sfx) for key, prefix in _TORCH_PREFIX.items()}

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable (used by save/load)."""
        cfg = dict(cell=self._cell_name, input_size=self.input_size, hidden_size=self.hidden_size,
                   num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                   dropout=self.dropout, bidirectional=self.bidirectional, dtype=self.dtype.name)
        cfg.update(self._extra_config())
        return cfg

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "cell")
        return f"{type(self).__name__}({args})"

    def stream(self, batch_size: int | None = None, state=None):
        """A crnn.streaming.Stream stepping this layer one time step per call."""
        from .streaming import Stream
        return Stream(self, batch_size, state)

    def save(self, path) -> None:
        """Write config and parameters to an .npz file (atomically); see crnn.load."""
        from ._io import save
        save(self, path)

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x, state, lengths):
        """Validate and normalise inputs to time-major arrays.

        Returns (x (T, B, I), per-(layer, direction) initial states, lengths, unbatched).
        """
        x = float_array("x", x, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must have 3 dimensions ({'B, T, I' if self.batch_first else 'T, B, I'}) "
                             f"or 2 for an unbatched sequence (T, I), got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x has {I} input features (last axis), expected input_size={self.input_size}")
        if T == 0 or B == 0:
            raise ValueError(f"x must hold at least one time step and one sequence, got shape {x.shape}")
        lengths = lengths_array(lengths, B, T)
        states = self._initial_states(state, B, unbatched)
        return x, states, lengths, unbatched

    def _state_tuple(self, state, what: str) -> tuple:
        """The public state (h, or (h, c) for LSTM) as a tuple with one entry per state name."""
        if len(self._state_names) == 1:
            if isinstance(state, (tuple, list)):
                raise TypeError(f"{what} for {type(self).__name__} is a single array h, got a {type(state).__name__}")
            return (state,)
        if not isinstance(state, (tuple, list)) or len(state) != len(self._state_names):
            raise TypeError(f"{what} for {type(self).__name__} must be a tuple "
                            f"({', '.join(self._state_names)}), got {type(state).__name__}")
        return tuple(state)

    def _initial_states(self, state, batch: int, unbatched: bool, label: str = "{}0") -> list[tuple]:
        """Per (layer, direction) tuple of (B, size) states; zeros where not given.

        label formats each state's name in error messages ("h0", or "dh_n" for gradients).
        """
        count = self.num_directions * self.num_layers
        what = "state" if label == "{}0" else "dstate_n"
        given = self._state_tuple(state, what) if state is not None else (None,) * len(self._state_names)
        per_name = []
        for name, value in zip(self._state_names, given):
            shape = self._state_shape(name, None if unbatched else batch)
            if value is None:
                arr = np.zeros(shape, dtype=self.dtype)
            else:
                arr = float_array(label.format(name), value, self.dtype)
                shape_is(label.format(name), arr, shape,
                         "(num_directions*num_layers, batch, features)" if not unbatched
                         else "(num_directions*num_layers, features) for unbatched input")
            if unbatched:
                arr = arr[:, None, :]
            per_name.append(arr)
        return [tuple(arr[k] for arr in per_name) for k in range(count)]

    # ------------------------------------------------------------- the stack
    def __call__(self, x, state=None, lengths=None, *, check_finite: bool = False):
        """Inference: run the layer without recording a tape (no dropout).

        Args:
            x: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched; the layer's dtype.
            state: initial h (RNN, GRU) or (h, c) (LSTM), shaped (D*L, B, H_out) / (D*L, B, H),
                or (D*L, H_out) / (D*L, H) unbatched; zeros when None.
            lengths: (B,) valid lengths in [0, T]; outputs past a length are 0 and the
                final state is the one at the sequence's last valid step.
            check_finite: raise ValueError if x or the state holds NaN or infinity.

        Returns:
            (y, state_n): y of shape (T, B, D*H_out) in x's layout; state_n like state.

        Raises:
            ValueError for wrong shapes, lengths out of range or (when asked) non-finite
            values; TypeError for wrong dtypes.
        """
        y, state_n, _ = self._run(x, state, lengths, training=False, check_finite=check_finite)
        return y, state_n

    def forward(self, x, state=None, lengths=None, *, check_finite: bool = False):
        """Training forward: like calling the layer, plus the tape `backward` needs.

        Dropout (if any) is applied between layers, drawn from the layer's seeded generator.

        Returns:
            (y, state_n, tape).
        """
        return self._run(x, state, lengths, training=True, check_finite=check_finite)

    def _run(self, x, state, lengths, training: bool, check_finite: bool = False):
        input_shape = np.shape(x)
        xs, states0, lengths, unbatched = self._prepare(x, state, lengths)
        if check_finite:
            _check_finite("x", xs)
            for parts in states0:
                for name, value in zip(self._state_names, parts):
                    _check_finite(name + "0", value)
        kernels = _backend.kernels()
        if training and lengths is not None and kernels is reference:
            xs = _padding_zeroed(xs, lengths)
        order = _longest_first(lengths, kernels)
        if order is not None:     # the kernels see the batch longest first, the caller its own order
            xs, lengths = _batch_in_order(xs, order), lengths[order]
            states0 = [_reordered(parts, order) for parts in states0]
        D, P = self.num_directions, self.output_size
        # In inference the NumPy kernels write y into a view of the layer's
        # output (out=), already in the caller's layout: no concatenation of
        # the directions and no batch_first copy, whose sizes grow with T.
        writes_out = not training and kernels is reference
        layer_input = xs
        finals, caches, masks = [], [], []
        for layer in range(self.num_layers):
            mask = None
            if training and layer > 0 and self.dropout > 0:
                keep = 1.0 - self.dropout
                draw = self._dropout_rng.random(layer_input.shape, dtype=self.dtype)
                if order is not None:    # each sequence gets the draws it gets in the caller's order
                    draw = draw[:, order]
                mask = np.where(draw < keep, 1.0 / keep if keep > 0 else 0.0, 0.0).astype(self.dtype)
                layer_input = layer_input * mask
            outputs, layer_caches = [], []
            out = None
            if writes_out:
                out = self._output_buffer(xs.shape, layer + 1 == self.num_layers, unbatched)
            deferred = self._deferred_calls(kernels)
            for direction in range(D):
                options = {} if out is None else {"out": out[:, :, direction * P:(direction + 1) * P]}
                if deferred is not None:
                    options["defer"] = deferred
                with _padding_quiet(kernels, lengths, training):
                    y_d, state_n, cache = self._cell_forward(
                        kernels, layer_input, states0[layer * D + direction],
                        self._weights(layer, direction), lengths, reverse=direction == 1, training=training,
                        **options)
                outputs.append(y_d)
                layer_caches.append(cache)
                finals.append(state_n)
            if deferred is not None:
                kernels.run_pair(*deferred)      # fills y_d, state_n and the tapes above
            if out is not None:
                layer_input = out
            else:
                layer_input = outputs[0] if D == 1 else np.concatenate(outputs, axis=2)
            caches.append(layer_caches)
            masks.append(mask)
        if order is not None:
            back = np.argsort(order)
            layer_input = _batch_back_in_place(layer_input, back)   # the kernels' output, not in the tape
            finals = [_reordered(parts, back) for parts in finals]
        y = self._to_layout(layer_input, unbatched)
        state_n = self._public_state(finals, unbatched)
        tape = None
        if training:
            tape = Tape(kernels=kernels, caches=caches, dropout_masks=masks, steps=xs.shape[0],
                        batch=xs.shape[1], batch_first=self.batch_first, unbatched=unbatched,
                        input_shape=input_shape, order=order)
        return y, state_n, tape

    def _deferred_calls(self, kernels):
        """A list for the kernels to defer a bidirectional layer's two calls into, so that
        run_pair runs the directions side by side (one per core); None to run each at once:
        one direction, or kernels without run_pair (the NumPy reference)."""
        return [] if self.num_directions == 2 and hasattr(kernels, "run_pair") else None

    def _output_buffer(self, x_shape: tuple, top: bool, unbatched: bool) -> np.ndarray:
        """A layer's output (T, B, D*H_out) for the kernels to write into: for the
        top layer a time-major view of an array in the caller's layout."""
        T, B, _ = x_shape
        features = self.num_directions * self.output_size
        if top and self.batch_first and not unbatched:
            return np.empty((B, T, features), dtype=self.dtype).transpose(1, 0, 2)
        return np.empty((T, B, features), dtype=self.dtype)

    def _to_layout(self, seq: np.ndarray, unbatched: bool) -> np.ndarray:
        """(T, B, F) time-major -> the caller's layout."""
        if unbatched:
            return seq[:, 0, :]
        if self.batch_first:
            return np.ascontiguousarray(seq.transpose(1, 0, 2))
        return seq

    def _public_state(self, finals: list[tuple], unbatched: bool):
        stacked = [np.stack([f[k] for f in finals]) for k in range(len(self._state_names))]
        if unbatched:
            stacked = [s[:, 0, :] for s in stacked]
        return stacked[0] if len(stacked) == 1 else tuple(stacked)

    # -------------------------------------------------------------- backward
    def backward(self, tape: Tape, dy, dstate_n=None):
        """Backpropagation through time over the whole stack.

        Args:
            tape: from `forward`.
            dy: gradient of the loss w.r.t. y, shaped like y (None for zero).
            dstate_n: gradient w.r.t. the final state, shaped like state_n (None for zero;
                for LSTM a tuple (dh_n, dc_n) whose entries may be None).

        Returns:
            (dx, dstate_0, grads): dx shaped like x, dstate_0 shaped like the initial state,
            grads a dict keyed exactly like parameters().

        Raises:
            TypeError if tape is not a Tape, ValueError/TypeError for misshapen gradients.
        """
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must be the Tape returned by forward(), got {type(tape).__name__}")
        T, B, D, P = tape.steps, tape.batch, self.num_directions, self.output_size
        d_out = self._gradient_of_output(dy, tape)
        dfinal = self._initial_states(dstate_n, B, tape.unbatched, label="d{}_n")
        if tape.order is not None:           # in the order forward ran in
            d_out = _batch_in_order(d_out, tape.order)
            dfinal = [_reordered(parts, tape.order) for parts in dfinal]
        grads: dict[str, np.ndarray] = {}
        dstate0: list = [None] * (D * self.num_layers)
        for layer in reversed(range(self.num_layers)):
            deferred = self._deferred_calls(tape.kernels)
            options = {} if deferred is None else {"defer": deferred}
            dxs = []
            for direction in range(D):
                idx = layer * D + direction
                dy_d = d_out if D == 1 else d_out[:, :, direction * P:(direction + 1) * P]
                dx, ds0, g = self._cell_backward(tape.kernels, tape.caches[layer][direction], dy_d, dfinal[idx],
                                                 **options)
                dxs.append(dx)
                dstate0[idx] = ds0
                sfx = self._suffix(layer, direction)
                for key, value in g.items():
                    if value is not None:
                        grads[_TORCH_PREFIX[key] + sfx] = value
            if deferred is not None:
                tape.kernels.run_pair(*deferred)   # fills dxs, dstate0 and g above
            # In place: each dx is this call's own new array, so the sum and
            # the dropout need no third input-sized buffer at the peak.
            d_in = dxs[0]
            if D == 2:
                d_in += dxs[1]
            if tape.dropout_masks[layer] is not None:
                d_in *= tape.dropout_masks[layer]
            d_out = d_in
        if tape.order is not None:
            back = np.argsort(tape.order)
            d_out = _batch_back_in_place(d_out, back)
            dstate0 = [_reordered(parts, back) for parts in dstate0]
        dx = self._to_layout(d_out, tape.unbatched)
        ordered = {name: grads[name] for name in self._params}
        return dx, self._public_state(dstate0, tape.unbatched), ordered

    def _gradient_of_output(self, dy, tape: Tape) -> np.ndarray:
        """dy validated and made time-major (T, B, D*H_out)."""
        T, B = tape.steps, tape.batch
        features = self.num_directions * self.output_size
        if dy is None:
            return np.zeros((T, B, features), dtype=self.dtype)
        dy = float_array("dy", dy, self.dtype)
        if tape.unbatched:
            shape_is("dy", dy, (T, features), "(like y: T, D*H_out)")
            return dy[:, None, :]
        if tape.batch_first:
            shape_is("dy", dy, (B, T, features), "(like y: B, T, D*H_out)")
            return dy.transpose(1, 0, 2)
        shape_is("dy", dy, (T, B, features), "(like y: T, B, D*H_out)")
        return dy

    # ------------------------------------------------------------ cell hooks
    def _cell_forward(self, kernels, x, state, weights, lengths, reverse, training, **options):
        """Run one layer, one direction: -> (y, final state tuple, cache).
        options go to the kernel as they are (the NumPy kernels' out=, the C kernels' defer=)."""
        raise NotImplementedError

    def _cell_backward(self, kernels, cache, dy, dstate, **options):
        """Backward of _cell_forward: -> (dx, initial-state gradient tuple, kernel-named grads).
        options go to the kernel as they are (the C kernels' defer=)."""
        raise NotImplementedError
