"""python -m reference.train: the same run folder as scratchnet.mnist.train, resumable, same CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference import train as reference_train  # noqa: E402
from scratchnet.checkpoint import load_checkpoint  # noqa: E402
from scratchnet.mnist import train as scratchnet_train  # noqa: E402
from scratchnet.mnist.data import MNIST  # noqa: E402
from scratchnet.mnist.models import load_model  # noqa: E402
from scratchnet.mnist.training import RECIPES, Interrupted, TrainConfig  # noqa: E402


def quiet(_: str) -> None:
    pass


def quick_config(model: str = "linear", **overrides) -> TrainConfig:
    values = dict(RECIPES[model], epochs=2, limit=2000)
    values.update(overrides)
    return TrainConfig(model=model, val_size=1000, **values)


@pytest.fixture(scope="module")
def small(mnist) -> MNIST:
    """The first 4,000 training and 2,000 test images: these tests check the run machinery,
    so they skip most of the evaluation work."""
    return MNIST(
        train_images=mnist.train_images[:4000],
        train_labels=mnist.train_labels[:4000],
        test_images=mnist.test_images[:2000],
        test_labels=mnist.test_labels[:2000],
    )


# The CNN recipe's optimizer, schedule and augmentation, on the quick linear model, no dropout.
RUN = dict(optimizer="adamw", scheduler="onecycle", weight_decay=5e-4, augment=True, dropout=0.0)


@pytest.fixture(scope="module")
def runs(small, tmp_path_factory) -> dict:
    """The same run by scratchnet.mnist.train ("ours") and by reference.train ("theirs")."""
    root = tmp_path_factory.mktemp("runs")
    cfg = quick_config(**RUN)
    return {
        "cfg": cfg,
        "ours": scratchnet_train.train(cfg, root / "ours", data=small, progress=False, log=quiet),
        "theirs": reference_train.train(
            cfg, root / "theirs", data=small, progress=False, log=quiet
        ),
        "root": root,
    }


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_same_files_and_close_results_as_scratchnet(runs, parity_errors):
    """Same seed, initial weights and batches, no dropout: the two runs nearly coincide."""
    ours_dir, theirs_dir = runs["root"] / "ours", runs["root"] / "theirs"
    files = sorted(p.name for p in ours_dir.iterdir())
    assert files == sorted(p.name for p in theirs_dir.iterdir())
    assert {"config.json", "history.json", "metrics.json", "best.npz", "last.npz"} <= set(files)
    assert {"curves.png", "confusion.png", "worst.png"} <= set(files)

    config_ours = read_json(ours_dir / "config.json")
    config_theirs = read_json(theirs_dir / "config.json")
    extra = config_theirs.pop("extra")
    assert extra["framework"] == "torch" and extra["init"] == "scratchnet"
    assert extra["torch_threads"] == torch.get_num_threads()
    config_ours.pop("extra")
    assert config_ours == config_theirs

    history_ours = read_json(ours_dir / "history.json")
    history_theirs = read_json(theirs_dir / "history.json")
    assert [list(h) for h in history_ours] == [list(h) for h in history_theirs]
    for a, b in zip(history_ours, history_theirs):
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert abs(a["val_acc"] - b["val_acc"]) < 0.003
    ours, theirs = runs["ours"], runs["theirs"]
    assert set(ours) == set(theirs)
    assert abs(ours["test_accuracy"] - theirs["test_accuracy"]) < 0.003

    state_ours, _, _ = load_checkpoint(ours_dir / "last.npz")
    state_theirs, meta, opt_state = load_checkpoint(theirs_dir / "last.npz")
    assert meta["framework"] == "torch" and set(opt_state["state"]) == {0, 1}
    worst = max(
        float(np.abs(state_ours[k] - state_theirs[k]).max() / np.abs(state_theirs[k]).max())
        for k in state_ours
    )
    parity_errors.record("reference.train linear, 2 epochs: weights", "float32", worst)
    parity_errors.note(
        f"reference.train vs scratchnet.mnist.train, linear, 2 epochs on 2,000 images: accuracy on "
        f"2,000 test images {100 * ours['test_accuracy']:.2f}% and "
        f"{100 * theirs['test_accuracy']:.2f}%"
    )
    assert worst < 1e-3
    model, _ = load_model(theirs_dir / "best.npz")  # scratchnet reads torch's runs
    assert type(model).__name__ == "LinearClassifier"


def test_killed_run_resumes_to_the_same_end(runs, small, tmp_path):
    """Optimizer and scheduler state come back from last.npz: the resumed run ends exactly as
    the uninterrupted one (runs["theirs"])."""
    cfg = runs["cfg"]

    def crash_after_one(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        reference_train.train(
            cfg, tmp_path, data=small, progress=False, on_epoch_end=crash_after_one, log=quiet
        )
    reference_train.train(
        cfg, tmp_path, tmp_path / "last.npz", data=small, progress=False, log=quiet
    )
    full, _, full_opt = load_checkpoint(runs["root"] / "theirs" / "last.npz")
    resumed, _, resumed_opt = load_checkpoint(tmp_path / "last.npz")
    for key in full:
        np.testing.assert_array_equal(full[key], resumed[key], err_msg=key)
    assert full_opt["param_groups"] == resumed_opt["param_groups"]
    assert [h["epoch"] for h in read_json(tmp_path / "history.json")] == [1, 2]


def test_torch_rng_state_survives_the_checkpoint_metadata():
    """Dropout masks after a resume: the generator state goes through JSON and back."""
    torch.manual_seed(5)
    saved = json.loads(json.dumps(reference_train.torch_rng_state()))
    expected = torch.rand(4)
    torch.manual_seed(6)
    reference_train.set_torch_rng_state(saved)
    assert torch.equal(torch.rand(4), expected)


def test_resuming_a_scratchnet_run_is_refused(runs, small, tmp_path):
    with pytest.raises(ValueError, match=r"scratchnet\.train"):
        reference_train.train(
            runs["cfg"], tmp_path, runs["root"] / "ours" / "last.npz", data=small, log=quiet
        )


def test_cli(small, tmp_path, capsys):
    with pytest.raises(SystemExit):
        reference_train.main(["--help"])
    text = capsys.readouterr().out
    assert "python -m reference.train" in text
    for option in ["--model", "--epochs", "--optimizer", "--scheduler", "--resume", "--torch-init"]:
        assert option in text

    args = ["--model", "linear", "--epochs", "1", "--limit", "500", "--no-progress"]
    assert reference_train.main([*args, "--torch-init", "--output-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("linear-torch-")
    assert json.loads((run / "config.json").read_text())["extra"]["init"] == "torch"
    assert "(torch) test: loss" in capsys.readouterr().out

    assert reference_train.main([*args, "--epochs", "0", "--output-dir", str(tmp_path)]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert reference_train.main([*args, "--bundle"]) == 2
    assert "never bundles" in capsys.readouterr().err
    assert reference_train.main(["--resume", str(tmp_path / "nowhere")]) == 2
    assert "cannot resume" in capsys.readouterr().err
