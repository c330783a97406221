"""Train the PyTorch twins of scratchnet's models: `python -m reference.train --help`.

Everything but the framework is scratchnet's own code: the training loop
(scratchnet/mnist/training.py, driven here by the TORCH framework below), the options and
recipes (scratchnet.mnist.train), the split, the DataLoader and the augmentation (so a seed gives
the same batches in the same order), the evaluation, metrics and plots (scratchnet.mnist.report)
and the checkpoint format (scratchnet.checkpoint). The model, the loss, the gradients, the
optimizer and the scheduler are torch's. By default the initial weights are copied from scratchnet's
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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import scratchnet
from reference.convert import load_state_into
from reference.models import build_model
from scratchnet.mnist.models import build_model as build_scratchnet_model
from scratchnet.mnist.train import build_parser, jobs_from_args, run_jobs
from scratchnet.mnist.training import Framework, TrainConfig
from scratchnet.mnist.training import train as train_loop
from scratchnet.tensor import Tensor

__all__ = ["TORCH", "ScratchnetView", "main", "train"]


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


def torch_rng_state() -> str:
    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")


def set_torch_rng_state(encoded: str) -> None:
    raw = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))


# ---------------------------------------------------------------------------------------------
# torch in scratchnet's training loop (scratchnet/mnist/training.py)
# ---------------------------------------------------------------------------------------------


def with_torch_extra(cfg: TrainConfig) -> TrainConfig:
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
    model = build_model(cfg.model, **cfg.model_kwargs)
    if cfg.extra.get("init", "scratchnet") == "scratchnet":
        scratchnet.manual_seed(cfg.seed)
        twin = build_scratchnet_model(cfg.model, **cfg.model_kwargs)
        load_state_into(model, twin.state_dict(), "scratchnet's initial weights")
    return model


TORCH = Framework(
    name="torch",
    optim=torch.optim,
    functional=F,
    build_model=initial_model,
    tensor=torch.from_numpy,
    numpy=lambda t: t.detach().cpu().numpy(),
    get_rng_state=lambda: {"torch": torch_rng_state()},
    set_rng_state=lambda state: set_torch_rng_state(state["torch"]),
    optimizer_state_to_numpy=optimizer_state_to_numpy,
    optimizer_state_from_numpy=optimizer_state_from_numpy,
    evaluator=ScratchnetView,
)


def train(
    cfg: TrainConfig, run_dir: Path, resume: Path | None = None, **options: Any
) -> dict[str, Any]:
    """scratchnet's training loop, run by torch; the options of training.train."""
    return train_loop(with_torch_extra(cfg), run_dir, resume, framework=TORCH, **options)


# ---------------------------------------------------------------------------------------------
# Command line: scratchnet.mnist.train's options, plus --torch-init
# ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "python -m reference.train"
    parser.description = (
        "Train the PyTorch twins of scratchnet's MNIST classifiers with scratchnet's options, "
        "data pipeline and run-folder layout, for a file-by-file comparison with "
        "`python -m scratchnet.train`. Options left out take the model's values in --recipe."
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = sys.stderr.isatty() and not args.no_progress
    try:
        if args.bundle:
            raise ValueError("--bundle is scratchnet's own: the reference never bundles models")
        jobs = jobs_from_args(args, folder_suffix="-torch")
        if args.resume is None:  # a resumed run keeps the `extra` of its config.json
            extra = {"init": "torch" if args.torch_init else "scratchnet"}
            jobs = [
                (with_torch_extra(dataclasses.replace(cfg, extra=extra)), run_dir, None)
                for cfg, run_dir, _ in jobs
            ]
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_jobs(jobs, framework=TORCH, progress=progress)


if __name__ == "__main__":
    sys.exit(main())
