"""The published client (a PyTorch + FastAPI + Next.js MNIST showcase) against our server.

Its code is not here: these tests replay the requests that its page and its api.ts make, as
issue 15 describes them, and check every field its components read, with its JSON type:

    page     POST /predict?model_type=cnn&top_k=5, multipart field `file`: a 28x28 PNG blob
             (FormData names a Blob "blob")
    api.ts   POST /predict/base64 {image, model_type, top_k}, image as raw base64
             GET  /models            models[].type
             GET  /model/{type}/info model_type, trainable_parameters (and export_formats, ours)

The server runs the bundled trained models, so the drawn 7 must come back as a 7, and CORS is
on for the page's dev origin, as `make run` tells how.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from scratchnet.mnist.export import FORMATS
from server.app import create_app
from server.config import ServerConfig
from tests.server.conftest import draw_digit

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette asks for httpx2 in its TestClient
    from starlette.testclient import TestClient

DEV_PAGE = "http://localhost:3000"
TOP_K = 5


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Our server as the published page meets it: bundled models, CORS for its dev origin."""
    config = ServerConfig(cors_origins=(DEV_PAGE,), warmup=False)
    models = config.model_dir
    if not all((models / f"{name}.npz").is_file() for name in ("cnn", "linear")):
        pytest.skip(f"the bundled models are not in {models}")
    with TestClient(create_app(config), headers={"Origin": DEV_PAGE}) as client:
        yield client


def canvas_png(ink_on_black: bool) -> bytes:
    """The page's 28x28 PNG of a drawn 7 (either polarity: we do not know which it paints)."""
    drawing = Image.open(io.BytesIO(draw_digit(7))).convert("L")
    if ink_on_black:
        drawing = Image.eval(drawing, lambda v: 255 - v)
    buffer = io.BytesIO()
    drawing.resize((28, 28), Image.Resampling.LANCZOS).convert("RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_prediction(body: dict[str, Any], model_type: str) -> None:
    """Every field the published page's result components read."""
    assert is_int(body["predicted_class"]) and body["predicted_class"] == 7
    assert is_number(body["confidence"]) and 0.5 < body["confidence"] <= 1
    top = body["top_k_predictions"]
    assert isinstance(top, list) and len(top) == TOP_K
    for entry in top:
        assert is_int(entry["class"]) and 0 <= entry["class"] <= 9
        assert is_number(entry["probability"]) and 0 <= entry["probability"] <= 1
    assert top[0] == {"class": 7, "probability": body["confidence"]}
    assert len({entry["class"] for entry in top}) == TOP_K
    assert body["model_type"] == model_type
    assert is_int(body["model_parameters"]) and body["model_parameters"] > 0


@pytest.mark.parametrize("ink_on_black", [True, False], ids=["ink-on-black", "ink-on-white"])
def test_page_upload(published: TestClient, ink_on_black: bool) -> None:
    png = canvas_png(ink_on_black)
    response = published.post(
        f"/predict?model_type=cnn&top_k={TOP_K}",
        files={"file": ("blob", png, "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == DEV_PAGE
    check_prediction(response.json(), "cnn")


@pytest.mark.parametrize("model_type", ["cnn", "linear"])
def test_api_ts_base64(published: TestClient, model_type: str) -> None:
    raw = base64.b64encode(canvas_png(ink_on_black=True)).decode("ascii")
    assert not raw.startswith("data:")
    # A JSON POST from another origin is preflighted: the browser asks first.
    preflight = published.options(
        "/predict/base64",
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DEV_PAGE
    response = published.post(
        "/predict/base64", json={"image": raw, "model_type": model_type, "top_k": TOP_K}
    )
    assert response.status_code == 200, response.text
    check_prediction(response.json(), model_type)


def test_api_ts_models(published: TestClient) -> None:
    response = published.get("/models")
    assert response.status_code == 200
    models = {item["name"]: item for item in response.json()["models"]}
    assert models["cnn"]["type"] == "CNNClassifier"
    assert models["linear"]["type"] == "LinearClassifier"
    for item in models.values():
        assert item["class_name"] == item["type"]  # ours, kept


@pytest.mark.parametrize(("model_type", "parameters"), [("linear", 784 * 10 + 10), ("cnn", None)])
def test_api_ts_model_info(published: TestClient, model_type: str, parameters: int | None) -> None:
    response = published.get(f"/model/{model_type}/info")
    assert response.status_code == 200
    info = response.json()
    assert info["model_type"] == model_type
    assert info["name"] == model_type  # ours, kept
    assert is_int(info["trainable_parameters"]) and info["trainable_parameters"] > 0
    # Every parameter of the served models is trainable: the two counts agree.
    assert info["trainable_parameters"] == info["total_parameters"]
    if parameters is not None:
        assert info["trainable_parameters"] == parameters
    assert info["export_formats"] == list(FORMATS)
    assert all(isinstance(fmt, str) for fmt in info["export_formats"])
