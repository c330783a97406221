"""Checkpoints: round trip, atomic writes, strict loading of corrupt, crafted and hostile files."""

import inspect
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scratchnet import Tensor, checkpoint, optim
from scratchnet.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    load_checkpoint,
    read_metadata,
    remove_temporary_files,
    save_checkpoint,
)
from scratchnet.mnist import predict
from scratchnet.mnist.models import (
    MODELS,
    OPTIONS,
    CNNClassifier,
    LinearClassifier,
    load_model,
    load_pretrained,
)

META = {"architecture": {"name": "cnn", "kwargs": {"dropout_rate": 0.5}}, "metrics": {}}
LINEAR = {"architecture": {"name": "linear", "kwargs": {}}, "metrics": {}}


def test_round_trip_with_optimizer_state(tmp_path):
    model = CNNClassifier()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    model(x).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "cnn.npz", model.state_dict(), META, opt.state_dict())

    state, meta, opt_state = load_checkpoint(path, expected=CNNClassifier().state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value)
        assert state[key].dtype == value.dtype
    assert meta["architecture"]["name"] == "cnn"
    assert "array_sha256" not in meta and "optimizer_state" not in meta
    opt2 = optim.Adam(CNNClassifier().parameters(), lr=1e-3)
    opt2.load_state_dict(opt_state)
    np.testing.assert_array_equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )

    loaded, _ = load_model(path, expected="cnn")
    assert not loaded.training
    np.testing.assert_array_equal(loaded.conv1.weight.data, model.conv1.weight.data)


def test_one_file_that_numpy_still_reads_and_never_pickles(tmp_path):
    path = save_checkpoint(tmp_path / "m.npz", LinearClassifier().state_dict(), LINEAR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"fc.weight", "fc.bias", "metadata.json"}
        assert npz["fc.weight"].shape == (10, 784)
    assert read_metadata(path)["architecture"]["name"] == "linear"


def test_same_contents_same_bytes():
    state = LinearClassifier().state_dict()
    assert checkpoint_bytes(state, LINEAR) == checkpoint_bytes(state, LINEAR)


def test_bundled_models_load_under_their_names():
    for name in MODELS:
        assert type(load_pretrained(name)) is MODELS[name]


def test_options_table_names_the_constructors_arguments():
    for name, cls in MODELS.items():
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert set(OPTIONS[name]) == accepted, name


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.npz", LinearClassifier().state_dict(), LINEAR)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, LinearClassifier().state_dict(), {"architecture": {"name": "x"}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no .tmp left behind
    monkeypatch.undo()
    load_model(path, expected="linear")


def test_leftover_temporary_files_are_removed(tmp_path):
    path = save_checkpoint(tmp_path / "last.npz", LinearClassifier().state_dict(), LINEAR)
    leftover = tmp_path / ".last.npz.0123456789abcdef.tmp"
    leftover.write_bytes(b"half a checkpoint")
    mine = tmp_path / ".notes.tmp"  # not a name a save uses: left alone
    mine.write_text("keep")
    assert remove_temporary_files(tmp_path) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "last.npz"]
    load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Crafted and hostile checkpoints: each is refused with one line, before anything is built
# ---------------------------------------------------------------------------------------------


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_metadata(data: bytes, change) -> bytes:
    """The checkpoint data, with its metadata.json passed through change(meta)."""
    members = members_of(data)
    meta = json.loads(members["metadata.json"])
    change(meta)
    members["metadata.json"] = json.dumps(meta).encode()
    return zip_of(members)


def linear_bytes(**kwargs) -> bytes:
    meta = {"architecture": {"name": "linear", "kwargs": kwargs}}
    return checkpoint_bytes(LinearClassifier().state_dict(), meta)


def npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    """A .npy header alone: it claims an array that the member does not hold."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def with_member(data: bytes, name: str, content: bytes) -> bytes:
    members = members_of(data)
    members[name] = content
    return zip_of(members)


def set_kwargs(kwargs):
    return lambda meta: meta["architecture"].update(kwargs=kwargs)


def inf_bias() -> bytes:
    state = LinearClassifier().state_dict()
    state["fc.bias"] = state["fc.bias"].copy()
    state["fc.bias"][3] = np.inf
    return checkpoint_bytes(state, LINEAR)


def deep_json() -> bytes:
    members = members_of(linear_bytes())
    members["metadata.json"] = b"[" * 100_000 + b"]" * 100_000
    return zip_of(members)


def tampered_weight() -> bytes:
    members = members_of(linear_bytes())
    weight = bytearray(members["fc.weight.npy"])
    weight[-1] ^= 0x01
    members["fc.weight.npy"] = bytes(weight)
    return zip_of(members)


def bare_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((10, 784), np.float32))
    return buffer.getvalue()


def object_array() -> bytes:
    # A pickled object array: the header alone says so, and nothing is unpickled.
    members = members_of(linear_bytes())
    members["fc.bias.npy"] = npy_header((10,), "|O") + b"\x80\x04N."
    return zip_of(members)


def mistyped_weight() -> bytes:
    state = LinearClassifier().state_dict()
    state["fc.weight"] = state["fc.weight"].astype(np.float64)
    return checkpoint_bytes(state, LINEAR)


def extra_member() -> bytes:
    return with_member(linear_bytes(), "payload.bin", b"\0" * 100)


# (name, the file's bytes, the file name it is loaded under, what the error says)
CRAFTED = [
    ("unknown option", lambda: linear_bytes(hidden_layers=3), "x.npz", "unknown option"),
    ("mistyped option", lambda: linear_bytes(num_classes="10"), "x.npz", "must be a number"),
    ("bool as an integer", lambda: linear_bytes(num_classes=True), "x.npz", "must be a number"),
    ("float as an integer", lambda: linear_bytes(num_classes=10.0), "x.npz", "must be an integer"),
    ("init_weights as 1", lambda: linear_bytes(init_weights=1), "x.npz", "must be true or false"),
    ("num_classes = 10**12", lambda: linear_bytes(num_classes=10**12), "x.npz", "between 1"),
    ("NaN dropout", lambda: linear_bytes(dropout_rate=float("nan")), "x.npz", "between 0"),
    (
        "options not an object",
        lambda: with_metadata(linear_bytes(), set_kwargs([1, 2])),
        "x.npz",
        "not an object",
    ),
    (
        "unknown architecture",
        lambda: with_metadata(linear_bytes(), lambda m: m["architecture"].update(name="mlp")),
        "x.npz",
        "unknown architecture 'mlp'",
    ),
    (
        "no architecture",
        lambda: with_metadata(linear_bytes(), lambda m: m.pop("architecture")),
        "x.npz",
        "names no architecture",
    ),
    ("linear saved as cnn.npz", linear_bytes, "cnn.npz", "holds a linear model, not the cnn"),
    (
        "header of 100000x100000",
        lambda: with_member(linear_bytes(), "fc.weight.npy", npy_header((100_000, 100_000))),
        "x.npz",
        "declares shape (100000, 100000)",
    ),
    (
        "negative dimension",
        lambda: with_member(linear_bytes(), "fc.weight.npy", npy_header((-10, 784))),
        "x.npz",
        "negative dimension",
    ),
    ("JSON 100,000 levels deep", deep_json, "x.npz", "nests deeper than 64 levels"),
    ("bare .npy", bare_npy, "x.npz", "bare .npy"),
    ("not a zip", lambda: b"not a zip file", "x.npz", "not a zip"),
    ("non-finite weight", inf_bias, "x.npz", "non-finite values (NaN or infinity) in fc.bias"),
    (
        "integrity hash deleted",
        lambda: with_metadata(linear_bytes(), lambda m: m.pop("array_sha256")),
        "x.npz",
        "integrity cannot be checked",
    ),
    ("array changed after saving", tampered_weight, "x.npz", "SHA-256 of fc.weight differs"),
    ("object array", object_array, "x.npz", "only numeric arrays"),
    ("float64 weight", mistyped_weight, "x.npz", "fc.weight is float64"),
    (
        "missing weight",
        lambda: checkpoint_bytes({"fc.bias": np.zeros(10, np.float32)}, LINEAR),
        "x.npz",
        "missing keys: fc.weight",
    ),
    ("member not in the metadata", extra_member, "x.npz", "does not hold the arrays"),
    (
        "not a scratchnet format",
        lambda: with_metadata(linear_bytes(), lambda m: m.update(format="other")),
        "x.npz",
        "not a scratchnet checkpoint",
    ),
]


def write_crafted(folder: Path, make, filename: str) -> Path:
    path = folder / filename
    path.write_bytes(make())
    return path


@pytest.mark.parametrize(
    ("make", "filename", "says"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED]
)
def test_crafted_checkpoint_is_refused(tmp_path, make, filename, says):
    path = write_crafted(tmp_path, make, filename)
    expected = Path(filename).stem if filename != "x.npz" else None
    with pytest.raises(CheckpointError) as caught:
        load_model(path, expected=expected)
    message = str(caught.value)
    assert says in message
    assert len(message.splitlines()) == 1
    assert "Error" not in message  # no exception class names: the server shows this text


@pytest.mark.parametrize(
    ("make", "filename", "says"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED]
)
def test_predict_cli_refuses_crafted_checkpoint_in_one_line(tmp_path, capsys, make, filename, says):
    path = write_crafted(tmp_path, make, filename)
    model = ["--model", Path(filename).stem] if filename != "x.npz" else []
    code = predict.main([str(tmp_path / "digit.png"), "--checkpoint", str(path), *model, "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("error: cannot load the model: ") and says in err
    assert len(err.splitlines()) == 1


def test_zip_bomb_is_refused_from_the_declared_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_ARRAY_BYTES", 2**20)
    members = members_of(checkpoint_bytes({"fc.weight": np.zeros((4096, 784), np.float32)}, {}))
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(zip_of(members, zipfile.ZIP_DEFLATED))
    assert bomb.stat().st_size < 2**20 // 10  # 12.8 MB of zeros, deflated
    with pytest.raises(CheckpointError, match="more than the limit of 1,048,576"):
        load_checkpoint(bomb)


def test_zip_bomb_lying_about_its_size_is_not_inflated(tmp_path):
    members = members_of(linear_bytes())
    weight = members["fc.weight.npy"]
    members["fc.weight.npy"] = weight + b"\0" * 50 * 2**20  # more than the header declares
    path = tmp_path / "liar.npz"
    path.write_bytes(zip_of(members, zipfile.ZIP_DEFLATED))
    with pytest.raises(CheckpointError, match=r"fc\.weight declares shape"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: os.symlink("/dev/zero", p), "a character device, not a regular file"),
        (lambda p: os.mkfifo(p), "a named pipe (FIFO), not a regular file"),
        (lambda p: p.mkdir(), "a directory, not a regular file"),
    ],
    ids=["symlink to /dev/zero", "FIFO", "directory"],
)
def test_only_regular_files_are_opened(tmp_path, make, says):
    path = tmp_path / "cnn.npz"
    make(path)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert str(caught.value).endswith(f"cannot be opened: it is {says}")


def test_too_large_a_file_is_refused_unread(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.npz", LinearClassifier().state_dict(), LINEAR)
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", 1000)
    with pytest.raises(CheckpointError, match="larger than the limit of 1,000 bytes"):
        load_model(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is missing"):
        load_model(tmp_path / "none.npz")


def test_server_refuses_a_linear_checkpoint_saved_as_cnn(tmp_path):
    from server.inference import ModelRegistry

    save_checkpoint(tmp_path / "cnn.npz", LinearClassifier().state_dict(), LINEAR)
    registry = ModelRegistry(tmp_path, max_image_pixels=10**6)
    registry.load_all(warmup=False)
    status = registry.statuses["cnn"]
    assert not status.loaded
    assert status.error == (
        "checkpoint cnn.npz could not be loaded: checkpoint cnn.npz holds a linear model, "
        "not the cnn model it is loaded as"
    )
