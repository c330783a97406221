"""How long the server's picture preparation takes: a 280x280 canvas PNG -> a 28x28 digit.

    .venv/bin/pytest benchmarks/test_imageprep_speed.py --benchmark-only

Two pictures: the drawing page's (opaque RGBA: paper filled, then strokes), which takes the
8-bit path of scratchnet.mnist.imageprep (its steps run on a table of the 256 grey levels),
and a canvas with transparent paper, which is composited in float32 first. Each is timed
from the PNG's bytes (decode included), as the server runs it. The target was a unit test's
before: a median under 20 ms, generous for a busy machine (about 1-2 ms on a laptop).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from scratchnet.mnist.imageprep import prepare_image

TARGET_S = 0.02


def canvas_png(paper: tuple[int, int, int, int]) -> bytes:
    img = Image.new("RGBA", (280, 280), paper)
    ImageDraw.Draw(img).line([(80, 60), (200, 60), (120, 230)], fill=(0, 0, 0, 255), width=18)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.benchmark(group="imageprep")
@pytest.mark.parametrize(
    "paper", [(255, 255, 255, 255), (0, 0, 0, 0)], ids=["opaque canvas", "transparent canvas"]
)
def test_preparing_a_canvas_png(benchmark, paper: tuple[int, int, int, int]) -> None:
    data = canvas_png(paper)
    prepare_image(data)  # warm: the first call imports Pillow's PNG plug-in
    benchmark.pedantic(prepare_image, args=(data,), rounds=200, iterations=1, warmup_rounds=10)
    assert benchmark.stats.stats.median < TARGET_S
