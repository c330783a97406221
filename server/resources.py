"""Decoding memory: a budget checked from the image header, a bound on large decodes at once,
and freed memory handed back to the system afterwards.

A small file can declare a large image: a mostly blank 3999x3999 PNG is about 21 KB on the
wire, and decoding and preparing it took 185 MB at its peak (the decoded pixels, then float32
luminance and alpha planes of the same size). Four clients uploading such files, with up to 40
decodes at once in the thread pool, drove the server to 4.6 GB. So, before any pixel is
decoded:

    decoded bytes = width x height x bytes per pixel (Pillow's in-memory layout)

is read from the header (Pillow's Image.open parses only the header) and checked against
max_image_pixels and max_decode_bytes. An image whose decoded size is at least LARGE_DECODE
then waits for one of decode_concurrency slots (an asyncio semaphore: waiting requests hold
no thread); smaller ones, such as the drawing page's 280x280 canvas (314 KB decoded), go
straight through, so that a flood of large images does not queue normal clients behind it.
The peak is then about decode_concurrency x (the largest allowed image's peak), plus the
small images, which the thread pool's 40 threads bound.

glibc keeps freed heap memory for reuse (scratchnet raises its trim threshold to 1 GB at import,
see scratchnet/runtime/allocator.py), so after a large decode the memory is handed back with
allocator.release_free_memory (malloc_trim): 2.2 GB stayed held after the flood without it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator

import anyio
from PIL import Image, ImageMode
from starlette.concurrency import run_in_threadpool

from scratchnet.mnist.imageprep import FORMATS, ImageTooLargeError
from scratchnet.runtime import allocator

LARGE_DECODE = 1024 * 1024  # decoded bytes: about 512x512 RGB


def bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of a decoded Pillow image in this mode.

    Pillow stores images of two to four bands in 4 bytes per pixel (RGB included), and
    single-band ones in their sample's size: 1 for 1, L and P, 2 for I;16, 4 for I and F.
    """
    try:
        descriptor = ImageMode.getmode(mode)
    except KeyError:  # a mode this Pillow does not describe: assume the widest layout
        return 4
    if len(descriptor.bands) > 1:
        return 4
    return int(descriptor.typestr[-1])


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):g} MiB"


class DecodeBudget:
    """The header check and the bound on concurrent large decodes, for one app."""

    def __init__(self, max_pixels: int, max_decode_bytes: int, concurrency: int) -> None:
        self.max_pixels = max_pixels
        self.max_decode_bytes = max_decode_bytes
        self.concurrency = concurrency
        # anyio's semaphore binds to no event loop when it is created: a Lambda invocation or
        # a test client may run the app on a loop of its own.
        self._slots = anyio.Semaphore(concurrency)

    def open(self, data: bytes) -> tuple[Image.Image | bytes, int]:
        """The image opened from its header, to decode later, and the size it will decode to.

        Only the header is read (Pillow's Image.open decodes no pixel): the image goes on to
        scratchnet.mnist.imageprep.decode_image as it is, so the header is parsed once. Data
        without a readable header come back as they are, with size 0, for decode_image to say
        what is wrong with them.

        Raises ImageTooLargeError, naming the configured limit, past max_image_pixels or
        max_decode_bytes.
        """
        too_large = (
            f"image is too large: the limit is {self.max_pixels:,} pixels "
            f"({self.max_pixels / 1e6:g} megapixels)"
        )
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError:
            # Pillow's own limit (about 179 megapixels) is far above ours: quote ours.
            raise ImageTooLargeError(f"{too_large}, and this one is larger still") from None
        except Exception:
            return data, 0
        width, height = img.size
        pixels = width * height
        if pixels > self.max_pixels:
            raise ImageTooLargeError(f"{too_large}; this one is {width}x{height}")
        size = pixels * bytes_per_pixel(img.mode)
        if size > self.max_decode_bytes:
            raise ImageTooLargeError(
                f"image is too large: decoding this {width}x{height} {img.mode} image would "
                f"take {_megabytes(size)}, the limit is {_megabytes(self.max_decode_bytes)}"
            )
        return img, size

    @contextlib.asynccontextmanager
    async def slot(self, decoded_bytes: int) -> AsyncIterator[None]:
        """Hold one of the `concurrency` slots for a large decode; small ones pass through.

        After a large decode, freed memory goes back to the system (in a worker thread:
        malloc_trim walks the whole heap).
        """
        if decoded_bytes < LARGE_DECODE:
            yield
            return
        async with self._slots:
            try:
                yield
            finally:
                await run_in_threadpool(allocator.release_free_memory)

    @property
    def large_decodes(self) -> int:
        """How many large decodes hold a slot right now."""
        return self.concurrency - int(self._slots.value)
