"""`python -m scratchnet.train`: train the MNIST classifiers from the command line.

Each run writes a folder:

    config.json         the options of the run
    history.json        per-epoch train/validation loss and accuracy, time, learning rate
    metrics.json        test loss and accuracy, per-class precision/recall/F1, confusion matrix,
                        parameter count, training and inference times
    best.npz            the checkpoint with the best validation accuracy, its metadata inside
    last.npz            the latest checkpoint, with optimizer, scheduler and RNG state (--resume)
    curves.png, confusion.png, worst.png

The defaults are the recipes that reach the accuracy targets (training.RECIPES); `--recipe
fast` picks the short ones (training.FAST_RECIPES: 3 epochs of the CNN, 99.4% on the test set).
Each option given on the command line overrides its recipe value. The loop itself is in
training.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from scratchnet.checkpoint import CheckpointError, atomic_write_bytes, read_json
from scratchnet.mnist.data import MNISTError, load_mnist
from scratchnet.mnist.models import PRETRAINED_DIR, load_model
from scratchnet.mnist.training import NAMED_RECIPES, Framework, TrainConfig, recipe_values, train

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _recipe_help(key: str) -> str:
    """Each recipe's value of key per model: "default: linear 20, cnn 15; fast: ..."."""
    return "; ".join(
        f"{recipe}: " + ", ".join(f"{model} {values[key]}" for model, values in table.items())
        for recipe, table in NAMED_RECIPES.items()
    )


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
        "Options left out take the model's values in the chosen recipe (shown in brackets).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--model", choices=["linear", "cnn", "both"], default="both", help="which model to train"
    )
    parser.add_argument(
        "--recipe",
        choices=list(NAMED_RECIPES),
        default="default",
        help="the values of the options left out: default (the accuracy targets) or fast "
        "(short: 3 epochs of the CNN, about 99.4%% on the test set)",
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
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum")
    parser.add_argument(
        "--scheduler",
        choices=["none", "step", "cosine", "onecycle"],
        help=f"learning-rate schedule [{_recipe_help('scheduler')}]",
    )
    parser.add_argument(
        "--pct-start",
        type=float,
        help="onecycle's warm-up: the fraction of the steps over which the rate rises to --lr "
        f"[{_recipe_help('pct_start')}]",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        help=f"L2 (sgd, adam) or decoupled (adamw) weight decay [{_recipe_help('weight_decay')}]",
    )
    parser.add_argument("--dropout", type=float, help=f"dropout rate [{_recipe_help('dropout')}]")
    parser.add_argument(
        "--label-smoothing",
        type=float,
        help="cross-entropy's label smoothing, as torch's: the target is 1 - eps on the label "
        f"and eps / 10 on every class [{_recipe_help('label_smoothing')}]",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"random rotation/scale/translation of training images [{_recipe_help('augment')}]",
    )
    parser.add_argument(
        "--augment-extra",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also random stroke width, elastic distortion, blur and low resolution "
        f"(augment.RobustAugment) [{_recipe_help('augment_extra')}]",
    )
    parser.add_argument(
        "--init-weights",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the model's own initialisation (kaiming-normal convolutions, N(0, 0.01) Linear "
        "layers); --no-init-weights keeps each layer's PyTorch default "
        f"[{_recipe_help('init_weights')}]",
    )
    parser.add_argument(
        "--augment-extra-p",
        type=float,
        nargs="+",
        metavar="P",
        default=None,
        help="with --augment-extra: the probability of each step, one for all or four "
        "(elastic, stroke, blur, lowres) [RobustAugment's 0.25 0.4 0.25 0.4]",
    )
    parser.add_argument(
        "--lowres-sides",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=None,
        help="with --augment-extra: low resolution goes down to MIN..MAX px [RobustAugment's 7 12]",
    )
    parser.add_argument(
        "--lowres-whole-pixels",
        type=float,
        metavar="FRACTION",
        default=None,
        help="with --augment-extra: the fraction of low-resolution images averaged over whole "
        "pixels, as Pillow's BOX filter does, instead of by area [RobustAugment's 0]",
    )
    parser.add_argument(
        "--lowres-warp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --augment-extra and --augment: whether the images chosen for low resolution "
        "take the affine warp too (--no-lowres-warp: only the others do) [RobustAugment's yes]",
    )
    parser.add_argument(
        "--initial-checkpoint",
        default=None,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (fine-tuning), with a fresh optimizer, "
        "schedule and epoch count; recorded with its SHA-256 in config.json and the checkpoints",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=1,
        metavar="K",
        help="the CNN's last average pool keeps K x K cells of its 7x7 map for the head "
        "(1: the global average) [1]",
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
    """The model's values in args.recipe, with every option given on the command line in its
    place."""
    values = recipe_values(args.recipe, model)
    for key in values:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    cfg = TrainConfig(
        model=model,
        recipe=args.recipe,
        momentum=args.momentum,
        seed=args.seed,
        limit=args.limit,
        patience=args.patience,
        data_dir=args.data_dir,
        augment_extra_p=args.augment_extra_p,
        lowres_sides=args.lowres_sides,
        lowres_whole_pixels=args.lowres_whole_pixels,
        lowres_warp=args.lowres_warp,
        initial_checkpoint=args.initial_checkpoint,
        pool_size=args.pool_size,
        **values,
    )
    cfg.validate()
    return cfg


def resume_target(path: Path) -> tuple[Path, Path | None, TrainConfig]:
    """(run folder, last.npz or None, config) of the run that --resume names.

    None: the run was stopped before its first last.npz was saved, so it starts over.
    """
    checkpoint = path / "last.npz" if path.is_dir() else path
    run_dir = checkpoint.parent
    try:
        values = read_json(run_dir / "config.json")
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume from {path}: {exc}") from None
    try:
        cfg = TrainConfig(**values)
        cfg.validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot resume from {path}: bad config.json ({exc})") from None
    if not checkpoint.exists() and checkpoint.name == "last.npz":
        print(f"{checkpoint} not saved yet: the run starts over", file=sys.stderr)
        return run_dir, None, cfg
    return run_dir, checkpoint, cfg


Job = tuple[TrainConfig, Path, Path | None]  # (config, run folder, last.npz to resume or None)


def jobs_from_args(args: argparse.Namespace, folder_suffix: str = "") -> list[Job]:
    """The runs the command line asks for: one resumed run, or one new run per model."""
    if args.resume is not None:
        run_dir, checkpoint, cfg = resume_target(args.resume)
        return [(cfg, run_dir, checkpoint)]
    if args.initial_checkpoint is not None and args.model == "both":
        raise ValueError(
            "--initial-checkpoint holds one model's weights: choose --model linear or cnn"
        )
    models = ["linear", "cnn"] if args.model == "both" else [args.model]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return [
        (config_from_args(args, m), Path(args.output_dir) / f"{m}{folder_suffix}-{stamp}", None)
        for m in models
    ]


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


def run_jobs(
    jobs: list[Job],
    framework: Framework | None = None,
    progress: bool = True,
    bundle_models: bool = False,
) -> int:
    """Train each job, print the comparison table of several; the command's exit status."""
    results = {}
    extra = {} if framework is None else {"framework": framework}
    try:
        data = load_mnist(jobs[0][0].data_dir, progress=progress)
        for cfg, run_dir, checkpoint in jobs:
            results[cfg.model] = train(
                cfg, run_dir, checkpoint, data=data, progress=progress, **extra
            )
            if bundle_models:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        jobs = jobs_from_args(args)
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_jobs(jobs, progress=progress, bundle_models=args.bundle)


def bundle(checkpoint: Path, name: str) -> None:
    """Copy a run's best checkpoint to scratchnet/mnist/pretrained/<name>.npz."""
    load_model(checkpoint, expected=name)  # only a checkpoint that loads gets bundled
    PRETRAINED_DIR.mkdir(exist_ok=True)
    atomic_write_bytes(PRETRAINED_DIR / f"{name}.npz", checkpoint.read_bytes())
    print(f"bundled {checkpoint} as {PRETRAINED_DIR / name}.npz")


if __name__ == "__main__":
    sys.exit(main())
