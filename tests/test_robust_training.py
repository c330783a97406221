"""`python -m scratchnet.train --augment-extra`: the robust augmentation as a training option."""

import json

import numpy as np
import pytest

from scratchnet.mnist.augment import RandomAffine, RobustAugment
from scratchnet.mnist.train import build_parser, config_from_args, main, resume_target
from scratchnet.mnist.training import RECIPES, TrainConfig, make_augment


def config(*argv: str, model: str = "cnn") -> TrainConfig:
    return config_from_args(build_parser().parse_args(list(argv)), model)


def test_default_recipes_keep_the_extra_augmentation_off():
    assert RECIPES["cnn"]["augment_extra"] is False and RECIPES["linear"]["augment_extra"] is False
    assert config().augment_extra is False
    assert config("--augment-extra").augment_extra is True
    assert config("--augment-extra", "--no-augment-extra").augment_extra is False


def test_make_augment_combines_affine_and_extras():
    assert make_augment(config("--no-augment")) is None
    assert isinstance(make_augment(config()), RandomAffine)
    both = make_augment(config("--augment-extra"))
    assert isinstance(both, RobustAugment) and isinstance(both.affine, RandomAffine)
    extras_only = make_augment(config("--augment-extra", model="linear"))
    assert isinstance(extras_only, RobustAugment) and extras_only.affine is None


def test_a_config_written_before_the_option_still_resumes(tmp_path):
    values = {k: v for k, v in vars(config(model="linear")).items() if k != "augment_extra"}
    (tmp_path / "config.json").write_text(json.dumps(values))
    _, checkpoint, cfg = resume_target(tmp_path)
    assert checkpoint is None and cfg.augment_extra is False


def test_cli_trains_with_the_extras(mnist, tmp_path, capsys):
    argv = ["--model", "linear", "--epochs", "1", "--limit", "1000", "--augment-extra"]
    assert main([*argv, "--no-progress", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "linear test: loss" in out
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["augment_extra"] is True
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])


def test_help_names_the_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "--augment-extra" in capsys.readouterr().out
