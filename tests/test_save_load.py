"""save() / crnn.load(): everything comes back, nothing else is accepted."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import crnn


@pytest.mark.parametrize("layer", [
    crnn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True, dropout=0.25, seed=1),
    crnn.GRU(2, 3, bias=False, dtype=np.float64, seed=2),
    crnn.RNN(4, 4, nonlinearity="relu", num_layers=3, seed=3),
], ids=["lstm", "gru", "rnn"])
def test_round_trip(tmp_path, layer):
    path = tmp_path / "model.npz"
    layer.save(path)
    again = crnn.load(path)
    assert type(again) is type(layer)
    assert again.config() == layer.config()
    for name, value in layer.parameters().items():
        assert again.parameters()[name].dtype == value.dtype
        assert np.array_equal(again.parameters()[name], value)
    with np.load(path, allow_pickle=False) as data:   # readable without pickle
        assert set(data.files) == set(layer.parameters()) | {"__crnn_config__"}


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "m.npz"
    crnn.GRU(2, 3, seed=0).save(path)
    crnn.GRU(2, 4, seed=0).save(path)
    assert crnn.load(path).hidden_size == 4
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]   # no temporary left behind


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        crnn.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a crnn model file"):
        crnn.load(junk)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="has no crnn config"):
        crnn.load(plain)
    bad_config = tmp_path / "bad_config.npz"
    np.savez(bad_config, __crnn_config__=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(ValueError, match="malformed crnn config"):
        crnn.load(bad_config)
    wrong_params = tmp_path / "wrong.npz"
    cfg = json.dumps(crnn.GRU(2, 3).config()).encode()
    np.savez(wrong_params, __crnn_config__=np.frombuffer(cfg, dtype=np.uint8), weight_ih_l0=np.zeros((9, 2)))
    with pytest.raises(ValueError, match="do not match its config"):
        crnn.load(wrong_params)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __crnn_config__=np.array([{"cell": "gru"}], dtype=object))
    with pytest.raises(ValueError):
        crnn.load(pickled)
    assert zipfile.is_zipfile(pickled)
