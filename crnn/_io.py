"""Saving and loading layers: one .npz holding the parameters and a JSON config.

The config is stored as UTF-8 bytes in a uint8 array, so the file reads back
with allow_pickle=False. Files are written to a temporary name in the same
folder and renamed into place, so a crash never leaves a half-written file
where a good one stood.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from ._recurrent import RecurrentBase

_CONFIG_KEY = "__crnn_config__"
_FORMAT_VERSION = 1


def save(layer: RecurrentBase, path) -> None:
    """Write `layer` to `path` (an .npz file); replaces an existing file atomically."""
    path = os.fspath(path)
    config = dict(layer.config(), format_version=_FORMAT_VERSION)
    arrays = dict(layer.state_dict())
    arrays[_CONFIG_KEY] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".crnn-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path) -> RecurrentBase:
    """Read a layer written by `layer.save(path)`.

    Raises:
        FileNotFoundError if path does not exist; ValueError if the file is not
        a crnn model (not an .npz, no config, a malformed config or parameters).
    """
    from .layers import GRU, LSTM, RNN

    classes = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a crnn model file (.npz): {err}") from err
    if _CONFIG_KEY not in arrays:
        raise ValueError(f"{path} has no crnn config; was it written by layer.save()?")
    try:
        config = json.loads(arrays.pop(_CONFIG_KEY).tobytes().decode("utf-8"))
        cls = classes[config.pop("cell")]
        config.pop("format_version", None)
        config["dtype"] = np.dtype(config["dtype"])
        layer = cls(**config)
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, AttributeError) as err:
        raise ValueError(f"{path} has a malformed crnn config: {err}") from err
    try:
        layer.load_state_dict(arrays)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} holds parameters that do not match its config: {err}") from err
    return layer
