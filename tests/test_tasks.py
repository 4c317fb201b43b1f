"""Tasks: shapes, seeding, what each target means, and each trivial baseline."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from crnn.tasks import TASKS, CharLM, CopyMemory, TaskUnavailable, make_task
from crnn.training import cross_entropy_loss

GENERATED = ["adding", "copy", "forecast", "charlm"]


@pytest.mark.parametrize("name", GENERATED)
def test_batches_have_the_documented_shapes_and_are_seeded(name):
    task = make_task(name, length=12, seed=0)
    b = task.batch(5, np.random.default_rng(1))
    T = task.length
    assert b.x.shape == (T, 5, task.input_size) and b.x.dtype == np.float32
    assert b.mask.shape == (T, 5) and b.mask.dtype == np.float32
    if task.kind == "regression":
        assert b.target.shape == (T, 5, task.output_size) and b.target.dtype == np.float32
    else:
        assert b.target.shape == (T, 5) and b.target.dtype == np.int64
        assert b.target.min() >= 0 and b.target.max() < task.output_size
    again = task.batch(5, np.random.default_rng(1))
    np.testing.assert_array_equal(b.x, again.x)
    np.testing.assert_array_equal(b.target, again.target)
    assert not np.array_equal(b.x, task.batch(5, np.random.default_rng(2)).x)
    assert task.test_batch() is task.test_batch()
    np.testing.assert_array_equal(task.test_batch().x, make_task(name, length=12, seed=0).test_batch().x)


def test_adding_targets_and_baseline():
    task = make_task("adding", length=40, seed=0)
    b = task.test_batch()
    markers = b.x[:, :, 1]
    assert np.all(markers.sum(axis=0) == 2)
    assert np.all(markers[:20].sum(axis=0) == 1) and np.all(markers[20:].sum(axis=0) == 1)
    np.testing.assert_allclose(b.target[-1, :, 0], (b.x[:, :, 0] * markers).sum(axis=0), rtol=1e-6)
    assert np.all(b.mask[:-1] == 0) and np.all(b.mask[-1] == 1)
    # Predicting 1 everywhere scores about Var(U1 + U2) = 1/6.
    loss = task.loss(np.ones_like(b.target), b)[0]
    assert loss == pytest.approx(task.baseline_loss, rel=0.15)
    assert task.learned(0.005) and not task.learned(0.1)
    with pytest.raises(ValueError, match="length"):
        make_task("adding", length=1)


def test_copy_memory_layout_and_exact_baseline():
    delay = 15
    task = make_task("copy", length=delay, seed=0)
    assert isinstance(task, CopyMemory) and task.length == delay + 20
    b = task.batch(4, np.random.default_rng(0))
    symbols = b.x.argmax(axis=2)
    assert np.all((symbols[:10] >= 1) & (symbols[:10] <= 8))
    assert np.all(symbols[10:delay + 9] == 0) and np.all(symbols[delay + 9] == 9) and np.all(symbols[delay + 10:] == 0)
    np.testing.assert_array_equal(b.target[-10:], symbols[:10])
    assert np.all(b.target[:-10] == 0)
    # The trivial strategy: certain blank, then uniform over the 8 data symbols.
    logits = np.full(b.x.shape[:2] + (9,), -1e4)
    logits[:-10, :, 0] = 0.0
    logits[-10:, :, 1:] = 0.0
    loss = cross_entropy_loss(logits, b.target, mask=b.mask)[0]
    assert loss == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-9)
    assert task.baseline_loss == pytest.approx(loss, rel=1e-9)


def test_forecast_target_is_the_input_ahead_and_persistence_is_the_baseline():
    task = make_task("forecast", length=30, seed=0)
    b = task.batch(3, np.random.default_rng(0))
    np.testing.assert_array_equal(b.target[:-task.horizon], b.x[task.horizon:])
    assert np.all(b.mask[:task.warmup] == 0) and np.all(b.mask[task.warmup:] == 1)
    test = task.test_batch()
    assert task.baseline_loss == pytest.approx(task.loss(test.x, test)[0], rel=1e-5)
    assert 0.02 < task.baseline_loss < 1.0


def test_charlm_reads_python_s_own_english_text():
    task = make_task("charlm", length=50, seed=0)
    assert isinstance(task, CharLM)
    b = task.batch(2, np.random.default_rng(0))
    codes = b.x.argmax(axis=2)
    np.testing.assert_array_equal(codes[1:], b.target[:-1])          # the target is the next character
    text = "".join(task.vocab[c] for c in codes[:, 0])
    assert " " in text and any(ch.isalpha() for ch in text)
    assert 3.5 < task.baseline_metric < 6.0                            # unigram bits per character
    assert task.baseline_metric == pytest.approx(task.baseline_loss / math.log(2))


def test_digits_runs_with_scikit_learn():
    pytest.importorskip("sklearn")
    task = make_task("digits", length=8, seed=0)
    b = task.test_batch()
    assert b.x.shape == (8, task.test_size, 8) and 0 <= b.x.min() and b.x.max() <= 1
    assert b.target[-1].max() == 9 and np.all(b.mask[-1] == 1) and np.all(b.mask[:-1] == 0)
    assert make_task("digits", length=64).input_size == 1
    assert 0.05 < task.baseline_metric < 0.2


def test_digits_without_scikit_learn_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)       # import sklearn now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(TaskUnavailable, match="pip install scikit-learn"):
        make_task("digits", length=8)


def test_make_task_errors():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("sorting")
    with pytest.raises(ValueError, match="8 .* or 64"):
        make_task("digits", length=7)
    with pytest.raises(ValueError, match="length"):
        make_task("adding", length=0)
    with pytest.raises(ValueError, match="batch_size"):
        make_task("adding", length=5).batch(0, np.random.default_rng(0))
    assert set(TASKS) == {"adding", "copy", "forecast", "charlm", "digits"}
