"""Classify pictures of handwritten digits from the command line.

    python -m scratchnet.predict digit.png [more.jpg ...] [--model cnn|linear]
        [--checkpoint PATH] [--top-k K] [--visualize [PATH]] [--output-dir DIR] [--json]
        [--explain PATH]

Each picture goes through `scratchnet.mnist.imageprep` (cut out, scaled and centred as MNIST digits
were), then through the bundled model, or the model of a checkpoint. For each one the CLI
prints the predicted digit, its probability and the top-k table; `--visualize` also saves the
28x28 input the model saw beside the ten probabilities, as a PNG.

A file that cannot be used (missing, not a regular file, not an image, blank) gets a one-line
error on stderr and the others are still classified. Exit status: 0 if every image was
classified, 1 if any failed, 2 if the model could not be loaded or the arguments are wrong.
`--json` output is always valid JSON: no NaN or Infinity.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scratchnet.checkpoint import CheckpointError, open_regular_file
from scratchnet.mnist import explain, imageprep, inference
from scratchnet.nn import Module

BAR_WIDTH = 30  # characters for a probability of 1
BATCH_SIZE = 256  # images per forward pass
MAX_FILE_BYTES = 100 * 2**20  # larger files are refused before being read
PLOT_SOFTWARE = "scratchnet.predict"  # tagged into our plots: the only PNGs we overwrite


@dataclass
class ImageResult:
    """What became of one image: its prepared input and prediction, or why there is none."""

    image: str
    input28: np.ndarray | None = None  # the prepared (28, 28) input, ink = 1
    prediction: inference.Prediction | None = None
    error: str | None = None  # why the image could not be classified
    visualization: Path | None = None  # where its plot was saved
    plot_error: str | None = None  # why its plot could not be saved


def load_classifier(model_name: str | None, checkpoint: str | None) -> tuple[Module, str, str]:
    """The model to use, its architecture's name, and a short description for the output.

    model_name None means the bundled CNN, or whatever model the checkpoint holds; a name given
    with a checkpoint must be the checkpoint's. Raises FileNotFoundError (no bundled model yet,
    or no such checkpoint) and scratchnet.checkpoint.CheckpointError for a checkpoint refused.
    """
    from scratchnet.mnist import models

    if checkpoint is None:
        name = model_name or "cnn"
        return models.load_pretrained(name), name, f"{name} (bundled)"
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    model, meta = models.load_model(path, expected=model_name)
    name = str((meta.get("architecture") or {}).get("name", "?"))
    return model, name, f"{name} from {path}"


# ---------------------------------------------------------------------------------------------
# Output


def format_text(result: ImageResult, top_k: int) -> str:
    """A readable block: the verdict, then a table of the top-k digits with bars."""
    if result.error is not None:
        return f"{result.image}: error: {result.error}"
    prediction = result.prediction
    lines = [f"{result.image}: {prediction.digit} (confidence {prediction.confidence:.1%})"]
    lines.append("  digit  probability")
    for digit, probability in prediction.top_k(top_k):
        bar = "#" * round(probability * BAR_WIDTH)
        lines.append(f"  {digit:>5}  {probability:>10.2%}  {bar}".rstrip())
    if result.visualization is not None:
        lines.append(f"  saved {result.visualization}")
    return "\n".join(lines)


def to_json(result: ImageResult, top_k: int) -> dict[str, Any]:
    """One image's result as JSON-ready values (finite floats only: see main)."""
    if result.error is not None:
        return {"image": result.image, "error": result.error}
    prediction = result.prediction
    return {
        "image": result.image,
        "prediction": prediction.digit,
        "confidence": round(prediction.confidence, 6),
        "top_k": [{"digit": d, "probability": round(p, 6)} for d, p in prediction.top_k(top_k)],
        "probabilities": [round(float(p), 6) for p in prediction.probabilities],
        "visualization": str(result.visualization) if result.visualization else None,
    }


def save_visualization(path: Path, result: ImageResult) -> None:
    """A PNG: the 28x28 input the model saw, beside the bar chart of the ten probabilities."""
    # The object-oriented API renders with Agg without touching pyplot's global state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.2), layout="constrained")
    ax_image, ax_bars = fig.subplots(1, 2, width_ratios=[1, 1.7])

    prediction = result.prediction
    ax_image.imshow(result.input28, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_image.set_title("model input (28x28)")
    ax_image.set_xticks([])
    ax_image.set_yticks([])

    _probability_bars(ax_bars, prediction)

    fig.suptitle(Path(result.image).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": PLOT_SOFTWARE})


def _probability_bars(ax_bars: Any, prediction: inference.Prediction) -> None:
    """The ten probabilities as bars, the predicted digit's in blue."""
    colors = ["tab:gray"] * 10
    colors[prediction.digit] = "tab:blue"
    bars = ax_bars.bar(range(10), prediction.probabilities, color=colors)
    labels = [f"{p:.0%}" if p >= 0.01 else "" for p in prediction.probabilities]
    ax_bars.bar_label(bars, labels=labels, fontsize=8)
    ax_bars.set_xticks(range(10))
    ax_bars.set_ylim(0, 1)
    ax_bars.set_xlabel("digit")
    ax_bars.set_ylabel("probability")
    ax_bars.set_title(f"prediction: {prediction.digit} ({prediction.confidence:.1%})")


def save_explanation(path: Path, image: str, explained: explain.Explanation) -> None:
    """One PNG: the input, the predicted class's saliency, every feature map, the probabilities.

    The saliency is drawn on a scale symmetric around 0: red pixels would raise the predicted
    class's score if they were darker (more ink), blue ones would lower it.
    """
    from matplotlib.figure import Figure

    stages = [(name, maps) for name, maps in explained.activations if maps.ndim == 3]
    fig = Figure(figsize=(11, 3.2 + 2.4 * len(stages)), layout="constrained")
    heights = [1.3] + [1] * len(stages)
    top, *rows = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    ax_input, ax_saliency, ax_bars = top.subplots(1, 3, width_ratios=[1, 1, 1.7])

    digit = explained.prediction.digit
    ax_input.imshow(explained.input, cmap="gray", interpolation="nearest")
    ax_input.set_title("model input (normalised)")
    saliency = explained.saliency[digit]
    limit = float(np.abs(saliency).max()) or 1.0
    shown = ax_saliency.imshow(saliency, cmap="bwr", vmin=-limit, vmax=limit)
    ax_saliency.set_title(f"saliency: d logit[{digit}] / d input")
    top.colorbar(shown, ax=ax_saliency, shrink=0.8)
    for ax in (ax_input, ax_saliency):
        ax.set_xticks([])
        ax.set_yticks([])
    _probability_bars(ax_bars, explained.prediction)

    for row, (name, maps) in zip(rows, stages):
        # At most 32 maps per layer, so that each stays big enough to read.
        shown_maps = maps[:32]
        axes = row.subplots(2, (len(shown_maps) + 1) // 2, squeeze=False).ravel()
        for ax, feature in zip(axes, shown_maps):
            ax.imshow(feature, cmap="viridis", interpolation="nearest")
            ax.set_axis_off()
        row.suptitle(f"{name}: {len(shown_maps)} of {maps.shape[0]} feature maps", fontsize=9)

    fig.suptitle(Path(image).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": PLOT_SOFTWARE})


def is_our_plot(path: Path) -> bool:
    """Whether an existing file is a plot this command saved (and so may be overwritten)."""
    try:
        with Image.open(path) as img:
            return img.info.get("Software") == PLOT_SOFTWARE
    except Exception:  # not an image at all, unreadable, ...
        return False


def visualization_paths(
    images: list[str], explicit: str | None, output_dir: str | None
) -> list[Path]:
    """Where each image's visualization goes: the explicit PATH (one image), or
    `<stem>_prediction.png` in --output-dir or beside the image, made unique."""
    if explicit is not None:
        return [Path(explicit)]
    paths: list[Path] = []
    used: set[Path] = set()
    for image in images:
        folder = Path(output_dir) if output_dir else Path(image).parent
        stem = Path(image).stem
        path = folder / f"{stem}_prediction.png"
        n = 2
        while path.resolve() in used:
            path = folder / f"{stem}_prediction_{n}.png"
            n += 1
        used.add(path.resolve())
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# The command


def _top_k(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 1 <= k <= 10:
        raise argparse.ArgumentTypeError("must be between 1 and 10")
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.predict",
        description="Classify pictures of handwritten digits (PNG, JPEG, GIF, BMP, WEBP, TIFF).",
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image files to classify")
    parser.add_argument(
        "--model",
        choices=["cnn", "linear"],
        default=None,
        help="which bundled model to use (default: cnn)",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="use the model of this checkpoint (.npz) instead; its metadata names the model",
    )
    parser.add_argument(
        "--top-k",
        type=_top_k,
        default=3,
        metavar="K",
        help="how many of the most probable digits to list (1-10, default: 3)",
    )
    parser.add_argument(
        "--visualize",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="save a PNG of the model's input beside the probabilities, to PATH (one image) or "
        "to <image stem>_prediction.png beside each image or in --output-dir",
    )
    parser.add_argument(
        "--output-dir", metavar="DIR", help="folder for the --visualize PNGs (default: beside)"
    )
    parser.add_argument(
        "--explain",
        metavar="PATH",
        help="save one PNG of what the model computed for the image (one image): its input, "
        "the saliency of the predicted digit, every feature map and the probabilities",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _read_error(exc: OSError) -> str:
    if exc.errno == errno.EFBIG:
        return f"the file is larger than {MAX_FILE_BYTES // 2**20} MB"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read the file: {exc.strerror or exc}"


def _unwritable(path: Path) -> str | None:
    """Why a figure cannot be saved at path (checked before the model runs), or None."""
    if path.exists() and not is_our_plot(path):
        return f"will not save over {path}: that file was not made by this command"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        return f"cannot write {path}"
    return None


def prepare(image: str) -> ImageResult:
    """Read and prepare one image; problems become the result's error."""
    result = ImageResult(image=image)
    try:
        # Only a regular file: a FIFO would block the read forever, /dev/zero never ends.
        with open_regular_file(image, MAX_FILE_BYTES) as f:
            data = f.read()
    except OSError as exc:
        result.error = _read_error(exc)
        return result
    try:
        result.input28 = imageprep.prepare_image(data)
    except imageprep.ImageError as exc:
        result.error = str(exc)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # `--visualize digit.png` reads the image as the optional PATH: take it back.
    if not args.images and isinstance(args.visualize, str):
        args.images, args.visualize = [args.visualize], True
    if not args.images:
        parser.error("give at least one IMAGE")
    explicit = args.visualize if isinstance(args.visualize, str) else None
    if explicit is not None and len(args.images) > 1:
        parser.error("--visualize PATH takes one image; for several, use --output-dir DIR")

    if args.explain is not None and len(args.images) > 1:
        parser.error("--explain PATH takes one image")
    for option, value in (("--visualize", args.visualize), ("--explain", args.explain)):
        if value is not None and importlib.util.find_spec("matplotlib") is None:
            print(f"error: {option} needs matplotlib: pip install matplotlib", file=sys.stderr)
            return 2
    if args.explain is not None:
        problem = _unwritable(Path(args.explain))
        if problem is not None:
            print(f"error: --explain: {problem}", file=sys.stderr)
            return 2

    try:
        model, _, description = load_classifier(args.model, args.checkpoint)
    except (OSError, CheckpointError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2

    with warnings.catch_warnings():
        # Pillow warns about images over 89 megapixels; imageprep rejects them anyway.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        results = [prepare(image) for image in args.images]
    ready = [r for r in results if r.error is None]
    if ready:
        predictions = inference.predict(model, np.stack([r.input28 for r in ready]), BATCH_SIZE)
        for result, prediction in zip(ready, predictions):
            if np.isfinite(prediction.probabilities).all():
                result.prediction = prediction
            else:  # finite weights can still overflow float32 on some input
                result.error = "the model's output is not finite (NaN or infinity)"
        ready = [r for r in ready if r.error is None]

    if args.visualize is not None and ready:
        paths = visualization_paths([p.image for p in ready], explicit, args.output_dir)
        for result, path in zip(ready, paths):
            if path.exists() and not is_our_plot(path):
                result.plot_error = (
                    f"will not save the plot over {path}: that file was not made by this command"
                )
                continue
            try:
                save_visualization(path, result)
                result.visualization = path
            except OSError as exc:
                result.plot_error = f"cannot save the plot to {path}: {exc.strerror or exc}"

    if args.explain is not None and ready:
        explained = explain.explain(model, ready[0].input28)
        try:
            save_explanation(Path(args.explain), ready[0].image, explained)
        except OSError as exc:
            print(
                f"error: --explain: cannot save {args.explain}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2

    for result in results:
        for problem in (result.error, result.plot_error):
            if problem is not None:
                print(f"error: {result.image}: {problem}", file=sys.stderr)

    if args.json:
        rows = [to_json(r, args.top_k) for r in results]
        # allow_nan=False: Python would otherwise print NaN, which is not JSON.
        print(json.dumps({"model": description, "results": rows}, indent=2, allow_nan=False))
    else:
        blocks = [format_text(r, args.top_k) for r in results if r.error is None]
        if blocks:
            print(f"model: {description}\n")
            print("\n\n".join(blocks))

    failed = any(r.error is not None or r.plot_error is not None for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
