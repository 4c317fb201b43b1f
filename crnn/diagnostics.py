"""Gradient flow through time: how much of the loss at the end reaches step t.

For a model and a batch, `gradient_flow` measures ||dL/dh_t|| for every
step t, where h_t is the recurrent state after step t (all layers; with the
LSTM's cell state c_t as well in `state_norm`). A simple RNN's curve falls
by orders of magnitude going back from the end (the vanishing gradient);
trained gated cells keep it up across the span.

Method (exact, one backward's worth of arithmetic): the sequence is run one
step at a time through the layer's own forward, carrying the state, and
then backpropagated one step at a time from the end, carrying dstate. The
gradient handed from step t+1 back to step t IS dL/dh_t (plus, at step t
itself, the gradient of the output y_t = h_t of the top layer). Chained
this way the per-step backward calls compose to full BPTT, bit for bit the
same arithmetic; splitting the calls is what exposes the per-step state
gradients, which a single whole-sequence backward keeps inside the kernel.

The plot needs matplotlib, an optional extra (`pip install matplotlib`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GradientFlow", "gradient_flow", "task_gradient_flow", "plot_gradient_flow"]


@dataclass
class GradientFlow:
    """Per-step gradient norms, each (T,) float64, averaged over the batch.

    h_norm[t]:     mean over sequences of ||dL/dh_t|| (h of every layer, concatenated).
    state_norm[t]: the same over the whole recurrent state (h, and c for an LSTM).
    input_norm[t]: mean over sequences of ||dL/dx_t||.
    loss: the loss whose gradient this is.
    """

    label: str
    h_norm: np.ndarray
    state_norm: np.ndarray
    input_norm: np.ndarray
    loss: float = math.nan

    @property
    def steps(self) -> int:
        return len(self.h_norm)

    def relative(self, which: str = "h") -> np.ndarray:
        """The curve divided by its value at the last step (1 at t = T-1)."""
        curve = self.h_norm if which == "h" else self.state_norm
        return curve / max(curve[-1], np.finfo(np.float64).tiny)

    def decades(self, which: str = "h") -> float:
        """log10 of (norm at the last step / norm at step 0): orders of magnitude lost over the span.

        inf when the gradient at step 0 is exactly 0: it underflowed the model's dtype
        (float32 stops near 1e-45), see `decades_to_underflow`.
        """
        curve = self.h_norm if which == "h" else self.state_norm
        if curve[0] <= 0.0 or curve[-1] <= 0.0:
            return math.inf
        return float(np.log10(curve[-1] / curve[0]))

    def decades_to_underflow(self, which: str = "h") -> float:
        """Orders of magnitude lost down to the smallest non-zero value of the curve (a lower bound
        on `decades` when it is inf)."""
        curve = self.h_norm if which == "h" else self.state_norm
        nonzero = curve[curve > 0]
        return float(np.log10(curve[-1] / nonzero.min())) if nonzero.size and curve[-1] > 0 else 0.0

    def decades_text(self, which: str = "h") -> str:
        """decades() for a table: "12.3", or "> 44 (underflow to 0)"."""
        value = self.decades(which)
        if math.isinf(value):
            return f"> {self.decades_to_underflow(which):.0f} (underflow to 0)"
        return f"{value:.1f}"


def _recurrent_and_readout(model):
    """(recurrent layer, readout or None) of a crnn.training.Model or a bare layer."""
    if hasattr(model, "recurrent") and hasattr(model, "readout"):
        return model.recurrent, model.readout
    return model, None


def _per_sequence_norm(arrays) -> np.ndarray:
    """(B,) L2 norm per sequence over arrays shaped (L, B, F) (summed across arrays and layers)."""
    total = sum((a.astype(np.float64) ** 2).sum(axis=(0, 2)) for a in arrays)
    return np.sqrt(total)


def gradient_flow(model, x, dout, state=None, label: str = "") -> GradientFlow:
    """||dL/dh_t|| for every step t, given the gradient of the loss w.r.t. the model's output.

    Args:
        model: a crnn.training.Model (recurrent layer + readout) or a crnn.RNN/LSTM/GRU
            (unidirectional, time-major).
        x: (T, B, I) input, the layer's dtype.
        dout: (T, B, O) gradient of the loss w.r.t. the model's output (w.r.t. y for a bare layer).
            Zero everywhere but the last step measures how the loss at the end reaches back.
        state: initial state, or None for zeros.
        label: name carried into plots and tables.

    Returns:
        A GradientFlow (loss left as nan; see `task_gradient_flow` for one that fills it).

    Raises:
        ValueError for a bidirectional or batch_first layer, or misshapen x / dout.
    """
    layer, readout = _recurrent_and_readout(model)
    if layer.bidirectional or layer.batch_first:
        raise ValueError("gradient_flow needs a unidirectional, time-major layer "
                         "(a reverse direction has no single 'step t' to differentiate at)")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be time-major (T, B, I), got shape {x.shape}")
    T = x.shape[0]
    tapes, outs = [], []
    for t in range(T):
        y_t, state, tape = layer.forward(x[t:t + 1], state)
        tapes.append(tape)
        outs.append(y_t)
    y = np.concatenate(outs, axis=0)
    if readout is not None:
        dy, _ = readout.backward(y, np.asarray(dout, dtype=y.dtype))
    else:
        dy = np.asarray(dout, dtype=y.dtype)
    if dy.shape != y.shape:
        raise ValueError(f"dout gives a gradient of shape {dy.shape} for outputs of shape {y.shape}")
    lstm = isinstance(state, tuple)
    h_norm, state_norm, input_norm = (np.zeros(T) for _ in range(3))
    dstate = None                                      # dL/d(state after the last step), from the future: none
    for t in reversed(range(T)):
        # The total dL/dh_t: what later steps send back plus what the output y_t = h_t (top layer) receives.
        total = _with_output_gradient(layer, dstate, dy[t], lstm, y.dtype)
        parts = total if lstm else (total,)
        h_norm[t] = _per_sequence_norm(parts[:1]).mean()
        state_norm[t] = _per_sequence_norm(parts).mean()
        dx_t, dstate, _ = layer.backward(tapes[t], None, total)
        input_norm[t] = np.sqrt((dx_t.astype(np.float64) ** 2).sum(axis=(0, 2))).mean()
    return GradientFlow(label or type(layer).__name__, h_norm, state_norm, input_norm)


def _with_output_gradient(layer, dstate, dy_t: np.ndarray, lstm: bool, dtype):
    """dstate (None or the state-shaped gradient) plus dy_t added to the top layer's h."""
    L, B = layer.num_layers, dy_t.shape[0]
    dh = np.zeros((L, B, layer.output_size), dtype=dtype)
    if dstate is not None:
        dh += dstate[0] if lstm else dstate
    dh[L - 1] += dy_t
    if lstm:
        dc = np.zeros((L, B, layer.hidden_size), dtype=dtype) if dstate is None else dstate[1]
        return dh, dc
    return dh


def task_gradient_flow(model, task, batch=None, final_only: bool = True, label: str = "") -> GradientFlow:
    """gradient_flow of a task's loss on a batch (default: the task's test batch).

    With final_only, only the loss at the LAST scored step counts (the mask is cut to
    that step), so the curve shows how far back the loss at the end reaches.
    """
    batch = task.test_batch() if batch is None else batch
    mask = batch.mask
    if final_only:
        last = int(np.nonzero(mask.any(axis=1))[0].max())
        mask = np.zeros_like(batch.mask)
        mask[last] = batch.mask[last]
    out, _ = model(batch.x)
    if task.kind == "regression":
        from .training.losses import mse_loss as loss_fn
    else:
        from .training.losses import cross_entropy_loss as loss_fn
    loss, dout = loss_fn(out, batch.target, mask=mask)
    flow = gradient_flow(model, batch.x, dout, label=label)
    flow.loss = loss
    return flow


def _pyplot():
    """matplotlib.pyplot, imported only when a plot is asked for (it is an optional extra)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plotting needs matplotlib, an optional extra: pip install matplotlib") from err
    return plt


def plot_gradient_flow(flows, path=None, title: str = "", which: str = "h", ax=None):
    """Plot ||dL/dh_t|| / ||dL/dh_{T-1}|| against t, log scale, one line per GradientFlow.

    Args:
        flows: a GradientFlow or a list of them. Labels "NAME, ..." share a colour per NAME;
            labels containing "init" are dashed.
        path: save the figure there (png, pdf, svg by extension) when given.
        which: "h" for the hidden state, "state" to include the LSTM's c.
        ax: an existing matplotlib Axes to draw into.

    Returns:
        The matplotlib Figure.

    Raises:
        ImportError with an install hint when matplotlib is missing.
    """
    plt = _pyplot()
    flows = [flows] if isinstance(flows, GradientFlow) else list(flows)
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 4.2))
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    # One colour per model (the label up to its first comma), dashed at initialisation.
    colours: dict[str, str] = {}
    for flow in flows:
        model = flow.label.split(",")[0]
        style = "--" if "init" in flow.label else "-"
        line, = ax.semilogy(np.arange(flow.steps), flow.relative(which), style, label=flow.label,
                            color=colours.get(model))
        colours.setdefault(model, line.get_color())
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||" if which == "h" else "||dL/ds_t|| / ||dL/ds_T||")
    ax.set_title(title or "How much of the loss at the last step reaches step t", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
