"""python -m scratchnet.robustness: the transformations do what they say, and the command runs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scratchnet.mnist import robustness


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:40], mnist.test_labels[:40]


def ink(images):
    return images.astype(np.float64).sum(axis=(1, 2))


def test_stroke_width_thins_and_thickens(digits):
    images, _ = digits
    rng = np.random.default_rng(0)
    thin = robustness.stroke_width(images, 0.5, rng)
    thick = robustness.stroke_width(images, 3.0, rng)
    assert thin.shape == thick.shape == images.shape and thick.dtype == np.uint8
    assert np.all(ink(thin) < ink(images))
    assert np.all(ink(thick) > 1.5 * ink(images))
    assert robustness.stroke_width(images, 1.0, rng) is images


def test_blur_and_low_resolution_soften_the_digits(digits):
    images, _ = digits
    rng = np.random.default_rng(0)
    for changed in (robustness.blur(images, 1.5, rng), robustness.low_resolution(images, 8, rng)):
        assert changed.shape == images.shape
        # Softer edges: fewer pixels at full ink, about the same total ink.
        assert (changed >= 250).sum() < (images >= 250).sum()
        np.testing.assert_allclose(ink(changed), ink(images), rtol=0.2)


def test_geometric_transforms_move_ink_and_are_seeded(digits):
    images, _ = digits
    for fn, strength in (
        (robustness.elastic, 34),
        (robustness.rotate, 45),
        (robustness.shear, 0.6),
    ):
        a = fn(images, strength, np.random.default_rng(1))
        b = fn(images, strength, np.random.default_rng(1))
        np.testing.assert_array_equal(a, b)
        assert a.shape == images.shape
        assert np.abs(a.astype(int) - images).mean() > 5


def test_canvas_draws_dark_ink_on_white_at_the_asked_size(digits):
    images, _ = digits
    pages = robustness.canvas(images[:3], 120, np.random.default_rng(0))
    assert pages.shape == (3, 280, 280)
    for page in pages:
        rows = np.flatnonzero((page < 128).any(axis=1))
        assert page.max() == 255 and page.min() < 50
        assert 40 <= rows[-1] - rows[0] + 1 <= 120  # the digit's ink within its 120-px box


def test_score_gives_one_row_per_strength_for_each_model(digits):
    from scratchnet.mnist.models import load_pretrained

    images, labels = digits
    models = {"linear": load_pretrained("linear")}
    rows = robustness.score(models, images[:20], labels[:20])
    expected = sum(len(t.strengths) for t in robustness.TRANSFORMS)
    assert len(rows) == expected
    assert {r["transform"] for r in rows} == {t.name for t in robustness.TRANSFORMS}
    assert all(0.0 <= r["linear"] <= 1.0 for r in rows)
    none = next(r for r in rows if r["transform"] == "none")
    assert none["linear"] >= 0.8  # 20 clean test digits


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "robustness.json"
    args = ["--limit", "20", "--transforms", "none", "stroke", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "scratchnet.robustness", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stroke" in result.stdout and "cnn" in result.stdout and "linear" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["transform"] for r in rows] == ["none"] + ["stroke"] * 5


def test_the_command_refuses_bad_arguments_in_one_line(tmp_path):
    for args in (["--limit", "0"], ["--checkpoint", str(tmp_path / "missing.npz")]):
        result = subprocess.run(
            [sys.executable, "-m", "scratchnet.robustness", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
