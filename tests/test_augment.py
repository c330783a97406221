"""Random affine augmentation: the Numba kernel against its NumPy oracle and exact transforms."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet.mnist.augment import (
    RandomAffine,
    inverse_affine_matrices,
    random_affine,
    warp_affine,
    warp_affine_reference,
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
