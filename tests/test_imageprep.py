"""Image preparation: any drawing of a digit becomes an MNIST-like 28x28 input.

The digits here are drawn with PIL's ImageDraw, in many formats, modes, sizes and positions.
Two drawings of the same digit should give (nearly) the same 28x28 image, and that image should
have MNIST's geometry: the ink fits a 20x20 box and its centre of mass is at (14, 14).
"""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from scratchnet.mnist.imageprep import (
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    NoInkError,
    decode_image,
    prepare_image,
    stroke_width,
    to_base64_png,
    to_grayscale_ink,
    to_png_bytes,
)

# The strokes of each digit, as polylines in a unit box. The brush is centred on them.
_OVAL = [(0.5 + 0.35 * np.sin(t), 0.5 - 0.5 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 49)]
DIGITS = {
    "0": [_OVAL],
    "1": [[(0.3, 0.2), (0.6, 0.0), (0.6, 1.0)]],
    "7": [[(0.0, 0.0), (1.0, 0.0), (0.4, 1.0)]],
}


def draw_digit(
    digit: str,
    size: tuple[int, int] = (280, 280),
    box: tuple[float, float, float] = (60, 40, 200),
    width: int = 22,
    ink: int | tuple[int, ...] = 0,
    paper: int | tuple[int, ...] = 255,
    mode: str = "L",
) -> Image.Image:
    """A digit drawn in the square box (left, top, side) of a canvas, in a given mode.

    Grey levels (ints) are drawn in mode L and then converted; colours are drawn in `mode`.
    """
    if isinstance(ink, int) and isinstance(paper, int) and mode != "L":
        return draw_digit(digit, size, box, width, ink, paper, "L").convert(mode)
    img = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(img)
    left, top, side = box
    for stroke in DIGITS[digit]:
        points = [(left + x * side, top + y * side) for x, y in stroke]
        pen.line(points, fill=ink, width=width, joint="curve")
    return img


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The best correlation of a and b shifted by up to one pixel each way.

    MNIST's whole-pixel centring is only good to half a pixel, so two renderings of one digit
    may land a pixel apart.
    """
    return max(
        correlation(np.roll(a, (dy, dx), axis=(0, 1)), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(img.shape)
    return float((img * rows).sum() / img.sum()), float((img * cols).sum() / img.sum())


def assert_mnist_like(img: np.ndarray) -> None:
    """MNIST's geometry: 28x28 float32 in [0, 1], ink in a 20x20 box, mass centred at (14, 14)."""
    assert img.shape == (28, 28)
    assert img.dtype == np.float32
    assert img.min() >= 0.0
    assert img.max() == pytest.approx(1.0)
    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(height, width) == 20
    # Whole-pixel shifts put the centre within half a pixel, unless that would push the digit
    # out of the field (a top-heavy "7"): then it touches the edge instead.
    row, col = centre_of_mass(img)
    assert abs(row - 14) <= 0.5 + 1e-6 or rows[0] == 0 or rows[-1] == 27
    assert abs(col - 14) <= 0.5 + 1e-6 or cols[0] == 0 or cols[-1] == 27


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Each digit drawn plainly (black on white, centred, a thick brush) and prepared."""
    return {digit: prepare_image(draw_digit(digit)) for digit in DIGITS}


# ---------------------------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize("digit", sorted(DIGITS))
@pytest.mark.parametrize(
    "size, box, width",
    [
        ((280, 280), (60, 40, 200), 22),  # a centred canvas drawing
        ((280, 280), (5, 150, 110), 12),  # small, in the bottom-left corner
        ((400, 250), (280, 10, 100), 10),  # wide canvas, top right
        ((28, 28), (4, 4, 20), 2),  # MNIST-sized
    ],
)
def test_output_has_mnist_geometry(digit, size, box, width):
    assert_mnist_like(prepare_image(draw_digit(digit, size=size, box=box, width=width)))


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_position_and_size_on_the_canvas_do_not_matter(digit, reference):
    # The same digit at a quarter of the size, pushed into a corner, with a proportional brush.
    img = draw_digit(digit, size=(600, 450), box=(420, 300, 140), width=15)
    assert similarity(prepare_image(img), reference[digit]) > 0.9


def test_similarity_tells_digits_apart(reference):
    # Two renderings of one digit may differ by half a pixel: they score about 0.9 to 1.
    # The thresholds in these tests mean something because different digits score far less.
    for a in DIGITS:
        for b in DIGITS:
            if a != b:
                assert similarity(reference[a], reference[b]) < 0.6


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_white_on_black_equals_black_on_white(digit):
    dark_on_light = prepare_image(draw_digit(digit, ink=0, paper=255))
    light_on_dark = prepare_image(draw_digit(digit, ink=255, paper=0))
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-5)


def test_grey_ink_on_grey_paper_is_stretched(reference):
    img = prepare_image(draw_digit("7", ink=90, paper=170))
    np.testing.assert_allclose(img, reference["7"], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Transparency, modes and formats


@pytest.mark.parametrize("ink", [0, 255, (200, 30, 30)], ids=["black", "white", "red"])
def test_strokes_on_a_transparent_background(ink, reference):
    # A canvas exported without a background: the colour of transparent pixels is black.
    color = (ink, ink, ink) if isinstance(ink, int) else ink
    img = draw_digit("7", ink=(*color, 255), paper=(0, 0, 0, 0), mode="RGBA")
    assert similarity(prepare_image(img), reference["7"]) > 0.99


def test_ink_only_in_the_alpha_channel(reference):
    # Pure-white pixels everywhere; only alpha tells ink from background.
    img = draw_digit("0", ink=(255, 255, 255, 255), paper=(255, 255, 255, 0), mode="RGBA")
    assert similarity(prepare_image(img), reference["0"]) > 0.99


def test_grey_and_alpha_drawing(reference):
    img = draw_digit("1", ink=(0, 255), paper=(255, 0), mode="LA")
    assert similarity(prepare_image(img), reference["1"]) > 0.99


def test_a_sheet_with_transparent_margins(reference):
    # A white sheet with a black digit, in a frame of transparent pixels: the sheet is the paper.
    img = Image.new("RGBA", (380, 380), (0, 0, 0, 0))
    sheet = draw_digit("7", mode="RGBA", ink=(0, 0, 0, 255), paper=(255, 255, 255, 255))
    img.paste(sheet, (50, 50))
    assert similarity(prepare_image(img), reference["7"]) > 0.99


def test_a_few_transparent_pixels_on_an_opaque_drawing():
    # A thin digit (ink on under 2% of the image) on white, with a transparent corner.
    img = draw_digit("1", size=(600, 600), box=(100, 100, 400), width=6, mode="RGBA")
    img.paste((0, 0, 0, 0), (0, 0, 8, 8))
    plain = draw_digit("1", size=(600, 600), box=(100, 100, 400), width=6)
    np.testing.assert_allclose(prepare_image(img), prepare_image(plain), atol=1e-5)


def test_fully_transparent_image_has_no_ink():
    with pytest.raises(NoInkError):
        prepare_image(Image.new("RGBA", (100, 100), (0, 0, 0, 0)))


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda img: img.convert("1"), id="1"),
        pytest.param(lambda img: img.convert("RGB"), id="RGB"),
        pytest.param(lambda img: img.convert("P"), id="P"),
        pytest.param(lambda img: img.convert("CMYK"), id="CMYK"),
        pytest.param(lambda img: img.convert("I"), id="I"),
        pytest.param(lambda img: Image.fromarray(np.asarray(img, np.uint16) * 257), id="I;16"),
        pytest.param(lambda img: Image.fromarray(np.asarray(img, np.float32) / 255), id="F"),
    ],
)
def test_image_modes(convert, reference):
    img = convert(draw_digit("7"))
    assert similarity(prepare_image(img), reference["7"]) > 0.98


def test_palette_with_a_transparent_index(reference):
    img = draw_digit("0", ink=(255, 255, 255, 255), paper=(0, 0, 0, 0), mode="RGBA")
    gif = decode_image(encode(img, "GIF"))
    assert gif.mode == "P"
    assert "transparency" in gif.info
    assert similarity(prepare_image(gif), reference["0"]) > 0.98


def test_coloured_ink_on_coloured_paper(reference):
    img = draw_digit("1", ink=(20, 40, 160), paper=(250, 240, 180), mode="RGB")
    assert similarity(prepare_image(img), reference["1"]) > 0.99


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_file_formats(fmt, reference):
    data = encode(draw_digit("7", mode="RGB"), fmt)
    img = decode_image(data)
    assert img.size == (280, 280)
    assert similarity(prepare_image(data), reference["7"]) > 0.98


def test_16_bit_png(reference):
    pixels = np.asarray(draw_digit("0"), dtype=np.uint16) * 257
    data = encode(Image.fromarray(pixels))
    assert decode_image(data).mode.startswith("I")
    assert similarity(prepare_image(data), reference["0"]) > 0.99


def test_multi_frame_gif_gives_the_first_frame(reference):
    frames = [draw_digit("7"), draw_digit("1")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    assert similarity(prepare_image(data), reference["7"]) > 0.99


def test_jpeg_exif_orientation_is_applied(reference):
    # Stored on its side, with the EXIF tag "rotate 90 degrees clockwise to display" (6).
    stored = draw_digit("7", mode="RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    assert similarity(prepare_image(data), reference["7"]) > 0.98


# ---------------------------------------------------------------------------------------------
# Sizes and stroke widths


def test_tiny_images_are_upscaled():
    img = prepare_image(draw_digit("7", size=(10, 10), box=(2, 2, 6), width=1))
    assert_mnist_like(img)
    five_by_five = np.zeros((9, 9), dtype=np.uint8)
    five_by_five[2:7, 2:7] = 255
    five_by_five[3:6, 3:6] = 0  # a little "0"
    assert_mnist_like(prepare_image(five_by_five))


def test_huge_image(reference):
    img = draw_digit("7", size=(3000, 3000), box=(900, 1200, 1500), width=160)
    assert similarity(prepare_image(img), reference["7"]) > 0.9


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_thin_strokes_are_thickened_to_mnist_width(digit, reference):
    thin = draw_digit(digit, size=(1000, 1000), box=(200, 300, 600), width=6)
    thickened = prepare_image(thin)
    assert similarity(thickened, reference[digit]) > 0.9
    assert 1.6 <= stroke_width(thickened >= 0.5) <= 3.2

    as_drawn = prepare_image(thin, restore=False)
    assert stroke_width(as_drawn >= 0.5) < 1.2
    assert similarity(thickened, reference[digit]) > similarity(as_drawn, reference[digit])


def test_strokes_of_mnist_width_are_left_alone():
    img = draw_digit("7", width=22)
    np.testing.assert_array_equal(prepare_image(img), prepare_image(img, restore=False))


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_thick_strokes_are_thinned(digit, reference):
    fat = draw_digit(digit, box=(70, 50, 180), width=60)  # a marker: 6 px strokes at 28x28
    as_drawn = prepare_image(fat, restore=False)
    assert stroke_width(as_drawn >= 0.5) > 4.5
    thinned = prepare_image(fat)
    assert_mnist_like(thinned)
    # Measured at 28x28, where a loop's small hole counts little perimeter, a thinned "0"
    # still reads 4.6 px.
    assert 2.5 <= stroke_width(thinned >= 0.5) < stroke_width(as_drawn >= 0.5) - 0.4
    assert similarity(thinned, reference[digit]) > similarity(as_drawn, reference[digit])


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_blurred_strokes_are_not_thinned(digit):
    """Blur makes strokes measure wide; eroding them would lose the digit."""
    blurred = draw_digit(digit, box=(70, 50, 180), width=40).filter(ImageFilter.GaussianBlur(24))
    as_given = prepare_image(blurred, restore=False)
    assert stroke_width(as_given >= 0.5) > 3.5  # as wide as strokes that get thinned
    np.testing.assert_array_equal(prepare_image(blurred), as_given)

    # The same strokes sharp are thinned.
    sharp = draw_digit(digit, box=(70, 50, 180), width=60)
    assert not np.array_equal(prepare_image(sharp), prepare_image(sharp, restore=False))


@pytest.mark.parametrize("angle", [0, 30, 45, 90])
def test_stroke_width_of_a_bar(angle):
    bar = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(bar).rectangle((50, 190, 350, 209), fill=255)  # 300 x 20
    mask = np.asarray(bar.rotate(angle, resample=Image.Resampling.BILINEAR)) >= 128
    assert stroke_width(mask) == pytest.approx(20, rel=0.1)


# ---------------------------------------------------------------------------------------------
# MNIST-like digits survive a round trip through a drawing canvas


def mnist_like(digit: str) -> np.ndarray:
    """A digit made the MNIST way, independently of prepare_image: drawn large, shrunk with
    anti-aliasing into a 20x20 box, and shifted by whole pixels so its mass is at (14, 14)."""
    big = draw_digit(digit, size=(160, 160), box=(0, 0, 159), width=18, ink=255, paper=0)
    small = np.asarray(big.resize((20, 20), Image.Resampling.LANCZOS), np.float32) / 255
    field = np.zeros((28, 28), np.float32)
    row, col = centre_of_mass(np.clip(small, 0, 1))
    top, left = round(14 - row), round(14 - col)
    field[top : top + 20, left : left + 20] = np.clip(small, 0, 1)
    return field / field.max()


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_mnist_digit_drawn_big_off_centre_comes_back(digit):
    original = mnist_like(digit)
    rows = np.flatnonzero(original.any(axis=1))
    cols = np.flatnonzero(original.any(axis=0))
    ink = original[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    upscaled = Image.fromarray(np.uint8(ink * 255)).resize(
        (ink.shape[1] * 10, ink.shape[0] * 10), Image.Resampling.BICUBIC
    )
    canvas = Image.new("L", (280, 280), 0)
    canvas.paste(upscaled, (70, 10))  # off-centre
    dark_on_white = Image.fromarray(255 - np.asarray(canvas))

    assert similarity(prepare_image(dark_on_white), original) > 0.9
    assert similarity(prepare_image(original), original) > 0.99  # already MNIST-like


def test_real_mnist_digits_drawn_big_come_back(mnist):
    digits = mnist.test_images[:200].astype(np.float32) / 255
    scores = []
    for i, digit in enumerate(digits):
        big = Image.fromarray(np.uint8(digit * 255)).resize((196, 196), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (280, 280), 0)
        canvas.paste(big, (i % 84, (7 * i) % 84))
        prepared = prepare_image(Image.fromarray(255 - np.asarray(canvas)))
        scores.append(similarity(prepared, digit))
    assert np.median(scores) > 0.95
    assert np.percentile(scores, 5) > 0.8


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "img",
    [
        Image.new("L", (280, 280), 255),
        Image.new("L", (280, 280), 0),
        Image.new("RGB", (50, 80), (120, 200, 30)),
        Image.fromarray(np.uint8(250 + np.random.default_rng(0).integers(0, 6, (200, 200)))),
    ],
    ids=["white", "black", "green", "faint-noise"],
)
def test_blank_images_have_no_ink(img):
    with pytest.raises(NoInkError, match="the image has no ink: draw or upload a digit"):
        prepare_image(img)


def png_bytes() -> bytes:
    return encode(draw_digit("7", size=(64, 64), box=(10, 10, 40), width=5))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not an image",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        png_bytes()[:60],  # truncated inside the pixel data
        encode(draw_digit("7", mode="RGB"), "JPEG")[:400],
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
    ],
    ids=["empty", "text", "png-signature-only", "truncated-png", "truncated-jpeg", "svg"],
)
def test_corrupt_bytes(data):
    with pytest.raises(ImageDecodeError, match="cannot decode image"):
        prepare_image(data)


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header (IHDR) is patched to claim width x height pixels."""
    data = bytearray(encode(Image.new("L", (1, 1), 0)))
    # signature (8) | length (4) | "IHDR" (4) | width (4) | height (4) | ... | crc (4)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_is_rejected_from_the_header():
    data = png_claiming(100_000, 100_000)
    assert len(data) < 100
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="too large"):
        decode_image(data)
    assert time.perf_counter() - start < 0.1  # 10 gigapixels were never allocated


def test_header_over_the_limit_but_under_pillows_own():
    # 100 megapixels: past DEFAULT_MAX_PIXELS, under the size at which Pillow itself refuses.
    too_large = pytest.raises(ImageTooLargeError, match="10000x10000 pixels, the limit is")
    with pytest.warns(Image.DecompressionBombWarning), too_large:
        decode_image(png_claiming(10_000, 10_000))


def test_max_pixels_limit():
    data = encode(draw_digit("7"))
    with pytest.raises(ImageTooLargeError, match="280x280"):
        decode_image(data, max_pixels=280 * 279)
    with pytest.raises(ImageTooLargeError):
        prepare_image(data, max_pixels=1000)
    assert decode_image(data, max_pixels=280 * 280).size == (280, 280)


def test_errors_are_value_errors():
    for error in (ImageDecodeError, ImageTooLargeError, NoInkError):
        assert issubclass(error, ImageError)
        assert issubclass(error, ValueError)


def test_bad_arrays():
    with pytest.raises(ImageDecodeError, match="shape"):
        prepare_image(np.zeros((2, 3, 5)))
    with pytest.raises(ImageDecodeError, match="NaN"):
        prepare_image(np.full((8, 8), np.nan))
    with pytest.raises(ImageDecodeError, match="NaN"):
        prepare_image(encode(Image.fromarray(np.full((8, 8), np.inf, np.float32)), "TIFF"))


def test_formats_outside_the_list_are_refused():
    # Pillow can read these, but they are not on the list: EPS, for one, would run Ghostscript.
    for fmt in ("ICO", "PCX", "TGA"):
        with pytest.raises(ImageDecodeError, match="not PNG, JPEG"):
            decode_image(encode(draw_digit("7", size=(64, 64), box=(10, 10, 40), width=5), fmt))
    with pytest.raises(ImageDecodeError):
        decode_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")


# ---------------------------------------------------------------------------------------------
# Other inputs and outputs


def test_arrays_and_paths(tmp_path, reference):
    img = draw_digit("7", mode="RGB")
    rgb = np.asarray(img)
    path = tmp_path / "seven.png"
    img.save(path)
    inputs = [
        rgb,
        rgb.astype(np.float32) / 255,
        np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
        np.asarray(img.convert("L")),
        str(path),
        path,
        path.read_bytes(),
        bytearray(path.read_bytes()),
    ]
    for item in inputs:
        assert similarity(prepare_image(item), reference["7"]) > 0.99
    with pytest.raises(FileNotFoundError):
        prepare_image(tmp_path / "missing.png")


def test_ink_map_polarity():
    ink = to_grayscale_ink(draw_digit("1"))
    assert ink.dtype == np.float32
    assert ink.shape == (280, 280)
    assert ink[0, 0] == 0.0  # paper
    assert ink[140, 172] == 1.0  # on the stroke of the "1"


def test_png_preview_round_trip(reference):
    data = to_png_bytes(reference["7"])
    preview = Image.open(io.BytesIO(data))
    assert (preview.format, preview.mode, preview.size) == ("PNG", "L", (28, 28))
    np.testing.assert_allclose(np.asarray(preview) / 255, reference["7"], atol=0.5 / 255 + 1e-6)
    assert base64.b64decode(to_base64_png(reference["7"])) == data


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "1"])
@pytest.mark.parametrize(
    ("ink", "paper", "blur"), [(0, 255, 0), (255, 0, 2), (70, 210, 1), (230, 30, 3)]
)
def test_opaque_8bit_pictures_prepare_exactly_as_their_luminance_does(mode, ink, paper, blur):
    """prepare_image looks opaque 8-bit pictures up in a table of their 256 grey levels: the
    same pixels, to the bit, as the float32 luminance (level / 255) through every step."""
    grey = draw_digit("7", ink=ink, paper=paper, width=9 + 12 * blur)
    grey = grey.filter(ImageFilter.GaussianBlur(blur)) if blur else grey
    noise = np.random.default_rng(blur).integers(-6, 7, (280, 280))
    grey = Image.fromarray(np.clip(np.asarray(grey) + noise, 0, 255).astype(np.uint8))
    picture = grey.convert(mode)
    luminance = (picture.convert("RGB") if mode == "P" else picture).convert("L")
    expected = prepare_image(np.asarray(luminance, dtype=np.float32) / 255.0)
    np.testing.assert_array_equal(prepare_image(picture), expected)
