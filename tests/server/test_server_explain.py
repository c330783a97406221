"""POST /explain and /explain/base64: the prediction, plus what the model computed on the way."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from scratchnet.mnist import explain, imageprep, inference
from scratchnet.mnist.models import load_model
from tests.server.conftest import blank_png, draw_digit
from tests.server.test_server_endpoints import check_prediction, post_digit

CNN_ACTIVATIONS = [
    ("block1", [32, 14, 14]),
    ("block2", [64, 7, 7]),
    ("block3", [128, 7, 7]),
]  # and features, 128 for each of the final pool's K x K cells (the CNN's pool_size K)


def post_base64(client: TestClient, png: bytes, **fields) -> dict:
    payload = {"image": base64.b64encode(png).decode(), **fields}
    response = client.post("/explain/base64", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def values(array: dict) -> np.ndarray:
    """The values of an {shape, encoding, values} object, as a float32 array of its shape."""
    if array["encoding"] == "base64":
        flat = np.frombuffer(base64.b64decode(array["values"]), dtype="<f4")
        return flat.reshape(array["shape"])
    out = np.asarray(array["values"], dtype=np.float32)
    assert list(out.shape) == array["shape"]
    return out


def local_explanation(model_dir: Path, name: str, png: bytes, classes: str):
    """The same explanation computed here, from the server's checkpoint."""
    model, _ = load_model(model_dir / f"{name}.npz", expected=name)
    return explain.explain(model, imageprep.prepare_image(png), classes)


@pytest.mark.usefixtures("cnn_or_skip")
def test_cnn_explanation_holds_the_prediction_and_every_view(client, model_dir) -> None:
    png = draw_digit(7)
    body = post_digit(client, png, "/explain", model_type="cnn", top_k="4")
    check_prediction(body, "cnn", 4)
    predicted = post_digit(client, png, model_type="cnn")
    assert body["probabilities"] == pytest.approx(predicted["probabilities"], abs=1e-6)

    assert np.shape(body["input"]) == (28, 28)
    assert list(body["saliency"]) == [str(body["predicted_class"])]
    assert list(body["gradient_x_input"]) == list(body["saliency"])
    pool = load_model(model_dir / "cnn.npz", expected="cnn")[0].pool_size
    expected = [*CNN_ACTIVATIONS, ("features", [128 * pool * pool])]
    assert [(a["name"], a["shape"]) for a in body["activations"]] == expected
    assert body["filters"]["name"] == "conv1.weight"
    assert body["filters"]["shape"] == [32, 1, 3, 3]
    assert "templates" not in body and "contributions" not in body

    ours = local_explanation(model_dir, "cnn", png, "predicted")
    np.testing.assert_allclose(body["input"], ours.input, rtol=0, atol=1e-6)
    saliency = np.asarray(body["saliency"][str(ours.prediction.digit)])
    np.testing.assert_allclose(saliency, ours.saliency[ours.prediction.digit], atol=1e-6)
    x_input = np.asarray(body["gradient_x_input"][str(ours.prediction.digit)])
    np.testing.assert_allclose(x_input, saliency * ours.input, atol=1e-6)
    for sent, (name, expected) in zip(body["activations"], ours.activations):
        np.testing.assert_allclose(values(sent), expected, atol=1e-6, err_msg=name)


@pytest.mark.usefixtures("cnn_or_skip")
def test_base64_encoding_sends_the_same_numbers_as_lists(client) -> None:
    png = draw_digit(0)
    as_lists = post_base64(client, png, classes="all")
    as_base64 = post_base64(client, png, classes="all", encoding="base64")
    assert sorted(as_lists["saliency"], key=int) == [str(c) for c in range(10)]
    assert as_base64["saliency"] == as_lists["saliency"]
    for a, b in zip(as_lists["activations"], as_base64["activations"]):
        assert b["encoding"] == "base64" and isinstance(b["values"], str)
        np.testing.assert_array_equal(values(a), values(b))
    np.testing.assert_array_equal(values(as_lists["filters"]), values(as_base64["filters"]))


def test_linear_contributions_sum_with_the_bias_to_the_logits(client, model_dir) -> None:
    png = draw_digit(1)
    body = post_digit(client, png, "/explain", model_type="linear", classes="all")
    check_prediction(body, "linear", 3)
    assert body["activations"] == []
    assert "filters" not in body
    templates = values(body["templates"])
    assert templates.shape == (10, 28, 28)

    model, _ = load_model(model_dir / "linear.npz", expected="linear")
    np.testing.assert_array_equal(templates, model.fc.weight.data.reshape(10, 28, 28))
    x = np.asarray(body["input"])
    contributions = np.stack([np.asarray(body["contributions"][str(c)]) for c in range(10)])
    np.testing.assert_allclose(contributions, templates * x, atol=1e-6)
    logits = contributions.sum(axis=(1, 2)) + model.fc.bias.data
    probabilities = inference.softmax(logits)
    np.testing.assert_allclose(body["probabilities"], probabilities, atol=1e-5)
    # A linear model's input gradient is its weight template, whatever the input.
    saliency = np.stack([np.asarray(body["saliency"][str(c)]) for c in range(10)])
    np.testing.assert_allclose(saliency, templates, atol=1e-7)


def _upload(path: str, png: bytes, field: str = "file", **fields: str) -> dict:
    return {"url": path, "files": {field: ("digit.png", png, "image/png")}, "data": fields}


BAD_UPLOADS = {
    "not an image": dict(png=b"not an image at all"),
    "blank": dict(png=blank_png()),
    "file in another field": dict(png=draw_digit(7), field="image"),
    "bad top_k": dict(png=draw_digit(7), top_k="11"),
    "bad preview": dict(png=draw_digit(7), preview="maybe"),
    "unknown model": dict(png=draw_digit(7), model_type="resnet"),
}
BAD_JSON = {
    "bad base64": {"image": "@@@"},
    "no image": {"top_k": 3},
    "bad top_k": {"image": base64.b64encode(draw_digit(7)).decode(), "top_k": True},
    "not an object": [1, 2],
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=str)
def test_bad_uploads_get_the_same_errors_as_predict(client, case) -> None:
    upload = BAD_UPLOADS[case]
    predicted = client.post(**_upload("/predict", **upload))
    explained = client.post(**_upload("/explain", **upload))
    assert predicted.status_code >= 400
    assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())


@pytest.mark.parametrize("case", BAD_JSON, ids=str)
def test_bad_json_gets_the_same_errors_as_predict(client, case) -> None:
    predicted = client.post("/predict/base64", json=BAD_JSON[case])
    explained = client.post("/explain/base64", json=BAD_JSON[case])
    assert predicted.status_code >= 400
    assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())


def test_wrong_content_type_is_415_naming_the_endpoint(client) -> None:
    response = client.post("/explain", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert "POST /explain takes multipart/form-data" in response.json()["detail"]
    assert "/explain/base64 instead" in response.json()["detail"]


@pytest.mark.parametrize(
    ("name", "value"), [("classes", "some"), ("encoding", "hex"), ("classes", "")]
)
def test_bad_classes_or_encoding_is_422(client, name: str, value: str) -> None:
    upload = client.post(**_upload("/explain", draw_digit(7), **{name: value}))
    as_json = client.post(
        "/explain/base64",
        json={"image": base64.b64encode(draw_digit(7)).decode(), name: value},
    )
    for response in (upload, as_json):
        assert response.status_code == 422, response.text
        assert response.json()["parameter"] == name


def test_explain_is_in_the_openapi_schema(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/explain", "/explain/base64"):
        schema = paths[path]["post"]["responses"]["200"]["content"]["application/json"]
        assert schema["schema"] == {"$ref": "#/components/schemas/Explanation"}


def test_explaining_does_not_import_torch(model_dir: Path) -> None:
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from starlette.testclient import TestClient\n"
        "from server.app import create_app\n"
        "from server.config import ServerConfig\n"
        "from tests.server.conftest import draw_digit\n"
        f"app = create_app(ServerConfig(model_dir={str(model_dir)!r}))\n"
        "with TestClient(app) as client:\n"
        "    files = {'file': ('d.png', draw_digit(7), 'image/png')}\n"
        "    response = client.post('/explain', files=files, data={'classes': 'all'})\n"
        "    assert response.status_code == 200, response.text\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"
