"""reference.convert: scratchnet checkpoints <-> torch state_dicts, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reference  # noqa: E402
from reference.convert import (  # noqa: E402
    export_to_scratchnet,
    load_scratchnet_checkpoint,
    main,
    sidecar_path,
)
from scratchnet import Tensor  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from scratchnet.mnist import models  # noqa: E402
from tests.gradcheck import relative_error  # noqa: E402
from tests.parity.compare import random_state  # noqa: E402


def scratchnet_checkpoint(path: Path, name: str = "cnn") -> Path:
    """A checkpoint as scratchnet.mnist.train writes it: weights, architecture, some metrics."""
    arch = {"name": name, "class": models.MODELS[name].__name__, "kwargs": {"dropout_rate": 0.3}}
    meta = {"architecture": arch, "epoch": 3, "metrics": {"val_accuracy": 0.987}}
    return save_checkpoint(path, random_state(name), meta)


def images(n: int = 8) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, 1, 28, 28)).astype(np.float32)


@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_round_trip_scratchnet_torch_scratchnet_keeps_every_array(name, tmp_path, capsys):
    original = scratchnet_checkpoint(tmp_path / "original.npz", name)
    assert main(["to-torch", str(original), str(tmp_path / "model.pt")]) == 0
    assert main(["to-scratchnet", str(tmp_path / "model.pt"), str(tmp_path / "back.npz")]) == 0
    assert "wrote" in capsys.readouterr().out

    state_a, meta_a, _ = load_checkpoint(original)
    state_b, meta_b, _ = load_checkpoint(tmp_path / "back.npz")
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert state_a[key].dtype == state_b[key].dtype, key
        assert state_a[key].shape == state_b[key].shape, key
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=key)
    assert meta_b["architecture"] == meta_a["architecture"]
    assert meta_b["metrics"] == meta_a["metrics"]
    assert meta_b["converted_from"] == str(tmp_path / "model.pt")

    model_a, _ = models.load_model(original)
    model_b, _ = models.load_model(tmp_path / "back.npz")
    x = Tensor(images())
    np.testing.assert_array_equal(model_a(x).data, model_b(x).data)


def test_torch_file_is_a_plain_state_dict_with_its_metadata_beside(tmp_path, capsys):
    original = scratchnet_checkpoint(tmp_path / "cnn.npz")
    assert main(["to-torch", str(original), str(tmp_path / "cnn.pt")]) == 0
    assert capsys.readouterr().out.startswith("wrote")
    state = torch.load(tmp_path / "cnn.pt", weights_only=True)
    assert list(state) == list(load_checkpoint(original)[0])
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    assert sidecar_path(tmp_path / "cnn.pt").name == "cnn.pt.json"
    assert sidecar_path(tmp_path / "cnn.pt").exists()
    load_checkpoint(original)  # the source checkpoint's own cnn.json is untouched


def test_loaded_reference_model_predicts_as_scratchnet(tmp_path, parity_errors):
    path = scratchnet_checkpoint(tmp_path / "cnn.npz")
    theirs = load_scratchnet_checkpoint(path)
    assert isinstance(theirs, reference.CNNClassifier) and not theirs.training
    assert theirs.dropout.p == 0.3
    ours, _ = models.load_model(path)
    x = images(16)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    error = relative_error(ours(Tensor(x)).data, expected)
    parity_errors.record("convert: loaded checkpoint logits", "float32", error)
    assert error < 1e-5


def test_export_a_torch_model_or_a_bare_state_dict(tmp_path):
    torch.manual_seed(0)
    model = reference.LinearClassifier(dropout_rate=0.1)
    export_to_scratchnet(model, tmp_path / "linear.npz", {"note": "from torch"})
    loaded, meta = models.load_model(tmp_path / "linear.npz")
    assert meta["architecture"]["name"] == "linear"
    assert meta["architecture"]["kwargs"] == {"dropout_rate": 0.1}
    assert meta["framework"] == "torch" and meta["note"] == "from torch"
    np.testing.assert_array_equal(loaded.fc.weight.data, model.fc.weight.detach().numpy())

    cnn = reference.CNNClassifier()
    export_to_scratchnet(cnn.state_dict(), tmp_path / "cnn.npz")
    _, meta = models.load_model(tmp_path / "cnn.npz")
    assert meta["architecture"]["name"] == "cnn"

    # A CNN with a 3x3 final pool: from the module, and from its bare state_dict (fc1's shape)
    cnn = reference.CNNClassifier(pool_size=3)
    for source in (cnn, cnn.state_dict()):
        export_to_scratchnet(source, tmp_path / "cnn3.npz")
        loaded, meta = models.load_model(tmp_path / "cnn3.npz")
        assert meta["architecture"]["kwargs"]["pool_size"] == 3 and loaded.pool_size == 3


# ---------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------


def run_cli(args: list[str], capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_missing_or_corrupt_scratchnet_checkpoint(tmp_path, capsys):
    err = run_cli(["to-torch", str(tmp_path / "nowhere.npz"), str(tmp_path / "x.pt")], capsys)
    assert "missing" in err
    path = scratchnet_checkpoint(tmp_path / "cnn.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    err = run_cli(["to-torch", str(path), str(tmp_path / "x.pt")], capsys)
    assert "corrupt" in err
    assert not (tmp_path / "x.pt").exists()


def test_checkpoint_of_an_unknown_or_mismatched_model(tmp_path):
    save_checkpoint(tmp_path / "odd.npz", {"w": np.zeros(3)}, {"architecture": {"name": "mlp"}})
    with pytest.raises(CheckpointError, match="unknown architecture 'mlp'"):
        load_scratchnet_checkpoint(tmp_path / "odd.npz")
    state = random_state("cnn")
    state["fc2.weight"] = np.zeros((5, 64), dtype=np.float32)
    del state["bn3.running_var"]
    save_checkpoint(tmp_path / "bad.npz", state, {"architecture": {"name": "cnn"}})
    with pytest.raises(CheckpointError, match=r"missing keys: bn3.running_var.*fc2.weight"):
        load_scratchnet_checkpoint(tmp_path / "bad.npz")


def test_files_that_are_not_state_dicts(tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert "is not a torch state_dict file" in run_cli(
        ["to-scratchnet", str(text), str(tmp_path / "a.npz")], capsys
    )
    whole_model = tmp_path / "module.pt"
    torch.save(reference.LinearClassifier(), whole_model)  # a pickled Module, not weights
    assert "is not a torch state_dict file" in run_cli(
        ["to-scratchnet", str(whole_model), str(tmp_path / "b.npz")], capsys
    )
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    assert "neither a LinearClassifier nor a CNNClassifier" in run_cli(
        ["to-scratchnet", str(other), str(tmp_path / "c.npz")], capsys
    )
    truncated = tmp_path / "truncated.pt"
    torch.save(reference.LinearClassifier().state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    assert "damaged" in run_cli(["to-scratchnet", str(truncated), str(tmp_path / "e.npz")], capsys)
    assert "does not exist" in run_cli(
        ["to-scratchnet", str(tmp_path / "nowhere.pt"), str(tmp_path / "d.npz")], capsys
    )
    assert not any(
        (tmp_path / name).exists() for name in ["a.npz", "b.npz", "c.npz", "d.npz", "e.npz"]
    )


def test_state_dict_with_a_wrong_shape(tmp_path, capsys):
    state = reference.CNNClassifier().state_dict()
    state["conv2.weight"] = torch.zeros(64, 32, 5, 5)
    torch.save(state, tmp_path / "wrong.pt")
    err = run_cli(["to-scratchnet", str(tmp_path / "wrong.pt"), str(tmp_path / "w.npz")], capsys)
    assert "conv2.weight" in err and "(64, 32, 5, 5)" in err
    assert not (tmp_path / "w.npz").exists()
