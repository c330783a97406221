"""Augmentation: the Numba kernels (affine warp, grey morphology, displacement warp) against
their NumPy oracles, exact transforms, and the robust recipe."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scratchnet.mnist import imageprep
from scratchnet.mnist.augment import (
    RandomAffine,
    RobustAugment,
    blur_matrices,
    elastic_fields,
    grey_morphology,
    grey_morphology_reference,
    inverse_affine_matrices,
    low_resolution_matrices,
    prepare_geometry,
    random_affine,
    restore_strokes,
    separable,
    stroke_widths,
    stroke_widths_reference,
    warp_affine,
    warp_affine_reference,
    warp_displacement,
    warp_displacement_reference,
)
from scratchnet.mnist.data import DataLoader, normalize

WARPS = [warp_affine, warp_affine_reference]


def digit_like(n: int, height: int = 28, width: int = 28, seed: int = 0) -> np.ndarray:
    """uint8 images with a bright random blob in the middle and a black border, like MNIST."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, height, width), dtype=np.uint8)
    images[:, 4:-4, 4:-4] = rng.integers(0, 256, size=(n, height - 8, width - 8))
    return images


def random_matrices(n: int, height: int, width: int, seed: int = 1) -> np.ndarray:
    """Larger transforms than the defaults, so samples also land outside the image."""
    rng = np.random.default_rng(seed)
    return inverse_affine_matrices(
        rng.uniform(-180, 180, n),
        rng.uniform(0.5, 1.5, n),
        rng.uniform(-6, 6, (n, 2)),
        height,
        width,
    )


def identity(n: int, height: int = 28, width: int = 28) -> np.ndarray:
    return inverse_affine_matrices(np.zeros(n), np.ones(n), np.zeros((n, 2)), height, width)


@pytest.mark.parametrize("shape", [(16, 28, 28), (1, 28, 28), (5, 13, 21)])
def test_kernel_matches_reference_float32(shape: tuple[int, int, int]) -> None:
    images = digit_like(*shape).astype(np.float32) / 255
    matrices = random_matrices(*shape)

    for fill in (0.0, -0.5):
        fast = warp_affine(images, matrices, fill)
        oracle = warp_affine_reference(images, matrices, fill)
        assert fast.dtype == oracle.dtype == np.float32
        np.testing.assert_allclose(fast, oracle, rtol=0, atol=1e-6)
    assert not np.allclose(fast, images)  # the transforms really moved the pixels


@pytest.mark.parametrize("shape", [(16, 28, 28), (1, 28, 28), (5, 13, 21)])
def test_kernel_matches_reference_uint8(shape: tuple[int, int, int]) -> None:
    images = digit_like(*shape)
    matrices = random_matrices(*shape)

    fast = warp_affine(images, matrices)
    oracle = warp_affine_reference(images, matrices)

    assert fast.dtype == oracle.dtype == np.uint8
    # Both round half up; a value within rounding error of .5 may still go either way.
    difference = np.abs(fast.astype(np.int64) - oracle)
    assert difference.max() <= 1
    assert np.mean(difference == 0) > 0.999


def test_kernel_matches_reference_float64_default_transforms() -> None:
    images = digit_like(64).astype(np.float64)
    rng = np.random.default_rng(3)
    matrices = inverse_affine_matrices(
        rng.uniform(-10, 10, 64), rng.uniform(0.9, 1.1, 64), rng.uniform(-2, 2, (64, 2)), 28, 28
    )
    np.testing.assert_allclose(
        warp_affine(images, matrices), warp_affine_reference(images, matrices), atol=1e-9
    )


@pytest.mark.parametrize("warp", WARPS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_identity_returns_input(warp, dtype: type) -> None:
    images = digit_like(4, 28, 28).astype(dtype)
    np.testing.assert_array_equal(warp(images, identity(4)), images)
    rectangular = digit_like(2, 11, 17).astype(dtype)
    np.testing.assert_array_equal(warp(rectangular, identity(2, 11, 17)), rectangular)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_random_affine_without_randomness_is_identity(dtype: type) -> None:
    images = digit_like(8).astype(dtype)
    rng = np.random.default_rng(0)
    out = random_affine(images, rng, degrees=0, scale=(1.0, 1.0), translate=0.0)
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("warp", WARPS)
def test_integer_shift(warp) -> None:
    images = digit_like(3)
    shift = np.tile([[2.0, -1.0]], (3, 1))  # 2 pixels right, 1 pixel up
    matrices = inverse_affine_matrices(np.zeros(3), np.ones(3), shift, 28, 28)

    expected = np.zeros_like(images)
    expected[:, :-1, 2:] = images[:, 1:, :-2]

    np.testing.assert_array_equal(warp(images, matrices), expected)


@pytest.mark.parametrize("warp", WARPS)
def test_positive_angle_turns_counter_clockwise(warp) -> None:
    images = digit_like(2, 9, 9)
    matrices = inverse_affine_matrices(np.full(2, 90.0), np.ones(2), np.zeros((2, 2)), 9, 9)
    # np.rot90 turns counter-clockwise as displayed (row 0 at the top).
    expected = np.rot90(images, axes=(1, 2))
    np.testing.assert_array_equal(warp(images, matrices), expected)


def test_half_pixel_shift_averages_neighbours() -> None:
    images = np.zeros((1, 4, 4), dtype=np.float32)
    images[0, 1, 1] = 1.0
    matrices = inverse_affine_matrices([0.0], [1.0], [[0.5, 0.0]], 4, 4)
    out = warp_affine(images, matrices)
    expected = np.zeros_like(images)
    expected[0, 1, 1] = 0.5
    expected[0, 1, 2] = 0.5
    np.testing.assert_allclose(out, expected, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(10, 28, 28), (10, 1, 28, 28), (0, 28, 28)])
def test_random_affine_keeps_shape_and_dtype(dtype: type, shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=shape).astype(dtype)
    out = random_affine(images, np.random.default_rng(1))
    assert out.shape == images.shape
    assert out.dtype == images.dtype


def test_random_affine_is_seeded() -> None:
    images = digit_like(32)
    first = random_affine(images, np.random.default_rng(7))
    again = random_affine(images, np.random.default_rng(7))
    other = random_affine(images, np.random.default_rng(8))

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, images)
    # every image gets its own transform
    assert not np.array_equal(first[0], random_affine(images[:1], np.random.default_rng(9))[0])


def test_default_transform_stays_small() -> None:
    """±10°, 0.9-1.1 and ±2 px move a digit's centre of mass by a few pixels at most."""
    images = digit_like(200).astype(np.float64)
    out = random_affine(images, np.random.default_rng(0))
    rows = np.arange(28)[None, :, None]

    def centre_row(x: np.ndarray) -> np.ndarray:
        return (x * rows).sum(axis=(1, 2)) / x.sum(axis=(1, 2))

    moved = np.abs(centre_row(out) - centre_row(images))
    assert moved.max() < 3.5
    assert moved.mean() > 0.3


def test_random_affine_accepts_angle_range() -> None:
    images = digit_like(2, 9, 9)
    out = random_affine(images, np.random.default_rng(0), (90, 90), (1.0, 1.0), 0.0)
    np.testing.assert_array_equal(out, np.rot90(images, axes=(1, 2)))


def test_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="uint8 or float"):
        warp_affine(np.zeros((1, 4, 4), np.int32), identity(1, 4, 4))
    with pytest.raises(ValueError, match="matrices"):
        warp_affine(np.zeros((2, 4, 4), np.uint8), identity(1, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        random_affine(np.zeros((2, 3, 4, 4), np.uint8), np.random.default_rng(0))


def test_random_affine_class_in_data_loader() -> None:
    images = digit_like(50)
    labels = np.arange(50) % 10
    augment = RandomAffine(degrees=10, scale=(0.9, 1.1), translate=2.0)
    assert "degrees=10" in repr(augment)

    plain = list(DataLoader(images, labels, batch_size=16, seed=3))
    augmented = list(DataLoader(images, labels, batch_size=16, seed=3, augment=augment))
    augmented_again = list(DataLoader(images, labels, batch_size=16, seed=3, augment=augment))

    for (x, y), (x_aug, y_aug), (x_again, y_again) in zip(plain, augmented, augmented_again):
        np.testing.assert_array_equal(y_aug, y)  # labels untouched, order unchanged
        assert x_aug.shape == x.shape
        assert x_aug.dtype == np.float32
        assert not np.array_equal(x_aug, x)
        np.testing.assert_array_equal(x_again, x_aug)  # same seed, same augmentation
        np.testing.assert_array_equal(y_again, y_aug)


def test_augmentation_changes_between_epochs() -> None:
    images = digit_like(8)
    loader = DataLoader(images, np.zeros(8), batch_size=8, shuffle=False, augment=RandomAffine())
    first = next(iter(loader))[0]
    second = next(iter(loader))[0]
    assert not np.array_equal(first, second)
    loader.set_epoch(0)
    np.testing.assert_array_equal(next(iter(loader))[0], first)
    assert not np.array_equal(first, normalize(images))


# --------------------------------------------------------------------------------------------
# Stroke width: grey morphology
# --------------------------------------------------------------------------------------------

MORPHOLOGY = [grey_morphology, grey_morphology_reference]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_morphology_kernel_matches_reference(dtype: type) -> None:
    images = digit_like(24, 28, 28).astype(dtype)
    radii = np.random.default_rng(2).uniform(-2.5, 2.5, 24)
    radii[:3] = (0.0, 1.0, -2.0)  # whole radii: one disk, no blend
    fast = grey_morphology(images, radii)
    np.testing.assert_allclose(fast, grey_morphology_reference(images, radii), atol=1e-9)
    rectangular = digit_like(3, 9, 14).astype(dtype)
    np.testing.assert_allclose(
        grey_morphology(rectangular, radii[:3]),
        grey_morphology_reference(rectangular, radii[:3]),
        atol=1e-9,
    )


@pytest.mark.parametrize("morph", MORPHOLOGY)
def test_dilation_and_erosion_by_the_unit_disk(morph) -> None:
    dot = np.zeros((1, 7, 7), np.uint8)
    dot[0, 3, 3] = 200
    cross = np.zeros((7, 7))
    cross[3, 2:5] = cross[2:5, 3] = 200
    np.testing.assert_array_equal(morph(dot, np.array([1.0]))[0], cross)
    np.testing.assert_array_equal(morph(dot, np.array([0.0]))[0], dot[0])

    square = np.zeros((1, 7, 7), np.uint8)
    square[0, 2:5, 2:5] = 100
    eroded = np.zeros((7, 7))
    eroded[3, 3] = 100  # only the centre has its whole cross inside the square
    np.testing.assert_array_equal(morph(square, np.array([-1.0]))[0], eroded)
    # The border counts as background: ink touching it erodes from that side too.
    full = np.full((1, 5, 5), 50, np.uint8)
    assert morph(full, np.array([-1.0]))[0, 0].max() == 0


@pytest.mark.parametrize("morph", MORPHOLOGY)
def test_fractional_radius_blends_the_two_disks(morph) -> None:
    images = digit_like(2)
    one, two = morph(images, np.ones(2)), morph(images, np.full(2, 2.0))
    np.testing.assert_allclose(morph(images, np.full(2, 1.25)), 0.75 * one + 0.25 * two)
    assert np.all(two >= one) and np.all(one >= images)


def test_dilation_widens_mnist_strokes(mnist) -> None:
    images = mnist.train_images[:50]
    ink = images.astype(np.float64).sum(axis=(1, 2))
    thick = grey_morphology(images, np.full(50, 1.5)).sum(axis=(1, 2))
    thin = grey_morphology(images, np.full(50, -0.5)).sum(axis=(1, 2))
    assert np.all(thick > 1.5 * ink) and np.all(thin < 0.8 * ink)


# --------------------------------------------------------------------------------------------
# Elastic distortion
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_displacement_kernel_matches_reference(dtype: type) -> None:
    images = digit_like(16).astype(dtype)
    rows, cols = elastic_fields(16, 28, 28, np.full(16, 34.0), np.random.default_rng(4), 4.0)
    fast = warp_displacement(images, rows, cols)
    np.testing.assert_allclose(fast, warp_displacement_reference(images, rows, cols), atol=1e-9)
    assert np.abs(fast - images).mean() > 5


@pytest.mark.parametrize("warp", [warp_displacement, warp_displacement_reference])
def test_constant_displacement_shifts(warp) -> None:
    images = digit_like(2, 9, 11)
    zero = np.zeros(images.shape)
    np.testing.assert_array_equal(warp(images, zero, zero), images)
    # out[y, x] = in[y - 1, x + 2]: the picture moves down one and left two
    expected = np.zeros(images.shape)
    expected[:, 1:, :-2] = images[:, :-1, 2:]
    np.testing.assert_array_equal(warp(images, zero - 1, zero + 2), expected)
    # half a pixel across averages the two neighbours
    np.testing.assert_allclose(
        warp(images, zero, zero + 0.5)[:, :, :-1],
        (images[:, :, :-1].astype(float) + images[:, :, 1:]) / 2,
    )


def test_elastic_fields_are_smooth_seeded_and_scale_with_alpha() -> None:
    alphas = np.array([0.0, 8.0, 34.0])
    rows, cols = elastic_fields(3, 28, 28, alphas, np.random.default_rng(5), 4.0)
    again, _ = elastic_fields(3, 28, 28, alphas, np.random.default_rng(5), 4.0)
    np.testing.assert_array_equal(rows, again)
    assert rows.shape == cols.shape == (3, 28, 28)
    assert not rows[0].any() and not cols[0].any()
    # Smooth: a neighbour differs by far less than the field varies over the image.
    step = np.abs(np.diff(rows[2], axis=1)).mean()
    assert step < 0.2 * rows[2].std()
    # A smoothed uniform(-1, 1) field of sigma 4 has a spread of about 0.1: alpha 34, about 3 px.
    assert 1.0 < np.abs(rows[2]).max() < 10.0
    assert np.abs(cols[2]).mean() > np.abs(cols[1]).mean()


# --------------------------------------------------------------------------------------------
# Blur and low resolution
# --------------------------------------------------------------------------------------------


def test_blur_keeps_ink_and_softens_peaks() -> None:
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 10:18, 13:15] = 255
    out = separable(images, blur_matrices(28, np.array([1.0, 2.0])))
    # Rows of the matrices sum to 1 (edges renormalised): ink is kept up to what leaves the
    # image, and this bar is far from the edges.
    np.testing.assert_allclose(out.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=1e-3)
    assert 0 < out[1].max() < out[0].max() < 255
    # A symmetric kernel: the blurred bar stays centred between columns 13 and 14.
    np.testing.assert_allclose(out[0, :, :14], out[0, :, 14:][:, ::-1], atol=1e-9)


def test_low_resolution_matrices() -> None:
    matrices = low_resolution_matrices(28, np.array([28, 14, 8, 7]))
    np.testing.assert_allclose(matrices[0], np.eye(28), atol=1e-12)  # full size: unchanged
    np.testing.assert_allclose(matrices.sum(axis=2), 1.0)  # flat paper stays flat
    for matrix, side in zip(matrices[1:], (14, 8, 7)):
        assert np.linalg.matrix_rank(matrix) == side  # only `side` pixels of detail survive
    # 28 -> 14 -> 28: the inside of a uniform patch, aligned with the 2x2 cells, comes back
    # as it was; bilinear upsampling softens its edges.
    images = np.zeros((1, 28, 28))
    images[0, 8:16, 8:16] = 100.0
    out = separable(images, matrices[1:2])
    assert out[0, 11, 11] == pytest.approx(100.0) and out[0, 20, 20] == 0.0
    assert out[0, 8, 8] == pytest.approx(100.0 * 0.75 * 0.75)


def pillow_matrix(size: int, side: int, filter: Image.Resampling) -> np.ndarray:
    """Pillow's resize along one axis as a (side, size) matrix: it is linear, so its columns
    are the resized unit impulses (float images, no rounding)."""
    columns = []
    for j in range(size):
        impulse = np.zeros((1, size), dtype=np.float32)
        impulse[0, j] = 1.0
        resized = Image.fromarray(impulse, mode="F").resize((side, 1), filter)
        columns.append(np.asarray(resized, dtype=np.float64)[0])
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("size", [28, 20, 33])
def test_whole_pixel_low_resolution_is_pillows_box_then_bilinear(size: int) -> None:
    sides = np.arange(2, size)
    ours = low_resolution_matrices(size, sides, whole_pixels=True)
    for matrix, side in zip(ours, sides.tolist(), strict=True):
        down = pillow_matrix(size, side, Image.Resampling.BOX)
        up = pillow_matrix(side, size, Image.Resampling.BILINEAR)
        np.testing.assert_allclose(matrix, up @ down, atol=1e-6, err_msg=f"side {side}")


def test_whole_pixels_are_chosen_per_image() -> None:
    mixed = low_resolution_matrices(28, np.array([8, 8, 10]), np.array([True, False, True]))
    np.testing.assert_array_equal(mixed[0], low_resolution_matrices(28, np.array([8]), True)[0])
    np.testing.assert_array_equal(mixed[1], low_resolution_matrices(28, np.array([8]))[0])
    np.testing.assert_array_equal(mixed[2], low_resolution_matrices(28, np.array([10]), True)[0])
    # At 28 -> 8 the cells are of 4 and 3 whole pixels, unlike the area average's 3.5.
    assert not np.allclose(mixed[0], mixed[1])


def test_robust_augment_takes_low_resolution_by_whole_pixels_when_asked(mnist) -> None:
    images = mnist.train_images[:32]
    only_lowres = dict(p=(0.0, 0.0, 0.0, 1.0), min_side=8, max_side=8, prepare=False)
    area = RobustAugment(**only_lowres)(images, np.random.default_rng(0))
    whole = RobustAugment(**only_lowres, whole_pixels=1.0)(images, np.random.default_rng(0))
    expected = separable(images, low_resolution_matrices(28, np.full(32, 8), True))
    np.testing.assert_array_equal(whole, np.clip(np.floor(expected + 0.5), 0, 255))
    assert not np.array_equal(whole, area)
    # whole_pixels=0 draws nothing more: the default recipe's random stream is unchanged.
    default = RobustAugment(affine=RandomAffine())(images, np.random.default_rng(5))
    zero = RobustAugment(affine=RandomAffine(), whole_pixels=0.0)(images, np.random.default_rng(5))
    np.testing.assert_array_equal(default, zero)


def test_robust_augment_leaves_the_warp_out_of_low_resolution_when_asked(mnist) -> None:
    images = mnist.train_images[:64]
    half_lowres = dict(p=(0.0, 0.0, 0.0, 0.5), min_side=8, max_side=8, prepare=False)
    warped = RobustAugment(**half_lowres, affine=RandomAffine())(images, np.random.default_rng(3))
    unwarped = RobustAugment(**half_lowres, affine=RandomAffine(), warp_lowres=False)(
        images, np.random.default_rng(3)
    )
    chosen = np.random.default_rng(3).random((4, 64))[3] < 0.5
    assert 0 < chosen.sum() < 64

    # The chosen images are the unwarped digits at 8x8 and back ...
    expected = separable(images[chosen], low_resolution_matrices(28, np.full(chosen.sum(), 8)))
    np.testing.assert_array_equal(unwarped[chosen], np.clip(np.floor(expected + 0.5), 0, 255))
    assert not np.array_equal(unwarped[chosen], warped[chosen])
    # ... and the others took the same warp as with warp_lowres: the random stream is the same.
    np.testing.assert_array_equal(unwarped[~chosen], warped[~chosen])
    assert not np.array_equal(unwarped[~chosen], images[~chosen])


# --------------------------------------------------------------------------------------------
# The robust recipe
# --------------------------------------------------------------------------------------------


def test_robust_augment_is_seeded_and_keeps_shape_and_dtype(mnist) -> None:
    images = mnist.train_images[:64]
    augment = RobustAugment(affine=RandomAffine())
    first = augment(images, np.random.default_rng(0))
    np.testing.assert_array_equal(first, augment(images, np.random.default_rng(0)))
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert not np.array_equal(first, augment(images, np.random.default_rng(1)))
    stacked = augment(images[:, None], np.random.default_rng(0))
    np.testing.assert_array_equal(stacked[:, 0], first)
    assert "RandomAffine" in repr(augment)


def test_robust_augment_without_steps_is_identity(mnist) -> None:
    images = mnist.train_images[:16]
    np.testing.assert_array_equal(RobustAugment(p=0.0)(images, np.random.default_rng(0)), images)


def test_each_robust_step_changes_the_digits(mnist) -> None:
    images = mnist.train_images[:32]
    rng = np.random.default_rng(0)
    ink = images.astype(np.float64).sum(axis=(1, 2))
    thick = RobustAugment(
        p=1.0,
        max_alpha=0,
        max_erode=-1.0,
        max_dilate=2.0,
        max_sigma=0.5,
        min_side=14,
        max_side=14,
        prepare=False,
    )
    # every step on; elastic of alpha 0, dilation of 1 to 2 px, the lightest blur, 14x14
    out = thick(images, rng).astype(np.float64)
    assert np.all(out.sum(axis=(1, 2)) > 1.3 * ink)
    assert (out >= 250).sum() < (images >= 250).sum()  # softened by blur and 14x14
    # Two recipes that differ only in alpha draw the same numbers: the difference is elastic's.
    still = RobustAugment(p=1.0, max_alpha=0.0)(images, np.random.default_rng(1))
    moved = RobustAugment(p=1.0, max_alpha=34.0)(images, np.random.default_rng(1))
    assert np.abs(moved.astype(np.float64) - still).mean() > 5


def test_one_probability_per_step(mnist) -> None:
    images = mnist.train_images[:32]
    # Only the stroke step, always: exactly a dilation, then the preparation's geometry and
    # strokes.
    stroke = {"p": (0.0, 1.0, 0.0, 0.0), "max_erode": -1.0, "max_dilate": 1.0}
    only_stroke = RobustAugment(**stroke)
    radii = np.full(len(images), 1.0)
    expected = np.floor(restore_strokes(prepare_geometry(grey_morphology(images, radii))) + 0.5)
    np.testing.assert_array_equal(only_stroke(images, np.random.default_rng(0)), expected)
    unprepared = RobustAugment(**stroke, prepare=False)
    expected = np.floor(grey_morphology(images, radii) + 0.5)
    np.testing.assert_array_equal(unprepared(images, np.random.default_rng(0)), expected)


# --------------------------------------------------------------------------------------------
# The preparation's geometry
# --------------------------------------------------------------------------------------------


def prepared_without_restore(pictures: np.ndarray) -> np.ndarray:
    return 255 * np.stack([imageprep.prepare_image(p, restore=False) for p in pictures])


def test_prepare_geometry_leaves_mnist_digits_in_place(mnist) -> None:
    # MNIST's digits were placed this way: box 20 px, centre of mass at (14, 14), whole pixels.
    images = mnist.test_images[:200]
    out = prepare_geometry(images.astype(np.float64))
    moved = np.abs(out - prepared_without_restore(images)).max(axis=(1, 2)) > 1
    assert moved.mean() < 0.05


def test_prepare_geometry_undoes_a_shrink_and_a_shift(mnist) -> None:
    images = mnist.test_images[:50]
    n = len(images)
    small = warp_affine(
        images.astype(np.float64),
        inverse_affine_matrices(np.zeros(n), np.full(n, 0.6), np.tile([4.0, -3.0], (n, 1)), 28, 28),
    )
    out = prepare_geometry(small)
    rows, cols = np.mgrid[0:28, 0:28]
    mass = out.sum(axis=(1, 2))
    np.testing.assert_allclose((out * rows).sum(axis=(1, 2)) / mass, 14, atol=0.6)
    np.testing.assert_allclose((out * cols).sum(axis=(1, 2)) / mass, 14, atol=0.6)
    # Back at full size: far closer to the original than the shrunk copy (bilinear loses detail).
    error = np.abs(out - images).mean()
    assert error < 0.5 * np.abs(small - images).mean()
    assert out.max() == pytest.approx(255.0, abs=2.0)


@pytest.mark.parametrize("soften", ["blur", "dilate"])
def test_prepare_geometry_places_changed_digits_as_the_preparation_does(mnist, soften) -> None:
    images = mnist.test_images[:100]
    n = len(images)
    if soften == "blur":
        changed = separable(images, blur_matrices(28, np.full(n, 1.5)))
    else:
        changed = grey_morphology(images, np.full(n, 2.0))
    pictures = np.clip(np.floor(changed + 0.5), 0, 255).astype(np.uint8)
    expected = prepared_without_restore(pictures)
    # A bigger box than the sharp digit's: the preparation shrinks it, and so does this.
    assert np.abs(pictures - expected).mean() > 10
    assert (
        np.abs(prepare_geometry(changed) - expected).mean()
        < 0.25 * np.abs(pictures - expected).mean()
    )


def test_restore_strokes_treats_thick_and_thin_digits_as_the_preparation_does(mnist) -> None:
    images = mnist.test_images[:100]
    n = len(images)
    for radius in (2.25, -0.6):  # about 3x and 0.5x MNIST's median width
        changed = grey_morphology(images, np.full(n, radius))
        pictures = np.clip(np.floor(changed + 0.5), 0, 255).astype(np.uint8)
        expected = 255 * np.stack([imageprep.prepare_image(p) for p in pictures])
        placed = prepare_geometry(changed)
        restored = restore_strokes(placed)
        assert np.abs(restored - expected).mean() < 0.9 * np.abs(placed - expected).mean()
        before, after, wanted = (
            np.median([imageprep.stroke_width(one >= 127.5) for one in batch])
            for batch in (placed, restored, expected)
        )
        # Measured: 3x 5.0 -> 4.0 px (the preparation: 3.7), 0.5x 1.3 -> 1.9 px (2.2).
        assert abs(after - wanted) < 0.5 * abs(before - wanted)


@pytest.mark.parametrize("shape", [(6, 28, 28), (5, 3, 9), (3, 1, 1), (4, 10, 6)])
def test_stroke_widths_kernel_matches_reference(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    masks = rng.random(shape) > rng.random((shape[0], 1, 1))
    masks[0] = False  # blank: width 0
    masks[1] = True  # ink up to every edge
    widths = stroke_widths(masks)
    assert widths[0] == 0.0 and widths[1] > 0
    np.testing.assert_array_equal(widths, stroke_widths_reference(masks))


def test_stroke_widths_of_mnist(mnist) -> None:
    masks = mnist.test_images[:50] >= 128
    np.testing.assert_array_equal(stroke_widths(masks), stroke_widths_reference(masks))
    assert 1.5 < np.median(stroke_widths(masks)) < 3.5


def test_restore_strokes_leaves_soft_and_typical_digits_alone(mnist) -> None:
    images = mnist.test_images[:100].astype(np.float64)
    blurred = prepare_geometry(separable(images, blur_matrices(28, np.full(len(images), 1.5))))
    np.testing.assert_array_equal(restore_strokes(blurred), blurred)
    placed = prepare_geometry(images)
    widths = np.array([imageprep.stroke_width(one >= 127.5) for one in placed])
    typical = (widths >= imageprep.MIN_STROKE) & (widths <= imageprep.MAX_STROKE)
    assert typical.mean() > 0.8
    np.testing.assert_array_equal(restore_strokes(placed[typical]), placed[typical])


def test_prepare_geometry_keeps_blank_images_blank() -> None:
    blank = np.zeros((2, 28, 28))
    np.testing.assert_array_equal(prepare_geometry(blank), blank)


def test_robust_augment_in_data_loader(mnist) -> None:
    images, labels = mnist.train_images[:40], mnist.train_labels[:40]
    loader = DataLoader(images, labels, batch_size=16, seed=1, augment=RobustAugment(p=0.5))
    again = DataLoader(images, labels, batch_size=16, seed=1, augment=RobustAugment(p=0.5))
    for (x, y), (x2, y2) in zip(loader, again):
        assert x.dtype == np.float32 and x.shape == (len(y), 1, 28, 28)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
