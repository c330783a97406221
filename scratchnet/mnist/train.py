"""Train the MNIST classifiers: `python -m scratchnet.train --help`.

Each run writes a folder:

    config.json         the options of the run
    history.json        per-epoch train/validation loss and accuracy, time, learning rate
    metrics.json        test loss and accuracy, per-class precision/recall/F1, confusion matrix,
                        parameter count, training and inference times
    best.npz/.json      the checkpoint with the best validation accuracy
    last.npz/.json      the latest checkpoint, with optimizer, scheduler and RNG state (--resume)
    curves.png, confusion.png, worst.png

The defaults are the recipes that reach the accuracy targets (see RECIPES); each option given
on the command line overrides its recipe value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import scratchnet
from scratchnet import optim
from scratchnet.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from scratchnet.checkpoint import save_checkpoint as _save_checkpoint
from scratchnet.mnist import inference
from scratchnet.mnist.augment import RandomAffine
from scratchnet.mnist.data import DataLoader, MNISTError, load_mnist, normalize, train_val_split
from scratchnet.mnist.models import MODELS, PRETRAINED_DIR, build_model
from scratchnet.mnist.report import (
    classification_metrics,
    evaluate,
    plot_confusion,
    plot_history,
    plot_worst,
)
from scratchnet.nn import init
from scratchnet.nn.functional import cross_entropy
from scratchnet.tensor import Tensor

# The default recipe of each model: what `python -m scratchnet.train` uses unless told otherwise.
RECIPES: dict[str, dict[str, Any]] = {
    "linear": {
        "epochs": 20,
        "batch_size": 64,
        "lr": 0.001,
        "optimizer": "adam",
        "momentum": 0.9,
        "scheduler": "cosine",
        "weight_decay": 0.0,
        "dropout": 0.0,
        "augment": False,
    },
    "cnn": {
        "epochs": 15,
        "batch_size": 64,
        "lr": 0.006,
        "optimizer": "adamw",
        "momentum": 0.9,
        "scheduler": "onecycle",
        "weight_decay": 5e-4,
        "dropout": 0.1,
        "augment": True,
    },
}


@dataclass
class TrainConfig:
    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    scheduler: str
    weight_decay: float
    dropout: float
    augment: bool
    seed: int = 0
    val_size: int = 6000
    limit: int | None = None
    patience: int | None = None
    data_dir: str | None = None
    version: str = scratchnet.__version__
    extra: dict[str, Any] = field(default_factory=dict)


class Interrupted(Exception):
    """Raised by a callback to stop a run between epochs (tests simulate a crash this way)."""


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def make_optimizer(cfg: TrainConfig, params: list) -> optim.Optimizer:
    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(cfg: TrainConfig, optimizer: optim.Optimizer, steps_per_epoch: int) -> Any:
    """A scheduler stepped once per batch (onecycle) or once per epoch (step, cosine)."""
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "step":
        return optim.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1)
    if cfg.scheduler == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "onecycle":
        return optim.OneCycleLR(
            optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch
        )
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, unit="batch")


def _rng_state() -> dict[str, Any]:
    return init.get_rng().bit_generator.state


def _set_rng_state(state: dict[str, Any]) -> None:
    init.get_rng().bit_generator.state = state


def measure_inference(model: Any, x: np.ndarray, repeats: int = 30) -> dict[str, float]:
    """Median single-image latency (ms) and batch-of-1,000 throughput (images/s)."""
    model.eval()
    single = x[:1]
    inference.logits(model, single)  # warm-up (and Numba compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inference.logits(model, single)
        times.append(time.perf_counter() - start)
    batch = x[:1000]
    batch_times = []
    for _ in range(3):
        start = time.perf_counter()
        inference.logits(model, batch, batch_size=1000)
        batch_times.append(time.perf_counter() - start)
    return {
        "single_image_ms": round(1000 * float(np.median(times)), 4),
        "batch_images_per_s": round(len(batch) / float(np.median(batch_times)), 1),
    }


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    run_dir: Path,
    resume: Path | None = None,
    data: Any = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train one model as cfg says, writing the run folder; return the test metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", json.dumps(asdict(cfg), indent=2).encode())

    if data is None:
        data = load_mnist(cfg.data_dir, progress=progress)
    train_idx, val_idx = train_val_split(len(data.train_images), cfg.val_size, cfg.seed)
    if cfg.limit is not None:
        train_idx = train_idx[: cfg.limit]
    train_images, train_labels = data.train_images[train_idx], data.train_labels[train_idx]
    x_val, y_val = normalize(data.train_images[val_idx]), data.train_labels[val_idx]
    x_test, y_test = normalize(data.test_images), data.test_labels

    scratchnet.manual_seed(cfg.seed)
    model = build_model(cfg.model, **_model_kwargs(cfg))
    augment = RandomAffine() if cfg.augment else None
    loader = DataLoader(
        train_images, train_labels, cfg.batch_size, shuffle=True, seed=cfg.seed, augment=augment
    )
    optimizer = make_optimizer(cfg, list(model.parameters()))
    scheduler = make_scheduler(cfg, optimizer, len(loader))
    per_batch_scheduler = cfg.scheduler == "onecycle"

    history: list[dict] = []
    start_epoch = 0
    best_val_acc = -1.0
    epochs_without_improvement = 0
    if resume is not None:
        state, meta, optimizer_state = load_checkpoint(resume)
        model.load_state_dict(state)
        if optimizer_state is None:
            raise CheckpointError(f"{resume} has no optimizer state: resume from last.npz")
        optimizer.load_state_dict(optimizer_state)
        if scheduler is not None and meta.get("scheduler_state") is not None:
            scheduler.load_state_dict(meta["scheduler_state"])
        _set_rng_state(meta["rng_state"])
        start_epoch = meta["epoch"]
        history = meta["history"]
        best_val_acc = meta["best_val_acc"]
        epochs_without_improvement = meta.get("epochs_without_improvement", 0)
        log(f"resumed {cfg.model} from {resume} after epoch {start_epoch}")

    n_params = model.num_parameters()
    log(
        f"{cfg.model}: {n_params:,} parameters, {len(train_idx):,} training images, "
        f"{len(val_idx):,} validation images"
    )
    train_time = sum(h["time_s"] for h in history)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loader.set_epoch(epoch)
        start = time.perf_counter()
        total_loss = 0.0
        total_correct = 0
        seen = 0
        bar = _progress(
            loader, len(loader), f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", progress
        )
        for x, y in bar:
            logits = model(Tensor(x))
            loss = cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_batch_scheduler and scheduler is not None:
                scheduler.step()

            batch = len(y)
            total_loss += loss.item() * batch
            total_correct += int((logits.data.argmax(1) == y).sum())
            seen += batch
            if progress and seen // batch % 10 == 0:
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{total_loss / seen:.4f}",
                    acc=f"{total_correct / seen:.4f}",
                    img_s=f"{seen / elapsed:,.0f}",
                )
        if not per_batch_scheduler and scheduler is not None:
            scheduler.step()
        epoch_time = time.perf_counter() - start
        train_time += epoch_time

        val_loss, val_acc, _ = evaluate(model, x_val, y_val)
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / seen,
            "train_acc": total_correct / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "time_s": round(epoch_time, 3),
            "images_per_s": round(seen / epoch_time, 1),
        }
        history.append(record)
        log(
            f"{cfg.model} epoch {epoch + 1:>2}/{cfg.epochs}: "
            f"train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:.2f}% | "
            f"val loss {val_loss:.4f} acc {100 * val_acc:.2f}% | "
            f"{epoch_time:.1f}s ({record['images_per_s']:,.0f} img/s)"
        )

        improved = val_acc > best_val_acc
        if improved:
            best_val_acc = val_acc
            epochs_without_improvement = 0
        else:
            epochs_without_improvement += 1
        meta = _metadata(cfg, n_params, history, epoch + 1, best_val_acc)
        meta["epochs_without_improvement"] = epochs_without_improvement
        if improved:
            _save_checkpoint(run_dir / "best.npz", model.state_dict(), meta)
        meta["rng_state"] = _rng_state()
        meta["scheduler_state"] = scheduler.state_dict() if scheduler is not None else None
        _save_checkpoint(run_dir / "last.npz", model.state_dict(), meta, optimizer.state_dict())
        atomic_write_bytes(run_dir / "history.json", json.dumps(history, indent=2).encode())

        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)
        if cfg.patience is not None and epochs_without_improvement >= cfg.patience:
            log(f"early stop: no validation improvement for {cfg.patience} epochs")
            break

    # The test set is used once, on the checkpoint chosen by validation accuracy.
    best_state, best_meta, _ = load_checkpoint(run_dir / "best.npz")
    model.load_state_dict(best_state)
    model.eval()
    test_loss, test_acc, logits = evaluate(model, x_test, y_test)
    timing = measure_inference(model, x_test)
    metrics = {
        "model": cfg.model,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_epoch": best_meta["epoch"],
        "best_val_accuracy": best_val_acc,
        "parameters": n_params,
        "train_time_s": round(train_time, 2),
        "epochs_run": len(history),
        **timing,
        **classification_metrics(y_test, logits.argmax(1)),
    }
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())

    # The best checkpoint's metadata also carries the test metrics (the server shows them).
    best_meta = _metadata(
        cfg, n_params, history[: best_meta["epoch"]], best_meta["epoch"], best_val_acc
    )
    best_meta["metrics"].update(
        {
            k: metrics[k]
            for k in (
                "test_accuracy",
                "test_loss",
                "train_time_s",
                "single_image_ms",
                "batch_images_per_s",
            )
        }
    )
    _save_checkpoint(run_dir / "best.npz", best_state, best_meta)

    title = f"{cfg.model}: test accuracy {100 * test_acc:.2f}%"
    plot_history(history, run_dir / "curves.png", title)
    plot_confusion(np.array(metrics["confusion_matrix"]), run_dir / "confusion.png", title)
    plot_worst(data.test_images, y_test, logits, run_dir / "worst.png")
    log(f"{cfg.model} test: loss {test_loss:.4f}, accuracy {100 * test_acc:.2f}% ({run_dir})")
    return metrics


def _model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    return {"dropout_rate": cfg.dropout}


def _metadata(
    cfg: TrainConfig, n_params: int, history: list[dict], epoch: int, best_val_acc: float
) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {
        "architecture": {
            "name": cfg.model,
            "class": MODELS[cfg.model].__name__,
            "kwargs": _model_kwargs(cfg),
            "parameters": n_params,
        },
        "config": asdict(cfg),
        "epoch": epoch,
        "history": history,
        "best_val_acc": best_val_acc,
        "metrics": {
            "val_accuracy": last.get("val_acc"),
            "val_loss": last.get("val_loss"),
            "best_val_accuracy": best_val_acc,
        },
        "version": scratchnet.__version__,
        "saved_at": datetime.now().isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _recipe_help(key: str) -> str:
    return ", ".join(f"{name}: {recipe[key]}" for name, recipe in RECIPES.items())


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except for the options whose default is the model's recipe (None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.train",
        description="Train scratchnet's MNIST classifiers from scratch on the real MNIST. "
        "Options left out take each model's default recipe (shown in brackets).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--model", choices=["linear", "cnn", "both"], default="both", help="which model to train"
    )
    parser.add_argument("--epochs", type=int, help=f"epochs [{_recipe_help('epochs')}]")
    parser.add_argument(
        "--batch-size", type=int, help=f"mini-batch size [{_recipe_help('batch_size')}]"
    )
    parser.add_argument(
        "--lr", type=float, help=f"learning rate; the peak rate for onecycle [{_recipe_help('lr')}]"
    )
    parser.add_argument(
        "--optimizer",
        choices=["sgd", "adam", "adamw"],
        help=f"optimizer [{_recipe_help('optimizer')}]",
    )
    parser.add_argument("--momentum", type=float, help=f"SGD momentum [{_recipe_help('momentum')}]")
    parser.add_argument(
        "--scheduler",
        choices=["none", "step", "cosine", "onecycle"],
        help=f"learning-rate schedule [{_recipe_help('scheduler')}]",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        help=f"L2 (sgd, adam) or decoupled (adamw) weight decay [{_recipe_help('weight_decay')}]",
    )
    parser.add_argument("--dropout", type=float, help=f"dropout rate [{_recipe_help('dropout')}]")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"random rotation/scale/translation of training images [{_recipe_help('augment')}]",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MNIST folder (default: $SCRATCHNET_DATA_DIR or data/mnist); "
        "missing files are downloaded",
    )
    parser.add_argument(
        "--output-dir", default="runs", help="runs are written to OUTPUT_DIR/<model>-<timestamp>/"
    )
    parser.add_argument(
        "--resume", type=Path, default=None, help="continue a run from its folder or its last.npz"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on the first N training images only, for quick tries",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without validation improvement",
    )
    parser.add_argument(
        "--bundle",
        action="store_true",
        help="copy the best checkpoint into scratchnet/mnist/pretrained/ (the bundled models)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def config_from_args(args: argparse.Namespace, model: str) -> TrainConfig:
    values = dict(RECIPES[model])
    for key in values:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    cfg = TrainConfig(
        model=model,
        seed=args.seed,
        limit=args.limit,
        patience=args.patience,
        data_dir=args.data_dir,
        **values,
    )
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    problems = []
    if cfg.epochs < 1:
        problems.append("--epochs must be at least 1")
    if cfg.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if not cfg.lr > 0:
        problems.append("--lr must be positive")
    if cfg.weight_decay < 0:
        problems.append("--weight-decay must not be negative")
    if not 0 <= cfg.dropout < 1:
        problems.append("--dropout must be in [0, 1)")
    if cfg.limit is not None and cfg.limit < 1:
        problems.append("--limit must be at least 1")
    if cfg.patience is not None and cfg.patience < 1:
        problems.append("--patience must be at least 1")
    if problems:
        raise ValueError("; ".join(problems))


def _resume_target(path: Path) -> tuple[Path, Path, TrainConfig]:
    """(run folder, last.npz, config) of the run that --resume names."""
    checkpoint = path / "last.npz" if path.is_dir() else path
    run_dir = checkpoint.parent
    config_file = run_dir / "config.json"
    try:
        values = json.loads(config_file.read_text())
        cfg = TrainConfig(**values)
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(
            f"cannot resume from {path}: {config_file} unreadable ({exc})"
        ) from None
    return run_dir, checkpoint, cfg


def print_comparison(results: dict[str, dict]) -> None:
    """The side-by-side table printed after `--model both`."""
    rows = [
        ("test accuracy", lambda m: f"{100 * m['test_accuracy']:.2f}%"),
        ("test loss", lambda m: f"{m['test_loss']:.4f}"),
        ("parameters", lambda m: f"{m['parameters']:,}"),
        ("training time", lambda m: f"{m['train_time_s']:.0f} s"),
        ("epochs", lambda m: str(m["epochs_run"])),
        ("inference, 1 image", lambda m: f"{m['single_image_ms']:.3f} ms"),
        ("inference, batch", lambda m: f"{m['batch_images_per_s']:,.0f} img/s"),
    ]
    names = list(results)
    print()
    print(f"{'':22}" + "".join(f"{name:>16}" for name in names))
    for label, fmt in rows:
        print(f"{label:22}" + "".join(f"{fmt(results[name]):>16}" for name in names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        if args.resume is not None:
            run_dir, checkpoint, cfg = _resume_target(args.resume)
            jobs = [(cfg, run_dir, checkpoint)]
        else:
            models = ["linear", "cnn"] if args.model == "both" else [args.model]
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            jobs = [
                (config_from_args(args, m), Path(args.output_dir) / f"{m}-{stamp}", None)
                for m in models
            ]
        data = load_mnist(jobs[0][0].data_dir, progress=progress)
        results = {}
        for cfg, run_dir, checkpoint in jobs:
            results[cfg.model] = train(
                cfg, run_dir, resume=checkpoint, data=data, progress=progress
            )
            if args.bundle:
                bundle(run_dir / "best.npz", cfg.model)
    except KeyboardInterrupt:
        print("\ninterrupted: continue with --resume <run folder>", file=sys.stderr)
        return 130
    except (ValueError, OSError, MNISTError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(results) > 1:
        print_comparison(results)
    return 0


def bundle(checkpoint: Path, name: str) -> None:
    """Copy a run's best checkpoint to scratchnet/mnist/pretrained/<name>.npz (and its .json)."""
    PRETRAINED_DIR.mkdir(exist_ok=True)
    for suffix in (".npz", ".json"):
        target = PRETRAINED_DIR / f"{name}{suffix}"
        atomic_write_bytes(target, checkpoint.with_suffix(suffix).read_bytes())
    print(f"bundled {checkpoint} as {PRETRAINED_DIR / name}.npz")


if __name__ == "__main__":
    sys.exit(main())
