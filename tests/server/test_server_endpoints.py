"""Every endpoint answering a good request, and the content negotiation of GET /."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from server.params import wants_html
from tests.server.conftest import draw_digit

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Written out, not read from server/openapi.py: a field dropped from both still fails here.
PREDICTION_FIELDS = {
    "predicted_class", "confidence", "top_k_predictions", "model_type",
    "model_parameters", "probabilities", "inference_ms",
}  # fmt: skip


def post_digit(client: TestClient, png: bytes, path: str = "/predict", **fields: str) -> dict:
    """POST png as the multipart field `file` with the form fields; the 200 response's JSON."""
    response = client.post(path, files={"file": ("digit.png", png, "image/png")}, data=fields)
    assert response.status_code == 200, response.text
    return response.json()


def check_prediction(body: dict, model_type: str, top_k: int) -> None:
    assert set(body) >= PREDICTION_FIELDS
    assert body["model_type"] == model_type
    assert 0 <= body["predicted_class"] <= 9
    probabilities = body["probabilities"]
    assert len(probabilities) == 10
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    assert body["confidence"] == pytest.approx(max(probabilities))
    assert body["predicted_class"] == probabilities.index(max(probabilities))
    top = body["top_k_predictions"]
    assert len(top) == top_k
    assert top[0]["class"] == body["predicted_class"]
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    for entry in top:
        assert entry["probability"] == pytest.approx(probabilities[entry["class"]])
    assert body["model_parameters"] > 0
    assert body["inference_ms"] >= 0


def test_serving_path_does_not_import_torch() -> None:
    code = "import sys, server.app, server.lambda_handler; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


# -- health and content negotiation ----------------------------------------------------------


def test_health(client: TestClient, default_model: str) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert default_model in body["models_loaded"]
    assert isinstance(body["version"], str)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html"])
def test_root_gives_api_clients_json(client: TestClient, accept: str | None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = client.get("/", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "healthy"
    assert "Accept" in response.headers["vary"]


@pytest.mark.parametrize(
    "accept", [BROWSER_ACCEPT, "text/html", "text/html, application/json;q=0.5"]
)
def test_root_gives_browsers_the_page(client: TestClient, accept: str) -> None:
    response = client.get("/", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>draw</h1>" in response.text
    assert "Accept" in response.headers["vary"]


def test_wants_html_edge_cases() -> None:
    assert not wants_html("")
    assert not wants_html("text/html;q=0")
    assert not wants_html("text/html;q=0.5, application/json")
    assert not wants_html("text/html;q=oops")
    assert wants_html("TEXT/HTML")


def test_static_files_are_served(client: TestClient) -> None:
    response = client.get("/static/app.js")
    assert response.status_code == 200
    assert "hello" in response.text
    missing = client.get("/static/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


# -- predictions -----------------------------------------------------------------------------


def test_predict_upload(client: TestClient, digit_png: bytes, default_model: str) -> None:
    body = post_digit(client, digit_png, model_type=default_model, top_k="5")
    check_prediction(body, default_model, 5)
    assert "input_preview" not in body


def test_predict_defaults_to_cnn_and_top3(client: TestClient, cnn_or_skip: None) -> None:
    check_prediction(post_digit(client, draw_digit(1)), "cnn", 3)


def test_predict_parameters_as_query(client: TestClient, digit_png: bytes) -> None:
    body = post_digit(client, digit_png, "/predict?model_type=linear&top_k=2&preview=true")
    check_prediction(body, "linear", 2)
    assert body["input_preview"].startswith("data:image/png;base64,")


def test_form_field_wins_over_query(client: TestClient, digit_png: bytes) -> None:
    body = post_digit(client, digit_png, "/predict?top_k=9", model_type="linear", top_k="1")
    assert len(body["top_k_predictions"]) == 1


def test_preview_is_the_prepared_28x28_input(client: TestClient, digit_png: bytes) -> None:
    preview = post_digit(client, digit_png, model_type="linear", preview="true")["input_preview"]
    png = base64.b64decode(preview.removeprefix("data:image/png;base64,"))
    image = Image.open(io.BytesIO(png))
    assert image.size == (28, 28)
    assert np.asarray(image).max() > 200  # ink is white on black, as the model sees it


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "WEBP"])
def test_predict_other_formats(client: TestClient, fmt: str) -> None:
    data = draw_digit(0, fmt=fmt)
    response = client.post(
        "/predict", files={"file": (f"d.{fmt.lower()}", data)}, data={"model_type": "linear"}
    )
    assert response.status_code == 200, response.text


def test_predict_base64_with_and_without_prefix(
    client: TestClient, digit_png: bytes, default_model: str
) -> None:
    encoded = base64.b64encode(digit_png).decode()
    for image in (encoded, "data:image/png;base64," + encoded):
        response = client.post(
            "/predict/base64",
            json={"image": image, "model_type": default_model, "top_k": 4, "preview": True},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        check_prediction(body, default_model, 4)
        assert body["input_preview"].startswith("data:image/png;base64,")


def test_base64_and_upload_agree(client: TestClient, digit_png: bytes) -> None:
    upload = client.post(
        "/predict", files={"file": ("d.png", digit_png)}, data={"model_type": "linear"}
    ).json()
    encoded = client.post(
        "/predict/base64",
        json={"image": base64.b64encode(digit_png).decode(), "model_type": "linear"},
    ).json()
    assert upload["probabilities"] == pytest.approx(encoded["probabilities"])


def test_unpadded_base64_is_accepted(client: TestClient, digit_png: bytes) -> None:
    encoded = base64.b64encode(digit_png).decode().rstrip("=")
    response = client.post("/predict/base64", json={"image": encoded, "model_type": "linear"})
    assert response.status_code == 200, response.text


def test_cnn_prediction(client: TestClient, cnn_or_skip: None) -> None:
    encoded = base64.b64encode(draw_digit(0)).decode()
    response = client.post("/predict/base64", json={"image": encoded, "model_type": "cnn"})
    assert response.status_code == 200, response.text
    check_prediction(response.json(), "cnn", 3)


# -- models ----------------------------------------------------------------------------------


def test_models(client: TestClient, has_cnn: bool) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    body = response.json()
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == {"linear", "cnn"}
    assert body["default_model"] == "cnn"
    linear = models["linear"]
    assert linear["class_name"] == "LinearClassifier"
    assert linear["loaded"] is True
    assert linear["parameters"] == 784 * 10 + 10
    assert linear["test_accuracy"] == pytest.approx(0.9)
    assert models["cnn"]["class_name"] == "CNNClassifier"
    assert models["cnn"]["loaded"] is has_cnn


def test_linear_model_info(client: TestClient) -> None:
    response = client.get("/model/linear/info")
    assert response.status_code == 200
    body = response.json()
    assert body["class_name"] == "LinearClassifier"
    assert body["total_parameters"] == 7850
    assert body["test_accuracy"] == pytest.approx(0.9)
    assert body["training_config"] == {"epochs": 1, "lr": 0.001, "batch_size": 64}
    layers = {layer["name"]: layer for layer in body["layers"]}
    assert layers["fc"]["type"] == "Linear"
    assert layers["fc"]["parameter_shapes"] == {"weight": [10, 784], "bias": [10]}
    assert layers["fc"]["parameters"] == 7850
    assert sum(layer["parameters"] for layer in body["layers"]) == body["total_parameters"]


def test_cnn_model_info(client: TestClient, cnn_or_skip: None) -> None:
    body = client.get("/model/cnn/info").json()
    layers = {layer["name"]: layer for layer in body["layers"]}
    assert layers["conv1"]["parameter_shapes"]["weight"] == [32, 1, 3, 3]
    assert layers["bn1"]["type"] == "BatchNorm2d"
    assert "running_mean" in layers["bn1"]["buffer_shapes"]
    assert sum(layer["parameters"] for layer in body["layers"]) == body["total_parameters"]


# -- schema, docs, metrics -------------------------------------------------------------------


def test_openapi_lists_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    expected = {"/", "/health", "/predict", "/predict/base64", "/explain", "/explain/base64"}
    expected |= {"/models"}
    expected |= {"/model/{model_type}/info", "/openapi.json", "/docs", "/docs/draw", "/metrics"}
    assert set(schema["paths"]) == expected


def test_drawing_docs_page_and_its_assets_are_local(client: TestClient) -> None:
    response = client.get("/docs/draw")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "http://" not in page and "https://" not in page  # no CDN
    for asset in ("/docs/assets/docs.js", "/docs/assets/docs.css"):
        assert asset in page
        asset_response = client.get(asset)
        assert asset_response.status_code == 200
        assert "http://" not in asset_response.text and "https://" not in asset_response.text


def test_metrics(client: TestClient, digit_png: bytes) -> None:
    client.post("/predict", files={"file": ("d.png", digit_png)}, data={"model_type": "linear"})
    client.get("/model/linear/info")
    client.get("/no/such/route")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'route="/predict",status="200"' in text
    assert 'route="/model/{model_type}/info"' in text  # the template, not the raw path
    assert "/model/linear/info" not in text
    assert 'route="other",status="404"' in text  # an unmatched path
    assert "scratchnet_http_request_duration_seconds_bucket" in text
    assert 'scratchnet_predictions_total{model="linear",predicted_class=' in text
    assert 'scratchnet_model_load_seconds{model="linear"}' in text
    assert 'scratchnet_model_loaded{model="linear"} 1.0' in text


def test_two_apps_have_separate_registries(config) -> None:
    from server.app import create_app

    first = create_app(config)
    second = create_app(config)
    assert first.state.metrics.registry is not second.state.metrics.registry


def test_head_request(client: TestClient) -> None:
    response = client.head("/health")
    assert response.status_code == 200
    assert response.content == b""
