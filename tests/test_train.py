"""The training CLI on real MNIST: quick runs, outputs, resuming, determinism, bad options,
the named recipes (--recipe)."""

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest

from scratchnet import optim
from scratchnet.checkpoint import load_checkpoint, read_metadata
from scratchnet.mnist import inference
from scratchnet.mnist import train as train_cli
from scratchnet.mnist.data import MNIST, DataLoader
from scratchnet.mnist.models import LinearClassifier, load_model
from scratchnet.mnist.train import build_parser, config_from_args, main, resume_target
from scratchnet.mnist.training import (
    FAST_RECIPES,
    RECIPES,
    SCRATCHNET,
    Interrupted,
    TrainConfig,
    make_augment,
    make_scheduler,
    recipe_values,
    train,
    train_epoch,
)
from scratchnet.tensor import Tensor


def quick_config(**overrides):
    values = dict(RECIPES["linear"], epochs=2, batch_size=64, limit=4000)
    values.update(overrides)
    model = values.pop("model", "linear")
    return TrainConfig(model=model, **values)


# A run evaluates its validation images after every epoch and its test images at the end: for
# the short CNN runs below that is most of their time. The runs that compare one run with
# another, or check what the command line writes, need few of them; a run with the full sets is
# checked above, full-length ones in test_train_full.py.
SMALL_VAL = 500
SMALL_TEST = 500


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """MNIST's training set and its first SMALL_TEST test images."""
    return MNIST(
        mnist.train_images,
        mnist.train_labels,
        mnist.test_images[:SMALL_TEST],
        mnist.test_labels[:SMALL_TEST],
    )


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
def test_killed_run_resumes_to_the_same_end(small_mnist, tmp_path, model):
    overrides = {
        "linear": dict(dropout=0.2, limit=3000, epochs=3),
        "cnn": dict(model="cnn", limit=256, epochs=3, batch_size=64),
    }[model]
    cfg = quick_config(**overrides, val_size=SMALL_VAL)
    train(cfg, tmp_path / "full", data=small_mnist, progress=False, log=lambda s: None)

    def crash_after_two(epoch, record):
        if epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(
            cfg,
            tmp_path / "killed",
            data=small_mnist,
            progress=False,
            on_epoch_end=crash_after_two,
            log=lambda s: None,
        )
    train(
        cfg,
        tmp_path / "killed",
        resume=tmp_path / "killed" / "last.npz",
        data=small_mnist,
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
        "--recipe",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--scheduler",
        "--pct-start",
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
        "--no-init-weights",
        "--initial-checkpoint",
        "--augment-extra-p",
        "--lowres-sides",
        "--lowres-whole-pixels",
        "--no-lowres-warp",
        "--label-smoothing",
        "--pool-size",
    ]:
        assert option in text


def test_pool_size_reaches_the_model_its_checkpoint_and_its_config(mnist, tmp_path, capsys):
    """--pool-size K builds CNNClassifier(pool_size=K), is saved in the checkpoint's
    architecture (load_model builds the same model) and in config.json (a resume reads it)."""
    cfg = quick_config(
        model="cnn", epochs=1, limit=256, val_size=128, pool_size=3, **{"dropout": 0.0}
    )
    train(cfg, tmp_path / "run", data=mnist, progress=False, log=lambda s: None)
    model, meta = load_model(tmp_path / "run" / "last.npz", expected="cnn")
    assert model.pool_size == 3 and model.fc1.weight.shape == (64, 128 * 9)
    assert meta["architecture"]["kwargs"]["pool_size"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pool_size"] == 3
    assert "pool_size" not in parsed_config().model_kwargs  # old checkpoints read the same
    assert parsed_config("--pool-size", "3", model="linear").model_kwargs.get("pool_size") is None
    assert main(["--model", "cnn", "--pool-size", "8", "--output-dir", str(tmp_path)]) == 2
    assert "--pool-size must be between 1 and 7" in capsys.readouterr().err


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
    assert main(["--model", "cnn", "--pct-start", "1", "--output-dir", str(tmp_path)]) == 2
    assert "--pct-start must be in (0, 1)" in capsys.readouterr().err
    assert main(["--model", "cnn", "--label-smoothing", "1", "--output-dir", str(tmp_path)]) == 2
    assert "--label-smoothing must be in [0, 1)" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "nowhere")]) == 2


def test_patience_stops_early(mnist, tmp_path):
    cfg = quick_config(epochs=6, limit=500, lr=1e-6, patience=1, scheduler="none")
    metrics = train(cfg, tmp_path / "run", data=mnist, progress=False, log=lambda s: None)
    assert metrics["epochs_run"] < 6


def parsed_config(*argv: str, model: str = "cnn") -> TrainConfig:
    return config_from_args(build_parser().parse_args(list(argv)), model)


@pytest.mark.parametrize("model", ["linear", "cnn"])
def test_recipe_picks_its_values_and_options_override_them(model):
    default = parsed_config(model=model)
    assert default.recipe == "default"
    assert {k: getattr(default, k) for k in RECIPES[model]} == RECIPES[model]

    fast = parsed_config("--recipe", "fast", model=model)
    assert fast.recipe == "fast"
    assert {k: getattr(fast, k) for k in FAST_RECIPES[model]} == FAST_RECIPES[model]
    assert (fast.epochs, fast.batch_size) != (default.epochs, default.batch_size)

    argv = ["--recipe", "fast", "--batch-size", "32", "--lr", "0.05", "--pct-start", "0.45"]
    overridden = parsed_config(*argv, "--no-augment", model=model)
    assert (overridden.batch_size, overridden.lr, overridden.augment) == (32, 0.05, False)
    assert overridden.pct_start == 0.45
    assert overridden.epochs == FAST_RECIPES[model]["epochs"]
    assert overridden.recipe == "fast"
    assert parsed_config("--no-init-weights", model=model).init_weights is False
    assert parsed_config("--recipe", "fast", "--init-weights", model=model).init_weights is True


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_train_epoch_smooths_the_labels_as_told(eps):
    """The epoch's loss is cross_entropy with label_smoothing=eps: with a learning rate of 0
    the weights stay put, and the loss is the smoothed one of the logits they give,
    (1 - eps) * -log p(label) + eps / 10 * sum over the classes of -log p(class)."""
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    model = LinearClassifier()
    loader = DataLoader(images, labels, batch_size=20, shuffle=False)
    optimizer = optim.SGD(model.parameters(), lr=0.0)
    stats = train_epoch(SCRATCHNET, model, loader, optimizer, None, loader, label_smoothing=eps)
    x, _ = next(iter(loader))
    logp = np.log(inference.softmax(model(Tensor(x)).data))
    expected = -(1 - eps) * logp[np.arange(20), labels] - eps / 10 * logp.sum(1)
    np.testing.assert_allclose(stats["train_loss"], expected.mean(), rtol=1e-5)


def test_an_unknown_recipe_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "cnn", "--recipe", "quick"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --recipe: invalid choice: 'quick'" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="unknown recipe 'quick' \\(choose from default, fast\\)"):
        recipe_values("quick", "cnn")


def test_a_config_written_before_recipes_resumes_as_default(tmp_path):
    values = {k: v for k, v in vars(parsed_config(model="linear")).items() if k != "recipe"}
    (tmp_path / "config.json").write_text(json.dumps(values))
    _, checkpoint, cfg = resume_target(tmp_path)
    assert checkpoint is None and cfg.recipe == "default"


def test_fast_recipe_runs_end_to_end_and_resumes_with_its_recipe(
    small_mnist, tmp_path, capsys, monkeypatch
):
    # The command line's own loading of MNIST is checked in test_cli_runs_and_rejects_bad_options.
    monkeypatch.setattr(train_cli, "load_mnist", lambda *args, **kwargs: small_mnist)
    argv = ["--model", "cnn", "--recipe", "fast", "--limit", "512", "--no-progress"]
    assert main([*argv, "--epochs", "1", "--output-dir", str(tmp_path / "one")]) == 0
    assert "cnn test: loss" in capsys.readouterr().out
    (run,) = (tmp_path / "one").iterdir()
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "fast" and saved["epochs"] == 1
    assert saved["batch_size"] == FAST_RECIPES["cnn"]["batch_size"]
    assert saved["init_weights"] is FAST_RECIPES["cnn"]["init_weights"]
    meta = read_metadata(run / "best.npz")
    assert meta["architecture"]["kwargs"]["init_weights"] is FAST_RECIPES["cnn"]["init_weights"]
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1

    # Killed after its first of two epochs, the run resumes with the fast recipe's values.
    def crash_after_one(epoch, record):
        raise Interrupted

    cfg = parsed_config(*argv, "--epochs", "2")
    killed = tmp_path / "killed"
    with pytest.raises(Interrupted):
        train(
            cfg, killed, data=small_mnist, progress=False, on_epoch_end=crash_after_one, log=print
        )
    assert main(["--resume", str(killed), "--no-progress"]) == 0
    assert "resumed cnn" in capsys.readouterr().out
    resumed = json.loads((killed / "config.json").read_text())
    assert resumed == json.loads(json.dumps(asdict(cfg)))
    assert resumed["recipe"] == "fast"
    assert [h["epoch"] for h in json.loads((killed / "history.json").read_text())] == [1, 2]


def test_onecycle_warms_up_over_pct_start_of_the_steps():
    cfg = parsed_config("--recipe", "fast", "--epochs", "2", "--pct-start", "0.25")
    weight = optim.AdamW([Tensor(np.zeros(3), requires_grad=True)], lr=cfg.lr)
    scheduler = make_scheduler(cfg, weight, steps_per_epoch=10)
    rates = []
    for _ in range(20):
        rates.append(weight.param_groups[0]["lr"])
        weight.step()
        scheduler.step()
    # 20 steps, 25% of them warming up: the peak is step 4 (PyTorch's float(0.25 * 20) - 1).
    assert int(np.argmax(rates)) == 4 and rates[4] == pytest.approx(cfg.lr)


# ---------------------------------------------------------------------------------------------
# --initial-checkpoint: fine-tuning from a checkpoint's weights
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_checkpoint(small_mnist, tmp_path_factory):
    """best.npz of a one-epoch linear run."""
    run = tmp_path_factory.mktemp("source") / "run"
    cfg = quick_config(epochs=1, limit=1000)
    train(cfg, run, data=small_mnist, progress=False, log=lambda s: None)
    return run / "best.npz"


@pytest.fixture
def small_cli(small_mnist, monkeypatch):
    """The command line on small_mnist (its own loading is checked above)."""
    monkeypatch.setattr(train_cli, "load_mnist", lambda *args, **kwargs: small_mnist)


def test_init_starts_from_the_checkpoint_and_records_it(
    small_cli, tmp_path, capsys, linear_checkpoint
):
    # A rate so small that the weights stay the checkpoint's, to far within the tolerance.
    argv = ["--model", "linear", "--epochs", "1", "--limit", "500", "--lr", "1e-12"]
    argv += ["--scheduler", "none", "--no-progress", "--output-dir", str(tmp_path)]
    assert main([*argv, "--initial-checkpoint", str(linear_checkpoint)]) == 0
    assert f"starting from the weights of {linear_checkpoint}" in capsys.readouterr().out
    (run,) = tmp_path.iterdir()
    source, source_meta, _ = load_checkpoint(linear_checkpoint)
    tuned, tuned_meta, _ = load_checkpoint(run / "best.npz")
    for key in source:
        np.testing.assert_allclose(tuned[key], source[key], atol=1e-9, err_msg=key)

    digest = hashlib.sha256(linear_checkpoint.read_bytes()).hexdigest()
    for saved in (json.loads((run / "config.json").read_text()), tuned_meta["config"]):
        assert (saved["initial_checkpoint"], saved["initial_checkpoint_sha256"]) == (
            str(linear_checkpoint),
            digest,
        )
    # The same run without --initial-checkpoint starts from a fresh initialisation: other weights.
    assert main([*argv, "--output-dir", str(tmp_path / "fresh")]) == 0
    (fresh_run,) = (tmp_path / "fresh").iterdir()
    fresh, fresh_meta, _ = load_checkpoint(fresh_run / "best.npz")
    assert not np.allclose(fresh["fc.weight"], source["fc.weight"], atol=1e-3)
    assert fresh_meta["config"]["initial_checkpoint"] is None
    assert tuned_meta["metrics"]["test_accuracy"] == pytest.approx(
        source_meta["metrics"]["test_accuracy"]
    )


def test_init_refuses_another_architecture_in_one_line(
    small_cli, tmp_path, capsys, linear_checkpoint
):
    argv = ["--model", "cnn", "--initial-checkpoint", str(linear_checkpoint), "--epochs", "1"]
    assert main([*argv, "--no-progress", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds a linear model, not the cnn model" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # refused before the run folder was made
    assert main([*argv[:2], "--initial-checkpoint", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert main(["--model", "both", "--initial-checkpoint", str(linear_checkpoint)]) == 2
    assert "choose --model linear or cnn" in capsys.readouterr().err


def test_robust_augment_options_need_the_extras_and_valid_values(tmp_path, capsys):
    cases = {
        ("--lowres-sides", "7", "10"): "need --augment-extra",
        ("--augment-extra", "--augment-extra-p", "0.2", "0.5"): "1 or 4 probabilities",
        ("--augment-extra", "--lowres-sides", "10", "7"): "2 <= MIN <= MAX <= 27",
        ("--augment-extra", "--lowres-whole-pixels", "1.5"): "must be in [0, 1]",
        ("--no-lowres-warp",): "need --augment-extra",
        ("--augment-extra", "--no-augment", "--no-lowres-warp"): "needs --augment",
    }
    for options, message in cases.items():
        assert main(["--model", "cnn", *options, "--output-dir", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    cfg = parsed_config(
        "--augment-extra",
        "--augment-extra-p",
        "0.25",
        "0.4",
        "0.25",
        "0.6",
        "--lowres-sides",
        "7",
        "10",
        "--lowres-whole-pixels",
        "0.5",
    )
    augment = make_augment(cfg)
    assert (augment.p, augment.min_side, augment.max_side) == ((0.25, 0.4, 0.25, 0.6), 7, 10)
    assert augment.whole_pixels == 0.5 and augment.warp_lowres
    assert not make_augment(parsed_config("--augment-extra", "--no-lowres-warp")).warp_lowres
    assert make_augment(parsed_config("--augment-extra", "--augment-extra-p", "0.3")).p == 0.3


def test_reference_train_fine_tunes_too(small_cli, tmp_path, linear_checkpoint):
    pytest.importorskip("torch")
    from reference import train as reference_train

    argv = ["--model", "linear", "--epochs", "1", "--limit", "500", "--lr", "1e-12"]
    argv += ["--scheduler", "none", "--no-progress", "--output-dir", str(tmp_path)]
    assert reference_train.main([*argv, "--initial-checkpoint", str(linear_checkpoint)]) == 0
    (run,) = tmp_path.iterdir()
    source, _, _ = load_checkpoint(linear_checkpoint)
    tuned, meta, _ = load_checkpoint(run / "best.npz")
    assert meta["framework"] == "torch" and meta["config"]["initial_checkpoint"] == str(
        linear_checkpoint
    )
    for key in source:
        np.testing.assert_allclose(tuned[key], source[key], atol=1e-6, err_msg=key)
