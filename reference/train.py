"""Train the PyTorch twins of scratchnet's models: `python -m reference.train --help`.

Everything but the framework is scratchnet's own code: the options and recipes
(scratchnet.mnist.train.build_parser), the split, the DataLoader and the augmentation (so a
seed gives the same batches in the same order), the evaluation, metrics and plots
(scratchnet.mnist.report) and
the checkpoint format (scratchnet.checkpoint). The model, the loss, the gradients, the optimizer
and the scheduler are torch's. By default the initial weights are copied from scratchnet's
initialisation for the same seed (`--torch-init` draws them with torch's generator instead), so

    python -m scratchnet.train --model cnn --output-dir runs
    python -m reference.train --model cnn --output-dir runs

write two folders with the same files (config.json, history.json, metrics.json, best and last
checkpoints, curves.png, confusion.png, worst.png) that can be compared file by file. Dropout
masks come from torch's generator, so with dropout the two runs agree only statistically.
The checkpoints are scratchnet checkpoints: `scratchnet.mnist.models.load_model` reads them.

PyTorch runs with its default number of threads (recorded in config.json under "extra").
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim import lr_scheduler

import scratchnet
from reference.convert import load_state_into, state_dict_to_numpy
from reference.models import build_model
from scratchnet.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from scratchnet.checkpoint import save_checkpoint as _save_checkpoint
from scratchnet.mnist.augment import RandomAffine
from scratchnet.mnist.data import DataLoader, MNISTError, load_mnist, normalize, train_val_split
from scratchnet.mnist.models import build_model as build_scratchnet_model
from scratchnet.mnist.report import (
    classification_metrics,
    evaluate,
    plot_confusion,
    plot_history,
    plot_worst,
)
from scratchnet.mnist.train import (
    TrainConfig,
    _metadata,
    _model_kwargs,
    _progress,
    _resume_target,
    build_parser,
    config_from_args,
    measure_inference,
    print_comparison,
)
from scratchnet.tensor import Tensor

__all__ = ["TrainConfig", "main", "make_optimizer", "make_scheduler", "train"]


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule: the settings of scratchnet.mnist.train.make_optimizer / make_scheduler
# ---------------------------------------------------------------------------------------------


def make_optimizer(cfg: TrainConfig, params: list) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> lr_scheduler.LRScheduler | None:
    """Stepped once per batch (onecycle) or once per epoch (step, cosine), as in scratchnet."""
    schedules: dict[str, Callable[[], Any]] = {
        "none": lambda: None,
        "step": lambda: lr_scheduler.StepLR(
            optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1
        ),
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs),
        "onecycle": lambda: lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch
        ),
    }
    if cfg.scheduler not in schedules:
        raise ValueError(f"unknown scheduler {cfg.scheduler!r}")
    return schedules[cfg.scheduler]()


# ---------------------------------------------------------------------------------------------
# Letting scratchnet's evaluation code run a torch model
# ---------------------------------------------------------------------------------------------


class ScratchnetView:
    """A torch model dressed as a scratchnet Module, for scratchnet.mnist.report and
    measure_inference.

    Those functions call `model.eval()`, `model.train(mode)`, read `model.training` and call
    `model(Tensor(x)).data`; this wrapper answers them with the torch model, without autograd.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> ScratchnetView:
        self.model.train(mode)
        return self

    def eval(self) -> ScratchnetView:
        return self.train(False)

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(x.data)))
        return Tensor(logits.numpy())


# ---------------------------------------------------------------------------------------------
# Checkpoint state: torch objects as the arrays and JSON that scratchnet checkpoints hold
# ---------------------------------------------------------------------------------------------


def optimizer_state_to_numpy(state: dict[str, Any]) -> dict[str, Any]:
    """torch's optimizer.state_dict() with every tensor turned into an np.ndarray."""
    per_param = {
        index: {
            key: value.detach().cpu().numpy().copy() if torch.is_tensor(value) else value
            for key, value in values.items()
        }
        for index, values in state["state"].items()
    }
    return {"state": per_param, "param_groups": state["param_groups"]}


def optimizer_state_from_numpy(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of optimizer_state_to_numpy, after a round trip through save/load_checkpoint."""
    per_param = {
        int(index): {
            key: torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value
            for key, value in values.items()
        }
        for index, values in state["state"].items()
    }
    groups = []
    for group in state["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": per_param, "param_groups": groups}


def _torch_rng_state() -> str:
    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")


def _set_torch_rng_state(encoded: str) -> None:
    raw = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))


@dataclasses.dataclass
class _Progress:
    """Where a run stands between epochs: what `last.npz` must restore."""

    epoch: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    best_val_acc: float = -1.0
    stale_epochs: int = 0


def _restore(path: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> _Progress:
    state, meta, optimizer_state = load_checkpoint(path)
    if optimizer_state is None:
        raise CheckpointError(f"{path} has no optimizer state: resume from last.npz")
    if meta.get("framework") != "torch":
        raise CheckpointError(
            f"{path} was written by `python -m scratchnet.train`: resume it there"
        )
    load_state_into(model, state, path)
    optimizer.load_state_dict(optimizer_state_from_numpy(optimizer_state))
    if scheduler is not None and meta.get("scheduler_state") is not None:
        scheduler.load_state_dict(meta["scheduler_state"])
    _set_torch_rng_state(meta["rng_state"]["torch"])
    return _Progress(
        epoch=meta["epoch"],
        history=meta["history"],
        best_val_acc=meta["best_val_acc"],
        stale_epochs=meta.get("epochs_without_improvement", 0),
    )


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


def _with_torch_extra(cfg: TrainConfig) -> TrainConfig:
    """cfg, with the framework, its version, its threads and the initialisation in `extra`."""
    extra = {
        "init": "scratchnet",
        **cfg.extra,
        "framework": "torch",
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if extra["init"] not in ("scratchnet", "torch"):
        raise ValueError(f"extra['init'] must be 'scratchnet' or 'torch', got {extra['init']!r}")
    return dataclasses.replace(cfg, extra=extra)


def initial_model(cfg: TrainConfig) -> torch.nn.Module:
    """The reference model, with scratchnet's initial weights for cfg.seed unless told not to."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **_model_kwargs(cfg))
    if cfg.extra.get("init", "scratchnet") == "scratchnet":
        scratchnet.manual_seed(cfg.seed)
        twin = build_scratchnet_model(cfg.model, **_model_kwargs(cfg))
        load_state_into(model, twin.state_dict(), "scratchnet's initial weights")
    return model


def _train_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    batch_scheduler: Any,
    bar: Any,
) -> dict[str, float]:
    """One pass over the loader; the mean loss and accuracy over the images seen."""
    model.train()
    loss_sum = 0.0
    correct = 0
    count = 0
    for x, y in bar:
        images = torch.from_numpy(x)
        labels = torch.from_numpy(y)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()

        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == labels).sum())
        count += len(y)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss_sum / count:.4f}", acc=f"{correct / count:.4f}")
    return {"train_loss": loss_sum / count, "train_acc": correct / count, "seen": count}


def train(
    cfg: TrainConfig,
    run_dir: Path,
    resume: Path | None = None,
    *,
    data: Any = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the reference model as cfg says, writing scratchnet's run folder; return metrics."""
    cfg = _with_torch_extra(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        run_dir / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2).encode()
    )

    if data is None:
        data = load_mnist(cfg.data_dir, progress=progress)
    train_idx, val_idx = train_val_split(len(data.train_images), cfg.val_size, cfg.seed)
    train_idx = train_idx if cfg.limit is None else train_idx[: cfg.limit]
    x_val, y_val = normalize(data.train_images[val_idx]), data.train_labels[val_idx]
    x_test, y_test = normalize(data.test_images), data.test_labels

    model = initial_model(cfg)
    view = ScratchnetView(model)
    loader = DataLoader(
        data.train_images[train_idx],
        data.train_labels[train_idx],
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        augment=RandomAffine() if cfg.augment else None,
    )
    optimizer = make_optimizer(cfg, list(model.parameters()))
    scheduler = make_scheduler(cfg, optimizer, len(loader))
    batch_scheduler = scheduler if cfg.scheduler == "onecycle" else None
    epoch_scheduler = None if cfg.scheduler == "onecycle" else scheduler

    run = _Progress()
    if resume is not None:
        run = _restore(resume, model, optimizer, scheduler)
        log(f"resumed {cfg.model} (torch) from {resume} after epoch {run.epoch}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(
        f"{cfg.model} (torch {torch.__version__}, {torch.get_num_threads()} threads): "
        f"{n_params:,} parameters, {len(train_idx):,} training / {len(val_idx):,} "
        "validation images"
    )

    for epoch in range(run.epoch, cfg.epochs):
        loader.set_epoch(epoch)
        desc = f"{cfg.model} (torch) epoch {epoch + 1}/{cfg.epochs}"
        started = time.perf_counter()
        stats = _train_epoch(
            model,
            loader,
            optimizer,
            batch_scheduler,
            _progress(loader, len(loader), desc, progress),
        )
        if epoch_scheduler is not None:
            epoch_scheduler.step()
        seconds = time.perf_counter() - started
        val_loss, val_acc, _ = evaluate(view, x_val, y_val)
        record = {
            "epoch": epoch + 1,
            "train_loss": stats["train_loss"],
            "train_acc": stats["train_acc"],
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "time_s": round(seconds, 3),
            "images_per_s": round(stats["seen"] / seconds, 1),
        }
        run.history.append(record)
        run.epoch = epoch + 1
        log(
            f"{cfg.model} (torch) epoch {run.epoch:>2}/{cfg.epochs}: loss "
            f"{record['train_loss']:.4f} / {val_loss:.4f}, accuracy "
            f"{100 * record['train_acc']:.2f}% / {100 * val_acc:.2f}% (train / val), "
            f"{seconds:.1f}s"
        )
        _save_epoch(cfg, run_dir, run, model, optimizer, scheduler, n_params)
        if on_epoch_end is not None:
            on_epoch_end(run.epoch, record)
        if cfg.patience is not None and run.stale_epochs >= cfg.patience:
            log(f"early stop: no validation improvement for {cfg.patience} epochs")
            break

    return _finish(cfg, run_dir, run, model, view, data, x_test, y_test, n_params, log)


def _save_epoch(
    cfg: TrainConfig,
    run_dir: Path,
    run: _Progress,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    n_params: int,
) -> None:
    """best.npz when validation accuracy improved, last.npz (resumable) and history.json."""
    val_acc = run.history[-1]["val_acc"]
    improved = val_acc > run.best_val_acc
    run.best_val_acc = max(run.best_val_acc, val_acc)
    run.stale_epochs = 0 if improved else run.stale_epochs + 1

    weights = state_dict_to_numpy(model.state_dict())
    meta = _metadata(cfg, n_params, run.history, run.epoch, run.best_val_acc)
    meta.update(framework="torch", epochs_without_improvement=run.stale_epochs)
    if improved:
        _save_checkpoint(run_dir / "best.npz", weights, meta)
    meta["rng_state"] = {"torch": _torch_rng_state()}
    meta["scheduler_state"] = None if scheduler is None else scheduler.state_dict()
    optimizer_state = optimizer_state_to_numpy(optimizer.state_dict())
    _save_checkpoint(run_dir / "last.npz", weights, meta, optimizer_state)
    atomic_write_bytes(run_dir / "history.json", json.dumps(run.history, indent=2).encode())


def _finish(
    cfg: TrainConfig,
    run_dir: Path,
    run: _Progress,
    model: torch.nn.Module,
    view: ScratchnetView,
    data: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_params: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Test the best checkpoint once; write metrics.json and the plots; return the metrics."""
    best_state, best_meta, _ = load_checkpoint(run_dir / "best.npz")
    best_epoch = best_meta["epoch"]
    load_state_into(model, best_state, run_dir / "best.npz")
    model.eval()
    test_loss, test_acc, logits = evaluate(view, x_test, y_test)

    metrics: dict[str, Any] = {"model": cfg.model}
    metrics.update(test_accuracy=test_acc, test_loss=test_loss, best_epoch=best_epoch)
    metrics.update(best_val_accuracy=run.best_val_acc, parameters=n_params)
    metrics["train_time_s"] = round(sum(h["time_s"] for h in run.history), 2)
    metrics["epochs_run"] = len(run.history)
    metrics.update(measure_inference(view, x_test))
    metrics.update(classification_metrics(y_test, logits.argmax(1)))
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())

    # As in scratchnet, best.npz's metadata also carries the test results.
    final_meta = _metadata(cfg, n_params, run.history[:best_epoch], best_epoch, run.best_val_acc)
    final_meta["framework"] = "torch"
    shown = ("test_accuracy", "test_loss", "train_time_s", "single_image_ms")
    final_meta["metrics"].update({key: metrics[key] for key in (*shown, "batch_images_per_s")})
    _save_checkpoint(run_dir / "best.npz", best_state, final_meta)

    title = f"{cfg.model} (torch reference): test accuracy {100 * test_acc:.2f}%"
    confusion = np.asarray(metrics["confusion_matrix"])
    plot_history(run.history, run_dir / "curves.png", title)
    plot_confusion(confusion, run_dir / "confusion.png", title)
    plot_worst(data.test_images, y_test, logits, run_dir / "worst.png")
    log(f"{cfg.model} (torch) test: loss {test_loss:.4f}, accuracy {100 * test_acc:.2f}%")
    return metrics


# ---------------------------------------------------------------------------------------------
# Command line: scratchnet.mnist.train's options, plus --torch-init
# ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "python -m reference.train"
    parser.description = (
        "Train the PyTorch twins of scratchnet's MNIST classifiers with scratchnet's options, "
        "data pipeline and run-folder layout, for a file-by-file comparison with "
        "`python -m scratchnet.train`. Options left out take each model's default recipe."
    )
    for action in parser._actions:  # argparse has no public way to edit an option
        if action.dest == "bundle":
            action.help = (
                argparse.SUPPRESS
            )  # scratchnet/mnist/pretrained/ holds scratchnet's models
        elif action.dest == "output_dir":
            action.help = "runs are written to OUTPUT_DIR/<model>-torch-<timestamp>/"
    parser.add_argument(
        "--torch-init",
        action="store_true",
        help="draw the initial weights with torch's generator instead of copying scratchnet's "
        "initialisation for the same seed",
    )
    return parser


def _jobs(args: Any) -> list[tuple[TrainConfig, Path, Path | None]]:
    """(config, run folder, checkpoint to resume or None) for each model to train."""
    if args.resume is not None:
        run_dir, last, cfg = _resume_target(args.resume)
        return [(cfg, run_dir, last)]
    names = ["linear", "cnn"] if args.model == "both" else [args.model]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    extra = {"init": "torch" if args.torch_init else "scratchnet"}
    return [
        (
            dataclasses.replace(config_from_args(args, name), extra=extra),
            Path(args.output_dir) / f"{name}-torch-{stamp}",
            None,
        )
        for name in names
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    show_progress = sys.stderr.isatty() and not args.no_progress
    results = {}
    try:
        if args.bundle:
            raise ValueError("--bundle is scratchnet's own: the reference never bundles models")
        jobs = _jobs(args)
        data = load_mnist(jobs[0][0].data_dir, progress=show_progress)
        for cfg, run_dir, last in jobs:
            results[cfg.model] = train(cfg, run_dir, last, data=data, progress=show_progress)
    except (ValueError, OSError, MNISTError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: `--resume <run folder>` continues the run", file=sys.stderr)
        return 130
    if len(results) == 2:
        print_comparison(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
