"""How well a model reads digits unlike MNIST's: test accuracy under named transformations.

    python -m scratchnet.robustness                      # both bundled models, 2,000 test digits
    python -m scratchnet.robustness --model cnn --limit 10000 --json robustness.json
    python -m scratchnet.robustness --checkpoint runs/cnn-.../best.npz

Each transformation takes MNIST test digits (uint8, ink bright on black) to new pictures, at
several strengths; every picture then goes through the same preparation as a user's upload
(imageprep.prepare_image) and the one inference path (scratchnet.mnist.inference):

    stroke     strokes thinner or thicker by grey erosion or dilation with a disk, at 4x
               resolution: 0.5x, 0.75x, 1.5x, 2x, 3x MNIST's median width (2.3 px)
    blur       Gaussian blur of sigma 0.5, 1, 1.5, 2 px
    lowres     down to 14x14, 10x10 or 8x8 pixels (area average), and back up (bilinear)
    elastic    Simard et al. (2003): a random displacement field, uniform in [-1, 1], smoothed
               by a Gaussian of sigma 4 px (weights summing to 1) and scaled by alpha 8, 16 or
               34 (their setting), sampled bilinearly
    rotate     +-20, +-30, +-45 degrees (training augments up to +-10)
    shear      x' = x + k (y - centre), k = +-0.2, +-0.4, +-0.6
    canvas     drawn on a 280x280 canvas as dark ink on white, 60, 120 or 240 px tall, at a
               random position: the drawing page's case

`none` is the untransformed test set through the same preparation. All random draws come from
one seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from scratchnet.checkpoint import CheckpointError
from scratchnet.mnist import imageprep, inference
from scratchnet.mnist.augment import (
    gaussian_matrices,
    inverse_affine_matrices,
    warp_affine,
    warp_displacement,
)
from scratchnet.mnist.data import MNISTError, load_mnist

MNIST_STROKE = 2.3  # px: the median stroke width of MNIST's test digits (imageprep.stroke_width)
UPSAMPLE = 4  # erosion and dilation run at 4x resolution, so that widths change by fractions


@dataclass(frozen=True)
class Transform:
    """A named family of transformations: apply(images, strength, rng) -> images (0..255)."""

    name: str
    strengths: tuple[float, ...]
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    unit: str


def _per_image(images: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    out = [np.asarray(fn(Image.fromarray(img)), dtype=np.uint8) for img in images]
    return np.stack(out)


def stroke_width(images: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Strokes `factor` times as wide: grey dilation (factor > 1) or erosion (< 1) by a disk."""
    radius = round(abs(factor - 1) * MNIST_STROKE / 2 * UPSAMPLE)
    if radius == 0:
        return images
    size = 2 * radius + 1
    morph = ImageFilter.MaxFilter(size) if factor > 1 else ImageFilter.MinFilter(size)
    big = 28 * UPSAMPLE

    def one(img: Image.Image) -> Image.Image:
        up = img.resize((big, big), Image.Resampling.BILINEAR)
        return up.filter(morph).resize((28, 28), Image.Resampling.BOX)

    return _per_image(images, one)


def blur(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _per_image(images, lambda img: img.filter(ImageFilter.GaussianBlur(sigma)))


def low_resolution(images: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    side = int(size)

    def one(img: Image.Image) -> Image.Image:
        small = img.resize((side, side), Image.Resampling.BOX)
        return small.resize((28, 28), Image.Resampling.BILINEAR)

    return _per_image(images, one)


def elastic(images: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Simard et al.'s elastic distortion: alpha times a random field smoothed by sigma 4 px."""
    smooth = gaussian_matrices(28, np.array([4.0]))[0]
    rows = np.empty(images.shape)
    cols = np.empty(images.shape)
    for i in range(len(images)):  # each image draws its two fields in turn: a fixed order
        rows[i] = smooth @ rng.uniform(-1, 1, (28, 28)) @ smooth.T
        cols[i] = smooth @ rng.uniform(-1, 1, (28, 28)) @ smooth.T
    warped = warp_displacement(images, alpha * rows, alpha * cols)
    return np.clip(warped + 0.5, 0, 255).astype(np.uint8)


def rotate(images: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    n = len(images)
    angles = degrees * rng.choice([-1.0, 1.0], size=n)
    matrices = inverse_affine_matrices(angles, np.ones(n), np.zeros((n, 2)), 28, 28)
    return warp_affine(images, matrices)


def shear(images: np.ndarray, k: float, rng: np.random.Generator) -> np.ndarray:
    """x' = x + k (y - c): the inverse map samples x = x' - k (y' - c)."""
    n = len(images)
    signs = k * rng.choice([-1.0, 1.0], size=n)
    centre = 13.5
    matrices = np.zeros((n, 2, 3))
    matrices[:, 0, 0] = 1.0
    matrices[:, 0, 1] = -signs
    matrices[:, 0, 2] = signs * centre
    matrices[:, 1, 1] = 1.0
    return warp_affine(images, matrices)


def canvas(images: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray:
    """Each digit drawn dark on a white 280x280 canvas, `height` px tall, anywhere on it."""
    size = int(height)
    out = np.empty((len(images), 280, 280), dtype=np.uint8)
    for i, img in enumerate(images):
        page = Image.new("L", (280, 280), 255)
        ink = Image.fromarray(255 - img).resize((size, size), Image.Resampling.BILINEAR)
        top, left = rng.integers(0, 280 - size + 1, size=2)
        page.paste(ink, (int(left), int(top)))
        out[i] = np.asarray(page)
    return out


TRANSFORMS = (
    Transform("none", (0,), lambda images, s, rng: images, ""),
    Transform("stroke", (0.5, 0.75, 1.5, 2.0, 3.0), stroke_width, "x width"),
    Transform("blur", (0.5, 1.0, 1.5, 2.0), blur, "sigma px"),
    Transform("lowres", (14, 10, 8), low_resolution, "px"),
    Transform("elastic", (8, 16, 34), elastic, "alpha"),
    Transform("rotate", (20, 30, 45), rotate, "degrees"),
    Transform("shear", (0.2, 0.4, 0.6), shear, "k"),
    Transform("canvas", (60, 120, 240), canvas, "px tall"),
)


def prepared(pictures: np.ndarray) -> np.ndarray:
    """imageprep.prepare_image on each picture; a blank one (all ink eroded) stays blank."""
    out = np.zeros((len(pictures), 28, 28), dtype=np.float32)
    for i, picture in enumerate(pictures):
        with contextlib.suppress(imageprep.NoInkError):  # scored as an empty field
            out[i] = imageprep.prepare_image(picture)
    return out


def score(
    models: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    transforms: Sequence[Transform] = TRANSFORMS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per transformation and strength: each model's accuracy on the same pictures."""
    rows = []
    for transform in transforms:
        for strength in transform.strengths:
            rng = np.random.default_rng([seed, len(rows)])
            digits = prepared(transform.apply(images, strength, rng))
            row: dict[str, Any] = {"transform": transform.name, "strength": strength}
            for name, model in models.items():
                predicted = [p.digit for p in inference.predict(model, digits)]
                row[name] = float(np.mean(np.asarray(predicted) == labels))
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], names: Sequence[str]) -> str:
    units = {t.name: t.unit for t in TRANSFORMS}
    lines = [f"{'transform':<10}{'strength':>16}" + "".join(f"{n:>10}" for n in names)]
    for row in rows:
        strength = f"{row['strength']:g} {units.get(row['transform'], '')}".strip()
        cells = "".join(f"{100 * row[n]:>9.2f}%" for n in names)
        lines.append(f"{row['transform']:<10}{strength:>16}" + cells)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.robustness",
        description="Accuracy on MNIST's test digits under stroke width, blur, low resolution, "
        "elastic distortion, rotation, shear and the drawing canvas.",
    )
    parser.add_argument("--model", nargs="+", choices=["linear", "cnn"], default=["cnn", "linear"])
    parser.add_argument("--checkpoint", nargs="+", default=None, help="score these instead")
    parser.add_argument("--limit", type=int, default=2000, help="the first N test digits")
    parser.add_argument("--transforms", nargs="+", choices=[t.name for t in TRANSFORMS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from scratchnet.mnist import models as zoo

    args = build_parser().parse_args(argv)
    if args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    chosen = [t for t in TRANSFORMS if args.transforms is None or t.name in args.transforms]
    try:
        if args.checkpoint:
            models = {Path(c).stem: zoo.load_model(c)[0] for c in args.checkpoint}
        else:
            models = {name: zoo.load_pretrained(name) for name in args.model}
        mnist = load_mnist(args.data_dir, progress=False)
    except (OSError, CheckpointError, MNISTError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    images = mnist.test_images[: args.limit]
    labels = mnist.test_labels[: args.limit]
    rows = score(models, images, labels, chosen, args.seed)
    print(f"{len(images):,} MNIST test digits, each prepared as an upload\n")
    print(format_table(rows, list(models)))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps({"digits": len(images), "rows": rows}, indent=2))
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
