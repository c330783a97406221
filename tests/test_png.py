"""scratchnet.mnist.png: plain PNGs straight to Pillow's 8-bit planes, everything else refused.

Pillow is the oracle: on every file the reader takes, its luminance and alpha must be the bytes
of Pillow's convert("L") and getchannel("A"), and the loop (unfilter_planes) must agree with
its NumPy twin. The files are written here chunk by chunk, so that every filter type, colour
type and broken part can be chosen.
"""

from __future__ import annotations

import io
import itertools
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from scratchnet.mnist import imageprep, png

SAMPLES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples a pixel


def chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def build_png(
    scanlines: bytes,
    width: int,
    height: int,
    colour_type: int,
    depth: int = 8,
    interlace: int = 0,
    extra: bytes = b"",
    idat_parts: int = 1,
) -> bytes:
    """A PNG of these (already filtered) scanlines, compressed and split over idat_parts
    IDAT chunks; `extra` goes between IHDR and the first IDAT."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace)
    stream = zlib.compress(scanlines)
    cuts = np.linspace(0, len(stream), idat_parts + 1).astype(int)
    idat = b"".join(chunk(b"IDAT", stream[a:b]) for a, b in itertools.pairwise(cuts))
    return png.SIGNATURE + chunk(b"IHDR", header) + extra + idat + chunk(b"IEND", b"")


def random_scanlines(rng, width, height, channels, filters, values=None) -> bytes:
    """Random filtered bytes: any bytes after a filter byte of 0..4 are a valid scanline.
    Drawn from a few `values`, the predictors meet ties (Paeth's) and wrap-arounds often."""
    shape = (height, 1 + width * channels)
    if values is None:
        rows = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        rows = rng.choice(np.asarray(values, dtype=np.uint8), shape)
    rows[:, 0] = rng.choice(filters, height)
    return rows.tobytes()


def pillow_planes(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    image = Image.open(io.BytesIO(data))
    image.load()
    alpha = np.asarray(image.getchannel("A")) if "A" in image.mode else None
    return np.asarray(image.convert("L")), alpha


@pytest.mark.parametrize("colour_type", sorted(SAMPLES))
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4]])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 1), (37, 23)])
@pytest.mark.parametrize("values", [None, (0, 1, 2, 127, 128, 254, 255)], ids=["any", "few"])
def test_planes_are_pillows_to_the_byte(colour_type, filters, size, values):
    rng = np.random.default_rng([colour_type, len(filters), filters[0], *size])
    width, height = size
    channels = SAMPLES[colour_type]
    scanlines = random_scanlines(rng, width, height, channels, filters, values)
    data = build_png(scanlines, width, height, colour_type, idat_parts=1 + size[0] % 3)

    plain = png.read_plain(data)
    assert (plain.width, plain.height, plain.mode) == (width, height, png.MODES[colour_type])
    lum, alpha = plain.planes8()
    expected_lum, expected_alpha = pillow_planes(data)
    np.testing.assert_array_equal(lum, expected_lum)
    if channels in (2, 4):
        np.testing.assert_array_equal(alpha, expected_alpha)
    else:
        assert alpha is None

    # The NumPy twin, on the same scanlines.
    raw = np.frombuffer(scanlines, dtype=np.uint8)
    twin_lum = np.empty_like(lum)
    twin_alpha = np.empty_like(alpha) if alpha is not None else np.empty((0, 0), np.uint8)
    assert png.unfilter_planes_reference(raw, channels, twin_lum, twin_alpha)
    np.testing.assert_array_equal(twin_lum, lum)
    if alpha is not None:
        np.testing.assert_array_equal(twin_alpha, alpha)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_pillows_own_saves_are_plain(mode):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (40, 30, len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    for options in ({}, {"optimize": True}, {"compress_level": 0}):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", **options)
        lum, alpha = png.read_plain(buffer.getvalue()).planes8()
        expected_lum, expected_alpha = pillow_planes(buffer.getvalue())
        np.testing.assert_array_equal(lum, expected_lum)
        assert (alpha is None) == (expected_alpha is None)
        if alpha is not None:
            np.testing.assert_array_equal(alpha, expected_alpha)


def test_chunks_that_only_describe_the_pixels_are_passed_over():
    scanlines = random_scanlines(np.random.default_rng(2), 7, 3, 4, [0, 1, 2, 3, 4])
    descriptive = (
        chunk(b"sRGB", bytes([0]))
        + chunk(b"gAMA", struct.pack(">I", 45455))
        + chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
    )
    data = build_png(scanlines, 7, 3, 6, extra=descriptive)
    lum, alpha = png.read_plain(data).planes8()
    expected_lum, expected_alpha = pillow_planes(data)
    np.testing.assert_array_equal(lum, expected_lum)
    np.testing.assert_array_equal(alpha, expected_alpha)


def test_the_reading_mode_uses_the_twin(monkeypatch):
    calls = []
    twin = png.unfilter_planes_reference
    monkeypatch.setattr(png, "unfilter_planes_reference", lambda *a: calls.append(1) or twin(*a))
    monkeypatch.setattr(png, "reference_mode", lambda: True)
    rng = np.random.default_rng(0)
    data = build_png(random_scanlines(rng, 5, 4, 3, [0, 4]), 5, 4, 2)
    np.testing.assert_array_equal(png.read_plain(data).planes8()[0], pillow_planes(data)[0])
    assert calls == [1]


def plain_rgb(width: int = 6, height: int = 5) -> tuple[bytes, bytes]:
    scanlines = random_scanlines(np.random.default_rng(1), width, height, 3, [0, 1, 2, 3, 4])
    return scanlines, build_png(scanlines, width, height, 2)


def not_plain_headers() -> dict[str, bytes]:
    scanlines, good = plain_rgb()
    ihdr_end = 8 + 8 + 13 + 4
    palette = chunk(b"PLTE", bytes(range(12)))
    return {
        "not a png": b"GIF89a" + good[6:],
        "16 bits": build_png(scanlines, 3, 5, 2, depth=16),
        "palette": build_png(scanlines, 6, 5, 3, extra=palette),
        "interlaced": build_png(scanlines, 6, 5, 2, interlace=1),
        "tRNS chunk": build_png(scanlines, 6, 5, 2, extra=chunk(b"tRNS", bytes(6))),
        "text chunk": build_png(scanlines, 6, 5, 2, extra=chunk(b"tEXt", b"a\0b")),
        "short pHYs": build_png(scanlines, 6, 5, 2, extra=chunk(b"pHYs", bytes(8))),
        "long sRGB": build_png(scanlines, 6, 5, 2, extra=chunk(b"sRGB", bytes(2))),
        "bad IHDR crc": good[: ihdr_end - 4] + b"\0\0\0\0" + good[ihdr_end:],
        "bad IDAT crc": good[:-16] + bytes([good[-16] ^ 1]) + good[-15:],
        "no IEND": good[:-12],
        "truncated": good[: len(good) // 2],
        "zero width": build_png(b"", 0, 5, 2),
        "bad colour type": build_png(scanlines, 6, 5, 5),
    }


@pytest.mark.parametrize("name", sorted(not_plain_headers()))
def test_anything_else_is_left_to_pillow(name):
    assert png.read_plain(not_plain_headers()[name]) is None


def test_streams_that_do_not_inflate_to_the_header_are_left_to_pillow():
    scanlines, _ = plain_rgb()
    shorter = build_png(scanlines[:-1], 6, 5, 2)
    longer = build_png(scanlines + b"\0", 6, 5, 2)
    bad_filter = build_png(bytes([5]) + scanlines[1:], 6, 5, 2)
    stream = zlib.compress(scanlines)
    broken = png.SIGNATURE + b"".join(
        [
            chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 8, 2, 0, 0, 0)),
            chunk(b"IDAT", stream[:-4] + bytes(4)),  # a wrong checksum
            chunk(b"IEND", b""),
        ]
    )
    trailing = png.SIGNATURE + b"".join(
        [
            chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 8, 2, 0, 0, 0)),
            chunk(b"IDAT", stream + b"more"),
            chunk(b"IEND", b""),
        ]
    )
    for data in (shorter, longer, bad_filter, broken, trailing):
        plain = png.read_plain(data)
        assert plain is not None and plain.planes8() is None


def test_prepare_image_reads_plain_pngs_as_pillow_does():
    """The same digit from the bytes (the reader) and from Pillow's decoded image."""
    image = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    image.paste((0, 0, 0, 255), (100, 60, 130, 220))
    for mode in ("RGBA", "RGB", "LA", "L"):
        buffer = io.BytesIO()
        image.convert(mode).save(buffer, format="PNG")
        data = buffer.getvalue()
        assert isinstance(imageprep._decode(data, 10**6), imageprep.Planes8)
        from_pillow = imageprep.prepare_image(imageprep.decode_image(data))
        np.testing.assert_array_equal(imageprep.prepare_image(data), from_pillow)


def test_broken_plain_pngs_get_pillows_error():
    scanlines, _ = plain_rgb()
    with pytest.raises(imageprep.ImageDecodeError, match="cannot decode image"):
        imageprep.prepare_image(build_png(scanlines[:-7], 6, 5, 2))


def test_the_pixel_limit_holds_before_anything_is_inflated(monkeypatch):
    monkeypatch.setattr(png.PlainPNG, "planes8", lambda self: pytest.fail("inflated"))
    _, data = plain_rgb(6, 5)
    with pytest.raises(imageprep.ImageTooLargeError, match="6x5 pixels, the limit is 29"):
        imageprep.prepare_image(data, max_pixels=29)
