"""The command line: `python -m crnn` / `crnn`.

    crnn                      a short demo: simple RNN, LSTM and GRU on a long-range task
    crnn compare ...          train the cells side by side on a task; table, optional curves
    crnn gradflow ...         gradient-flow curves at initialisation and after training
    crnn info                 version, backend and BLAS

Every failure a user can cause (a bad option, a missing optional package)
ends with a one-line message and a non-zero exit code: 2 for bad arguments
(as argparse), 1 for a missing optional dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
import warnings
from typing import Sequence

import numpy as np

CELL_NAMES = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}


class UsageError(Exception):
    """A bad argument found after parsing (argument name, message): exit code 2."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"argument {argument}: {message}")


class MissingExtra(Exception):
    """An optional package the requested command needs is missing: exit code 1."""


# ----------------------------------------------------------------- argparse
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _cells(text: str) -> list[str]:
    cells = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELL_NAMES]
    if not cells or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(CELL_NAMES)}, got {text!r}")
    return list(dict.fromkeys(cells))


def _add_model_options(p: argparse.ArgumentParser, task_default: str, length_default: int | None,
                       steps_default: int, steps_flag: str = "--steps") -> None:
    from .tasks import TASKS
    p.add_argument("--task", choices=sorted(TASKS), default=task_default, help="the task (default: %(default)s)")
    p.add_argument("--length", type=_positive_int, default=length_default,
                   help="sequence length T (copy: the delay; digits: 8 or 64); default: the task's")
    p.add_argument("--hidden", type=_positive_int, default=64, help="hidden size of every cell (default: %(default)s)")
    p.add_argument("--batch", type=_positive_int, default=64, help="sequences per update (default: %(default)s)")
    p.add_argument(steps_flag, dest="steps", type=_non_negative_int if steps_flag == "--train-steps" else _positive_int,
                   default=steps_default, help="training updates per cell (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="learning rate (default: %(default)s)")
    p.add_argument("--optimizer", choices=("adam", "rmsprop", "sgd"), default="adam",
                   help="optimizer (default: %(default)s)")
    p.add_argument("--clip", type=_positive_float, default=1.0, help="global gradient-norm clip (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds models, batches and the test set (default: %(default)s)")
    p.add_argument("--cells", type=_cells, default=list(CELL_NAMES), help="comma-separated cells (default: rnn,lstm,gru)")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="start the LSTM's forget-gate bias at this value (e.g. 1.0) instead of PyTorch's "
                        "random init")
    p.add_argument("--plot", metavar="PATH", default=None, help="save a figure there (needs matplotlib)")
    _add_common_options(p)


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="BLAS threads (default: %(default)s; the small per-step products of these models "
                        "run fastest on one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crnn", description="Recurrent networks from simple to gated: train and compare RNN, LSTM and GRU "
                                 "on the CPU. With no command: a short demo.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,compare,gradflow,info}")
    demo = sub.add_parser("demo", help="the short demo (also what `crnn` alone runs)")
    _add_common_options(demo)
    compare = sub.add_parser("compare", help="train cells side by side on a task and tabulate")
    _add_model_options(compare, "adding", None, 1000)
    compare.add_argument("--eval-every", type=_positive_int, default=None,
                         help="score the test batch every N steps (default: steps/20)")
    compare.add_argument("--json", metavar="PATH", default=None,
                         help="also write the settings and every cell's learning curves there")
    gradflow = sub.add_parser("gradflow", help="gradient flow dL/dh_t over time, at init and after training")
    _add_model_options(gradflow, "adding", 200, 0, steps_flag="--train-steps")
    sub.add_parser("info", help="version, backend and BLAS")
    for name, p in sub.choices.items():
        p.set_defaults(parser=p)            # so errors found after parsing print this command's usage
    return parser


# ------------------------------------------------------------------ helpers
@contextlib.contextmanager
def blas_threads(n: int):
    """Limit BLAS to n threads for the block, where we can: crnn's own pool (C extension) and,
    if threadpoolctl is installed, NumPy's. Per-step products of (B, H) x (H, G*H) are far too
    small to share among threads; on a loaded machine extra threads only wait for each other.
    """
    crnn = _quiet_import()
    with contextlib.ExitStack() as stack:
        if "c" in crnn.available_backends():
            try:
                previous = crnn.get_num_threads()
                crnn.set_num_threads(n)
            except RuntimeError:            # a BLAS without a thread-count API: leave it be
                pass
            else:
                stack.callback(crnn.set_num_threads, previous)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=n, user_api="blas"))
        yield


def _quiet_import():
    """Import crnn without the one-time 'no C extension' warning cluttering the output (info reports it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crnn
    return crnn


def _make_task(args):
    from .tasks import TaskUnavailable, make_task
    try:
        return make_task(args.task, length=args.length, seed=args.seed)
    except TaskUnavailable as err:
        raise MissingExtra(str(err)) from None
    except ValueError as err:
        raise UsageError("--length", str(err)) from None


def _check_plot(path: str | None) -> None:
    """Fail before any training if a plot was asked for and matplotlib is missing."""
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra("--plot needs matplotlib, an optional extra: pip install matplotlib") from None


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.2e}"


def _build(cell, task, hidden, seed, forget_bias=None):
    from .training import Model
    return Model.build(cell, task.input_size, hidden, task.output_size, seed=seed,
                       forget_bias=forget_bias if cell == "lstm" else None)


def _train_cells(task, cells, hidden, batch, steps, lr, optimizer, clip, seed, progress, eval_every=None,
                 out=None, forget_bias=None):
    """Train one model per cell on task; return {cell: (model, History)}."""
    from .training import make_optimizer, train
    from .training.progress import progress_bar
    results = {}
    for cell in cells:
        model = _build(cell, task, hidden, seed, forget_bias)
        opt = make_optimizer(optimizer, model.parameters(), lr)
        bar = progress_bar(steps, desc=f"{CELL_NAMES[cell]:<10}", enabled=progress)   # stderr: keeps stdout a clean table

        def on_step(step, loss, bar=bar):
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix_str(f"loss {loss:.4f}")

        try:
            history = train(model, task, steps, batch_size=batch, optimizer=opt, clip=clip, seed=seed + 1,
                            eval_every=eval_every, on_step=on_step, label=CELL_NAMES[cell])
        finally:
            if bar is not None:
                bar.close()
        results[cell] = (model, history)
    return results


def results_table(task, results) -> str:
    """A markdown table: one row per cell."""
    head = (f"| cell | parameters | ms/step | train s | test loss | {task.metric_name} | "
            f"learned ({task.solved_when}) | first scored there at step |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    rows = []
    for cell, (_, h) in results.items():
        verdict = "yes" if task.learned(h.final_metric) else "no"
        first = next((step for step, m in zip(h.eval_steps, h.test_metric) if task.learned(m)), None)
        rows.append(f"| {CELL_NAMES[cell]} | {h.num_parameters:,} | {1000 * h.seconds_per_step:.1f} | "
                    f"{h.train_seconds:.0f} | {_fmt(h.final_loss)} | {_fmt(h.final_metric)} | {verdict} | "
                    f"{first if first is not None else '-'} |")
    base = (f"| trivial baseline | | | | {_fmt(task.baseline_loss)} | {_fmt(task.baseline_metric)} | "
            f"{task.baseline_description} | |")
    return "\n".join([head] + rows + [base])


def plot_learning_curves(task, results, path: str) -> None:
    """Training loss (smoothed) and test loss against steps, one colour per cell."""
    from .diagnostics import _pyplot
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for cell, (_, h) in results.items():
        loss = np.asarray(h.train_loss)
        window = max(len(loss) // 50, 1)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        line, = ax.plot(np.arange(window, len(loss) + 1), smooth, alpha=0.5, lw=1)
        ax.plot(h.eval_steps, h.test_loss, "o-", ms=3, color=line.get_color(),
                label=f"{CELL_NAMES[cell]} ({h.num_parameters:,} params)")
    ax.axhline(task.baseline_loss, color="k", ls=":", label="trivial baseline")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (line: train, smoothed; dots: test)")
    ax.set_title(f"{task.name}, {task.length} steps (dotted: trivial baseline)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _close(fig)


def _close(fig) -> None:
    from .diagnostics import _pyplot
    _pyplot().close(fig)


def _settings(args, task) -> str:
    crnn = _quiet_import()
    return (f"task {task.describe()}\nhidden {args.hidden}, batch {args.batch}, {args.steps} steps, "
            f"{args.optimizer} lr {args.lr}, clip {args.clip}, seed {args.seed}, backend {crnn.backend()}"
            + (f", LSTM forget-gate bias {args.forget_bias}" if getattr(args, "forget_bias", None) is not None else ""))


# ----------------------------------------------------------------- commands
def cmd_compare(args, out) -> int:
    _check_plot(args.plot)
    task = _make_task(args)
    print(_settings(args, task), file=out, flush=True)
    results = _train_cells(task, args.cells, args.hidden, args.batch, args.steps, args.lr, args.optimizer,
                           args.clip, args.seed, args.progress, args.eval_every, out, args.forget_bias)
    print(results_table(task, results), file=out)
    if args.plot:
        plot_learning_curves(task, results, args.plot)
        print(f"learning curves written to {args.plot}", file=out)
    if args.json:
        write_json(args, task, results, args.json)
        print(f"learning curves (JSON) written to {args.json}", file=out)
    return 0


def write_json(args, task, results, path: str) -> None:
    """Settings and each cell's History as JSON (for reports and re-plotting)."""
    crnn = _quiet_import()
    settings = {k: v for k, v in vars(args).items() if k not in ("parser", "plot", "json", "progress")}
    data = {"settings": settings, "backend": crnn.backend(), "task": task.describe(),
            "baseline_loss": task.baseline_loss, "baseline_metric": task.baseline_metric,
            "metric": task.metric_name, "cells": {cell: dataclasses.asdict(h) for cell, (_, h) in results.items()}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


def gradflow_table(flows) -> str:
    """Markdown: per curve, ||dL/dh_t|| relative to the last step at a few t, and decades lost."""
    T = flows[0].steps
    marks = sorted({0, T // 4, T // 2, (3 * T) // 4, T - 1})
    head = "| model | " + " | ".join(f"t={t}" for t in marks) + " | decades lost t=T-1 -> 0 |"
    sep = "| --- |" + " ---: |" * (len(marks) + 1)
    rows = [f"| {f.label} | " + " | ".join(f"{f.relative()[t]:.1e}" for t in marks) + f" | {f.decades_text()} |"
            for f in flows]
    return "\n".join([head, sep] + rows)


def cmd_gradflow(args, out) -> int:
    from .diagnostics import plot_gradient_flow, task_gradient_flow
    _check_plot(args.plot)
    task = _make_task(args)
    print(_settings(args, task), file=out)
    print("||dL/dh_t|| for the loss at the last scored step, relative to t = T-1 "
          f"(mean over {min(args.batch, task.test_size)} test sequences)", file=out, flush=True)
    batch = _subset(task.test_batch(), args.batch)
    flows = []
    for cell in args.cells:
        model = _build(cell, task, args.hidden, args.seed, args.forget_bias)
        flows.append(task_gradient_flow(model, task, batch, label=f"{CELL_NAMES[cell]}, init"))
    if args.steps:
        results = _train_cells(task, args.cells, args.hidden, args.batch, args.steps, args.lr, args.optimizer,
                               args.clip, args.seed, args.progress, out=out, forget_bias=args.forget_bias)
        for cell, (model, h) in results.items():
            flows.append(task_gradient_flow(model, task, batch,
                                            label=f"{CELL_NAMES[cell]}, trained {args.steps} steps"))
        print(results_table(task, results), file=out)
    print(gradflow_table(flows), file=out)
    if args.plot:
        fig = plot_gradient_flow(flows, args.plot, title=f"Gradient flow: {task.name}, {task.length} steps, "
                                                          "loss at the last step")
        _close(fig)
        print(f"gradient-flow plot written to {args.plot}", file=out)
    return 0


def _subset(batch, size: int):
    from .tasks import Batch
    size = min(size, batch.x.shape[1])
    return Batch(batch.x[:, :size], batch.target[:, :size], batch.mask[:, :size])


def cmd_info(args, out) -> int:
    crnn = _quiet_import()
    from . import _backend
    print(f"crnn {crnn.__version__}", file=out)
    print(f"backend: {crnn.backend()} (available: {', '.join(crnn.available_backends())})", file=out)
    if crnn.backend() == "numpy" and "c" not in crnn.available_backends():
        print(f"C extension: not available ({_backend._c_missing_reason})", file=out)
    ext = _backend.extension()
    info = getattr(ext, "blas_info", None) if ext is not None else None
    if info is not None:
        for key, value in info().items():
            print(f"BLAS {key}: {value}", file=out)
        try:
            print(f"BLAS threads: {crnn.get_num_threads()}", file=out)
        except RuntimeError:
            pass
    else:
        print("BLAS: no crnn BLAS without the C extension; NumPy's own:", _numpy_blas(), file=out)
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}", file=out)
    return 0


def _numpy_blas() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:                     # show_config's layout is not a stable API
        return "unknown"


# The demo: long enough for the gated cells to learn, short enough for the NumPy backend
# (see bench/experiments.md for how these settings were measured).
DEMO = dict(task="adding", length=100, hidden=64, batch=64, steps=700, lr=1e-2, optimizer="adam",
            clip=1.0, seed=0)


def cmd_demo(args, out) -> int:
    from .diagnostics import task_gradient_flow
    crnn = _quiet_import()
    d = argparse.Namespace(**DEMO, cells=list(CELL_NAMES), progress=getattr(args, "progress", True))
    task = _make_task(d)
    print("crnn demo: recurrent networks from simple to gated.\n"
          f"The adding problem: {task.length} steps of (value, marker) pairs, two of them marked; at the last\n"
          "step, output the sum of the two marked values. The first mark can be ~100 steps back,\n"
          f"so the cell must carry it that far. Trivial baseline: {task.baseline_description}.\n"
          f"Training each cell: hidden {d.hidden}, batch {d.batch}, {d.steps} steps of Adam (lr {d.lr}), "
          f"gradient clipping {d.clip}; backend {crnn.backend()}.\n", file=out, flush=True)
    start = time.perf_counter()
    results = _train_cells(task, d.cells, d.hidden, d.batch, d.steps, d.lr, d.optimizer, d.clip, d.seed,
                           d.progress, out=out)
    print("\n" + results_table(task, results), file=out)
    batch = _subset(task.test_batch(), d.batch)
    flows = {cell: task_gradient_flow(model, task, batch) for cell, (model, _) in results.items()}
    print("\n" + _demo_story(task, results, flows), file=out)
    print(f"\n(demo took {time.perf_counter() - start:.0f} s; try `crnn compare --help`, "
          "`crnn gradflow --train-steps 1500 --plot gradflow.png`)", file=out)
    return 0


def _reach(flow) -> str:
    """How much of the final loss's gradient reaches step 0, in words."""
    decades = flow.decades()
    if math.isinf(decades):
        return (f"the gradient of the loss at the last step falls below 1e-{flow.decades_to_underflow():.0f} "
                "of its size and underflows to 0 before reaching step 0.")
    return f"the gradient of the loss at the last step reaches step 0 scaled by 1e{-decades:+.0f}."


def _demo_story(task, results, flows) -> str:
    """A few sentences: who learned it, with how many parameters, at what speed, and why."""
    lines = []
    for cell, (_, h) in results.items():
        name = CELL_NAMES[cell]
        verdict = ("learned it" if task.learned(h.final_metric)
                   else "did not learn it" if h.final_metric > 0.5 * task.baseline_metric
                   else "partly learned it")
        lines.append(f"- {name} {verdict}: test MSE {h.final_metric:.4f}, {h.num_parameters:,} parameters, "
                     f"{1000 * h.seconds_per_step:.0f} ms per step; {_reach(flows[cell])}")
    if "lstm" in results and "gru" in results:
        n_lstm, n_gru = results["lstm"][1].num_parameters, results["gru"][1].num_parameters
        lines.append(f"- The GRU has {100 * (1 - n_gru / n_lstm):.0f}% fewer parameters than the LSTM "
                     "(3 gate blocks instead of 4).")
    return "\n".join(lines)


COMMANDS = {"compare": cmd_compare, "gradflow": cmd_gradflow, "info": cmd_info, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """Run the command line with argv (default sys.argv[1:]); return the exit code.

    Raises SystemExit(2) for bad arguments (argparse prints the usage and the message).
    """
    out = out if out is not None else sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "demo"
    try:
        if command == "info":
            return cmd_info(args, out)
        with blas_threads(getattr(args, "threads", 1)):
            return COMMANDS[command](args, out)
    except UsageError as err:
        getattr(args, "parser", parser).error(str(err))      # prints usage + message, exits 2
    except MissingExtra as err:
        print(f"crnn {command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
