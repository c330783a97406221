"""The training CLI on real MNIST: quick runs, outputs, resuming, determinism, bad options."""

import json

import numpy as np
import pytest

from scratchnet.checkpoint import load_checkpoint
from scratchnet.mnist.train import build_parser, main
from scratchnet.mnist.training import RECIPES, Interrupted, TrainConfig, train


def quick_config(**overrides):
    values = dict(RECIPES["linear"], epochs=2, batch_size=64, limit=4000)
    values.update(overrides)
    model = values.pop("model", "linear")
    return TrainConfig(model=model, **values)


def test_linear_quick_training_beats_85_percent(mnist, tmp_path):
    metrics = train(
        quick_config(), tmp_path / "run", data=mnist, progress=False, log=lambda s: None
    )
    assert metrics["test_accuracy"] > 0.85
    for name in [
        "config.json",
        "history.json",
        "metrics.json",
        "best.npz",
        "last.npz",
        "curves.png",
        "confusion.png",
        "worst.png",
    ]:
        assert (tmp_path / "run" / name).exists(), name
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(saved["confusion_matrix"]) == 10
    assert sum(map(sum, saved["confusion_matrix"])) == 10_000
    assert set(saved["per_class"]["3"]) == {"precision", "recall", "f1", "support"}
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_training_is_deterministic(mnist, tmp_path):
    cfg = quick_config(epochs=1, dropout=0.2, limit=2000)
    a = train(cfg, tmp_path / "a", data=mnist, progress=False, log=lambda s: None)
    b = train(cfg, tmp_path / "b", data=mnist, progress=False, log=lambda s: None)
    assert a["test_loss"] == b["test_loss"]


@pytest.mark.parametrize("model", ["linear", "cnn"])
def test_killed_run_resumes_to_the_same_end(mnist, tmp_path, model):
    overrides = {
        "linear": dict(dropout=0.2, limit=3000, epochs=3),
        "cnn": dict(model="cnn", limit=256, epochs=3, batch_size=64),
    }[model]
    cfg = quick_config(**overrides)
    train(cfg, tmp_path / "full", data=mnist, progress=False, log=lambda s: None)

    def crash_after_two(epoch, record):
        if epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(
            cfg,
            tmp_path / "killed",
            data=mnist,
            progress=False,
            on_epoch_end=crash_after_two,
            log=lambda s: None,
        )
    train(
        cfg,
        tmp_path / "killed",
        resume=tmp_path / "killed" / "last.npz",
        data=mnist,
        progress=False,
        log=lambda s: None,
    )

    full, _, full_opt = load_checkpoint(tmp_path / "full" / "last.npz")
    resumed, _, resumed_opt = load_checkpoint(tmp_path / "killed" / "last.npz")
    for key in full:
        np.testing.assert_array_equal(full[key], resumed[key], err_msg=key)
    assert full_opt["state"].keys() == resumed_opt["state"].keys()


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for option in [
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--scheduler",
        "--weight-decay",
        "--dropout",
        "--augment",
        "--no-augment",
        "--seed",
        "--data-dir",
        "--output-dir",
        "--resume",
        "--limit",
        "--patience",
    ]:
        assert option in text


def test_cli_runs_and_rejects_bad_options(mnist, tmp_path, capsys):
    code = main(
        [
            "--model",
            "linear",
            "--epochs",
            "1",
            "--limit",
            "1000",
            "--no-progress",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "linear test: loss" in capsys.readouterr().out
    assert main(["--model", "linear", "--epochs", "0", "--output-dir", str(tmp_path)]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "nowhere")]) == 2


def test_patience_stops_early(mnist, tmp_path):
    cfg = quick_config(epochs=6, limit=500, lr=1e-6, patience=1, scheduler="none")
    metrics = train(cfg, tmp_path / "run", data=mnist, progress=False, log=lambda s: None)
    assert metrics["epochs_run"] < 6
