"""The training report's plots: the worst mistakes' picture and the files each plot writes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from scratchnet.mnist import report


def _logits(pred: list[int], confidence: list[float]) -> np.ndarray:
    """Logits whose argmax is pred[i], with a larger margin for a larger confidence."""
    logits = np.zeros((len(pred), 10), dtype=np.float32)
    logits[np.arange(len(pred)), pred] = confidence
    return logits


def test_worst_mistakes_are_the_misread_images_most_confident_first() -> None:
    y_true = np.array([0, 1, 2, 3, 4, 5])
    logits = _logits([0, 7, 2, 8, 9, 5], [5.0, 2.0, 9.0, 6.0, 4.0, 1.0])
    assert report.worst_mistakes(y_true, logits).tolist() == [3, 4, 1]
    assert report.worst_mistakes(y_true, logits, count=2).tolist() == [3, 4]
    assert report.worst_mistakes(y_true[:1], logits[:1]).tolist() == []


def test_plot_worst_writes_one_picture_of_the_grid(tmp_path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y_true = np.zeros(30, dtype=np.int64)
    logits = _logits([1] * 30, list(np.linspace(1, 5, 30)))  # every image misread
    report.plot_worst(images, y_true, logits, tmp_path / "worst.png")
    with Image.open(tmp_path / "worst.png") as picture:
        assert picture.size == (800, 940)  # 5 x 1.6 in by (5 x 1.8 + 0.4) in at 100 dpi

    report.plot_worst(images, y_true, _logits([0] * 30, [1.0] * 30), tmp_path / "none.png")
    with Image.open(tmp_path / "none.png") as picture:  # no mistakes: one empty row
        assert picture.size == (800, 220)
