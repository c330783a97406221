"""Fixtures for the server tests: checkpoints in a temp folder, an app, a client, drawings."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its TestClient; httpx still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from server.app import create_app
from server.config import ServerConfig

# Strokes of digit-like drawings on a 280x280 canvas, as the drawing page would send them.
STROKES: dict[int, list[list[tuple[int, int]]]] = {
    0: [
        [
            (140, 50),
            (90, 80),
            (80, 140),
            (90, 200),
            (140, 230),
            (190, 200),
            (200, 140),
            (190, 80),
            (140, 50),
        ]
    ],
    1: [[(120, 70), (145, 50), (145, 230)]],
    7: [[(80, 60), (200, 60), (120, 230)]],
}


def draw_digit(
    digit: int = 7, size: int = 280, width: int = 18, fmt: str = "PNG", mode: str = "RGB"
) -> bytes:
    """A black-on-white drawing of a digit-like stroke, encoded as an image file."""
    img = Image.new(mode, (size, size), "white")
    draw = ImageDraw.Draw(img)
    scale = size / 280
    for stroke in STROKES[digit]:
        points = [(x * scale, y * scale) for x, y in stroke]
        draw.line(points, fill="black", width=max(1, round(width * scale)), joint="curve")
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def blank_png(size: int = 280) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _save(directory: Path, name: str, factory: Callable[[], object], accuracy: float) -> bool:
    """Save a freshly initialised model as a checkpoint; False when the model cannot be built."""
    from scratchnet.checkpoint import save_checkpoint

    try:
        model = factory()
    except Exception:  # a layer still being written: the tests of this model skip
        return False
    save_checkpoint(
        directory / f"{name}.npz",
        model.state_dict(),
        {
            "architecture": {"name": name, "kwargs": {}},
            "metrics": {"test_accuracy": accuracy},
            "config": {"epochs": 1, "lr": 0.001, "batch_size": 64},
        },
    )
    return True


def save_test_models(directory: Path) -> list[str]:
    """Randomly initialised linear and CNN checkpoints; returns the names that could be built."""
    from scratchnet import manual_seed
    from scratchnet.mnist.models import CNNClassifier, LinearClassifier

    manual_seed(0)
    saved = []
    for name, factory, accuracy in (
        ("linear", LinearClassifier, 0.9),
        ("cnn", CNNClassifier, 0.99),
    ):
        if _save(directory, name, factory, accuracy):
            saved.append(name)
    return saved


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    if "linear" not in save_test_models(directory):
        pytest.skip("LinearClassifier cannot be built yet")
    return directory


@pytest.fixture(scope="session")
def has_cnn(model_dir: Path) -> bool:
    return (model_dir / "cnn.npz").exists()


@pytest.fixture
def cnn_or_skip(has_cnn: bool) -> None:
    if not has_cnn:
        pytest.skip("CNNClassifier cannot be built yet (conv layers in progress)")


@pytest.fixture(scope="session")
def frontend_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for frontend/, so that the tests do not depend on the real page's content."""
    directory = tmp_path_factory.mktemp("frontend")
    (directory / "index.html").write_text("<!doctype html><title>draw</title><h1>draw</h1>")
    (directory / "app.js").write_text("console.log('hello');\n")
    return directory


UPLOAD_LIMIT = 256 * 1024


@pytest.fixture(scope="session")
def config(model_dir: Path, frontend_dir: Path) -> ServerConfig:
    return ServerConfig(
        model_dir=model_dir,
        frontend_dir=frontend_dir,
        max_upload_bytes=UPLOAD_LIMIT,
        max_image_pixels=4_000_000,
    )


@pytest.fixture(scope="session")
def client(config: ServerConfig) -> Iterator[TestClient]:
    """One app for the whole session (models load once); it must survive every bad request."""
    app = create_app(config)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def default_model(has_cnn: bool) -> str:
    """The model to predict with: the CNN once it can be built, else the linear model."""
    return "cnn" if has_cnn else "linear"


@pytest.fixture
def digit_png() -> bytes:
    return draw_digit(7)
