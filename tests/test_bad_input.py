"""Bad input raises a clear exception naming what was expected; caller arrays stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

import crnn


@pytest.fixture
def lstm():
    return crnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)


def x_ok(T=5, B=2, I=3, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(input_size=0, hidden_size=4), ValueError, "input_size must be >= 1"),
    (dict(input_size=3, hidden_size=4.5), TypeError, "hidden_size must be an integer"),
    (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers"),
    (dict(input_size=3, hidden_size=4, dropout=1.5), ValueError, "dropout must lie in [0, 1]"),
    (dict(input_size=3, hidden_size=4, dtype=np.int32), TypeError, "float32 or numpy.float64"),
    (dict(input_size=3, hidden_size=4, proj_size=4), ValueError, "proj_size must be smaller"),
    (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError, "proj_size must be >= 0"),
])
def test_bad_constructor_arguments(kwargs, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        crnn.LSTM(**kwargs)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        crnn.RNN(3, 4, nonlinearity="sigmoid")


@pytest.mark.parametrize("x, error, words", [
    (np.zeros((5,), np.float32), ValueError, "must have 3 dimensions"),
    (np.zeros((5, 2, 3, 1), np.float32), ValueError, "must have 3 dimensions"),
    (np.zeros((5, 2, 7), np.float32), ValueError, "expected input_size=3"),
    (np.zeros((0, 2, 3), np.float32), ValueError, "at least one time step"),
    (np.zeros((5, 2, 3), np.float64), TypeError, "expected float32"),
    (np.zeros((5, 2, 3), np.int64), TypeError, "expected float32"),
    (np.zeros((5, 2, 3), np.complex64), TypeError, "expected float32"),
    ("not an array", TypeError, "must be an array of float32"),
])
def test_bad_x(each_backend, lstm, x, error, words):
    with pytest.raises(error, match=words):
        lstm(x)
    with pytest.raises(error, match=words):
        lstm.forward(x)


def test_bad_states(each_backend, lstm):
    x = x_ok()
    h, c = np.zeros((4, 2, 4), np.float32), np.zeros((4, 2, 4), np.float32)
    with pytest.raises(TypeError, match=r"must be a tuple \(h, c\)"):
        lstm(x, h)
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 2, 4\), expected \(4, 2, 4\)"):
        lstm(x, (h[:2], c))
    with pytest.raises(ValueError, match="c0 has shape"):
        lstm(x, (h, c[:, :1]))
    with pytest.raises(TypeError, match="c0 has dtype float64"):
        lstm(x, (h, c.astype(np.float64)))
    gru = crnn.GRU(3, 4)
    with pytest.raises(TypeError, match="single array h"):
        gru(x, (h[:1], c[:1]))


@pytest.mark.parametrize("lengths, error, words", [
    ([5, 6], ValueError, r"lengths must lie in \[0, 5\]"),
    ([5, -1], ValueError, r"lengths must lie in \[0, 5\]"),
    ([5], ValueError, r"expected \(2,\): one length per sequence"),
    ([[5, 5]], ValueError, r"expected \(2,\)"),
    ([2.5, 3], TypeError, "lengths must be integers"),
    (["a", "b"], TypeError, "lengths must be integers"),
])
def test_bad_lengths(each_backend, lstm, lengths, error, words):
    with pytest.raises(error, match=words):
        lstm(x_ok(), lengths=lengths)


def test_bad_backward_arguments(each_backend, lstm):
    y, state, tape = lstm.forward(x_ok())
    with pytest.raises(TypeError, match="tape must be the Tape"):
        lstm.backward({"not": "a tape"}, y)
    with pytest.raises(ValueError, match=r"dy has shape \(5, 2, 4\), expected \(5, 2, 8\)"):
        lstm.backward(tape, y[:, :, :4])
    with pytest.raises(TypeError, match="dy has dtype float64"):
        lstm.backward(tape, y.astype(np.float64))
    with pytest.raises(ValueError, match="dh_n has shape"):
        lstm.backward(tape, y, (state[0][:1], state[1]))


def test_state_dict_missing_extra_misshapen(lstm):
    good = lstm.state_dict()
    before = {k: v.copy() for k, v in lstm.parameters().items()}
    missing = dict(good)
    del missing["bias_hh_l1_reverse"]
    with pytest.raises(KeyError, match=r"missing \['bias_hh_l1_reverse'\]"):
        lstm.load_state_dict(missing)
    extra = dict(good, weight_hr_l0=np.zeros((2, 4), np.float32))
    with pytest.raises(KeyError, match=r"unexpected \['weight_hr_l0'\]"):
        lstm.load_state_dict(extra)
    misshapen = dict(good, weight_ih_l1=np.zeros((16, 3), np.float32))
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l1'\] has shape \(16, 3\), expected \(16, 8\)"):
        lstm.load_state_dict(misshapen)
    with pytest.raises(TypeError, match="expected a real number type"):
        lstm.load_state_dict(dict(good, bias_ih_l0=np.array(["x"] * 16)))
    for name, value in lstm.parameters().items():      # a failed load changes nothing
        assert np.array_equal(value, before[name])


def test_caller_arrays_are_never_modified(each_backend):
    rng = np.random.default_rng(1)
    for layer in (crnn.LSTM(3, 4, proj_size=2, num_layers=2, bidirectional=True, batch_first=True, dropout=0.5, seed=0),
                  crnn.GRU(3, 4, num_layers=2, seed=0), crnn.RNN(3, 4, nonlinearity="relu", seed=0)):
        x = rng.standard_normal((2, 5, 3)).astype(np.float32)
        if not layer.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        lead = (layer.num_directions * layer.num_layers, 2)
        h = rng.standard_normal(lead + (layer.output_size,)).astype(np.float32)
        state = (h, rng.standard_normal(lead + (layer.hidden_size,)).astype(np.float32)) \
            if isinstance(layer, crnn.LSTM) else h
        lengths = np.array([5, 3])
        copies = [a.copy() for a in (x, lengths, *(state if isinstance(state, tuple) else (state,)))]
        params = {k: v.copy() for k, v in layer.parameters().items()}
        layer(x, state, lengths=lengths)
        y, state_n, tape = layer.forward(x, state, lengths=lengths)
        dy = np.ones_like(y)
        dy_copy = dy.copy()
        layer.backward(tape, dy, state_n)
        for a, b in zip((x, lengths, *(state if isinstance(state, tuple) else (state,))), copies):
            assert np.array_equal(a, b)
        assert np.array_equal(dy, dy_copy)
        for k, v in layer.parameters().items():
            assert np.array_equal(v, params[k])


def test_backend_selection_errors():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        crnn.set_backend("cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        with crnn.use_backend("gpu"):
            pass


def test_check_finite_on_request(each_backend, lstm):
    x = x_ok()
    x[2, 1, 0] = np.nan
    lstm(x)                                   # unchecked: NaN propagates, no error
    with pytest.raises(ValueError, match="x contains NaN or infinity"):
        lstm(x, check_finite=True)
    h = np.zeros((4, 2, 4), np.float32)
    h[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="h0 contains NaN or infinity"):
        lstm.forward(x_ok(), (h, np.zeros_like(h)), check_finite=True)
