"""A reader for plain PNGs, the kind a canvas exports, straight to 8-bit luminance and alpha.

A 280x280 canvas PNG (the load test's drawing, 1.3 KB) inflates to 235 KB of filtered
scanlines (RGB; 314 KB in RGBA). Pillow inflates and unfilters them row by row into its
4-bytes-a-pixel layout, and only then converts to grey (`convert("L")`). Here the scanlines
are inflated in one zlib call and one pass unfilters them and writes the two planes imageprep
works on. Measured on that drawing, CPU time, medians of 1,000 calls interleaved (load 4):

    saved as   this reader   Pillow's decode + convert   of which zlib's inflate
    RGB        0.55 ms       1.12 ms                     0.44 ms
    RGBA       0.79 ms       1.49 ms                     0.66 ms
    L          0.19 ms       0.39 ms                     0.08 ms

The inflate is the system's zlib (1.2.13; Python's zlib module and Pillow load the same one).

A plain PNG is: IHDR, then IDAT chunks one after another, then IEND, and nothing else but
sRGB, gAMA or pHYs chunks of their right length before the IDATs; 8 bits a sample, not
interlaced, grey (colour type 0), RGB (2), grey + alpha (4) or RGBA (6); every chunk's CRC
right. Pillow's own saves are such; canvas exports should be (not checked in a browser here).
Anything else (a palette, 16 bits, Adam7 interlacing, a tRNS, ICC or text chunk, a broken CRC,
a stream that does not inflate to exactly the header's size) is not read here: `read_plain`
or `PlainPNG.planes8` returns None and Pillow decodes the file as before, with its own error
messages when it is broken. So on every file this reader takes, its planes are Pillow's to
the byte:

    luminance  L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16   (Pillow's "L", ITU-R 601)
               or the grey sample itself
    alpha      the alpha sample (colour types 4 and 6), else None

The scanlines' filters (PNG specification, section 9): each row starts with a filter byte and
stores each byte x as the difference to a prediction from its left neighbour a (the same
channel one pixel before), the byte above b, and the one above-left c (0 beyond the edges):

    0 None     x
    1 Sub      x + a
    2 Up       x + b
    3 Average  x + floor((a + b) / 2)
    4 Paeth    x + whichever of a, b, c is nearest to p = a + b - c (ties: a, then b)

all modulo 256. `unfilter_planes` is the loop, `unfilter_planes_reference` its NumPy twin.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numba import njit

from scratchnet.runtime.mode import reference_mode

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples a pixel
MODES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}  # colour type -> the mode Pillow opens it in
_CHUNK_HEAD = struct.Struct(">I4s")  # length, type
_IHDR = struct.Struct(">IIBBBBB")  # width, height, bit depth, colour type, compression,
# filter method, interlace method
_MAX_SIDE = 2**31 - 1  # the largest width or height PNG allows
# Chunks that only describe the pixels (colour space, gamma, pixel size), before the first
# IDAT, with the length at which Pillow reads them without a complaint: name -> length.
_DESCRIPTIVE = {b"sRGB": 1, b"gAMA": 4, b"pHYs": 9}


@dataclass(frozen=True)
class PlainPNG:
    """A plain PNG's header and its compressed scanlines (the IDAT chunks' data, joined)."""

    width: int
    height: int
    colour_type: int
    compressed: bytes

    @property
    def mode(self) -> str:
        """The mode Pillow opens this file in: L, RGB, LA or RGBA."""
        return MODES[self.colour_type]

    def planes8(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(luminance, alpha or None), uint8 arrays of shape (height, width), as Pillow's
        convert("L") and getchannel("A") give them; None when the compressed stream is broken
        or does not inflate to exactly height rows of 1 + width * channels bytes (Pillow
        then says what is wrong). Check the size against a limit before calling this: the
        planes take width * height bytes each."""
        channels = CHANNELS[self.colour_type]
        expected = self.height * (1 + self.width * channels)
        inflater = zlib.decompressobj()
        try:
            # One byte of room more than expected: a longer stream shows, and the end of the
            # stream (its checksum) is read when the length is right.
            raw = inflater.decompress(self.compressed, expected + 1)
        except zlib.error:
            return None
        if len(raw) != expected or not inflater.eof or inflater.unused_data:
            return None

        lum = np.empty((self.height, self.width), dtype=np.uint8)
        has_alpha = channels in (2, 4)
        alpha = np.empty((self.height, self.width) if has_alpha else (0, 0), dtype=np.uint8)
        unfilter = unfilter_planes_reference if reference_mode() else unfilter_planes
        if not unfilter(np.frombuffer(raw, dtype=np.uint8), channels, lum, alpha):
            return None  # a filter byte over 4
        return lum, alpha if has_alpha else None


def read_plain(data: bytes) -> PlainPNG | None:
    """The header and compressed scanlines of a plain PNG (see the module's docstring), or
    None for any other file: nothing is inflated here, so this costs microseconds."""
    if not data.startswith(SIGNATURE):
        return None
    view = memoryview(data)
    position = len(SIGNATURE)
    header = None
    idat: list[memoryview] = []
    while True:
        if position + 12 > len(data):
            return None  # no IEND
        length, kind = _CHUNK_HEAD.unpack_from(data, position)
        end = position + 12 + length
        if end > len(data):
            return None
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[position + 4 : end - 4]) != crc:
            return None
        body = view[position + 8 : end - 4]

        if header is None:  # the first chunk must be IHDR
            if kind != b"IHDR" or length != _IHDR.size:
                return None
            header = _IHDR.unpack(body)
        elif kind == b"IDAT":
            idat.append(body)
        elif not idat and _DESCRIPTIVE.get(kind) == length:
            pass  # read into Pillow's `info`, never applied to the pixels
        elif kind == b"IEND" and idat and length == 0:
            break
        else:  # any other chunk: Pillow reads the file
            return None
        position = end

    width, height, depth, colour_type, compression, filter_method, interlace = header
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        return None
    if depth != 8 or colour_type not in CHANNELS or compression or filter_method or interlace:
        return None
    return PlainPNG(width, height, colour_type, b"".join(idat))


@njit(nogil=True, cache=True)
def luminance(r, g, b):
    """Pillow's 8-bit grey level of an RGB pixel (its "L" conversion: ITU-R 601 in 16-bit
    fixed point, rounded)."""
    return (np.uint32(r) * 19595 + np.uint32(g) * 38470 + np.uint32(b) * 7471 + 0x8000) >> 16


@njit(nogil=True, cache=True)
def unfilter_planes(raw, channels, lum, alpha):
    """Unfilter the scanlines in raw (height rows of a filter byte and width * channels
    bytes) and write each pixel's luminance into lum (height, width) and, for 2 and 4
    channels, its alpha into alpha; False (planes unfinished) at a filter byte over 4.

    Two row buffers hold the previous and the current row unfiltered: the whole image is
    never unfiltered in memory, only its planes are written. They are uint8, and the sums
    are taken modulo 256 as PNG says (`& 255`); Paeth's distances need signed ints. Copies
    are loops, not slice assignments, which took Numba 3.6 of this kernel's 4.9 s to compile
    (without its cache: a fresh install's or a Lambda's first start)."""
    height, width = lum.shape
    stride = width * channels
    above = np.zeros(stride, dtype=np.uint8)  # the row above, unfiltered: 0 above the first
    row = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1) + 1
        kind = raw[start - 1]
        line = raw[start : start + stride]
        if kind == 0:
            for i in range(stride):
                row[i] = line[i]
        elif kind == 1:
            for i in range(channels):
                row[i] = line[i]
            for i in range(channels, stride):
                row[i] = (line[i] + row[i - channels]) & 255
        elif kind == 2:
            for i in range(stride):
                row[i] = (line[i] + above[i]) & 255
        elif kind == 3:
            for i in range(stride):
                left = np.int32(row[i - channels]) if i >= channels else 0
                row[i] = (line[i] + ((left + above[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = np.int32(row[i - channels]) if i >= channels else 0
                b = np.int32(above[i])
                c = np.int32(above[i - channels]) if i >= channels else 0
                pa = abs(b - c)  # = |p - a| with p = a + b - c
                pb = abs(a - c)
                pc = abs(a + b - 2 * c)
                if pa <= pb and pa <= pc:
                    predicted = a
                elif pb <= pc:
                    predicted = b
                else:
                    predicted = c
                row[i] = (line[i] + predicted) & 255
        else:
            return False

        # Each channel count spelled out as a constant: the loops then vectorise (2.5x).
        grey = lum[y]
        opacity = alpha[y] if channels == 2 or channels == 4 else grey  # alpha is empty then
        if channels == 1:
            for x in range(width):
                grey[x] = row[x]
        elif channels == 2:
            for x in range(width):
                grey[x] = row[2 * x]
                opacity[x] = row[2 * x + 1]
        elif channels == 3:
            for x in range(width):
                grey[x] = luminance(row[3 * x], row[3 * x + 1], row[3 * x + 2])
        else:
            for x in range(width):
                grey[x] = luminance(row[4 * x], row[4 * x + 1], row[4 * x + 2])
                opacity[x] = row[4 * x + 3]
        above, row = row, above
    return True


def unfilter_planes_reference(raw, channels, lum, alpha):
    """NumPy twin of unfilter_planes: the whole image unfiltered in a padded array, whose
    zero row and column are what the predictors see beyond the edges. Sub is a running sum
    along the row and Up a sum with the row above; Average and Paeth depend on the byte just
    unfiltered on their left, so they go one pixel at a time, all channels at once."""
    height, width = lum.shape
    rows = raw.reshape(height, 1 + width * channels)
    pixels = np.zeros((height + 1, width + 1, channels), dtype=np.int32)
    for y in range(height):
        kind = rows[y, 0]
        line = rows[y, 1:].reshape(width, channels).astype(np.int32)
        above = pixels[y, 1:]
        if kind == 0:
            pixels[y + 1, 1:] = line
        elif kind == 1:
            pixels[y + 1, 1:] = np.cumsum(line, axis=0) & 255
        elif kind == 2:
            pixels[y + 1, 1:] = (line + above) & 255
        elif kind in (3, 4):
            for x in range(width):
                a, b, c = pixels[y + 1, x], pixels[y, x + 1], pixels[y, x]
                if kind == 3:
                    predicted = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
                    predicted = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                pixels[y + 1, x + 1] = (line[x] + predicted) & 255
        else:
            return False

    image = pixels[1:, 1:]
    if channels >= 3:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        lum[...] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    else:
        lum[...] = image[..., 0]
    if channels in (2, 4):
        alpha[...] = image[..., -1]
    return True
