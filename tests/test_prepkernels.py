"""scratchnet.mnist.prepkernels: each loop equals its NumPy twin, checked by hand too."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet.mnist import imageprep, prepkernels
from scratchnet.runtime.mode import reference_mode_enabled


def shapes():
    return [(1, 1), (1, 9), (7, 1), (2, 3), (28, 28), (61, 40)]


@pytest.mark.parametrize("shape", shapes())
def test_level_box_equals_its_twin(shape):
    rng = np.random.default_rng(list(shape))
    for _ in range(20):
        levels = rng.integers(0, 256, shape, dtype=np.uint8)
        if rng.random() < 0.5:  # mostly paper, a few levels: boxes smaller than the picture
            levels = np.where(rng.random(shape) < 0.05, levels, 255).astype(np.uint8)
        low = int(rng.integers(0, 256))
        high = int(rng.integers(low, 256))
        expected = prepkernels.level_box_reference(levels, low, high)
        assert prepkernels.level_box(levels, low, high) == expected


def test_level_box_by_hand():
    levels = np.full((6, 8), 200, dtype=np.uint8)
    levels[2, 5] = 10
    levels[4, 1] = 0
    assert prepkernels.level_box_reference(levels, 0, 10) == (2, 5, 1, 6)
    assert prepkernels.level_box(levels, 0, 10) == (2, 5, 1, 6)
    assert prepkernels.level_box(levels, 5, 10) == (2, 3, 5, 6)
    assert prepkernels.level_box(levels, 201, 255) == (0, 0, 0, 0)
    assert prepkernels.level_box_reference(levels, 201, 255) == (0, 0, 0, 0)
    assert prepkernels.level_box(levels, 0, 255) == (0, 6, 0, 8)


@pytest.mark.parametrize("shape", shapes())
def test_mask_transitions_equal_their_twin(shape):
    rng = np.random.default_rng(list(shape))
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(shape) < density
        expected = prepkernels.mask_transitions_reference(mask)
        assert prepkernels.mask_transitions(mask) == expected
        assert prepkernels.mask_transitions(np.asfortranarray(mask)) == expected


def test_mask_transitions_by_hand():
    # One pixel: 2 transitions along each direction.
    assert prepkernels.mask_transitions(np.ones((1, 1), bool)) == (1, 2, 2, 2, 2)
    # A 2x3 block: 2 rows x 2 edges, 3 columns x 2 edges; along a diagonal, 4 of its pixels
    # have a neighbour off the block on one side and 4 on the other.
    block = np.ones((2, 3), bool)
    assert prepkernels.mask_transitions_reference(block) == (6, 4, 6, 8, 8)
    assert prepkernels.mask_transitions(block) == (6, 4, 6, 8, 8)


def not_in_reading_mode(*args):
    raise AssertionError("reading mode ran a Numba loop instead of its NumPy twin")


def test_stroke_width_is_the_same_in_reading_mode(monkeypatch):
    mask = np.zeros((40, 40), bool)
    mask[10:30, 18:22] = True  # a bar 4 px wide
    fast = imageprep.stroke_width(mask)
    with reference_mode_enabled():
        monkeypatch.setattr(prepkernels, "_mask_transitions_kernel", not_in_reading_mode)
        assert imageprep.stroke_width(mask) == fast
    assert fast == pytest.approx(4, rel=0.2)


@pytest.mark.parametrize("size", [1, 2, 3, 10, 11, 5400, 5401])
def test_middle_levels_and_the_median_they_give(size):
    rng = np.random.default_rng(size)
    for values in (np.arange(256), np.array([0, 1, 127, 128, 254, 255])):
        levels = rng.choice(values, size).astype(np.uint8)
        middle = prepkernels.middle_levels(levels)
        assert middle == prepkernels.middle_levels_reference(levels)
        ordered = np.sort(levels)
        assert middle == (ordered[(size - 1) // 2], ordered[size // 2])
        # imageprep's median from them is np.median's float32, to the bit.
        assert imageprep._median_level(levels) == float(np.median(levels / np.float32(255.0)))


def test_lookup_equals_its_twin():
    rng = np.random.default_rng(5)
    table = rng.random(256).astype(np.float32)
    levels = rng.integers(0, 256, (30, 41), dtype=np.uint8)
    for view in (levels, levels[3:20, 5:33], levels[::2, ::3]):
        looked_up = prepkernels.lookup(table, view)
        assert looked_up.dtype == np.float32
        np.testing.assert_array_equal(looked_up, prepkernels.lookup_reference(table, view))
        np.testing.assert_array_equal(looked_up, np.take(table, view))


def test_the_8bit_crop_is_the_same_in_reading_mode(monkeypatch):
    levels = np.full((50, 60), 250, dtype=np.uint8)
    levels[10:40, 20:26] = 30
    levels[12, 45] = 90
    fast = imageprep._cropped_ink8(levels)
    with reference_mode_enabled():
        for loop in ("_middle_levels_kernel", "_level_box_kernel", "_lookup_kernel"):
            monkeypatch.setattr(prepkernels, loop, not_in_reading_mode)
        np.testing.assert_array_equal(imageprep._cropped_ink8(levels), fast)
    assert fast.shape == (30, 26)  # rows 10..39, columns 20..45
