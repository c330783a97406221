"""Turn any picture of a digit into a 28x28 input that looks like an MNIST digit.

The models only ever saw MNIST, so a drawing must be prepared the way MNIST itself was made
(LeCun et al.): the digit is cut out, scaled with anti-aliasing so that its longer side is
20 px (aspect ratio kept), and placed in a 28x28 field so that its centre of mass sits at the
centre, (row 14, column 14). Ink is bright (1) on a black (0) background.

    bytes / file / PIL image / array
      -> decode_image        header checked for size first, then pixels decoded (first frame)
      -> to_grayscale_ink    (H, W) float32, 1 = ink: alpha composited onto paper, dark ink on
                             light paper inverted, paper level subtracted
      -> prepare_image       contrast stretched, faint noise dropped, cropped to the ink,
                             thin strokes thickened and thick sharp ones thinned, longer side
                             scaled to 20 px, centred by mass

scratchnet.mnist.inference takes the prepared digit from there to the model.

Measured on the MNIST test set with `stroke_width` below: strokes are 2.3 px wide (median,
counting pixels >= 0.5) and 95% are wider than 1.55 px; the centre of mass is (14.0, 14.0)
+- 0.3 px (whole-pixel shifts). A digit drawn with a thin brush on a large canvas would come
out far thinner than that (a 5 px brush on a 280 px canvas gives 0.5 px strokes), so strokes
that would be thinner than MIN_STROKE are widened with a max filter to the MNIST median before
the final resize. Only MNIST's thinnest few percent reach that path, and it leaves an MLP's
accuracy on them unchanged; on thin-brush drawings it is what makes them readable.

The other way round, strokes wider than MAX_STROKE, 3.5 px, are eroded with a min filter to
that width, after a cut of their ink fainter than THICK_CUT (a loop thickened at low
resolution fills with such grey): loops that were nearly closed open again. A fat marker or a
3x dilated digit gives 5 to 8 px; 11% of MNIST's test digits are over 3.5 px, and thinning
them costs the bundled models nothing on the robustness table's untransformed row (3.0 px,
tried, does).

A blurred or low-resolution picture has soft ink, and its strokes measure wide too: after
stretching, the median ink pixel of an MNIST digit is 0.91 (5th percentile 0.74), of a digit
blurred by sigma 1.5 only 0.55 (2% of MNIST's digits are under SOFT_INK, 0.7). Eroding such
strokes only loses the digit, so soft ink is never thinned. Low contrast is the stretch's
job: the strongest ink becomes 1 whatever the paper. A levels step that sharpened soft ink,

    v' = clip((v - NOISE_FLOOR) / (median - NOISE_FLOOR), 0, 1)

was tried and left out: it lifted the CNN trained without blur (94.8% -> 97.4% at blur sigma
1.5), but cost the linear model 2 points there and the CNN trained with blur
(`python -m scratchnet.train --augment-extra`) 1 to 3 points on blur and low resolution,
which that CNN reads best as they are. The robustness table (scratchnet.mnist.robustness)
measures all of this.

Both the `predict` CLI and the REST server use this module; its errors are `ImageError`s (a
`ValueError`) whose messages can be shown to the user as they are.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from scratchnet.mnist import prepkernels

IMAGE_SIZE = 28  # the MNIST field
DIGIT_BOX = 20  # the longer side of the digit inside it
DEFAULT_MAX_PIXELS = 25_000_000  # 25 megapixels, e.g. 5000x5000
# Only these decoders ever see untrusted bytes (never EPS, which runs Ghostscript). The JPEG
# decoder also opens the multi-picture JPEGs (MPO) of some cameras.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

MIN_CONTRAST = 0.1  # ink must differ from the paper by 10% of the full range
NOISE_FLOOR = 0.2  # after stretching the ink to 1, fainter pixels count as paper
MIN_STROKE = 1.6  # strokes thinner than this (px, at 28x28 scale) are thickened ...
TARGET_STROKE = 2.3  # ... to this width, MNIST's median
MAX_STROKE = 3.5  # strokes wider than this are thinned to it
SOFT_INK = 0.7  # ink whose median pixel is fainter than this is soft (blurred): never thinned
THICK_CUT = 0.5  # thick sharp strokes lose their ink fainter than this before thinning
_WORK_SCALE = 4  # thickening and thinning run at 4x the output resolution (80 px)

_OPAQUE = 0.5  # alpha above which a pixel counts as painted
_SHEET_CONTRAST = 0.35  # an opaque pixel this far from the typical opaque colour is ink on a sheet
_SHEET_FRACTION = 0.02  # ... and if this many opaque pixels are, the opaque part is a sheet
_STROKES_COVER = 0.5  # strokes on a transparent background cover less than this of the image

ImageInput = Image.Image | np.ndarray | bytes | bytearray | memoryview | str | Path


class ImageError(ValueError):
    """An image that cannot be turned into a digit. The message is meant for the user."""


class ImageDecodeError(ImageError):
    """Not an image, a truncated one, or a format Pillow cannot read."""


class ImageTooLargeError(ImageError):
    """An image whose header announces too many pixels (for example a decompression bomb)."""


class NoInkError(ImageError):
    """A blank image: nothing stands out from the background."""

    def __init__(self, message: str = "the image has no ink: draw or upload a digit") -> None:
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_image(data: bytes | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes (PNG, JPEG, GIF, BMP, WEBP or TIFF) into a loaded PIL image.

    The size is checked from the header, before any pixel is decoded: Pillow's `Image.open`
    only reads the header, so a 100000x100000 PNG of a few hundred bytes is rejected with
    ImageTooLargeError without allocating its pixels. Multi-frame images (GIF, TIFF) give
    their first frame. JPEG photos are turned upright according to their EXIF orientation.

    `data` may also be what `Image.open(file, formats=FORMATS)` returned, before anything
    loaded it: the server reads the header once for its memory budget and hands the same
    image on, so that the header is not parsed twice. Then only the checks and the pixels
    are left to do here.

    Raises ImageDecodeError for anything Pillow cannot read, ImageTooLargeError past max_pixels.
    """
    # Pillow raises many kinds of exception on hostile input (OSError, SyntaxError, ValueError,
    # struct.error, EOFError, ...): while parsing untrusted bytes, every one means "not an image".
    if isinstance(data, Image.Image):
        img = data
    elif not data:
        raise ImageDecodeError("cannot decode image: the file is empty")
    else:
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"image is too large: {exc}") from None
        except Exception as exc:
            raise ImageDecodeError(f"cannot decode image: {_reason(exc)}") from None

    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is too large: {width}x{height} pixels, the limit is "
            f"{max_pixels:,} pixels ({max_pixels / 1e6:g} megapixels)"
        )
    if width == 0 or height == 0:
        raise ImageDecodeError(f"cannot decode image: it is {width}x{height} pixels")

    try:
        img.load()
        if img.format == "JPEG" and img.getexif().get(0x0112, 1) != 1:
            img = ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image is too large: {exc}") from None
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode image: {_reason(exc)}") from None
    return img


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line, whatever the decoder said
    if "cannot identify image file" in text:
        return "not an image, or not PNG, JPEG, GIF, BMP, WEBP or TIFF"
    return text or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Ink


def to_grayscale_ink(image: Image.Image | np.ndarray) -> np.ndarray:
    """An (H, W) float32 ink map in [0, 1]: 1 is ink of full contrast, 0 is paper.

    - Colour becomes luminance; 16-bit and float modes are scaled to [0, 1].
    - Transparent pixels are paper. When the painted (opaque) pixels are strokes of one colour,
      as in a canvas drawing without a background, the paper is chosen to contrast with them:
      white under dark strokes, black under light ones. When the painted part is itself a sheet
      with ink on it, the paper is the sheet's colour.
    - The paper level is the median of the image border. On light paper the image is inverted,
      so that dark-on-light and light-on-dark drawings give the same ink map.
    """
    return _ink_map(*_luminance_alpha(image))


def _ink_map(lum: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """to_grayscale_ink from float32 luminance and alpha (or None) in [0, 1]."""
    if alpha is not None and alpha.min() < 1.0:
        paper = _paper_under(lum, alpha)
        lum = alpha * (lum - paper) + paper  # = alpha * lum + (1 - alpha) * paper

    return _ink_from_luminance(lum, float(np.median(_border(lum))))


def _ink_from_luminance(lum: np.ndarray, background: float) -> np.ndarray:
    """Ink in [0, 1] from luminance and the paper's level: inverted on light paper."""
    if background > 0.5:
        ink = background - lum
        ink /= background
    else:
        ink = lum - background
        ink /= max(1.0 - background, 1e-6)
    return np.clip(ink, 0.0, 1.0, out=ink)


def _luminance_alpha(image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Luminance and alpha (None when there is none) as float32 arrays in [0, 1]."""
    if isinstance(image, np.ndarray):
        return _array_luminance_alpha(image)

    if _is_wide(image):
        return _scale_to_unit(np.asarray(image, dtype=np.float32)), None
    return _to_unit(*_luminance_alpha8(image))


def _to_unit(*planes8: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    """8-bit planes (or None) as float32 in [0, 1]."""
    return tuple(None if a is None else a.astype(np.float32) / 255.0 for a in planes8)


def _is_wide(image: Image.Image) -> bool:
    """I;16 (16-bit PNG), I (32-bit int) and F (float) images: more than 8 bits a sample."""
    return image.mode.startswith("I") or image.mode == "F"


def _luminance_alpha8(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Pillow's 8-bit luminance (L) and alpha (None when there is none) of an image that is
    not _is_wide: uint8 arrays."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("RGBa", "PA"):
        image = image.convert("RGBA")
    elif mode == "La":
        image = image.convert("LA")
    elif mode not in ("1", "L", "LA", "RGB", "RGBA"):  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        image = image.convert("RGB")
    lum = np.asarray(image.convert("L"))
    alpha = np.asarray(image.getchannel("A")) if image.mode in ("LA", "RGBA") else None
    return lum, alpha


def _array_luminance_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The same for a NumPy image: (H, W), (H, W, 1|3|4), or a squeezable (1, 1, H, W)."""
    a = np.asarray(array)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageDecodeError(
            f"cannot use an array of shape {array.shape} as an image: expected (H, W), "
            "(H, W, 3) or (H, W, 4)"
        )
    if a.size == 0:
        raise ImageDecodeError(f"cannot use an empty array of shape {array.shape} as an image")

    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = _scale_to_unit(a.astype(np.float32))

    if a.ndim == 2:
        return a, None
    lum = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114  # ITU-R 601, as Pillow
    alpha = np.ascontiguousarray(a[..., 3]) if a.shape[-1] == 4 else None
    return lum.astype(np.float32), alpha


def _scale_to_unit(a: np.ndarray) -> np.ndarray:
    """Map data of unknown range to [0, 1]: [0, 1] is kept, else 8-bit, 16-bit or min-max."""
    low, high = float(a.min()), float(a.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ImageDecodeError("cannot use an image that contains NaN or infinity")
    if low >= 0.0 and high <= 1.0:
        return a
    if low >= 0.0 and high <= 255.0:
        return a / 255.0
    if low >= 0.0 and high <= 65535.0:
        return a / 65535.0
    return (a - low) / max(high - low, 1e-12)


def _paper_under(lum: np.ndarray, alpha: np.ndarray) -> float:
    """The paper colour to composite a partly transparent image onto.

    A drawing exported without a background has strokes of one colour on transparent pixels:
    the paper must contrast with them (white under black ink, black under white ink), or the
    ink would vanish. A sheet of paper with transparent margins (or a few transparent pixels)
    must get the sheet's colour. Strokes alone cover less than half of the image and have one
    colour; a sheet covers more, or has ink of another colour on it.
    """
    if alpha.max() == 0:
        return 0.0  # nothing is painted: any paper gives a blank image
    painted = lum[alpha >= _OPAQUE * alpha.max()]
    typical = float(np.median(painted))
    has_ink_on_it = np.mean(np.abs(painted - typical) > _SHEET_CONTRAST) > _SHEET_FRACTION
    if has_ink_on_it or painted.size > _STROKES_COVER * lum.size:
        return typical
    return 1.0 if typical < 0.5 else 0.0


def _border(a: np.ndarray) -> np.ndarray:
    """The pixels of a frame about 2% of the image wide (at least one pixel)."""
    height, width = a.shape
    t = max(1, min(height, width) // 50)
    return np.concatenate(
        [a[:t].ravel(), a[-t:].ravel(), a[t:-t, :t].ravel(), a[t:-t, -t:].ravel()]
    )


# ---------------------------------------------------------------------------------------------
# The MNIST recipe


def prepare_image(
    image: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    restore: bool = True,
) -> np.ndarray:
    """A (28, 28) float32 digit in [0, 1], ink bright on 0, prepared as MNIST digits were.

    `image` is a PIL image, an array (see `to_grayscale_ink`), encoded bytes, or a file path.
    Steps: ink map -> stretch so the strongest ink is 1 -> drop pixels under NOISE_FLOOR ->
    crop to the ink's bounding box -> (if `restore`) thicken strokes thinner than MIN_STROKE,
    thin sharp strokes wider than MAX_STROKE -> resize (Lanczos, anti-aliased) so the longer
    side is 20 px -> paste into 28x28 so the centre of mass is at (14, 14).

    Raises NoInkError for a blank image, ImageDecodeError / ImageTooLargeError for bad input,
    and FileNotFoundError (an OSError) for a missing file.
    """
    if isinstance(image, str | Path):
        image = Path(image).read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        image = decode_image(bytes(image), max_pixels=max_pixels)

    digit = _cropped_ink(image)
    if restore:
        digit = _restore_strokes(digit)
    digit = _resize_longer_side(digit, DIGIT_BOX)
    peak = float(digit.max())
    if not peak > 0:  # specks that vanish when shrunk
        raise NoInkError()
    digit /= peak
    return _centre_by_mass(digit)


def _cropped_ink(image: Image.Image | np.ndarray) -> np.ndarray:
    """The ink map, stretched so that its strongest ink is 1, pixels under NOISE_FLOOR
    dropped, cropped to the ink. Raises NoInkError when no ink reaches MIN_CONTRAST."""
    if isinstance(image, Image.Image) and not _is_wide(image):
        lum8, alpha8 = _luminance_alpha8(image)
        if alpha8 is None or alpha8.min() == 255:  # opaque: nothing to composite
            return _cropped_ink8(lum8)
        ink = _ink_map(*_to_unit(lum8, alpha8))
    else:
        ink = to_grayscale_ink(image)
    return _crop_to_ink(_stretched(ink, float(ink.max())))


def _stretched(ink: np.ndarray, peak: float) -> np.ndarray:
    """ink / peak, its values under NOISE_FLOOR set to 0 (paper)."""
    if peak < MIN_CONTRAST:
        raise NoInkError()
    ink = ink / peak
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _cropped_ink8(lum8: np.ndarray) -> np.ndarray:
    """_cropped_ink for an opaque 8-bit image, the same values, computed once per grey level.

    Every step before the crop maps a pixel's value alone (the paper's level is one number),
    so the 256 levels go through them, and the image is only looked up in that table: 256
    values instead of a float32 pass per step over the whole canvas, and only the crop is
    looked up. The ink is monotone in the level (inverted or not), so the strongest ink is
    at the darkest or the lightest level present, and the levels that keep ink are one range.
    """
    levels = np.arange(256, dtype=np.float32) / 255.0  # the values lum8 / 255.0 can take
    table = _ink_from_luminance(levels, _median_level(_border(lum8)))
    peak = float(max(table[lum8.min()], table[lum8.max()]))
    table = _stretched(table, peak)
    kept = np.flatnonzero(table)
    top, bottom, left, right = prepkernels.level_box(lum8, int(kept[0]), int(kept[-1]))
    return prepkernels.lookup(table, lum8[top:bottom, left:right])


def _median_level(levels8: np.ndarray) -> float:
    """np.median(levels8 / np.float32(255.0)), the same float32 rounding, from the one or
    two middle levels (np.median averages those two in float32)."""
    lower, upper = prepkernels.middle_levels(levels8)
    return float(
        (np.float32(lower) / np.float32(255.0) + np.float32(upper) / np.float32(255.0))
        / np.float32(2.0)
    )


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding every non-zero pixel."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _resize_longer_side(a: np.ndarray, size: int) -> np.ndarray:
    """Resize with Lanczos (anti-aliased when shrinking) so the longer side is `size` px."""
    height, width = a.shape
    scale = size / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size == (width, height):
        return a.astype(np.float32)
    # reducing_gap: a fast box reduction first when shrinking a lot, then Lanczos.
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode F
    img = img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = np.asarray(img, dtype=np.float32).copy()
    return np.clip(out, 0.0, 1.0, out=out)  # Lanczos rings slightly below 0 and above 1


def stroke_width(mask: np.ndarray) -> float:
    """The mean width, in pixels, of the strokes of a boolean ink mask: 2 * area / perimeter.

    A stroke of length L and width w has area L*w and a perimeter of about 2L. The perimeter
    is estimated with Crofton's formula from the ink/paper transitions along rows, columns and
    both diagonals, n0, n90, n45 and n135 (diagonal neighbours are 1/sqrt(2) apart):

        perimeter = pi/8 * (n0 + n90 + (n45 + n135) / sqrt(2))

    which is within about 5% of the true length whatever the stroke's direction.
    """
    area, n0, n90, n45, n135 = prepkernels.mask_transitions(np.asarray(mask, dtype=bool))
    if area == 0:
        return 0.0
    perimeter = np.pi / 8 * (n0 + n90 + (n45 + n135) / np.sqrt(2))
    return float(2 * area / perimeter)


def _restore_strokes(digit: np.ndarray) -> np.ndarray:
    """Strokes toward MNIST's width: thin ones thickened, thick sharp ones thinned.

    The width is measured on the crop and scaled to the output size. Strokes that would be
    thinner than MIN_STROKE px in the 20 px box are widened to TARGET_STROKE. Those wider than
    MAX_STROKE are narrowed to MAX_STROKE, once their ink under THICK_CUT is cut (thickened at
    low resolution, a loop fills with grey ink fainter than the strokes; the cut reopens it),
    unless the ink is soft (median under SOFT_INK): blur, not a fat pen, made those strokes
    wide, and eroding a blur only loses the digit.
    """
    width_out = _stroke_width_out(digit)
    if width_out < MIN_STROKE:
        grow = (TARGET_STROKE - width_out) * _WORK_SCALE
        work = _at_work_scale(digit)
        return _crop_to_ink(_square_filter(work, 1 + 2 * round(grow / 2), np.max, grow=True))
    if width_out <= MAX_STROKE or float(np.median(digit[digit > 0])) < SOFT_INK:
        return digit

    digit = _crop_to_ink(np.clip((digit - THICK_CUT) / (1 - THICK_CUT), 0.0, 1.0))
    shrink = (_stroke_width_out(digit) - MAX_STROKE) * _WORK_SCALE
    if shrink <= 0:
        return digit
    thinned = _square_filter(_at_work_scale(digit), 1 + 2 * round(shrink / 2), np.min, grow=False)
    if not thinned.max() > 0:  # eroded away: a blob, not strokes
        return digit
    return _crop_to_ink(thinned)


def _stroke_width_out(digit: np.ndarray) -> float:
    """The strokes' width in the output, once the longer side is scaled to DIGIT_BOX px."""
    return stroke_width(digit >= 0.5) * DIGIT_BOX / max(digit.shape)


def _at_work_scale(digit: np.ndarray) -> np.ndarray:
    """The digit resized to a longer side of _WORK_SCALE * DIGIT_BOX px, where the stroke
    filters run: fast even for a huge canvas, and fine-grained (2 px there is half a pixel in
    the output). Stretched to 1 again, and its faint Lanczos ringing dropped."""
    work = _resize_longer_side(digit, _WORK_SCALE * DIGIT_BOX)
    work /= work.max()
    work[work < NOISE_FLOOR] = 0.0
    return work


def _square_filter(a: np.ndarray, kernel: int, reduce: np.ufunc, grow: bool) -> np.ndarray:
    """Grayscale dilation (reduce=np.max) or erosion (np.min) by a kernel x kernel square
    (odd, so that it is centred), with 0 beyond the edges. With `grow` the output grows by
    kernel // 2 each way (room for dilated ink); else it keeps a's shape.

    A square's filter is separable: a running reduce down the columns, then along the rows.
    """
    pad = kernel - 1 if grow else kernel // 2
    padded = np.pad(a, pad)
    windows = np.lib.stride_tricks.sliding_window_view
    rows_done = reduce(windows(padded, kernel, axis=0), axis=-1)
    return reduce(windows(rows_done, kernel, axis=1), axis=-1)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste a digit of at most 28x28 into a 28x28 field, its centre of mass at (14, 14).

    The shift is a whole number of pixels, as in MNIST (no resampling blur), and is clipped
    so that the digit stays inside the field.
    """
    height, width = digit.shape
    mass = digit.sum()
    centre_row = float((digit.sum(axis=1) @ np.arange(height)) / mass)
    centre_col = float((digit.sum(axis=0) @ np.arange(width)) / mass)
    middle = IMAGE_SIZE // 2
    top = min(max(int(np.floor(middle - centre_row + 0.5)), 0), IMAGE_SIZE - height)
    left = min(max(int(np.floor(middle - centre_col + 0.5)), 0), IMAGE_SIZE - width)

    field = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field


# ---------------------------------------------------------------------------------------------
# Previews


def to_png_bytes(img28: np.ndarray) -> bytes:
    """A grayscale PNG of a prepared image (ink white on black, as the model sees it)."""
    pixels = np.clip(np.asarray(img28, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # uint8 (28, 28): mode L
    return buffer.getvalue()


def to_base64_png(img28: np.ndarray) -> str:
    """`to_png_bytes` as base64 text; prefix "data:image/png;base64," for an <img> src."""
    return base64.b64encode(to_png_bytes(img28)).decode("ascii")
