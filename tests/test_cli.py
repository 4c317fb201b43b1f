"""The command line, in-process through main() and once as `python -m crnn`."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

import crnn
from crnn import cli
from crnn.__main__ import main

TINY = ["--length", "6", "--hidden", "4", "--batch", "4", "--no-progress"]


def run(argv):
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue()


def test_info():
    code, text = run(["info"])
    assert code == 0
    assert crnn.__version__ in text and f"backend: {crnn.backend()}" in text


@pytest.mark.parametrize("task", ["adding", "copy", "forecast", "charlm"])
def test_compare_runs_end_to_end(task):
    code, text = run(["compare", "--task", task, "--steps", "3", "--eval-every", "2"] + TINY)
    assert code == 0
    for name in ("RNN (tanh)", "LSTM", "GRU", "trivial baseline", "parameters", "ms/step"):
        assert name in text


def test_compare_with_a_progress_bar_and_a_subset_of_cells(capsys):
    code = main(["compare", "--steps", "2", "--cells", "gru,lstm", "--length", "5", "--hidden", "3", "--batch", "2"])
    captured = capsys.readouterr()
    assert code == 0
    assert "| GRU |" in captured.out and "| LSTM |" in captured.out and "RNN (tanh)" not in captured.out
    assert "2/2" in captured.err                              # the bar (tqdm's or the built-in one) went to stderr


def test_builtin_progress_bar_without_tqdm(monkeypatch):
    from crnn.training.progress import SimpleBar, progress_bar
    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = io.StringIO()
    bar = progress_bar(3, "x", file=stream)
    assert isinstance(bar, SimpleBar)
    for _ in range(3):
        bar.update()
    bar.close()
    assert "3/3" in stream.getvalue()


def test_compare_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    code, text = run(["compare", "--steps", "3", "--plot", str(path)] + TINY)
    assert code == 0 and path.stat().st_size > 1000 and str(path) in text


def test_compare_json(tmp_path):
    import json
    path = tmp_path / "curves.json"
    code, _ = run(["compare", "--steps", "4", "--eval-every", "2", "--json", str(path)] + TINY)
    data = json.loads(path.read_text())
    assert code == 0 and set(data["cells"]) == {"rnn", "lstm", "gru"}
    assert data["cells"]["gru"]["eval_steps"] == [0, 2, 4] and data["settings"]["steps"] == 4


def test_gradflow_at_init_and_after_training(tmp_path):
    code, text = run(["gradflow", "--length", "10", "--hidden", "4", "--batch", "4", "--train-steps", "2",
                      "--no-progress", "--forget-bias", "1"])
    assert code == 0
    assert "RNN (tanh), init" in text and "GRU, trained 2 steps" in text and "decades lost" in text
    assert "forget-gate bias 1.0" in text


def test_demo_runs_with_small_settings(monkeypatch):
    monkeypatch.setattr(cli, "DEMO", dict(cli.DEMO, length=6, hidden=4, batch=4, steps=3))
    code, text = run(["demo", "--no-progress"])
    assert code == 0
    assert "parameters" in text and "GRU has" in text and "fewer parameters than the LSTM" in text


@pytest.mark.parametrize("argv,needle", [
    (["compare", "--length", "0"], "--length"),
    (["compare", "--steps", "many"], "--steps"),
    (["compare", "--cells", "rnn,transformer"], "--cells"),
    (["compare", "--task", "sorting"], "--task"),
    (["compare", "--lr", "-1"], "--lr"),
    (["compare", "--task", "digits", "--length", "7"], "--length"),
    (["compare", "--task", "adding", "--length", "1"], "--length"),
    (["gradflow", "--train-steps", "-3"], "--train-steps"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + ["--no-progress"] if argv[0] != "frobnicate" else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_missing_optional_packages_exit_1_with_a_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["compare", "--plot", "x.png"] + TINY) == 1
    assert "pip install matplotlib" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert cli.main(["compare", "--task", "digits", "--length", "8", "--no-progress"]) == 1
    assert "pip install scikit-learn" in capsys.readouterr().err


def _env():
    """The environment for a child Python that imports the same crnn as this test process."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(crnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_python_dash_m_crnn(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "crnn", "compare", "--steps", "2", "--cells", "gru"] + TINY,
                        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "| GRU |" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "crnn", "compare", "--hidden", "0"],
                         capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert bad.returncode == 2 and "--hidden" in bad.stderr and "Traceback" not in bad.stderr
