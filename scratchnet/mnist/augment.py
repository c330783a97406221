"""Random affine augmentation: rotate, scale and shift each image, by inverse-mapped bilinear
sampling.

Each output pixel p = (x, y) (x = column, y = row, y pointing down) looks up where it came from
in the input, q = A p + b, and blends the four pixels around q:

    x0, y0 = floor(qx), floor(qy)          wx, wy = qx - x0, qy - y0
    out[y, x] = (1 - wy) * ((1 - wx) * in[y0, x0]     + wx * in[y0, x0 + 1])
              +      wy  * ((1 - wx) * in[y0 + 1, x0] + wx * in[y0 + 1, x0 + 1])

Pixels outside the image read as `fill` (0, MNIST's background). uint8 results are rounded
half up; float results keep their dtype.

The forward transform of an image, about its centre c = ((W - 1) / 2, (H - 1) / 2), is

    p' = c + s * R(angle) (p - c) + t          R(a) = [[cos a, sin a], [-sin a, cos a]]

(R turns counter-clockwise on screen, since y points down, as torchvision's RandomAffine
does), so the inverse map used for sampling is

    A = R(-angle) / s                          b = c - A (c + t)

Shapes: images (N, H, W) or (N, 1, H, W), matrices (N, 2, 3) = [A | b] per image.

`warp_affine` runs a Numba kernel with `prange` over images (they are independent);
`warp_affine_reference` is the vectorised NumPy version with the same signature, the oracle in
the tests. Measured speed of `random_affine` on MNIST's 60,000 training images, 2 cores:
about 215,000 images/s for uint8 (0.28 s per epoch; the same in batches of 64) and 140,000
for float32, against about 5,000 images/s for the NumPy reference.

The robust recipe (`RobustAugment`, `python -m scratchnet.train --augment-extra`) adds what
users' digits do and MNIST's do not, each to a random part of every batch (40% for stroke and
lowres, 25% for elastic and blur):

    stroke     grey dilation (thicker) or erosion (thinner) by a disk of fractional radius r:
               the results of the disks of radius floor(r) and ceil(r), blended linearly
    elastic    Simard et al. (2003): displacements alpha * (G * U(-1, 1)), G a Gaussian of
               sigma 4 px, sampled bilinearly
    blur       a Gaussian of random sigma
    lowres     down to s x s pixels by area average (or by whole-pixel cells, as Pillow's
               BOX filter, for a chosen fraction), bilinear back up

Blur and low resolution are separable linear maps, out = M @ image @ M.T with one 28x28 M per
image (the product of both when an image gets both), so they are batched matrix products;
stroke and elastic are Numba kernels (`grey_morphology`, `warp_displacement`), each with its
NumPy twin. The images that took a step are then placed as the preparation places a user's
picture (`prepare_geometry`: the ink box scaled to 20 px, the centre of mass at (14, 14)) by
`warp_affine`, since every test picture goes through that preparation too.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from scratchnet.mnist import imageprep
from scratchnet.mnist.imageprep import DIGIT_BOX, IMAGE_SIZE, NOISE_FLOOR

__all__ = [
    "RandomAffine",
    "RobustAugment",
    "blur_matrices",
    "elastic_fields",
    "grey_morphology",
    "grey_morphology_reference",
    "inverse_affine_matrices",
    "low_resolution_matrices",
    "prepare_geometry",
    "random_affine",
    "restore_strokes",
    "separable",
    "stroke_widths",
    "stroke_widths_reference",
    "warp_affine",
    "warp_affine_reference",
    "warp_displacement",
    "warp_displacement_reference",
]


def inverse_affine_matrices(
    angles: np.ndarray,
    scales: np.ndarray,
    translations: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Sampling matrices (N, 2, 3) for rotations `angles` (degrees, counter-clockwise),
    `scales` (N,) and `translations` (N, 2) as (dx, dy) pixels, about the image centre."""
    theta = np.deg2rad(np.asarray(angles, dtype=np.float64))
    scales = np.asarray(scales, dtype=np.float64)
    translations = np.asarray(translations, dtype=np.float64).reshape(-1, 2)
    cos = np.cos(theta) / scales
    sin = np.sin(theta) / scales

    # A = R(-angle) / s, written out for y pointing down.
    matrices = np.empty((len(theta), 2, 3))
    matrices[:, 0, 0] = cos
    matrices[:, 0, 1] = -sin
    matrices[:, 1, 0] = sin
    matrices[:, 1, 1] = cos

    # b = c - A (c + t)
    cx = (width - 1) / 2.0
    cy = (height - 1) / 2.0
    px = cx + translations[:, 0]
    py = cy + translations[:, 1]
    matrices[:, 0, 2] = cx - (cos * px - sin * py)
    matrices[:, 1, 2] = cy - (sin * px + cos * py)
    return matrices


# --------------------------------------------------------------------------------------------
# The kernel and its NumPy oracle
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _pixel(image: np.ndarray, y: int, x: int, fill: float) -> float:
    H, W = image.shape
    if 0 <= y < H and 0 <= x < W:
        return float(image[y, x])
    return fill


@njit(cache=True, parallel=True)
def _warp_affine_kernel(
    images: np.ndarray, matrices: np.ndarray, fill: float, to_uint8: bool, out: np.ndarray
) -> None:
    N, H, W = images.shape
    for n in prange(N):
        image = images[n]
        a, b, c = matrices[n, 0, 0], matrices[n, 0, 1], matrices[n, 0, 2]
        d, e, f = matrices[n, 1, 0], matrices[n, 1, 1], matrices[n, 1, 2]
        for y in range(H):
            for x in range(W):
                qx = a * x + b * y + c
                qy = d * x + e * y + f
                fx = np.floor(qx)
                fy = np.floor(qy)
                wx = qx - fx
                wy = qy - fy
                x0 = int(fx)
                y0 = int(fy)
                v00 = _pixel(image, y0, x0, fill)
                v01 = _pixel(image, y0, x0 + 1, fill)
                v10 = _pixel(image, y0 + 1, x0, fill)
                v11 = _pixel(image, y0 + 1, x0 + 1, fill)
                top = (1.0 - wx) * v00 + wx * v01
                bottom = (1.0 - wx) * v10 + wx * v11
                value = (1.0 - wy) * top + wy * bottom
                if to_uint8:
                    value = min(max(np.floor(value + 0.5), 0.0), 255.0)
                out[n, y, x] = value


def warp_affine(images: np.ndarray, matrices: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Resample each image n at q = matrices[n] @ (x, y, 1) (Numba, parallel over images).

    images: (N, H, W) uint8 or float; matrices: (N, 2, 3). Returns the same shape and dtype.
    """
    images = _check_images(images)
    matrices = np.ascontiguousarray(matrices, dtype=np.float64)
    _check_matrices(images, matrices)
    out = np.empty_like(images)
    _warp_affine_kernel(images, matrices, float(fill), images.dtype == np.uint8, out)
    return out


def warp_affine_reference(
    images: np.ndarray, matrices: np.ndarray, fill: float = 0.0
) -> np.ndarray:
    """Vectorised NumPy twin of `warp_affine` (same signature and result): the test oracle."""
    images = _check_images(images)
    matrices = np.asarray(matrices, dtype=np.float64)
    _check_matrices(images, matrices)
    N, H, W = images.shape

    rows, cols = np.mgrid[0:H, 0:W]
    a, b, c = (matrices[:, 0, k, None, None] for k in range(3))
    d, e, f = (matrices[:, 1, k, None, None] for k in range(3))
    qx = a * cols + b * rows + c  # (N, H, W)
    qy = d * cols + e * rows + f
    fx = np.floor(qx)
    fy = np.floor(qy)
    wx = qx - fx
    wy = qy - fy
    x0 = fx.astype(np.int64)
    y0 = fy.astype(np.int64)

    # A one-pixel border of `fill`; indices beyond it are clipped onto it.
    padded = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1)), constant_values=fill)
    batch = np.arange(N)[:, None, None]

    def pixel(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return padded[batch, np.clip(y, -1, H) + 1, np.clip(x, -1, W) + 1]

    top = (1.0 - wx) * pixel(y0, x0) + wx * pixel(y0, x0 + 1)
    bottom = (1.0 - wx) * pixel(y0 + 1, x0) + wx * pixel(y0 + 1, x0 + 1)
    value = (1.0 - wy) * top + wy * bottom
    if images.dtype == np.uint8:
        value = np.clip(np.floor(value + 0.5), 0.0, 255.0)
    return value.astype(images.dtype)


def _check_images(images: np.ndarray) -> np.ndarray:
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float, got {images.dtype}")
    return np.ascontiguousarray(images)


def _check_matrices(images: np.ndarray, matrices: np.ndarray) -> None:
    if matrices.shape != (len(images), 2, 3):
        raise ValueError(f"expected matrices of shape ({len(images)}, 2, 3), got {matrices.shape}")


def _check_per_image(images: np.ndarray, values: np.ndarray, name: str) -> np.ndarray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape != (len(images),):
        raise ValueError(f"expected {name} of shape ({len(images)},), got {values.shape}")
    return values


def _check_fields(
    images: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    cols = np.ascontiguousarray(cols, dtype=np.float64)
    if rows.shape != images.shape or cols.shape != images.shape:
        raise ValueError(
            f"expected displacements of shape {images.shape}, got {rows.shape} and {cols.shape}"
        )
    return rows, cols


# --------------------------------------------------------------------------------------------
# Random augmentation
# --------------------------------------------------------------------------------------------


def random_affine(
    images: np.ndarray,
    rng: np.random.Generator,
    degrees: float | tuple[float, float] = 10,
    scale: tuple[float, float] = (0.9, 1.1),
    translate: float = 2.0,
    fill: float = 0.0,
) -> np.ndarray:
    """Rotate, scale and shift each image by its own random amount.

    Per image: angle ~ U(-degrees, degrees) (or U(*degrees) for a pair), s ~ U(*scale),
    dx, dy ~ U(-translate, translate) pixels. images: (N, H, W) or (N, 1, H, W), uint8 or
    float; the result has the same shape and dtype. The draws come from `rng` only, so the
    same generator state gives the same output.
    """
    shape = images.shape
    if images.ndim == 4 and shape[1] == 1:
        images = images.reshape(shape[0], shape[2], shape[3])
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {shape}")
    n, height, width = images.shape

    low_deg, high_deg = (-degrees, degrees) if np.isscalar(degrees) else degrees
    angles = rng.uniform(low_deg, high_deg, size=n)
    scales = rng.uniform(scale[0], scale[1], size=n)
    translations = rng.uniform(-translate, translate, size=(n, 2))

    matrices = inverse_affine_matrices(angles, scales, translations, height, width)
    return warp_affine(images, matrices, fill).reshape(shape)


class RandomAffine:
    """`random_affine` with fixed settings, callable as `augment(images, rng)` (the DataLoader
    hook): rotation ±degrees, scale in `scale`, shift ±translate pixels."""

    def __init__(
        self,
        degrees: float | tuple[float, float] = 10,
        scale: tuple[float, float] = (0.9, 1.1),
        translate: float = 2.0,
        fill: float = 0.0,
    ) -> None:
        self.degrees = degrees
        self.scale = scale
        self.translate = translate
        self.fill = fill

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_affine(images, rng, self.degrees, self.scale, self.translate, self.fill)

    def __repr__(self) -> str:
        return (
            f"RandomAffine(degrees={self.degrees}, scale={self.scale}, "
            f"translate={self.translate}, fill={self.fill})"
        )


# --------------------------------------------------------------------------------------------
# Stroke width: grey dilation and erosion by a disk
# --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _grey_morphology_kernel(images: np.ndarray, radii: np.ndarray, out: np.ndarray) -> None:
    N, H, W = images.shape
    for n in prange(N):
        r = abs(radii[n])
        dilate = radii[n] > 0
        low = int(np.floor(r))
        high = int(np.ceil(r))
        t = r - low
        for y in range(H):
            for x in range(W):
                # Outside the image is background (0), for erosion as for dilation.
                lo_val = float(images[n, y, x])
                hi_val = lo_val
                for dy in range(-high, high + 1):
                    for dx in range(-high, high + 1):
                        d2 = dy * dy + dx * dx
                        if d2 > high * high:
                            continue
                        yy = y + dy
                        xx = x + dx
                        v = 0.0
                        if 0 <= yy < H and 0 <= xx < W:
                            v = float(images[n, yy, xx])
                        if dilate:
                            hi_val = max(hi_val, v)
                            if d2 <= low * low:
                                lo_val = max(lo_val, v)
                        else:
                            hi_val = min(hi_val, v)
                            if d2 <= low * low:
                                lo_val = min(lo_val, v)
                out[n, y, x] = (1.0 - t) * lo_val + t * hi_val


def grey_morphology(images: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Grey dilation (radius > 0) or erosion (radius < 0) of each image by a disk (Numba).

    The disk of radius R holds the offsets with dy^2 + dx^2 <= R^2. A fractional radius r
    blends the disks of radius floor(|r|) and ceil(|r|):

        out = (1 - t) * morph(image, floor(|r|)) + t * morph(image, ceil(|r|)),  t = |r| - floor

    so that stroke widths change smoothly with r (by about 2 r px). images: (N, H, W) uint8 or
    float; radii: (N,). Returns float64 (N, H, W) on the images' scale.
    """
    images = _check_images(images)
    radii = _check_per_image(images, radii, "radii")
    out = np.empty(images.shape, dtype=np.float64)
    _grey_morphology_kernel(images, radii, out)
    return out


def grey_morphology_reference(images: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """NumPy twin of `grey_morphology` (same signature and result): the test oracle."""
    images = _check_images(images).astype(np.float64)
    radii = _check_per_image(images, radii, "radii")
    N = len(images)
    out = np.empty_like(images)
    for n in range(N):
        r = abs(radii[n])
        low, high = int(np.floor(r)), int(np.ceil(r))
        reduce = np.maximum if radii[n] > 0 else np.minimum
        padded = np.pad(images[n], high)
        t = r - low
        out[n] = (1.0 - t) * _disk_reduce(padded, high, low, reduce) + t * _disk_reduce(
            padded, high, high, reduce
        )
    return out


def _disk_reduce(padded: np.ndarray, pad: int, radius: int, reduce: np.ufunc) -> np.ndarray:
    """`reduce` (np.maximum or np.minimum) over the disk of `radius` about each pixel of an
    image padded by `pad` >= radius pixels of 0."""
    H, W = padded.shape[0] - 2 * pad, padded.shape[1] - 2 * pad
    result = padded[pad : pad + H, pad : pad + W].copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                result = reduce(result, padded[pad + dy : pad + dy + H, pad + dx : pad + dx + W])
    return result


# --------------------------------------------------------------------------------------------
# Elastic distortion: a smooth random displacement field
# --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _warp_displacement_kernel(
    images: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray
) -> None:
    N, H, W = images.shape
    for n in prange(N):
        image = images[n]
        for y in range(H):
            for x in range(W):
                qy = y + rows[n, y, x]
                qx = x + cols[n, y, x]
                fy = np.floor(qy)
                fx = np.floor(qx)
                wy = qy - fy
                wx = qx - fx
                y0 = int(fy)
                x0 = int(fx)
                top = (1.0 - wx) * _pixel(image, y0, x0, 0.0) + wx * _pixel(image, y0, x0 + 1, 0.0)
                bottom = (1.0 - wx) * _pixel(image, y0 + 1, x0, 0.0) + wx * _pixel(
                    image, y0 + 1, x0 + 1, 0.0
                )
                out[n, y, x] = (1.0 - wy) * top + wy * bottom


def warp_displacement(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[n, y, x] = images[n] sampled bilinearly at (y + rows[n, y, x], x + cols[n, y, x]).

    Pixels outside read as 0 (Numba, parallel over images). images: (N, H, W) uint8 or float;
    rows, cols: (N, H, W) displacements in pixels. Returns float64 (N, H, W).
    """
    images = _check_images(images)
    rows, cols = _check_fields(images, rows, cols)
    out = np.empty(images.shape, dtype=np.float64)
    _warp_displacement_kernel(images, rows, cols, out)
    return out


def warp_displacement_reference(
    images: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Vectorised NumPy twin of `warp_displacement`: the test oracle."""
    images = _check_images(images)
    rows, cols = _check_fields(images, rows, cols)
    N, H, W = images.shape
    grid_r, grid_c = np.mgrid[0:H, 0:W]
    qy = grid_r + rows
    qx = grid_c + cols
    fy, fx = np.floor(qy), np.floor(qx)
    wy, wx = qy - fy, qx - fx
    y0, x0 = fy.astype(np.int64), fx.astype(np.int64)
    padded = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    batch = np.arange(N)[:, None, None]

    def pixel(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return padded[batch, np.clip(y, -1, H) + 1, np.clip(x, -1, W) + 1]

    top = (1.0 - wx) * pixel(y0, x0) + wx * pixel(y0, x0 + 1)
    bottom = (1.0 - wx) * pixel(y0 + 1, x0) + wx * pixel(y0 + 1, x0 + 1)
    return (1.0 - wy) * top + wy * bottom


def gaussian_matrices(size: int, sigmas: np.ndarray) -> np.ndarray:
    """(N, size, size) matrices G with (G @ f) = f smoothed by a Gaussian of sigma[n] along
    its first axis; each row sums to 1 (edges renormalised)."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    sigmas = np.asarray(sigmas, dtype=np.float64)[:, None, None]
    weights = np.exp(-0.5 * (offsets / sigmas) ** 2)
    return weights / weights.sum(axis=2, keepdims=True)


def elastic_fields(
    n: int, height: int, width: int, alphas: np.ndarray, rng: np.random.Generator, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Simard et al.'s displacement fields (rows, cols), each (n, H, W):

    d = alpha * (G_rows @ U(-1, 1) @ G_cols.T)     G: Gaussian smoothing of `sigma` px
    """
    alphas = np.asarray(alphas, dtype=np.float64)[:, None, None]
    smooth_r = gaussian_matrices(height, np.array([sigma]))[0]
    smooth_c = gaussian_matrices(width, np.array([sigma]))[0]
    noise = rng.uniform(-1.0, 1.0, size=(2 * n, height, width))
    # Two plain matrix products over the whole stack, not 2n small ones.
    fields = (noise.reshape(-1, width) @ smooth_c.T).reshape(2 * n, height, width)
    fields = smooth_r @ fields.transpose(1, 0, 2).reshape(height, -1)
    fields = fields.reshape(height, 2 * n, width).transpose(1, 0, 2)
    return alphas * fields[:n], alphas * fields[n:]


# --------------------------------------------------------------------------------------------
# Blur and low resolution: separable linear maps
# --------------------------------------------------------------------------------------------


def separable(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """out[n] = matrices[n] @ images[n] @ matrices[n].T (square images), as float64."""
    return matrices @ images.astype(np.float64) @ np.swapaxes(matrices, 1, 2)


def blur_matrices(size: int, sigmas: np.ndarray) -> np.ndarray:
    """(N, size, size): a Gaussian blur of sigma[n] px as `separable`'s matrices."""
    return gaussian_matrices(size, sigmas)


def low_resolution_matrices(
    size: int, sides: np.ndarray, whole_pixels: np.ndarray | bool = False
) -> np.ndarray:
    """(N, size, size): down to sides[n] pixels, bilinear back up.

    Down, D (s, size), by area (whole_pixels[n] False): small pixel i averages the source
    pixels under [i, i + 1) * size / s, weighted by overlap. By whole pixels (True): small
    pixel i averages, with equal weights, the source pixels whose centres fall in
    (i, i + 1] * size / s, as Pillow's BOX filter does (at 28 -> 8, cells of 4 and 3 pixels);
    that is how many programs shrink a picture. Up, U (size, s): pixel x reads the small
    image at u = (x + 0.5) * s / size - 0.5 (pixel centres aligned), clipped to [0, s - 1],
    blending its two neighbours linearly. The matrix is U @ D.
    """
    sides = np.asarray(sides, dtype=np.int64)
    whole_pixels = np.broadcast_to(np.asarray(whole_pixels, dtype=bool), sides.shape)
    out = np.empty((len(sides), size, size))
    cache: dict[tuple[int, bool], np.ndarray] = {}
    for n, (s, whole) in enumerate(zip(sides.tolist(), whole_pixels.tolist(), strict=True)):
        if (s, whole) not in cache:
            down = _whole_pixel_cells(size, s) if whole else _area_cells(size, s)
            cache[s, whole] = _bilinear_up(size, s) @ down
        out[n] = cache[s, whole]
    return out


def _area_cells(size: int, side: int) -> np.ndarray:
    cell = size / side
    edges = np.arange(side + 1) * cell
    left, right = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(right, pixels + 1) - np.maximum(left, pixels), 0.0, None)
    return overlap / cell


def _whole_pixel_cells(size: int, side: int) -> np.ndarray:
    # Pillow's BOX filter step for step (its window, then the filter's half-open support),
    # so that the ties at cell edges fall as Pillow's do: tests/test_augment.py compares.
    scale = size / side
    centre = (np.arange(side) + 0.5) * scale
    first = np.maximum((centre - scale / 2 + 0.5).astype(np.int64), 0)[:, None]
    stop = np.minimum((centre + scale / 2 + 0.5).astype(np.int64), size)[:, None]
    pixels = np.arange(size)[None, :]
    t = (pixels - centre[:, None] + 0.5) / scale
    inside = (pixels >= first) & (pixels < stop) & (t > -0.5) & (t <= 0.5)
    return inside / inside.sum(axis=1, keepdims=True)


def _bilinear_up(size: int, side: int) -> np.ndarray:
    u = np.clip((np.arange(size) + 0.5) * side / size - 0.5, 0.0, side - 1)
    u0 = np.floor(u).astype(np.int64)
    u1 = np.minimum(u0 + 1, side - 1)
    up = np.zeros((size, side))
    up[np.arange(size), u0] += 1.0 - (u - u0)
    up[np.arange(size), u1] += u - u0
    return up


# --------------------------------------------------------------------------------------------
# The preparation's geometry, for a batch
# --------------------------------------------------------------------------------------------


def prepare_geometry(images: np.ndarray) -> np.ndarray:
    """Each image as imageprep.prepare_image would place it: ink stretched so its peak is 255,
    ink under NOISE_FLOOR of the peak dropped, the ink box's longer side scaled to DIGIT_BOX
    px and the centre of mass moved to (14, 14) by a whole-pixel shift, in one affine warp.
    Per axis, with the box starting at pixel b and its centre of mass at m:

        s = DIGIT_BOX / max(box height, box width)
        m' = (m - b + 0.5) s - 0.5                the centre in the scaled box (pixel centres)
        t = floor(14 - m' + 0.5)                  where the scaled box is pasted
        q = b + (p' - t + 0.5) / s - 0.5          where output pixel p' samples

    so that an MNIST digit (box 20 px, centre at 14) maps onto itself without resampling.
    A dilated or blurred digit has a larger box than its sharp self, so the preparation shrinks
    it; training on the pictures as prepared shows the model what it is asked at test time.
    images: (N, H, W) float on the 0..255 scale; blank images stay blank. Returns float64.
    """
    x = np.array(images, dtype=np.float64)
    n, height, width = x.shape
    peak = x.max(axis=(1, 2))
    inked = peak > 0
    x[inked] *= (255.0 / peak[inked])[:, None, None]
    x[x < NOISE_FLOOR * 255.0] = 0.0

    rows_inked = x.any(axis=2)
    cols_inked = x.any(axis=1)
    box_top = rows_inked.argmax(axis=1)
    box_left = cols_inked.argmax(axis=1)
    box_height = height - box_top - rows_inked[:, ::-1].argmax(axis=1)
    box_width = width - box_left - cols_inked[:, ::-1].argmax(axis=1)
    scale = DIGIT_BOX / np.maximum(np.maximum(box_height, box_width), 1)

    mass = np.maximum(x.sum(axis=(1, 2)), 1e-12)
    centre_row = x.sum(axis=2) @ np.arange(height) / mass
    centre_col = x.sum(axis=1) @ np.arange(width) / mass
    matrices = np.zeros((n, 2, 3))
    matrices[:, 0, 0] = 1.0 / scale
    matrices[:, 1, 1] = 1.0 / scale
    for axis, start, centre in ((0, box_left, centre_col), (1, box_top, centre_row)):
        pasted_at = np.floor(IMAGE_SIZE // 2 - ((centre - start + 0.5) * scale - 0.5) + 0.5)
        matrices[:, axis, 2] = start + (0.5 - pasted_at) / scale - 0.5
    matrices[~inked] = np.eye(2, 3)
    return warp_affine(x, matrices)


def restore_strokes(images: np.ndarray) -> np.ndarray:
    """imageprep's stroke restoration for a batch placed by `prepare_geometry` (box 20 px, so
    widths are the output's): strokes thinner than MIN_STROKE dilated by a disk to about
    TARGET_STROKE; sharp strokes wider than MAX_STROKE (median ink at least SOFT_INK) cut
    under THICK_CUT and eroded to about MAX_STROKE, so that a digit thickened in training
    has its loops reopened as a thick test picture has; then placed again. A radius r changes
    a width by about 2 r. images: (N, H, W) float on the 0..255 scale. Returns float64.
    """
    x = np.array(images, dtype=np.float64)
    ink = x / 255.0
    widths = stroke_widths(ink >= 0.5)
    median = _median_ink(ink)
    thin = (widths > 0) & (widths < imageprep.MIN_STROKE)
    thick = (median >= imageprep.SOFT_INK) & (widths > imageprep.MAX_STROKE)

    radii = np.zeros(len(x))
    radii[thin] = (imageprep.TARGET_STROKE - widths[thin]) / 2
    cut = np.clip((ink[thick] - imageprep.THICK_CUT) / (1 - imageprep.THICK_CUT), 0.0, 1.0)
    x[thick] = 255.0 * cut
    cut_widths = stroke_widths(cut >= 0.5)
    radii[thick] = -np.maximum(cut_widths - imageprep.MAX_STROKE, 0.0) / 2

    changed = radii != 0
    if not changed.any():
        return x
    restored = grey_morphology(x[changed], radii[changed])
    # A blob that erodes away is left as it was cut, as the preparation leaves it.
    kept = restored.max(axis=(1, 2)) > 0
    which = np.flatnonzero(changed)[kept]
    x[which] = prepare_geometry(restored[kept])
    return x


@njit(cache=True, parallel=True)
def _stroke_widths_kernel(masks: np.ndarray, out: np.ndarray) -> None:
    N, H, W = masks.shape
    for n in prange(N):
        area = 0
        straight = 0  # ink/paper transitions along rows and columns
        diagonal = 0  # ... and along both diagonals
        # Every pixel of the mask padded by one of paper, against its right, lower, lower-right
        # and lower-left neighbours.
        for y in range(-1, H):
            for x in range(-1, W + 1):
                here = y >= 0 and 0 <= x < W and masks[n, y, x]
                area += here
                right = y >= 0 and x + 1 < W and masks[n, y, x + 1]
                below = y + 1 < H and 0 <= x < W and masks[n, y + 1, x]
                below_right = y + 1 < H and 0 <= x + 1 < W and masks[n, y + 1, x + 1]
                below_left = y + 1 < H and 0 <= x - 1 < W and masks[n, y + 1, x - 1]
                straight += (x < W and here != right) + (here != below)
                diagonal += (x < W and here != below_right) + (x >= 0 and here != below_left)
        perimeter = np.pi / 8 * (straight + diagonal / np.sqrt(2))
        out[n] = 2 * area / perimeter if area else 0.0


def stroke_widths(masks: np.ndarray) -> np.ndarray:
    """(N,): imageprep.stroke_width of each boolean mask of (N, H, W), in one Numba pass."""
    masks = np.ascontiguousarray(masks, dtype=np.bool_)
    out = np.empty(len(masks))
    _stroke_widths_kernel(masks, out)
    return out


def stroke_widths_reference(masks: np.ndarray) -> np.ndarray:
    """NumPy twin of `stroke_widths`: imageprep.stroke_width, one mask at a time."""
    return np.array([imageprep.stroke_width(mask) for mask in masks], dtype=np.float64)


def _median_ink(ink: np.ndarray) -> np.ndarray:
    """(N,): the median of each image's non-zero pixels (0 for a blank image). Sorted, an
    image's k ink pixels are its last k values."""
    flat = np.sort(ink.reshape(len(ink), -1), axis=1)
    size = flat.shape[1]
    count = np.count_nonzero(flat, axis=1)
    low = np.minimum(size - count + (count - 1) // 2, size - 1)[:, None]
    high = np.minimum(size - count + count // 2, size - 1)[:, None]
    median = (np.take_along_axis(flat, low, 1) + np.take_along_axis(flat, high, 1)) / 2
    return np.where(count > 0, median[:, 0], 0.0)


# --------------------------------------------------------------------------------------------
# The robust recipe
# --------------------------------------------------------------------------------------------


class RobustAugment:
    """`affine` (none if None), then each image, independently with probability p of each step
    (one p for all, or four in the order below; by default 0.25, 0.4, 0.25, 0.4):

        elastic    alpha ~ U(0, max_alpha), sigma 4 px
        stroke     radius ~ U(-max_erode, max_dilate) px (negative: erosion)
        blur       sigma ~ U(0.5, max_sigma) px
        lowres     side ~ U{min_side, ..., max_side} px, by whole pixels (as Pillow's BOX
                   filter) with probability whole_pixels, else by area

    Strokes and low resolution, the hardest for the CNN, come more often than the others.

    in that order (strokes change on the sharp digit, then it is softened). With
    `warp_lowres` False, the images chosen for low resolution skip `affine` (the others take
    it as before): a warp's rotation and rescale on top of a trip to 7 or 8 px makes digits
    harder than a low-resolution picture of a digit is. With `prepare`,
    the images that took any step are then placed as the preparation places a user's picture
    (`prepare_geometry`): the model trains on what it reads at test time. Callable as
    `augment(images, rng)` like RandomAffine; uint8 in, uint8 out (rounded half up).
    """

    def __init__(
        self,
        p: float | tuple[float, float, float, float] = (0.25, 0.4, 0.25, 0.4),
        max_alpha: float = 34.0,
        max_erode: float = 0.8,
        max_dilate: float = 2.5,
        max_sigma: float = 2.0,
        min_side: int = 7,
        max_side: int = 12,
        whole_pixels: float = 0.0,
        prepare: bool = True,
        affine: RandomAffine | None = None,
        warp_lowres: bool = True,
    ) -> None:
        self.p = p
        self.max_alpha = max_alpha
        self.max_erode = max_erode
        self.max_dilate = max_dilate
        self.max_sigma = max_sigma
        self.min_side = min_side
        self.max_side = max_side
        self.whole_pixels = whole_pixels
        self.prepare = prepare
        self.affine = affine
        self.warp_lowres = warp_lowres

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shape = images.shape
        if images.ndim == 4 and shape[1] == 1:
            images = images.reshape(shape[0], shape[2], shape[3])
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"expected square images (N, H, W) or (N, 1, H, W), got {shape}")
        n, size, _ = images.shape
        chosen = rng.random((4, n)) < np.broadcast_to(self.p, 4)[:, None]
        alphas = rng.uniform(0.0, self.max_alpha, n)
        radii = rng.uniform(-self.max_erode, self.max_dilate, n)
        sigmas = rng.uniform(0.5, self.max_sigma, n)
        sides = rng.integers(self.min_side, self.max_side + 1, n)
        # Drawn only when asked for, so that the recipes without it keep their random stream
        # (and their runs, bit for bit).
        whole = rng.random(n) < self.whole_pixels if self.whole_pixels > 0 else False

        if self.affine is not None:
            # Every image draws its warp either way, so that the random stream, and with it
            # every other image, is the same as with warp_lowres.
            warped = self.affine(images, rng)
            if not self.warp_lowres:
                warped[chosen[3]] = images[chosen[3]]
            images = warped
        x = images.astype(np.float64)
        if chosen[0].any():
            i = chosen[0]
            field_r, field_c = elastic_fields(int(i.sum()), size, size, alphas[i], rng, sigma=4.0)
            x[i] = warp_displacement(x[i], field_r, field_c)
        if chosen[1].any():
            i = chosen[1]
            x[i] = grey_morphology(x[i], radii[i])
        linear = chosen[2] | chosen[3]
        if linear.any():
            matrices = np.broadcast_to(np.eye(size), (n, size, size)).copy()
            matrices[chosen[2]] = blur_matrices(size, sigmas[chosen[2]])
            lowres = low_resolution_matrices(
                size, sides[chosen[3]], np.broadcast_to(whole, n)[chosen[3]]
            )
            matrices[chosen[3]] = lowres @ matrices[chosen[3]]
            x[linear] = separable(x[linear], matrices[linear])
        changed = chosen.any(axis=0)
        if self.prepare and changed.any():
            x[changed] = restore_strokes(prepare_geometry(x[changed]))
        out = np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)
        return out.reshape(shape)

    def __repr__(self) -> str:
        return (
            f"RobustAugment(p={self.p}, max_alpha={self.max_alpha}, "
            f"max_erode={self.max_erode}, max_dilate={self.max_dilate}, "
            f"max_sigma={self.max_sigma}, min_side={self.min_side}, max_side={self.max_side}, "
            f"whole_pixels={self.whole_pixels}, prepare={self.prepare}, affine={self.affine!r}, "
            f"warp_lowres={self.warp_lowres})"
        )
